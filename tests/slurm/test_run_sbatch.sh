#!/usr/bin/env bash
# jobs/run.sbatch without Slurm: argument and binary checks, the launcher
# choice outside an allocation, SIGUSR1 forwarded through mpirun to every rank,
# requeue on the checkpoint exit code (scontrol replaced by a recorder), a
# warning that comes before the launch, --resume on a restart, no requeue
# after SIGTERM, the requeue cap, and real 2-rank runs of hyperbatch through
# the script.
# Usage: test_run_sbatch.sh path/to/hyperbatch
set -euo pipefail
HB=$1
. "$(dirname "$0")/../lib.sh"
ROOT=$here
SCRIPT=$ROOT/jobs/run.sbatch
FAKE=$ROOT/tests/slurm/fake_hyperbatch.sh
export FAKE_LOG=$WORK/fake.log
cat >"$WORK/scontrol" <<'EOF'
#!/bin/bash
echo "$*" >>"$(dirname "$0")/scontrol.log"
EOF
chmod +x "$WORK/scontrol"
# no Slurm variables from a surrounding job may leak in
for v in $(compgen -e | grep '^SLURM_' || true); do unset "$v"; done

# sbatch_bg ENV...: start the script in the background with the fake binary; $SPID
sbatch_bg() {
  : >"$FAKE_LOG"
  env HYPERBATCH="$FAKE" HB_LAUNCHER=mpirun HB_NTASKS=2 HB_SCONTROL="$WORK/scontrol" "$@" \
    bash "$SCRIPT" job.yaml --set run.block=4 >"$WORK/hb.stdout" 2>"$WORK/hb.stderr" &
  SPID=$!
}
wait_for() { # wait_for COUNT PATTERN: until the fake log has COUNT matching lines (20 s)
  for _ in $(seq 200); do
    [ "$(grep -c -- "$2" "$FAKE_LOG" 2>/dev/null || true)" -ge "$1" ] && return 0
    sleep 0.1
  done
  return 1
}
finish_bg() { set +e; wait "$SPID"; RC=$?; set -e; }

# ---- arguments and binary
set +e
HYPERBATCH=/nonexistent/hyperbatch bash "$SCRIPT" job.yaml >/dev/null 2>"$WORK/hb.stderr"
RC=$?
set -e
check "missing binary: exit 2 with a hint" test "$RC" = 2 -a -n "$(grep -l 'HYPERBATCH=' "$WORK/hb.stderr")"
set +e
HYPERBATCH=$FAKE bash "$SCRIPT" >/dev/null 2>"$WORK/hb.stderr"
RC=$?
set -e
check "no job file: exit 2 with usage" test "$RC" = 2 -a -n "$(grep -l usage "$WORK/hb.stderr")"
set +e
PATH=/usr/bin:/bin HYPERBATCH='' HB_LAUNCHER=direct bash "$SCRIPT" job.yaml >/dev/null 2>"$WORK/hb.stderr"
RC=$?
set -e
check "binary not on PATH under its name: refused" test "$RC" = 2
mkdir -p "$WORK/bin"
ln -s "$FAKE" "$WORK/bin/hyperbatch"
: >"$FAKE_LOG"
set +e
PATH="$WORK/bin:$PATH" HYPERBATCH='' HB_LAUNCHER=direct FAKE_SECONDS=0 bash "$SCRIPT" job.yaml >/dev/null 2>"$WORK/hb.stderr"
RC=$?
set -e
check "binary found on PATH" test "$RC" = 0 -a "$(grep -c finished "$FAKE_LOG")" = 1
# run to the end before looking: a run left behind by `grep -q <(...)` would
# write "started" lines into the next case's log while it waits for its ranks
HYPERBATCH=$FAKE HB_NTASKS=2 FAKE_SECONDS=0 bash "$SCRIPT" job.yaml >"$WORK/auto.out" 2>&1 || true
check "outside Slurm, auto picks mpirun" grep -q 'launcher: mpirun' "$WORK/auto.out"

# ---- SIGUSR1 (the time-limit warning) -> forwarded, checkpoint code -> requeue
rm -f "$WORK/scontrol.log"
sbatch_bg SLURM_JOB_ID=4242
if wait_for 2 'job=4242 started'; then
  kill -USR1 "$SPID"
  finish_bg
  check "USR1: the script exits 0 after requeueing" test "$RC" = 0
  check "USR1: forwarded to both ranks" test "$(grep -c 'got USR1' "$FAKE_LOG")" = 2
  check "USR1: scontrol requeue 4242" grep -qx 'requeue 4242' "$WORK/scontrol.log"
  check "USR1: the first run had no --resume" test "$(grep started "$FAKE_LOG" | grep -c -- --resume)" = 0
  check "USR1: arguments passed on" grep -q 'started run job.yaml --set run.block=4' "$FAKE_LOG"
else
  kill "$SPID" 2>/dev/null || true
  bad "USR1: the fake never started on 2 ranks"
fi

# ---- a warning before the launch (Slurm may send it early): the shell
# survives it, starts nothing and requeues.  A slow fake srun stands in for
# the launcher probe.
mkdir -p "$WORK/slowsrun"
printf '#!/bin/sh\nsleep 2\n' >"$WORK/slowsrun/srun"
chmod +x "$WORK/slowsrun/srun"
rm -f "$WORK/scontrol.log"
sbatch_bg SLURM_JOB_ID=4245 SLURM_MPI_TYPE=pmix HB_LAUNCHER=auto PATH="$WORK/slowsrun:$PATH"
sleep 0.7
kill -USR1 "$SPID"
finish_bg
check "USR1 before the launch: exit 0, requeued, nothing started" \
  test "$RC" = 0 -a "$(cat "$WORK/scontrol.log" 2>/dev/null)" = "requeue 4245" -a ! -s "$FAKE_LOG"
check "USR1 before the launch: says so" grep -q "arrived before hyperbatch started" "$WORK/hb.stderr"

# ---- the requeued run passes --resume
: >"$FAKE_LOG"
set +e
HYPERBATCH=$FAKE HB_LAUNCHER=mpirun HB_NTASKS=2 SLURM_JOB_ID=4242 SLURM_RESTART_COUNT=1 \
  bash "$SCRIPT" job.yaml >/dev/null 2>"$WORK/hb.stderr"
RC=$?
set -e
check "restart: --resume on every rank, exit 0" test "$RC" = 0 -a "$(grep -c 'resumed run job.yaml --resume' "$FAKE_LOG")" = 2
: >"$FAKE_LOG"
HYPERBATCH=$FAKE HB_LAUNCHER=direct HB_RESUME=1 bash "$SCRIPT" job.yaml >/dev/null 2>&1
check "HB_RESUME=1 passes --resume" grep -q 'resumed run job.yaml --resume' "$FAKE_LOG"

# ---- SIGTERM (scancel): forwarded, no requeue, the run's code
rm -f "$WORK/scontrol.log"
sbatch_bg SLURM_JOB_ID=4243
if wait_for 2 'job=4243 started'; then
  kill -TERM "$SPID"
  finish_bg
  check "TERM: exit with the checkpoint code, not requeued" test "$RC" = 75 -a ! -e "$WORK/scontrol.log"
  check "TERM: forwarded (as USR1, which mpirun passes on) to both ranks" test "$(grep -c "got USR1" "$FAKE_LOG")" = 2
else
  kill "$SPID" 2>/dev/null || true
  bad "TERM: the fake never started"
fi

# ---- the requeue cap
rm -f "$WORK/scontrol.log"
sbatch_bg SLURM_JOB_ID=4244 SLURM_RESTART_COUNT=3 HB_MAX_REQUEUES=3 FAKE_RESUME_WAITS=1
if wait_for 2 'job=4244 started'; then
  kill -USR1 "$SPID"
  finish_bg
  check "cap: not requeued a 4th time, exit 75" test "$RC" = 75 -a ! -e "$WORK/scontrol.log"
  check "cap: says why" grep -q HB_MAX_REQUEUES "$WORK/hb.stderr"
else
  kill "$SPID" 2>/dev/null || true
  bad "cap: the fake never started"
fi

# ---- not under Slurm: checkpoint code is passed through with a hint
sbatch_bg
if wait_for 2 'job= started'; then
  kill -USR1 "$SPID"
  finish_bg
  check "no Slurm: exit 75 with a resume hint" test "$RC" = 75 -a -n "$(grep -l HB_RESUME=1 "$WORK/hb.stderr")"
else
  kill "$SPID" 2>/dev/null || true
  bad "no Slurm: the fake never started"
fi

# ---- the real binary through the script, 2 ranks with mpirun
cd "$WORK"
small_job "{progress: off}"
set +e
HYPERBATCH=$HB HB_NTASKS=2 timeout 120 bash "$SCRIPT" job.yaml >"$WORK/hb.stdout" 2>"$WORK/hb.stderr"
RC=$?
set -e
check "real run through the script: exit 0, output written" test "$RC" = 0 -a -f out.hspy
# the multi-node example job is valid (every key and hint accepted) and runs
# with its ROMIO hints at 2 ranks
"$HB" synth 4dstem in256.hspy --shape 4,4,256,256 >/dev/null
set +e
OMPI_MCA_io=romio321 HYPERBATCH=$HB HB_NTASKS=2 timeout 120 bash "$SCRIPT" "$ROOT/jobs/multinode.yaml" \
  --set input.file="$WORK/in256.hspy" --set output.file="$WORK/mn/res.hspy" --set run.progress=off \
  >"$WORK/hb.stdout" 2>"$WORK/hb.stderr"
RC=$?
set -e
check "jobs/multinode.yaml with its MPI-IO hints under ROMIO: exit 0" test "$RC" = 0 -a -f "$WORK/mn/res.hspy"

# --resume through the script with the real binary and nothing to resume (a
# requeue after a node died in the first 30 s): the run starts over, saying so
set +e
HYPERBATCH=$HB HB_NTASKS=2 HB_RESUME=1 timeout 120 bash "$SCRIPT" job.yaml --set output.file=out2.hspy >"$WORK/hb.stdout" 2>"$WORK/hb.stderr"
RC=$?
set -e
check "real binary, HB_RESUME=1 without a checkpoint: starts over, exit 0" \
  test "$RC" = 0 -a -n "$(grep -l 'no checkpoint was committed.*starting over' "$WORK/hb.stdout")" -a -f out2.hspy
finish
