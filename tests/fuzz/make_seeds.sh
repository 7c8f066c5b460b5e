#!/usr/bin/env bash
# Regenerates the committed seed corpora (run by hand; the fuzz test only reads them):
#   corpus_job/   configs/demo.yaml and variants covering every section, op, detector
#                 shape, --set lines ("#SET KEY=VALUE", see fuzz_job.c), anchors and errors;
#   corpus_hspy/  tiny files from `hyperbatch synth` (both kinds, several dtypes, gzip and
#                 none, contiguous) and h5py-made ones: generic /data, non-uniform axes,
#                 odd attribute types, several signals, no signal, an EMD datacube, NeXus
#                 STXM stacks.  Each < 50 KB.
#   corpus_filters/ stored chunks as h5py and Debian's serial plugins write them (LZ4,
#                 blosc with three codecs, bitshuffle with and without LZ4) and zstd
#                 frames, each behind the two bytes fuzz_filters.c reads.
# Usage: tests/fuzz/make_seeds.sh build/hyperbatch
set -euo pipefail
HB=$(realpath "$1")
cd "$(dirname "$0")"
ROOT=$(cd ../.. && pwd)
J=corpus_job
H=corpus_hspy
rm -f "$J"/* "$H"/*
mkdir -p crashes/hspy

cp "$ROOT/configs/demo.yaml" "$J/demo.yaml"
cat >"$J/all_sections.yaml" <<'Y'
version: 1
input:
  file: data/scan.hspy
  signal: scan
  axes:
    - {name: y, units: nm, scale: 0.5, offset: 0}
    - {name: x, units: nm, scale: 0.5, offset: -3.5}
output: {file: results/scan.hspy, overwrite: true, compression: none, previews: false}
preprocess:
  - op: filter_hot_pixels
    threshold: 8
kernels:
  - {name: bf, op: virtual_image, detector: {shape: circle, center: [64, 64], radius: 8}}
  - {name: adf, op: virtual_image, detector: {shape: annulus, center: [64, 64], inner: 16, outer: 60, units: px}}
  - {name: pt, op: virtual_image, detector: {shape: point, at: [3, 4]}}
  - {name: box, op: virtual_image, detector: {shape: rectangle, x: [0, 10], y: [5, 9]}}
  - {name: cal, op: virtual_image, detector: {shape: circle, center: [0.1, -0.2], radius: 0.05, units: calibrated}}
  - {name: m, op: virtual_image, detector: {shape: mask, file: mask.h5, dataset: /mask}}
  - {name: s, op: sum, axes: signal}
  - {name: mean_dp, op: mean, axes: navigation}
  - {name: mx, op: max, axes: navigation}
  - {name: mn, op: min, axes: signal}
run: {block: 256, threads: 2, checkpoint: false, progress: lines, mpiio_hints: {romio_cb_read: enable, cb_buffer_size: 16777216}}
Y
cat >"$J/generic.yaml" <<'Y'
version: 1
input: {file: raw.h5, dataset: /entry/data/data, navigation_dimension: 1}
output: {file: out.hspy}
kernels:
  - name: total
    op: sum
    axes: signal
run:
  progress: off
Y
cat >"$J/decomposition.yaml" <<'Y'
version: 1
input: {file: si.hspy}
output: {file: pca.hspy}
kernels:
  - {name: pca, op: decomposition, algorithm: svd, components: 4, centre: navigation, svd_solver: randomized, n_iter: 3, oversampling: 5, random_seed: 7}
  - {name: nmf, op: decomposition, algorithm: nmf, components: 3, solver: mu, init: nndsvda, max_iter: 50}
Y
cat >"$J/sets.yaml" <<'Y'
#SET kernels.bf.detector.radius=10
#SET kernels.0.detector.center=[60, 66]
#SET output.file=other.hspy
#SET run.block=auto
version: 1
input: {file: s.hspy}
output: {file: o.hspy}
kernels:
  - {name: bf, op: virtual_image, detector: {shape: circle, center: [8, 8], radius: 3}}
Y
cat >"$J/anchors.yaml" <<'Y'
version: 1
input: {file: s.hspy}
output: {file: o.hspy}
det: &d {shape: circle, center: [8, 8], radius: 3}
kernels:
  - {name: a, op: virtual_image, detector: *d}
  - {name: b, op: virtual_image, detector: *d}
Y
cat >"$J/laughs.yaml" <<'Y'
version: 1
a: &a [x, x, x, x, x, x, x, x, x]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: [*d, *d, *d, *d, *d, *d, *d, *d, *d]
Y
cat >"$J/errors.yaml" <<'Y'
version: 2
input: {file: "s.hspy", fiel: x}
output: {file: 3, overwrite: maybe, compression: lz4}
kernels:
  - {name: "bad name!", op: sum, axes: both}
  - {name: dup, op: virtual_image, detector: {shape: circle, center: [1], radius: -1}}
  - {name: dup, op: nope}
run: {block: -3, threads: 1000, progress: "off"}
Y
printf 'version: 1\ninput: {file: s.hspy}\noutput: {file: o.hspy}\nkernels: []\n---\nversion: 1\n' >"$J/two_docs.yaml"
printf 'version: 1\r\ninput:\r\n  file: "s\\u00e9.hspy"\r\noutput: {file: o.hspy}\r\nkernels:\r\n  - {name: t, op: mean, axes: signal}\r\n' >"$J/crlf_unicode.yaml"

# ---- .hspy seeds
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
"$HB" synth 4dstem "$t/4dstem_gzip.hspy" --shape 2,2,8,8 >/dev/null
"$HB" synth 4dstem "$t/4dstem_none_f32.hspy" --shape 3,2,6,5 --chunks 2,1,6,5 --dtype float32 --compression none >/dev/null
"$HB" synth 4dstem "$t/4dstem_u8.hspy" --shape 1,2,4,4 --dtype uint8 >/dev/null
"$HB" synth eels "$t/eels.hspy" --shape 2,2,16 --dtype float64 --compression none >/dev/null
/usr/bin/python3 - "$H" "$t" <<'PY'
import sys, os
import numpy as np, h5py
H, T = sys.argv[1], sys.argv[2]

def strip_copy(src, dst, libver="earliest"):
    """The synth file as written, less metadata/Synthetic (the ground truth), to stay small."""
    with h5py.File(src, "r") as s, h5py.File(dst, "w", libver=libver) as d:
        def rec(sg, dg):
            for k, v in sg.attrs.items():
                dg.attrs[k] = v
            for name, obj in sg.items():
                if name == "Synthetic":
                    continue
                if isinstance(obj, h5py.Group):
                    rec(obj, dg.create_group(name))
                else:
                    sg.copy(obj, dg, name)
        rec(s, d)
for name in ["4dstem_gzip", "4dstem_none_f32", "4dstem_u8", "eels"]:
    strip_copy(f"{T}/{name}.hspy", f"{H}/{name}.hspy")
strip_copy(f"{T}/4dstem_gzip.hspy", f"{H}/4dstem_gzip_latest.hspy", "latest")
def hspy(path, signals):
    with h5py.File(path, "w", libver="earliest") as f:
        f.attrs["file_format"] = "HyperSpy"
        f.attrs["file_format_version"] = "3.1"
        ex = f.create_group("Experiments")
        for name, data, axes in signals:
            g = ex.create_group(name)
            g.create_dataset("data", data=data, chunks=data.shape if data.ndim else None)
            for i, ax in enumerate(axes):
                a = g.create_group(f"axis-{i}")
                for k, v in ax.items():
                    if k == "axis":
                        a.create_dataset("axis", data=v)
                    else:
                        a.attrs[k] = v
            m = g.create_group("metadata")
            m.create_group("General").attrs["title"] = name
            m.create_group("Signal").attrs["signal_type"] = ""
            g.create_group("original_metadata")
d = np.arange(2 * 3 * 4 * 4, dtype=np.uint16).reshape(2, 3, 4, 4)
nav = lambda n, s: {"name": n, "units": "nm", "scale": 0.5, "offset": 0.0, "size": s, "navigate": True}
sig = lambda n, s: {"name": n, "units": "1/nm", "scale": 0.02, "offset": -0.04, "size": s, "navigate": False}
hspy(f"{H}/nonuniform_axis.hspy", [("scan", d, [nav("y", 2), nav("x", 3),
     {"name": "ky", "units": "1/nm", "axis": np.array([0.0, 0.1, 0.3, 0.6]), "size": 4, "navigate": False},
     sig("kx", 4)])])
# HyperSpy's FunctionalDataAxis: an expression of the axis in the group x
hspy(f"{H}/functional_axis.hspy", [("scan", d, [nav("y", 2), nav("x", 3), sig("ky", 4),
     {"name": "E", "units": "eV", "_type": "FunctionalDataAxis", "expression": "a / (x + 1) + b * x**2",
      "a": -100.0, "b": 0.5, "size": 4, "navigate": False}])])
with h5py.File(f"{H}/functional_axis.hspy", "a") as f:
    x = f.create_group("Experiments/scan/axis-3/x")
    for k, v in {"_type": "UniformDataAxis", "scale": 0.5, "offset": 2.0, "size": 4, "navigate": False}.items():
        x.attrs[k] = v
hspy(f"{H}/two_signals.hspy", [("a", d, [nav("y", 2), nav("x", 3), sig("ky", 4), sig("kx", 4)]),
                               ("b", d[:, :, :2, :2].astype(np.float32), [nav("y", 2), nav("x", 3), sig("ky", 2), sig("kx", 2)])])
# attribute types hyperbatch must cope with: vlen strings, bytes, numpy bools, ints for booleans
with h5py.File(f"{H}/attr_types.hspy", "w", libver="earliest") as f:
    f.attrs["file_format"] = np.bytes_(b"HyperSpy")
    f.attrs["file_format_version"] = "3.3"
    g = f.create_group("Experiments/s")
    g.create_dataset("data", data=np.zeros((2, 2, 3), np.int32), chunks=(1, 2, 3), compression="gzip", shuffle=True)
    for i, (n, navg) in enumerate([("y", np.bool_(True)), ("x", 1), ("E", np.bool_(False))]):
        a = g.create_group(f"axis-{i}")
        a.attrs["name"] = np.bytes_(n.encode())
        a.attrs["units"] = "<undefined>"
        a.attrs["scale"] = np.float32(2.5) if i else 3
        a.attrs["offset"] = -1
        a.attrs["navigate"] = navg
    g.create_group("metadata/General").attrs["title"] = np.bytes_(b"t" * 300)
    g.create_group("metadata/Signal").attrs["signal_type"] = "EELS"
with h5py.File(f"{H}/generic_data.h5", "w", libver="earliest") as f:
    f.create_dataset("data", data=np.ones((2, 2, 3, 3), np.float64), chunks=(1, 1, 3, 3))
with h5py.File(f"{H}/no_signal.hspy", "w", libver="earliest") as f:
    f.attrs["file_format"] = "HyperSpy"
    f.create_group("Experiments/empty")
    f.create_dataset("Experiments/odd/data", data=np.zeros((2,), np.complex64))
PY
# ---- reproducers of the open reader bugs (crashes/hspy/, listed in crashes/KNOWN_OPEN):
# the other readers' layouts: an EMD 1.0 datacube, NeXus STXM stacks (new and old axis rules)
/usr/bin/python3 - "$H" <<'PY'
import sys
import numpy as np, h5py
H = sys.argv[1]
with h5py.File(f"{H}/emd_datacube.emd", "w", libver="earliest") as f:
    f.attrs.update({"emd_group_type": "file", "version_major": 1, "version_minor": 0})
    r = f.create_group("datacube_root")
    r.attrs.update({"emd_group_type": "root", "python_class": "Root"})
    c = r.create_group("metadatabundle/calibration")
    for k, v in (("R_pixel_size", 2.5), ("R_pixel_units", b"nm"), ("Q_pixel_size", 0.02), ("Q_pixel_units", b"A^-1")):
        c[k] = v
    g = r.create_group("datacube")
    g.attrs.update({"emd_group_type": "array", "python_class": "DataCube"})
    g.create_dataset("data", data=np.arange(3 * 2 * 4 * 4, dtype=np.uint16).reshape(3, 2, 4, 4), chunks=(1, 2, 4, 4))
    for i, n in enumerate(("Rx", "Ry", "Qx", "Qy")):
        g[f"dim{i}"] = np.array([0.0, 1.0])
        g[f"dim{i}"].attrs.update({"name": n, "units": "nm"})
for style in ("new", "old"):
    with h5py.File(f"{H}/stxm_{style}.hdf5", "w", libver="earliest") as f:
        e = f.create_group("entry1")
        e.attrs["NX_class"] = np.bytes_("NXentry")
        e["definition"], e["title"] = np.array([b"NXstxm"]), np.array([b"stack"])
        d = e.create_group("counter0")
        d.attrs["NX_class"] = np.bytes_("NXdata")
        d.create_dataset("data", data=np.ones((3, 4, 5), np.float32), chunks=(1, 4, 5))
        names = ("energy", "sample_y", "sample_x")
        if style == "old":
            d["data"].attrs.update({"signal": np.int32(1), "axes": np.bytes_(":".join(names))})
        else:
            d.attrs.update({"signal": "data", "axes": np.array([n.encode() for n in names])})
        for i, (n, size) in enumerate(zip(names, (3, 4, 5))):
            d[n] = np.linspace(700.0, 710.0, size)
            d[n].attrs["axis"] = np.int32(i + 1)
PY

# attributes and axis points whose dataspace holds more than the reader expects
/usr/bin/python3 - crashes/hspy <<'PY'
import sys
import numpy as np, h5py
C = sys.argv[1]
def base(path):
    f = h5py.File(f"{C}/{path}", "w", libver="earliest")
    f.attrs["file_format"] = "HyperSpy"
    f.attrs["file_format_version"] = "3.1"
    g = f.create_group("Experiments/s")
    g.create_dataset("data", data=np.zeros((2, 4), np.uint16))
    for i in range(2):
        a = g.create_group(f"axis-{i}")
        a.attrs["name"] = "ab"[i]
        a.attrs["navigate"] = np.bool_(i == 0)
        a.attrs["scale"] = 1.0
    g.create_group("metadata/General").attrs["title"] = "t"
    return f, g
f, g = base("axis_scale_array.hspy"); g["axis-1"].attrs["scale"] = np.arange(1000.0); f.close()
f, g = base("axis_navigate_int_array.hspy"); g["axis-1"].attrs["navigate"] = np.zeros(64, np.int32); f.close()
f, g = base("axis_navigate_bool_array.hspy"); g["axis-1"].attrs["navigate"] = np.zeros(64, np.bool_); f.close()
f, g = base("axis_name_fixed_str_array.hspy")
g["axis-1"].attrs.create("name", np.array([b"abcdefgh", b"ijklmnop"], dtype="S8")); f.close()
f, g = base("title_vlen_str_array.hspy")
g["metadata/General"].attrs.create("title", ["x"] * 16, dtype=h5py.string_dtype()); f.close()
f, g = base("axis_points_longer_than_axis.hspy"); g["axis-1"].create_dataset("axis", data=np.arange(100.0)); f.close()
PY
# ---- corpus_filters: byte 0 = filter (0 lz4, 1 blosc, 2 zstd, 3 bitshuffle+LZ4,
# 4 bitshuffle) + 5 * block choice; byte 1 = log2(element size) | (KiB - 1) << 2
F=corpus_filters
mkdir -p "$F"
rm -f "$F"/*
/usr/bin/python3 - "$F" <<'PY'
import ctypes, os, sys, tempfile
import h5py, numpy as np
out = sys.argv[1]
rng = np.random.default_rng(5)
z = ctypes.CDLL("libzstd.so.1")
z.ZSTD_compressBound.restype = z.ZSTD_compress.restype = ctypes.c_size_t
def seed(name, which, es, data_bytes, stored):
    kib = (data_bytes + 1023) // 1024
    with open(os.path.join(out, name), "wb") as f:
        f.write(bytes([which, (es.bit_length() - 1) | (kib - 1) << 2]) + stored)
for dtype in ("uint8", "uint16", "float32"):
    data = (rng.poisson(3, (4, 20, 24)) * (np.arange(24) % 5)).astype(dtype)
    es = data.dtype.itemsize
    for name, which, kw in [("lz4", 0, dict(compression=32004, compression_opts=(512,))),
                            ("blosc_lz4", 1, dict(compression=32001, compression_opts=(0, 0, 0, 0, 5, 1, 1))),
                            ("blosc_zstd", 1, dict(compression=32001, compression_opts=(0, 0, 0, 0, 5, 2, 5))),
                            ("blosc_zlib", 1, dict(compression=32001, compression_opts=(0, 0, 0, 0, 5, 0, 4))),
                            ("bslz4", 3, dict(compression=32008, compression_opts=(0, 2))),
                            ("bs", 4, dict(compression=32008, compression_opts=(0, 0)))]:
        with tempfile.NamedTemporaryFile(suffix=".h5") as t:
            with h5py.File(t.name, "w") as f:
                f.create_dataset("d", data=data, chunks=data.shape, **kw)
            with h5py.File(t.name) as f:
                stored = f["d"].id.read_direct_chunk((0, 0, 0))[1]
        seed(f"{name}_{dtype}", which, es, data.nbytes, stored)
    raw = data.tobytes()
    buf = ctypes.create_string_buffer(z.ZSTD_compressBound(ctypes.c_size_t(len(raw))))
    n = z.ZSTD_compress(buf, ctypes.c_size_t(len(buf)), raw, ctypes.c_size_t(len(raw)), 3)
    seed(f"zstd_{dtype}", 2, es, data.nbytes, buf.raw[:n])
PY

ls -l "$J" "$H" "$F"
big=$(find "$J" "$H" "$F" -size +50k)
[ -z "$big" ] || { echo "seeds over 50 KB: $big"; exit 1; }
