"""crop, inav, isig, rebin and change_dtype against HyperSpy 1.7.3,
written as full-size results and chained in `preprocess`: on a uint16 and a
float32 spectrum image (7, 5 | 203) and a uint16 image stack (9 | 33, 27)
that HyperSpy writes (odd shapes, partial edge chunks, gzip), at 1, 2 and 3
ranks, values, dtype and every axis compared with HyperSpy's isig, inav,
crop, rebin and change_dtype on the same file; rebin with navigation
factors (a binned scan), crop of a navigation axis and inav (cropped,
thinned and sliced scans) on 4-D uint16 and float32 scans of 13 x 10
positions; change_dtype from each type to each on values numpy converts
awkwardly (exactly); rebin's dtype on each of HyperSpy's paths; integer
crop bounds past the axis; calibrated bounds on negative-scale axes; the
refusals at `validate`; and the bytes a job of such results reads (only
the chunks they take).

Where hyperbatch differs from HyperSpy on purpose the field is in `known`:
one value per pattern loads as a Signal1D/2D (|9) ("class", "navigate"), as
for every navigation-shaped result.

usage: /usr/bin/python3 test_transforms.py path/to/hyperbatch [section ...]"""
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle  # noqa: E402
from oracle import Case, hs  # noqa: E402

HB = os.path.abspath(sys.argv[1])
ONLY = sys.argv[2:]  # section names to run (default all), for work on one of them
NAVSHAPED = ("class", "navigate")


def sliced(name, op, text):
    """A Case of inav or isig with `slices: text`, against HyperSpy's
    s.inav[text] or s.isig[text]."""
    return Case(name, {"op": op, "slices": text}, f"s.{op}[{text.strip('[]')}]")


def changed(dtype):
    def f(s):
        s.change_dtype(dtype)
        return s
    f.__name__ = f"s.change_dtype({dtype!r})"
    return f


# Values numpy's astype converts awkwardly: NaN, infinities, halves, the
# edges of every integer type, 2^63..2^64, and integers float32 rounds.
# 52 floats, two rows: numpy's float -> uint32 loop works in fours, and its
# scalar tail (size % 4 elements) answers otherwise out of range
# (docs/hyperspy-semantics.md, 6): none here
AWKWARD_FLOATS = [
    float("nan"), float("inf"), -float("inf"), -0.0, 0.5, -0.5, 1.5, -1.5, 2.5, 127.5, 128.0, -128.5, -129.0, 255.5,
    256.0, 32767.5, 32768.0, -32768.5, -32769.0, 65535.5, 65536.0, 2147483647.5, 2147483648.0, -2147483648.5,
    -2147483649.0, 3e9, -3e9, 4294967295.5, 4294967296.0, 4294967301.0, 1.5e10, -1.5e10, 2.0 ** 53 + 1,
    9.223372036854775e18, 2.0 ** 63, 2.0 ** 63 + 2048, 1e19, 1.8e19, 1.844674407370955e19, 2.0 ** 64, 1e20, -1e19,
    -2.0 ** 63, -2.0 ** 63 - 2048, 3.4028234663852886e38, 3.4028235677973366e38, 1e300, 1e-40, 1e-310,
    1.0000000596046448, 16777217.0, -4294967296.0]
AWKWARD_INTS = [
    0, 1, -1, 127, 128, -128, -129, 255, 256, 32767, 32768, -32768, -32769, 65535, 65536, 2 ** 31 - 1, 2 ** 31, -2 ** 31,
    -2 ** 31 - 1, 2 ** 32 - 1, 2 ** 32 + 5, 16777217, 2 ** 53 + 1, 2 ** 60 + 2 ** 36 + 1, -(2 ** 60 + 2 ** 36 + 1),
    2 ** 62 + 2 ** 38 + 3, 2 ** 63 - 1, -2 ** 63, 2 ** 63, 2 ** 63 + 2 ** 39 + 1, 2 ** 64 - 1, 2 ** 64 - 2 ** 39 - 1]
REAL = ("uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64", "float32", "float64")


def awkward_row(dtype):
    """The awkward values a dtype holds (floats past float32 become inf)."""
    dt = oracle.np.dtype(dtype)
    if dt.kind in "fc":
        with oracle.np.errstate(all="ignore"):
            x = oracle.np.array(AWKWARD_FLOATS, dtype=dt)
        if dt.kind == "c":  # the reversed values as imaginary parts
            x.imag = x.real[::-1]
        return x
    info = oracle.np.iinfo(dt)
    return oracle.np.array([v for v in AWKWARD_INTS if info.min <= v <= info.max], dtype=dt)


def dtypes(o):
    """change_dtype from every type hyperbatch reads to every type it
    writes, on the awkward values (and their reverse, a second position),
    exactly as numpy's astype: one C cast from the source type to the
    destination type."""
    for src_dtype in REAL + ("complex64", "complex128"):
        row = awkward_row(src_dtype)
        s = (hs.signals.ComplexSignal1D if row.dtype.kind == "c" else hs.signals.Signal1D)(
            oracle.np.stack([row, row[::-1]]))
        oracle.calibrate(s, [("x", "nm", 1.0, 0.0), ("E", "eV", 0.5, 2.0)])
        src = oracle._save(s, o.path(f"awkward_{src_dtype}.hspy"), (1, row.size), "gzip")
        to = ("complex64", "complex128") if row.dtype.kind == "c" else REAL + ("complex64", "complex128")
        o.suite(src, [Case(f"as_{t}", {"op": "change_dtype", "dtype": t}, changed(t), exact=True) for t in to],
                tag=f"dtype_{src_dtype}")


def spectrum_images(o):
    for dtype in ("uint16", "float32"):
        tag = f"si_{dtype}"
        src = o.spectrum_image(tag + ".hspy", dtype=dtype, seed=31)  # (7, 5 | 203): E offset 280.25, scale 0.5
        f32 = dtype == "float32"
        cs = [
            Case("crop_idx", {"op": "crop", "axis": "Energy loss", "start": 20, "end": 150}, "s.isig[20:150]"),
            Case("crop_neg", {"op": "crop", "axis": -1, "start": -60}, "s.isig[-60:]"),
            # calibrated, at half-channel values: HyperSpy's value2index rounding
            Case("crop_val", {"op": "crop", "axis": "Energy loss", "start": 290.0, "end": 300.0},
                 "s.isig[290.0:300.0]"),
            # isig's slices with a step: in samples, or a distance (1.5 eV: 3 channels)
            Case("crop_step", {"op": "crop", "axis": "Energy loss", "start": 3, "end": 200, "step": 4},
                 "s.isig[3:200:4]"),
            Case("crop_step_val", {"op": "crop", "axis": -1, "start": 290.0, "step": 1.5}, "s.isig[290.0::1.5]"),
            sliced("isig_1d", "isig", "290.0:330.0:1.5"),
            sliced("inav_si", "inav", "1:6:2, 1:4"),
            sliced("inav_si_row", "inav", ":, 2"),
            Case("bin7", {"op": "rebin", "scale": [1, 1, 7]}, "s.rebin(scale=(1, 1, 7))", rtol=1e-6 if f32 else 1e-12),
            Case("shape29", {"op": "rebin", "new_shape": [7, 5, 29]}, "s.rebin(new_shape=(7, 5, 29))",
                 rtol=1e-6 if f32 else 1e-12),
            # 203 channels by 4: HyperSpy's linear binning, float64 for integers
            Case("bin4", {"op": "rebin", "scale": [1, 1, 4]}, "s.rebin(scale=(1, 1, 4))",
                 rtol=1e-6 if f32 else 1e-12),
            Case("as_f64", {"op": "change_dtype", "dtype": "float64"}, changed("float64")),
        ]
        if not f32:  # 'same' with float32 is a HyperSpy bug (docs/hyperspy-semantics.md, 6)
            cs.append(Case("bin7_same", {"op": "rebin", "scale": [1, 1, 7], "dtype": "same"},
                           "s.rebin(scale=(1, 1, 7), dtype='same')"))
            cs.append(Case("as_u8", {"op": "change_dtype", "dtype": "uint8"}, changed("uint8")))
        o.suite(src, cs, tag=tag)
        # rebin's dtype on each of HyperSpy's paths (a suite of its own: a refusal stops only these)
        o.suite(src, [
            # every factor 1: array_rebin returns a copy, of the data's type whatever dtype= says
            Case("bin1", {"op": "rebin", "scale": [1, 1, 1]}, "s.rebin(scale=(1, 1, 1))"),
            Case("shape_same", {"op": "rebin", "new_shape": [7, 5, 203], "dtype": "float64"},
                 "s.rebin(new_shape=(7, 5, 203), dtype=np.float64)"),
            # numpy's sum(dtype=int32) casts each value to int32, then sums
            Case("bin7_i32", {"op": "rebin", "scale": [1, 1, 7], "dtype": "int32"},
                 "s.rebin(scale=(1, 1, 7), dtype=np.int32)"),
        ], tag=f"rebin_{dtype}")
        o.suite(src, [
            # _linear_bin: float data as the float dtype asked (summed in it),
            # integers float64 whatever float dtype is asked
            Case("bin4_f64", {"op": "rebin", "scale": [1, 1, 4], "dtype": "float64"},
                 "s.rebin(scale=(1, 1, 4), dtype=np.float64)"),
            Case("bin4_f32", {"op": "rebin", "scale": [1, 1, 4], "dtype": "float32"},
                 "s.rebin(scale=(1, 1, 4), dtype=np.float32)", rtol=1e-6 if f32 else 1e-12),
        ], tag=f"linear_{dtype}")
    # crop's integer bounds: an end past the axis clips (numpy's slicing;
    # HyperSpy's crop raises for a start outside a uniform axis, below)
    o.suite(o.path("si_uint16.hspy"), [
        Case("crop_past", {"op": "crop", "axis": "Energy loss", "start": 150, "end": 250},
             cropped_scan("Energy loss", 150, 250)),
        Case("crop_neg_past", {"op": "crop", "axis": -1, "start": -30, "end": 900}, cropped_scan(-1, -30, 900)),
        Case("crop_nav_past", {"op": "crop", "axis": "x", "start": 2, "end": 15}, cropped_scan("x", 2, 15)),
    ], tag="crop_past")
    # what _linear_bin raises on: an integer dtype, 'same' for integers,
    # float64 to float32 (astype(casting="safe"))
    f64 = o.spectrum_image("si_float64.hspy", dtype="float64", nav_shape=(2, 3), channels=50, chunks=(1, 3, 50))
    for name, src, dtype, words in (("lin_int", "si_uint16.hspy", "int32", "dtype int32 is refused"),
                                    ("lin_same", "si_uint16.hspy", "same", "dtype same is refused"),
                                    ("lin_narrow", f64, "float32", "float64 data cannot become float32")):
        job = oracle.write_job(o.path(name + ".yaml"), o.path(src),
                               {"r": {"op": "rebin", "scale": [1, 1, 4], "dtype": dtype}}, o.path(name + ".hspy"))
        p = subprocess.run([HB, "validate", job], capture_output=True, text=True)
        oracle.check(p.returncode == 2 and words in p.stderr and f"{name}.yaml:" in p.stderr,
                     f"rebin by 4 of 203 or 50 samples, dtype {dtype}: exit 2 naming the place "
                     f"({p.returncode}: {p.stderr.strip()})")


def stacks(o):
    tag = "stack"
    src = o.image_stack(tag + ".hspy", dtype="uint16", nav_shape=(9,), sig_shape=(27, 33), seed=33,
                        chunks=(4, 10, 16))
    o.suite(src, [
        Case("bin33", {"op": "rebin", "scale": [1, 3, 3]}, "s.rebin(scale=(1, 3, 3))"),
        Case("crop_kx", {"op": "crop", "axis": "kx", "start": 5, "end": 30}, "s.isig[5:30, :]"),
        Case("crop_ky_val", {"op": "crop", "axis": "ky", "start": -0.2, "end": 0.1}, "s.isig[:, -0.2:0.1]"),
        Case("thin_kx", {"op": "crop", "axis": "kx", "start": 1, "step": 3}, "s.isig[1::3, :]"),
        # HyperSpy's isig[...] of both axes at once: a box, steps, values and a distance
        sliced("isig_box", "isig", "5:30, 3:20"),
        sliced("isig_step", "isig", "1::3, ::2"),
        sliced("isig_val", "isig", "[-0.2:0.3, -0.1:0.2:0.04]"),
        sliced("isig_one", "isig", "-7:"),
        sliced("isig_clip", "isig", "-5.0:0.1, :99"),
        sliced("inav_stack", "inav", "0.2:0.75:2"),
        # a single index drops its axis: a line through each pattern
        sliced("isig_line", "isig", "4:30, 12"),
        sliced("isig_vline", "isig", "0.1"),
    ], tag=tag)
    # isig in preprocess: every kernel sees the box, or the line of a single index
    o.suite(src, [
        Case("mean_box", {"op": "mean", "axes": "navigation"}, lambda s: s.isig[2:31:2, 3:25].mean()),
    ], tag="chain_isig", preprocess=[{"op": "isig", "slices": "2:31:2, 3:25"}])
    o.suite(src, [
        Case("mean_line", {"op": "mean", "axes": "navigation"}, lambda s: s.isig[4:30, 12].mean()),
        Case("max_line", {"op": "indexmax", "axis": "kx"}, lambda s: s.isig[4:30, 12].indexmax(-1), known=NAVSHAPED),
    ], tag="chain_line", preprocess=[{"op": "isig", "slices": "4:30, 12"}])

    # a chain: crop ky in preprocess, then every kernel sees 22 x 33 patterns
    def cropped(expr):
        def f(s):
            c = s.isig[:, 3:25]
            return eval(expr, {"np": oracle.np}, {"c": c, "sig": oracle.SIG(c)})
        f.__name__ = f"s.isig[:, 3:25] then {expr}"
        return f

    o.suite(src, [
        Case("binned", {"op": "rebin", "scale": [1, 3, 2]}, cropped("c.rebin(scale=(1, 3, 2))")),
        Case("tot", {"op": "sum", "axes": "signal"}, cropped("c.sum(sig)"), known=NAVSHAPED),
        Case("mean_dp", {"op": "mean", "axes": "navigation"}, cropped("c.mean()")),
    ], tag="chain", preprocess=[{"op": "crop", "axis": "ky", "start": 3, "end": 25}])


def cropped_scan(axis, start, end):
    def f(s):
        s.crop(axis, start, end)  # in place
        return s
    f.__name__ = f"s.crop({axis!r}, {start}, {end})"
    return f


def scans(o):
    """rebin with navigation factors (a binned scan) and crop of a
    navigation axis (a cropped scan): FULL results of fewer positions. Blocks
    are one chunk (block: 1), aligned by the engine to the bins, so bins meet
    chunk and block edges; 13 and 10 positions leave remainders (crop, or a
    partial last bin with crop: false)."""
    for dtype in ("uint16", "float32"):
        tag = f"scan_{dtype}"
        src = o.image_stack(tag + ".hspy", dtype=dtype, nav_shape=(13, 10), sig_shape=(6, 8), seed=35,
                            chunks=(3, 4, 6, 8))
        rt = {"rtol": 1e-6} if dtype == "float32" else {}
        o.suite(src, [
            # 13 rows by 2: HyperSpy's linear binning (float64 for integers)
            Case("nav22", {"op": "rebin", "scale": [2, 2, 1, 1]}, "s.rebin(scale=(2, 2, 1, 1))", **rt),
            # every factor divides: numpy's sum (uint64 for uint16)
            Case("nav5_sig2", {"op": "rebin", "scale": [5, 1, 2, 2]}, "s.rebin(scale=(5, 1, 2, 2))", **rt),
            Case("nav_part", {"op": "rebin", "scale": [3, 2, 1, 1], "crop": False},
                 "s.rebin(scale=(3, 2, 1, 1), crop=False)", **rt),
            Case("nav_shape", {"op": "rebin", "new_shape": [5, 13, 4, 3]}, "s.rebin(new_shape=(5, 13, 4, 3))", **rt),
            Case("nav_all", {"op": "rebin", "scale": [10, 13, 1, 1]}, "s.rebin(scale=(10, 13, 1, 1))", **rt),
            # a cropped scan: starts inside chunks and blocks (chunks of 3 x 4)
            Case("crop_x", {"op": "crop", "axis": "x", "start": 2, "end": 9}, cropped_scan("x", 2, 9)),
            Case("crop_y_neg", {"op": "crop", "axis": 1, "start": -5}, cropped_scan(1, -5, None)),
            Case("crop_y_val", {"op": "crop", "axis": "y", "start": -0.4, "end": 5.2}, cropped_scan("y", -0.4, 5.2)),
            # thinned scans, as inav[start:end:step]: steps below, across and
            # above the chunks (blocks align to lcm(chunk, step))
            Case("thin_x", {"op": "crop", "axis": "x", "start": 1, "step": 3}, "s.inav[1::3]"),
            Case("thin_y", {"op": "crop", "axis": "y", "start": 2, "end": 12, "step": 2}, "s.inav[:, 2:12:2]"),
            Case("thin_y5", {"op": "crop", "axis": 1, "step": 5}, "s.inav[:, ::5]"),
            # HyperSpy's inav[...] of both axes at once: indices, values,
            # a distance as a step, an axis left whole
            sliced("inav_roi", "inav", "2:9, 1:12:3"),
            sliced("inav_val", "inav", "[1.5:4.4, -0.4:5.2:2]"),
            sliced("inav_dist", "inav", ":, 1::1.6"),
            sliced("inav_neg", "inav", "-4:"),
            # bounds past the axis clip, as Python's and HyperSpy's slices do
            sliced("inav_clip", "inav", "-10:50, 2.5:99.0"),
            # a single index drops its axis: a row, a column by value, one pattern
            sliced("inav_row", "inav", "3"),
            sliced("inav_col", "inav", "1:9:2, 2.5"),
            sliced("inav_one", "inav", "4, -2"),
        ], tag=tag)
    # non-uniform axes (HyperSpy's DataAxis: an energy stack's energies, a
    # signal axis): a crop keeps their points, as DataAxis.crop; value
    # bounds go to the nearest point
    rng = oracle.np.random.default_rng(37)
    st = hs.signals.Signal1D(rng.random((11, 3, 9)).astype("float32"))
    for ax, pts in ((st.axes_manager._axes[0], [700, 701, 701.5, 702, 703, 705, 706, 706.25, 708, 710, 715]),
                    (st.axes_manager._axes[2], [1.0, 2, 4, 8, 16, 32, 64, 128, 256])):
        ax.convert_to_non_uniform_axis()
        ax.axis = oracle.np.array(pts, float)
    st.axes_manager._axes[0].name, st.axes_manager._axes[0].units = "Energy", "eV"
    src = o.path("nonuniform.hspy")
    oracle._save(st, src, (4, 3, 9), "gzip")
    o.suite(src, [
        Case("e_idx", {"op": "crop", "axis": "Energy", "start": 2, "end": 9}, cropped_scan("Energy", 2, 9)),
        Case("e_val", {"op": "crop", "axis": "Energy", "start": 701.6, "end": 707.0},
             cropped_scan("Energy", 701.6, 707.0)),
        Case("e_ends", {"op": "crop", "axis": "Energy", "start": 700.0, "end": 715.0},
             cropped_scan("Energy", 700.0, 715.0)),
        Case("s_val", {"op": "crop", "axis": -1, "start": 3.0, "end": 200.0}, cropped_scan(-1, 3.0, 200.0)),
        Case("s_two", {"op": "crop", "axis": -1, "start": 5, "end": 7}, cropped_scan(-1, 5, 7)),
        Case("e_thin", {"op": "crop", "axis": "Energy", "start": 1, "step": 3}, "s.inav[:, 1::3]"),
        Case("s_thin", {"op": "crop", "axis": -1, "start": 1.0, "step": 2}, "s.isig[1.0::2]"),
        sliced("s_isig", "isig", "3.0:200.0:2"),
        sliced("e_inav_clip", "inav", ":, 690.0:707.0"),
    ], tag="nonuniform")
    # a non-uniform axis slices its points as numpy does: a start index
    # before it clips too (a uniform axis raises)
    o.suite(src, [
        Case("e_before", {"op": "crop", "axis": "Energy", "start": -20, "end": 5}, cropped_scan("Energy", -20, 5)),
        Case("s_past", {"op": "crop", "axis": -1, "start": 2, "end": 50}, cropped_scan(-1, 2, 50)),
        sliced("s_isig_before", "isig", "-20:5"),
        sliced("e_inav_before", "inav", ":, -30::2"),
    ], tag="nonuniform_past")

    # a binned scan is a result of its own: not a preprocess step, whose
    # output every other result would have to match position by position
    job = oracle.write_job(o.path("navpre.yaml"), o.path("scan_uint16.hspy"), {"tot": {"op": "sum", "axes": "signal"}},
                           o.path("navpre.hspy"), preprocess=[{"op": "rebin", "scale": [2, 2, 1, 1]}])
    p = subprocess.run([HB, "validate", job], capture_output=True, text=True)
    oracle.check(p.returncode == 2 and "as a kernel" in p.stderr and "navpre.yaml:" in p.stderr,
                 f"rebin of the scan in preprocess: exit 2 naming the place ({p.returncode}: {p.stderr.strip()})")
    job = oracle.write_job(o.path("navcrop.yaml"), o.path("scan_uint16.hspy"), {"tot": {"op": "sum", "axes": "signal"}},
                           o.path("navcrop.hspy"), preprocess=[{"op": "crop", "axis": "x", "start": 2}])
    p = subprocess.run([HB, "validate", job], capture_output=True, text=True)
    oracle.check(p.returncode == 2 and "as a kernel" in p.stderr and "navcrop.yaml:" in p.stderr,
                 f"crop of the scan in preprocess: exit 2 naming the place ({p.returncode}: {p.stderr.strip()})")
    job = oracle.write_job(o.path("navinav.yaml"), o.path("scan_uint16.hspy"), {"tot": {"op": "sum", "axes": "signal"}},
                           o.path("navinav.hspy"), preprocess=[{"op": "inav", "slices": "2:5"}])
    p = subprocess.run([HB, "validate", job], capture_output=True, text=True)
    oracle.check(p.returncode == 2 and "as a kernel" in p.stderr and "navinav.yaml:" in p.stderr,
                 f"inav in preprocess: exit 2 naming the place ({p.returncode}: {p.stderr.strip()})")
    # steps HyperSpy refuses too: none, or a distance on a non-uniform axis;
    # and a value outside a non-uniform axis' points (HyperSpy's crop raises)
    for name, crop, words in (("step0", {"op": "crop", "axis": "x", "step": 0}, "at least 1"),
                              ("stepnu", {"op": "crop", "axis": "Energy", "step": 2.0}, "not uniform"),
                              ("outnu", {"op": "crop", "axis": "Energy", "start": 699.5}, "outside axis"),
                              ("isig_index", {"op": "isig", "slices": "3, 2"}, "leaves no signal"),
                              ("inav_outside", {"op": "inav", "slices": "10"}, "index 10 is outside axis"),
                              ("inav_many", {"op": "inav", "slices": "1:2, 1:2, 1:2"}, "more than the 2"),
                              ("inav_word", {"op": "inav", "slices": "a:3"}, "not a number"),
                              ("inav_nan", {"op": "inav", "slices": "nan:3, ::1e999"}, "not a number"),
                              ("inav_none", {"op": "inav", "slices": "5:5"}, "keeps nothing"),
                              ("isig_many", {"op": "isig", "slices": "1:2, 1:2, 1:2"}, "more than the 2 signal"),
                              # HyperSpy's IndexError: a start above the axis, an end below it
                              ("inav_above", {"op": "inav", "slices": "50.0:"}, "start 50 is above axis"),
                              ("isig_below", {"op": "isig", "slices": ":-5.0"}, "end -5 is below axis"),
                              ("inav_past", {"op": "inav", "slices": "-11:"}, "outside axis"),
                              # HyperSpy's crop: IndexError for a start outside the axis, an end before it
                              ("crop_before", {"op": "crop", "axis": "x", "start": -11}, "start -11 is outside axis"),
                              ("crop_after", {"op": "crop", "axis": "x", "start": 12}, "start 12 is outside axis"),
                              ("crop_end", {"op": "crop", "axis": "y", "start": 1, "end": -14},
                               "end -14 is outside axis")):
        src = o.path("nonuniform.hspy" if name in ("stepnu", "outnu") else "scan_uint16.hspy")
        job = oracle.write_job(o.path(name + ".yaml"), src, {"c": crop}, o.path(name + ".hspy"))
        p = subprocess.run([HB, "validate", job], capture_output=True, text=True)
        oracle.check(p.returncode == 2 and words in p.stderr and f"{name}.yaml:" in p.stderr,
                     f"{crop['op']} {crop}: exit 2 naming the place ({p.returncode}: {p.stderr.strip()})")


def negative_scale(o):
    """Calibrated bounds on axes whose values fall (scale < 0): HyperSpy's
    _get_array_slices compares a value outside the axis with its least and
    greatest value, so a start value below the axis starts at the first
    sample (the greatest value) and a start value above it raises."""
    s = hs.signals.Signal1D(oracle.np.arange(60, dtype="float32").reshape(6, 10))
    oracle.calibrate(s, [("x", "nm", -0.5, 5.0), ("E", "eV", -1.0, 10.0)])  # x 5 .. 2.5, E 10 .. 1
    src = oracle._save(s, o.path("negscale.hspy"), (4, 10), "gzip")
    o.suite(src, [
        sliced("isig_low", "isig", "0.0:5.0"),
        sliced("isig_high", "isig", "8.0:20.0"),
        sliced("isig_in", "isig", "9.0:3.0"),
        sliced("inav_low", "inav", "1.0:4.0"),
        sliced("inav_high", "inav", "4.5:9.0"),
        Case("crop_val", {"op": "crop", "axis": "E", "start": 9.0, "end": 2.0}, cropped_scan("E", 9.0, 2.0)),
    ], tag="negscale")
    for name, op, text, words in (("neg_start", "isig", "12.0:5.0", "start 12 is above axis 'E' (1 to 10 eV)"),
                                  ("neg_end", "isig", "5.0:-3.0", "end -3 is below axis 'E' (1 to 10 eV)"),
                                  ("neg_nav_start", "inav", "7.0:3.0", "start 7 is above axis 'x' (2.5 to 5 nm)"),
                                  ("neg_nav_end", "inav", "4.5:0.0", "end 0 is below axis 'x' (2.5 to 5 nm)")):
        job = oracle.write_job(o.path(name + ".yaml"), src, {"c": {"op": op, "slices": text}}, o.path(name + ".hspy"))
        p = subprocess.run([HB, "validate", job], capture_output=True, text=True)
        oracle.check(p.returncode == 2 and words in p.stderr and f"{name}.yaml:" in p.stderr,
                     f"{op}[{text}] on a negative scale, HyperSpy's IndexError: exit 2 naming the place "
                     f"({p.returncode}: {p.stderr.strip()})")


def read_bytes(runs, result):
    """{rank count: the provenance's bytes_read} of a run's outputs."""
    out = {}
    for n in runs.ranks:
        with oracle.h5py.File(runs.outputs[n], "r") as f:
            out[n] = int(f[f"Experiments/{result}/original_metadata/hyperbatch"].attrs["bytes_read"])
    return out


def partial_reads(o):
    """A job whose every result crops or thins the scan reads only the chunks
    some result takes (blocks no result takes not at all); one that also
    wants a value per pattern reads everything. Both raw chunk reads
    (gzip) and HDF5's (uncompressed), chunks of 2 x 2 positions on 13 x 10."""
    ny, nx, sig = 13, 10, (6, 8)
    thin_x, roi_y = (1, 6), range(4, 7)  # inav[1::5], inav[:, 4:7]; and inav[4:7, 9:12]
    for compression in ("gzip", None):
        tag = f"part_{compression or 'none'}"
        src = o.image_stack(tag + ".hspy", nav_shape=(ny, nx), sig_shape=sig, seed=41, chunks=(2, 2) + sig,
                            compression=compression)
        cases = [Case("thin5", {"op": "crop", "axis": "x", "start": 1, "step": 5}, "s.inav[1::5]"),
                 Case("band", {"op": "crop", "axis": "y", "start": 4, "end": 7}, "s.inav[:, 4:7]"),
                 sliced("region", "inav", "4:7, 9:12")]
        runs = o.run(src, {c.name: c.kernel for c in cases}, tag=tag)
        for c in cases:
            o.compare(runs, c.name, c.expect)
        # the positions of the 2 x 2 chunks that hold one the results take
        wanted = 0
        for y0 in range(0, ny, 2):
            for x0 in range(0, nx, 2):
                ys, xs = range(y0, min(y0 + 2, ny)), range(x0, min(x0 + 2, nx))
                region = any(x in xs for x in range(4, 7)) and any(y in ys for y in range(9, 12))
                if any(x in xs for x in thin_x) or any(y in ys for y in roi_y) or region:
                    wanted += len(ys) * len(xs)
        pattern = sig[0] * sig[1] * 2
        got = read_bytes(runs, "thin5")
        oracle.check(got and all(v == wanted * pattern for v in got.values()),
                     f"[{tag}] reads the {wanted} of {ny * nx} positions in chunks a result takes: bytes_read {got}, "
                     f"expected {wanted * pattern}")
        runs = o.run(src, {"thin5": cases[0].kernel, "tot": {"op": "sum", "axes": "signal"}}, tag=tag + "_all",
                     ranks=[2])
        o.compare(runs, "thin5", cases[0].expect)
        got = read_bytes(runs, "thin5")
        oracle.check(got == {2: ny * nx * pattern},
                     f"[{tag}_all] with a value per pattern every position is read: bytes_read {got}")


SECTIONS = [dtypes, spectrum_images, stacks, scans, negative_scale, partial_reads]


def main():
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        o = oracle.Oracle(HB, tmp)
        for section in SECTIONS:
            if not ONLY or section.__name__ in ONLY:
                section(o)
    print(f"test_transforms: {time.time() - t0:.1f} s")
    oracle.finish("test_transforms")


main()
