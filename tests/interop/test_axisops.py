"""The one-axis methods against HyperSpy 1.7.3 (oracle.py): indexmax,
indexmin, valuemax, valuemin, integrate1D, integrate_simpson, derivative and
diff over one signal axis, by name and by index, on inputs HyperSpy writes
itself: float32 spectrum images with NaNs (a uniform axis, and one whose
axis values are not evenly spaced in floating point, with an even number of
channels), a uint16 one, a uint16 EELSSpectrum (binned: integrate1D sums), a
float32 Signal1D whose axis is saved with is_binned, an axis of 3 samples,
and 4D-STEM scans (float32 and uint16, from `hyperbatch synth`) over kx and
over ky; partial edge chunks, gzip; at 1, 2 and 3 ranks, bit-identical.  A
run stopped at a checkpoint on 2 ranks and resumed on 3 equals an
uninterrupted one bit for bit.  Then `hyperbatch validate` of bad
parameters: exit 2 at the value's job.yaml:LINE:COL.

Held exactly to HyperSpy: the indices, the axis values, derivative (the
same numpy operations in the same order, float32 ones in float32) and diff.
integrate_simpson is a weighted sum in float64 (scipy adds panel by panel):
rtol 1e-12.  Where hyperbatch differs from HyperSpy on purpose the field
is in `known`:
- one value per pattern is stored with navigate=False, so it loads as a
  Signal2D (|7, 5) where HyperSpy returns a BaseSignal (7, 5|) ("class",
  "navigate"), as for every navigation-shaped result
  (docs/hyperspy-semantics.md, section 0);
- integrate1D's sum of float32 data on a binned axis accumulates in float64
  (numpy: pairwise in float32): float32 as HyperSpy, held to HyperSpy's sum
  of the data as float64 within float32 rounding; likewise Simpson's one
  float32 panel (3 samples).

usage: /usr/bin/python3 test_axisops.py path/to/hyperbatch"""
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle  # noqa: E402
from oracle import Case, check, hs  # noqa: E402

HB = os.path.abspath(sys.argv[1])
NAVSHAPED = ("class", "navigate")  # one value per pattern: navigate=False
F32_ROUNDING = 1.2e-7
REDUCTIONS = ("indexmax", "indexmin", "valuemax", "valuemin", "integrate1D", "integrate_simpson")


def reductions(axis, expr, dtype, known=NAVSHAPED, tag=None, binned=False, ops=REDUCTIONS):
    """A Case per reduction over `axis` (the job's value), with HyperSpy's
    s.<op>(expr)."""
    out = []
    for op in ops:
        name = f"{op}_{tag or axis}"
        k = {"op": op, "axis": axis}
        e = f"s.{op}({expr})"
        if op.startswith(("index", "value")):
            out.append(Case(name, k, e, exact=True, known=known))
        elif op == "integrate1D" and binned and dtype == "float32":
            # a sum of float32: float64 here, rounded to float32
            out.append(Case(name, k, e, rtol=F32_ROUNDING, upcast=True, known=known))
            out.append(Case(name + "_f32ref", k, e, rtol=2e-6, known=known))
        else:
            out.append(Case(name, k, e, rtol=1e-12, known=known))
    return out


def transforms(axis, expr, tag=None):
    """derivative (orders 1 and 2, edge_order 2) and diff (orders 1 and 3),
    held to HyperSpy's bits."""
    tag = tag or axis
    return [
        Case(f"derivative_{tag}", {"op": "derivative", "axis": axis}, f"s.derivative({expr})", exact=True),
        Case(f"derivative2_{tag}", {"op": "derivative", "axis": axis, "order": 2},
             f"s.derivative({expr}, order=2)", exact=True),
        Case(f"derivative_e2_{tag}", {"op": "derivative", "axis": axis, "edge_order": 2},
             f"s.derivative({expr}, edge_order=2)", exact=True),
        Case(f"diff_{tag}", {"op": "diff", "axis": axis}, f"s.diff({expr})", exact=True),
        Case(f"diff3_{tag}", {"op": "diff", "axis": axis, "order": 3}, f"s.diff({expr}, order=3)", exact=True),
    ]


def save(s, path, chunks):
    s.save(path, overwrite=True, chunks=chunks, compression="gzip")
    return path


def spectrum(path, dtype, channels=203, axes=None, nans=0, seed=31, signal_type="", binned_axis=False,
             chunks=(2, 3, 64)):
    rng = np.random.default_rng(seed)
    axes = axes or oracle.SPECTRUM_AXES
    energy = axes[-1][3] + axes[-1][2] * np.arange(channels)
    x = oracle.eels_like(rng, (5, 7), energy)
    if dtype == "float32":
        x += rng.normal(0, 3, x.shape)
    x = oracle._cast(x, dtype)
    for _ in range(nans):
        x[tuple(rng.integers(0, n) for n in x.shape)] = np.nan
    s = hs.signals.Signal1D(x)
    if signal_type:
        s.set_signal_type(signal_type)
    oracle.calibrate(s, axes)
    if binned_axis:
        s.axes_manager[-1].is_binned = True
    s.metadata.General.title = "si"
    return save(s, path, chunks)


def test_spectra(o):
    # float32 with NaNs, a uniform axis (0.5 eV from 280.25: every np.diff equal)
    tag = "si_f32"
    src = spectrum(o.path(tag + ".hspy"), "float32", nans=4)
    s = o.input_signal(src)
    check(np.isnan(s.data).sum() == 4 and np.all(np.diff(s.axes_manager[-1].axis) == 0.5),
          f"[{tag}] 4 NaNs, a uniform axis")
    cs = reductions("Energy loss", "'Energy loss'", "float32", tag="E")
    cs += reductions(-1, "-1", "float32", tag="last", ops=("indexmin", "valuemax", "integrate1D"))
    cs += reductions(2, "2", "float32", tag="nat2", ops=("indexmax",))
    cs += transforms("Energy loss", "'Energy loss'", tag="E")
    o.suite(src, cs, tag=tag)

    # float64 and float32 on an axis whose values are not evenly spaced in
    # floating point (np.gradient's non-uniform formula), 200 channels (an
    # even number: scipy's even='avg')
    axes = oracle.SPECTRUM_AXES[:2] + [("E", "keV", 0.01, 0.27)]
    for dtype in ("float64", "float32"):
        tag = f"si_nonuni_{dtype}"
        src = spectrum(o.path(tag + ".hspy"), dtype, channels=200, axes=axes, seed=32)
        s = o.input_signal(src)
        d = np.diff(s.axes_manager[-1].axis)
        check(not np.all(d == d[0]), f"[{tag}] np.diff of the axis values is not constant")
        cs = reductions("E", "'E'", dtype) + transforms("E", "'E'")
        o.suite(src, cs, tag=tag)

    # a non-uniform axis (HyperSpy's DataAxis): values, derivatives and
    # integrals take its points, as axis.axis; diff is refused, as HyperSpy raises
    tag = "si_points_f64"
    x = np.random.default_rng(38).random((4, 5, 9))
    s = hs.signals.Signal1D(x)
    s.axes_manager[-1].convert_to_non_uniform_axis()
    s.axes_manager[-1].axis = np.array([1.0, 2.0, 4.0, 8.0, 9.0, 12.5, 16.0, 30.0, 32.0])
    s.axes_manager[-1].name = "E"
    src = save(s, o.path(tag + ".hspy"), (2, 5, 9))
    cs = reductions("E", "'E'", "float64", ops=("valuemax", "valuemin", "integrate_simpson", "integrate1D"))
    cs += [c for c in transforms("E", "'E'") if not c.name.startswith("diff")]
    o.suite(src, cs, tag=tag)
    job = oracle.write_job(o.path("points_diff.yaml"), src, {"d": {"op": "diff", "axis": "E"}})
    p = subprocess.run([HB, "validate", job], capture_output=True, text=True, env=o.env)
    check(p.returncode == 2 and "non-uniform" in p.stderr and "points_diff.yaml:" in p.stderr,
          f"[{tag}] diff along a non-uniform axis: validate exit {p.returncode} (want 2): {p.stderr.strip()}")

    # uint16: float64 derivatives and integrals, diff wraps
    tag = "si_u16"
    src = spectrum(o.path(tag + ".hspy"), "uint16", seed=33)
    cs = reductions("Energy loss", "'Energy loss'", "uint16", tag="E") + transforms(-1, "-1", tag="last")
    o.suite(src, cs, tag=tag)
    check(o.input_signal(src).diff(-1).data.max() > 60000, f"[{tag}] diff wraps below zero (uint16)")

    # an EELSSpectrum: a binned axis, integrate1D sums (uint64); derivative
    # and diff stay EELSSpectrum
    tag = "eels_u16"
    src = spectrum(o.path(tag + ".hspy"), "uint16", seed=34, signal_type="EELS")
    s = o.input_signal(src)
    check(type(s).__name__ == "EELSSpectrum" and s.axes_manager[-1].is_binned, f"[{tag}] HyperSpy wrote {s}, binned")
    cs = reductions("Energy loss", "'Energy loss'", "uint16", tag="E", binned=True,
                    ops=("integrate1D", "integrate_simpson", "valuemin"))
    cs += transforms("Energy loss", "'Energy loss'", tag="E")[::3]
    o.suite(src, cs, tag=tag)

    # a plain Signal1D whose axis is saved binned: integrate1D sums, float32
    tag = "binned_f32"
    src = spectrum(o.path(tag + ".hspy"), "float32", seed=35, binned_axis=True)
    s = o.input_signal(src)
    check(type(s).__name__ == "Signal1D" and s.axes_manager[-1].is_binned, f"[{tag}] HyperSpy wrote {s}, binned")
    cs = reductions(-1, "-1", "float32", binned=True, ops=("integrate1D",))
    cs += transforms(-1, "-1")[:1] + transforms(-1, "-1")[3:4]
    o.suite(src, cs, tag=tag)

    # 3 samples: Simpson's one panel keeps float32 (scipy); 2 samples: no panel (even='avg': trapezoids)
    for n in (3, 2):
        tag = f"short{n}_f32"
        src = spectrum(o.path(tag + ".hspy"), "float32", channels=n, seed=36, chunks=(2, 3, n))
        cs = [Case(f"simpson{n}", {"op": "integrate_simpson", "axis": -1}, "s.integrate_simpson(-1)",
                   rtol=F32_ROUNDING if n == 3 else 1e-12, upcast=n == 3, known=NAVSHAPED),
              Case(f"derivative{n}", {"op": "derivative", "axis": -1}, "s.derivative(-1)", exact=True),
              Case(f"diff{n}", {"op": "diff", "axis": -1}, "s.diff(-1)", exact=True)]
        o.suite(src, cs, tag=tag)

    # uint16 near the top of its range, 8 samples: scipy adds the end
    # trapezoids' two samples in uint16, which wraps; hyperbatch adds them
    # exactly, as HyperSpy does on the data as float64
    tag = "wrap_u16"
    x = np.random.default_rng(37).integers(40000, 65536, size=(5, 7, 8), dtype=np.uint16)
    s = hs.signals.Signal1D(x)
    oracle.calibrate(s, oracle.SPECTRUM_AXES)
    src = save(s, o.path(tag + ".hspy"), (2, 3, 8))
    s = o.input_signal(src)
    wrapped = s.integrate_simpson(-1).data
    s.change_dtype("float64")
    check(not np.allclose(wrapped, s.integrate_simpson(-1).data), f"[{tag}] scipy's uint16 end sums wrap")
    cs = [Case("simpson_exact", {"op": "integrate_simpson", "axis": -1}, "s.integrate_simpson(-1)", rtol=1e-12,
               upcast=True, known=NAVSHAPED)]
    o.suite(src, cs, tag=tag)


def test_scans(o):
    for dtype in ("float32", "uint16"):
        tag = f"scan_{dtype}"
        src = o.path(tag + ".hspy")
        subprocess.run([HB, "synth", "4dstem", src, "--shape", "5,6,24,21", "--chunks", "2,4,24,21", "--dtype",
                        dtype], check=True, capture_output=True, env=o.env)
        # kx: the last array axis (runs of 1); ky: samples 21 apart (one value per kx)
        cs = reductions("kx", "'kx'", dtype, known=())
        cs += reductions("ky", "'ky'", dtype, known=(), ops=("indexmin", "valuemax", "integrate_simpson"))
        cs += reductions(-1, "-1", dtype, known=(), tag="last", ops=("indexmax",))  # natural -1: ky
        cs += transforms("kx", "'kx'") + transforms("ky", "'ky'")
        o.suite(src, cs, tag=tag)


def test_resume(o):
    """A run stopped at a checkpoint on 2 ranks and resumed on 3 gives what
    an uninterrupted run on 1 gives, bit for bit."""
    src = o.path("resume.hspy")
    subprocess.run([HB, "synth", "4dstem", src, "--shape", "12,10,16,16", "--chunks", "2,2,16,16", "--dtype",
                    "float32"], check=True, capture_output=True, env=o.env)
    kernels = {op: {"op": op, "axis": "kx"} for op in REDUCTIONS + ("derivative", "diff")}
    kernels["diff2_ky"] = {"op": "diff", "axis": "ky", "order": 2}
    job = oracle.write_job(o.path("resume.yaml"), src, kernels, o.path("out/resume.hspy"),
                           run={"block": 1, "checkpoint": True})
    ref, out = o.path("out/resume_ref.hspy"), o.path("out/resume.hspy")
    p = oracle.run_hyperbatch(HB, job, 1, [f"output.file={ref}"], o.env)
    published = []  # after the stop: nothing under the output's name yet
    stop, resumed = oracle.stop_and_resume(HB, job, [(2, 4), (3, None)], env=o.env,
                                           after_each=lambda i: published.append(os.path.exists(out)))
    check(p.returncode == 0 and stop.returncode == 75 and not published[0],
          f"[resume] reference exit {p.returncode} (0), stopped exit {stop.returncode} (75)"
          + (f" {p.stderr.strip()[-400:]} {stop.stderr.strip()[-400:]}" if p.returncode or stop.returncode != 75
             else ""))
    same, summary = oracle.bit_identical(ref, out)
    check(resumed.returncode == 0 and same, f"[resume] resumed on 3 ranks: exit {resumed.returncode}; {summary}"
          + (f" {resumed.stderr.strip()[-400:]}" if resumed.returncode else ""))


def where_of(job_text, name, key):
    """LINE:COL of the value of `key` in the kernel named `name` (written in
    flow style by write_job)."""
    for i, line in enumerate(job_text.splitlines(), 1):
        if re.search(rf"\bname: {re.escape(name)}\b", line):
            return f"{i}:{line.index(key + ': ') + len(key) + 3}"
    raise AssertionError(f"no kernel {name} in the job")


def test_validate(o):
    src = o.path("si_u16.hspy")  # (7, 5 | 203): navigation x, y; signal 'Energy loss'
    scan = o.path("scan_uint16.hspy")  # (6, 5 | 21, 24)
    bad = [
        (src, "nav_name", {"op": "indexmax", "axis": "x"}, "axis",
         "axis 'x' is a navigation axis: indexmax over a navigation axis is not supported yet"),
        (src, "nav_index", {"op": "derivative", "axis": 1}, "axis",
         "axis 1 ('y') is a navigation axis: derivative over a navigation axis is not supported yet"),
        (src, "nav_diff", {"op": "diff", "axis": "y"}, "axis", "diff over a navigation axis is not supported yet"),
        (src, "unknown", {"op": "integrate1D", "axis": "energy"}, "axis", "no axis named 'energy'"),
        (scan, "index", {"op": "valuemax", "axis": 4}, "axis", "axis 4: the data has 4 axes"),
        (src, "diff_order", {"op": "diff", "axis": -1, "order": 203}, "order", "order 203: diff's order is 1 to 202 (axis -1 ('Energy loss') has 203"),
        (src, "diff_zero", {"op": "diff", "axis": -1, "order": 0}, "order", "order 0: diff's order is 1 to 202"),
        (src, "deriv_order", {"op": "derivative", "axis": -1, "order": 0}, "order",
         "order 0: the derivative's order is 1"),
        (src, "edge_order", {"op": "derivative", "axis": -1, "edge_order": 3}, "edge_order", "edge_order 3: 1 or 2"),
        (o.path("short2_f32.hspy"), "short", {"op": "derivative", "axis": "Energy loss", "edge_order": 2}, "axis",
         "axis 'Energy loss' has 2 samples: np.gradient with edge_order 2 needs at least 3"),
    ]
    for path, name, spec, key, message in bad:
        job = oracle.write_job(o.path(f"bad_{name}.yaml"), path, {name: spec}, o.path(f"out/bad_{name}.hspy"))
        with open(job) as f:
            text = f.read()
        p = subprocess.run([HB, "validate", job], capture_output=True, text=True, env=o.env, timeout=60)
        at = where_of(text, name, key)
        check(p.returncode == 2 and f"{job}:{at}: " in p.stderr and message in p.stderr,
              f"validate {spec}: exit {p.returncode} (2) at {at}, '{message}': {p.stderr.strip()}")
    job = oracle.write_job(o.path("good.yaml"), src, {"a": {"op": "valuemin", "axis": "Energy loss"},
                                                      "b": {"op": "diff", "axis": -1, "order": 202}},
                           o.path("out/good.hspy"))
    p = subprocess.run([HB, "validate", job], capture_output=True, text=True, env=o.env, timeout=60)
    check(p.returncode == 0, f"validate valuemin 'Energy loss' and diff order 202: exit {p.returncode}: "
          f"{p.stderr.strip()}")


def main():
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        o = oracle.Oracle(HB, tmp, env_extra={"HB_RESULT_CHUNK_BYTES": "16"})  # many small result chunks
        test_spectra(o)
        test_scans(o)
        test_resume(o)
        test_validate(o)
    print(f"test_axisops: {time.time() - t0:.1f} s")
    oracle.finish("test_axisops")


main()
