#!/usr/bin/env bash
# std over the navigation axes against mean on the same data (at
# most 1.5x), on ~0.5 GB inputs: uint16 (exact integer moments) and float32
# (shifted sums), each uncompressed and gzip.
#
#   tests/bench/std.sh [--hb PATH] [--reps N] [--ranks N]
#
#   --hb PATH    the hyperbatch binary (default: $HB, else build/hyperbatch)
#   --reps N     timed runs of each op per input, mean and std alternately so
#                that both see the same machine (default 7)
#   --ranks N    MPI ranks (default 2)
#
# Inputs are `hyperbatch synth 4dstem` files made once into
# $HB_BENCH_DIR/inputs (default /tmp/hb-bench/inputs).  Prints, per input,
# the median engine time (hyperbatch's "GB read in X s") and the median
# kernels phase of each op, and the ratios std/mean; the last line is
# "std/mean engine time: worst X (target 1.5): PASS" (or MISS, exit 1).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$root/scripts/env.sh"
HB=${HB:-$root/build/hyperbatch}
REPS=7
RANKS=2
while [ $# -gt 0 ]; do
  case $1 in
    --hb) HB=$2; shift ;;
    --reps) REPS=$2; shift ;;
    --ranks) RANKS=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "std.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
HB=$(realpath "$HB")
[ -x "$HB" ] || { echo "std.sh: no hyperbatch binary at $HB" >&2; exit 2; }
CACHE=${HB_BENCH_DIR:-/tmp/hb-bench}
IN=$CACHE/inputs
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hb-std.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$IN"

# name, synth arguments (0.54 GB each)
INPUTS=("u16-none:--shape 128,128,128,128 --compression none"
        "u16-gzip:--shape 128,128,128,128 --compression gzip"
        "f32-none:--shape 64,128,128,128 --dtype float32 --compression none"
        "f32-gzip:--shape 64,128,128,128 --dtype float32 --compression gzip")
for spec in "${INPUTS[@]}"; do
  f=$IN/std-${spec%%:*}.hspy
  # shellcheck disable=SC2086
  [ -e "$f" ] || "$HB" synth 4dstem "$f" ${spec#*:} >/dev/null
done

echo "load avg at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
median() { sort -g | awk '{ a[NR] = $1 } END { printf "%.4f", NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
worst=0
printf '%-9s %-4s %9s %9s   %s\n' input op "engine s" "kernels s" "(medians of $REPS, $RANKS ranks)"
for spec in "${INPUTS[@]}"; do
  name=${spec%%:*}
  for op in mean std; do
    cat >"$WORK/$op.yaml" <<EOF
version: 1
input: {file: $IN/std-$name.hspy}
output: {file: $WORK/$op.hspy, overwrite: true, previews: false}
kernels:
  - {name: r, op: $op, axes: navigation}
run: {progress: off, checkpoint: false}
EOF
    : >"$WORK/$op.engine"
    : >"$WORK/$op.kernels"
  done
  mpirun -q -n "$RANKS" "$HB" run "$WORK/mean.yaml" >/dev/null # warm the page cache and the binary
  for ((rep = 1; rep <= REPS; rep++)); do
    for op in mean std; do
      log=$(mpirun -q -n "$RANKS" "$HB" run "$WORK/$op.yaml" 2>&1) || { echo "$log"; exit 1; }
      echo "$log" | sed -nE 's/.* GB read in ([0-9.]+) s .*/\1/p' >>"$WORK/$op.engine"
      echo "$log" | awk '$2 == "kernels" { print $4 }' >>"$WORK/$op.kernels"
    done
  done
  for op in mean std; do
    eval "${op}_e=$(median <"$WORK/$op.engine") ${op}_k=$(median <"$WORK/$op.kernels")"
    eval "printf '%-9s %-4s %9s %9s\n' $name $op \$${op}_e \$${op}_k"
  done
  # shellcheck disable=SC2154
  ratio=$(awk -v a="$std_e" -v b="$mean_e" 'BEGIN { printf "%.2f", a / b }')
  kratio=$(awk -v a="$std_k" -v b="$mean_k" 'BEGIN { printf "%.2f", a / b }')
  echo "$name: std/mean engine time $ratio, kernels phase $kratio"
  worst=$(awk -v a="$ratio" -v b="$worst" 'BEGIN { print (a > b ? a : b) }')
done
echo "load avg at the end:   $(cut -d' ' -f1-3 /proc/loadavg)"
verdict=$(awk -v w="$worst" 'BEGIN { print (w <= 1.5 ? "PASS" : "MISS") }')
echo "std/mean engine time: worst $worst (target 1.5): $verdict"
[ "$verdict" = PASS ]
