#!/usr/bin/env bash
# A bitshuffle/LZ4 input against the machine's LZ4 decompression limit,
# measured in the same run (docs/performance.md, "Bitshuffle/LZ4 input").
#
#   tests/bench/lz4.sh [--quick] [--hb PATH] [--reps N] [--ranks N]
#
# Input: the 2.1 GB bench input (hyperbatch synth 4dstem 256x256x128x128
# uint16, uncompressed, as bench.sh makes it; --quick: 64x64) rewritten with
# bitshuffle/LZ4 by h5repack through Debian's serial bitshuffle plugin, as a
# detector's software writes it.  Both are made once into
# $HB_BENCH_DIR/inputs (default /tmp/hb-bench) and read from the page cache.
#
# Each round, alternating:
#   limit   tests/bench/lz4_limit on the file's own chunks, all in memory, on
#           --ranks threads: "lz4" (LZ4 only: the limit) and "decode" (LZ4
#           and the bit transpose, hyperbatch's whole decode);
#   hb      hyperbatch run, --ranks ranks, one op (sum over the signal), its
#           engine line "N blocks, X GB read in T s (R GB/s)";
#   plain   the same job on the uncompressed file (the page-cache read rate).
# Prints each round and the median and spread of hb / lz4 and hb / decode.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$root/scripts/env.sh"
HB=${HB:-$root/build/hyperbatch}
REPS=5 RANKS=2 SHAPE=256,256,128,128
while [ $# -gt 0 ]; do
  case $1 in
    --quick) SHAPE=64,64,128,128 REPS=2 ;;
    --hb) HB=$2; shift ;;
    --reps) REPS=$2; shift ;;
    --ranks) RANKS=$2; shift ;;
    *) echo "lz4.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
LIMIT=$(dirname "$HB")/tests/bench/lz4_limit
[ -x "$LIMIT" ] || LIMIT=$root/build/tests/bench/lz4_limit
[ -x "$LIMIT" ] || { echo "lz4.sh: no lz4_limit: run scripts/build" >&2; exit 2; }
command -v h5repack >/dev/null || { echo "lz4.sh: needs h5repack (hdf5-tools)" >&2; exit 2; }

IN=${HB_BENCH_DIR:-/tmp/hb-bench}/inputs
mkdir -p "$IN"
tag=$(echo "$SHAPE" | tr , x)
plain=$IN/synth-none-$tag.hspy
bslz4=$IN/synth-bslz4-$tag.hspy
if [ ! -e "$plain" ]; then
  "$HB" synth 4dstem "$plain.tmp.hspy" --shape "$SHAPE" --compression none >/dev/null
  mv "$plain.tmp.hspy" "$plain"
fi
data="/Experiments/synthetic 4D-STEM/data"
if [ ! -e "$bslz4" ]; then
  # filter 32008, mandatory, 2 client values: block size 0 (the default), LZ4 (2)
  HDF5_PLUGIN_PATH=/usr/lib/x86_64-linux-gnu/hdf5/serial/plugins \
    h5repack -f "$data:UD=32008,0,2,0,2" "$plain" "$bslz4.tmp"
  mv "$bslz4.tmp" "$bslz4"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
job() { # job INPUT OUTPUT
  cat >"$work/$2.yaml" <<EOF
version: 1
input: {file: "$1"}
kernels:
  - {name: total, op: sum, axes: signal}
output: {file: "$work/$2.hspy", overwrite: true, previews: false}
run: {progress: off}
EOF
  echo "$work/$2.yaml"
}
hb_rate() { # the engine's GB/s
  mpirun -q -n "$RANKS" --oversubscribe "$HB" run "$1" 2>&1 | sed -n 's/.* GB read in .* (\([0-9.]*\) GB\/s).*/\1/p'
}
jb=$(job "$bslz4" bslz4) jp=$(job "$plain" plain)
cat "$plain" "$bslz4" >/dev/null # into the page cache
hb_rate "$jb" >/dev/null         # warm: the first run loads libraries
echo "lz4.sh: $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); hb $HB; $RANKS ranks"
echo "input: $bslz4 ($(du -h "$bslz4" | cut -f1); $(du -h "$plain" | cut -f1) uncompressed)"
printf '%-6s %10s %10s %10s %10s %9s %9s\n' round "lz4 GB/s" "dec GB/s" "hb GB/s" "plain GB/s" "hb/lz4" "hb/dec"
ratios=()
for r in $(seq 1 "$REPS"); do
  out=$("$LIMIT" "$bslz4" "$data" "$RANKS" 3)
  lz4=$(echo "$out" | awk '$1 == "lz4" {print $2}')
  dec=$(echo "$out" | awk '$1 == "decode" {print $2}')
  hb=$(hb_rate "$jb")
  pl=$(hb_rate "$jp")
  a=$(echo "$hb $lz4" | awk '{printf "%.2f", $1 / $2}')
  b=$(echo "$hb $dec" | awk '{printf "%.2f", $1 / $2}')
  printf '%-6s %10s %10s %10s %10s %9s %9s\n' "$r" "$lz4" "$dec" "$hb" "$pl" "$a" "$b"
  ratios+=("$a $b")
done
stat() { # median (min-max) of column $1
  printf '%s\n' "${ratios[@]}" | awk -v c="$1" '{print $c}' | sort -n |
    awk '{v[NR] = $1} END {printf "median %.2f (%.2f-%.2f)", v[int((NR + 1) / 2)], v[1], v[NR]}'
}
echo "hb / lz4 limit: $(stat 1); hb / whole decode: $(stat 2); goal: hb / lz4 >= 0.70"
echo "lz4.sh: done, load $(cut -d' ' -f1-3 /proc/loadavg)"
