#!/usr/bin/env bash
# output.direct_io (src/output/directio.c): the output's large writes go
# past the page cache, through OMPIO's pwritev and aio_write as much as
# HDF5's.  The stored chunks are the bytes of buffered writes, at 1, 2 and
# 3 ranks; the path is taken (the profile counts its bytes); a resume after
# a stop, or after a SIGKILL at a random moment, continues bit-identically;
# a disk too small gives one clear error and no hang.
set -euo pipefail
HB=$1
. "$(dirname "$0")/../lib.sh"
cd "$WORK"
# float32 patterns, whose FFT (complex128, 16 MB) hardly compresses: blocks
# of 32 patterns make writes of 2 MB
"$HB" synth 4dstem in.hspy --shape 16,16,64,64 --chunks 2,8,64,64 --dtype float32 --seed 3 >/dev/null
cat >job.yaml <<'EOF'
version: 1
input: {file: in.hspy}
output: {file: out.hspy, previews: false, overwrite: true}
kernels:
  - {name: spectrum, op: fft}
  - {name: total, op: sum, axes: signal}
run: {progress: off, block: 32}
EOF

direct_bytes() { # the profile's direct_write_bytes over all ranks
  $HB_PYTHON -c "import sys, json
print(sum(r['direct_write_bytes'] for r in json.load(open(sys.argv[1]))['per_rank']))" "$1"
}
# can this folder's file system take O_DIRECT writes at all?
odirect=$($HB_PYTHON -c "
import os, mmap
fd = os.open('probe', os.O_WRONLY | os.O_CREAT | os.O_DIRECT)
try: print(int(os.pwrite(fd, mmap.mmap(-1, 4096), 0) == 4096))
except OSError: print(0)
os.unlink('probe')")

hb 2 run job.yaml --set output.file=buffered.hspy --set output.direct_io=false --set run.profile=buffered.json
[ "$RC" = 0 ] || bad "buffered run: exit $RC"
check "direct_io false: nothing written past the page cache" test "$(direct_bytes buffered.json)" = 0
for n in 1 2 3; do
  hb $n run job.yaml --set output.file=direct.$n.hspy --set run.profile=direct.$n.json
  [ "$RC" = 0 ] || bad "direct np=$n: exit $RC"
  for r in spectrum total; do
    check "direct np=$n: $r's stored chunks == buffered writes'" chunks_equal buffered.hspy direct.$n.hspy $r
  done
  check "direct np=$n: the values == buffered" $HB_PYTHON "$here/tests/compare_outputs.py" buffered.hspy direct.$n.hspy
  if [ "$odirect" = 1 ]; then
    b=$(direct_bytes direct.$n.json)
    check "direct np=$n: $b bytes went past the page cache (at least half the FFT's 16 MB)" test "$b" -ge 8000000
  else
    echo "SKIP direct np=$n engaged: this file system refuses O_DIRECT (the run fell back to buffered writes)"
  fi
done

# a stop after a few checkpoints, then --resume at another rank count:
# bit-identical to the run without a stop
HB_CHECKPOINT_SECONDS=0 HB_FAULT_SIGNAL_AFTER=3 hb 2 run job.yaml --set output.file=resumed.hspy
expect_fail "SIGUSR1 during direct writes: checkpoint and exit 75" 75 "stopped by signal 10 after [0-9]+ of 8 blocks"
hb 3 run job.yaml --set output.file=resumed.hspy --resume
check "--resume after a stop during direct writes (exit $RC)" test "$RC" = 0
for r in spectrum total; do
  check "resumed $r == uninterrupted, stored bytes" chunks_equal buffered.hspy resumed.hspy $r
done

# SIGKILL among direct writes (checkpoints at every agreement, as many as
# there can be), then --resume at another rank count: the stored chunks of
# an uninterrupted run.  A larger scan (64 MB of FFT in 32 blocks of 2 MB)
# gives the kill room to land.  First the last rank kills itself after the
# fourth round, so that a resume from committed direct writes is certain;
# then kills from outside at random moments, to a rank or to mpirun.
"$HB" synth 4dstem big.hspy --shape 32,32,64,64 --chunks 2,8,64,64 --dtype float32 --seed 4 >/dev/null
big=big-$$.yaml # a name of this test's own, for pgrep and pkill (tests run side by side)
sed 's/in.hspy/big.hspy/' job.yaml >"$big"
hb 2 run "$big" --set output.file=bigref.hspy
[ "$RC" = 0 ] || bad "uninterrupted large run: exit $RC"
# start N: a run in the background ($pid) whose output is being created
start() {
  HB_CHECKPOINT_SECONDS=0 mpirun -q -n "$1" "$HB" run "$big" --set output.file=killed.hspy \
    >"$WORK/kill.stdout" 2>"$WORK/kill.stderr" &
  pid=$!
  while kill -0 "$pid" 2>/dev/null && [ ! -e killed.hspy.partial ]; do sleep 0.005; done
}
rm -f killed.hspy
start 2
t1=$(now_ms)
wait "$pid"
span=$(($(now_ms) - t1)) # how long the blocks take, from the output's creation
HB_CHECKPOINT_SECONDS=0 HB_FAULT_KILL_AFTER=4 hb 3 run "$big" --set output.file=killed.hspy
check "a rank's SIGKILL after round 4 ends the run (exit $RC)" test "$RC" != 0
hb 2 run "$big" --set output.file=killed.hspy --resume
check "--resume on 2 after the SIGKILL continues from a checkpoint (exit $RC)" grep -q "resuming" "$WORK/hb.stdout"
for r in spectrum total; do check "resumed after SIGKILL: $r's stored chunks == uninterrupted" chunks_equal bigref.hspy killed.hspy $r; done

seed=${HB_KILL_SEED:-$(date +%s)}
RANDOM=$seed
echo "kill rounds: seed $seed (HB_KILL_SEED=$seed replays them)"
interrupted=0
for round in 1 2 3 4 5 6; do
  rm -f killed.hspy killed.hspy.*
  n=$((RANDOM % 2 + 2)) m=$((RANDOM % 3 + 1)) delay=$((RANDOM % (span + 1))) victim=$((RANDOM % 4))
  set +e
  start $n
  sleep_ms "$delay"
  kill_run "$pid" "$HB run $big" "$victim"
  set -e
  what="round $round: SIGKILL to $([ "$victim" = 0 ] && echo mpirun || echo a rank) of $n, ${delay} ms into the blocks"
  if [ -e killed.hspy ]; then
    what="$what (finished first)"
  else
    interrupted=$((interrupted + 1))
    hb $m run "$big" --set output.file=killed.hspy --resume
    if [ "$RC" != 0 ]; then # one clear failure is allowed, then the next resume finishes
      check "$what: a failed resume on $m prints one error" test "$(grep -c '^hyperbatch: error:' "$WORK/hb.stderr")" = 1
      hb 2 run "$big" --set output.file=killed.hspy --resume
    fi
    what="$what, resumed on $m: $(grep -o 'resuming[^,]*\|no checkpoint was committed' "$WORK/hb.stdout" | head -1)"
  fi
  for r in spectrum total; do check "$what: $r's stored chunks == uninterrupted" chunks_equal bigref.hspy killed.hspy $r; done
  check "$what: nothing left over" test -z "$(ls killed.hspy.* 2>/dev/null)"
done
check "at least one random kill interrupted the run ($interrupted of 6)" test "$interrupted" -ge 1

# a disk too small for the FFT (a 10 MB tmpfs for a 16 MB result): the
# free-space check counts a flush of full-size results and stops before
# writing them (a collective write that runs out of space is not stopped
# cleanly on every rank): one clear error, exit 3, no hang, no output
if mkdir -p small && mount -t tmpfs -o size=10m tmpfs small 2>/dev/null; then
  for n in 2 3; do
    hb $n run job.yaml --set output.file=small/out.hspy --set run.checkpoint=false
    expect_fail "disk too small for direct writes, np=$n" 3 "small/out.hspy.partial: the disk is \\(nearly\\) full"
    check "disk full np=$n: no output" test ! -e small/out.hspy
    rm -rf small/*
  done
  umount small
else
  echo "SKIP disk-full case: cannot mount a tmpfs here (not root?)"
fi
finish
