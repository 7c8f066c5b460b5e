#!/usr/bin/env bash
# jobs/run.sbatch on a real single-node Slurm (tests/slurm/minislurm.sh):
#   1. sbatch --wait -n 2 with the real binary (launcher chosen by the script):
#      output written, provenance slurm_job_id == the job id, ranks == 2;
#   2. the same with HB_LAUNCHER=mpirun (mpirun inside the allocation);
#   3. with checkpoints on: `scancel --signal=USR1 --batch` (what
#      --signal=B:USR1@T delivers before the time limit) -> the ranks write a
#      checkpoint and exit 75 -> the script requeues -> the restart resumes ->
#      output bit-identical to an uninterrupted run;
#   4. the real time-limit warning: -t 1 --signal=B:USR1@55, the same cycle
#      (as often as the limit cuts the run short);
#   5. plain scancel: a clean checkpoint, CANCELLED and not requeued; a
#      resubmission with HB_RESUME=1 resumes and finishes bit-identically;
#   6. jobs/scaling.sbatch, strong and weak at 1 and 2 ranks: a CSV row per run.
# Exit 77 (meson: skipped) with a loud reason if Slurm is missing or will not start.
# Usage: test_slurm.sh path/to/hyperbatch
set -euo pipefail
HB=$1
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/minislurm.sh"
ROOT=$here
for v in $(compgen -e | grep '^SLURM_' || true); do unset "$v"; done
trap 'minislurm_down; rm -rf "$WORK"' EXIT
: >"$WORK/hb.stderr"

skip() {
  echo
  echo "#####################################################################"
  echo "SKIP: single-node Slurm test not run: $*"
  echo "      (scripts/install-deps installs slurmctld, slurmd, slurm-client and munge)"
  echo "#####################################################################"
  exit 77
}

t0=$(date +%s)
minislurm_up "$WORK/slurm" || skip "$MINISLURM_WHY"
echo "single-node Slurm up in $(($(date +%s) - t0)) s: $(sinfo -h -o '%P %D %t %c CPUs')"

cd "$WORK"
small_job "{progress: off, block: 16}"
export HYPERBATCH=$HB HB_PYTHON=/usr/bin/python3

provenance() { # provenance FILE: prints "slurm_job_id ranks" of every result, one line each
  /usr/bin/python3 - "$1" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    for name, g in f["Experiments"].items():
        a = g["original_metadata/hyperbatch"].attrs
        v = a["slurm_job_id"]
        v = v.decode() if isinstance(v, bytes) else str(v)
        print(name, v, int(a["ranks"]))
PY
}
show_job_log() { # show_job_log ID
  echo "---- sbatch stderr"; tail -20 "$WORK/sbatch.err" 2>/dev/null
  echo "---- job $1 output"; tail -30 "$WORK/slurm-$1.out" 2>/dev/null
}

# ---- 1. the real binary, launcher chosen by the script
t=$(date +%s)
set +e
id=$(timeout 300 sbatch --parsable --wait -n 2 -o "$WORK/slurm-%j.out" "$ROOT/jobs/run.sbatch" job.yaml 2>"$WORK/sbatch.err")
RC=$?
set -e
id=${id%%;*}
echo "job $id: sbatch --wait -n 2 took $(($(date +%s) - t)) s; $(grep -ho "launcher: [a-z]*" "slurm-$id.out" || echo "launcher: ?")"
if [ "$RC" = 0 ] && [ -f out.hspy ]; then
  ok "sbatch --wait -n 2 run.sbatch: exit 0, out.hspy written"
  prov=$(provenance out.hspy)
  echo "$prov" | sed 's/^/     provenance: /'
  check "provenance slurm_job_id == $id in every result" test -z "$(echo "$prov" | awk -v id="$id" '$2 != id')"
  check "provenance ranks == 2 (one MPI job, not 2 singletons)" test -z "$(echo "$prov" | awk '$3 != 2')"
else
  bad "sbatch --wait -n 2 run.sbatch: exit $RC, out.hspy $( [ -f out.hspy ] && echo exists || echo missing)"
  show_job_log "$id"
fi

# ---- 2. mpirun inside the allocation
set +e
id=$(HB_LAUNCHER=mpirun timeout 300 sbatch --parsable --wait -n 2 -o "$WORK/slurm-%j.out" \
  "$ROOT/jobs/run.sbatch" job.yaml --set output.file=out_mpirun.hspy 2>"$WORK/sbatch.err")
RC=$?
set -e
id=${id%%;*}
if [ "$RC" = 0 ] && [ -f out_mpirun.hspy ]; then
  prov=$(provenance out_mpirun.hspy)
  check "HB_LAUNCHER=mpirun: slurm_job_id == $id, ranks == 2" \
    test -z "$(echo "$prov" | awk -v id="$id" '$2 != id || $3 != 2')"
else
  bad "HB_LAUNCHER=mpirun: exit $RC"
  show_job_log "$id"
fi

# ---- 3-5: the real binary with checkpoints.  The input has 64 blocks and
# HB_FAULT_ROUND_DELAY_MS stretches every round (32 rounds on 2 ranks), so
# Slurm's signals land mid-run; the results are compared bit for bit with an
# uninterrupted run.
"$HB" synth 4dstem ck.hspy --shape 32,32,32,32 --chunks 4,4,32,32 >/dev/null
sed -e 's/file: in.hspy/file: ck.hspy/' -e 's/block: 16}/block: 16, checkpoint: true}/' job.yaml >ck.yaml
mpirun -q -n 1 "$HB" run ck.yaml --set output.file=ck_ref.hspy >/dev/null
same_as_ref() { /usr/bin/python3 "$ROOT/tests/compare_outputs.py" ck_ref.hspy "$1"; }
wait_file() { # wait_file PATH SECONDS
  for _ in $(seq $(($2 * 10))); do [ -e "$1" ] && return 0; sleep 0.1; done
  return 1
}
wait_finished() { # wait_finished ID SECONDS: the last run of a (requeued) job is over
  for _ in $(seq $(($2 * 2))); do
    grep -q "^run.sbatch: \(done\|hyperbatch exited\|.*giving up\)" "$WORK/slurm-$1.out" 2>/dev/null && break
    sleep 0.5
  done
  wait_state "$1" 30 COMPLETED FAILED CANCELLED TIMEOUT
}
events() { grep -ho "stopped by signal [0-9]* after [0-9]* of [0-9]* blocks\|resuming: .*blocks were done\|resuming .* [0-9]* of [0-9]* blocks were done" "$WORK/slurm-$1.out" | sed 's/resuming .*: /resuming: /' | paste -sd';' | sed 's/;/; /g'; }
stops() { grep -c "stopped by signal .* blocks; they are saved in" "$WORK/slurm-$1.out" 2>/dev/null || true; }
resumes() { grep -c "hyperbatch: resuming .*blocks were done" "$WORK/slurm-$1.out" 2>/dev/null || true; }

# 3. USR1 to the batch shell (what --signal=B:USR1@T delivers) -> checkpoint,
#    exit 75 -> requeue -> the restart resumes and finishes
id=$(HB_FAULT_ROUND_DELAY_MS=300 sbatch --parsable -n 2 -o "$WORK/slurm-%j.out" "$ROOT/jobs/run.sbatch" ck.yaml \
  --set output.file=usr1.hspy)
id=${id%%;*}
if wait_file usr1.hspy.partial 60; then
  sleep 3
  scancel --signal=USR1 --batch "$id"
  wait_finished "$id" 180 || true
  echo "     $(events "$id")"
  check "USR1: the run stopped with a checkpoint (exit 75 message)" test "$(stops "$id")" -ge 1
  check "USR1: job requeued (Restarts=$(job_field "$id" Restarts)), then COMPLETED" \
    test "$(job_field "$id" Restarts)" -ge 1 -a "$(job_field "$id" JobState)" = COMPLETED
  check "USR1: the requeued run resumed from the checkpoint" test "$(resumes "$id")" -ge 1
  check "USR1: output bit-identical to an uninterrupted run" same_as_ref usr1.hspy
  check "USR1: no .partial left" test ! -e usr1.hspy.partial
  [ "$FAILS" = 0 ] || show_job_log "$id"
else
  bad "USR1: the run never started"
  show_job_log "$id"
  scancel "$id" || true
fi

# 4. the time-limit warning itself: -t 2 --signal=B:USR1@55.  Slurm checks
#    limits every 30 s and may warn up to 30 s early, so the warning lands 35-65 s
#    into a run that needs about 80 s; the job is stopped and requeued at least
#    once, each restart going on from the last checkpoint
t=$(date +%s)
id=$(HB_FAULT_ROUND_DELAY_MS=2500 sbatch --parsable -n 2 -t 2 --signal=B:USR1@55 -o "$WORK/slurm-%j.out" \
  "$ROOT/jobs/run.sbatch" ck.yaml --set output.file=tlimit.hspy)
id=${id%%;*}
wait_finished "$id" 420 || true
echo "     $(events "$id")"
check "time limit: stopped by the warning $(stops "$id")x, resumed $(resumes "$id")x, COMPLETED after $(($(date +%s) - t)) s" \
  test "$(stops "$id")" -ge 1 -a "$(resumes "$id")" -ge 1 -a "$(job_field "$id" JobState)" = COMPLETED
check "time limit: output bit-identical to an uninterrupted run" same_as_ref tlimit.hspy
[ "$FAILS" = 0 ] || show_job_log "$id"

# 5. scancel (SIGTERM): a clean checkpoint, CANCELLED, not requeued; a
#    resubmission with HB_RESUME=1 finishes the job
id=$(HB_FAULT_ROUND_DELAY_MS=300 sbatch --parsable -n 2 -o "$WORK/slurm-%j.out" "$ROOT/jobs/run.sbatch" ck.yaml \
  --set output.file=cancel.hspy)
id=${id%%;*}
if wait_file cancel.hspy.partial 60; then
  sleep 3
  scancel "$id"
  wait_state "$id" 60 CANCELLED COMPLETED FAILED || true
  sleep 2
  check "scancel: job CANCELLED, not requeued (Restarts=0)" \
    test "$(job_field "$id" JobState)" = CANCELLED -a "$(job_field "$id" Restarts)" = 0
  check "scancel: the ranks wrote a checkpoint and stopped ($(grep -ho "stopped by signal [0-9]* after [0-9]* of [0-9]* blocks" "slurm-$id.out" | head -1))" \
    test "$(stops "$id")" -ge 1
  check "scancel: cancel.hspy.partial kept, no cancel.hspy" test -e cancel.hspy.partial -a ! -e cancel.hspy
  set +e
  id2=$(HB_RESUME=1 timeout 300 sbatch --parsable --wait -n 2 -o "$WORK/slurm-%j.out" "$ROOT/jobs/run.sbatch" ck.yaml \
    --set output.file=cancel.hspy 2>"$WORK/sbatch.err")
  RC=$?
  set -e
  id2=${id2%%;*}
  check "resubmission (HB_RESUME=1): exit $RC, resumed from the checkpoint ($(resumes "$id2")x)" \
    test "$RC" = 0 -a "$(resumes "$id2")" = 1
  check "resubmission: output bit-identical to an uninterrupted run" same_as_ref cancel.hspy
  [ "$FAILS" = 0 ] || { show_job_log "$id"; show_job_log "$id2"; }
else
  bad "scancel: the run never started"
  scancel "$id" || true
fi

# ---- 6. jobs/scaling.sbatch: strong and weak, 1 and 2 ranks, one CSV row per run
"$HB" synth 4dstem weak_1.hspy --shape 8,8,32,32 >/dev/null
"$HB" synth 4dstem weak_2.hspy --shape 16,8,32,32 >/dev/null
for study in strong weak; do
  id=$(HB_RANKS="1 2" HB_REPS=1 HB_SCALING_DIR=sc_$study HB_WEAK_INPUT='weak_{N}.hspy' \
    sbatch --parsable -n 2 -o "$WORK/slurm-%j.out" "$ROOT/jobs/scaling.sbatch" $study job.yaml 2>"$WORK/sbatch.err")
  id=${id%%;*}
  wait_state "$id" 180 COMPLETED FAILED CANCELLED TIMEOUT || true
  rows=$(tail -n +2 "sc_$study/scaling.csv" 2>/dev/null | cut -d, -f1,2,6,8 | tr '\n' ' ')
  # study,ranks_requested,ranks,slurm_job_id
  check "scaling.sbatch $study: COMPLETED, rows for 1 and 2 ranks with job id $id (${rows:-none})" \
    test "$(job_field "$id" JobState)" = COMPLETED -a "$rows" = "$study,1,1,$id $study,2,2,$id "
  [ "$(job_field "$id" JobState)" = COMPLETED ] || show_job_log "$id"
done
in_sizes=$(cut -d, -f9 sc_weak/scaling.csv | tail -n +2 | tr '\n' ' ')
check "scaling.sbatch weak: the input grows with the ranks (input_size: $in_sizes)" \
  test "$(echo "$in_sizes" | awk '{print ($2 > $1)}')" = 1

echo "total $(($(date +%s) - t0)) s"
finish
