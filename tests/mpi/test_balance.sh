#!/usr/bin/env bash
# A straggler: one rank takes 15 ms longer per block (HB_FAULT_SLOW_RANK),
# so the others take over its blocks at the agreements (src/engine/balance.c).  The
# results stay bit-identical to one rank's, the straggler ends up with fewer
# blocks, and the provenance counts the blocks moved.
set -euo pipefail
HB=$1
. "$(dirname "$0")/../lib.sh"
cd "$WORK"
"$HB" synth 4dstem in.hspy --shape 24,40,32,32 --chunks 2,4,32,32 --seed 6 >/dev/null
cat >job.yaml <<'YAML'
version: 1
input: {file: in.hspy}
output: {file: out.hspy, previews: false, overwrite: true}
kernels:
  - {name: bf, op: virtual_image, detector: {shape: circle, center: [16, 16], radius: 4}}
  - {name: total, op: sum, axes: signal}
  - {name: mean_dp, op: mean, axes: navigation}
  - {name: max_dp, op: max, axes: navigation}
run: {block: 8, progress: off}
YAML
hb 1 run job.yaml --set output.file=ref.hspy
check "reference run on 1 rank (exit $RC)" test "$RC" = 0

for n in 2 3; do
  slow=$((n - 1))
  export HB_FAULT_SLOW_RANK=$slow:15
  hb $n run job.yaml --set output.file=slow$n.hspy --profile prof$n.json
  unset HB_FAULT_SLOW_RANK
  check "np=$n, rank $slow slow (exit $RC)" test "$RC" = 0
  check "np=$n with a straggler == 1 rank, bit for bit" $HB_PYTHON "$here/tests/compare_outputs.py" ref.hspy slow$n.hspy
  check "np=$n: blocks moved away from the straggler" $HB_PYTHON - prof$n.json slow$n.hspy $slow <<'PY'
import json, sys, h5py
prof, out, slow = json.load(open(sys.argv[1])), sys.argv[2], int(sys.argv[3])
blocks = [r["blocks"] for r in prof["per_rank"]]
moved = int(h5py.File(out, "r")["Experiments/bf/original_metadata/hyperbatch"].attrs["blocks_moved"])
fast = [b for r, b in enumerate(blocks) if r != slow]
print("blocks per rank", blocks, "moved", moved)
sys.exit(0 if sum(blocks) == prof["blocks"] and moved > 0 and blocks[slow] < min(fast) else 1)
PY
done
finish
