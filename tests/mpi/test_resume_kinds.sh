#!/usr/bin/env bash
# --resume for every result kind in one job: a NAV scalar and a NAV array
# (gathered chunks), SIGNAL reductions (mean, std, max), FULL transforms
# (crop, rebin, fft to complex128, a binned, a cropped and a thinned scan:
# written block by block), a ragged result
# (find_peaks, in its side file), a two-pass one (histogram, bins: fd), a
# full-size noise variance and a global one (decomposition, after the
# pass, with HyperSpy's learning_results and its link to the input).  Stopped by SIGUSR1 at 2 ranks, resumed at 3 and SIGKILLed there
# after a checkpoint, finished at 1: every dataset and attribute of the
# output and of the ragged file is an uninterrupted 1-rank run's, but the
# provenance of how the run went (compare_files.py).  On the way, a resume
# refused for changed settings must leave the checkpoint usable.  A job of
# crops and thinned scans only, which reads part of the file, resumes too.
set -euo pipefail
HB=$1
. "$(dirname "$0")/../lib.sh"
cd "$WORK"
# navigation results in many small chunks, so each stop leaves stored and incomplete ones
export HB_RESULT_CHUNK_BYTES=2048
"$HB" synth 4dstem in.hspy --shape 12,16,32,32 --chunks 1,4,32,32 --seed 3 >/dev/null
job=job-$$.yaml # unique: the leftover ranks of a kill are found by it
trap 'pkill -9 -f "$HB run $job" 2>/dev/null || true; rm -rf "$WORK"' EXIT # none outlives the test
cat >"$job" <<'YAML'
version: 1
input: {file: in.hspy}
output: {file: out.hspy, previews: false}
kernels:
  - {name: total, op: sum, axes: signal}
  - {name: profile, op: sum, axes: ky}
  - {name: mean_dp, op: mean, axes: navigation}
  - {name: std_dp, op: std, axes: navigation}
  - {name: max_dp, op: max, axes: navigation}
  - {name: cropped, op: crop, axis: kx, start: 4, end: 28}
  - {name: binned, op: rebin, scale: [1, 1, 2, 2]}
  - {name: scan_binned, op: rebin, scale: [4, 1, 2, 2]}
  - {name: scan_cropped, op: crop, axis: x, start: 3, end: 13}
  - {name: scan_thinned, op: crop, axis: x, start: 1, step: 2}
  - {name: spectrum, op: fft, shift: true}
  - {name: peaks, op: find_peaks, min_distance: 3, threshold_rel: 0.2}
  - {name: pca, op: decomposition, components: 3, learning_results: true}
  - {name: hist, op: histogram, bins: fd}
  - {name: noise, op: estimate_poissonian_noise_variance, gain_factor: 2}
run: {block: 4, progress: off}
YAML
hb 1 run "$job"
check "uninterrupted reference on 1 rank" test "$RC" = 0
mv out.hspy ref.hspy
mv out.ragged.hspy ref.ragged.hspy

ino() { stat -c '%i %y' out.hspy.checkpoint 2>/dev/null || echo none; } # a new file at each commit
# after_commits N: until run $pid has committed N checkpoints (or ended, or 60 s); sets $commits
after_commits() {
  local seen t0 i
  seen=$(ino) t0=$(date +%s) commits=0
  while kill -0 "$pid" 2>/dev/null && [ "$commits" -lt "$1" ] && [ $(($(date +%s) - t0)) -lt 60 ]; do
    i=$(ino)
    if [ "$i" != "$seen" ] && [ "$i" != none ]; then commits=$((commits + 1)) seen=$i; fi
    sleep 0.003
  done
}
# done_at: "N of 48 blocks were done" from the last resume's stdout
done_at() { grep -o '[0-9]* of 48 blocks were done' "$WORK/hb.stdout" | cut -d' ' -f1; }

# 1. 2 ranks, rounds of at least 40 ms, a checkpoint at every agreement:
#    SIGUSR1 to mpirun after a few checkpoints
HB_CHECKPOINT_SECONDS=0 HB_FAULT_ROUND_DELAY_MS=40 mpirun -q -n 2 "$HB" run "$job" >"$WORK/hb.stdout" 2>"$WORK/hb.stderr" &
pid=$!
after_commits 3
kill -USR1 "$pid" 2>/dev/null || true
set +e
wait "$pid"
RC=$?
set -e
expect_fail "SIGUSR1 at 2 ranks: checkpoint and exit 75" 75 "stopped by signal 10 after [0-9]+ of 48 blocks"
check "  nothing under the output's name" test ! -e out.hspy -a ! -e out.ragged.hspy

# 2. a resume whose chunk layout differs is refused, and leaves the
#    checkpoint and its side file as they were
sum_before=$(cat out.hspy.checkpoint out.hspy.partial.ragged | md5sum)
HB_RESULT_CHUNK_BYTES=4096 hb 2 run "$job" --resume
expect_fail "resume with another HB_RESULT_CHUNK_BYTES is refused" 2 "changed since this checkpoint"
check "  the checkpoint and the ragged side file are untouched" \
  test "$(cat out.hspy.checkpoint out.hspy.partial.ragged | md5sum)" = "$sum_before"

# 3. resumed at 3 ranks; one rank SIGKILLed once the resume has committed
#    its first checkpoint, then two after rounds of blocks
HB_CHECKPOINT_SECONDS=0 HB_FAULT_ROUND_DELAY_MS=40 mpirun -q -n 3 "$HB" run "$job" --resume \
  >"$WORK/hb.stdout" 2>"$WORK/hb.stderr" &
pid=$!
after_commits 3
victim=$(pgrep -P "$pid" -f "$HB" | tail -1 || true)
[ -n "$victim" ] && kill -9 "$victim"
set +e
wait "$pid"
RC=$?
set -e
for _ in $(seq 50); do pgrep -f "$HB run $job" >/dev/null || break; sleep 0.1; done
first=$(done_at)
check "resumed at 3 ranks from $first of 48 blocks (0 < done < 48)" test "${first:-0}" -gt 0 -a "${first:-48}" -lt 48
check "  SIGKILL of rank pid ${victim:-none} after $commits commits: the run failed (exit $RC)" \
  test -n "$victim" -a "$RC" != 0 -a ! -e out.hspy

# 4. finished at 1 rank, from further on than the first resume
HB_UNRELATED=1 hb 1 run "$job" --resume
second=$(done_at)
check "resumed at 1 rank from $second blocks, past the killed run's start ($first)" \
  test "$RC" = 0 -a "${second:-0}" -gt "${first:-48}"
if [ "$RC" = 0 ]; then
  for f in out.hspy out.ragged.hspy; do
    check "$f: every dataset and attribute is the uninterrupted run's" \
      "$HB_PYTHON" "$here/tests/compare_files.py" "ref${f#out}" "$f"
  done
  # the provenance names the HB_* settings of the run that wrote it, and only those
  check "provenance: environment is [HB_RESULT_CHUNK_BYTES=2048] in both files" "$HB_PYTHON" - <<'EOF'
import h5py
for path in ("ref.hspy", "out.hspy", "out.ragged.hspy"):
    with h5py.File(path, "r") as f:
        for name in f["Experiments"]:
            g = f[f"Experiments/{name}/original_metadata/hyperbatch"]
            env = g.get("_list_1_environment")
            assert env is not None and dict(env.attrs) == {"0": "HB_RESULT_CHUNK_BYTES=2048"}, (path, name, list(g))
EOF
fi
# 5. a job whose every result crops or thins the scan reads only the blocks
#    and chunks they take: 12 x 16 positions in chunks of 1 x 4, rows 8-11
#    and column 9 (blocks of 1 x 8: of rows 0-7 only the chunks of columns
#    8-11), and inav[9, 8:] (x dropped: part of the column); stopped at 2
#    ranks after the first blocks, resumed at 3: the 1-rank run's file
cat >part.yaml <<'YAML'
version: 1
input: {file: in.hspy}
output: {file: part.hspy, previews: false}
kernels:
  - {name: rows, op: crop, axis: y, start: 8}
  - {name: sparse, op: crop, axis: x, start: 9, step: 8}
  - {name: column, op: inav, slices: "9, 8:"}
run: {block: 4, progress: off}
YAML
hb 1 run part.yaml
check "rows and a column only: the 1-rank run (exit $RC) says it read 16 of the 24 blocks" \
  grep -q "24 blocks (16 of them read)" "$WORK/hb.stdout"
mv part.hspy part-ref.hspy
check "  and read 64 + 32 of the 192 positions" "$HB_PYTHON" - <<'EOF'
import h5py
with h5py.File("part-ref.hspy", "r") as f:
    got = f["Experiments/rows/original_metadata/hyperbatch"].attrs["bytes_read"]
raise SystemExit(0 if got == 96 * 32 * 32 * 2 else f"bytes_read {got}")
EOF
HB_FAULT_SIGNAL_AFTER=1 hb 2 run part.yaml
expect_fail "  SIGUSR1 at 2 ranks after the first blocks" 75 "stopped by signal 10 after 2 of 16 blocks"
hb 3 run part.yaml --resume
check "  resumed at 3 ranks (exit $RC): 2 of 16 blocks were done" \
  grep -q "2 of 16 blocks were done, 14 to go" "$WORK/hb.stdout"
check "  the resumed file is the 1-rank run's" "$HB_PYTHON" "$here/tests/compare_files.py" part-ref.hspy part.hspy
rm -f part.hspy part-ref.hspy

left=$(ls out.hspy.* 2>/dev/null | tr '\n' ' ' || true)
check "nothing left beside the output${left:+: $left}" test -z "$left"
finish
