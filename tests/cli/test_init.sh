#!/usr/bin/env bash
# `hyperbatch init FILE > job.yaml`: the starter job validates and runs as
# written, for a 4D-STEM .hspy, an EELS spectrum image, a plain HDF5 file
# with two arrays (it takes the larger), a complex scan (its amplitude, by a
# preprocess step) and a name YAML would misread; and
# where the paths of a job and of the command line resolve.
set -euo pipefail
HB=$1
. "$(dirname "$0")/../lib.sh"
cd "$WORK"
"$HB" synth 4dstem scan.hspy --shape 6,5,32,32 --seed 3 >/dev/null
"$HB" synth eels si.hspy >/dev/null
/usr/bin/python3 -c '
import h5py, numpy as np
with h5py.File("det.h5", "w") as f:
    f["entry/data/data"] = np.random.default_rng(1).poisson(5, (4, 3, 16, 20)).astype("uint16")
    f["entry/dark"] = np.zeros((16, 20), "float32")
    # a complex scan as HyperSpy saves a ComplexSignal2D (h5py: compound r, i)
    z = np.random.default_rng(2).normal(size=(3, 4, 16, 16, 2))
    f2 = h5py.File("holo.h5", "w")
    f2["data"] = (z[..., 0] + 1j * z[..., 1]).astype("complex64")'
cp scan.hspy 'a "quoted": #name.hspy'

# titles of the results in an output, sorted
titles() { /usr/bin/python3 -c 'import h5py, sys; print(" ".join(sorted(h5py.File(sys.argv[1])["Experiments"])))' "$1"; }

for case in "scan.hspy|adf bf max_pattern mean_pattern total" "si.hspy|mean_spectrum total window" \
            "det.h5|adf bf max_pattern mean_pattern total" 'a "quoted": #name.hspy|adf bf max_pattern mean_pattern total' \
            "holo.h5|adf bf max_pattern mean_pattern total"; do
  file=${case%%|*} want=${case#*|}
  set +e
  "$HB" init "$file" >job.yaml 2>"$WORK/hb.stderr"
  RC=$?
  set -e
  check "init $file: exit 0" test "$RC" = 0
  hb 1 validate job.yaml
  check "init $file: the job validates as written" test "$RC" = 0
  hb 2 run job.yaml
  check "init $file: the job runs as written on 2 ranks" test "$RC" = 0
  stem=${file%.*}
  check "init $file: results $want" test "$(titles "results/${stem}_results.hspy" 2>/dev/null)" = "$want"
done
check "init of a plain HDF5 file takes the larger array" grep -q 'dataset: "/entry/data/data"' <("$HB" init det.h5)

# paths (docs/job-format.md, "Paths"): written in a job, against the job's
# folder; typed on the command line, against the current one; printed
# without ".." or links
mkdir -p proj/configs proj/data elsewhere
cp scan.hspy proj/data/scan.hspy
cat >proj/configs/job.yaml <<'YAML'
version: 1
input: {file: ../data/scan.hspy}
output: {file: ../results/out.hspy}
kernels:
  - {name: total, op: sum, axes: signal}
YAML
(cd elsewhere && "$HB" validate ../proj/configs/job.yaml --set output.file=typed/out.hspy) >paths.out 2>&1 || true
check "a job's input path resolves against the job's folder, printed without '..'" \
  grep -q "^input   $WORK/proj/data/scan.hspy " paths.out
check "a path typed in --set resolves against the current folder" grep -qx "output  $WORK/elsewhere/typed/out.hspy" paths.out
(cd elsewhere && "$HB" validate ../proj/configs/job.yaml) >paths2.out 2>&1 || true
check "a job's output path resolves against the job's folder, printed without '..'" \
  grep -qx "output  $WORK/proj/results/out.hspy" paths2.out

echo "not HDF5" >notes.txt
hb 1 init notes.txt
expect_fail "init of a file that is not HDF5" 3 "notes.txt: cannot open as HDF5"
hb 1 init
expect_fail "init without a file" 2 "init needs exactly one FILE"
finish
