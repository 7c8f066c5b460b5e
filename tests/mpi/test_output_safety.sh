#!/usr/bin/env bash
# The output path is safe: two runs on one output never mix (the second is
# refused); an output that is the input, or a file the job reads, is
# refused however it is named (same path, a/../, a link, a hard link); links
# planted at the names a run creates are never followed; a FIFO given as a
# mask is refused instead of blocking the run.
set -euo pipefail
HB=$1
. "$(dirname "$0")/../lib.sh"
cd "$WORK"
small_job "{block: 4, progress: off}"
"$HB" synth 4dstem in.hspy --shape 8,8,32,32 --chunks 1,2,32,32 >/dev/null # 16 blocks
sum() { md5sum "$1" | cut -d' ' -f1; }
$HB_PYTHON -c "
import h5py, numpy as np
with h5py.File('mask.h5', 'w') as f:
    m = np.zeros((32, 32)); m[12:20, 12:20] = 1; f['mask'] = m"
input_sum=$(sum in.hspy) mask_sum=$(sum mask.h5)

# 1. two runs of different jobs on the same output, started 0-50 ms apart:
# the second is refused while the first holds the output, and the output is
# always exactly one job's result
hb 1 run job.yaml --set output.file=refA.hspy
hb 1 run job.yaml --set output.file=refB.hspy --set kernels.bf.detector.radius=6
for trial in 1 2 3 4 5 6 7 8 9; do
  rm -f out.hspy out.hspy.*
  set +e
  HB_FAULT_ROUND_DELAY_MS=30 mpirun -q -n 2 "$HB" run job.yaml --set output.overwrite=true >a.out 2>a.err &
  a=$!
  sleep "0.0$((RANDOM % 5))"
  HB_FAULT_ROUND_DELAY_MS=30 mpirun -q -n 2 "$HB" run job.yaml --set output.overwrite=true \
    --set kernels.bf.detector.radius=6 >b.out 2>b.err &
  b=$!
  wait $a
  rca=$?
  wait $b
  rcb=$?
  set -e
  refused=0
  for x in a b; do
    rc=$([ $x = a ] && echo $rca || echo $rcb)
    if [ "$rc" != 0 ]; then
      if [ "$rc" = 2 ] && grep -q "another hyperbatch run is writing this output (pid [0-9]* on " $x.err; then
        refused=$((refused + 1))
      else
        bad "two runs, trial $trial: run $x exited $rc: $(grep 'error' $x.err | head -1)"
      fi
    fi
  done
  winner=none
  $HB_PYTHON "$here/tests/compare_outputs.py" refA.hspy out.hspy >/dev/null 2>&1 && winner=A
  $HB_PYTHON "$here/tests/compare_outputs.py" refB.hspy out.hspy >/dev/null 2>&1 && winner=B
  left=$(ls out.hspy.* 2>/dev/null | tr '\n' ' ' || true)
  if [ "$winner" != none ] && [ -z "$left" ] && [ $((refused + (rca == 0) + (rcb == 0))) = 2 ]; then
    ok "two runs, trial $trial: exits $rca and $rcb, the output is job $winner's, nothing left over"
  else
    bad "two runs, trial $trial: exits $rca and $rcb, output matches: $winner, left over: $left"
  fi
done

# 2. the output is the input, or a file the job reads, however it is named
mkdir -p sub
ln -sf in.hspy link.hspy
ln -f in.hspy hard.hspy
for out in in.hspy sub/../in.hspy link.hspy hard.hspy mask.h5; do
  hb 2 run job.yaml --set output.file=$out --set output.overwrite=true \
    --set kernels.bf.detector="{shape: mask, file: mask.h5, dataset: /mask}"
  expect_fail "output.file: $out (the input or the mask)" 2 "is the same file as the (input|file) .*(in.hspy|mask.h5).*refusing to replace it"
  check "output.file: $out: the input and the mask are untouched" test "$(sum in.hspy)" = "$input_sum" -a "$(sum mask.h5)" = "$mask_sum"
done
hb 2 validate job.yaml --set output.file=link.hspy --set output.overwrite=true
expect_fail "validate refuses it too" 2 "is the same file as the input"

# 3. links planted at the names a run creates are never followed
echo precious >victim
rm -f out.hspy out.hspy.*
ln -s victim out.hspy.partial
hb 2 run job.yaml
expect_fail "a link at <out>.partial, without overwrite: refused as left over" 2 "is left from an unfinished run"
hb 2 run job.yaml --set output.overwrite=true
check "a link at <out>.partial, with overwrite: the run finishes (exit $RC)" test "$RC" = 0
check "...and the link's target is untouched" grep -qx precious victim
rm -f out.hspy out.hspy.*
ln -s victim out.hspy.checkpoint.tmp
HB_CHECKPOINT_SECONDS=0 HB_FAULT_SIGNAL_AFTER=2 hb 2 run job.yaml --set output.overwrite=true
check "a link at <out>.checkpoint.tmp: the checkpoint is written (exit $RC)" test "$RC" = 75 -a -f out.hspy.checkpoint
check "...and the link's target is untouched" grep -qx precious victim
rm -f out.hspy out.hspy.* out.bf.png out.mean_dp.png
ln -s victim out.bf.png
hb 2 run job.yaml --set output.overwrite=true --set output.previews=true
check "a link at a preview's name, with overwrite: the run finishes (exit $RC)" test "$RC" = 0
check "...the preview replaced the link" test -f out.bf.png -a ! -L out.bf.png
check "...and the link's target is untouched" grep -qx precious victim
rm -f out.hspy out.hspy.* out.bf.png out.mean_dp.png
ln -s victim out.bf.png.tmp
hb 2 run job.yaml --set output.previews=true
check "a link at a preview's temporary name: the run finishes (exit $RC)" test "$RC" = 0
check "...and the link's target is untouched" grep -qx precious victim
rm -f out.hspy out.hspy.* out.*.png*
ln -s victim out.hspy.lock
hb 2 run job.yaml
expect_fail "a link at <out>.lock is not followed" 3 "out.hspy.lock: cannot create the output's lock file: Too many levels of symbolic links"
check "...and the link's target is untouched" grep -qx precious victim
rm -f out.hspy.lock

# 4. a FIFO as a mask (or a folder) is refused at once, not waited on
mkfifo fifo.h5
hb 2 validate job.yaml --set kernels.bf.detector="{shape: mask, file: fifo.h5, dataset: /mask}"
expect_fail "a FIFO as a mask" 2 "'.*fifo.h5' is not a regular file \(a FIFO\)"
hb 2 run job.yaml --set kernels.bf.detector="{shape: mask, file: sub, dataset: /mask}"
expect_fail "a folder as a mask" 2 "'.*sub' is not a regular file \(a folder\)"
finish
