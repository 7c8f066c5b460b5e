#!/usr/bin/env bash
# A rank that fails alone never leaves the others waiting: HB_FAULT_FAIL=SITE@R
# makes rank R fail at one place between collective calls (an allocation, a
# write, a sync, the commit's rename), at 2 and 3 ranks.  Each run must end
# within the time limit, with one error line, a documented exit code, and
# nothing under the output's name; a later --resume must still finish.
set -euo pipefail
HB=$1
. "$(dirname "$0")/../lib.sh"
cd "$WORK"
small_job "{block: 4, progress: off}"
hb 1 run job.yaml --set output.file=ref.hspy
check "reference run" test "$RC" = 0
export HB_CHECKPOINT_SECONDS=0

# site: what fails there (the message's regex)
sites=(
  "timing:out of memory gathering the timings"
  "chunk_write:out of memory .*writing results"
  "nav_flush:out of memory"
  "signal_write:cannot write result 'mean_dp'"
  "store_open:cannot open it to sync"
  "checkpoint_sync:cannot sync the output before a checkpoint"
  "checkpoint_rename:cannot commit the checkpoint"
  "checkpoint_reserve:cannot write the checkpoint"
  "output_sync:cannot sync the output"
)
for n in 2 3; do
  for entry in "${sites[@]}"; do
    site=${entry%%:*} re=${entry#*:}
    rank=$((n - 1))
    [ "$site" = checkpoint_rename ] || [ "$site" = checkpoint_reserve ] && rank=0 # rank 0's alone
    rm -f out.hspy out.hspy.*
    HB_FAULT_FAIL="$site@$rank" hb "$n" run job.yaml
    code=3
    case $site in timing | chunk_write | nav_flush) code=1 ;; esac
    expect_fail "$site fails on rank $rank of $n" "$code" "$re"
    check "$site on $n ranks: nothing under the output's name" test ! -e out.hspy
    hb 2 run job.yaml --resume
    check "$site on $n ranks: --resume then finishes (exit $RC)" test "$RC" = 0
    check "$site on $n ranks: ...identical" $HB_PYTHON "$here/tests/compare_outputs.py" ref.hspy out.hspy
  done
done
finish
