#!/usr/bin/env bash
# The raw chunk path (chunks pread at their address + libdeflate + unshuffle),
# by whole blocks or streamed chunk by chunk, gives exactly what HDF5's own
# read path gives, for every layout and filter combination we decode, and
# falls back to HDF5 for those we don't (LZF through Debian's plugin); a
# filter with no plugin is an error naming it.
set -euo pipefail
HB=$1
. "$(dirname "$0")/../lib.sh"
cd "$WORK"
"$HB" synth 4dstem u16.hspy --shape 13,11,40,36 --chunks 4,3,40,36 --seed 5 >/dev/null
"$HB" synth 4dstem sigchunks.hspy --shape 7,9,40,36 --chunks 3,2,15,7 --seed 8 >/dev/null
"$HB" synth 4dstem plain.hspy --shape 6,7,24,20 --compression none --dtype float64 >/dev/null
$HB_PYTHON - <<'PY'
import h5py, numpy as np
rng = np.random.default_rng(3)
d = rng.integers(-2**20, 2**20, (9, 10, 12, 14), dtype=np.int32)
with h5py.File("order.h5", "w") as f:       # float64 sums depend on the order of the patterns
    f.create_dataset("d", data=rng.normal(size=(9, 13, 12, 14)) * 10.0 ** rng.integers(-8, 8, (9, 13, 1, 1)),
                     chunks=(2, 5, 12, 14), compression="gzip", shuffle=True)
with h5py.File("noshuffle.h5", "w") as f:   # gzip without shuffle
    f.create_dataset("d", data=d, chunks=(2, 3, 12, 14), compression="gzip", compression_opts=6)
with h5py.File("shuffleonly.h5", "w") as f:  # shuffle without compression, float64
    f.create_dataset("d", data=d.astype("f8") / 7, chunks=(4, 4, 6, 14), shuffle=True)
with h5py.File("bigendian.h5", "w") as f:    # not native byte order: HDF5 must convert
    f.create_dataset("d", data=d.astype(">u2"), chunks=(2, 5, 12, 14), compression="gzip", shuffle=True)
with h5py.File("u8fletcher.h5", "w") as f:  # a filter we leave to HDF5 (checksums)
    f.create_dataset("d", data=(d & 255).astype("u1"), chunks=(3, 3, 12, 14), fletcher32=True, compression="gzip")
with h5py.File("lzf.h5", "w") as f:         # LZF: HDF5 decodes it with Debian's hdf5-plugin-lzf
    f.create_dataset("d", data=(d & 255).astype("u1"), chunks=(3, 3, 12, 14), compression="lzf")
with h5py.File("bzip2.h5", "w") as f:       # bzip2 (filter 307): no plugin this HDF5 can load
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_chunk((3, 3, 12, 14))
    dcpl.set_filter(307, h5py.h5z.FLAG_OPTIONAL, (9,))
    h5py.h5d.create(f.id, b"d", h5py.h5t.NATIVE_UINT8, h5py.h5s.create_simple((9, 10, 12, 14)), dcpl)
    f["d"].id.write_direct_chunk((0, 0, 0, 0), b"not bzip2")
PY
# Debian's hdf5-plugin-lzf puts its plugin where this HDF5 looks by default
LZF_PLUGIN=$(ls /usr/lib/*/hdf5/openmpi/plugins/liblzf_filter.so 2>/dev/null || true)

"$HB" synth eels eels2d.hspy --shape 9,13,200 --chunks 2,5,200 --seed 3 >/dev/null
"$HB" synth eels eels1d.hspy --shape 37,300 --chunks 8,300 --seed 4 >/dev/null

job() { # job FILE [DATASET]
  {
    echo "version: 1"
    echo "input: {file: $1${2:+, dataset: $2}}"
    echo "output: {file: out.hspy, previews: false, overwrite: true}"
    echo "kernels:"
    echo "  - {name: total, op: sum, axes: signal}"
    echo "  - {name: peak, op: max, axes: signal}"
    echo "  - {name: mean_nav, op: mean, axes: navigation}"
    case $1 in
      eels*) echo "  - {name: low, op: min, axes: navigation}" ;;
      *) echo "  - {name: box, op: virtual_image, detector: {shape: rectangle, x: [1, 5], y: [2, 9]}}" ;;
    esac
    # order.h5: blocks of several chunks, so chunk order != C order over the block
    echo "run: {progress: off, block: $([ "$1" = order.h5 ] && echo 40 || echo 7)}"
  } >job.yaml
}

for spec in u16.hspy eels2d.hspy eels1d.hspy order.h5:/d sigchunks.hspy plain.hspy noshuffle.h5:/d shuffleonly.h5:/d \
            bigendian.h5:/d u8fletcher.h5:/d ${LZF_PLUGIN:+lzf.h5:/d}; do
  file=${spec%%:*}
  dset=; [ "$spec" != "$file" ] && dset=${spec#*:}
  job "$file" "$dset"
  for n in 1 3; do
    rm -f hdf5.$n.hspy raw.$n.hspy
    HB_READ=hdf5 hb $n run job.yaml --set output.file=hdf5.$n.hspy
    [ "$RC" = 0 ] || bad "$spec np=$n HDF5 path exit $RC"
    hb $n run job.yaml --set output.file=raw.$n.hspy
    [ "$RC" = 0 ] || bad "$spec np=$n raw path exit $RC"
    check "$spec np=$n: raw chunk path == HDF5 path" $HB_PYTHON "$here/tests/compare_outputs.py" hdf5.$n.hspy raw.$n.hspy
  done
  # a rank bound to one CPU streams chunk by chunk where chunks hold whole
  # patterns; HB_READ=block reads whole blocks instead
  streams=1
  case $spec in sigchunks.hspy | shuffleonly.h5:/d | bigendian.h5:/d | u8fletcher.h5:/d | lzf.h5:/d) streams=0 ;; esac
  check "$spec np=1: streamed_ranks is $streams" $HB_PYTHON -c "
import h5py, sys
g = h5py.File('raw.1.hspy', 'r')['Experiments/total/original_metadata/hyperbatch']
sys.exit(int(g.attrs['streamed_ranks']) != $streams)"
  for n in 1 2; do
    rm -f block.$n.hspy
    HB_READ=block hb $n run job.yaml --set output.file=block.$n.hspy
    [ "$RC" = 0 ] || bad "$spec np=$n HB_READ=block exit $RC"
    check "$spec np=$n: whole blocks == chunk stream == HDF5 path" $HB_PYTHON "$here/tests/compare_outputs.py" hdf5.1.hspy block.$n.hspy raw.1.hspy
  done
  rm -f threads.hspy
  hb 2 run job.yaml --set output.file=threads.hspy --set run.threads=3
  check "$spec np=2 run.threads=3: decoding on threads == HDF5 path" $HB_PYTHON "$here/tests/compare_outputs.py" hdf5.1.hspy threads.hspy
  # whole blocks decode on all three threads (a streaming rank uses one)
  rm -f threads.block.hspy
  HB_READ=block hb 2 run job.yaml --set output.file=threads.block.hspy --set run.threads=3
  [ "$RC" = 0 ] || bad "$spec np=2 HB_READ=block run.threads=3 exit $RC"
  check "$spec np=2 HB_READ=block run.threads=3: decoding on threads == HDF5 path" $HB_PYTHON "$here/tests/compare_outputs.py" hdf5.1.hspy threads.block.hspy
done
if [ -n "$LZF_PLUGIN" ]; then # and the values are the file's, not only the same by both paths
  check "lzf.h5 np=3: per-pattern sums and maxima are numpy's" $HB_PYTHON - <<'PY'
import sys, h5py, numpy as np
d = h5py.File("lzf.h5", "r")["d"][()].astype(np.int64)
with h5py.File("raw.3.hspy", "r") as f:
    ok = np.array_equal(f["Experiments/total/data"][()], d.sum(axis=(2, 3))) and \
        np.array_equal(f["Experiments/peak/data"][()], d.max(axis=(2, 3)))
sys.exit(0 if ok else 1)
PY
else
  job lzf.h5 /d
  hb 2 validate job.yaml
  expect_fail "LZF without its plugin: the filter and Debian's package are named" 3 \
    "lzf.h5: dataset /d uses HDF5 filter 32000 \\(lzf\\), which this HDF5 cannot decode.*apt install hdf5-plugin-lzf"
fi
job bzip2.h5 /d
hb 2 validate job.yaml
expect_fail "a filter HDF5 cannot decode is named" 3 "bzip2.h5: dataset /d uses HDF5 filter 307 \\(bzip2\\), which this HDF5 cannot decode"
finish
