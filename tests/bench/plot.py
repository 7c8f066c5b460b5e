"""Plot bench.sh's results: throughput against the machine's limits.

    plot.py RESULTS_FOLDER

Reads limits.csv, summary.csv and memory.csv from RESULTS_FOLDER (written by
tests/bench/bench.sh) and writes RESULTS_FOLDER/bench.png: for uncompressed
and gzip + shuffle inputs, hyperbatch (engine and end to end) and HyperSpy
lazy bars against the limits as lines (dd page-cache reads; zlib, libdeflate
and libdeflate + unshuffle times the rank count), and peak RSS per rank
against input size.
"""
import csv
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

out = sys.argv[1]


def rows(name):
    path = os.path.join(out, name)
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


limits = rows("limits.csv")
summary = rows("summary.csv")
memory = rows("memory.csv")
ranks = 2
for line in open(os.path.join(out, "bench.log"), errors="replace"):
    if line.startswith("ranks:"):
        ranks = int(line.split()[1])
        break


def limit(name):
    vals = [num(r["gbps"]) for r in limits if r["limit"] == name]
    vals = [v for v in vals if v is not None]
    return max(vals) if vals else None


fig, axes = plt.subplots(1, 3, figsize=(17, 6.2), gridspec_kw={"width_ratios": [1.2, 1.2, 1]})
bars = [
    ("hyperbatch", "engine_gbps_med", f"hyperbatch engine, {ranks} ranks (its own timer)", "#1f77b4"),
    ("hyperbatch-hdf5read", "engine_gbps_med", "  same, HB_READ=hdf5 (HDF5's read path)", "#9ecae1"),
    ("hyperbatch", "e2e_gbps", "hyperbatch end to end, mpirun included", "#08519c"),
    ("hyperspy", "e2e_gbps", "HyperSpy 1.7 lazy, load to last result", "#d62728"),
]
panels = [
    ("none", "uncompressed", [("dd", "dd, 1 process"), ("dd2", "dd, 2 processes at once")], 4.0),
    (
        "gzip",
        "gzip-4 + shuffle",
        [
            ("decode", f"libdeflate + unshuffle × {ranks}"),
            ("libdeflate", f"libdeflate × {ranks}"),
            ("zlib", f"zlib × {ranks}"),
        ],
        1.4,
    ),
]
for ax, (comp, title, lims, target) in zip(axes, panels):
    inputs = []
    for r in summary:
        if r["compression"] == comp and r["input"] not in inputs:
            inputs.append(r["input"])
    width = 0.8 / len(bars)
    for bi, (tool, key, label, color) in enumerate(bars):
        xs, ys = [], []
        for ii, inp in enumerate(inputs):
            for r in summary:
                if r["input"] == inp and r["tool"] == tool and num(r[key]):
                    xs.append(ii + (bi - (len(bars) - 1) / 2) * width)
                    ys.append(num(r[key]))
        if ys:
            ax.bar(xs, ys, width, label=label, color=color)
            for x, y in zip(xs, ys):
                ax.text(x, y * 1.05, f"{y:.2g}", ha="center", va="bottom", fontsize=7)
    styles = iter([":", "-.", (0, (5, 2, 1, 2))])
    for name, label in lims:
        v = limit(name)
        if v is None:
            continue
        if name in ("decode", "libdeflate", "zlib"):
            v *= ranks
        ax.axhline(v, color="k", ls=next(styles), lw=1, label=f"limit: {label} = {v:.2f} GB/s")
    ax.axhline(target, color="green", ls="--", lw=1.2, label=f"target: {target:g} GB/s")
    gbs = {}
    for r in summary:
        gbs[r["input"]] = r["gb"]
    ax.set_xticks(range(len(inputs)))
    ax.set_xticklabels([f"{gbs.get(i, '?')} GB\n{i}" for i in inputs], fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("GB/s of uncompressed data")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)

ax = axes[2]
byrank = {}
for r in memory:
    byrank.setdefault(r["rank"], []).append((num(r["gb"]), num(r["rss_mib"])))
for rank, pts in sorted(byrank.items()):
    pts.sort()
    ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=f"rank {rank}")
lim = sorted({(num(r["gb"]), num(r["limit_mib"])) for r in memory})
if lim:
    ax.plot([p[0] for p in lim], [p[1] for p in lim], "g--", label="target: 64 MiB + results")
ax.set_xscale("log", base=2)
sizes = sorted({num(r["gb"]) for r in memory})
ax.set_xticks(sizes)
ax.set_xticklabels([f"{x:.2g}" for x in sizes])
ax.set_xlabel("input size (GB uncompressed; gzip + shuffle files)")
ax.set_ylabel("peak RSS (MiB)")
ax.set_ylim(bottom=0)
ax.set_title("hyperbatch memory per rank")
ax.legend(fontsize=7, loc="lower right")

stamp, load = "", ""
for line in open(os.path.join(out, "bench.log"), errors="replace"):
    if line.startswith("hyperbatch benchmark"):
        stamp = line.strip()
    elif line.startswith("load avg:") and not load:
        load = "load average at the start " + line.split()[2]
fig.suptitle(f"{stamp}   ({load})" if load else stamp, fontsize=9)
fig.tight_layout()
fig.savefig(os.path.join(out, "bench.png"), dpi=120)
