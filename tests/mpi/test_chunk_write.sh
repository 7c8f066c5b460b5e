#!/usr/bin/env bash
# Navigation results stored as whole chunks (our shuffle + libdeflate zlib,
# H5Dwrite_chunk) equal HDF5's own write path bit for bit, at 1, 2 and 3
# ranks, with edge chunks, result chunks of one or several blocks, several
# flushes, every result dtype and both output compressions; and h5py
# decodes every stored chunk by itself.
set -euo pipefail
HB=$1
. "$(dirname "$0")/../lib.sh"
cd "$WORK"
"$HB" synth 4dstem u16.hspy --shape 13,11,40,36 --chunks 4,3,40,36 --seed 5 >/dev/null
$HB_PYTHON - <<'PY'
import h5py, numpy as np
rng = np.random.default_rng(4)
with h5py.File("line.h5", "w") as f:  # a 1-D scan of float32 patterns
    f.create_dataset("d", data=rng.normal(size=(23, 12, 14)).astype("f4"), chunks=(4, 12, 14))
with h5py.File("bytes.h5", "w") as f:  # uint8: shuffle leaves 1-byte data alone
    f.create_dataset("d", data=rng.integers(0, 255, (9, 10, 12, 14), dtype=np.uint8), chunks=(2, 3, 12, 14))
PY

job() { # job FILE [DATASET [NAVIGATION-DIMENSION]]
  {
    echo "version: 1"
    echo "input: {file: $1${2:+, dataset: $2}${3:+, navigation_dimension: $3}}"
    echo "output: {file: out.hspy, previews: false, overwrite: true}"
    echo "kernels:"
    echo "  - {name: total, op: sum, axes: signal}"
    echo "  - {name: peak, op: max, axes: signal}"
    echo "  - {name: avg, op: mean, axes: signal}"
    echo "  - {name: mean_nav, op: mean, axes: navigation}"
    echo "  - {name: box, op: virtual_image, detector: {shape: rectangle, x: [1, 5], y: [2, 9]}}"
    echo "  - {name: disc, op: virtual_image, detector: {shape: circle, center: [6, 6], radius: 3}}"
    echo "run: {progress: off, block: 7}"
  } >job.yaml
}

# every navigation result: shuffle + deflate(4) in that order (or no filter),
# every chunk stored with no filter skipped, and each chunk decoded here,
# by zlib and our own unshuffle, equals what h5py reads
decode_all() { # decode_all FILE COMPRESSION
  $HB_PYTHON - "$1" "$2" <<'PY'
import sys, zlib, h5py, numpy as np
path, comp = sys.argv[1:]
bad = 0
with h5py.File(path, "r") as f:
    for name, g in f["Experiments"].items():
        d = g["data"]
        pl = d.id.get_create_plist()
        filters = [pl.get_filter(i)[0] for i in range(pl.get_nfilters())]
        want = [h5py.h5z.FILTER_SHUFFLE, h5py.h5z.FILTER_DEFLATE] if comp == "gzip" else []
        if filters != want:
            print(f"{name}: filters {filters}, expected {want}"); bad += 1; continue
        a = d[()]
        for i in range(d.id.get_num_chunks()):
            info = d.id.get_chunk_info(i)
            mask, raw = d.id.read_direct_chunk(info.chunk_offset)
            if mask != 0:
                print(f"{name}: chunk {info.chunk_offset} filter mask {mask}"); bad += 1; continue
            if comp == "gzip":
                raw = zlib.decompress(raw)
                es = d.dtype.itemsize
                raw = np.frombuffer(raw, np.uint8).reshape(es, -1).T.copy().tobytes()
            c = np.frombuffer(raw, d.dtype).reshape(d.chunks)
            sl = tuple(slice(o, min(o + n, s)) for o, n, s in zip(info.chunk_offset, d.chunks, d.shape))
            if not np.array_equal(c[tuple(slice(0, s.stop - s.start) for s in sl)], a[sl], equal_nan=True):
                print(f"{name}: chunk {info.chunk_offset} decodes to other values"); bad += 1
sys.exit(1 if bad else 0)
PY
}

# navigation results' chunking: one chunk (whole) or more than one (several)
chunking() { # chunking FILE whole|several
  $HB_PYTHON - "$1" "$2" <<'PY'
import sys, h5py
path, want = sys.argv[1:]
bad = 0
with h5py.File(path, "r") as f:
    for name, g in f["Experiments"].items():
        d = g["data"]
        if name == "mean_nav":
            continue  # signal-shaped
        whole = d.chunks == d.shape
        if whole != (want == "whole"):
            print(f"{name}: shape {d.shape} chunks {d.chunks}, expected {want}"); bad += 1
sys.exit(1 if bad else 0)
PY
}

# the whole-chunk path was taken: its deflate streams are libdeflate's, not zlib's
other_streams() { # other_streams A B [RESULT, default box]: the same chunks, other bytes
  local rc=0
  chunks_equal "$1" "$2" "${3:-box}" || rc=$?
  [ "$rc" = 3 ]
}
same_streams() { chunks_equal "$@"; }

for spec in u16.hspy line.h5:/d:1 bytes.h5:/d; do
  IFS=: read -r file dset navdim <<<"$spec"
  job "$file" "$dset" "$navdim"
  for comp in gzip none; do
    rm -f hdf5.$comp.hspy
    HB_WRITE=hdf5 hb 2 run job.yaml --set output.file=hdf5.$comp.hspy --set output.compression=$comp
    [ "$RC" = 0 ] || bad "$spec $comp HDF5 write path exit $RC"
    for n in 1 2 3; do
      rm -f chunks.$comp.$n.hspy
      hb $n run job.yaml --set output.file=chunks.$comp.$n.hspy --set output.compression=$comp
      [ "$RC" = 0 ] || bad "$spec $comp np=$n whole-chunk path exit $RC"
      check "$spec $comp np=$n: whole-chunk writes == HDF5 path" $HB_PYTHON "$here/tests/compare_outputs.py" hdf5.$comp.hspy chunks.$comp.$n.hspy
      # result chunks of several blocks each (edges included), assembled
      # from blocks that different ranks read
      for cb in 64 240 768; do
        rm -f small.$comp.$n.$cb.hspy
        HB_RESULT_CHUNK_BYTES=$cb hb $n run job.yaml --set output.file=small.$comp.$n.$cb.hspy --set output.compression=$comp
        [ "$RC" = 0 ] || bad "$spec $comp np=$n result chunks of $cb bytes exit $RC"
        check "$spec $comp np=$n: result chunks of $cb bytes == HDF5 path" $HB_PYTHON "$here/tests/compare_outputs.py" hdf5.$comp.hspy small.$comp.$n.$cb.hspy
      done
    done
    check "$spec $comp: every chunk decodes by itself" decode_all chunks.$comp.3.hspy $comp
    for cb in 64 240; do check "$spec $comp: every chunk decodes by itself, result chunks of $cb bytes" decode_all small.$comp.3.$cb.hspy $comp; done
    check "$spec $comp: a small result is one chunk, as HyperSpy stores an image" chunking chunks.$comp.2.hspy whole
    check "$spec $comp: HB_RESULT_CHUNK_BYTES=64 gives several chunks" chunking small.$comp.2.64.hspy several
    [ $comp = gzip ] && check "$spec: the chunks were compressed by libdeflate" other_streams hdf5.gzip.hspy chunks.gzip.2.hspy
  done
  check "$spec: gzip results == uncompressed results" $HB_PYTHON "$here/tests/compare_outputs.py" chunks.gzip.1.hspy hdf5.none.hspy
  # a checkpoint after every round flushes the staged results every round
  rm -f flushes.hspy
  HB_CHECKPOINT_SECONDS=0 hb 3 run job.yaml --set output.file=flushes.hspy --set run.checkpoint=true
  [ "$RC" = 0 ] || bad "$spec flush every round exit $RC"
  check "$spec np=3, a flush every round == one flush" $HB_PYTHON "$here/tests/compare_outputs.py" hdf5.gzip.hspy flushes.hspy
  # ...storing incomplete result chunks at every one of those checkpoints
  rm -f flushes.small.hspy
  HB_RESULT_CHUNK_BYTES=768 HB_CHECKPOINT_SECONDS=0 hb 3 run job.yaml --set output.file=flushes.small.hspy --set run.checkpoint=true
  [ "$RC" = 0 ] || bad "$spec flush every round, small result chunks exit $RC"
  check "$spec np=3, a flush every round with small result chunks == one flush" $HB_PYTHON "$here/tests/compare_outputs.py" hdf5.gzip.hspy flushes.small.hspy
done

# Full-size results go through HDF5's collective filtered write, whose
# deflate filter this executable encodes (hdf5_deflate.c): with ISA-L
# (gzip_effort: fast, the default) or libdeflate (small).  Either gives the
# values of zlib's streams in other bytes, the same bytes at 1, 2 and 3
# ranks, and records HyperSpy's filters and level; the provenance names
# the encoder.
cat >full.yaml <<'EOF'
version: 1
input: {file: u16.hspy}
output: {file: full.hspy, previews: false, overwrite: true}
kernels:
  - {name: cropped, op: crop, axis: 3, start: 2, end: 30}
  - {name: spectrum, op: fft}
EOF
encoder() { # encoder FILE: the provenance's gzip_encoder
  $HB_PYTHON -c "import sys, h5py; print(h5py.File(sys.argv[1], 'r')['Experiments/cropped/original_metadata/hyperbatch'].attrs['gzip_encoder'])" "$1"
}
HB_WRITE=hdf5 hb 2 run full.yaml --set output.file=full.zlib.hspy
[ "$RC" = 0 ] || bad "full-size results, HDF5 with zlib: exit $RC"
check "full-size results, HB_WRITE=hdf5: the provenance names zlib" test "$(encoder full.zlib.hspy)" = zlib
for effort in fast small; do
  for n in 1 2 3; do
    f=full.$effort.$n.hspy
    hb $n run full.yaml --set output.file=$f --set output.gzip_effort=$effort
    [ "$RC" = 0 ] || bad "full-size results $effort np=$n: exit $RC"
    check "full-size results $effort np=$n: the streams decode to zlib's values" $HB_PYTHON "$here/tests/compare_outputs.py" full.zlib.hspy $f
    for r in cropped spectrum; do
      check "full-size $r $effort np=$n: not zlib's streams" other_streams full.zlib.hspy $f $r
      [ $n = 1 ] || check "full-size $r $effort np=$n: the same stored bytes as at 1 rank" same_streams full.$effort.1.hspy $f $r
    done
  done
  check "full-size $effort: every chunk decodes by itself, HyperSpy's shuffle + deflate" decode_all full.$effort.3.hspy gzip
done
check "full-size: the provenance names ISA-L for fast" test "$(encoder full.fast.1.hspy)" = "isal level 1"
check "full-size: the provenance names libdeflate for small" test "$(encoder full.small.1.hspy)" = libdeflate
for r in cropped spectrum; do
  check "full-size $r: fast and small are different encoders" other_streams full.fast.1.hspy full.small.1.hspy $r
done
finish
