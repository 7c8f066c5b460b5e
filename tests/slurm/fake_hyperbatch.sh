#!/bin/bash
# A stand-in for `hyperbatch run` that behaves as the checkpoint contract says
# (docs/contract.md, docs/checkpoint.md), for testing jobs/run.sbatch before the
# engine has checkpoints:
#   --version        prints "hyperbatch fake" on rank 0 only (like the real one)
#   run ... --resume logs "resumed" and exits 0 at once (with FAKE_RESUME_WAITS=1
#                    it then goes on like a fresh run)
#   run ...          logs "started", then waits; on SIGUSR1 or SIGTERM it logs
#                    the signal, waits for the other ranks to log theirs, and
#                    exits with $HB_CHECKPOINT_EXIT (default 75);
#                    after $FAKE_SECONDS (default 60) it exits 0.
# Every event is appended to $FAKE_LOG as "rank=R restart=C EVENT ARGS".
rank=${OMPI_COMM_WORLD_RANK:-${PMIX_RANK:-${SLURM_PROCID:-0}}}
log() { echo "rank=$rank restart=${SLURM_RESTART_COUNT:-0} job=${SLURM_JOB_ID:-} $*" >>"${FAKE_LOG:-/dev/null}"; }
if [ "${1:-}" = --version ]; then
  [ "$rank" = 0 ] && echo "hyperbatch fake"
  exit 0
fi
case " $* " in
  *" --resume "*)
    log "resumed $*"
    [ "${FAKE_RESUME_WAITS:-0}" = 1 ] || exit 0
    ;;
esac
code=${HB_CHECKPOINT_EXIT:-75}
sp=""
# like the real program, the ranks agree before they stop: each waits (up to
# 10 s) until every rank has logged its signal, so that mpirun, which kills the
# others once one rank exits non-zero, cannot cut a slow rank short
size=${OMPI_COMM_WORLD_SIZE:-${PMIX_SIZE:-${SLURM_NTASKS:-1}}}
stop() {
  log "got $1"
  kill -KILL $sp 2>/dev/null
  [ -n "${FAKE_LOG:-}" ] || exit $code
  for _ in $(seq 100); do
    [ "$(grep -c "restart=${SLURM_RESTART_COUNT:-0} job=${SLURM_JOB_ID:-} got " "${FAKE_LOG:-/dev/null}")" -ge "$size" ] && break
    sleep 0.1
  done
  exit $code
}
trap 'stop USR1' USR1
trap 'stop TERM' TERM
log "started $*"
# the sleep ignores the signals: Slurm signals every process of a step, and a
# sleep that died first would end the wait before this shell saw its own signal
(trap '' USR1 TERM; exec sleep "${FAKE_SECONDS:-60}") &
sp=$!
wait $sp
log "finished"
exit 0
