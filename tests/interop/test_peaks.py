"""find_peaks against HyperSpy's Signal2D.find_peaks(method="local_max")
(skimage's peak_local_max, sorted by column then row) on stacks HyperSpy
writes, at 1, 2 and 3 ranks, with several parameter sets in one job.

The ragged results go to <output stem>.ragged.hspy (docs/hyperspy-semantics.md):
checked with h5py (the layout, bit-identity across rank counts) and loaded
by HyperSpy itself (eagerly: 1.7.3 cannot load a ragged signal lazily).
Where HyperSpy finds no peak it stores [[nan, nan]]; hyperbatch an empty
list: compared as such.

usage: /usr/bin/python3 test_peaks.py path/to/hyperbatch"""
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle  # noqa: E402
from oracle import check, hs  # noqa: E402
import h5py  # noqa: E402

HB = os.path.abspath(sys.argv[1])

CASES = {
    "peaks_default": {},
    "peaks_d3": {"min_distance": 3, "threshold_rel": 0.3},
    "peaks_abs": {"min_distance": 2, "threshold_abs": 150.0, "exclude_border": False},
    "peaks_none": {"min_distance": 2, "threshold_abs": 1e9},
}


def ragged_path(out):
    return out[:-len(".hspy")] + ".ragged.hspy"


def h5_lists(path, name):
    with h5py.File(path, "r") as f:
        g = f[f"Experiments/{name}"]
        data, shapes = g["data"][()], g["ragged_shapes"][()]
        return [np.asarray(d).reshape(tuple(sh)) for d, sh in zip(data.ravel(), shapes.ravel())], data.shape


def check_stack(o, tag, src, cases):
    """Run `cases` ({name: params}) in one job on src at every rank count:
    the lists are identical across rank counts and equal to HyperSpy's
    find_peaks. Returns the runs and the first rank count's {name: (lists,
    shape)}, None when no run succeeded."""
    kernels = {name: dict({"op": "find_peaks"}, **params) for name, params in cases.items()}
    runs = o.run(src, kernels, tag=tag)
    first = None
    for n in runs.ranks:
        path = ragged_path(runs.outputs[n])
        check(os.path.exists(path), f"[{tag}] np={n}: ragged results in {os.path.basename(path)}")
        raw = {name: h5_lists(path, name) for name in cases}
        if first is None:
            first = raw
        else:
            same = all(len(raw[k][0]) == len(first[k][0]) and
                       all(np.array_equal(a, b) for a, b in zip(raw[k][0], first[k][0])) for k in cases)
            check(same, f"[{tag}] np={n}: lists identical to np={runs.ranks[0]}")
    if first is None:
        return runs, None
    s = o.input_signal(src)
    nav_shape = s.data.shape[:-2]
    for name, params in cases.items():
        lists, shape = first[name]
        check(shape == nav_shape, f"[{tag}] {name}: one list per position {shape}")
        ref = s.find_peaks(method="local_max", interactive=False, show_progressbar=False, **params)
        bad = []
        for i, want in enumerate(ref.data.ravel()):
            want = np.asarray(want)
            if want.shape == (1, 2) and np.isnan(want.astype(float)).all():
                want = np.zeros((0, 2), dtype=np.int64)
            got = lists[i]
            if got.dtype != np.int64 or got.shape != want.shape or not np.array_equal(got, want):
                bad.append((i, got.tolist()[:4], want.tolist()[:4]))
        npk = sum(len(x) for x in lists)
        check(not bad, f"[{tag}] {name} {params}: {npk} peaks as HyperSpy's find_peaks"
              + (f"; first differences {bad[:2]}" if bad else ""))
    return runs, first


def save_stack(o, tag, x, chunks):
    """x (navigation..., ky, kx) saved by HyperSpy as a Signal2D."""
    s = hs.signals.Signal2D(x)
    s.metadata.General.title = tag
    path = o.path(tag + ".hspy")
    s.save(path, overwrite=True, chunks=chunks)
    return path


def main():
    tmp = tempfile.mkdtemp(prefix="hbpeaks.")
    o = oracle.Oracle(HB, tmp)
    for dtype, nav_shape, chunks in (("uint16", (3, 5), (2, 2, 9, 11)), ("float32", (7,), (3, 10, 16))):
        tag = f"stack_{dtype}"
        src = o.image_stack(tag + ".hspy", dtype=dtype, nav_shape=nav_shape, chunks=chunks, seed=23)
        runs, first = check_stack(o, tag, src, CASES)
        if first is None:
            continue
        # HyperSpy loads the file as it is
        path = ragged_path(runs.outputs[runs.ranks[0]])
        loaded = oracle.by_title(oracle.load_quietly(path))
        sig = loaded.get("peaks_d3")
        ok = sig is not None and sig.axes_manager.navigation_shape == tuple(reversed(nav_shape)) and \
            all(np.array_equal(np.asarray(a).reshape(-1, 2), b) for a, b in zip(sig.data.ravel(), first["peaks_d3"][0]))
        check(ok, f"[{tag}] HyperSpy loads {os.path.basename(path)}: "
              f"ragged, navigation {tuple(reversed(nav_shape))}, the same lists")
    thresholds(o)
    nans(o)
    ties(o)
    resume(o, tmp)
    oracle.finish("test_peaks")


# v: the float32 just above 3.4e38; HUGE rounds to v in float32 but is below
# it in float64, and numpy compares in float64 from 3.4e38 up
V_HUGE = float(np.nextafter(np.float32(3.4e38), np.float32(np.inf)))
HUGE = V_HUGE - 1e30


def thresholds(o):
    """The threshold at the float32 boundary. numpy compares image >
    threshold in float32 for float32 data (the float threshold rounded to
    float32, unless |threshold| >= 3.4e38) and in float64 for every other
    dtype: a float32 pixel equal to float32(threshold) is no peak."""
    x = np.zeros((5, 9, 9))
    x[0, 3, 3], x[0, 1, 5] = np.float32(0.1), 0.3       # threshold_abs 0.1
    x[1, 4, 4], x[1, 2, 6], x[1, 6, 2] = 100, 29, 40    # threshold_rel 0.29: 28.999999999999996
    x[2, 4, 4], x[2, 2, 2], x[2, 6, 6] = 100, 29, np.nextafter(np.float32(29), np.float32(99))  # and above
    x[3, 2, 3], x[3, 6, 6] = np.float32(0.1), 0.5       # 0.1 again, with threshold_rel 0.29 below it
    x[4, 4, 4], x[4, 2, 2] = V_HUGE, 1e38
    cases = {
        "abs": {"threshold_abs": 0.1},
        "rel": {"threshold_rel": 0.29},
        "both": {"threshold_abs": 0.1, "threshold_rel": 0.29},
        "abs_29": {"threshold_abs": 29.0, "min_distance": 2},
        "huge": {"threshold_abs": HUGE, "exclude_border": False},
    }
    for dtype in ("float32", "float64", "uint8", "uint16", "int16"):
        xd = x.astype(dtype) if dtype.startswith("float") else np.clip(x, 0, 255).astype(dtype)
        src = save_stack(o, f"thr_{dtype}", xd, (2, 9, 9))
        check_stack(o, f"thr_{dtype}", src, cases)


def nans(o):
    """A pattern with a NaN: skimage's default threshold is image.min(), and
    threshold_rel uses image.max(), both NaN, so no pixel passes; with
    threshold_abs given, max(threshold_abs, threshold_rel * nan) is
    threshold_abs."""
    rng = np.random.default_rng(41)
    ky, kx = 13, 15
    yy, xx = np.mgrid[0:ky, 0:kx]
    x = np.empty((6, ky, kx))
    for i in range(len(x)):
        img = rng.normal(10, 1, (ky, kx))
        for _ in range(5):
            py, px = rng.uniform(0, ky), rng.uniform(0, kx)
            img += rng.uniform(20, 60) * np.exp(-((yy - py) ** 2 + (xx - px) ** 2) / 2)
        x[i] = img
    x[1, 6, 7] = np.nan                                           # one NaN inside
    p = np.unravel_index(np.argmax(x[2]), (ky, kx))
    x[2, p[0], min(p[1] + 1, kx - 1)] = np.nan                    # beside the brightest pixel
    x[3, 0, 4] = np.nan                                           # on the border
    x[4, rng.integers(0, ky, 6), rng.integers(0, kx, 6)] = np.nan  # several
    x[5] = np.nan                                                 # all NaN
    cases = {
        "nan_default": {},
        "nan_rel": {"threshold_rel": 0.3},
        "nan_abs": {"threshold_abs": 12.0},
        "nan_both": {"threshold_abs": 12.0, "threshold_rel": 0.3},
        "nan_abs_d2": {"threshold_abs": 12.0, "min_distance": 2, "exclude_border": False},
    }
    for dtype in ("float32", "float64"):
        src = save_stack(o, f"nan_{dtype}", x.astype(dtype), (4, 7, 8))
        check_stack(o, f"nan_{dtype}", src, cases)


def ties(o):
    """Equal candidates closer than min_distance: skimage keeps the first in
    np.argsort(-intensities) (numpy's introsort, not stable beyond 16
    candidates), the key negated in the image's dtype (wrapping for
    integers: an unsigned 0 sorts first)."""
    rng = np.random.default_rng(43)
    ky, kx = 30, 41
    yy, xx = np.mgrid[0:ky, 0:kx]
    x = np.zeros((6, ky, kx))
    for i in range(9):                      # the audit's pairs: 18 candidates
        x[0, 2, 2 + 3 * i] = x[0, 2, 3 + 3 * i] = 65535
    for i in range(12):
        x[0, 10 + (i % 3) * 6, 3 + 3 * i] = x[0, 11 + (i % 3) * 6, 3 + 3 * i] = 40000
    x[1] = rng.poisson(200, (ky, kx))       # saturated discs: plateaus of equal maxima
    for _ in range(4):
        cy, cx, r = rng.uniform(4, ky - 4), rng.uniform(4, kx - 4), rng.uniform(2, 5)
        x[1][(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 65535
    x[2] = rng.integers(0, 3, (ky, kx)) * 1000   # small alphabets: ties everywhere
    x[3] = rng.integers(0, 2, (ky, kx)) * 65535
    x[4] = np.where(rng.random((ky, kx)) < 0.3, 65535, rng.integers(0, 4, (ky, kx)))
    x[5, 5:25, 5:36] = 65535                 # one plateau of 619 equal maxima around a 0
    x[5, 15, 20] = 0
    cases = {
        "tie_d1": {},
        "tie_d2": {"min_distance": 2},
        "tie_d3": {"min_distance": 3, "exclude_border": False},
        "tie_d2_rel": {"min_distance": 2, "threshold_rel": 0.5},
        "tie_zero_first": {"min_distance": 2, "threshold_abs": -1.0, "exclude_border": False},
    }
    for dtype in ("uint16", "float32"):
        src = save_stack(o, f"tie_{dtype}", x.astype(dtype), (4, 16, 21))
        check_stack(o, f"tie_{dtype}", src, cases)
    # int16: -(-32768) wraps to -32768, the first of all
    xi = np.where(x[:4] > 30000, -32768, np.minimum(x[:4], 32767)).astype("int16")
    xi[0, 14:20, 10:30] = -100
    xi[2, 3:12, 3:12] = -32768
    src = save_stack(o, "tie_int16", xi, (4, 16, 21))
    check_stack(o, "tie_int16", src, {"tie_d2_neg": {"min_distance": 2, "threshold_abs": -40000.0},
                                      "tie_d1": {}})


def resume(o, tmp):
    """Stopped twice (checkpoints every round) at 2 and then 3 ranks,
    finished at 1: the lists are those of an uninterrupted run, and the
    side file is gone."""
    src = o.image_stack("stack_resume.hspy", dtype="uint16", nav_shape=(6, 8), chunks=(1, 2, 14, 17), seed=29)
    kernels = {"pk": {"op": "find_peaks", "min_distance": 2}, "m": {"op": "mean", "axes": "navigation"}}
    ref = o.run(src, kernels, tag="resume_ref", ranks=(2,))
    job = ref.job
    out = os.path.join(tmp, "out", "resumed.hspy")
    sets = [f"output.file={out}", "output.overwrite=false"]
    p1, p2, p3 = oracle.stop_and_resume(HB, job, [(2, 3), (3, 3), (1, None)], sets)
    check(p1.returncode == 75 and p2.returncode == 75 and p3.returncode == 0,
          f"stopped at 2 ranks (exit {p1.returncode}), at 3 (exit {p2.returncode}), finished at 1 (exit "
          f"{p3.returncode}{': ' + p3.stderr.strip()[-300:] if p3.returncode else ''})")
    if p3.returncode or not ref.ranks:
        return
    want, _ = h5_lists(ragged_path(ref.outputs[2]), "pk")
    got, _ = h5_lists(ragged_path(out), "pk")
    same = len(got) == len(want) and all(np.array_equal(a, b) for a, b in zip(got, want))
    check(same, f"resumed twice: the {sum(len(x) for x in got)} peaks are an uninterrupted run's")
    check(not os.path.exists(out + ".partial.ragged"), "the side file is removed at the end")


main()
