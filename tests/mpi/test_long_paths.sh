#!/usr/bin/env bash
# Long file paths.  Open MPI 4.1's lockedfile
# shared-file-pointer component, queried at every MPI_File_open, writes
# "<file>.locktest.<rank>" into a 256-byte buffer: a path of 245 characters
# or more (an output path of 237, with ".partial") aborted with "buffer
# overflow detected", exit 134.  hyperbatch keeps that component out
# (launch.c); here input and output paths of 215 to 300 characters, at 1 and
# 2 ranks, through a checkpoint and --resume, give the same results as short
# ones, and no MPI-IO file appears next to them.
# Usage: test_long_paths.sh path/to/hyperbatch
set -euo pipefail
HB=$1
. "$(dirname "$0")/../lib.sh"
cd "$WORK"

# longpath LEN NAME [FOLDER]: a path of exactly LEN characters under FOLDER
# (default $WORK/out), ending in NAME padded with x in front (folders of 100
# characters), its folders made
longpath() {
  local len=$1 name=$2 p=${3:-$WORK/out}
  while [ $((len - ${#p} - 1 - ${#name})) -gt 150 ]; do p=$p/$(printf 'd%.0s' $(seq 100)); done
  mkdir -p "$p"
  p=$p/$(printf 'x%.0s' $(seq $((len - ${#p} - 1 - ${#name}))))$name
  [ ${#p} = "$len" ] || { echo "longpath: cannot make a path of $len characters ($p)" >&2; exit 1; }
  echo "$p"
}

"$HB" synth 4dstem in.hspy --shape 16,12,32,32 --chunks 2,4,32,32 --seed 7 >/dev/null
cat >job.yaml <<'YAML'
version: 1
input: {file: in.hspy}
output: {file: ref.hspy, previews: false}
kernels:
  - {name: bf, op: virtual_image, detector: {shape: circle, center: [16, 16], radius: 4}}
  - {name: total, op: sum, axes: signal}
  - {name: mean_dp, op: mean, axes: navigation}
run: {block: 8, progress: off}
YAML
hb 2 run job.yaml
check "short paths: the reference (exit $RC)" test "$RC" = 0

IN=$(longpath 290 in.hspy "$WORK/in") # a folder of its own
cp in.hspy "$IN"
same() { # same FILE: FILE's results == the reference's, bit for bit
  [ -e "$1" ] || { echo "     | $1 does not exist"; return 1; }
  $HB_PYTHON "$here/tests/compare_outputs.py" ref.hspy "$1" >"$WORK/cmp.txt" || { sed 's/^/     | /' "$WORK/cmp.txt"; false; }
}
# strays INPUT OUTPUT...: anything next to the input but itself, and Open
# MPI's files next to the outputs (sharedfp lockedfile's .lock and
# .locktest.<rank>, individual's .data.<rank> and .metadata.<rank>, ROMIO's .shfp.)
strays() {
  local f
  find "$(dirname "$1")" -maxdepth 1 -type f ! -name "$(basename "$1")"
  shift
  for f in "$@"; do
    find "$(dirname "$f")" -maxdepth 1 -type f \( -name '*-[0-9]*-[0-9]*.lock' -o -name '*.locktest.[0-9]*' \
      -o -name '*.data.[0-9]*' -o -name '*.metadata.[0-9]*' -o -name '*.shfp.*' \)
  done
}
no_strays() { local s; s=$(strays "$@"); [ -z "$s" ] || { echo "     | $s"; false; }; }

OUTS=()
for n in 1 2; do
  # the input's open, the output's, both
  for case in "$IN 215" "in.hspy 237" "$IN 300"; do
    set -- $case
    OUT=$(longpath $2 out_${n}_$2.hspy)
    OUTS+=("$OUT")
    hb $n run job.yaml --set input.file="$1" --set output.file="$OUT"
    if [ "$1" = in.hspy ]; then what="short input path"; else what="input path of ${#1} characters"; fi
    check "$n rank(s), $what, output path of $2 (exit $RC)" test "$RC" = 0
    check "$n rank(s), output path of $2: == short paths" same "$OUT"
  done
done
check "HyperSpy loads the output of 300 characters" $HB_PYTHON -c "
import sys, warnings; warnings.simplefilter('ignore')
import hyperspy.api as hs; assert len(hs.load(sys.argv[1])) == 3" "$OUT"

# a checkpoint with a long name, then --resume (opens the .partial again for writing)
OUT=$(longpath 300 stopped.hspy)
OUTS+=("$OUT")
HB_CHECKPOINT_SECONDS=0 HB_FAULT_SIGNAL_AFTER=2 hb 2 run job.yaml --set input.file="$IN" --set output.file="$OUT"
expect_fail "long output path: a stop keeps a checkpoint" 75 "stopped.hspy: stopped by signal 10 after [0-9]+ of [0-9]+ blocks"
check "long output path: the .partial is kept" test -e "$OUT.partial"
hb 2 run job.yaml --set input.file="$IN" --set output.file="$OUT" --resume
check "long output path: --resume (exit $RC)" test "$RC" = 0
check "long output path: resumed == short paths" same "$OUT"
check "no file next to the input, no MPI-IO file next to the outputs" no_strays "$IN" "${OUTS[@]}"
finish
