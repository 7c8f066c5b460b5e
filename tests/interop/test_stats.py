"""The statistics family against HyperSpy 1.7.3: sum, mean, max,
min, std, var, nansum, nanmean, nanmax, nanmin, nanstd and nanvar over the
navigation axes, the signal axes and named axes (names and natural-order
indices, as HyperSpy's axis=, some of the navigation axes too), on inputs HyperSpy writes itself (float32
spectrum images and image scans with NaNs, uint16 and int16 ones, a uint16
stack with values up to 65535; odd shapes, partial edge chunks, gzip), at 1,
2 and 3 ranks with one input chunk per block, so that every reduction merges
many partials.  A run stopped at a checkpoint on 2 ranks and resumed on 3
must equal an uninterrupted one bit for bit.  Then `hyperbatch validate` of
bad axes: exit 2 at the value's job.yaml:LINE:COL.

Where hyperbatch differs from HyperSpy on purpose the field is in `known`:
- one value per pattern is stored with navigate=False, so it loads as a
  Signal1D/Signal2D (|7, 5) where HyperSpy returns a BaseSignal (7, 5|)
  ("class", "navigate"), as for every navigation-shaped result;
- sum and mean of float32 data are float64 (HyperSpy: float32), as they
  were before this family grew ("dtype");
- float32 data accumulate in float64 (numpy: in float32), so the float32
  results of std, var, nansum, nanmean, nanstd and nanvar are held to
  HyperSpy's on the data as float64 within float32 rounding (upcast), and to
  its float32 results within float32 accumulation error.

usage: /usr/bin/python3 test_stats.py path/to/hyperbatch"""
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle  # noqa: E402
from oracle import Case, hs  # noqa: E402

HB = os.path.abspath(sys.argv[1])
OPS = ("sum", "mean", "max", "min", "std", "var", "nansum", "nanmean", "nanmax", "nanmin", "nanstd", "nanvar")
NAVSHAPED = ("class", "navigate")  # one value per pattern: navigate=False
F32_ROUNDING = 1.2e-7  # a float64 result rounded to float32 is within 2^-24 of it
F32_ACCUMULATION = 2e-5  # numpy's float32 sums and squared deviations against float64 ones


def cases(ops, axes, expr_axes, dtype, known=(), tag=None, f32ref=False):
    """One Case per op over `axes` (the job's value), with HyperSpy's
    s.<op>(expr_axes); what differs for this dtype goes into known=.  Float32
    results are held to HyperSpy's on float64 data, and with f32ref also to
    its float32 results."""
    out = []
    for op in ops:
        name = f"{op}_{tag or axes}"
        f32 = dtype == "float32"
        widened = f32 and op in ("sum", "mean")  # float64 here, float32 in HyperSpy
        k = tuple(known) + (("dtype",) if widened else ())
        expr = f"s.{op}({expr_axes})"
        if f32 and op not in ("max", "min", "nanmax", "nanmin"):
            # tight against float64 arithmetic, loose against numpy's float32
            rtol = 1e-12 if widened else F32_ROUNDING
            out.append(Case(name, {"op": op, "axes": axes}, expr, rtol=rtol, upcast=True, known=k))
            if f32ref:
                out.append(Case(name + "_f32ref", {"op": op, "axes": axes}, expr, rtol=F32_ACCUMULATION, known=k))
        else:
            out.append(Case(name, {"op": op, "axes": axes}, expr, rtol=1e-12, known=k))
    return out


def save(s, path, chunks):
    s.save(path, overwrite=True, chunks=chunks, compression="gzip")
    return path


def test_spectrum_images(o):
    # float32 with NaNs: every op over both axis sets and named ones
    tag = "si_f32"
    # (7, 5 | 203), chunk rows of 5 patterns: the runs the kernels get are rows
    src = o.spectrum_image(tag + ".hspy", dtype="float32", nans=6, seed=7, chunks=(2, 5, 64))
    s = o.input_signal(src)
    oracle.check(np.isnan(s.data).sum() == 6, f"[{tag}] the input has 6 NaNs")
    cs = cases(OPS, "navigation", "nav", "float32", f32ref=True)
    cs += cases(OPS, "signal", "sig", "float32", NAVSHAPED, f32ref=True)
    # the one signal axis by name and by index
    cs += cases(("std", "nanmean"), "Energy loss", "'Energy loss'", "float32", NAVSHAPED, tag="E")
    cs += cases(("nanvar", "max"), -1, "-1", "float32", NAVSHAPED, tag="last")
    # some of the navigation axes: a spectrum per position of the others
    # (blocks take whole rows of x), and with the signal axis one value each
    cs += cases(OPS, "x", "'x'", "float32", tag="x")
    cs += cases(("mean", "nanstd", "min"), 0, "0", "float32", tag="nat0")
    cs += cases(("std", "nansum", "nanmax"), ["y", "Energy loss"], "('y', 'Energy loss')", "float32", NAVSHAPED,
                tag="y_E")
    o.suite(src, cs, tag=tag)

    tag = "si_u16"  # the new ops (test_oracle_existing.py has sum, mean, max, min)
    src = o.spectrum_image(tag + ".hspy", dtype="uint16", seed=8)
    cs = cases(OPS[4:], "navigation", "nav", "uint16") + cases(OPS[4:], "signal", "sig", "uint16", NAVSHAPED)
    cs += cases(OPS, "y", "'y'", "uint16", tag="y")
    o.suite(src, cs, tag=tag)

    # int16 around zero: the signed exact moments, and the signed sums
    tag = "si_i16"
    axes = oracle.SPECTRUM_AXES
    energy = axes[-1][3] + axes[-1][2] * np.arange(203)
    s = hs.signals.Signal1D((oracle.eels_like(np.random.default_rng(9), (5, 7), energy) - 1500).astype("int16"))
    oracle.calibrate(s, axes)
    src = save(s, o.path(tag + ".hspy"), (2, 3, 64))
    oracle.check(s.data.min() < 0 < s.data.max(), f"[{tag}] values of both signs")
    ops = ("sum", "mean", "std", "var", "nanstd", "nanmean", "nanmin")
    cs = cases(ops, "navigation", "nav", "int16") + cases(ops, "signal", "sig", "int16", NAVSHAPED)
    o.suite(src, cs, tag=tag)

    # 64-bit integers whose sum over a pattern wraps: numpy's mean sums in float64
    for dtype, lo, hi in (("int64", 2**61, 2**62), ("uint64", 2**62, 2**63 + 2**62)):
        tag = f"si_{dtype}"
        s = hs.signals.Signal1D(np.random.default_rng(10).integers(lo, hi, size=(5, 7, 203), dtype=dtype))
        oracle.calibrate(s, axes)
        src = save(s, o.path(tag + ".hspy"), (2, 3, 64))
        cs = cases(("mean", "nanmean", "std"), "signal", "sig", dtype, NAVSHAPED)
        cs += cases(("mean",), ["y", "Energy loss"], "('y', 'Energy loss')", dtype, NAVSHAPED, tag="y_E")
        cs += cases(("mean",), "navigation", "nav", dtype)
        o.suite(src, cs, tag=tag)


def test_stacks(o):
    # one navigation axis: naming it reduces every navigation axis; a signal
    # axis leaves a line per pattern.  Patterns of 2250 pixels span several
    # of the kernels' pixel tiles.
    tag = "stack_u16"
    rng = np.random.default_rng(16)
    x = rng.integers(0, 65536, size=(9, 45, 50), dtype=np.uint16)  # squares near 2^32
    x[:, :3] = rng.integers(60000, 65536, size=(9, 3, 50), dtype=np.uint16)
    s = hs.signals.Signal2D(x)
    oracle.calibrate(s, oracle.STACK_AXES[1] + oracle.STACK_SIGNAL_AXES)
    s.metadata.General.title = "stack"
    src = save(s, o.path(tag + ".hspy"), (4, 10, 16))
    cs = cases(OPS, "navigation", "nav", "uint16")
    cs += cases(("sum", "std", "var", "nanmax"), "t", "'t'", "uint16", tag="t")
    cs += cases(("sum", "mean", "std", "nanvar"), "kx", "'kx'", "uint16")
    cs += cases(("max", "var", "nanmean"), "ky", "'ky'", "uint16")
    cs += cases(("min", "std"), 1, "1", "uint16", tag="nat1")  # natural order: t, kx, ky
    cs += cases(("nanstd",), -1, "-1", "uint16", tag="last")
    cs += cases(("std", "mean"), "signal", "sig", "uint16", NAVSHAPED)
    o.suite(src, cs, tag=tag)

    # a 3 x 5 scan of float32 images with NaNs, 6 patterns per block
    tag = "scan_f32"
    src = o.image_stack(tag + ".hspy", dtype="float32", nav_shape=(3, 5), sig_shape=(45, 50), chunks=(3, 2, 9, 11),
                        seed=21, nans=5)
    cs = cases(OPS, "kx", "'kx'", "float32")
    cs += cases(("std", "nanstd", "nanmean", "nanmin", "sum"), "ky", "'ky'", "float32")
    cs += cases(("std", "var", "nanstd", "nanvar", "nanmax"), "navigation", "nav", "float32")
    cs += cases(("std", "nanvar"), "signal", "sig", "float32", NAVSHAPED)
    # lists, as HyperSpy's axis= tuple: both signal axes (one value per
    # pattern), every navigation axis and one signal axis (a line), indices
    cs += cases(("std", "nanmean", "max"), ["kx", "ky"], "('kx', 'ky')", "float32", NAVSHAPED, tag="kx_ky")
    cs += cases(("var", "nanstd", "sum"), ["x", "y", "kx"], "('x', 'y', 'kx')", "float32", tag="x_y_kx")
    cs += cases(("std", "nanmin"), [1, 0, -1], "(1, 0, -1)", "float32", tag="y_x_ky")
    # every axis: one value on HyperSpy's axis "Scalar", which loads as a
    # Signal1D (|1) here and a BaseSignal (|1) in HyperSpy
    cs += cases(("mean", "nanvar"), [0, 1, 2, 3], "(0, 1, 2, 3)", "float32", ("class",), tag="all")
    # one navigation axis and some signal axes: an image (or a line) per
    # position of the other navigation axis
    cs += cases(("sum", "std", "nanmean", "nanmax"), "y", "'y'", "float32", tag="y")
    cs += cases(("var", "nanstd", "max"), ["x", "kx"], "('x', 'kx')", "float32", tag="x_kx")
    o.suite(src, cs, tag=tag)


def test_resume(o):
    """A run stopped at a checkpoint (as Slurm's time limit does) on 2 ranks
    and resumed on 3 gives what an uninterrupted run on 1 gives, bit for
    bit: the partials of every accumulation scheme go through the
    checkpoint."""
    every_nav = {op: {"op": op, "axes": "navigation"} for op in ("std", "nanvar", "nanmean", "nanmax", "mean")}
    every_nav["var_kx"] = {"op": "var", "axes": "kx"}
    # some navigation axes: a partial per position of y in each block of
    # whole rows (40 rows: enough blocks for the stop to land mid-run)
    some_nav = {"std_x": {"op": "std", "axes": "x"}, "nanmean_x": {"op": "nanmean", "axes": "x"},
                "sum_x_kx": {"op": "sum", "axes": ["x", "kx"]}, "max_x": {"op": "max", "axes": 0}}
    for dtype, shape, kernels in (("float32", "12,10,16,16", every_nav), ("uint16", "12,10,16,16", every_nav),
                                  ("float32", "40,10,16,16", some_nav)):
        tag = f"resume_{dtype}" + ("_some_nav" if kernels is some_nav else "")
        src = o.path(f"{tag}.hspy")
        subprocess.run([HB, "synth", "4dstem", src, "--shape", shape, "--chunks", "2,2,16,16", "--dtype", dtype],
                       check=True, capture_output=True, env=o.env)
        job = oracle.write_job(o.path(f"{tag}.yaml"), src, kernels, o.path(f"out/{tag}.hspy"),
                               run={"block": 1, "checkpoint": True})
        ref, out = o.path(f"out/{tag}_ref.hspy"), o.path(f"out/{tag}.hspy")
        p = oracle.run_hyperbatch(HB, job, 1, [f"output.file={ref}"], o.env)
        published = []  # after the stop: nothing under the output's name yet
        stop, resumed = oracle.stop_and_resume(HB, job, [(2, 4), (3, None)], env=o.env,
                                               after_each=lambda i: published.append(os.path.exists(out)))
        oracle.check(p.returncode == 0 and stop.returncode == 75 and not published[0],
                     f"[{tag}] reference exit {p.returncode} (0), stopped exit {stop.returncode} (75)")
        same, summary = oracle.bit_identical(ref, out)
        oracle.check(resumed.returncode == 0 and same, f"[{tag}] resumed on 3 ranks: exit "
                     f"{resumed.returncode}; {summary}" + (f" {resumed.stderr.strip()[-400:]}" if resumed.returncode else ""))


def where_of(job_text, name, last_item):
    """LINE:COL of the value of `axes` in the kernel named `name` (write_job
    writes it on the name's line, or below it when the value is a list); of
    its last item with last_item."""
    lines = job_text.splitlines()
    start = next(i for i, line in enumerate(lines) if re.search(rf"\bname: {re.escape(name)}\b", line))
    i, line = next((i, line) for i, line in enumerate(lines) if i >= start and "axes: " in line)
    col = line.index("axes: ") + len("axes: ") + 1
    if last_item:
        end = line.index("]", col)
        col = end - len(line[:end].split(", ")[-1]) + 1
    return f"{i + 1}:{col}"


def test_validate(o):
    src = o.path("si_u16.hspy")  # (7, 5 | 203): navigation x, y; signal 'Energy loss'
    bad = [
        ("unknown", "energy", "no axis named 'energy'"),
        ("index", 3, "axis 3: the data has 3 axes"),
        ("negative", -4, "axis -4: the data has 3 axes"),
        ("empty", "", "no axis named ''"),
        ("twice", ["x", "y", "x"], "axis 'x' is named twice in axes"),  # at the item
        ("list_unknown", ["x", "y", "energy"], "no axis named 'energy'"),
    ]
    for name, value, message in bad:
        job = oracle.write_job(o.path(f"bad_{name}.yaml"), src, {name: {"op": "std", "axes": value}},
                               o.path(f"out/bad_{name}.hspy"))
        with open(job) as f:
            text = f.read()
        p = subprocess.run([HB, "validate", job], capture_output=True, text=True, env=o.env, timeout=60)
        at = where_of(text, name, name in ("twice", "list_unknown"))
        oracle.check(p.returncode == 2 and f"{job}:{at}: " in p.stderr and message in p.stderr,
                     f"validate axes: {value}: exit {p.returncode} (2) at {at}, '{message}': {p.stderr.strip()}")
    # and the good ones validate
    job = oracle.write_job(o.path("good.yaml"), src, {"a": {"op": "nanstd", "axes": "Energy loss"},
                                                      "b": {"op": "var", "axes": -1}, "c": {"op": "std", "axes": 1},
                                                      "d": {"op": "sum", "axes": ["x", "Energy loss"]}},
                           o.path("out/good.hspy"))
    p = subprocess.run([HB, "validate", job], capture_output=True, text=True, env=o.env, timeout=60)
    oracle.check(p.returncode == 0, f"validate axes 'Energy loss', -1, 1 and [x, 'Energy loss']: exit {p.returncode}: "
                 f"{p.stderr.strip()}")


def main():
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        o = oracle.Oracle(HB, tmp, env_extra={"HB_RESULT_CHUNK_BYTES": "16"})  # many small result chunks
        test_spectrum_images(o)
        test_stacks(o)
        test_resume(o)
        test_validate(o)
    print(f"test_stats: {time.time() - t0:.1f} s")
    oracle.finish("test_stats")


main()
