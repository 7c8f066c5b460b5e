#!/bin/bash
# A stand-in for `hyperbatch run` that behaves as the checkpoint contract says
# (shared/spec/job-v1.md, issue 5), for testing jobs/run.sbatch before the
# engine has checkpoints:
#   --version        prints "hyperbatch fake" on rank 0 only (like the real one)
#   run ... --resume logs "resumed" and exits 0 at once (with FAKE_RESUME_WAITS=1
#                    it then goes on like a fresh run)
#   run ...          logs "started", then waits; on SIGUSR1 or SIGTERM it logs
#                    the signal and exits with $HB_CHECKPOINT_EXIT (default 75);
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
trap 'log "got USR1"; kill -KILL $sp 2>/dev/null; exit $code' USR1
trap 'log "got TERM"; kill -KILL $sp 2>/dev/null; exit $code' TERM
log "started $*"
# the sleep ignores the signals: Slurm signals every process of a step, and a
# sleep that died first would end the wait before this shell saw its own signal
(trap '' USR1 TERM; exec sleep "${FAKE_SECONDS:-60}") &
sp=$!
wait $sp
log "finished"
exit 0
