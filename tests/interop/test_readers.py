"""Input formats (docs/job-format.md "Input formats"): for each, a file in
that layout, a job on it at 1, 2 and 3 ranks, its values against numpy on
the same array and its calibration as HyperSpy 1.7.3 loads the output.

- py4DSTEM EMD 1.0, built with h5py as emdfile writes a DataCube (two
  datacubes: input.signal picks one; linear dim vectors stored as their
  first two points, Q origin off zero, calibration in the root's metadata);
- NeXus STXM stacks, (energy, sample_y, sample_x) as SLS PolLux writes them,
  in the NeXus 2014 form (NXdata @signal/@axes) and the older one (signal=1
  and axes="a:b" on the dataset);
- HyperSpy's older formats 1.0 and 2.0, made from a 3.1 file HyperSpy saved
  (HyperSpy 1.7.3 loads each with the same axes: that is checked first);
- non-uniform axes (a STXM stack's energies, an .hspy DataAxis) kept in the
  results that keep the axis, as HyperSpy's DataAxis, and cropped with
  their points;
- a single spectrum or image (no navigation axis: .hspy, a NeXus image, a
  1-D generic array) as a scan of one pattern;
- a contiguous generic HDF5 array, read in pieces of whole scan rows (many
  blocks, not one of the whole array);
- float16 (read as float32) and bool (as uint8) data HyperSpy saved, and a
  complex input refused with why;
- input.format overriding detection, and the errors: a format that does
  not match, a signal or dataset that is not there (the closest named);
- `hyperbatch inspect` shows the detected format, every candidate and which
  one a job uses.

usage: /usr/bin/python3 test_readers.py path/to/hyperbatch"""
import os
import shutil
import subprocess
import sys
import tempfile
import uuid

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle  # noqa: E402
from oracle import by_title, check, hs, load_quietly  # noqa: E402
import h5py  # noqa: E402

HB = os.path.abspath(sys.argv[1])
RANKS = (1, 2, 3)
STATS = {"total": {"op": "sum", "axes": "signal"}, "mean_sig": {"op": "mean", "axes": "navigation"}}


def run_all(tmp, tag, src, input_extra=None, kernels=STATS, run=None):
    """The job at 1, 2, 3 ranks; {n: {name: signal}} of those that ran."""
    got = {}
    for n in RANKS:
        job = oracle.write_job(os.path.join(tmp, f"{tag}{n}.yaml"), src, kernels,
                               output_file=os.path.join(tmp, f"{tag}{n}.hspy"), input_extra=input_extra,
                               run=run or {"block": 2})
        p = oracle.run_hyperbatch(HB, job, n)
        if check(p.returncode == 0, f"{tag}: runs at {n} rank{'s' * (n > 1)} (exit {p.returncode})"):
            got[n] = by_title(load_quietly(os.path.join(tmp, f"{tag}{n}.hspy")))
        else:
            print(p.stderr[-800:])
    return got


def axes_of(s):
    return [(str(a.name), str(a.units), round(float(a.scale), 12), round(float(a.offset), 12), int(a.size))
            for a in s.axes_manager._axes]


def check_stats(tag, got, data, nav_dim, nav_axes, sig_axes):
    """Values against numpy (float64 sums; means of the patterns), and the
    calibration of each result, every rank count."""
    sig = tuple(range(nav_dim, data.ndim))
    want_total = data.astype(np.float64).sum(axis=sig)
    want_mean = data.astype(np.float64).mean(axis=tuple(range(nav_dim)))
    for n, sigs in got.items():
        t, m = sigs.get("total"), sigs.get("mean_sig")
        if not check(t is not None and m is not None, f"{tag} at {n}: both results load"):
            continue
        check(t.data.shape == want_total.shape and np.allclose(t.data, want_total, rtol=1e-12, atol=0),
              f"{tag} at {n}: sum over the signal == numpy's")
        check(m.data.shape == want_mean.shape and np.allclose(m.data, want_mean, rtol=1e-6, atol=1e-9),
              f"{tag} at {n}: mean over the navigation == numpy's")
        check(axes_of(t) == nav_axes, f"{tag} at {n}: the scan's calibration {axes_of(t)} == {nav_axes}")
        check(axes_of(m) == sig_axes, f"{tag} at {n}: the pattern's calibration {axes_of(m)} == {sig_axes}")
    ref = got.get(1)
    for n in RANKS[1:]:
        if ref and n in got:
            check(all(np.array_equal(got[n][k].data, ref[k].data) for k in ("total", "mean_sig")),
                  f"{tag}: {n} ranks == 1 rank, bit for bit")


def cli(*args):
    return subprocess.run([HB, *args], capture_output=True, text=True, env=oracle.mpi_env())


# ---------------------------------------------------------------- EMD 1.0

def write_emd(path, cubes):
    """An EMD 1.0 file as emdfile 0.0.14+ writes py4DSTEM 0.14's DataCubes:
    cubes is {root name: (data, R size, R units, Q size, Q units, Q origin)}."""
    with h5py.File(path, "w") as f:
        for k, v in (("emd_group_type", "file"), ("version_major", 1), ("version_minor", 0),
                     ("UUID", str(uuid.uuid4())), ("authoring_program", "emdfile"), ("authoring_user", "")):
            f.attrs[k] = v
        for root, (data, rs, ru, qs, qu, q0) in cubes.items():
            r = f.create_group(root)
            r.attrs["emd_group_type"], r.attrs["python_class"] = "root", "Root"
            mb = r.create_group("metadatabundle")
            mb.attrs["emd_group_type"] = "metadatabundle"
            c = mb.create_group("calibration")
            c.attrs["emd_group_type"], c.attrs["python_class"] = "metadata", "Calibration"
            for key, val, kind in (("Q_pixel_size", qs, "number"), ("R_pixel_size", rs, "number"),
                                   ("Q_pixel_units", qu.encode(), "string"),
                                   ("R_pixel_units", ru.encode(), "string"), ("QR_flip", np.bool_(False), "bool"),
                                   ("_root_treepath", b"", "string")):
                c.create_dataset(key, data=val).attrs["type"] = kind.encode()
            g = r.create_group("datacube")
            g.attrs["emd_group_type"], g.attrs["python_class"] = "array", "DataCube"
            g.create_dataset("data", data=data, chunks=(1, data.shape[1], *data.shape[2:]),
                             compression="gzip").attrs["units"] = "pixel intensity"
            for i, (name, units, step, start) in enumerate((("Rx", ru, rs, 0.0), ("Ry", ru, rs, 0.0),
                                                            ("Qx", qu, qs, -q0), ("Qy", qu, qs, -q0))):
                pts = start + step * np.arange(data.shape[i])
                # linear dims keep their first two points; a full vector is fine too
                d = g.create_dataset(f"dim{i}", data=pts[:2] if i != 1 else pts)
                d.attrs["name"], d.attrs["units"] = name, units


def test_emd(tmp):
    rng = np.random.default_rng(31)
    a = rng.integers(0, 1000, (7, 5, 8, 8)).astype(np.uint16)
    b = rng.random((3, 4, 6, 6)).astype(np.float32)
    src = os.path.join(tmp, "cubes.h5")
    write_emd(src, {"datacube_root": (a, 2.5, "nm", 0.02, "A^-1", 0.08),
                    "other_root": (b, 1.0, "pixels", 1.0, "pixels", 0.0)})
    p = cli("inspect", src)
    check(p.returncode == 0 and "input.format emd" in p.stdout and "2 signals; a job picks one with input.signal"
          in p.stdout and "'datacube_root/datacube'" in p.stdout and "'other_root/datacube'" in p.stdout,
          "inspect: EMD detected, both datacubes listed, a job must pick one")
    got = run_all(tmp, "emd", src, {"signal": "datacube_root/datacube"})
    check_stats("EMD datacube (Rx, Ry, Qx, Qy)", got, a, 2,
                [("Rx", "nm", 2.5, 0.0, 7), ("Ry", "nm", 2.5, 0.0, 5)],
                [("Qx", "1/Å", 0.02, -0.08, 8), ("Qy", "1/Å", 0.02, -0.08, 8)])
    for n, sigs in got.items():
        om = sigs["total"].original_metadata if "total" in sigs else None
        check(om is not None and om.get_item("calibration.R_pixel_size") == 2.5 and
              om.get_item("calibration.Q_pixel_units") in (b"A^-1", "A^-1"),
              f"EMD at {n}: py4DSTEM's calibration is in original_metadata.calibration")
    got = run_all(tmp, "emdpx", src, {"signal": "other_root/datacube"})
    check_stats("EMD datacube in pixels", got, b, 2, [("Rx", "<undefined>", 1.0, 0.0, 3),
                                                       ("Ry", "<undefined>", 1.0, 0.0, 4)],
                [("Qx", "<undefined>", 1.0, 0.0, 6), ("Qy", "<undefined>", 1.0, 0.0, 6)])
    # two datacubes and no input.signal: the error lists them
    job = oracle.write_job(os.path.join(tmp, "emd_none.yaml"), src, STATS, os.path.join(tmp, "none.hspy"))
    p = oracle.run_hyperbatch(HB, job, 2)
    check(p.returncode == 2 and "holds 2 signals ('datacube_root/datacube', 'other_root/datacube'); pick one with "
          "input.signal" in p.stderr, f"EMD, no input.signal: exit 2 and both named (exit {p.returncode})")
    job = oracle.write_job(os.path.join(tmp, "emd_typo.yaml"), src, STATS, os.path.join(tmp, "typo.hspy"),
                           input_extra={"signal": "datacube_root/datacub"})
    p = oracle.run_hyperbatch(HB, job, 2)
    check(p.returncode == 2 and "has no signal 'datacube_root/datacub'; the closest are 'datacube_root/datacube'"
          in p.stderr, f"EMD, a signal not there: exit 2, the closest named (exit {p.returncode})")
    # the same array as generic HDF5: values read, calibration not
    got = run_all(tmp, "emdraw", src, {"format": "hdf5", "dataset": "/datacube_root/datacube/data"})
    check_stats("EMD read as format: hdf5", got, a, 2, [("<undefined>", "<undefined>", 1.0, 0.0, 7),
                                                        ("<undefined>", "<undefined>", 1.0, 0.0, 5)],
                [("<undefined>", "<undefined>", 1.0, 0.0, 8), ("<undefined>", "<undefined>", 1.0, 0.0, 8)])


# ---------------------------------------------------------------- NeXus STXM

def write_stxm(path, counts, energy, y, x, old_style=False):
    """A PolLux-like NXstxm file: /entry1/counter0 holds (energy, sample_y,
    sample_x) counts; scalars as 1-element arrays, as Pixelator writes them."""
    def nx(parent, name, cls):
        g = parent.create_group(name)
        g.attrs["NX_class"] = np.bytes_(cls)
        return g

    def one(s):
        return np.array([s.encode()])

    with h5py.File(path, "w") as f:
        e = nx(f, "entry1", "NXentry")
        e["definition"], e["title"], e["start_time"] = one("NXstxm"), one("Fe L3 stack"), one("2026-01-02T10:00")
        d = nx(e, "counter0", "NXdata")
        d.create_dataset("data", data=counts, chunks=(1, *counts.shape[1:]))
        names = ("energy", "sample_y", "sample_x")
        if old_style:
            d["data"].attrs["signal"] = np.int32(1)
            d["data"].attrs["axes"] = np.bytes_(":".join(names))
        else:
            d.attrs["signal"] = "data"
            d.attrs["axes"] = np.array([n.encode() for n in names])
        for i, (n, v) in enumerate(zip(names, (energy, y, x))):
            d[n] = v
            d[n].attrs["axis"] = np.int32(i + 1)
        d["count_time"] = np.full(len(energy), 1e-3)
        d["stxm_scan_type"] = one("sample image stack")
        ins = nx(e, "instrument", "NXinstrument")
        src = nx(ins, "source", "NXsource")
        src["name"] = one("SLS")
        nx(e, "control", "NXmonitor")["data"] = np.full(counts.size, 400.0)


def test_stxm(tmp):
    rng = np.random.default_rng(32)
    energy = np.linspace(700.0, 710.0, 5)
    y, x = np.linspace(-2.5, 2.5, 6), np.linspace(-3.0, 3.0, 7)
    counts = rng.poisson(1e4, (5, 6, 7)).astype(np.float32)
    for style in ("new", "old"):
        src = os.path.join(tmp, f"stxm_{style}.hdf5")
        write_stxm(src, counts, energy, y, x, old_style=style == "old")
        if style == "new":
            p = cli("inspect", src)
            check(p.returncode == 0 and "input.format nexus" in p.stdout and
                  "signal 'entry1/counter0'  (/entry1/counter0/data)  <- a job uses this one" in p.stdout and
                  "(5| 7, 6)" in p.stdout, "inspect: NeXus detected, the stack (5| 7, 6) is what a job uses")
        got = run_all(tmp, f"stxm{style}", src)
        check_stats(f"STXM stack, {style} NeXus axes", got, counts, 1, [("energy", "eV", 2.5, 700.0, 5)],
                    [("sample_y", "µm", 1.0, -2.5, 6), ("sample_x", "µm", 1.0, -3.0, 7)])
        for n, sigs in got.items():
            for name, r in sigs.items():
                om = r.original_metadata
                check(om.has_item("entry1.start_time") and om.has_item("entry1.counter0.energy") and
                      om.has_item("entry1.instrument.source.name") and not om.has_item("entry1.counter0.data") and
                      om.has_item("hyperbatch.job"),
                      f"STXM {style} at {n}, {name}: the entry's scan metadata in original_metadata.entry1, "
                      "not its data; the provenance beside it")


# ---------------------------------------------------------------- older .hspy

def downgrade(src, dst, version):
    """A 3.1 file HyperSpy saved, rewritten as HyperSpy `version` wrote it:
    2.x has no navigate flags (record_by says the signal dimension); 1.0 has
    no file_format_version, and mapped_parameters for metadata with title,
    record_by and signal_type at its root (1.0 names them name, signal), its
    microscope as TEM (with EELS for the detector) and its date at the root."""
    with h5py.File(src, "r") as f, h5py.File(dst, "w") as g:
        f.copy("Experiments", g)
        for k, v in f.attrs.items():
            g.attrs[k] = v
        g.attrs["file_format_version"] = version
        for name, exp in g["Experiments"].items():
            for i in range(exp["data"].ndim):
                if "navigate" in exp[f"axis-{i}"].attrs:
                    del exp[f"axis-{i}"].attrs["navigate"]
            sig = exp["metadata/Signal"]
            sig.attrs["record_by"] = "spectrum"
            tem = exp["metadata/Acquisition_instrument/TEM"]  # items 3.0 moved
            tem.attrs["tilt_stage"] = 15.0
            tem.attrs["exposure"] = 0.5
            if version == "1.0":
                del g.attrs["file_format_version"]
                exp.move("metadata", "mapped_parameters")
                exp.move("original_metadata", "original_parameters")
                mp = exp["mapped_parameters"]
                mp.attrs["name"] = mp["General"].attrs["title"]
                mp.attrs["signal"] = mp["Signal"].attrs["signal_type"]
                mp.attrs["record_by"] = "spectrum"
                mp.attrs["date"] = mp["General"].attrs["date"]
                mp.move("Acquisition_instrument/TEM", "TEM")
                mp.move("TEM/Detector", "TEM/EELS")
                mp["TEM"].attrs["dwell_time"] = 0.002  # items 1.2 moved
                mp["Sample"].attrs["Xray_lines"] = np.array([b"Fe_La", b"O_Ka"])
                del mp["General"], mp["Signal"], mp["Acquisition_instrument"]


def _plain(v):
    """A metadata value to compare: arrays and lists of strings as lists of str."""
    if isinstance(v, (np.ndarray, list, tuple)):
        return [x.decode() if isinstance(x, bytes) else str(x) if isinstance(x, np.str_) else x for x in v]
    return v


def test_old_hspy(tmp):
    rng = np.random.default_rng(33)
    s = hs.signals.Signal1D(rng.random((4, 3, 16)).astype(np.float32))
    s.metadata.General.title = "old scan"
    s.metadata.General.date = "2026-01-02"
    s.metadata.set_item("Acquisition_instrument.TEM.beam_energy", 200.0)
    s.metadata.set_item("Acquisition_instrument.TEM.Detector.collection_angle", 12.5)
    s.metadata.set_item("Sample.elements", ["Fe", "O"])
    s.original_metadata.set_item("detector.gain", 3.5)
    s.original_metadata.set_item("exposure", 0.25)
    s.set_signal_type("EELS")
    for a, (name, units, scale, offset) in zip(s.axes_manager._axes, (("y", "nm", 2.0, 1.0), ("x", "nm", 3.0, -1.0),
                                                                       ("Energy loss", "eV", 0.5, 280.0))):
        a.name, a.units, a.scale, a.offset = name, units, scale, offset
    src = os.path.join(tmp, "v31.hspy")
    s.save(src, overwrite=True)
    for version in ("2.0", "1.0"):
        dst = os.path.join(tmp, f"v{version}.hdf5")
        downgrade(src, dst, version)
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            old = hs.load(dst)
        if not check(axes_of(old) == axes_of(s) and old.metadata.General.title == "old scan",
                     f"HyperSpy 1.7.3 loads the {version} file as the 3.1 one"):
            continue
        got = run_all(tmp, f"v{version}", dst)
        if 3 in got:  # HyperSpy wrote the list chunked, shuffled and deflated, as variable-length strings
            with h5py.File(os.path.join(tmp, f"v{version}3.hspy"), "r") as f:
                lists = [d for name, g in f["Experiments"].items() for d in [g.get("metadata/Sample/_list_elements")]]
                check(lists and all(d is not None and d.chunks == d.shape and not d.compression and
                                    h5py.check_string_dtype(d.dtype).length == 2 for d in lists),
                      f"format {version} at 3: the carried list is rewritten by value, one unfiltered chunk, fixed-length "
                      f"({[(d.chunks, d.compression, d.dtype) for d in lists if d is not None]})")
        nav = [x for x in axes_of(s)[:2]]
        check_stats(f"HyperSpy format {version}", got, s.data, 2, nav, axes_of(s)[2:])
        for n, sigs in got.items():
            for name, r in sigs.items():
                md, om = r.metadata, r.original_metadata
                own = md.General.title == name and om.has_item("hyperbatch.job")
                carried_om = om.get_item("detector.gain") == 3.5 and om.get_item("exposure") == 0.25
                carried = {k: md.get_item(k) for k in ("Acquisition_instrument.TEM.beam_energy",
                                                        "Acquisition_instrument.TEM.Detector.collection_angle",
                                                        "General.date")}
                check(own and carried_om and sorted(md.get_item("Sample.elements") or []) == ["Fe", "O"] and
                      carried == {"Acquisition_instrument.TEM.beam_energy": 200.0,
                                  "Acquisition_instrument.TEM.Detector.collection_angle": 12.5,
                                  "General.date": "2026-01-02"},
                      f"format {version} at {n}, {name}: the input's metadata carried where HyperSpy 1.7.3 puts it "
                      f"({carried}, Sample), and original_metadata; title and provenance its own")
                if version == "1.0":
                    check(md.get_item("Acquisition_instrument.TEM.Detector.collection_angle") ==
                          old.metadata.get_item("Acquisition_instrument.TEM.Detector.collection_angle"),
                          f"format 1.0 at {n}, {name}: TEM/EELS is where HyperSpy's own load puts it")
                # the smaller moves of HyperSpy's reader: where its own load has them
                moved = ("Acquisition_instrument.TEM.Stage.tilt_alpha", "Acquisition_instrument.TEM.tilt_stage",
                         "Acquisition_instrument.TEM.Detector.Camera.exposure", "Acquisition_instrument.TEM.exposure",
                         "Acquisition_instrument.TEM.Detector.exposure", "Acquisition_instrument.TEM.dwell_time",
                         "Acquisition_instrument.TEM.Detector.dwell_time", "Sample.xray_lines", "Sample.Xray_lines")
                ours = {k: _plain(md.get_item(k)) for k in moved}
                theirs = {k: _plain(old.metadata.get_item(k)) for k in moved}
                check(ours == theirs and any(v is not None for v in ours.values()),
                      f"format {version} at {n}, {name}: tilt, exposure, dwell time, X-ray lines where HyperSpy's "
                      f"load puts them ({ours} vs {theirs})")
        p = cli("inspect", dst)
        check(p.returncode == 0 and "title        old scan" in p.stdout and "signal_type  'EELS'" in p.stdout and
              "(3, 4| 16)" in p.stdout, f"inspect of format {version}: title, signal_type, (3, 4| 16)" +
              ("" if p.returncode == 0 else f" (exit {p.returncode}: {p.stderr.strip()})"))


# ---------------------------------------------------------------- non-uniform axes

def test_nonuniform(tmp):
    rng = np.random.default_rng(35)
    energy = np.array([700.0, 701.0, 701.5, 702.0, 705.0])
    src = os.path.join(tmp, "stxm_nu.hdf5")
    write_stxm(src, rng.random((5, 6, 7)).astype(np.float32), energy, np.linspace(-2.5, 2.5, 6),
               np.linspace(-3.0, 3.0, 7))
    got = run_all(tmp, "stxmnu", src)
    for n, sigs in got.items():
        a = sigs["total"].axes_manager[0] if "total" in sigs else None
        check(a is not None and not a.is_uniform and np.array_equal(a.axis, energy) and a.units == "eV",
              f"STXM at {n}: the sum over each image keeps the energies as a non-uniform axis")
    s = hs.signals.Signal1D(rng.random((3, 4, 6)).astype(np.float32))
    s.axes_manager[-1].convert_to_non_uniform_axis()
    s.axes_manager[-1].axis = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0])
    src = os.path.join(tmp, "nu.hspy")
    s.save(src, overwrite=True)
    kernels = dict(STATS, crop={"op": "crop", "axis": -1, "start": 1, "end": 5})
    got = run_all(tmp, "hspynu", src, kernels=kernels)
    want = oracle.axes_record(s.mean(axis=(0, 1)))
    for n, sigs in got.items():
        check("mean_sig" in sigs and oracle.axes_record(sigs["mean_sig"]) == want,
              f".hspy DataAxis at {n}: the mean over the navigation keeps it as HyperSpy's s.mean does")
        c = sigs.get("crop")
        a = c.axes_manager.signal_axes[0] if c is not None else None
        check(a is not None and not a.is_uniform and np.array_equal(a.axis, [2.0, 4.0, 8.0, 16.0]),
              f".hspy DataAxis at {n}: cropped, it keeps its points there, as HyperSpy's DataAxis.crop")
    # fft over a non-uniform axis: HyperSpy raises NotImplementedError; validate refuses it
    try:
        s.fft()
        hs_refuses = False
    except NotImplementedError:
        hs_refuses = True
    job = oracle.write_job(os.path.join(tmp, "nu_fft.yaml"), src, {"f": {"op": "fft"}},
                           output_file=os.path.join(tmp, "nu_fft.hspy"))
    p = subprocess.run([HB, "validate", job], capture_output=True, text=True, env=oracle.mpi_env())
    check(hs_refuses and p.returncode == 2 and "non-uniform" in p.stderr and "nu_fft.yaml:" in p.stderr,
          f"fft of a non-uniform signal axis: HyperSpy refuses ({hs_refuses}), validate exit {p.returncode} "
          f"at nu_fft.yaml:LINE:COL: {p.stderr.strip()}")


def test_functional_axis(tmp):
    """HyperSpy's FunctionalDataAxis: its expression evaluated (GNU libmatheval)
    into the points HyperSpy computes; a name the file does not give is an
    error that says which."""
    rng = np.random.default_rng(39)
    s = hs.signals.Signal1D(rng.random((3, 4, 20)).astype(np.float32))
    s.axes_manager[-1].convert_to_functional_data_axis(expression="a / (x + 1) + b * x**2", a=-100.0, b=0.5,
                                                       units="eV", name="E")
    s.axes_manager[-1].x.scale, s.axes_manager[-1].x.offset = 0.5, 2.0  # x itself calibrated
    s.axes_manager[-1].update_axis()
    want = np.array(s.axes_manager[-1].axis, dtype=float)
    src = os.path.join(tmp, "functional.hspy")
    s.save(src, overwrite=True)
    back = hs.load(src).axes_manager[-1]
    check(np.allclose(back.axis, want, rtol=1e-12), "HyperSpy reads its functional axis back with the same points")
    got = run_all(tmp, "func", src)
    for n, sigs in got.items():
        m = sigs.get("mean_sig")
        a = m.axes_manager.signal_axes[0] if m is not None else None
        check(a is not None and not a.is_uniform and np.allclose(a.axis, want, rtol=1e-12, atol=0) and
              a.name == "E" and a.units == "eV",
              f"functional axis at {n}: the mean keeps its points ({None if a is None else a.axis[:3]} == {want[:3]})")
    bad = os.path.join(tmp, "functional_bad.hspy")
    shutil.copy(src, bad)
    with h5py.File(bad, "a") as f:
        (title,) = f["Experiments"].keys()
        del f[f"Experiments/{title}/axis-2"].attrs["b"]
    job = oracle.write_job(os.path.join(tmp, "funcbad.yaml"), bad, STATS, os.path.join(tmp, "fb.hspy"))
    for n in (1, 3):
        p = oracle.run_hyperbatch(HB, job, n)
        check(p.returncode == 2 and "FunctionalDataAxis" in p.stderr and "('b')" in p.stderr,
              f"functional axis at {n} ranks: a parameter the file lacks is a job error naming it "
              f"(exit {p.returncode}: {p.stderr.strip()[-200:]})")
    # points out of order cannot be the DataAxis the results carry
    with h5py.File(bad, "a") as f:
        (title,) = f["Experiments"].keys()
        f[f"Experiments/{title}/axis-2"].attrs["b"] = -0.5
    p = oracle.run_hyperbatch(HB, job, 2)
    check(p.returncode == 2 and "not in order" in p.stderr,
          f"functional axis whose points turn back: a job error saying so (exit {p.returncode})")


# ---------------------------------------------------------------- single patterns

def test_single_pattern(tmp):
    rng = np.random.default_rng(37)
    spec = hs.signals.Signal1D(rng.random(50).astype(np.float32))
    spec.axes_manager[0].scale, spec.axes_manager[0].offset, spec.axes_manager[0].units = 0.5, 100.0, "eV"
    image = hs.signals.Signal2D(rng.random((16, 12)).astype(np.float32))
    nexus = os.path.join(tmp, "stxm_image.hdf5")
    write_stxm(nexus, image.data[np.newaxis], np.array([708.0]), np.linspace(-2.5, 2.5, 16), np.linspace(-3, 3, 12))
    with h5py.File(nexus, "a") as f:  # a single image: (sample_y, sample_x), no energy axis
        d = f["entry1/counter0"]
        data = d["data"][0]
        del d["data"], d["energy"]
        d["data"] = data
        d.attrs["axes"] = np.array([b"sample_y", b"sample_x"])
    generic = os.path.join(tmp, "spectrum.h5")
    with h5py.File(generic, "w") as f:
        f["/spectrum"] = spec.data
    window = {"op": "virtual_image", "detector": {"shape": "rectangle", "x": [102.0, 110.0], "units": "calibrated"}}
    # arrays per pattern and transforms of one pattern are that pattern's,
    # with no navigation axis, and take HyperSpy's axes (indices, factors)
    def cropped(s):
        c = s.deepcopy()
        c.crop(0, 2, 10)
        return c
    shaped = {"fft": ({"op": "fft"}, lambda s: s.fft()), "crop0": ({"op": "crop", "axis": 0, "start": 2, "end": 10},
                                                                   cropped),
              "line": ({"op": "sum", "axes": 0}, lambda s: s.sum(0)),
              "binned": ({"op": "rebin", "scale": [2, 2]}, lambda s: s.rebin(scale=(2, 2)))}
    image_kernels = dict(STATS, **{k: v[0] for k, v in shaped.items()})
    for tag, src, data, extra, kernels in (
            ("spectrum", "spectrum.hspy", spec.data, None, dict(STATS, win=window, crop0=shaped["crop0"][0])),
            ("image", "image.hspy", image.data, None, image_kernels),
            ("nexus_image", nexus, image.data, None, STATS),
            ("generic_1d", generic, spec.data, {"dataset": "/spectrum"}, STATS)):
        path = os.path.join(tmp, src)
        if tag == "spectrum":
            spec.save(path, overwrite=True)
        elif tag == "image":
            image.save(path, overwrite=True)
        got = run_all(tmp, tag, path, input_extra=extra, kernels=kernels)
        for n, sigs in got.items():
            t, m = sigs.get("total"), sigs.get("mean_sig")
            check(t is not None and t.data.shape == (1,) and np.isclose(t.data[0], data.astype(float).sum(),
                                                                         rtol=1e-12),
                  f"{tag} at {n}: a scan of one pattern: its sum, one value")
            check(m is not None and m.data.shape == data.shape and np.allclose(m.data, data, rtol=1e-7),
                  f"{tag} at {n}: the mean over the navigation is the pattern")
            if tag == "spectrum":
                w = sigs.get("win")
                check(w is not None and np.isclose(w.data[0], spec.isig[102.0:110.0].sum(-1).data[0], rtol=1e-6),
                      f"spectrum at {n}: an energy window in eV == HyperSpy's isig[102.0:110.0].sum()")
            src_signal = spec if tag == "spectrum" else image
            for name in (k for k in shaped if k in kernels):
                got_s, want = sigs.get(name), shaped[name][1](src_signal)
                check(got_s is not None and got_s.data.shape == want.data.shape and
                      np.allclose(got_s.data, want.data, rtol=1e-5, atol=1e-6) and
                      axes_of(got_s) == axes_of(want),
                      f"{tag} at {n}: {name} is HyperSpy's, {want} (got {got_s})")


def test_single_pattern_reductions(tmp):
    """A single uint16 spectrum against HyperSpy: a reduction over the
    navigation axes (it has none) returns the spectrum as it is, dtype and
    all, whatever the op; one value per pattern lies on HyperSpy's axis
    "Scalar"."""
    spec = hs.signals.Signal1D(np.array([3, 9, 4, 7, 65535, 0], np.uint16))
    spec.axes_manager[0].name, spec.axes_manager[0].units, spec.axes_manager[0].scale = "E", "eV", 0.5
    path = os.path.join(tmp, "single_u16.hspy")
    spec.save(path, overwrite=True)
    nav_ops = ("sum", "mean", "std", "var", "nanmean", "max")
    kernels = {f"{op}_nav": {"op": op, "axes": "navigation"} for op in nav_ops}
    kernels.update({"sum_sig": {"op": "sum", "axes": "signal"}, "imax": {"op": "indexmax", "axis": "E"}})
    want = {f"{op}_nav": getattr(spec, op)(spec.axes_manager.navigation_axes) for op in nav_ops}
    want.update({"sum_sig": spec.sum(-1), "imax": spec.indexmax(-1)})
    got = run_all(tmp, "single_u16", path, kernels=kernels)
    for n, sigs in got.items():
        for name, w in want.items():
            g = sigs.get(name)
            check(g is not None and g.data.dtype == w.data.dtype and np.array_equal(g.data, w.data) and
                  axes_of(g) == axes_of(w),
                  f"single uint16 spectrum at {n}: {name} is HyperSpy's {w.data.dtype} {w.data.tolist()} on "
                  f"{axes_of(w)} (got {g.data.dtype if g is not None else None} "
                  f"{g.data.tolist() if g is not None else None} on {axes_of(g) if g is not None else None})")


# ---------------------------------------------------------------- contiguous arrays

def test_contiguous(tmp):
    data = np.random.default_rng(36).random((24, 20, 16, 16)).astype(np.float32)
    src = os.path.join(tmp, "contiguous.h5")
    with h5py.File(src, "w") as f:
        f.create_dataset("/entry/data", data=data)  # no chunks: HDF5's contiguous layout
    job = oracle.write_job(os.path.join(tmp, "contig.yaml"), src, STATS, os.path.join(tmp, "contig.hspy"),
                           run={"block": 2})
    p = subprocess.run([HB, "run", job, "--dry-run"], capture_output=True, text=True, env=oracle.mpi_env())
    check(p.returncode == 0 and "contiguous, read in pieces of (1, 20, 16, 16)" in p.stdout and
          "blocks  24 of up to 20 patterns" in p.stdout,
          f"a contiguous array is planned in pieces of one scan row: 24 blocks (exit {p.returncode})")
    plain = [("<undefined>", "<undefined>", 1.0, 0.0, n) for n in data.shape]
    got = run_all(tmp, "contig", src, run={"block": 2})
    check_stats("contiguous array", got, data, 2, plain[:2], plain[2:])


# ---------------------------------------------------------------- generic HDF5 calibration

def test_generic_calibration(tmp):
    """Dimension scales (h5py's make_scale/attach_scale: names, units, a
    non-uniform one kept as such), dimension labels, NeXus-style @axes on a
    plain group, and input.axes still overriding them."""
    rng = np.random.default_rng(38)
    data = rng.random((6, 5, 8, 9)).astype(np.float32)
    src = os.path.join(tmp, "scales.h5")
    ky = np.array([0.0, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4])
    with h5py.File(src, "w") as f:
        d = f.create_dataset("scan/frames", data=data, chunks=(2, 5, 8, 9))
        for i, (name, vals, units) in enumerate([("y", 1.0 + 0.5 * np.arange(6), "nm"),
                                                 ("x", -2.0 + 0.25 * np.arange(5), "nm"),
                                                 ("ky", ky, "1/nm")]):
            sc = f.create_dataset(f"scan/{name}_axis", data=vals)
            sc.make_scale(name)
            sc.attrs["units"] = units
            d.dims[i].attach_scale(sc)
        d.dims[3].label = "kx"
    got = run_all(tmp, "scales", src, input_extra={"dataset": "scan/frames"})
    want_total = data.astype(np.float64).sum(axis=(2, 3))
    for n, sigs in got.items():
        t, m = sigs.get("total"), sigs.get("mean_sig")
        if not check(t is not None and m is not None, f"dimension scales at {n}: both results load"):
            continue
        check(np.allclose(t.data, want_total, rtol=1e-12, atol=0), f"dimension scales at {n}: sum == numpy's")
        check(axes_of(t) == [("y", "nm", 0.5, 1.0, 6), ("x", "nm", 0.25, -2.0, 5)],
              f"dimension scales at {n}: the scan's names, units, scale and offset {axes_of(t)}")
        kx, kyax = m.axes_manager.signal_axes
        check(kyax.name == "ky" and not kyax.is_uniform and np.allclose(kyax.axis, ky) and kyax.units == "1/nm",
              f"dimension scales at {n}: a non-uniform scale is kept as HyperSpy's DataAxis")
        check(kx.name == "kx" and kx.is_uniform and kx.scale == 1.0, f"dimension scales at {n}: a label names kx")
    p = cli("inspect", src)
    check(p.returncode == 0 and "ky" in p.stdout and "1/nm" in p.stdout, "inspect shows the scales' calibration")
    # input.axes over the scales
    got = run_all(tmp, "scales_over", src, input_extra={"dataset": "scan/frames",
                                                         "axes": [{"name": "row", "units": "um", "scale": 2.0}]})
    for n, sigs in got.items():
        t = sigs.get("total")
        check(t is not None and axes_of(t)[0] == ("row", "um", 2.0, 1.0, 6),
              f"input.axes at {n} overrides a dimension scale's name, units and scale (offset kept)")
    # an NXdata-style group in a file without NXentry
    src = os.path.join(tmp, "nxlike.h5")
    with h5py.File(src, "w") as f:
        g = f.create_group("measurement")
        g.attrs["signal"] = "counts"
        g.attrs["axes"] = ["sy", "sx", ".", "."]
        g.create_dataset("counts", data=data, chunks=(3, 5, 8, 9))
        g.create_dataset("sy", data=10.0 + 2.0 * np.arange(6)).attrs["units"] = "um"
        g.create_dataset("sx", data=-1.0 + 0.5 * np.arange(5)).attrs["units"] = "um"
    got = run_all(tmp, "nxlike", src, input_extra={"dataset": "measurement/counts"})
    plain = [("<undefined>", "<undefined>", 1.0, 0.0, n) for n in data.shape]
    check_stats("NeXus-style @axes without NXentry", got, data, 2, [("sy", "um", 2.0, 10.0, 6),
                                                                    ("sx", "um", 0.5, -1.0, 5)], plain[2:])


# ---------------------------------------------------------------- element types

def test_dtypes(tmp):
    rng = np.random.default_rng(34)
    cases = {"f16": (rng.random((5, 4, 30)) * 100).astype(np.float16), "bool": rng.random((5, 4, 30)) > 0.5}
    for tag, data in cases.items():
        src = os.path.join(tmp, f"{tag}.hspy")
        hs.signals.Signal1D(data).save(src, overwrite=True, chunks=(2, 4, 30), compression="gzip")
        got = run_all(tmp, tag, src)
        plain = [("<undefined>", "<undefined>", 1.0, 0.0, n) for n in data.shape]
        check_stats(f"{tag} input", got, data, 2, plain[:2], plain[2:])
        p = cli("inspect", src)
        want = "float16 (read as float32)" if tag == "f16" else "bool (read as uint8)"
        check(p.returncode == 0 and want in p.stdout, f"inspect of a {tag} file says '{want}'")


def test_complex(tmp):
    """Complex inputs (HyperSpy's ComplexSignal2D, complex64 and complex128):
    complex_part in preprocess and as a result against s.amplitude, s.phase,
    s.real and s.imag; fft and ifft of complex patterns against HyperSpy's;
    crop and change_dtype between complex types; any other op on complex
    patterns is a job error that says what to do."""
    rng = np.random.default_rng(40)
    for dtype, rtol in (("complex128", 1e-12), ("complex64", 1e-5)):
        data = (rng.normal(size=(4, 5, 12, 10)) + 1j * rng.normal(size=(4, 5, 12, 10))).astype(dtype)
        s = hs.signals.ComplexSignal2D(data)
        src = os.path.join(tmp, f"{dtype}.hspy")
        s.save(src, overwrite=True, chunks=(2, 5, 12, 10))
        kernels = {"amp": {"op": "complex_part"}, "phase": {"op": "complex_part", "part": "phase"},
                   "re": {"op": "complex_part", "part": "real"}, "im": {"op": "complex_part", "part": "imag"},
                   "spectrum": {"op": "fft"}, "back": {"op": "ifft", "return_real": False},
                   "cropped": {"op": "crop", "axis": -1, "start": 2, "end": 8},
                   "wide": {"op": "change_dtype", "dtype": "complex128"}}
        got = run_all(tmp, f"c{dtype}", src, kernels=kernels)
        want = {"amp": s.amplitude.data, "phase": s.phase.data, "re": s.real.data, "im": s.imag.data,
                "spectrum": s.fft().data, "back": s.ifft(return_real=False).data, "cropped": s.isig[:, 2:8].data,
                "wide": data.astype(np.complex128)}
        for n, sigs in got.items():
            for name, w in want.items():
                g = sigs.get(name)
                tol = rtol if name not in ("spectrum", "back") else max(rtol, 1e-10)
                check(g is not None and g.data.shape == w.shape and
                      np.allclose(g.data, w, rtol=tol, atol=tol * np.abs(w).max()),
                      f"{dtype} at {n}: {name} == HyperSpy's ({kernels[name]})")
            a = sigs.get("amp")
            check(a is not None and a.data.dtype == np.dtype("float64" if dtype == "complex128" else "float32"),
                  f"{dtype} at {n}: amplitude is {a.data.dtype if a is not None else None}, as HyperSpy's")
        # in preprocess, then any op
        job = oracle.write_job(os.path.join(tmp, f"pre{dtype}.yaml"), src, STATS,
                               output_file=os.path.join(tmp, f"pre{dtype}.hspy"),
                               preprocess=[{"op": "complex_part", "part": "amplitude"}])
        for n in RANKS:
            p = oracle.run_hyperbatch(HB, job, n)
            if check(p.returncode == 0, f"{dtype}: preprocess complex_part then sum and mean at {n} (exit {p.returncode})"):
                sigs = by_title(load_quietly(os.path.join(tmp, f"pre{dtype}.hspy")))
                amp = s.amplitude
                check(np.allclose(sigs["total"].data, amp.data.astype(np.float64).sum(axis=(2, 3)), rtol=rtol) and
                      np.allclose(sigs["mean_sig"].data, amp.data.astype(np.float64).mean(axis=(0, 1)), rtol=rtol),
                      f"{dtype} at {n}: sums and means of the amplitude == HyperSpy's s.amplitude's")
            else:
                print(p.stderr[-600:])
    src = os.path.join(tmp, "complex128.hspy")
    for kernels, words in [(STATS, "op 'sum' takes real patterns"),
                           ({"d": {"op": "decomposition", "components": 2}}, "op 'decomposition' takes real"),
                           ({"c": {"op": "change_dtype", "dtype": "float64"}}, "change only to complex64 or complex128")]:
        job = oracle.write_job(os.path.join(tmp, "cbad.yaml"), src, kernels, os.path.join(tmp, "cbad.hspy"))
        p = oracle.run_hyperbatch(HB, job, 2)
        check(p.returncode == 2 and words in p.stderr and (words.startswith("change") or "complex_part" in p.stderr),
              f"a complex input: {list(kernels.values())[0]['op']} is a job error saying '{words}' "
              f"(exit {p.returncode})")


# ---------------------------------------------------------------- overrides and errors

def test_overrides(tmp):
    si = os.path.join(tmp, "si.hspy")
    hs.signals.Signal1D(np.arange(24, dtype=np.float32).reshape(2, 3, 4)).save(si, overwrite=True)
    job = oracle.write_job(os.path.join(tmp, "wrongfmt.yaml"), si, STATS, os.path.join(tmp, "w.hspy"),
                           input_extra={"format": "emd"})
    p = oracle.run_hyperbatch(HB, job, 2)
    check(p.returncode == 2 and "input.format is emd, but the file does not look like one (looked for EMD 1.0" in
          p.stderr, f"input.format: emd on an .hspy: exit 2, says what it looked for (exit {p.returncode})")
    job = oracle.write_job(os.path.join(tmp, "ds.yaml"), si, STATS, os.path.join(tmp, "d.hspy"),
                           input_extra={"dataset": "/Experiments/__unnamed__/dat"})
    p = oracle.run_hyperbatch(HB, job, 2)
    check(p.returncode == 2 and "has no array '/Experiments/__unnamed__/dat'; the closest are "
          "'/Experiments/__unnamed__/data'" in p.stderr,
          f"a generic dataset not there: exit 2, the closest named (exit {p.returncode})")
    job = oracle.write_job(os.path.join(tmp, "mixed.yaml"), si, STATS, os.path.join(tmp, "m.hspy"),
                           input_extra={"format": "hspy", "dataset": "/Experiments/__unnamed__/data"})
    p = oracle.run_hyperbatch(HB, job, 1)
    check(p.returncode == 2 and "input.dataset names an array of a generic HDF5 file" in p.stderr,
          f"input.dataset with format: hspy: exit 2 (exit {p.returncode})")
    job = oracle.write_job(os.path.join(tmp, "badfmt.yaml"), si, STATS, os.path.join(tmp, "b.hspy"),
                           input_extra={"format": "tiff"})
    p = subprocess.run([HB, "validate", job], capture_output=True, text=True, env=oracle.mpi_env())
    check(p.returncode == 2 and "auto|hspy|emd|nexus|hdf5" in p.stderr,
          f"validate: input.format tiff is refused, the choices named (exit {p.returncode})")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        oracle.warm_up(tmp)
        test_emd(tmp)
        test_stxm(tmp)
        test_old_hspy(tmp)
        test_nonuniform(tmp)
        test_functional_axis(tmp)
        test_contiguous(tmp)
        test_generic_calibration(tmp)
        test_single_pattern(tmp)
        test_single_pattern_reductions(tmp)
        test_dtypes(tmp)
        test_complex(tmp)
        test_overrides(tmp)
    oracle.hbcheck.finish("test_readers")


if __name__ == "__main__":
    main()
