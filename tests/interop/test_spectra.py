"""The spectra family against HyperSpy 1.7.3 (oracle.py): virtual_image's
energy windows on 1-D signals (and its calibrated rectangles on 2-D ones,
at half-pixel bounds) and remove_background, on inputs HyperSpy writes
itself (EELS-like spectrum images: float32 and uint16 Signal1D, a uint16
EELSSpectrum whose axis is binned, one with an all-zero pattern; a uint16
stack of images; partial edge chunks, gzip), at 1, 2 and 3 ranks; then
`hyperbatch validate` of bad parameters (exit 2, the job.yaml:LINE:COL of
the culprit).

Where hyperbatch differs from HyperSpy on purpose the field is in `known`:
- navigation-shaped results load as Signal1D/Signal2D (|7, 5) where
  HyperSpy's reductions give BaseSignal (7, 5|) ("class", "navigate"), as
  for every op today;
- a window's sum of float32 data is float64 (numpy's sum is float32; values
  held to HyperSpy's on float64 data, and to its float32 result within
  float32 rounding); a 2-D detector's sum is float64 (numpy: uint64);
- remove_background, PowerLaw, on data with an all-zero pattern: HyperSpy
  gives up on the whole dataset and subtracts nothing anywhere; hyperbatch
  leaves that pattern alone (r = A = 0) and subtracts every other pattern's
  background, which is checked against HyperSpy's result on the same data
  with that pattern made nonzero.

usage: /usr/bin/python3 test_spectra.py path/to/hyperbatch"""
import concurrent.futures
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle  # noqa: E402
from oracle import SIG, Case, check, hs  # noqa: E402

HB = os.path.abspath(sys.argv[1])
NAVSHAPED = ("class", "navigate")
# energy 250.25 + 0.5 i eV, i < 203: a carbon-K-like edge at 285 eV leaves a pre-edge range to fit; half-pixel
# values (260.0 is channel 19.5) test value2index's rounding
AXES = [("y", "nm", 2.5, -1.0), ("x", "nm", 1.5, 3.0), ("Energy loss", "eV", 0.5, 250.25)]
WINDOWS = [[260.0, 270.0], [351.0, 352.0], [100.0, 260.0], [284.5, 285.0]]  # channels 19-38, 201-202, 0-18, 68


def windows_of(wins):
    """HyperSpy's s.isig[a:b].sum(-1) of each window, stacked as the item axis."""
    def expect(s):
        return np.stack([s.isig[a:b].sum(SIG(s)).data for a, b in wins], axis=-1)
    expect.__name__ = f"stack of s.isig[a:b].sum(-1) for {wins}"
    return expect


_RB = {}


def rb(rng, kind="PowerLaw", part=None, **kw):
    """HyperSpy's remove_background(signal_range=rng, ...), fast; part: the
    result (None) or a parameter map as a signal ('A', 'r', 'offset'), or
    'coefficients' (a_0 .. a_n stacked per pattern)."""
    def expect(s):
        key = (s.data.tobytes(), s.data.dtype.str, type(s).__name__, s.axes_manager.signal_axes[0].is_binned,
               tuple(rng), kind, tuple(sorted(kw.items())))
        if key not in _RB:  # one HyperSpy call (0.5 s for PowerLaw) for the result and its parameters
            _RB[key] = s.remove_background(signal_range=tuple(rng), background_type=kind, fast=True,
                                           return_model=True, show_progressbar=False, **kw)
        r, m = _RB[key]
        if part is None:
            return r
        if part == "coefficients":
            return np.stack([p.map["values"] for p in m[0].parameters], axis=-1)  # a0, a1, ... (sorted by name)
        return getattr(m[0], part).as_signal()
    expect.__name__ = f"remove_background({rng}, {kind!r}{''.join(f', {k}={v!r}' for k, v in kw.items())})" + (
        f" {part}" if part else "")
    return expect


def background_cases(dtype, binned=False):
    """remove_background in its forms; float32 values are held to HyperSpy's
    on float64 data (hyperbatch estimates in float64; HyperSpy's Offset takes
    a float32 mean)."""
    f32 = dtype == "float32"
    opts = {"upcast": True} if f32 else {}
    tol = {"rtol": 1e-12, **opts}
    cases = [
        # halves of 25 channels: odd-N Simpson (unbinned) or sums (binned)
        Case("pl", {"op": "remove_background", "signal_range": [255.0, 280.0], "outputs": "both"},
             {"pl": rb([255.0, 280.0]), "pl_A": rb([255.0, 280.0], part="A"), "pl_r": rb([255.0, 280.0], part="r")},
             rtol=1e-11, lazy=True, **opts),
        # (i1 + i2) odd: i2 - 1, halves of 24 channels (scipy's even='avg'); zero_fill before 255.3 eV
        Case("pl_even", {"op": "remove_background", "signal_range": [255.3, 279.6], "zero_fill": True,
                         "background_type": "Power law"},
             rb([255.3, 279.6], zero_fill=True), rtol=1e-11, **opts),
        # a start before the axis is its first channel
        Case("pl_wide", {"op": "remove_background", "signal_range": [200.0, 270.0]}, rb([200.0, 270.0]), **tol),
        Case("poly", {"op": "remove_background", "signal_range": [255.0, 280.0], "background_type": "Polynomial",
                      "outputs": "both"},
             {"poly": rb([255.0, 280.0], "Polynomial"),
              "poly_coefficients": rb([255.0, 280.0], "Polynomial", part="coefficients")}, rtol=1e-9, **opts),
        # an end past the axis is its last channel, which polyfit's [i1, i2) then leaves out
        Case("poly1", {"op": "remove_background", "signal_range": [300.0, 400.0], "background_type": "polynomial",
                       "polynomial_order": 1, "outputs": "parameters"},
             {"poly1_coefficients": rb([300.0, 400.0], "Polynomial", polynomial_order=1, part="coefficients")},
             rtol=1e-9, **opts),
        Case("poly3", {"op": "remove_background", "signal_range": [252.1, 283.3], "background_type": "Polynomial",
                       "polynomial_order": 3, "zero_fill": True},
             rb([252.1, 283.3], "Polynomial", polynomial_order=3, zero_fill=True), rtol=1e-9, **opts),
        Case("off", {"op": "remove_background", "signal_range": [255.0, 280.0], "background_type": "Offset",
                     "outputs": "both"},
             {"off": rb([255.0, 280.0], "Offset"), "off_offset": rb([255.0, 280.0], "Offset", part="offset")},
             **tol),
    ]
    if binned:  # halves of one channel: a sum of one sample (Simpson's would be 0: refused, below)
        cases.append(Case("pl_narrow", {"op": "remove_background", "signal_range": [255.0, 256.0]},
                          rb([255.0, 256.0]), rtol=1e-11, **opts))
    return cases


def window_cases(dtype, mask_file):
    f32 = dtype == "float32"
    known = NAVSHAPED + (("dtype",) if f32 else ())
    opts = {"upcast": True, "rtol": 1e-12} if f32 else {}
    cases = [
        # 260.0 is channel 19.5 -> 19, 270.0 is 39.5 -> 39 (stop exclusive): 19..38
        Case("win", {"op": "virtual_image", "detector": {"shape": "rectangle", "x": [260.0, 270.0],
                                                         "units": "calibrated"}},
             "s.isig[260.0:270.0].sum(sig)", known=known, **opts),
        Case("win_px", {"op": "virtual_image", "detector": {"shape": "rectangle", "x": [19, 39]}},
             "s.isig[19:39].sum(sig)", known=known, **opts),
        # several at once: one array per pattern; a stop past the axis, a start before it, one channel
        Case("wins", {"op": "virtual_image", "windows": WINDOWS, "units": "calibrated"}, windows_of(WINDOWS),
             known=known[2:], lazy=True, **opts),
        Case("wins_px", {"op": "virtual_image", "windows": [[0, 5], [200, 203]]}, windows_of([[0, 5], [200, 203]]),
             known=known[2:], **opts),
        # weights over the channels: float64, as HyperSpy's s * w
        Case("wmask", {"op": "virtual_image", "detector": {"shape": "mask", "file": mask_file,
                                                           "dataset": "/Experiments/__unnamed__/data"}},
             lambda s: (s * hs.load(mask_file).data).sum(SIG(s)), known=NAVSHAPED, rtol=1e-12),
    ]
    if f32:  # and within float32 rounding of HyperSpy's float32 sums
        cases.append(Case("win_f32ref", cases[0].kernel, "s.isig[260.0:270.0].sum(sig)", rtol=2e-6, known=known))
    return cases


def check_window_axes(o, runs, result, nwin):
    """The windows' result: the input's navigation axes (navigate=True) and an
    item axis 'window' of nwin."""
    s = o.input_signal(runs.src)
    for n in runs.ranks:
        r = runs.signals(n)[result]
        nav = [(a.name, a.units, a.scale, a.offset, a.size, a.navigate) for a in r.axes_manager.navigation_axes]
        want = [(a.name, a.units, a.scale, a.offset, a.size, True) for a in s.axes_manager.navigation_axes]
        item = r.axes_manager.signal_axes
        check(nav == want and len(item) == 1 and item[0].name == "window" and item[0].size == nwin,
              f"[{runs.tag}] {result} np={n}: {r} carries the scan's axes {nav} and a 'window' axis of {nwin}")


def write_eels(path, dtype="uint16", seed=18, zero=None, signal_type="", binned_axis=False):
    """An EELS-like spectrum image saved by HyperSpy, optionally as an
    EELSSpectrum (binned axis) or with its axis set binned by hand, and with
    the pattern `zero` all zeros."""
    rng = np.random.default_rng(seed)
    energy = AXES[-1][3] + AXES[-1][2] * np.arange(203)
    x = oracle._cast(oracle.eels_like(rng, (5, 7), energy), dtype)
    if zero is not None:
        x[zero] = 0
    s = hs.signals.Signal1D(x)
    if signal_type:
        s.set_signal_type(signal_type)
    oracle.calibrate(s, AXES)
    if binned_axis:
        s.axes_manager.signal_axes[0].is_binned = True
    s.metadata.General.title = "eels_si"
    return oracle._save(s, path, (2, 3, 64), "gzip")


def test_spectrum_images(o, mask_file):
    for dtype in ("float32", "uint16"):
        tag = f"si_{dtype}"
        src = o.spectrum_image(tag + ".hspy", dtype=dtype, axes=AXES)
        s = o.input_signal(src)
        check(s.data.shape == (5, 7, 203) and not s.axes_manager.signal_axes[0].is_binned,
              f"[{tag}] HyperSpy wrote {s} {s.data.dtype}, unbinned")
        cases = window_cases(dtype, mask_file) + background_cases(dtype)
        runs = o.run(src, {c.name: c.kernel for c in cases}, tag=tag)
        for c in cases:
            for result, expect in c.results():
                o.compare(runs, result, expect, **c.opts)
        check_window_axes(o, runs, "wins", len(WINDOWS))


def test_binned(o):
    """An EELSSpectrum: integrate1D sums, the backgrounds scale with the
    channel width, the result loads as an EELSSpectrum; one virtual_image
    kernel alone (not fused).  What makes the axis binned is HyperSpy's
    is_binned as it loads the file: a Signal1D saved with is_binned set is
    binned too, and signal_type "EDS" (no class of its own in 1.7.3, so a
    Signal1D) is not."""
    tag = "eels_u16"
    src = write_eels(o.path(tag + ".hspy"), signal_type="EELS")
    s = o.input_signal(src)
    check(type(s).__name__ == "EELSSpectrum" and s.axes_manager.signal_axes[0].is_binned,
          f"[{tag}] HyperSpy wrote {s}, binned")
    cases = background_cases("uint16", binned=True) + [
        Case("win", {"op": "virtual_image", "windows": WINDOWS, "units": "calibrated"}, windows_of(WINDOWS))]
    o.suite(src, cases, tag=tag)
    for tag, kw, binned in (("binned_axis_u16", {"binned_axis": True}, True),
                            ("eds_u16", {"signal_type": "EDS"}, False)):
        src = write_eels(o.path(tag + ".hspy"), **kw)
        s = o.input_signal(src)
        check(type(s).__name__ == "Signal1D" and s.axes_manager.signal_axes[0].is_binned == binned,
              f"[{tag}] HyperSpy loads {s} with is_binned {s.axes_manager.signal_axes[0].is_binned}, want {binned}")
        # the background's sums and channel-width scale follow is_binned; the two-area PowerLaw and Offset
        o.suite(src, [c for c in background_cases("uint16", binned=binned) if c.name in ("pl", "off")], tag=tag)


def test_points(o):
    """A non-uniform energy axis (HyperSpy's DataAxis): the range's channels
    are the closest points, the PowerLaw halves are integrated over the
    points, and on a binned axis each channel's background scales with
    np.gradient of the points (Polynomial and Offset divide by its mean)."""
    energy = 250.0 + np.cumsum(np.random.default_rng(24).uniform(0.3, 0.7, 203))
    for binned in (False, True):
        tag = "points_binned_f64" if binned else "points_f64"
        s = hs.signals.Signal1D(oracle.eels_like(np.random.default_rng(25), (3, 4), energy))
        s.axes_manager[-1].convert_to_non_uniform_axis()
        s.axes_manager[-1].axis = energy
        s.axes_manager[-1].name, s.axes_manager[-1].units = "Energy loss", "eV"
        s.axes_manager[-1].is_binned = binned
        src = o.path(tag + ".hspy")
        s.save(src, overwrite=True, chunks=(2, 2, 64))
        rng = [260.0, 290.0]
        cases = [
            Case("pl", {"op": "remove_background", "signal_range": rng, "outputs": "both"},
                 {"pl": rb(rng), "pl_A": rb(rng, part="A"), "pl_r": rb(rng, part="r")}, rtol=1e-11),
            Case("off", {"op": "remove_background", "signal_range": rng, "background_type": "Offset",
                         "outputs": "both"},
                 {"off": rb(rng, "Offset"), "off_offset": rb(rng, "Offset", part="offset")}, rtol=1e-12),
            Case("poly", {"op": "remove_background", "signal_range": rng, "background_type": "Polynomial",
                          "outputs": "both"},
                 {"poly": rb(rng, "Polynomial"), "poly_coefficients": rb(rng, "Polynomial", part="coefficients")},
                 rtol=1e-9),
        ]
        o.suite(src, cases, tag=tag)


def test_binned_times(o):
    """A binned scan of EDS or EELS data: HyperSpy's rebin multiplies the
    acquisition times by the positions in a bin (EDS real_time and
    live_time, EELS dwell_time and exposure); values and the other results'
    metadata stay as they are."""
    times = {"EDS_TEM": {"Acquisition_instrument.TEM.Detector.EDS.live_time": 2.0,
                         "Acquisition_instrument.TEM.Detector.EDS.real_time": 2.5},
             "EDS_SEM": {"Acquisition_instrument.SEM.Detector.EDS.live_time": 0.75},
             "EELS": {"Acquisition_instrument.TEM.Detector.EELS.dwell_time": 0.5,
                      "Acquisition_instrument.TEM.Detector.EELS.exposure": 0.25}}
    for signal_type, items in times.items():
        tag = f"times_{signal_type.lower()}"
        s = hs.signals.Signal1D(np.random.default_rng(23).integers(0, 100, size=(6, 4, 16)).astype(np.uint16))
        s.set_signal_type(signal_type)
        for key, value in items.items():
            s.metadata.set_item(key, value)
        src = o.path(tag + ".hspy")
        s.save(src, overwrite=True, chunks=(2, 2, 16))
        runs = o.run(src, {"bin": {"op": "rebin", "scale": [2, 3, 1]}, "total": {"op": "sum", "axes": "signal"}},
                     tag=tag, ranks=(1, 2))
        want = hs.load(src).rebin(scale=(2, 3, 1))
        for n in runs.ranks:
            sigs = runs.signals(n)
            got, total = sigs.get("bin"), sigs.get("total")
            for key in items:
                g = got.metadata.get_item(key) if got is not None else None
                check(g == want.metadata.get_item(key) and total is not None and
                      total.metadata.get_item(key) == items[key],
                      f"[{tag}] np={n}: {key} {g} in the binned scan, HyperSpy's {want.metadata.get_item(key)}; "
                      f"{items[key]} kept in the other result")
            check(got is not None and np.array_equal(got.data, want.data), f"[{tag}] np={n}: binned values")


def test_zero_pattern(o):
    """HyperSpy's PowerLaw gives up on the whole dataset when one pattern's
    half-range integral is 0 (hyperspy-semantics.md, section 8): hyperbatch
    leaves that pattern alone, the others get their background."""
    tag = "zero_u16"
    zero = (2, 3)
    src = write_eels(o.path(tag + ".hspy"), seed=19, zero=zero)
    rng = [255.0, 280.0]

    def per_pattern(part=None):
        def expect(s):
            t = s.deepcopy()
            t.data[zero] = 1  # any nonzero pattern: HyperSpy then estimates every other one
            r = rb(rng, part=part)(t).deepcopy()  # not the cached one
            r.data[zero] = 0  # r = A = 0 there; its subtracted spectrum is its data, zeros
            return r
        expect.__name__ = f"HyperSpy per pattern (pattern {zero} set to 1, then its result to 0)" + (
            f" {part}" if part else "")
        return expect

    kernel = {"op": "remove_background", "signal_range": rng, "outputs": "both"}
    runs = o.run(src, {"pl": kernel}, tag=tag)
    for result, part in (("pl", None), ("pl_A", "A"), ("pl_r", "r")):
        o.compare(runs, result, per_pattern(part), rtol=1e-11)
        o.compare(runs, result, rb(rng, part=part), rtol=1e-11, known=("values",))
    got = runs.signals(runs.ranks[0])["pl"].data
    check(np.all(got[zero] == 0) and np.all(got[0, 0] != o.input_signal(src).data[0, 0]),
          f"[{tag}] pattern {zero} is left as it is (zeros), the others have their background removed")


def test_stack(o):
    """Calibrated rectangles on a 2-D signal convert as isig does (the
    rounding the notes list as a mismatch before): at half pixels, on both
    sides of zero, and clipped at the ends."""
    tag = "stack_u16"
    src = o.image_stack(tag + ".hspy", dtype="uint16")  # (9 | 33, 27); kx -0.32 + 0.02 i, ky -0.26 + 0.02 j
    vi = NAVSHAPED + ("dtype",)
    cases = [
        # x: -0.15 is 8.5 -> 9 (a negative value rounds half away from zero), 0.01 is 16.5 -> 16;
        # y: -0.21 is 2.5 -> 3, 0.05 is 15.5 -> 15
        Case("rect_half", {"op": "virtual_image", "detector": {"shape": "rectangle", "x": [-0.15, 0.01],
                                                               "y": [-0.21, 0.05], "units": "calibrated"}},
             "s.isig[-0.15:0.01, -0.21:0.05].sum(sig)", known=vi),
        Case("rect_clip", {"op": "virtual_image", "detector": {"shape": "rectangle", "x": [-1.0, 0.5],
                                                               "y": [0.2, 1.0], "units": "calibrated"}},
             "s.isig[-1.0:0.5, 0.2:1.0].sum(sig)", known=vi),
        # a calibrated point is the sample s.isig[x, y] takes: 0.01 is 16.5 -> 16, 0.05 is 15.5 -> 15
        # (floor(v + 0.5) gave 17 and 16 before); -0.15 is 8.5 -> 9 away from zero
        Case("pt_half", {"op": "virtual_image", "detector": {"shape": "point", "at": [0.01, 0.05],
                                                             "units": "calibrated"}},
             "s.isig[0.01, 0.05]", known=vi),
        Case("pt_neg", {"op": "virtual_image", "detector": {"shape": "point", "at": [-0.15, -0.21],
                                                            "units": "calibrated"}},
             "s.isig[-0.15, -0.21]", known=vi),
    ]
    o.suite(src, cases, tag=tag)


# ------------------------------------------------------------- bad parameters

def bad_jobs(si, stack):
    """(input, kernel lines, the text whose position the error names (or
    (text on its line, the text)), a fragment of the message); each kernel's
    lines are indented under `kernels: - name: k`."""
    rb_ = "op: remove_background"
    return [
        (si, [rb_, "signal_range: [255.0, 280.0]", "fast: false"], "false", "not supported yet"),
        (si, [rb_, "signal_range: [255.0, 280.0]", "background_type: Gaussian"], "Gaussian", "not supported yet"),
        (si, [rb_, "signal_range: [255.0, 280.0]", "background_type: PowerLow"], "PowerLow", "is unknown"),
        (si, [rb_, "signal_range: [255.0, 280.0]", "background_type: Polynomial", "polynomial_order: 0"],
         ("polynomial_order", "0"),
         "polynomial_order must be 1 to 16"),
        (si, [rb_, "signal_range: [255.0, 280.0]", "polynomial_order: 3"], "polynomial_order",
         "applies to background_type Polynomial only"),
        (si, [rb_, "signal_range: [280.0, 255.0]"], "[280.0, 255.0]", "must run in the axis' direction"),
        (si, [rb_, "signal_range: [400.0, 500.0]"], "[400.0, 500.0]", "is outside the signal axis"),
        (si, [rb_, "signal_range: [255.0, 255.4]"], "[255.0, 255.4]", "gives halves of 1 channel"),
        (si, [rb_, "signal_range: [255.0, 256.0]", "background_type: Polynomial", "polynomial_order: 3"],
         "[255.0, 256.0]", "covers 2 channels"),
        (si, [rb_, "signal_rnage: [255.0, 280.0]"], "signal_rnage", "did you mean 'signal_range'"),
        (stack, [rb_, "signal_range: [0.0, 0.1]"], "name: k", "needs a 1-D signal"),
        (si, ["op: virtual_image", "windows: [[260.0, 270.0], [400.0, 410.0]]", "units: calibrated"],
         "[400.0, 410.0]", "window 2 starts at 400 eV, above axis 'Energy loss'"),
        (si, ["op: virtual_image", "windows: [[260.0, 270.0], [100.0, 200.0]]", "units: calibrated"],
         "[100.0, 200.0]", "window 2 ends at 200 eV, below axis"),
        (si, ["op: virtual_image", "windows: [[270.0, 260.0]]", "units: calibrated"], "[270.0, 260.0]",
         "selects no sample"),
        (si, ["op: virtual_image", "windows: [[1, 2, 3]]"], "[1, 2, 3]", "must be a pair"),
        (si, ["op: virtual_image", "windows: [[0, 204]]"], "[0, 204]", "must satisfy 0 <= x0 < x1 <= 203"),
        (si, ["op: virtual_image", "windows: []"], "[]", "windows is empty"),
        (si, ["op: virtual_image", "windows: [[0, 5]]", "detector: {shape: rectangle, x: [0, 5]}"], "windows",
         "either a detector or windows"),
        (si, ["op: virtual_image", "detector: {shape: rectangle, x: [0, 5]}", "units: calibrated"], "units",
         "units applies to windows"),
        (si, ["op: virtual_image", "detector: {shape: rectangle, x: [100.0, 200.0], units: calibrated}"],
         "[100.0, 200.0]", "x ends at 200 eV, below axis"),
        (si, ["op: virtual_image", "detector: {shape: circle, center: [5, 5], radius: 2}"], "detector",
         "needs a 2-D signal"),
        (si, ["op: virtual_image"], "name: k", "needs a detector (or windows)"),
        (stack, ["op: virtual_image", "windows: [[0, 5]]"], "windows", "windows need a 1-D signal"),
        (stack, ["op: virtual_image", "detector: {shape: rectangle, x: [0.5, 1.0], y: [0.0, 0.1], "
                 "units: calibrated}"], "[0.5, 1.0]", "x starts at 0.5 1/nm, above axis 'kx'"),
    ]


def test_validate(o, si, stack):
    """Each bad job alone, 12 at a time (a validate is mostly MPI's start-up:
    waiting, not computing)."""
    jobs = []
    for i, (src, lines, at, msg) in enumerate(bad_jobs(si, stack)):
        text = (f"version: 1\ninput: {{file: '{src}'}}\noutput: {{file: '{o.path('bad.hspy')}', overwrite: true}}\n"
                "kernels:\n  - name: k\n" + "".join(f"    {ln}\n" for ln in lines))
        job = o.path(f"bad_{i}.yaml")
        with open(job, "w") as f:
            f.write(text)
        # the position of `at` in the kernel's lines: line and column, 1-based
        near, at = at if isinstance(at, tuple) else (at, at)
        line = next(n for n, ln in enumerate(text.splitlines(), 1) if near in ln and n >= 5)
        ln = text.splitlines()[line - 1]
        col = ln.index(at, ln.index(near)) + 1
        jobs.append((job, f"bad_{i}.yaml:{line}:{col}", msg, " / ".join(lines[1:]) or lines[0]))
    def validate(j):
        p = subprocess.run([HB, "validate", j[0]], capture_output=True, text=True, env=o.env, timeout=120)
        return p.returncode, p.stderr.strip()

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        for (job, where, msg, what), (rc, err) in zip(jobs, pool.map(validate, jobs)):
            check(rc == 2 and f"{where}:" in err and msg in err,
                  f"validate {what}: exit {rc} (want 2), at {where}, '{msg}': {err}")


def main():
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        o = oracle.Oracle(HB, tmp, env_extra={"HB_RESULT_CHUNK_BYTES": "16"})  # many small result chunks
        weights = np.zeros(203)
        weights[10:30] = 0.5
        weights[150] = -2.0
        mask_file = o.path("channel_weights.hspy")
        hs.signals.Signal1D(weights).save(mask_file, overwrite=True)
        times = []
        for name, step in (("spectrum images", lambda: test_spectrum_images(o, mask_file)),
                           ("binned", lambda: test_binned(o)), ("binned times", lambda: test_binned_times(o)),
                           ("points", lambda: test_points(o)),
                           ("zero pattern", lambda: test_zero_pattern(o)),
                           ("stack", lambda: test_stack(o)),
                           ("validate", lambda: test_validate(o, o.path("si_float32.hspy"), o.path("stack_u16.hspy")))):
            t = time.time()
            step()
            times.append(f"{name} {time.time() - t:.1f} s")
    print(f"test_spectra: {time.time() - t0:.1f} s ({', '.join(times)})")
    oracle.finish("test_spectra")


main()
