#!/usr/bin/env bash
# The shell examples of README.md and docs/*.md, typed as written, in a copy
# of the repository's layout (build/, scripts/ and tests/ linked, configs/
# and jobs/ copied so that what they write lands in the copy), and what a newcomer
# meets on the way from mpirun to Slurm:
#   - every ```sh block is either run here or named below with why not; a new
#     block that is neither fails the test; each page's ```python blocks run
#     in one interpreter on results they load;
#   - README's "Use" lines run one by one (the Slurm line as a fresh
#     submission on a single-node Slurm, tests/slurm/minislurm.sh), and its
#     three commands for one's own data on an .hspy HyperSpy saved;
#   - mpirun as root without scripts/env.sh, and with more ranks than cores,
#     says why it refuses (no -q in the README to hide it);
#   - hyperbatch started without a launcher in a Slurm job of several tasks
#     prints a note; tasks that srun started but MPI did not connect refuse
#     to run (exit 2) instead of each writing the same output;
#   - jobs/run.sbatch without HYPERBATCH or hyperbatch on PATH says so;
#   - jobs/multinode.sbatch stripes the folder the output resolves to.
# The Slurm parts are skipped, loudly, where Slurm cannot start.
# Usage: test_doc_commands.sh path/to/hyperbatch SOURCE_ROOT
set -euo pipefail
HB=$1
ROOT=$(cd "$2" && pwd)
. "$(dirname "$0")/../lib.sh"
. "$ROOT/tests/slurm/minislurm.sh"
for v in $(compgen -e | grep '^SLURM_' || true); do unset "$v"; done

W=$WORK/repo
mkdir -p "$W"
ln -s "$(cd "$(dirname "$HB")" && pwd)" "$W/build"
for d in scripts tests; do ln -s "$ROOT/$d" "$W/$d"; done
cp -r "$ROOT/configs" "$ROOT/jobs" "$W/" # what they write stays in the copy
cd "$W"

# Every ```sh block, one file each: blocks/N.sh, and its source in blocks/N.from;
# a page's ```python blocks are one session: pyblocks/PAGE.py, in order
/usr/bin/python3 - "$ROOT" <<'PY'
import glob, os, re, sys
root = sys.argv[1]
os.makedirs("blocks")
os.makedirs("pyblocks")
n = 0
for doc in ["README.md"] + sorted(os.path.relpath(p, root) for p in glob.glob(os.path.join(root, "docs", "*.md"))):
    text = open(os.path.join(root, doc)).read()
    for block in re.findall(r"```(?:sh|bash|console)\n(.*?)```", text, re.S):
        n += 1
        open(f"blocks/{n}.sh", "w").write(block)
        open(f"blocks/{n}.from", "w").write(f"{doc}: {block.splitlines()[0]}")
    py = re.findall(r"```python\n(.*?)```", text, re.S)
    if py:
        open(os.path.join("pyblocks", doc.replace("/", "_") + ".py"), "w").write("\n".join(py))
PY

# Blocks not run here, and why.  Matched on "FILE: first line".
not_run() {
  case "$1" in
    "README.md: scripts/test") echo "the suite itself: what runs this test" ;;
    "docs/performance.md: "*) echo "a benchmark recipe (tests/bench/ runs them; minutes each)" ;;
    "docs/scaling.md: "*) echo "a scaling study (tests/bench/scaling.sh; cluster sizes)" ;;
    "docs/checkpoint.md: for i in"*) echo "a timing measurement (14 runs of a benchmark job)" ;;
    "docs/output.md: build/tests/bench/deflate_limit"*) echo "an encoder benchmark on a large output (tests/bench/README.md)" ;;
    "docs/output.md: sync; sleep 2; build/tests/bench/shared_write"*) echo "a write benchmark (7.7 GB written, a minute)" ;;
    "docs/operations.md: sbatch -n 64"*) echo "cluster sizes (64 ranks, 8 nodes); the same scripts run on 2 ranks below" ;;
    *"tests/stress/singletons.sh"*) echo "a stress loop (200 s of singletons under load; docs/operations.md)" ;;
    *) return 1 ;;
  esac
}

SLURM_UP=0
slurm_up() {
  [ "$SLURM_UP" = 1 ] && return 0
  if minislurm_up "$WORK/slurm" >"$WORK/minislurm.log" 2>&1; then
    SLURM_UP=1
  else
    echo "#####################################################################"
    echo "SKIP (Slurm parts): $MINISLURM_WHY"
    echo "#####################################################################"
    return 1
  fi
}
slurm_down() { [ "$SLURM_UP" = 1 ] && minislurm_down >/dev/null 2>&1; SLURM_UP=0; }
trap 'slurm_down; rm -rf "$WORK"' EXIT

job_of() { sed -n 's/^Submitted batch job \([0-9]*\).*/\1/p' "$1"; } # as typed: no --parsable

run_line() { # run_line TEXT: one command as typed, in bash; output in $WORK/hb.stderr, $RC set
  set +e
  timeout 300 bash -c "$1" >"$WORK/hb.stdout" 2>"$WORK/hb.stderr" </dev/null
  RC=$?
  set -e
  cat "$WORK/hb.stdout" >>"$WORK/hb.stderr"
}

# ---- each block ------------------------------------------------------------
for f in $(ls blocks/*.sh | sort -V); do
  from=$(cat "${f%.sh}.from")
  if why=$(not_run "$from"); then
    ok "not run: $from -- $why"
    continue
  fi
  case "$from" in
    "README.md: scripts/demo")
      run_line scripts/demo
      check "README: scripts/demo exits 0" test "$RC" = 0
      check "README: scripts/demo wrote demo/results/demo.hspy" test -s demo/results/demo.hspy
      check "README: scripts/demo prints where the results are" grep -q "demo/results/demo.hspy" "$WORK/hb.stderr"
      ;;
    "README.md: build/hyperbatch synth"*)
      # the Use lines: a menu of commands, each run as typed, in order
      while IFS= read -r line; do
        [ -n "$line" ] || continue
        if [[ $line == *sbatch* ]]; then
          slurm_up || continue
          rm -rf results # a fresh submission: the mpirun lines above finished this job's output
          run_line "$line"
          id=$(job_of "$WORK/hb.stderr")
          if [ -z "$id" ]; then bad "README: '$line' submits a job"; continue; fi
          wait_state "$id" 300 COMPLETED FAILED CANCELLED TIMEOUT OUT_OF_MEMORY NODE_FAIL || true
          check "README: '$line' -- the job ends with exit 0:0" test "$(job_field "$id" ExitCode)" = 0:0
          check "README: '$line' -- the job wrote its output" test -s results/scan_results.hspy
          continue
        fi
        run_line "$line"
        check "README: '$line' exits 0" test "$RC" = 0
      done <"$f"
      check "README: the starter job ran into results/" test -s results/scan_results.hspy
      check "README: no mpirun -q hides Open MPI's reasons" bash -c "! grep -n 'mpirun -q' '$ROOT/README.md'"
      ;;
    "README.md: build/hyperbatch init my_scan.hspy"*)
      # your own data: an .hspy that HyperSpy saved, here a small synthetic scan
      mkdir -p own
      "$HB" synth 4dstem own/synth.hspy --shape 8,8,64,64 >/dev/null
      /usr/bin/python3 -c 'import hyperspy.api as hs, sys; hs.load(sys.argv[1]).save(sys.argv[2])' \
        own/synth.hspy own/my_scan.hspy 2>/dev/null
      ln -s ../build own/build
      (cd own && run_line "set -e; $(cat "$W/$f")")
      check "README: your own data in three commands, as typed: exit 0" test "$RC" = 0
      check "README: ... results in results/my_scan_results.hspy" test -s own/results/my_scan_results.hspy
      ;;
    "docs/fft.md: fftw-wisdom"*)
      run_line "$(cat "$f")"
      check "$from -- exits 0 and writes fft.wisdom" test "$RC" = 0 -a -s fft.wisdom
      ;;
    "docs/operations.md: . scripts/env.sh"*)
      # brings its own Slurm up and down: ours must not run beside it
      slurm_down
      [ -s demo/scan.hspy ] || "$HB" synth 4dstem demo/scan.hspy >/dev/null
      rm -rf /tmp/myslurm demo/results
      run_line "$(cat "$f")"
      check "$from -- the recipe exits 0" test "$RC" = 0
      check "$from -- the job wrote demo/results/demo.hspy" test -s demo/results/demo.hspy
      rm -rf /tmp/myslurm
      ;;
    *) bad "a shell example nobody runs: $from (run it in tests/cli/test_doc_commands.sh, or say there why not)" ;;
  esac
done

# ---- the Python examples, each page's in one interpreter -------------------
# README's load the demo's results (scripts/demo above); output.md's load
# results/scan.hspy and its ragged side file from a job with both
mkdir -p py
"$HB" synth 4dstem py/scan.hspy --shape 8,8,64,64 >/dev/null
cat >py/job.yaml <<'EOF'
version: 1
input: {file: scan.hspy}
output: {file: results/scan.hspy, previews: false}
kernels:
  - {name: adf, op: virtual_image, detector: {shape: annulus, center: [32, 32], inner: 10, outer: 30}}
  - {name: bf, op: virtual_image, detector: {shape: circle, center: [32, 32], radius: 6}}
  - {name: peaks, op: find_peaks, min_distance: 12, threshold_abs: 5}
EOF
hb 2 run py/job.yaml
check "the job output.md's examples load: exit 0" test "$RC" = 0
# decomposition.md's load results/out.hspy of a decomposition named pca with learning_results
mkdir -p dec
"$HB" synth 4dstem dec/scan.hspy --shape 6,5,16,16 >/dev/null
cat >dec/job.yaml <<'EOF'
version: 1
input: {file: scan.hspy}
output: {file: results/out.hspy, previews: false}
kernels:
  - {name: pca, op: decomposition, components: 3, learning_results: true}
EOF
hb 2 run dec/job.yaml
check "the job decomposition.md's examples load: exit 0" test "$RC" = 0
for f in pyblocks/*.py; do
  page=$(basename "$f" .py)
  case $page in
    README.md) where=. ;;
    docs_output.md) where=py ;;
    docs_decomposition.md) where=dec ;;
    *) bad "Python examples nobody runs: $page (run them in tests/cli/test_doc_commands.sh)"; continue ;;
  esac
  (cd "$where" && run_line "MPLBACKEND=Agg $HB_PYTHON $W/$f")
  check "$page: its Python examples run as typed in one interpreter" test "$RC" = 0
done
check "Python examples found in README.md and docs/output.md" test -s pyblocks/README.md.py -a -s pyblocks/docs_output.md.py

# ---- mpirun's refusals, visible -----------------------------------------
if [ "$(id -u)" = 0 ]; then
  run_line "env -u OMPI_ALLOW_RUN_AS_ROOT -u OMPI_ALLOW_RUN_AS_ROOT_CONFIRM mpirun -n 1 '$HB' --version"
  check "as root without scripts/env.sh, mpirun refuses and says why (root)" \
    bash -c "[ $RC != 0 ] && grep -qi 'root' '$WORK/hb.stderr'"
fi
run_line "env -u OMPI_MCA_rmaps_base_oversubscribe mpirun -n $(($(nproc) + 1)) '$HB' --version"
check "more ranks than cores without --oversubscribe: mpirun refuses and says why (slots)" \
  bash -c "[ $RC != 0 ] && grep -qi 'slots' '$WORK/hb.stderr'"

# ---- without a launcher, where Slurm meant several tasks ------------------
cat >launch.yaml <<'EOF'
version: 1
input: {file: scan.hspy}
output: {file: launch/out.hspy, overwrite: true, previews: false}
kernels:
  - {name: total, op: sum, axes: signal}
EOF
# what srun sets in every task; Open MPI's own srun launch refuses earlier
# without PMI support, other MPI builds start unconnected singletons
run_line "SLURM_JOB_ID=7 SLURM_NTASKS=2 SLURM_STEP_ID=0 SLURM_STEP_NUM_TASKS=2 SLURM_PROCID=1 '$HB' run launch.yaml"
check "one of 2 srun tasks alone in MPI: exit 2" test "$RC" = 2
check "... and says MPI did not connect them" grep -q "srun started 2 tasks, but MPI did not connect them" "$WORK/hb.stderr"
check "... and writes nothing" test ! -e launch/out.hspy -a ! -e launch/out.hspy.partial

if slurm_up; then
  run_line "sbatch --wait -n 2 -o direct.out --wrap '$HB run launch.yaml'"
  check "a 2-task job running hyperbatch without a launcher: exit 0, output written" \
    test "$RC" = 0 -a -s launch/out.hspy
  check "... with a note to start it with srun or mpirun" \
    grep -q "this Slurm job has 2 tasks, but hyperbatch was started without a launcher" direct.out
  run_line "env -u HYPERBATCH PATH=/usr/bin:/bin:/usr/sbin:/sbin sbatch --wait -o nobin.out jobs/run.sbatch launch.yaml"
  check "run.sbatch without HYPERBATCH or hyperbatch on PATH: the job fails" test "$RC" != 0
  check "... saying what to set" grep -q "set HYPERBATCH=/path/to/hyperbatch or put it on PATH" nobin.out

  # multinode.sbatch's striping, with a stand-in lfs that logs what it is asked;
  # jobs/multinode.yaml's detectors want 256 x 256 patterns
  "$HB" synth 4dstem mn.hspy --shape 4,4,256,256 >/dev/null
  mkdir -p "$WORK/lfsbin"
  printf '#!/bin/sh\necho "lfs $*" >>%s/lfs.log\n' "$WORK" >"$WORK/lfsbin/lfs"
  chmod +x "$WORK/lfsbin/lfs"
  run_line "PATH=$WORK/lfsbin:\$PATH HYPERBATCH='$HB' sbatch --wait -N 1 --ntasks-per-node=2 --cpus-per-task=1 \
      -t 5 -o multinode.out jobs/multinode.sbatch --set input.file=$W/mn.hspy --set output.file=$W/striped/scan.hspy"
  check "multinode.sbatch on 1 node x 2 ranks: exit 0, output written" test "$RC" = 0 -a -s striped/scan.hspy
  check "... striping the folder the output resolves to" \
    grep -qx "lfs setstripe -c 8 -S 16M $W/striped" "$WORK/lfs.log"
  slurm_down
fi

finish
