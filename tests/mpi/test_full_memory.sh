#!/usr/bin/env bash
# FULL results larger than a rank's memory bound stream through: a 33 MB
# input becomes 326 MB of crop, rebin and fft (complex128) results, in
# blocks of 8 patterns, and each rank's peak RSS (/usr/bin/time) stays
# within the staging budget of block-by-block results (64 MiB, or two
# blocks' worth when larger: docs/architecture.md, "Results") plus the
# program's own ~30 MB (40 under meson's MALLOC_PERTURB_), far below the
# output: 97-108 MB, where staged blocks that were written only at the end
# took 346 MB at 1 rank.  Values are spot-checked against numpy, so that
# the many flushes wrote every block where it goes.
set -euo pipefail
HB=$1
. "$(dirname "$0")/../lib.sh"
cd "$WORK"
BOUND_KB=$((150 * 1024))
"$HB" synth 4dstem in.hspy --shape 64,64,64,64 --chunks 1,8,64,64 --compression none >/dev/null
cat >job.yaml <<'YAML'
version: 1
input: {file: in.hspy}
output: {file: out.hspy, previews: false, compression: none, overwrite: true}
kernels:
  - {name: spectrum, op: fft}
  - {name: cropped, op: crop, axis: kx, start: 8, end: 56}
  - {name: binned, op: rebin, scale: [1, 1, 2, 2]}
run: {block: 8, progress: off}
YAML
for n in 1 2; do
  set +e
  # each rank's figure is appended to a file: what a rank prints after it
  # leaves MPI can miss mpirun's stderr forwarding (seen once in CI)
  rm -f "$WORK/rss.txt"
  timeout 120 mpirun -q -n "$n" /usr/bin/time -a -o "$WORK/rss.txt" -f "hb-maxrss-kb %M" "$HB" run job.yaml \
    >"$WORK/hb.stdout" 2>"$WORK/hb.stderr"
  RC=$?
  set -e
  check "$n rank(s): the run finished" test "$RC" = 0
  out_kb=$(($(stat -c %s out.hspy) / 1024))
  mapfile -t rss < <(awk '$1 == "hb-maxrss-kb" {print $2}' "$WORK/rss.txt")
  check "$n rank(s): the output is $((out_kb / 1024)) MB (> 300 MB)" test "$out_kb" -gt $((300 * 1024))
  check "$n rank(s): ${#rss[@]} peak RSS figures" test "${#rss[@]}" = "$n"
  for kb in "${rss[@]}"; do
    check "$n rank(s): peak RSS $((kb / 1024)) MB < $((BOUND_KB / 1024)) MB and < half the output" \
      test "$kb" -lt "$BOUND_KB" -a "$((2 * kb))" -lt "$out_kb"
  done
  check "$n rank(s): spot checks against numpy" "$HB_PYTHON" - <<'EOF'
import h5py
import numpy as np
with h5py.File("in.hspy") as fi, h5py.File("out.hspy") as fo:
    x = next(iter(fi["Experiments"].values()))["data"]
    r = fo["Experiments"]
    for y, xx in ((0, 0), (17, 42), (63, 63)):
        p = x[y, xx].astype(np.float64)
        f = r["spectrum/data"][y, xx]
        f = f if f.dtype.kind == "c" else f["r"] + 1j * f["i"]
        assert np.allclose(f, np.fft.fft2(p), rtol=1e-12, atol=1e-6), ("fft", y, xx)
        assert np.array_equal(r["cropped/data"][y, xx], x[y, xx][:, 8:56]), ("crop", y, xx)
        b = x[y, xx].astype(np.uint64).reshape(32, 2, 32, 2).sum(axis=(1, 3))
        assert np.array_equal(r["binned/data"][y, xx], b), ("rebin", y, xx)
EOF
done
rm -f in.hspy out.hspy
finish
