#!/usr/bin/env bash
# Kills at random moments, then --resume: a resumed output (values per
# pattern, reductions, a thinned, a binned scan and a region) is bit-identical
# to an uninterrupted run, or the resume fails with one clear error line and
# the next resume succeeds.  Nothing may exit 0 with different bytes.
#
# Each round kills one rank or mpirun itself (SIGKILL, as a dying node or
# the OOM killer would) at a random time, with and without fault injection
# (checkpoints at every agreement, a slow rank), then resumes on a random
# number of ranks.  HB_KILL_ROUNDS (default 36) and HB_KILL_SEED (default:
# the time) choose how many and which; the seed is printed, so a failure can
# be replayed.
set -euo pipefail
HB=$1
. "$(dirname "$0")/../lib.sh"
cd "$WORK"
# however this test ends, none of its runs outlives it to slow the next test
trap 'pkill -9 -f "$HB run kill-job-$$.yaml" 2>/dev/null || true; rm -rf "$WORK"' EXIT
rounds=${HB_KILL_ROUNDS:-36}
seed=${HB_KILL_SEED:-$(date +%s)}
RANDOM=$seed
echo "seed $seed (HB_KILL_SEED=$seed replays this run), $rounds rounds"

"$HB" synth 4dstem in.hspy --shape 96,160,64,64 --chunks 2,8,64,64 --seed 5 >/dev/null
cat >"kill-job-$$.yaml" <<'YAML'
version: 1
input: {file: in.hspy}
output: {file: out.hspy, previews: false}
kernels:
  - {name: bf, op: virtual_image, detector: {shape: circle, center: [32, 32], radius: 8}}
  - {name: adf, op: virtual_image, detector: {shape: annulus, center: [32, 32], inner: 12, outer: 28}}
  - {name: total, op: sum, axes: signal}
  - {name: mean_dp, op: mean, axes: navigation}
  - {name: max_dp, op: max, axes: navigation}
  - {name: thinned, op: crop, axis: x, start: 3, step: 8}
  - {name: overview, op: rebin, scale: [4, 4, 2, 2]}
  - {name: region, op: inav, slices: "5:90:3, 10:80:4"}
run: {block: 32, progress: off}
YAML
hb 1 run kill-job-$$.yaml --set output.file=ref.hspy
check "uninterrupted reference run" test "$RC" = 0

# the settings a round runs with: no fault variables (a checkpoint every
# 0.1 s, or at every agreement of the ranks), a slow rank, short rounds
variants=("HB_CHECKPOINT_SECONDS=0.1" "HB_CHECKPOINT_SECONDS=0" "HB_CHECKPOINT_SECONDS=0 HB_FAULT_SLOW_RANK=1:4"
  "HB_CHECKPOINT_SECONDS=0.05 HB_FAULT_ROUND_DELAY_MS=2")
# start VARIANT N: the run in the background, $pid; $started: ms at launch
start() {
  started=$(now_ms)
  env $1 mpirun -q -n "$2" "$HB" run kill-job-$$.yaml >"$WORK/kill.stdout" 2>"$WORK/kill.stderr" &
  pid=$!
}
# wait_for_partial: until the output is created (the blocks start) or the run ends
wait_for_partial() {
  while kill -0 "$pid" 2>/dev/null && [ ! -e out.hspy.partial ]; do sleep 0.005; done
}
# how long each takes uninterrupted on 2 ranks, in all and after the .partial
# appears: a kill lands anywhere in the run, most of them among the blocks
total_ms=() blocks_ms=()
for v in "${variants[@]}"; do
  rm -f out.hspy out.hspy.*
  start "$v" 2
  wait_for_partial
  t1=$(now_ms)
  wait "$pid"
  total_ms+=($(($(now_ms) - started)))
  blocks_ms+=($(($(now_ms) - t1)))
done
echo "uninterrupted on 2 ranks, ms in all: ${total_ms[*]}; after the .partial appears: ${blocks_ms[*]}"

# resume N: one resume on N ranks; sets RC
resume() {
  hb "$1" run kill-job-$$.yaml --resume
}
same() { $HB_PYTHON "$here/tests/compare_outputs.py" ref.hspy out.hspy >/dev/null; }
leftovers() { ls out.hspy.partial* out.hspy.checkpoint* out.hspy.lock 2>/dev/null | tr "\n" " " || true; }

identical=0 failed_once=0 finished_first=0
for round in $(seq 1 "$rounds"); do
  rm -f out.hspy out.hspy.*
  n=$((RANDOM % 3 + 1))
  v=$((RANDOM % ${#variants[@]}))
  faults=${variants[$v]}
  [ "$n" = 1 ] && faults=${faults/SLOW_RANK=1/SLOW_RANK=0}
  victim=$((RANDOM % 4)) # 0: mpirun (its ranks may well finish without it), else a rank
  set +e
  start "$faults" "$n"
  if [ $((RANDOM % 4)) = 0 ]; then # anywhere, start-up included
    delay_ms=$((RANDOM % total_ms[v]))
  else # among the blocks
    wait_for_partial
    delay_ms=$((RANDOM % (blocks_ms[v] + 1)))
  fi
  sleep_ms "$delay_ms"
  delay_ms=$(($(now_ms) - started))
  kill_run "$pid" "$HB run kill-job-$$.yaml" "$victim"
  set -e
  what="round $round: $n rank(s), ${faults:-no faults}, SIGKILL to $([ "$victim" = 0 ] && echo mpirun || echo a rank) at ${delay_ms} ms"
  if [ -e out.hspy ]; then # before the kill (or its ranks outlived a killed mpirun)
    finished_first=$((finished_first + 1))
    if same; then ok "$what: finished, identical"; else bad "$what: finished, DIFFERENT"; fi
    resume 2 # a resume of a finished job changes nothing
    if [ "$RC" = 0 ] && grep -q "finished already" "$WORK/hb.stdout" && same; then ok "$what: --resume then does nothing"
    else bad "$what: --resume of the finished job gave exit $RC"; fi
    continue
  fi
  m=$((RANDOM % 3 + 1))
  resume "$m"
  if [ "$RC" = 0 ]; then
    if same; then
      identical=$((identical + 1))
      ok "$what; resumed on $m: identical, $(grep -o 'resuming.*\|no checkpoint was committed' "$WORK/hb.stdout" | head -1 | cut -c1-80)"
    else
      bad "$what; resumed on $m: EXIT 0 WITH DIFFERENT RESULTS"
      $HB_PYTHON "$here/tests/compare_outputs.py" ref.hspy out.hspy | head -5
    fi
  else
    # (no error line at all, as when a process dies of a signal: say so, with
    # the end of its stderr, instead of letting pipefail end the test mutely)
    nerr=$(grep -c '^hyperbatch: error:' "$WORK/hb.stderr" || true)
    msg=$(grep '^hyperbatch: error:' "$WORK/hb.stderr" | head -1 | cut -c1-160 || true)
    [ -n "$msg" ] || msg="exit $RC without an error line: $(tail -c 300 "$WORK/hb.stderr" | tr '\n' ' ')"
    resume 2
    if [ "$nerr" = 1 ] && [ "$RC" = 0 ] && same; then
      failed_once=$((failed_once + 1))
      ok "$what; resumed on $m failed clearly ($msg), the next resume is identical"
    else
      bad "$what; resumed on $m failed ($nerr error lines: $msg), then a second resume gave exit $RC"
    fi
  fi
  left=$(leftovers)
  if [ -n "$left" ]; then bad "$what: files left after the resume: $left"; fi
done
echo "summary: $identical resumed identical at once, $failed_once after one clear failure, $finished_first finished before the kill"
check "at least a third of the rounds were really interrupted" test $((3 * (identical + failed_once))) -ge "$rounds"
finish
