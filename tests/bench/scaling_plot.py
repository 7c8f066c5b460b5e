#!/usr/bin/env python3
"""Plots and tables for tests/bench/scaling.sh.

  scaling_plot.py scaling.csv scaling.png

For each (study, compression, ranks) the repetition with the smallest
provenance wall time is kept.  Strong scaling: speedup T(1)/T(N) and
efficiency T(1)/(N T(N)); weak scaling (work per rank fixed): efficiency
T(1)/T(N).  On a machine with C cores the best possible speedup is min(N, C),
drawn as a dashed line.  Prints a Markdown table of every point.
"""
import csv
import os
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

rows = list(csv.DictReader(open(sys.argv[1])))
best = {}
spread = defaultdict(list)
for r in rows:
    key = (r["study"], r["compression"], int(r["ranks"]))
    spread[key].append(float(r["wall_s"]))
    if key not in best or float(r["wall_s"]) < float(best[key]["wall_s"]):
        best[key] = r
cores = os.cpu_count() or 1

print("| study | input | ranks | wall s (best; all reps) | launch s | GB/s | speedup / weak eff. | efficiency | read s (med) | kernels s (med) | reduce s (max) | write s (max) |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
series = defaultdict(list)
for key in sorted(best):
    study, comp, n = key
    r = best[key]
    t = float(r["wall_s"])
    t1 = float(best[(study, comp, 1)]["wall_s"])
    gbs = float(r["bytes_read"]) / t / 1e9
    if study == "strong":
        s = t1 / t
        eff = s / n
        s_txt = f"{s:.2f}x"
    else:
        eff = t1 / t
        s = None
        s_txt = f"{eff:.2f}"
    series[(study, comp)].append((n, t, eff, gbs))
    reps = ", ".join(f"{x:.2f}" for x in sorted(spread[key]))
    print(f"| {study} | {comp} | {n} | {t:.2f} ({reps}) | {float(r['launch_wall_s']):.2f} | {gbs:.2f} | {s_txt} | {eff:.0%} | "
          f"{float(r['read_median_s']):.2f} | {float(r['kernels_median_s']):.2f} | {float(r['reduce_max_s']):.3f} | "
          f"{float(r['write_max_s']):.3f} |")

fig, ax = plt.subplots(2, 2, figsize=(10, 8))
colors = {"gzip": "tab:blue", "none": "tab:orange"}
for (study, comp), pts in sorted(series.items()):
    ns = [p[0] for p in pts]
    c = colors.get(comp, None)
    label = "gzip + shuffle" if comp == "gzip" else "uncompressed"
    if study == "strong":
        ax[0][0].plot(ns, [p[1] for p in pts], "o-", color=c, label=label)
        t1 = pts[0][1]
        ax[0][0].plot(ns, [t1 / n for n in ns], ":", color=c, alpha=0.6)
        ax[0][0].plot(ns, [t1 / min(n, cores) for n in ns], "--", color=c, alpha=0.6)
        ax[0][1].plot(ns, [p[2] for p in pts], "o-", color=c, label=label)
    else:
        ax[1][0].plot(ns, [p[1] for p in pts], "o-", color=c, label=label)
        ax[1][1].plot(ns, [p[2] for p in pts], "o-", color=c, label=label)
allns = sorted({k[2] for k in best})
ax[0][1].plot(allns, [min(n, cores) / n for n in allns], "k--", alpha=0.5, label=f"best possible on {cores} cores")
ax[1][1].plot(allns, [min(n, cores) / n for n in allns], "k--", alpha=0.5, label=f"best possible on {cores} cores")
size = lambda st: float(best[(st, sorted({k[1] for k in best})[0], 1)]["input_bytes"]) / 1e9
ax[0][0].set_title(f"strong scaling: {size('strong'):.2f} GB input (dotted: T1/N, dashed: T1/min(N, cores))")
ax[0][1].set_title("strong scaling efficiency T1 / (N TN)")
ax[1][0].set_title(f"weak scaling: {size('weak'):.2f} GB per rank")
ax[1][1].set_title("weak scaling efficiency T1 / TN")
for a in ax.flat:
    a.set_xlabel("MPI ranks")
    a.set_xticks(allns)
    a.grid(alpha=0.3)
    a.legend(fontsize=8)
for a in (ax[0][0], ax[1][0]):
    a.set_ylabel("wall time (s, provenance)")
    a.set_ylim(bottom=0)
for a in (ax[0][1], ax[1][1]):
    a.set_ylabel("efficiency")
    a.set_ylim(0, 1.1)
for a in ax.flat:
    a.title.set_fontsize(9)
fig.suptitle(f"hyperbatch on {cores} cores ({os.uname().nodename}), ranks > {cores} oversubscribed", fontsize=10)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=100)
