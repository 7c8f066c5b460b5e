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

finish
