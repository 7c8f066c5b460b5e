#!/usr/bin/env bash
# Strong and weak scaling of one job at 1, 2, 3 and 4 ranks (more ranks than
# cores are oversubscribed), for a gzip and an uncompressed input.  Not a
# meson test: run it on an idle machine.
#
#   tests/bench/scaling.sh [OUTDIR]        (default build/scaling)
#
#   strong  fixed input: a $STRONG_NY x 128 scan of 128 x 128 uint16 patterns
#           (default 512 rows: 2.1 GB)
#   weak    the input grows with the ranks: ($WEAK_NY N) x 128 patterns
#           (default 128 rows: 537 MB per rank)
#
# Both use 8 x 8 x 128 x 128 chunks (2 MiB), run.block auto (8 MiB blocks).
# The job is the one of docs/performance.md: bright field, annular dark field,
# per-pattern sum, mean and max pattern.  Each point is run $REPS times
# (default 3) and the run with the smallest wall time is kept, with the spread.
#
# Timings come from the output's provenance (every result's
# original_metadata/hyperbatch: wall_time_s, bytes_read, and
# timing/<phase>/{min_s, median_s, max_s, bytes} for open, read, kernels,
# reduce, write); the launch (mpirun + MPI_Init) is measured outside.
# Writes OUTDIR/scaling.csv and OUTDIR/scaling.png (tests/bench/scaling_plot.py).
# The inputs stay in OUTDIR (about 9 GB with the defaults) for the next run.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$(mkdir -p "${1:-$ROOT/build/scaling}" && cd "${1:-$ROOT/build/scaling}" && pwd)
HB=${HYPERBATCH:-$ROOT/build/hyperbatch}
# a private copy, so that a rebuild during the study cannot change the binary under it
mkdir -p "$OUT/bin"
cp "$HB" "$OUT/bin/hyperbatch"
HB=$OUT/bin/hyperbatch
REPS=${REPS:-3}
STRONG_NY=${STRONG_NY:-512}
WEAK_NY=${WEAK_NY:-128}
RANKS=${RANKS:-"1 2 3 4"}
. "$ROOT/scripts/env.sh"
cd "$OUT"

synth() { # synth FILE NY COMPRESSION
  [ -f "$1" ] || "$HB" synth 4dstem "$1" --shape "$2",128,128,128 --chunks 8,8,128,128 --compression "$3" >/dev/null
}
cat >job.yaml <<'EOF'
version: 1
input: {file: in.hspy}
output: {file: out.hspy, overwrite: true, previews: false}
kernels:
  - {name: bf, op: virtual_image, detector: {shape: circle, center: [64, 64], radius: 12}}
  - {name: adf, op: virtual_image, detector: {shape: annulus, center: [64, 64], inner: 16, outer: 60}}
  - {name: total, op: sum, axes: signal}
  - {name: mean_dp, op: mean, axes: navigation}
  - {name: max_dp, op: max, axes: navigation}
run: {progress: off}
EOF

csv=$OUT/scaling.csv
echo "study,compression,ranks,rep,input_bytes,file_bytes,blocks,launch_wall_s,wall_s,bytes_read,$(
  for p in open read kernels reduce write; do printf '%s_min_s,%s_median_s,%s_max_s,%s_bytes,' $p $p $p $p; done |
    sed 's/,$//')" >"$csv"

run_point() { # run_point STUDY COMPRESSION N FILE
  local study=$1 comp=$2 n=$3 file=$4 rep t0 t1
  for rep in $(seq "$REPS"); do
    t0=$(date +%s.%N)
    if ! mpirun -q -n "$n" "$HB" run job.yaml --set input.file="$file" >/dev/null 2>"$OUT/run.err"; then
      echo "FAIL: $study $comp N=$n rep $rep:"
      cat "$OUT/run.err"
      exit 1
    fi
    t1=$(date +%s.%N)
    /usr/bin/python3 - "$study" "$comp" "$n" "$rep" "$file" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" >>"$csv" <<'PY'
import os, sys, h5py
study, comp, n, rep, path, launch = sys.argv[1:]
with h5py.File("out.hspy", "r") as f:
    a = f["Experiments/bf/original_metadata/hyperbatch"]
    row = [study, comp, n, rep]
    with h5py.File(path, "r") as i:
        d = i["Experiments/synthetic 4D-STEM/data"]
        row += [d.size * d.dtype.itemsize, os.path.getsize(path)]
    row += [int(a.attrs["blocks"]), float(launch), float(a.attrs["wall_time_s"]), int(a.attrs["bytes_read"])]
    for p in ["open", "read", "kernels", "reduce", "write"]:
        t = a["timing"][p].attrs
        row += [float(t["min_s"]), float(t["median_s"]), float(t["max_s"]), int(t["bytes"])]
print(",".join(str(x) for x in row))
PY
  done
  echo "$study $comp N=$n: $(tail -n "$REPS" "$csv" | cut -d, -f9 | sort -n | head -1) s (best of $REPS)"
}

for comp in gzip none; do
  synth "strong_$comp.hspy" "$STRONG_NY" "$comp"
  for n in $RANKS; do run_point strong "$comp" "$n" "strong_$comp.hspy"; done
  for n in $RANKS; do
    synth "weak_${comp}_$n.hspy" $((WEAK_NY * n)) "$comp"
    run_point weak "$comp" "$n" "weak_${comp}_$n.hspy"
  done
done
/usr/bin/python3 "$ROOT/tests/bench/scaling_plot.py" "$csv" "$OUT/scaling.png"
echo "wrote $csv and $OUT/scaling.png"
