"""histogram and estimate_poissonian_noise_variance against HyperSpy 1.7.3
(eager s.get_histogram(), s.estimate_poissonian_noise_variance()) on the
same files: a uint16 stack and a float32 stack with a few NaN, bins as an
integer, 'fd' and 'scott', range_bins, the max_num_bins cap (which drops
range_bins, as HyperSpy's does), at 1, 2 and 3 ranks (bit-identical); the
counts, edges (axis scale and offset), is_binned and title; the noise
variance's values, dtype and axes; fd on float64 (five passes). Then a
float32 job stopped in each of its three passes and resumed at another rank
count each time, and `hyperbatch validate` of bad parameters (exit 2 at the
value's job.yaml:LINE:COL).

usage: /usr/bin/python3 test_histogram.py path/to/hyperbatch"""
import concurrent.futures
import logging
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle  # noqa: E402
from oracle import check  # noqa: E402
import h5py  # noqa: E402
import hyperspy.api as hs  # noqa: E402

HB = os.path.abspath(sys.argv[1])
logging.getLogger("hyperspy.misc.hist_tools").setLevel(logging.ERROR)  # the cap's warning, expected

# name: (hyperbatch parameters, HyperSpy's keyword arguments)
HISTS = {
    "h_fd": ({}, {}),
    "h_fd_wide": ({"max_num_bins": 5000}, {"max_num_bins": 5000}),
    "h_scott": ({"bins": "scott"}, {"bins": "scott"}),
    "h_int": ({"bins": 37}, {"bins": 37}),
    "h_fd_range": ({"range_bins": [100, 300]}, {"range_bins": (100, 300)}),
    "h_scott_range": ({"bins": "scott", "range_bins": [50.5, 400.25]}, {"bins": "scott", "range_bins": (50.5, 400.25)}),
    "h_int_range": ({"bins": 20, "range_bins": [30, 31.5]}, {"bins": 20, "range_bins": (30, 31.5)}),
    # an empty range: numpy widens it to [9.5, 10.5] before it keeps the data fd and scott estimate from
    "h_fd_point": ({"range_bins": [10, 10]}, {"range_bins": (10, 10)}),
    "h_scott_point": ({"bins": "scott", "range_bins": [10, 10]}, {"bins": "scott", "range_bins": (10, 10)}),
    # capped: HyperSpy then bins max_num_bins over the data's min and max, range_bins dropped
    "h_fd_cap": ({"max_num_bins": 7}, {"max_num_bins": 7}),
    "h_int_cap": ({"bins": 12, "range_bins": [100, 200], "max_num_bins": 12},
                  {"bins": 12, "range_bins": (100, 200), "max_num_bins": 12}),
}
NOISE = {
    "var": ({}, {}),
    "var_gain": ({"gain_factor": 2.5, "gain_offset": 30.0, "correlation_factor": 0.5},
                 {"gain_factor": 2.5, "gain_offset": 30.0, "correlation_factor": 0.5}),
}


def kernels(skip=()):
    k = {name: dict({"op": "histogram"}, **p) for name, (p, _) in HISTS.items() if name not in skip}
    k.update({name: dict({"op": "estimate_poissonian_noise_variance"}, **p) for name, (p, _) in NOISE.items()})
    return k


def h5_result(path, name):
    with h5py.File(path, "r") as f:
        g = f["Experiments"][name]
        ax = dict(g["axis-0"].attrs)
        title = g["metadata/General"].attrs.get("title")
        return g["data"][()], ax, title.decode() if isinstance(title, bytes) else title


def compare_hist(tag, s, name, kw, path):
    ref = s.deepcopy().get_histogram(**kw)
    data, ax, title = h5_result(path, name)
    rax = ref.axes_manager[0]
    same = data.dtype == ref.data.dtype and data.shape == ref.data.shape and np.array_equal(data, ref.data)
    check(same, f"[{tag}] {name} {kw}: {data.shape[0]} counts ({data.dtype}) equal HyperSpy's {ref.data.shape[0]} "
          f"({ref.data.dtype})" + ("" if same else f": {data[:8]} vs {ref.data[:8]}"))
    axis_ok = (ax.get("name") in ("value", b"value") and float(ax["scale"]) == rax.scale and
               float(ax["offset"]) == rax.offset and int(ax["size"]) == rax.size and bool(ax["is_binned"]) and
               rax.is_binned and not bool(ax["navigate"]))
    check(axis_ok, f"[{tag}] {name}: axis 'value', scale {float(ax['scale'])!r} offset {float(ax['offset'])!r}, "
          f"is_binned, as HyperSpy's (scale {rax.scale!r}, offset {rax.offset!r})")
    check(title == ref.metadata.General.title, f"[{tag}] {name}: title {title!r}")


def compare_noise(tag, s, name, kw, path):
    ref = s.deepcopy()
    ref.estimate_poissonian_noise_variance(**kw)
    var = ref.metadata.Signal.Noise_properties.variance
    with h5py.File(path, "r") as f:
        g = f["Experiments"][name]
        data = g["data"][()]
        title = g["metadata/General"].attrs.get("title")
        title = title.decode() if isinstance(title, bytes) else title
        axes = [(float(g[f"axis-{i}"].attrs["scale"]), float(g[f"axis-{i}"].attrs["offset"])) for i in range(data.ndim)]
    want_axes = [(a.scale, a.offset) for a in s.axes_manager.navigation_axes[::-1]] + \
        [(a.scale, a.offset) for a in s.axes_manager.signal_axes[::-1]]
    ok = data.dtype == var.data.dtype and data.shape == var.data.shape and \
        np.array_equal(data, var.data, equal_nan=True)
    nnan = int(np.isnan(var.data).sum()) if var.data.dtype.kind == "f" else 0
    check(ok, f"[{tag}] {name} {kw}: variance {data.dtype} {data.shape} equals HyperSpy's ({var.data.dtype}, "
          f"{nnan} NaN)")
    check(axes == want_axes and title == var.metadata.General.title,
          f"[{tag}] {name}: the input's axes, title {title!r}")


def main():
    tmp = tempfile.mkdtemp(prefix="hbhist.")
    o = oracle.Oracle(HB, tmp)
    f32 = None
    for dtype, nans in (("uint16", 0), ("float32", 5)):
        tag = f"hist_{dtype}"
        src = o.image_stack(tag + ".hspy", dtype=dtype, nav_shape=(4, 6), chunks=(2, 1, 27, 33), seed=31, nans=nans)
        # float32 (three passes for fd) at 1, 2 and 3 ranks, uint16 at 1 and 3
        # fd on float32 keeps 2.5 MiB of partials per block: h_fd (capped at 250) covers the cap there
        skip = ("h_fd_cap",) if dtype == "float32" else ()
        runs = o.run(src, kernels(skip), tag=tag, ranks=(1, 3) if dtype == "uint16" else (1, 2, 3))
        if not runs.ranks:
            continue
        if dtype == "float32" and 3 in runs.ranks:
            f32 = runs
        for name in [n for n in list(HISTS) + list(NOISE) if n not in skip]:
            o.identical(runs, name)
        s = o.input_signal(src)
        path = runs.outputs[runs.ranks[0]]
        for name, (_, kw) in HISTS.items():
            if name not in skip:
                compare_hist(tag, s, name, kw, path)
        for name, (_, kw) in NOISE.items():
            compare_noise(tag, s, name, kw, path)
        # HyperSpy loads the histograms as binned Signal1D
        loaded = oracle.load_quietly(path)
        h = [x for x in loaded if x.metadata.General.title == s.metadata.General.title + " histogram"]
        binned = all(type(x).__name__ == "Signal1D" and x.axes_manager[0].is_binned for x in h)
        check(len(h) == len(HISTS) - len(skip) and binned,
              f"[{tag}] HyperSpy loads {len(h)} binned Signal1D histograms")
    # float64: fd resolves its percentiles over four 16-bit digit levels (five passes)
    src = o.image_stack("hist_float64.hspy", dtype="float64", nav_shape=(2, 3), chunks=(1, 3, 27, 33), seed=37,
                        nans=2)
    runs = o.run(src, {n: kernels()[n] for n in ("h_fd_wide", "h_fd_range")}, tag="hist_float64", ranks=(2,))
    if runs.ranks:
        for name in ("h_fd_wide", "h_fd_range"):
            compare_hist("hist_float64", o.input_signal(src), name, HISTS[name][1], runs.outputs[2])
    # the input's own noise model (as DigitalMicrograph and EMD readers fill it): HyperSpy takes a
    # parameter not given from metadata.Signal.Noise_properties.Variance_linear_model
    tag = "noise_model"
    s = hs.signals.Signal2D(np.random.default_rng(41).poisson(5.0, size=(3, 4, 9, 7)).astype(np.uint16))
    for key, value in (("gain_factor", 2.5), ("gain_offset", 10.0), ("correlation_factor", 0.5)):
        s.metadata.set_item(f"Signal.Noise_properties.Variance_linear_model.{key}", value)
    model_src = o.path(tag + ".hspy")
    s.save(model_src, overwrite=True, chunks=(2, 3, 9, 7))
    model_cases = {"var_model": ({}, {}), "var_model_gain": ({"gain_factor": 3.0}, {"gain_factor": 3.0})}
    runs = o.run(model_src, {n: dict({"op": "estimate_poissonian_noise_variance"}, **p) for n, (p, _) in
                             model_cases.items()}, tag=tag, ranks=(1, 2))
    if runs.ranks:
        for name, (_, kw) in model_cases.items():
            o.identical(runs, name)
            compare_noise(tag, hs.load(model_src), name, kw, runs.outputs[runs.ranks[0]])
    if f32:
        resume(tmp, f32)
    validate(o, src)
    oracle.finish("test_histogram")


def resume(tmp, ref):
    """fd on float32 takes three passes: a job of three of the float32
    job's kernels stopped in each pass (at 2, 3 and 1 ranks), finished at 2:
    its results are the uninterrupted run's."""
    names = ("h_fd_range", "h_scott", "var_gain")
    ks = kernels()
    job = oracle.write_job(os.path.join(tmp, "resume.yaml"), ref.src, {n: ks[n] for n in names})
    out = os.path.join(tmp, "out", "resumed.hspy")
    sets = [f"output.file={out}", "output.overwrite=false"]

    # 12 blocks a pass: 2 ranks stop after 6 blocks of pass 1; 3 ranks finish it and stop after 9 of
    # pass 2; 1 rank finishes that and stops after 4 of pass 3; 2 ranks finish
    rounds = [(2, 3), (3, 3), (1, 4), (2, None)]
    passes = []

    def checkpoint_pass(i):  # the pass the checkpoint records
        if rounds[i][1] is None:
            return
        try:
            with h5py.File(out + ".checkpoint", "r") as f:
                passes.append(int(f.attrs["pass"]))
        except (OSError, KeyError):
            passes.append(None)

    ps = oracle.stop_and_resume(HB, job, rounds, sets, checkpoint_seconds=None, after_each=checkpoint_pass)
    codes = [p.returncode for p in ps]
    check(codes == [75, 75, 75, 0] and passes == [1, 2, 3], f"stopped in passes {passes} (1, 2, 3), then "
          f"finished: exits {codes}" + (f": {ps[-1].stderr.strip()[-400:]}" if codes[-1] else ""))
    if codes[-1]:
        return
    for name in names:
        check(oracle._h5_record(ref.outputs[3], name) == oracle._h5_record(out, name),
              f"resumed three times: {name} bit-identical to an uninterrupted run")


BAD = [  # (kernel lines, the culprit's text, message)
    (["op: estimate_poissonian_noise_variance", "gain_offset: -1"], "-1", "gain_offset must not be negative"),
    (["op: estimate_poissonian_noise_variance", "correlation_factor: -0.5"], "-0.5", "correlation_factor"),
    (["op: histogram", "range_bins: [5, 1]"], "[5, 1]", "range_bins"),
    (["op: histogram", "bins: 0"], "0", "bins must be at least 1"),
    (["op: histogram", "max_num_bins: 0"], "0", "max_num_bins"),
    (["op: histogram", "bins: knuth"], "knuth", "knuth"),
]


def validate(o, src):
    """Bad parameters: exit 2 at the job.yaml:LINE:COL of the value."""
    jobs = []
    for i, (lines, at, msg) in enumerate(BAD):
        text = (f"version: 1\ninput: {{file: '{src}'}}\noutput: {{file: '{o.path('bad.hspy')}', overwrite: true}}\n"
                "kernels:\n  - name: k\n" + "".join(f"    {ln}\n" for ln in lines))
        job = o.path(f"bad_{i}.yaml")
        with open(job, "w") as f:
            f.write(text)
        col = text.splitlines()[6].index(at, text.splitlines()[6].index(":")) + 1
        jobs.append((job, f"bad_{i}.yaml:7:{col}", msg, lines[1]))

    def one(j):
        return j, subprocess.run([HB, "validate", j[0]], capture_output=True, text=True, env=o.env, timeout=120)
    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        for (job, where, msg, line), p in pool.map(one, jobs):
            err = p.stderr.strip()
            check(p.returncode == 2 and where in err and msg in err,
                  f"validate '{line}': exit {p.returncode}, {where}: ...{msg}..."
                  + ("" if where in err else f" ({err[-200:]})"))


main()
