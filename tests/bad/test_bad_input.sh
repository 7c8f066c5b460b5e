#!/usr/bin/env bash
# Bad input: each case checks the exit code, the single error message, that
# nothing hangs, and that nothing is left under the output's name.
set -euo pipefail
HB=$1
. "$(dirname "$0")/../lib.sh"
cd "$WORK"
"$HB" synth 4dstem in.hspy --shape 6,5,32,32 --seed 3 >/dev/null

cat >job.yaml <<'YAML'
version: 1
input:
  file: in.hspy
output:
  file: out/res.hspy
kernels:
  - name: bf
    op: virtual_image
    detector: {shape: circle, center: [16, 16], radius: 4}
  - name: mean_dp
    op: mean
    axes: navigation
run:
  progress: off
YAML

nothing_left() { [ ! -e out/res.hspy ] && [ ! -e out/res.hspy.partial ] && ! ls out/*.png >/dev/null 2>&1; }

for n in 1 2 3; do
  sed 's/radius: 4/raduis: 4/' job.yaml >typo.yaml
  hb $n run typo.yaml
  expect_fail "typo in a key (np=$n)" 2 "typo.yaml:9:[0-9]+: unknown key 'raduis'.*did you mean 'radius'"
  check "typo leaves nothing (np=$n)" nothing_left
done

printf 'version: 1\ninput: {file: in.hspy\noutput:\n' >syntax.yaml
hb 2 run syntax.yaml
expect_fail "YAML syntax error" 2 "syntax.yaml:[0-9]+:[0-9]+: YAML syntax error"

hb 2 run job.yaml --set input.file=missing.hspy
expect_fail "missing input" 2 "input file 'missing.hspy' does not exist"
check "missing input leaves nothing" nothing_left

cp in.hspy trunc.hspy
truncate -s 2000 trunc.hspy
hb 2 run job.yaml --set input.file=trunc.hspy
expect_fail "truncated input" 3 "trunc.hspy: .*(truncated|corrupt)"
check "truncated input leaves nothing" nothing_left

# corrupt one compressed chunk in the middle of the data
/usr/bin/python3 - <<'PY'
import h5py
with h5py.File("in.hspy", "r") as f:
    d = f["/Experiments/synthetic 4D-STEM/data"] if "synthetic 4D-STEM" in f["Experiments"] else next(iter(f["Experiments"].values()))["data"]
    info = d.id.get_chunk_info(d.id.get_num_chunks() // 2)
with open("in.hspy", "rb") as f:
    raw = bytearray(f.read())
for i in range(info.byte_offset + 2, info.byte_offset + min(info.size, 200)):
    raw[i] ^= 0x5A
open("corrupt.hspy", "wb").write(raw)
PY
for n in 1 3; do
  hb $n run job.yaml --set input.file=corrupt.hspy
  expect_fail "corrupt chunk (np=$n)" 3 "corrupt.hspy: dataset .*: block [0-9]+ .*chunk at \\("
  check "corrupt chunk leaves nothing (np=$n)" nothing_left
done

sed 's/op: mean/op: meen/' job.yaml >op.yaml
hb 2 run op.yaml
expect_fail "unknown op" 2 "op.yaml:11:9: unknown op 'meen' \\(did you mean 'mean'\\?\\)"

hb 2 run job.yaml --set 'kernels.bf.detector.center=[40, 16]'
expect_fail "detector outside the signal" 2 "center \\[40, 16\\] px is outside the 32 x 32 detector"
hb 3 run job.yaml --set kernels.bf.detector.radius=-1
expect_fail "negative radius" 2 "'radius' must be >= 0"

sed 's/name: mean_dp/name: bf/' job.yaml >dup.yaml
hb 2 run dup.yaml
expect_fail "duplicate names" 2 "dup.yaml:10:11: duplicate kernel name 'bf' \\(first at line 7\\)"

mkdir -p out
echo "precious" >out/res.hspy
hb 2 run job.yaml
expect_fail "existing output without overwrite" 2 "already exists; set output.overwrite: true"
check "existing output untouched" grep -qx precious out/res.hspy
check "no .partial beside it" test ! -e out/res.hspy.partial
rm -f out/res.hspy

touch notadir
hb 2 run job.yaml --set output.file=notadir/res.hspy
expect_fail "output folder cannot be written" 3 "notadir/res.hspy: cannot create the output folder '[^']*notadir': Not a directory"

hb 2 run job.yaml --set output.file=/proc/hyperbatch/res.hspy
expect_fail "output folder under /proc" 3 "/proc/hyperbatch"

hb 1 frobnicate
expect_fail "unknown command" 2 "unknown command 'frobnicate'"
hb 2 run
expect_fail "run without a job" 2 "run needs a job file"

hb 2 validate job.yaml
check "validate succeeds on the good job" test "$RC" = 0
check "validate reads no pixels and writes nothing" nothing_left
hb 2 validate job.yaml --set output.file=/proc/hyperbatch/res.hspy
expect_fail "validate: output folder under /proc" 3 "cannot create the output folder '/proc/hyperbatch'"
hb 1 validate job.yaml --set output.file=new1/new2/res.hspy
check "validate: a folder that can be made passes, and is not made" test "$RC" = 0 -a ! -e new1
hb 1 run job.yaml --dry-run --profile dry.json --resume
check "run's options in any order (JOB --dry-run --profile FILE --resume)" test "$RC" = 0
hb 1 validate job.yaml --dry-run
expect_fail "validate takes no run options" 2 "unexpected argument '--dry-run'"

# A 100 KB scalar aliased through nested lists (a 100 KB
# job that would expand to 6.6 GB) is refused at the alias that crosses the
# expanded-text limit, in little memory: the rank runs under a 1 GB
# address-space limit and /usr/bin/time reports its peak RSS.
{
  printf 'version: 1\ns: &s '
  head -c 100000 /dev/zero | tr '\0' x
  printf '\na: &a [*s, *s, *s, *s, *s, *s, *s, *s, *s]\n'
  printf 'b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n'
  printf 'c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n'
  printf 'd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n'
  printf 'e: [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n'
} >bomb.yaml
set +e
# (the figure goes to a file: a line printed after the rank leaves MPI can
# miss mpirun's stderr forwarding)
timeout 120 mpirun -q -n 1 bash -c 'ulimit -v 1000000 && exec /usr/bin/time -o "$0" -f "peak_rss_kb=%M" "$@"' \
  "$WORK/rss.txt" "$HB" validate bomb.yaml >"$WORK/hb.stdout" 2>"$WORK/hb.stderr"
RC=$?
set -e
# 4th *b of line 5: 100 KB + 9 x 100 KB + 81 x 100 KB + 4 x 8.1 MB > 32 MiB
expect_fail "alias bomb of a large scalar" 2 "bomb.yaml:5:20: aliases expand the job to more than 32 MiB of text"
rss=$(sed -n 's/^peak_rss_kb=//p' "$WORK/rss.txt")
check "alias bomb refused in little memory (peak RSS ${rss:-?} KB < 200 MB)" test "${rss:-999999999}" -lt 200000
# the fuzz corpus's laughs stay within the limits: its error is the unknown key
hb 1 validate "$here/tests/fuzz/corpus_job/laughs.yaml"
expect_fail "fuzz corpus laughs.yaml" 2 "laughs.yaml:2:1: unknown key 'a' in the job"

# A bare YAML null is no file name (it would write files
# called ~ or null); quoted it is one
hb 2 run job.yaml --set 'output.file=~'
expect_fail "output.file=~" 2 "--set output.file=~: 'file' is ~, a YAML null, not a string"
check "output.file=~ writes nothing" test ! -e '~' -a ! -e '~.bf.png'
hb 1 run job.yaml --set run.profile=null
expect_fail "run.profile=null" 2 "--set run.profile=null: 'profile' is null, a YAML null"
check "run.profile=null writes nothing" nothing_left
check "no profile called null" test ! -e null
rm -rf out '~' '~'.*.png null # so that a failure here does not fail the cases below
hb 2 validate job.yaml --set input.file=NULL
expect_fail "input.file=NULL" 2 "--set input.file=NULL: 'file' is NULL, a YAML null"
sed 's/radius: 4}/radius: 4, file: ~}/' job.yaml >maskfile.yaml
hb 1 validate maskfile.yaml
expect_fail "a kernel's file parameter ~" 2 "maskfile.yaml:9:66: 'file' is ~, a YAML null"
hb 1 validate job.yaml --set 'output.file="~"'
check "a quoted \"~\" is a file name" test "$RC" = 0

# run.profile is checked by validate, and by run before
# any pixel is read (it is written last, after the output)
mkdir -p profdir
hb 2 validate job.yaml --set run.profile=profdir
expect_fail "run.profile is a folder" 2 "--set run.profile=profdir: run.profile '[^']*profdir' is a folder"
touch notadir
sed 's/^  progress: off$/  progress: off\n  profile: notadir\/timings.json/' job.yaml >prof.yaml
hb 2 validate prof.yaml
expect_fail "run.profile under a file" 3 "prof.yaml:15:12: cannot create the profile's folder '[^']*notadir': Not a directory"
hb 2 run job.yaml --profile /proc/hyperbatch/timings.json
expect_fail "run.profile that cannot be made fails before the run" 3 \
  "--set run.profile=/proc/hyperbatch/timings.json: cannot create the profile's folder '/proc/hyperbatch'"
check "an unwritable run.profile leaves no output" nothing_left
hb 2 validate job.yaml --set run.profile=prof/new/timings.json
check "validate accepts a profile in a folder still to be made" test "$RC" = 0
check "validate makes no profile folder" test ! -e prof
hb 2 run job.yaml --profile prof/new/timings.json
check "run makes the profile's folder and writes the profile" \
  /usr/bin/python3 -c 'import json, sys; sys.exit(json.load(open("prof/new/timings.json"))["ranks"] != 2)'
rm -rf out prof

finish
