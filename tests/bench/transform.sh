#!/usr/bin/env bash
# Transform benchmarks: a full-size result from a
# 128x128x128x128 float32 file, hyperbatch (one job, N ranks) against
# HyperSpy lazy `.save()` of the same operation, end to end, both writing
# HyperSpy's default gzip-4 + shuffle (or both no filter).  Goal: >= 10x at
# 2 ranks.
#   --op fft    the FFT over the signal axes: `op: fft` against s.fft()
#   --op rebin  crop to the central half of each signal axis, then 2x2 bins:
#               `preprocess: crop, crop` + `op: rebin` against
#               s.isig[a:b, a:b].rebin(scale=(1, 1, 2, 2))
#   --op thin   a thinned scan, every --step-th position along x (default
#               16): `op: crop, axis: x, step: S` against s.inav[::S] (both
#               read only the chunks that hold a kept position)
#   --op region the central quarter of each navigation axis (1/16 of the
#               positions): `op: inav` against s.inav[a:b, c:d]
#
#   tests/bench/transform.sh [--op fft|rebin] [--hb PATH] [--reps N] [--ranks N] [--shape a,b,c,d]
#                            [--compression gzip|none] [--wisdom] [--shift] [--step S] [--set K=V]...
#
#   --hb PATH    the hyperbatch binary (default: $HB, else build/hyperbatch;
#                benchmark a private build: colleagues rebuild build/)
#   --reps N     timed runs of each side, alternating (default 3)
#   --ranks N    MPI ranks for hyperbatch (default 2)
#   --shape      the input's shape (default 128,128,128,128)
#   --compression  gzip (default: both sides' default) or none (both write
#                no filter: hyperbatch output.compression=none, HyperSpy
#                save(compression=None, shuffle=False))
#   --wisdom     plan from FFTW wisdom (measured plans), made once into the
#                cache folder with fftw-wisdom
#   --shift      fft with shift: true on both sides
#   --op         fft (default), rebin, thin or region
#   --set K=V    passed to `hyperbatch run` (repeatable), e.g.
#                --set output.compression=none
#
# The input is made once into $HB_BENCH_DIR/fft (default /tmp/hb-bench/fft):
# `hyperbatch synth 4dstem --dtype float32`, re-saved by HyperSpy (lazy load,
# .save(): its chunks and gzip-4 + shuffle).  HyperSpy runs in one warm
# Python process (tests/bench/hs_transform.py) that has imported HyperSpy and run
# the same fft + save once before the first timed run; only the later runs
# are timed.  hyperbatch is timed end to end (mpirun included).  Each run's
# output is deleted before the next (fft: 4 GiB of complex128 each).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$root/scripts/env.sh"
PY=${HB_BENCH_PYTHON:-${HB_PYTHON:-/usr/bin/python3}}

HB=${HB:-$root/build/hyperbatch}
REPS=3
RANKS=2
SHAPE=128,128,128,128
SHIFT=0
COMPRESSION=gzip
WISDOM=0
SETS=()
OP=fft
STEP=16
while [ $# -gt 0 ]; do
  case $1 in
    --hb) HB=$2; shift ;;
    --reps) REPS=$2; shift ;;
    --ranks) RANKS=$2; shift ;;
    --shape) SHAPE=$2; shift ;;
    --shift) SHIFT=1 ;;
    --compression) COMPRESSION=$2; shift ;;
    --wisdom) WISDOM=1 ;;
    --set) SETS+=(--set "$2"); shift ;;
    --op) OP=$2; shift ;;
    --step) STEP=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "transform.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
HB=$(realpath "$HB")
[ -x "$HB" ] || { echo "transform.sh: no hyperbatch binary at $HB" >&2; exit 2; }

case $OP in fft|rebin|thin|region) ;; *) echo "transform.sh: --op fft, rebin, thin or region" >&2; exit 2 ;; esac
CACHE=${HB_BENCH_DIR:-/tmp/hb-bench}/fft
mkdir -p "$CACHE"
tag=${SHAPE//,/x}
IN=$CACHE/f32-$tag.hspy
HB_OUT=$CACHE/out-hb.hspy
HS_OUT=$CACHE/out-hs.hspy

# ---- the input, once -------------------------------------------------------------
if [ ! -e "$IN" ]; then
  echo "making $IN (once)"
  "$HB" synth 4dstem "$CACHE/synth-$tag.hspy" --shape "$SHAPE" --dtype float32 --compression none >/dev/null
  "$PY" "$here/hs_save.py" "$CACHE/synth-$tag.hspy" "$IN" gzip
  rm -f "$CACHE/synth-$tag.hspy"
fi

case $COMPRESSION in gzip|none) ;; *) echo "transform.sh: --compression gzip or none" >&2; exit 2 ;; esac
IFS=, read -r -a dims <<<"$SHAPE"
sig="${dims[-2]}x${dims[-1]}"
extra=""
if [ $WISDOM = 1 ]; then
  [ -e "$CACHE/$sig.wisdom" ] || fftw-wisdom -n -m -o "$CACHE/$sig.wisdom" "rof$sig"
  extra=", wisdom: $CACHE/$sig.wisdom"
fi
# the central quarter of each navigation axis, HyperSpy's inav[a:b, c:d] (x first)
REGION="$((dims[1] * 3 / 8)):$((dims[1] * 5 / 8)), $((dims[0] * 3 / 8)):$((dims[0] * 5 / 8))"
# the central half of each signal axis, HyperSpy's isig[a:b] in indices
lo_y=$((dims[-2] / 4)) hi_y=$((dims[-2] / 4 + dims[-2] / 2))
lo_x=$((dims[-1] / 4)) hi_x=$((dims[-1] / 4 + dims[-1] / 2))
if [ "$OP" = fft ]; then
  steps="kernels:
  - {name: fft, op: fft, shift: $([ $SHIFT = 1 ] && echo true || echo false)$extra}"
elif [ "$OP" = thin ]; then
  steps="kernels:
  - {name: thinned, op: crop, axis: x, step: $STEP}"
elif [ "$OP" = region ]; then
  steps="kernels:
  - {name: region, op: inav, slices: \"$REGION\"}"
else
  steps="preprocess:
  - {op: crop, axis: 2, start: $lo_x, end: $hi_x}
  - {op: crop, axis: 3, start: $lo_y, end: $hi_y}
kernels:
  - {name: binned, op: rebin, scale: [1, 1, 2, 2]}"
fi
cat >"$CACHE/$OP.yaml" <<EOF
version: 1
input: {file: $IN}
output: {file: $HB_OUT, overwrite: true, previews: false, compression: $COMPRESSION}
$steps
run: {progress: off, checkpoint: false}
EOF

echo "op        $OP$([ "$OP" = thin ] && echo ", step $STEP" || true)$([ "$OP" = region ] && echo ", inav[$REGION]" || true)"
echo "input     $IN ($(du -h "$IN" | cut -f1) on disk), float32 $SHAPE"
echo "machine   $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "output    $COMPRESSION on both sides$([ $WISDOM = 1 ] && echo ", hyperbatch with FFTW wisdom" || true)"
echo "hyperbatch mpirun -n $RANKS $HB ${SETS[*]}"

# ---- HyperSpy, warm ------------------------------------------------------------
coproc HS { exec "$PY" "$here/hs_transform.py" "$OP" "$IN" "$HS_OUT" $([ $SHIFT = 1 ] && echo --shift) \
  $([ "$COMPRESSION" = none ] && echo --no-compression) --crop "$lo_x,$hi_x,$lo_y,$hi_y" --step "$STEP" \
  --region "$REGION"; }
read -r word warm <&"${HS[0]}"
[ "$word" = ready ] || { echo "transform.sh: hs_transform.py did not start: $word $warm" >&2; exit 1; }
echo "HyperSpy  warm-up run (untimed) took $warm s"
rm -f "$HS_OUT"

hb_times=() hs_times=()
for i in $(seq 1 "$REPS"); do
  t0=$EPOCHREALTIME
  mpirun -q -n "$RANKS" $([ "$RANKS" -gt "$(nproc)" ] && echo --oversubscribe) "$HB" run "$CACHE/$OP.yaml" \
    "${SETS[@]}" >"$CACHE/hb.log" 2>&1 || { cat "$CACHE/hb.log"; exit 1; }
  t1=$EPOCHREALTIME
  hb=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  hb_size=$(du -h "$HB_OUT" | cut -f1)
  rm -f "$HB_OUT"
  echo run >&"${HS[1]}"
  read -r word hs <&"${HS[0]}"
  [ "$word" = done ] || { echo "transform.sh: hs_transform.py: $word $hs" >&2; exit 1; }
  hs_size=$(du -h "$HS_OUT" | cut -f1)
  rm -f "$HS_OUT"
  hb_times+=("$hb") hs_times+=("$hs")
  printf 'run %d     hyperbatch %7.3f s (%s)   HyperSpy %7.3f s (%s)   ratio %5.2f\n' "$i" "$hb" "$hb_size" "$hs" \
    "$hs_size" "$(awk -v a="$hs" -v b="$hb" 'BEGIN { print a / b }')"
done
echo quit >&"${HS[1]}"
wait "$HS_PID" 2>/dev/null || true
grep -E 'GB read|phase|open|read|kernels|write|wait' "$CACHE/hb.log" | sed 's/^/last hb   /' || true

# median, min and max of each side; the ratio of the medians, and its range
# (slowest HyperSpy / fastest hyperbatch, fastest / slowest)
stats() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END {
  m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.3f %.3f %.3f", m, a[1], a[NR] }'; }
read -r hb_med hb_min hb_max <<<"$(stats "${hb_times[@]}")"
read -r hs_med hs_min hs_max <<<"$(stats "${hs_times[@]}")"
echo "hyperbatch median $hb_med s (min $hb_min, max $hb_max) at $RANKS ranks"
echo "HyperSpy   median $hs_med s (min $hs_min, max $hs_max)"
awk -v a="$hs_med" -v b="$hb_med" -v lo="$(awk -v a="$hs_min" -v b="$hb_max" 'BEGIN { print a / b }')" \
  -v hi="$(awk -v a="$hs_max" -v b="$hb_min" 'BEGIN { print a / b }')" \
  -v goal="$(case $OP in thin|region) echo 0 ;; *) echo 10 ;; esac)" \
  'BEGIN { r = a / b; printf "ratio      %.2f (spread %.2f to %.2f)", r, lo, hi
           if (goal) printf "; goal >= %d: %s", goal, (r >= goal ? "PASS" : "MISS"); printf "\n" }'
