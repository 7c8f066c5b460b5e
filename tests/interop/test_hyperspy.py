"""Interop with Debian's HyperSpy 1.7.3: HyperSpy writes the inputs (odd
shapes, gzip and not, custom chunks, calibrated axes), hyperbatch runs at 1, 2
and 3 ranks, HyperSpy loads the outputs (eagerly and lazily) without a single
warning, and every result matches numpy on the same data.

usage: /usr/bin/python3 test_hyperspy.py path/to/hyperbatch"""
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from hbcheck import ENV, by_title, check, finish, hs, load_quietly, warm_up  # noqa: E402
import h5py  # noqa: E402

HB = os.path.abspath(sys.argv[1])


def run(n, job, *sets):
    cmd = ["mpirun", "-q", "-n", str(n), HB, "run", job]
    for s in sets:
        cmd += ["--set", s]
    # a relative path typed in a --set resolves against the current folder
    # (docs/job-format.md, "Paths"): type them in the job's folder
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=ENV, cwd=os.path.dirname(job))
    check(p.returncode == 0, f"hyperbatch np={n} {os.path.basename(job)} {' '.join(sets)} exit {p.returncode} {p.stderr[-500:] if p.returncode else ''}")
    return p


def calibrate(s, names, units, scales, offsets):
    # axes_manager order is HyperSpy's: navigation reversed, then signal reversed
    for ax, nm, u, sc, of in zip(s.axes_manager._axes, names, units, scales, offsets):
        ax.name, ax.units, ax.scale, ax.offset = nm, u, sc, of


def axes_of(sig):
    return [(a.name, a.units, round(a.scale, 12), round(a.offset, 12), a.size) for a in sig.axes_manager._axes]


def close(a, b, exact):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return False
    if exact:
        return np.array_equal(a, b, equal_nan=True)
    return np.allclose(a, b, rtol=1e-6, atol=1e-9, equal_nan=True)


def test_4d(tmp):
    rng = np.random.default_rng(11)
    ny, nx, ky, kx = 9, 13, 30, 26
    data = rng.poisson(20, (ny, nx, ky, kx)).astype("uint16")
    s = hs.signals.Signal2D(data)
    # axes_manager._axes is in array order: y, x (navigation), then ky, kx (signal)
    calibrate(s, ["y", "x", "ky", "kx"], ["nm", "nm", "1/nm", "1/nm"], [0.5, 0.25, 0.03, 0.02], [-2.0, 1.0, -0.45, -0.26])
    src = os.path.join(tmp, "scan4d.hspy")
    s.save(src, chunks=(4, 5, 15, 13), overwrite=True)  # signal axes chunked too, partial edges

    mask = np.zeros((ky, kx))
    mask[3:9, 4:20] = 0.5
    mask[20, 5] = -2.0
    m = hs.signals.Signal2D(mask)
    m.save(os.path.join(tmp, "mask.hspy"), overwrite=True)

    job = os.path.join(tmp, "job4d.yaml")
    with open(job, "w") as f:
        f.write("""version: 1
input: {file: scan4d.hspy}
output: {file: out/r4d.hspy}
kernels:
  - {name: bf, op: virtual_image, detector: {shape: circle, center: [12.5, 14], radius: 5}}
  - {name: adf, op: virtual_image, detector: {shape: annulus, center: [12, 14], inner: 6, outer: 11}}
  - {name: box, op: virtual_image, detector: {shape: rectangle, x: [2, 7], y: [20, 29]}}
  - {name: pt, op: virtual_image, detector: {shape: point, at: [25, 0]}}
  - {name: cal, op: virtual_image, detector: {shape: rectangle, x: [-0.22, -0.12], y: [0.15, 0.42], units: calibrated}}
  - {name: weighted, op: virtual_image, detector: {shape: mask, file: mask.hspy, dataset: /Experiments/__unnamed__/data}}
  - {name: sum_sig, op: sum, axes: signal}
  - {name: mean_sig, op: mean, axes: signal}
  - {name: max_sig, op: max, axes: signal}
  - {name: min_sig, op: min, axes: signal}
  - {name: sum_nav, op: sum, axes: navigation}
  - {name: mean_nav, op: mean, axes: navigation}
  - {name: max_nav, op: max, axes: navigation}
  - {name: min_nav, op: min, axes: navigation}
run: {block: 7, progress: off}
""")
    d = data.astype(np.float64)
    yy, xx = np.mgrid[0:ky, 0:kx]
    r2 = lambda cx, cy: (xx - cx) ** 2 + (yy - cy) ** 2
    expect = {
        "bf": (d * (r2(12.5, 14) <= 25)).sum(axis=(2, 3)),
        "adf": (d * ((r2(12, 14) >= 36) & (r2(12, 14) <= 121))).sum(axis=(2, 3)),
        "box": d[:, :, 20:29, 2:7].sum(axis=(2, 3)),
        "pt": d[:, :, 0, 25],
        "weighted": (d * mask).sum(axis=(2, 3)),
        "sum_sig": data.sum(axis=(2, 3)),
        "mean_sig": d.mean(axis=(2, 3)),
        "max_sig": data.max(axis=(2, 3)),
        "min_sig": data.min(axis=(2, 3)),
        "sum_nav": data.sum(axis=(0, 1)),
        "mean_nav": d.mean(axis=(0, 1)),
        "max_nav": data.max(axis=(0, 1)),
        "min_nav": data.min(axis=(0, 1)),
    }
    # calibrated: x = (v + 0.26) / 0.02, y = (v + 0.45) / 0.03, so the same pixels as "box"
    expect["cal"] = expect["box"]
    nav_axes = axes_of(s)[:2]
    sig_axes = axes_of(s)[2:]
    os.makedirs(os.path.join(tmp, "out"), exist_ok=True)

    # a calibrated radius on non-square pixels is ambiguous: refused at validate time
    p = subprocess.run(["mpirun", "-q", "-n", "2", HB, "validate", job, "--set", "kernels.bf.detector.units=calibrated",
                        "--set", "kernels.bf.detector.center=[0.0, 0.0]"], capture_output=True, text=True, env=ENV, timeout=120)
    check(p.returncode == 2 and "needs square pixels" in p.stderr,
          f"calibrated radius on non-square pixels refused: exit {p.returncode}: {p.stderr.strip()}")

    for n in (1, 2, 3):
        out = os.path.join(tmp, "out", f"r4d_{n}.hspy")
        run(n, job, f"output.file=out/r4d_{n}.hspy")
        sigs = by_title(load_quietly(out))
        lazy = by_title(load_quietly(out, lazy=True))
        check(sorted(sigs) == sorted(expect), f"np={n}: results {sorted(sigs)}")
        for name, ref in expect.items():
            if name not in sigs:
                continue
            got = sigs[name]
            exact = np.issubdtype(got.data.dtype, np.integer) or name in ("pt",)
            check(close(got.data, ref, exact), f"np={n} {name} matches numpy ({got.data.dtype}{got.data.shape})")
            check(close(lazy[name].data.compute(), ref, exact), f"np={n} {name} lazy load matches")
            want_axes = nav_axes if got.data.shape == (ny, nx) else sig_axes
            check(axes_of(got) == want_axes, f"np={n} {name} axes {axes_of(got)} == {want_axes}")
            check(got.axes_manager.navigation_dimension == 0 and got.axes_manager.signal_dimension == 2,
                  f"np={n} {name} loads as an image")
        prov = sigs["bf"].original_metadata.hyperbatch
        check(prov.ranks == n and prov.job == open(job).read() and prov.sets == [f"--set output.file=out/r4d_{n}.hspy"],
              f"np={n} provenance records the job, the --set and the rank count")
        check(prov.input_size == os.path.getsize(src), f"np={n} provenance records the input size")
        for phase in ("open", "read", "kernels", "reduce", "write"):
            t = prov.timing[phase]
            check(0 <= t.min_s <= t.median_s <= t.max_s, f"np={n} timing {phase} min <= median <= max")
        with h5py.File(out, "r") as f:
            for k in f["Experiments"]:
                dset = f["Experiments"][k]["data"]
                check(dset.chunks is not None and dset.compression == "gzip", f"np={n} {k} chunked and gzip")


def test_1d_and_signals(tmp):
    rng = np.random.default_rng(12)
    data = (rng.standard_normal((11, 7, 100)) * 50).astype("float32")
    data[3, 4, 17] = np.nan
    s = hs.signals.Signal1D(data)
    calibrate(s, ["y", "x", "Energy loss"], ["um", "um", "eV"], [3.0, 2.0, 0.5], [20.0, 10.0, 100.0])
    s.metadata.General.title = "spectra"
    a = os.path.join(tmp, "si.hspy")
    s.save(a, chunks=(3, 3, 50), compression=None, overwrite=True)
    other = hs.signals.Signal2D(np.ones((4, 5, 6), dtype="int16"))
    other.metadata.General.title = "other"
    b = os.path.join(tmp, "other.hspy")
    other.save(b, overwrite=True)
    two = os.path.join(tmp, "two.hspy")  # a file with two signals
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb, h5py.File(two, "w") as ft:
        for k, v in fa.attrs.items():
            ft.attrs[k] = v
        ft.create_group("Experiments")
        fa.copy("Experiments/spectra", ft["Experiments"])
        fb.copy("Experiments/other", ft["Experiments"])
    job = os.path.join(tmp, "job1d.yaml")
    with open(job, "w") as f:
        f.write("""version: 1
input: {file: two.hspy, signal: spectra}
output: {file: out/r1d.hspy, compression: none}
kernels:
  - {name: total, op: sum, axes: signal}
  - {name: peak, op: max, axes: signal}
  - {name: mean_spectrum, op: mean, axes: navigation}
  - {name: low, op: min, axes: navigation}
run: {progress: off}
""")
    d = data.astype(np.float64)
    expect = {"total": d.sum(axis=2), "peak": data.max(axis=2), "mean_spectrum": d.mean(axis=(0, 1)),
              "low": data.min(axis=(0, 1))}
    for n in (1, 2, 3):
        out = os.path.join(tmp, "out", f"r1d_{n}.hspy")
        run(n, job, f"output.file=out/r1d_{n}.hspy")
        sigs = by_title(load_quietly(out))
        lazy = by_title(load_quietly(out, lazy=True))
        for name, ref in expect.items():
            check(close(sigs[name].data, ref, False), f"np={n} {name} matches numpy, NaN included")
            check(close(lazy[name].data.compute(), ref, False), f"np={n} {name} lazy matches")
        sp = sigs["mean_spectrum"]
        check(sp.axes_manager.signal_dimension == 1 and axes_of(sp) == axes_of(s)[2:],
              f"np={n} mean spectrum is a calibrated Signal1D {axes_of(sp)}")
        check(axes_of(sigs["total"]) == axes_of(s)[:2], f"np={n} total carries the navigation calibration")
    # several signals and no input.signal: a clear error naming them
    with open(job) as f:
        text = f.read().replace(", signal: spectra", "")
    with open(job, "w") as f:
        f.write(text)
    p = subprocess.run(["mpirun", "-q", "-n", "2", HB, "validate", job], capture_output=True, text=True, env=ENV,
                       timeout=120)
    check(p.returncode == 2 and "holds 2 signals ('other', 'spectra'); pick one with input.signal" in p.stderr,
          f"two signals without input.signal: exit {p.returncode}: {p.stderr.strip()}")


def test_synth_loads(tmp):
    out = os.path.join(tmp, "synth.hspy")
    subprocess.run([HB, "synth", "4dstem", out, "--shape", "8,9,64,64"], check=True, capture_output=True)
    s = load_quietly(out)[0]
    check(s.data.shape == (8, 9, 64, 64) and s.data.dtype == np.uint16, "synth 4dstem loads as (9, 8 | 64, 64) uint16")
    check("Synthetic" in s.metadata, "synth 4dstem carries its ground truth in metadata")
    out = os.path.join(tmp, "eels.hspy")
    subprocess.run([HB, "synth", "eels", out], check=True, capture_output=True)
    e = load_quietly(out)[0]
    check(e.axes_manager.signal_dimension == 1 and e.axes_manager.signal_axes[0].units == "eV",
          "synth eels loads as a Signal1D with an eV axis")


def test_generic_hdf5(tmp):
    """A plain HDF5 array (py4DSTEM/NeXus style) with input.dataset, axis
    overrides, and an .hspy file in RosettaSciIO's format 3.3."""
    rng = np.random.default_rng(13)
    data = rng.integers(-500, 500, (6, 7, 16, 12)).astype("int32")
    src = os.path.join(tmp, "generic.h5")
    with h5py.File(src, "w") as f:
        f.create_dataset("/entry/data/data", data=data, chunks=(2, 7, 16, 12), compression="gzip")
    job = os.path.join(tmp, "jobgen.yaml")
    with open(job, "w") as f:
        f.write("""version: 1
input:
  file: generic.h5
  dataset: /entry/data/data
  axes:
    - {name: y, units: nm, scale: 2.5}
    - {name: x, units: nm, scale: 2.5, offset: 10}
output: {file: out/gen.hspy}
kernels:
  - {name: total, op: sum, axes: signal}
  - {name: brightest, op: max, axes: navigation}
run: {progress: off}
""")
    for n in (1, 3):
        out = os.path.join(tmp, "out", f"gen_{n}.hspy")
        run(n, job, f"output.file=out/gen_{n}.hspy")
        sigs = by_title(load_quietly(out))
        check(close(sigs["total"].data, data.sum(axis=(2, 3)), True) and sigs["total"].data.dtype == np.int64,
              f"np={n} generic HDF5 int32 sum is exact int64")
        check(close(sigs["brightest"].data, data.max(axis=(0, 1)), True), f"np={n} generic HDF5 max matches")
        check(axes_of(sigs["total"]) == [("y", "nm", 2.5, 0.0, 6), ("x", "nm", 2.5, 10.0, 7)],
              f"np={n} input.axes overrides reach the output {axes_of(sigs['total'])}")
    with h5py.File(os.path.join(tmp, "cube.h5"), "w") as f:
        f.create_dataset("cube", data=np.zeros((3, 4, 5), "f4"), chunks=(1, 4, 5))
    p = subprocess.run(["mpirun", "-q", "-n", "2", HB, "validate", job, "--set", "input.file=cube.h5",
                        "--set", "input.dataset=/cube"], capture_output=True, text=True, env=ENV, timeout=120, cwd=tmp)
    check(p.returncode == 2 and "set input.navigation_dimension" in p.stderr,
          f"a 3-D generic array needs navigation_dimension: exit {p.returncode}: {p.stderr.strip()}")
    p = subprocess.run(["mpirun", "-q", "-n", "2", HB, "validate", job, "--set", "input.file=cube.h5",
                        "--set", "input.dataset=/cube", "--set", "input.navigation_dimension=1", "--set",
                        "kernels.brightest.axes=signal"], capture_output=True, text=True, env=ENV, timeout=120,
                       cwd=tmp)
    check(p.returncode == 0, f"with navigation_dimension it validates: exit {p.returncode}: {p.stderr.strip()}")

    # format 3.3, as RosettaSciIO writes it
    s = hs.signals.Signal1D(np.arange(60, dtype="uint8").reshape(3, 4, 5))
    v33 = os.path.join(tmp, "v33.hspy")
    s.save(v33, overwrite=True)
    with h5py.File(v33, "r+") as f:
        f.attrs["file_format_version"] = "3.3"
    with open(job) as f:
        text = f.read()
    job33 = os.path.join(tmp, "job33.yaml")
    with open(job33, "w") as f:
        f.write(text.replace("  dataset: /entry/data/data\n", "").replace("generic.h5", "v33.hspy")
                .replace("out/gen.hspy", "out/v33.hspy"))
    run(2, job33)
    sigs = by_title(load_quietly(os.path.join(tmp, "out", "v33.hspy")))
    check(close(sigs["total"].data, s.data.sum(axis=2), True), "format 3.3 input reads")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        warm_up(tmp)
        test_synth_loads(tmp)
        test_4d(tmp)
        test_1d_and_signals(tmp)
        test_generic_hdf5(tmp)
    finish("test_hyperspy")


main()
