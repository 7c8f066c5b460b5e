"""The HyperSpy oracle (oracle.py) on the ops hyperbatch has today: sum,
mean, max and min over the navigation and over the signal axes, and
virtual_image, on inputs HyperSpy 1.7.3 writes itself (a float32 and a uint16
EELS-like spectrum image, one with NaNs and no compression, a uint16 stack of
9 images and a float32 3 x 5 scan of images, all with partial edge chunks),
at 1, 2 and 3 ranks.

Values, dtypes and axes are held to what HyperSpy's own methods return.
Where hyperbatch differs from HyperSpy today the field is listed in `known`:
it prints a KNOWN line (and the summary at the end) instead of failing:
- a reduction over the signal axes (and a virtual image) is stored with
  navigate=False, so it loads as a Signal1D/Signal2D (|7, 5), where HyperSpy
  returns a BaseSignal (7, 5|) with navigate=True ("class", "navigate");
- sum and mean of float32 data are float64 (HyperSpy keeps float32:
  numpy's sum and mean of float32 are float32); the values are held to
  HyperSpy's on float64 data (upcast) with a tight tolerance, and to its
  float32 result within float32 rounding;
- virtual_image is float64 where the HyperSpy expression (s.isig[...].sum,
  s.isig[x, y]) keeps the data's dtype (uint64 sum of uint16, uint16).

usage: /usr/bin/python3 test_oracle_existing.py path/to/hyperbatch"""
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle  # noqa: E402
from oracle import SIG, Case, hs  # noqa: E402

HB = os.path.abspath(sys.argv[1])
NAVSHAPED = ("class", "navigate")  # navigation-shaped results are stored with navigate=False


def reductions(dtype, f32):
    """sum/mean/max/min over both axis sets, with what differs from HyperSpy
    for this input dtype."""
    cases = []
    for op in ("sum", "mean", "max", "min"):
        widened = f32 and op in ("sum", "mean")  # float64 here, float32 in HyperSpy
        opts = {"rtol": 1e-12, "upcast": True} if widened else {}
        for axes, expr, known in (("signal", f"s.{op}(sig)", NAVSHAPED), ("navigation", f"s.{op}(nav)", ())):
            k = tuple(known) + (("dtype",) if widened else ())
            cases.append(Case(f"{op}_{axes[:3]}", {"op": op, "axes": axes}, expr, known=k, **opts))
            if widened:  # and within float32 rounding of HyperSpy's float32 result
                cases.append(Case(f"{op}_{axes[:3]}_f32ref", {"op": op, "axes": axes}, expr, rtol=2e-6,
                                  known=k))
    return cases


def test_spectrum_images(o):
    for dtype, kw in (("float32", {}), ("uint16", {}),
                      ("float32", {"nans": 3, "compression": None, "chunks": (3, 2, 50), "seed": 5})):
        tag = f"si_{dtype}" + ("_nan" if kw.get("nans") else "")
        src = o.spectrum_image(tag + ".hspy", dtype=dtype, **kw)
        s = o.input_signal(src)
        oracle.check(s.data.shape == (5, 7, 203) and s.data.dtype == np.dtype(dtype),
                     f"[{tag}] HyperSpy wrote {s} {s.data.dtype}")
        cases = reductions(dtype, dtype == "float32")
        o.suite(src, cases, tag=tag)


def test_stacks(o):
    tag = "stack_u16"
    src = o.image_stack(tag + ".hspy", dtype="uint16")  # (9 | 33, 27), chunks (4, 10, 16)
    s = o.input_signal(src)
    oracle.check(s.axes_manager.navigation_shape == (9,) and s.axes_manager.signal_shape == (33, 27),
                 f"[{tag}] HyperSpy wrote {s}")
    ky, kx = s.data.shape[1:]
    yy, xx = np.mgrid[0:ky, 0:kx]
    disc = ((xx - 16) ** 2 + (yy - 13) ** 2) <= 25
    ring = ((xx - 15.5) ** 2 + (yy - 12) ** 2 >= 9) & ((xx - 15.5) ** 2 + (yy - 12) ** 2 <= 49)
    weights = np.zeros((ky, kx))
    weights[3:9, 4:20] = 0.5
    weights[20, 5] = -2.0
    mask_file = o.path("weights.hspy")
    hs.signals.Signal2D(weights).save(mask_file, overwrite=True)
    vi = NAVSHAPED + ("dtype",)  # float64, HyperSpy's expressions keep the integer dtype
    cases = reductions("uint16", False) + [
        Case("rect", {"op": "virtual_image", "detector": {"shape": "rectangle", "x": [3, 11], "y": [5, 20]}},
             "s.isig[3:11, 5:20].sum(sig)", known=vi),
        # calibrated, at pixel centres (no rounding question): x 3..10, y 5..19 as above
        Case("rect_cal", {"op": "virtual_image", "detector": {"shape": "rectangle", "x": [-0.26, -0.1],
                                                              "y": [-0.16, 0.14], "units": "calibrated"}},
             "s.isig[-0.26:-0.1, -0.16:0.14].sum(sig)", known=vi),
        Case("disc", {"op": "virtual_image", "detector": {"shape": "circle", "center": [16, 13], "radius": 5}},
             lambda s: (s * disc).sum(SIG(s)), known=vi, lazy=True),
        Case("ring", {"op": "virtual_image", "detector": {"shape": "annulus", "center": [15.5, 12], "inner": 3,
                                                          "outer": 7}},
             lambda s: (s * ring).sum(SIG(s)), known=vi),
        Case("point", {"op": "virtual_image", "detector": {"shape": "point", "at": [25, 0]}}, "s.isig[25, 0]",
             known=vi),
        # float64 weights: HyperSpy's s * weights is float64 too
        Case("weighted", {"op": "virtual_image", "detector": {"shape": "mask", "file": mask_file,
                                                              "dataset": "/Experiments/__unnamed__/data"}},
             lambda s: (s * weights).sum(SIG(s)), known=NAVSHAPED),
    ]
    o.suite(src, cases, tag=tag)

    tag = "scan_f32"
    src = o.image_stack(tag + ".hspy", dtype="float32", nav_shape=(3, 5), chunks=(2, 2, 9, 11), seed=21)
    s = o.input_signal(src)
    oracle.check(s.axes_manager.navigation_shape == (5, 3), f"[{tag}] HyperSpy wrote {s}")
    cases = [
        Case("max_sig", {"op": "max", "axes": "signal"}, "s.max(sig)", known=NAVSHAPED),
        Case("min_nav", {"op": "min", "axes": "navigation"}, "s.min(nav)"),
        Case("sum_nav", {"op": "sum", "axes": "navigation"}, "s.sum(nav)", upcast=True, known=("dtype",)),
        Case("mean_sig", {"op": "mean", "axes": "signal"}, "s.mean(sig)", upcast=True,
             known=NAVSHAPED + ("dtype",)),
        Case("disc", {"op": "virtual_image", "detector": {"shape": "circle", "center": [16, 13], "radius": 5}},
             lambda s: (s * disc).sum(SIG(s)), upcast=True, known=vi),
    ]
    o.suite(src, cases, tag=tag)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        o = oracle.Oracle(HB, tmp, env_extra={"HB_RESULT_CHUNK_BYTES": "16"})  # many small result chunks
        test_spectrum_images(o)
        test_stacks(o)
    oracle.finish("test_oracle_existing")


main()
