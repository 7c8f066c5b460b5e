"""Compressed inputs (docs/job-format.md "Compressed inputs"): a HyperSpy
file whose data is rewritten with h5py through each filter detector and
HyperSpy users meet (bitshuffle/LZ4 as Debian's bitshuffle plugin writes
it, bitshuffle alone, HDF5's LZ4 filter, blosc with its LZ4 and zstd codecs,
zstd), then a job on it at 1, 2 and 3 ranks on the raw chunk path, with
run.threads 2, and through HDF5's own read path (HB_READ=hdf5).  Values
against numpy on the same array, the calibration HyperSpy wrote kept.

Also: a corrupt chunk in each is an I/O error naming the chunk on both
paths (no crash, no hang); bitshuffle is found with HDF5_PLUGIN_PATH set
to a folder without it; a filter no package provides for this HDF5 is an
error naming its id and why; inspect names the filters.

usage: /usr/bin/python3 test_filters.py path/to/hyperbatch"""
import ctypes
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle  # noqa: E402
from oracle import by_title, check, hs, load_quietly  # noqa: E402
import h5py  # noqa: E402

HB = os.path.abspath(sys.argv[1])
KERNELS = {"total": {"op": "sum", "axes": "signal"}, "mean_sig": {"op": "mean", "axes": "navigation"}}
ZSTD = 32015
WRITE_UNKNOWN_FILTER = """
import sys, h5py
path, fid = sys.argv[1], int(sys.argv[2])
with h5py.File(path, "w") as f:
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_chunk((2, 5, 16, 16))
    dcpl.set_filter(fid, h5py.h5z.FLAG_OPTIONAL, ())
    dsid = h5py.h5d.create(f.id, b"data", h5py.h5t.NATIVE_UINT16, h5py.h5s.create_simple((4, 5, 16, 16)), dcpl=dcpl)
    for i in (0, 2):
        dsid.write_direct_chunk((i, 0, 0, 0), bytes(100))
"""


def zstd_compress(raw, level=3):
    """libzstd through ctypes: Debian 12 has no zstd HDF5 plugin to write with."""
    z = ctypes.CDLL("libzstd.so.1")
    z.ZSTD_compressBound.restype = ctypes.c_size_t
    z.ZSTD_compress.restype = ctypes.c_size_t
    cap = z.ZSTD_compressBound(ctypes.c_size_t(len(raw)))
    buf = ctypes.create_string_buffer(cap)
    n = z.ZSTD_compress(buf, ctypes.c_size_t(cap), raw, ctypes.c_size_t(len(raw)), level)
    assert not z.ZSTD_isError(ctypes.c_size_t(n))
    return buf.raw[:n]


def data_path(f):
    (title,) = f["Experiments"].keys()
    return f"Experiments/{title}/data"


def refilter(src, dst, filt):
    """src's data rewritten through filt: (compression, compression_opts) for
    h5py, or "zstd" (chunks compressed here and written directly, with the
    filter in the pipeline as hdf5plugin's Zstd sets it)."""
    shutil.copy(src, dst)
    with h5py.File(dst, "a") as f:
        path = data_path(f)
        old = f[path]
        data, chunks, attrs = old[...], old.chunks, dict(old.attrs)
        del f[path]
        if filt == "zstd":
            dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            dcpl.set_chunk(chunks)
            # optional: this h5py has no zstd filter and refuses a mandatory unknown one
            dcpl.set_filter(ZSTD, h5py.h5z.FLAG_OPTIONAL, (3,))
            space = h5py.h5s.create_simple(data.shape)
            dsid = h5py.h5d.create(f.id, path.encode(), h5py.h5t.py_create(data.dtype), space, dcpl=dcpl)
            grid = [range(0, s, c) for s, c in zip(data.shape, chunks)]
            for off in np.array(np.meshgrid(*grid, indexing="ij")).reshape(len(chunks), -1).T:
                block = np.zeros(chunks, data.dtype)
                part = data[tuple(slice(o, o + c) for o, c in zip(off, chunks))]
                block[tuple(slice(0, s) for s in part.shape)] = part
                dsid.write_direct_chunk(tuple(int(o) for o in off), zstd_compress(block.tobytes()))
            ds = f[path]
        else:
            comp, opts = filt
            ds = f.create_dataset(path, data=data, chunks=chunks, compression=comp, compression_opts=opts)
        for k, v in attrs.items():
            ds.attrs[k] = v
    return data


def axes_of(s):
    return [(str(a.name), str(a.units), round(float(a.scale), 12), round(float(a.offset), 12), int(a.size))
            for a in s.axes_manager._axes]


def run_job(tmp, tag, src, n, env_extra=None, run=None):
    job = oracle.write_job(os.path.join(tmp, f"{tag}.yaml"), src, KERNELS, output_file=os.path.join(tmp, f"{tag}.hspy"),
                           run=run or {"block": 1})
    return oracle.run_hyperbatch(HB, job, n, env=oracle.mpi_env(env_extra)), os.path.join(tmp, f"{tag}.hspy")


def check_values(tag, out, data, nav_axes, sig_axes):
    sigs = by_title(load_quietly(out))
    t, m = sigs.get("total"), sigs.get("mean_sig")
    if not check(t is not None and m is not None, f"{tag}: both results load"):
        return
    want_total = data.astype(np.float64).sum(axis=(2, 3))
    want_mean = data.astype(np.float64).mean(axis=(0, 1))
    check(t.data.shape == want_total.shape and np.allclose(t.data, want_total, rtol=1e-12, atol=0),
          f"{tag}: sum over the signal == numpy's")
    check(m.data.shape == want_mean.shape and np.allclose(m.data, want_mean, rtol=1e-6, atol=1e-9),
          f"{tag}: mean over the navigation == numpy's")
    check(axes_of(t) == nav_axes and axes_of(m) == sig_axes, f"{tag}: the calibration HyperSpy wrote is kept")


def corrupt_chunk(path, index):
    """Overwrite bytes inside the index-th stored chunk; returns its offset."""
    with h5py.File(path) as f:
        ds = f[data_path(f)]
        info = ds.id.get_chunk_info(index)
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset + min(14, info.size // 2))
        fh.write(b"\xff\x13\x77\x00\x00\x99" * 3)
    return tuple(int(o) for o in info.chunk_offset)


def make_source(tmp, name, dtype, nav, sig, chunks, seed):
    rng = np.random.default_rng(seed)
    data = rng.poisson(4.0, nav + sig).astype(dtype)
    data[..., : sig[0] // 3, :] *= 3  # some structure for the compressors
    s = hs.signals.Signal2D(data)
    for ax, (nm, un, sc, of) in zip(s.axes_manager._axes, [("y", "nm", 0.5, 1.0), ("x", "nm", 0.25, -2.0),
                                                          ("ky", "1/nm", 0.02, -0.1), ("kx", "1/nm", 0.03, 0.2)]):
        ax.name, ax.units, ax.scale, ax.offset = nm, un, sc, of
    path = os.path.join(tmp, name)
    s.save(path, chunks=chunks, overwrite=True)
    return path


def main():
    tmp = tempfile.mkdtemp(prefix="hb_filters_")
    oracle.warm_up(tmp)
    # uint16 in whole chunks; float32 with partial edge chunks and a chunk
    # size that is not a multiple of 8 elements (bitshuffle's stored tail)
    sources = {
        "u16": make_source(tmp, "u16.hspy", "uint16", (6, 5), (16, 16), (2, 5, 16, 16), 1),
        "f32": make_source(tmp, "f32.hspy", "float32", (7, 5), (15, 13), (2, 3, 15, 13), 2),
    }
    filters = {
        "bitshuffle_lz4": (32008, (0, 2)),
        "bitshuffle_lz4_b64": (32008, (64, 2)),  # many blocks per chunk, a shorter last block
        "bitshuffle": (32008, (0, 0)),
        "lz4": (32004, (256,)),  # many LZ4 blocks; noisy ones are stored uncompressed
        "blosc_lz4": (32001, (0, 0, 0, 0, 5, 1, 1)),
        "blosc_zstd_bitshuffle": (32001, (0, 0, 0, 0, 5, 2, 5)),
        "zstd": "zstd",
    }
    for dname, src in sources.items():
        ref = by_title(load_quietly(src))
        (s,) = ref.values()
        nav_axes = axes_of(s.sum(s.axes_manager.signal_axes))
        sig_axes = axes_of(s.mean(s.axes_manager.navigation_axes))
        for fname, filt in filters.items():
            tag = f"{dname}_{fname}"
            path = os.path.join(tmp, f"{tag}.hspy")
            data = refilter(src, path, filt)
            if filt != "zstd":  # this h5py has no zstd filter to read it back with
                with h5py.File(path) as f:
                    check(np.array_equal(f[data_path(f)][...], data), f"{tag}: h5py reads back what it wrote")
            for n, env, run, how in [(1, None, None, "raw, 1 rank"), (2, None, None, "raw, 2 ranks"),
                                     (3, None, None, "raw, 3 ranks"), (1, None, {"block": 1, "threads": 2},
                                                                      "raw, run.threads 2"),
                                     (2, {"HB_READ": "hdf5"}, None, "HDF5's path, 2 ranks")]:
                p, out = run_job(tmp, f"{tag}_{n}{'t' if run else ''}{'h' if env else ''}", path, n, env, run)
                if check(p.returncode == 0, f"{tag} ({how}) runs (exit {p.returncode})"):
                    check_values(f"{tag} ({how})", out, data, nav_axes, sig_axes)
                else:
                    print(p.stderr[-800:])
            if fname == "bitshuffle":
                continue  # no checksum, nothing to catch: corrupt bytes are just other values
            bad = os.path.join(tmp, f"{tag}_bad.hspy")
            shutil.copy(path, bad)
            off = corrupt_chunk(bad, 1)
            chunk = "chunk at (" + ", ".join(str(o) for o in off) + ")"
            for n, env, path_kind, words in [(2, None, "raw", "is corrupt"),
                                             (3, {"HB_READ": "hdf5"}, "HDF5's", "cannot be read (HDF5")]:
                p, _ = run_job(tmp, f"{tag}_bad{n}", bad, n, env)
                err = p.stderr
                check(p.returncode == 3 and chunk in err and words in err,
                      f"{tag}: a corrupt chunk on {path_kind} path at {n} ranks is an I/O error naming "
                      f"{chunk} (exit {p.returncode}: {err.strip().splitlines()[-1][:300] if err.strip() else ''})")

    # bitshuffle found when HDF5_PLUGIN_PATH names a folder that does not have it
    empty = os.path.join(tmp, "no_plugins")
    os.makedirs(empty, exist_ok=True)
    for folder in (empty, "/nonexistent/plugins"):
        p, out = run_job(tmp, "pluginpath", os.path.join(tmp, "u16_bitshuffle_lz4.hspy"), 2,
                         {"HDF5_PLUGIN_PATH": folder})
        check(p.returncode == 0, f"bitshuffle with HDF5_PLUGIN_PATH={folder} (exit {p.returncode}) "
              f"{p.stderr[-300:] if p.returncode else ''}")

    # a filter this HDF5 cannot load: zfp (Debian's plugin is for the serial HDF5 only)
    # and an id nobody registered; chunks written directly, flagged optional
    # so that h5py lets the dataset be made
    for fid, name, words in [(32013, "zfp", "hdf5-filter-plugin-zfp-serial"), (47001, "unknown", "re-save")]:
        path = os.path.join(tmp, f"filter{fid}.h5")
        # in a process that cannot load the plugin (whose checks would refuse these bytes)
        subprocess.run([sys.executable, "-c", WRITE_UNKNOWN_FILTER, path, str(fid)], check=True,
                       env=dict(os.environ, HDF5_PLUGIN_PATH=empty))
        job = oracle.write_job(os.path.join(tmp, f"filter{fid}.yaml"), path, KERNELS,
                               output_file=os.path.join(tmp, f"filter{fid}.hspy"), input_extra={"dataset": "data"})
        for n in (1, 3):
            p = oracle.run_hyperbatch(HB, job, n)
            err = p.stderr
            check(p.returncode == 3 and f"filter {fid} ({name})" in err and words in err,
                  f"filter {fid} at {n} ranks: an I/O error naming id {fid}, {name} and '{words}' "
                  f"(exit {p.returncode}: {err.strip()[-300:]})")

    p = subprocess.run([HB, "inspect", os.path.join(tmp, "u16_bitshuffle_lz4.hspy")], capture_output=True, text=True)
    check(p.returncode == 0 and "bitshuffle(id 32008)" in p.stdout, "inspect names the bitshuffle filter")
    p = subprocess.run([HB, "inspect", os.path.join(tmp, "f32_zstd.hspy")], capture_output=True, text=True)
    check(p.returncode == 0 and "zstd(id 32015)" in p.stdout, "inspect names the zstd filter")
    shutil.rmtree(tmp, ignore_errors=True)
    oracle.finish("interop_filters")


main()
