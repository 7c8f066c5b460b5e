# Shared by the shell tests: MPI settings, a launcher with a hang guard, and
# checks that count failures.  Usage: . tests/lib.sh; HB=path/to/hyperbatch
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$here/scripts/env.sh"
FAILS=0
CHECKS=0
WORK=$(mktemp -d /tmp/hbtest.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# hb NRANKS ARGS...: run hyperbatch on N ranks; output in $WORK/hb.stdout and hb.stderr; $RC set.
hb() {
  local n=$1
  shift
  set +e
  timeout 120 mpirun -q -n "$n" "$HB" "$@" >"$WORK/hb.stdout" 2>"$WORK/hb.stderr"
  RC=$?
  set -e
}

ok() { CHECKS=$((CHECKS + 1)); echo "ok   $*"; }
bad() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "FAIL $*"; sed 's/^/     | /' "$WORK/hb.stderr" | head -20; }

# expect_fail NAME CODE REGEX: exit code, the one error line, no hang
expect_fail() {
  local name=$1 code=$2 re=$3
  local nerr
  nerr=$(grep -c '^hyperbatch: error:' "$WORK/hb.stderr" || true)
  if [ "$RC" = 124 ]; then bad "$name: hung (killed after 120 s)"
  elif [ "$RC" != "$code" ]; then bad "$name: exit code $RC, expected $code"
  elif [ "$nerr" != 1 ]; then bad "$name: $nerr error lines, expected exactly 1"
  elif ! grep -Eq -- "$re" "$WORK/hb.stderr"; then bad "$name: message does not match /$re/"
  else ok "$name (exit $code: $(grep '^hyperbatch: error:' "$WORK/hb.stderr" | cut -c1-150))"
  fi
}

check() { # check NAME COMMAND...
  local name=$1
  shift
  if "$@"; then ok "$name"; else bad "$name"; fi
}

# small_job RUN_MAP: in.hspy (8 x 8 scan of 32 x 32 patterns) and job.yaml
# (bright field and mean pattern into out.hspy) in the current folder.
small_job() {
  "$HB" synth 4dstem in.hspy --shape 8,8,32,32 >/dev/null
  cat >job.yaml <<EOF
version: 1
input: {file: in.hspy}
output: {file: out.hspy, previews: false}
kernels:
  - {name: bf, op: virtual_image, detector: {shape: circle, center: [16, 16], radius: 4}}
  - {name: mean_dp, op: mean, axes: navigation}
run: $1
EOF
}

# chunks_equal A B RESULT: the stored chunks of Experiments/RESULT/data are
# the same in both files, offsets, filter masks and bytes (exit 0); the same
# chunks with other bytes exit 3, other offsets or masks 4, an unreadable
# file 1
chunks_equal() {
  $HB_PYTHON - "$@" <<'PY'
import sys, h5py
a, b = (h5py.File(p, "r")[f"Experiments/{sys.argv[3]}/data"] for p in sys.argv[1:3])
def raw(d):
    offsets = sorted(d.id.get_chunk_info(i).chunk_offset for i in range(d.id.get_num_chunks()))
    return [(o,) + d.id.read_direct_chunk(o) for o in offsets]
ra, rb = raw(a), raw(b)
if [c[:2] for c in ra] != [c[:2] for c in rb]:
    sys.exit(4)
sys.exit(0 if ra == rb else 3)
PY
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }
sleep_ms() { sleep "$(($1 / 1000)).$(printf '%03d' $(($1 % 1000)))"; }

# kill_run PID PATTERN VICTIM: SIGKILL to the run started in the background
# as PID (mpirun) when VICTIM is 0, else to one of its ranks, picked with
# $RANDOM; waits for mpirun, then for ranks that outlive it, killing those
# still matching PATTERN after 5 s (a real node's would be gone). PATTERN
# must match only this test's runs: tests run side by side.
kill_run() {
  local pid=$1 pattern=$2 target=$1 ranks
  if [ "$3" != 0 ]; then
    ranks=($(pgrep -P "$pid" -f hyperbatch || true))
    target=${ranks[$((RANDOM % (${#ranks[@]} > 0 ? ${#ranks[@]} : 1)))]:-$pid}
  fi
  kill -9 "$target" 2>/dev/null
  wait "$pid"
  for _ in $(seq 50); do pgrep -f "$pattern" >/dev/null || break; sleep 0.1; done
  pkill -9 -f "$pattern" 2>/dev/null
}

finish() {
  echo "$(basename "$0"): $CHECKS checks, $FAILS failed"
  [ "$FAILS" = 0 ]
}
