#!/usr/bin/env bash
# Outputs are bit-identical at 1, 2 and 3 ranks, for integer and float data,
# with uneven block counts and partial edge chunks.
set -euo pipefail
HB=$1
. "$(dirname "$0")/../lib.sh"
cd "$WORK"
"$HB" synth 4dstem u16.hspy --shape 13,11,40,36 --chunks 4,3,40,36 --seed 5 >/dev/null
"$HB" synth 4dstem f32.hspy --shape 9,14,24,20 --chunks 2,5,24,20 --dtype float32 --compression none --seed 6 >/dev/null
"$HB" synth eels eels.hspy --shape 7,10,96 --chunks 3,4,96 --seed 7 >/dev/null

cat >job4d.yaml <<'YAML'
version: 1
input: {file: u16.hspy}
output: {file: r.hspy, previews: false}
preprocess:
  - op: filter_hot_pixels
kernels:
  - {name: bf, op: virtual_image, detector: {shape: circle, center: [18, 20], radius: 6}}
  - {name: adf, op: virtual_image, detector: {shape: annulus, center: [18, 20], inner: 8, outer: 17}}
  - {name: box, op: virtual_image, detector: {shape: rectangle, x: [3, 9], y: [30, 39]}}
  - {name: pt, op: virtual_image, detector: {shape: point, at: [35, 0]}}
  - {name: sum_sig, op: sum, axes: signal}
  - {name: mean_sig, op: mean, axes: signal}
  - {name: max_sig, op: max, axes: signal}
  - {name: min_sig, op: min, axes: signal}
  - {name: sum_nav, op: sum, axes: navigation}
  - {name: mean_nav, op: mean, axes: navigation}
  - {name: max_nav, op: max, axes: navigation}
  - {name: min_nav, op: min, axes: navigation}
run: {progress: off}
YAML
sed -e 's/u16.hspy/f32.hspy/' -e 's/center: \[18, 20\]/center: [10, 12]/g' -e 's/radius: 6/radius: 4/' \
  -e 's/outer: 17/outer: 11/' -e 's/x: \[3, 9\], y: \[30, 39\]/x: [3, 9], y: [15, 24]/' -e 's/at: \[35, 0\]/at: [19, 0]/' \
  job4d.yaml >jobf.yaml
cat >jobeels.yaml <<'YAML'
version: 1
input: {file: eels.hspy}
output: {file: r.hspy, previews: false}
kernels:
  - {name: total, op: sum, axes: signal}
  - {name: mean_spectrum, op: mean, axes: navigation}
  - {name: sum_spectrum, op: sum, axes: navigation}
  - {name: max_spectrum, op: max, axes: navigation}
run: {progress: off}
YAML

for job in job4d jobf jobeels; do
  for block in auto 1 5 17; do
    outs=()
    for n in 1 2 3; do
      hb $n run $job.yaml --set output.file=$job.$block.np$n.hspy --set run.block=$block
      if [ "$RC" != 0 ]; then bad "$job block=$block np=$n failed with exit $RC"; continue; fi
      outs+=($job.$block.np$n.hspy)
    done
    check "$job block=$block: identical at 1, 2, 3 ranks" $HB_PYTHON "$here/tests/compare_outputs.py" "${outs[@]}"
  done
done
# --profile: every rank's phases and bytes, consistent with the provenance
hb 3 run job4d.yaml --set output.file=prof.hspy --profile prof.json
check "--profile run (exit $RC)" test "$RC" = 0
check "--profile JSON: 3 ranks, every block once, bytes match the provenance" $HB_PYTHON - <<'PY'
import json, h5py
p = json.load(open("prof.json"))
with h5py.File("prof.hspy", "r") as f:
    prov = f["Experiments/bf/original_metadata/hyperbatch"].attrs
    ok = (p["ranks"] == 3 and len(p["per_rank"]) == 3 and p["blocks"] == prov["blocks"]
          and sum(r["blocks"] for r in p["per_rank"]) == p["blocks"]
          and sum(r["bytes"]["read"] for r in p["per_rank"]) == prov["bytes_read"]
          and "--set run.profile=prof.json" in [prov_s for prov_s in f["Experiments/bf/original_metadata/hyperbatch/_list_2_sets"].attrs.values()])
print("profile:", p["ranks"], p["blocks"], ok)
raise SystemExit(0 if ok else 1)
PY

# MPI-IO hints reach the file accesses and change nothing in the results
hb 2 run job4d.yaml --set output.file=hints.hspy --set 'run.mpiio_hints={romio_cb_read: enable, cb_buffer_size: 1048576}'
check "run.mpiio_hints accepted (exit $RC)" test "$RC" = 0
check "run.mpiio_hints: same results" $HB_PYTHON "$here/tests/compare_outputs.py" job4d.auto.np1.hspy hints.hspy
hb 2 validate job4d.yaml --set 'run.mpiio_hints={romio_cb_read: [a, b]}'
expect_fail "an MPI-IO hint must be one value" 2 "MPI-IO hint 'romio_cb_read' must be a single value"
finish
