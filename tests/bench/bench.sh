#!/usr/bin/env bash
# hyperbatch benchmark: machine limits, hyperbatch against HyperSpy
# lazy, memory against input size, and the cost of many results.
#
#   tests/bench/bench.sh [--quick] [--hb PATH] [--reps N] [--ranks N]
#
#   --quick      small inputs and 1 repetition: a smoke test (about a minute)
#   --hb PATH    the hyperbatch binary (default: $HB, else build/hyperbatch).
#                Benchmark a private build: colleagues rebuilding build/ swap
#                the binary under a running benchmark.
#   --reps N     timed repetitions of each run (default 3; --quick: 1; the
#                detector comparison, whose runs take 0.04 s, at least 7)
#   --ranks N    MPI ranks for hyperbatch (default 2)
#   --set K=V    passed to every `hyperbatch run` (repeatable), e.g.
#                --set run.threads=2 to compare settings
#
# Environment: HB_BENCH_DIR (cache folder, default /tmp/hb-bench), HB,
# HB_BENCH_REPS, HB_INFLATE_BENCH (a prebuilt inflate_bench), HB_BENCH_PYTHON
# (the Python with HyperSpy and matplotlib; default /usr/bin/python3).
#
# Inputs are generated once into $HB_BENCH_DIR/inputs and reused. Results go
# to $HB_BENCH_DIR/results (results-quick for --quick): CSV files, bench.log
# (everything printed here) and bench.png.  Timings need an idle machine: the
# load average is printed at the start and the end of every run.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$root/scripts/env.sh"
PY=${HB_BENCH_PYTHON:-${HB_PYTHON:-/usr/bin/python3}}

QUICK=0
HB=${HB:-$root/build/hyperbatch}
REPS=${HB_BENCH_REPS:-}
RANKS=2
SETS=()
while [ $# -gt 0 ]; do
  case $1 in
    --quick) QUICK=1 ;;
    --hb) HB=$2; shift ;;
    --hb=*) HB=${1#--hb=} ;;
    --reps) REPS=$2; shift ;;
    --reps=*) REPS=${1#--reps=} ;;
    --ranks) RANKS=$2; shift ;;
    --ranks=*) RANKS=${1#--ranks=} ;;
    --set) SETS+=(--set "$2"); shift ;;
    --set=*) SETS+=(--set "${1#--set=}") ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$REPS" ] || REPS=$([ $QUICK = 1 ] && echo 1 || echo 3)
# one and ten detectors differ by ~10 ms in ~40 ms runs that vary by +-2 ms
# from run to run: a median of 3 moved the ratio by 0.07 between two bench
# runs of the same binary
DET_REPS=$([ $QUICK = 1 ] || [ "$REPS" -ge 7 ] && echo "$REPS" || echo 7)
HB=$(realpath "$HB" 2>/dev/null || echo "$HB")
[ -x "$HB" ] || { echo "bench.sh: no hyperbatch binary at $HB (build it, or pass --hb PATH)" >&2; exit 2; }

CACHE=${HB_BENCH_DIR:-/tmp/hb-bench}
IN=$CACHE/inputs
OUT=$CACHE/results$([ $QUICK = 1 ] && echo -quick || true)
TMP=$CACHE/tmp
mkdir -p "$IN" "$OUT" "$TMP/jobs" "$TMP/out" "$CACHE/bin"
rm -f "$OUT"/*.csv "$OUT"/bench.png "$TMP"/out/*
exec > >(tee "$OUT/bench.log") 2>&1

# ---- helpers ---------------------------------------------------------------

say() { printf '%s\n' "$*"; }
hr() { say ""; say "== $* =="; }
now() { echo "$EPOCHREALTIME"; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", a - b }'; }
calc() { awk "BEGIN { printf \"%.${2:-3}f\", $1 }"; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b + 0 > 0) printf "%.2f", a / b; else printf "-" }'; }
# median of the numbers on stdin (empty input: empty output)
med() { sort -g | awk '{ a[NR] = $1 } END { if (NR) printf "%.4f", NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
mn() { sort -g | head -1; }
mx() { sort -g | tail -1; }
# col FILE NAME: the column number of NAME in FILE's CSV header
col() { head -1 "$1" | tr ',' '\n' | grep -nx "$2" | cut -d: -f1; }
# pick FILE COLUMN KEY=VALUE...: values of COLUMN in rows matching every KEY=VALUE
pick() {
  local f=$1 c=$2 prog="" kv k v
  shift 2
  for kv in "$@"; do
    k=${kv%%=*} v=${kv#*=}
    prog+="\$$(col "$f" "$k") == \"$v\" && "
  done
  awk -F, "NR > 1 && ${prog}1 { print \$$(col "$f" "$c") }" "$f" | grep -v '^$' || true
}
r2() { [ -n "$1" ] && printf '%.2f' "$1" || echo -; }
r3() { [ -n "$1" ] && printf '%.3f' "$1" || echo -; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
gb_of() { calc "$1 / 1e9" 3; }
mib() { calc "$1 / 1024" 1; } # KiB -> MiB
verdict() { # verdict OK? -> PASS/MISS
  if [ "$1" = 1 ]; then echo PASS; else echo MISS; fi
}
ge() { awk -v a="$1" -v b="$2" 'BEGIN { print (a != "" && a + 0 >= b + 0) ? 1 : 0 }'; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { print (a != "" && a + 0 < b + 0) ? 1 : 0 }'; }

# ---- the machine and the tools ---------------------------------------------

say "hyperbatch benchmark — $(date -Is)$([ $QUICK = 1 ] && echo '  (--quick: small inputs, not for the record)')"
say "machine:   $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -sr)"
say "os:        $(. /etc/os-release && echo "$PRETTY_NAME")"
say "binary:    $HB"
say "           $("$HB" --version | head -1)"
say "git:       $(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)"
say "cache:     $CACHE   results: $OUT"
say "ranks:     $RANKS   repetitions: $REPS$([ ${#SETS[@]} -gt 0 ] && echo "   hyperbatch run ${SETS[*]}")"
LOAD_START=$(loadavg)
say "load avg:  $LOAD_START (1, 5, 15 min) at the start"
awk -v l="${LOAD_START%% *}" 'BEGIN { exit !(l > 0.5) }' &&
  say "WARNING:   the machine is busy (load > 0.5): timings will be noisy and slow"

HAVE_HS=0
if HSVER=$("$PY" -c 'import hyperspy; print(hyperspy.__version__)' 2>/dev/null); then
  HAVE_HS=1
  say "hyperspy:  $HSVER ($PY)"
else
  say "hyperspy:  not importable by $PY: inputs come from hyperbatch synth and the HyperSpy comparison is skipped"
fi
HAVE_MPL=0
"$PY" -c 'import matplotlib' 2>/dev/null && HAVE_MPL=1
[ $HAVE_MPL = 1 ] || say "matplotlib: not importable by $PY: no plot (the CSV files are still written)"

# inflate_bench: the meson-built one next to the binary when it is current,
# else the one in build/ (it links the engine's chunk reader, so it is built
# by meson, not here).
IB=${HB_INFLATE_BENCH:-}
if [ -z "$IB" ]; then
  for IB in "$(dirname "$HB")/tests/bench/inflate_bench" "$root/build/tests/bench/inflate_bench"; do
    [ -x "$IB" ] && [ "$IB" -nt "$here/inflate_bench.c" ] && break
  done
  [ -x "$IB" ] || { echo "bench.sh: no inflate_bench: run scripts/build (or set HB_INFLATE_BENCH)" >&2; exit 2; }
fi
say "inflate:   $IB"

# ---- inputs ----------------------------------------------------------------

if [ $QUICK = 1 ]; then
  MAIN=32,32,128,128 BIG=64,64,128,128
  MEM_SHAPES="32,32,128,128 32,64,128,128 64,64,128,128 64,128,128,128"
else
  MAIN=128,128,128,128 BIG=256,256,128,128
  MEM_SHAPES="128,128,128,128 128,256,128,128 256,256,128,128 256,512,128,128"
fi
tag() { echo "${1//,/x}"; }
nbytes() { echo "$1" | tr ',' '\n' | awk 'BEGIN { n = 2 } { n *= $1 } END { printf "%.0f", n }'; }
synth_file() { echo "$IN/synth-gzip-$(tag "$1").hspy"; }
synth_none_file() { echo "$IN/synth-none-$(tag "$1").hspy"; }
hs_file() { echo "$IN/hyperspy-$2-$(tag "$1").hspy"; }
# the comparison inputs: HyperSpy-written when HyperSpy is there
input_file() { # input_file SHAPE gzip|none
  if [ $HAVE_HS = 1 ]; then hs_file "$1" "$2"
  elif [ "$2" = gzip ]; then synth_file "$1"
  else synth_none_file "$1"
  fi
}

# Disk: plan every file, drop the biggest items first when space is short.
# Uncompressed files take their size (+4% for whole edge chunks); gzip files
# of these data about 1/10 (counted as 1/5), plus 1 GB for outputs and slack.
need_bytes() { # need_bytes SHAPE... (files not yet in the cache)
  local total=0 s f c
  for s in "$@"; do
    for c in gzip none; do
      f=$(input_file "${s%:*}" "$c")
      [ "${s#*:}" = mem ] && [ "$c" = none ] && continue
      [ "${s#*:}" = mem ] && f=$(synth_file "${s%:*}")
      [ -e "$f" ] && continue
      if [ "$c" = none ]; then total=$((total + $(nbytes "${s%:*}") * 104 / 100))
      else total=$((total + $(nbytes "${s%:*}") / 5)); fi
      # the synth source a HyperSpy file is made from
      if [ $HAVE_HS = 1 ] && [ "${s#*:}" != mem ] && [ ! -e "$(synth_file "${s%:*}")" ]; then
        total=$((total + $(nbytes "${s%:*}") / 5))
      fi
    done
  done
  echo $((total + 1000000000))
}
avail_bytes() { df -B1 --output=avail "$CACHE" | tail -1 | tr -d ' '; }
DO_BIG=1
PLAN_MEM=""
for s in $MEM_SHAPES; do PLAN_MEM+=" $s:mem"; done
hr "inputs (cached in $IN)"
say "disk: $(df -h --output=avail "$CACHE" | tail -1 | tr -d ' ') free in $(df --output=target "$CACHE" | tail -1)"
while :; do
  big_item=""
  [ $DO_BIG = 1 ] && big_item="$BIG:cmp"
  # shellcheck disable=SC2086 # word lists
  need=$(need_bytes "$MAIN:cmp" $big_item $PLAN_MEM)
  [ "$need" -le "$(avail_bytes)" ] && break
  last=$(echo $PLAN_MEM | awk '{ print $NF }')
  if [ -n "$PLAN_MEM" ] && [ "$(nbytes "${last%:*}")" -gt "$(nbytes "$MAIN")" ]; then
    say "SKIPPED: the $(gb_of "$(nbytes "${last%:*}")") GB memory input: needs $(gb_of "$need") GB of disk, $(gb_of "$(avail_bytes)") GB free"
    PLAN_MEM=$(echo $PLAN_MEM | awk '{ $NF = ""; print }')
  elif [ $DO_BIG = 1 ]; then
    say "SKIPPED: the $(gb_of "$(nbytes "$BIG")") GB comparison inputs: need $(gb_of "$need") GB of disk, $(gb_of "$(avail_bytes)") GB free"
    DO_BIG=0
  else
    say "bench.sh: not enough disk in $CACHE for even the smallest inputs ($(gb_of "$need") GB needed)" >&2
    exit 3
  fi
done

make_synth() { # make_synth SHAPE gzip|none
  local f
  if [ "$2" = gzip ]; then f=$(synth_file "$1"); else f=$(synth_none_file "$1"); fi
  [ -e "$f" ] && return 0
  local t0
  t0=$(now)
  "$HB" synth 4dstem "$f.tmp.hspy" --shape "$1" --compression "$2" >/dev/null
  mv "$f.tmp.hspy" "$f"
  say "made $f ($(du -h "$f" | cut -f1), hyperbatch synth, $(sub "$(now)" "$t0") s)"
}
make_input() { # make_input SHAPE gzip|none
  local f
  f=$(input_file "$1" "$2")
  [ -e "$f" ] && { say "have $f ($(du -h "$f" | cut -f1))"; return 0; }
  if [ $HAVE_HS = 1 ]; then
    make_synth "$1" gzip
    local t0
    t0=$(now)
    "$PY" "$here/hs_save.py" "$(synth_file "$1")" "$f" "$2" >/dev/null
    say "made $f ($(du -h "$f" | cut -f1), saved by HyperSpy $HSVER, $(sub "$(now)" "$t0") s)"
  else
    make_synth "$1" "$2"
  fi
}
SHAPES_CMP=$MAIN
[ $DO_BIG = 1 ] && SHAPES_CMP+=" $BIG"
for s in $SHAPES_CMP; do
  make_input "$s" none
  make_input "$s" gzip
done
for s in $PLAN_MEM; do
  make_synth "${s%:*}" gzip
  say "have $(synth_file "${s%:*}") ($(du -h "$(synth_file "${s%:*}")" | cut -f1))"
done

# ---- jobs ------------------------------------------------------------------

job_three() { # job_three INPUT JOBFILE: the three results HyperSpy computes too
  cat >"$2" <<YAML
version: 1
input: {file: $1}
output: {file: $TMP/out/$(basename "$2" .yaml).hspy, overwrite: true, previews: false}
kernels:
  - {name: total, op: sum, axes: signal}
  - {name: mean_dp, op: mean, axes: navigation}
  - {name: max_dp, op: max, axes: navigation}
run: {progress: off}
YAML
}
# ten circular virtual detectors at different places (128 x 128 patterns)
DET_CENTERS=("64 64" "24 24" "104 24" "24 104" "104 104" "64 20" "64 108" "20 64" "108 64" "44 84")
job_dets() { # job_dets INPUT JOBFILE N [OUTPUT-COMPRESSION]
  {
    echo "version: 1"
    echo "input: {file: $1}"
    echo "output: {file: $TMP/out/$(basename "$2" .yaml).hspy, overwrite: true, previews: false, compression: ${4:-gzip}}"
    echo "kernels:"
    local i c
    for ((i = 0; i < $3; i++)); do
      read -ra c <<<"${DET_CENTERS[$i]}"
      echo "  - {name: vd$i, op: virtual_image, detector: {shape: circle, center: [${c[0]}, ${c[1]}], radius: 10}}"
    done
    echo "run: {progress: off}"
  } >"$2"
}

# ---- runs ------------------------------------------------------------------

RUNS=$OUT/runs.csv     # every timed run
LIBREP=$OUT/libdeflate_rounds.csv # the libdeflate limit measured before each gzip run
echo "input,rep,libdeflate_gbps" >"$LIBREP"
PHASES=$OUT/phases.csv # the engine's phase table of every hyperbatch run
RSS=$OUT/rss.csv       # peak RSS per rank (or per process)
echo "run,experiment,input,compression,gb,tool,rep,wall_s,engine_s,engine_gbps,hs_sum_s,hs_mean_s,hs_max_s,hs_first_load_s" >"$RUNS"
echo "run,phase,min_s,median_s,max_s" >"$PHASES"
echo "experiment,input,compression,gb,tool,rank,rss_mib" >"$RSS"
RUN_ID=0

# hb_run EXPERIMENT INPUT COMPRESSION JOB TOOL REP [ENV...]: one timed run,
# end to end with the launcher; the engine's summary goes to the CSVs.
hb_run() {
  local exp=$1 input=$2 comp=$3 job=$4 tool=$5 rep=$6
  shift 6
  local log=$TMP/hb.log t0 t1
  RUN_ID=$((RUN_ID + 1))
  t0=$(now)
  if ! env "$@" mpirun -q -n "$RANKS" "$HB" run "$job" "${SETS[@]}" >"$log" 2>&1; then
    say "bench.sh: hyperbatch failed on $job:"; sed 's/^/  | /' "$log"; exit 1
  fi
  t1=$(now)
  local line gb es
  line=$(grep -E '^hyperbatch: [0-9]+ blocks, ' "$log" || true)
  gb=$(echo "$line" | sed -E 's/.* ([0-9.]+) GB read in.*/\1/')
  es=$(echo "$line" | sed -E 's/.* GB read in ([0-9.]+) s.*/\1/')
  [ -n "$line" ] || { say "bench.sh: no throughput line from hyperbatch:"; sed 's/^/  | /' "$log"; exit 1; }
  echo "$RUN_ID,$exp,$(basename "$input"),$comp,$gb,$tool,$rep,$(sub "$t1" "$t0"),$es,$(calc "$gb / $es" 3),,,," >>"$RUNS"
  awk -v id=$RUN_ID '/^hyperbatch: [a-z_]+ +[0-9.]+ +[0-9.]+ +[0-9.]+$/ { print id "," $2 "," $3 "," $4 "," $5 }' "$log" >>"$PHASES"
}
# hb_rss EXPERIMENT INPUT COMPRESSION JOB: one run under /usr/bin/time -v on every rank
hb_rss() {
  local d=$TMP/rss r f kb
  rm -rf "$d"; mkdir -p "$d"
  if ! mpirun -q -n "$RANKS" bash -c 'exec /usr/bin/time -v -o "$0.$OMPI_COMM_WORLD_RANK" "$@"' "$d/time" \
      "$HB" run "$4" "${SETS[@]}" >"$TMP/rss.log" 2>&1; then
    say "bench.sh: hyperbatch failed under /usr/bin/time:"; sed 's/^/  | /' "$TMP/rss.log"; exit 1
  fi
  for ((r = 0; r < RANKS; r++)); do
    kb=$(awk -F: '/Maximum resident set size/ { gsub(/ /, "", $2); print $2 }' "$d/time.$r")
    echo "$1,$(basename "$2"),$3,$(gb_of "$(nbytes_of_input "$2")"),hyperbatch,$r,$(mib "$kb")" >>"$RSS"
  done
}
nbytes_of_input() { # uncompressed bytes of an input, from hyperbatch inspect
  "$HB" inspect "$1" | awk '/array shape/ { gsub(/[(),]/, " "); n = 1; for (i = 3; i <= NF; i++) if ($i ~ /^[0-9]+$/) n *= $i; else { t = $i; break } } END { printf "%.0f", n * (t ~ /16/ ? 2 : t ~ /32/ ? 4 : t ~ /64/ ? 8 : 1) }'
}
# hs_run EXPERIMENT INPUT COMPRESSION REP: HyperSpy lazy, timed inside Python, RSS from time -v
hs_run() {
  local exp=$1 input=$2 comp=$3 rep=$4 log=$TMP/hs.log tv=$TMP/hs.time
  RUN_ID=$((RUN_ID + 1))
  if ! /usr/bin/time -v -o "$tv" "$PY" "$here/hs_lazy.py" "$input" >"$log" 2>&1; then
    say "bench.sh: HyperSpy failed on $input:"; sed 's/^/  | /' "$log"; exit 1
  fi
  local line gb kb
  line=$(grep '^hs_lazy ' "$log")
  gb=$(gb_of "$(nbytes_of_input "$input")")
  set -- $line
  echo "$RUN_ID,$exp,$(basename "$input"),$comp,$gb,hyperspy,$rep,$3,,,$5,$7,$9,${11}" >>"$RUNS"
  kb=$(awk -F: '/Maximum resident set size/ { gsub(/ /, "", $2); print $2 }' "$tv")
  echo "$exp,$(basename "$input"),$comp,$gb,hyperspy,0,$(mib "$kb")" >>"$RSS"
}
warm() { cat "$1" >/dev/null; }

# ---- 1. machine limits ------------------------------------------------------

LIMITS=$OUT/limits.csv
echo "limit,input,gbps,scope,how" >"$LIMITS"
hr "machine limits (single core unless said; GB/s = 1e9 bytes/s of uncompressed data)"
# dd's own report ("N bytes ... copied, S s, ..."), as "N S"
dd_bytes_s() { awk '/bytes/ && /copied/ { for (i = 1; i <= NF; i++) if ($i ~ /^s,?$/) s = $(i - 1); print $1, s }' "$@"; }
dd_gbps() { # dd_gbps FILE: one warm dd, GB/s by dd's own clock
  LC_ALL=C dd if="$1" of=/dev/null bs=16M 2>&1 | dd_bytes_s | awk '{ printf "%.3f", $1 / $2 / 1e9 }'
}
for s in $SHAPES_CMP; do
  f=$(input_file "$s" none)
  warm "$f"
  vals=""
  for i in 1 2 3; do vals+="$(dd_gbps "$f") "; done
  v=$(echo $vals | tr ' ' '\n' | med)
  say "$(printf '%-36s %7.2f GB/s   (median of 3 of: %s)' "page-cache read, dd bs=16M" "$v" "dd if=$(basename "$f") of=/dev/null bs=16M")"
  echo "dd,$(basename "$f"),$v,1 process,dd if=FILE of=/dev/null bs=16M (warm; median of 3)" >>"$LIMITS"
  # both cores at once, each reading its half
  blocks=$(( ($(stat -c %s "$f") + 16777215) / 16777216 ))
  half=$(( (blocks + 1) / 2 ))
  vals=""
  for i in 1 2 3; do
    LC_ALL=C dd if="$f" of=/dev/null bs=16M count=$half 2>"$TMP/dd.0" &
    p1=$!
    LC_ALL=C dd if="$f" of=/dev/null bs=16M skip=$half 2>"$TMP/dd.1" &
    p2=$!
    wait $p1 $p2 # not a bare wait: that would wait for the tee too
    # both halves' bytes over the slower dd's own time
    vals+="$(dd_bytes_s "$TMP/dd.0" "$TMP/dd.1" | awk '{ b += $1; if ($2 > s) s = $2 } END { printf "%.3f", b / s / 1e9 }') "
  done
  v=$(echo $vals | tr ' ' '\n' | med)
  say "$(printf '%-36s %7.2f GB/s   (two dd at once, one half each)' "page-cache read, 2 processes" "$v")"
  echo "dd2,$(basename "$f"),$v,2 processes,two dd bs=16M at once on the two halves (warm; median of 3)" >>"$LIMITS"
done
GZ_MAIN=$(input_file "$MAIN" gzip)
warm "$GZ_MAIN"
"$IB" "$GZ_MAIN" --reps "$([ $QUICK = 1 ] && echo 1 || echo 3)" >"$TMP/inflate.txt"
ibv() { awk -v k="$1" '$1 == k { print $2 }' "$TMP/inflate.txt"; }
[ "$(ibv check_first_chunk)" = ok ] || { say "bench.sh: inflate_bench's decode check failed"; cat "$TMP/inflate.txt"; exit 1; }
say "$(printf '%-36s %s chunks of %s bytes, %s, ratio %s (%s)' "chunks of $(basename "$GZ_MAIN"):" "$(ibv chunks)" "$(ibv chunk_bytes)" "$(ibv filters)" "$(ibv ratio)" "tests/bench/inflate_bench, best of N passes, all chunks in memory")"
for k in zlib libdeflate unshuffle_naive unshuffle_sse2 decode memcpy; do
  v=$(ibv ${k}_gbps)
  [ -n "$v" ] || continue
  case $k in
    zlib) d="zlib uncompress()" ;;
    libdeflate) d="libdeflate_zlib_decompress()" ;;
    unshuffle_naive) d="2-byte unshuffle, scalar loop" ;;
    unshuffle_sse2) d="2-byte unshuffle, SSE2 (the engine's)" ;;
    decode) d="libdeflate + SSE2 unshuffle" ;;
    memcpy) d="memcpy of each chunk" ;;
  esac
  say "$(printf '%-36s %7.2f GB/s' "$d" "$v")"
  echo "$k,$(basename "$GZ_MAIN"),$v,1 core,$d" >>"$LIMITS"
done
LIB1=$(ibv libdeflate_gbps)
ZLIB1=$(ibv zlib_gbps)
DEC1=$(ibv decode_gbps)
say "2-core bounds: libdeflate $(calc "$LIB1 * $RANKS" 2) GB/s, libdeflate+unshuffle $(calc "$DEC1 * $RANKS" 2) GB/s, zlib $(calc "$ZLIB1 * $RANKS" 2) GB/s ($RANKS x one core)"

# The launch alone: mpirun, MPI start-up and shutdown, no work (--version).
# HB_MPI_NODELAY=0 shows what Nagle's algorithm on the launcher's connection
# costs (docs/performance.md, "The launcher's 40 ms").
launch_s() {
  local t0
  t0=$(now)
  HB_MPI_NODELAY=$1 mpirun -q -n "$RANKS" -x HB_MPI_NODELAY "$HB" --version >/dev/null
  sub "$(now)" "$t0"
}
echo "HB_MPI_NODELAY,seconds,how" >"$OUT/launch.csv"
for k in 1 0; do
  v=$(for i in 1 2 3 4 5; do launch_s $k; done | med)
  d="launch: mpirun -n $RANKS hyperbatch --version"
  [ $k = 1 ] || d+=", HB_MPI_NODELAY=0"
  say "$(printf '%-58s %6.3f s   (median of 5)' "$d" "$v")"
  echo "$k,$v,$d (median of 5)" >>"$OUT/launch.csv"
done

# ---- 2. hyperbatch against HyperSpy lazy --------------------------------------

hr "hyperbatch ($RANKS ranks, end to end with mpirun) against HyperSpy lazy (3 results: sum over signal, mean and max pattern)"
CMP_INPUTS=""
for s in $SHAPES_CMP; do CMP_INPUTS+=" $(input_file "$s" none) $(input_file "$s" gzip)"; done
for f in $CMP_INPUTS; do
  comp=$(case $f in *gzip*) echo gzip ;; *) echo none ;; esac)
  job=$TMP/jobs/three-$(basename "$f" .hspy).yaml
  job_three "$f" "$job"
  warm "$f"
  hb_run warmup "$f" "$comp" "$job" hyperbatch 0 >/dev/null # page cache, binary, libraries
  with_hdf5=0
  [ "$(basename "$f")" = "$(basename "$(input_file "$MAIN" "$comp")")" ] && with_hdf5=1
  say "$(basename "$f"): $REPS × hyperbatch$([ $with_hdf5 = 1 ] && echo ", hyperbatch HB_READ=hdf5")$([ $HAVE_HS = 1 ] && echo ", HyperSpy"), alternately"
  for ((rep = 1; rep <= REPS; rep++)); do
    # the libdeflate limit again, right before each run: this machine's
    # single-core speed drifts by 25% over minutes, and the target is a ratio
    if [ "$comp" = gzip ]; then
      "$IB" "$f" --reps 1 --libdeflate-only >"$TMP/inflate.rep" || { say "bench.sh: inflate_bench failed on $f"; exit 1; }
      echo "$(basename "$f"),$rep,$(awk '$1 == "libdeflate_gbps" { print $2 }' "$TMP/inflate.rep")" >>"$LIBREP"
    fi
    hb_run compare "$f" "$comp" "$job" hyperbatch "$rep"
    [ $with_hdf5 = 1 ] && hb_run compare "$f" "$comp" "$job" hyperbatch-hdf5read "$rep" HB_READ=hdf5
    [ $HAVE_HS = 1 ] && hs_run compare "$f" "$comp" "$rep"
  done
  hb_rss compare "$f" "$comp" "$job"
done

SUMMARY=$OUT/summary.csv
echo "input,compression,gb,tool,n,wall_med_s,wall_min_s,wall_max_s,e2e_gbps,engine_med_s,engine_gbps_med,phase_bound_gbps,read_med_s,kernels_med_s,open_med_s,write_med_s,rss_max_mib,hs_sum_s,hs_mean_s,hs_max_s,reduce_med_s,untimed_s,serial_bound_gbps,hs_first_load_s" >"$SUMMARY"
# phase_med RUN-IDS PHASE FIELD: median over the runs of one phase statistic
phase_med() {
  local ids=$1 ph=$2 fld=$3
  awk -F, -v ids=" $ids " -v ph="$ph" -v c="$fld" 'NR > 1 && index(ids, " " $1 " ") && $2 == ph { print $c }' "$PHASES" | med
}
say ""
printf '%-34s %-19s %1s %6s %8s %6s %8s %7s %7s %6s %6s %7s %7s %7s\n' input tool n "wall s" "e2e GB/s" "eng s" "eng GB/s" "ovl bnd" "ser bnd" "read s" "kern s" "write s" "untimed" "RSS MiB"
for f in $CMP_INPUTS; do
  b=$(basename "$f")
  comp=$(case $f in *gzip*) echo gzip ;; *) echo none ;; esac)
  for tool in hyperbatch hyperbatch-hdf5read hyperspy; do
    walls=$(pick "$RUNS" wall_s experiment=compare input="$b" tool=$tool)
    [ -n "$walls" ] || continue
    gb=$(pick "$RUNS" gb experiment=compare input="$b" tool=$tool | head -1)
    n=$(echo "$walls" | wc -l)
    wmed=$(echo "$walls" | med)
    wmin=$(echo "$walls" | mn)
    wmax=$(echo "$walls" | mx)
    e2e=$(calc "$gb / $wmed" 3)
    emed="" egb="" bound="" sbound="" rd="" kn="" op="" wr="" rdc="" untimed="" hss="" hsm="" hsx="" hsf=""
    rss=$(pick "$RSS" rss_mib experiment=compare input="$b" tool="${tool%-hdf5read}" | mx)
    if [ $tool = hyperspy ]; then
      hss=$(pick "$RUNS" hs_sum_s experiment=compare input="$b" tool=$tool | med)
      hsm=$(pick "$RUNS" hs_mean_s experiment=compare input="$b" tool=$tool | med)
      hsx=$(pick "$RUNS" hs_max_s experiment=compare input="$b" tool=$tool | med)
      hsf=$(pick "$RUNS" hs_first_load_s experiment=compare input="$b" tool=$tool | med)
    else
      [ $tool = hyperbatch-hdf5read ] && rss=""
      emed=$(pick "$RUNS" engine_s experiment=compare input="$b" tool=$tool | med)
      egb=$(pick "$RUNS" engine_gbps experiment=compare input="$b" tool=$tool | med)
      ids=$(pick "$RUNS" run experiment=compare input="$b" tool=$tool | tr '\n' ' ')
      rd=$(phase_med "$ids" read 4)
      kn=$(phase_med "$ids" kernels 4)
      op=$(phase_med "$ids" open 4)
      wr=$(phase_med "$ids" write 4)
      # the loop's bound by the phase timers: the slower of read and kernels
      # on the slowest rank (they overlap), i.e. the engine with no idle time
      rmax=$(phase_med "$ids" read 5)
      kmax=$(phase_med "$ids" kernels 5)
      bound=$(awk -v g="$gb" -v r="$rmax" -v k="$kmax" 'BEGIN { m = r > k ? r : k; if (m > 0) printf "%.3f", g / m }')
      # ... and with no overlap: read then kernels (both are CPU work, and
      # 2 ranks x (reader + kernel thread) share 2 cores)
      sbound=$(awk -v g="$gb" -v r="$rmax" -v k="$kmax" 'BEGIN { if (r + k > 0) printf "%.3f", g / (r + k) }')
      # engine time no phase accounts for: the engine's wall minus open, the
      # overlapped loop (slower of read and kernels), reduce and write
      rdc=$(phase_med "$ids" reduce 4)
      untimed=$(awk -v e="$emed" -v o="$op" -v r="$rd" -v k="$kn" -v d="$rdc" -v w="$wr" 'BEGIN { printf "%.3f", e - o - (r > k ? r : k) - d - w }')
    fi
    echo "$b,$comp,$gb,$tool,$n,$wmed,$wmin,$wmax,$e2e,$emed,$egb,$bound,$rd,$kn,$op,$wr,$rss,$hss,$hsm,$hsx,$rdc,$untimed,$sbound,$hsf" >>"$SUMMARY"
    printf '%-34s %-19s %1s %6.3f %8.2f %6s %8s %7s %7s %6s %6s %7s %7s %7s\n' "$b" "$tool" "$n" "$wmed" "$e2e" "$(r3 "$emed")" "$(r2 "$egb")" "$(r2 "$bound")" "$(r2 "$sbound")" "$(r3 "$rd")" "$(r3 "$kn")" "$(r3 "$wr")" "$(r3 "$untimed")" "${rss:--}"
  done
done
say ""
say "wall s: median end to end (hyperbatch: mpirun included; HyperSpy: load to last result, import excluded)."
say "eng s, eng GB/s: the engine's own \"N blocks, X GB read in T s\" line (open to write, no launcher)."
say "ovl bnd: GB / max(read, kernels) of the slowest rank: the loop if reading and kernels overlapped on separate cores."
say "ser bnd: GB / (read + kernels) of the slowest rank: the loop with no overlap (2 ranks x 2 threads share 2 cores)."
say "read s, kern s, write s: median over runs of the median over ranks. untimed: eng s - open - max(read, kern) - reduce - write,"
say "  the engine time no phase covers (per-round synchronisation, finishing the output after the phase summary is taken)."
say "RSS: peak per rank (hyperbatch, one extra run under /usr/bin/time -v) or per process (HyperSpy, max over its runs)."
if [ $HAVE_HS = 1 ]; then
  say ""
  say "HyperSpy lazy, median per result (s):"
  for f in $CMP_INPUTS; do
    b=$(basename "$f")
    awk -F, -v b="$b" 'NR > 1 && $1 == b && $4 == "hyperspy" { printf "  %-34s sum %s  mean %s  max %s  (peak RSS %s MiB; first hs.load, untimed: %s s)\n", b, $18, $19, $20, $17, $24 }' "$SUMMARY"
  done
fi
say ""
say "the engine's phase table on each input: min / median / max over ranks (s), each the median over the timed runs:"
for f in $CMP_INPUTS; do
  b=$(basename "$f")
  for tool in hyperbatch hyperbatch-hdf5read; do
    ids=$(pick "$RUNS" run experiment=compare input="$b" tool=$tool | tr '\n' ' ')
    [ -n "$ids" ] || continue
    say "  $b, $tool: $(pick "$RUNS" engine_s experiment=compare input="$b" tool=$tool | med) s engine, $(pick "$RUNS" engine_gbps experiment=compare input="$b" tool=$tool | med) GB/s"
    for ph in $(awk -F, -v id="${ids%% *}" 'NR > 1 && $1 == id { print $2 }' "$PHASES"); do
      printf '    %-8s %7.3f %7.3f %7.3f\n' "$ph" "$(phase_med "$ids" "$ph" 3)" "$(phase_med "$ids" "$ph" 4)" "$(phase_med "$ids" "$ph" 5)"
    done
  done
done

# ---- 3. memory against input size ------------------------------------------

hr "memory: peak RSS per rank against input size (hyperbatch synth, gzip + shuffle; the three results)"
MEMCSV=$OUT/memory.csv
echo "input,gb,rank,rss_mib,results_mib,limit_mib" >"$MEMCSV"
printf '%-10s %-32s %-12s %-26s %12s %10s\n' "input GB" "file" "results MiB" "peak RSS per rank (MiB)" "limit MiB" "" 
MEM_WORST=""
first_excess="" last_excess=""
for s in $PLAN_MEM; do
  shp=${s%:*}
  f=$(synth_file "$shp")
  job=$TMP/jobs/mem-$(tag "$shp").yaml
  job_three "$f" "$job"
  warm "$f"
  hb_rss memory "$f" gzip "$job"
  gb=$(gb_of "$(nbytes "$shp")")
  # results: total (64-bit, one per pattern), mean pattern (float64), max pattern (uint16)
  npos=$(echo "$shp" | cut -d, -f1,2 | tr ',' '*' | bc)
  nsig=$(echo "$shp" | cut -d, -f3,4 | tr ',' '*' | bc)
  res=$(calc "($npos * 8 + $nsig * 8 + $nsig * 2) / 1048576" 2)
  lim=$(calc "64 + $res" 1)
  vals=$(pick "$RSS" rss_mib experiment=memory input="$(basename "$f")" | tr '\n' ' ')
  worst=$(echo $vals | tr ' ' '\n' | mx)
  ok=$(awk -v w="$worst" -v l="$lim" 'BEGIN { print (w <= l) ? 1 : 0 }')
  excess=$(calc "$worst - $res" 1)
  MEM_WORST=$(awk -v a="${MEM_WORST:-0}" -v b="$excess" 'BEGIN { print (b > a) ? b : a }')
  [ -n "$first_excess" ] || first_excess=$excess
  last_excess=$excess
  r=0
  for v in $vals; do echo "$(basename "$f"),$gb,$r,$v,$res,$lim" >>"$MEMCSV"; r=$((r + 1)); done
  printf '%-10s %-32s %-12s %-26s %12s %10s\n' "$gb" "$(basename "$f")" "$res" "$vals" "$lim" "$(verdict "$ok")"
done
MEM_GROWTH=$(calc "${last_excess:-0} - ${first_excess:-0}" 1)
say "RSS minus results grows by $MEM_GROWTH MiB from the smallest to the largest input (flat: within 4 MiB)."

# ---- 4. many results: ten virtual detectors against one ---------------------

hr "many results: ten circular virtual detectors against one ($RANKS ranks)"
DETCSV=$OUT/detectors.csv
# results: the output's compression.  The default (gzip) compresses every
# result as it is written, so ten results cost ten compressions; with
# output.compression: none the write phase hardly grows with their number.
echo "input,compression,detectors,n,wall_med_s,engine_med_s,read_med_s,kernels_med_s,write_med_s,results" >"$DETCSV"
for comp in none gzip; do
  f=$(input_file "$MAIN" "$comp")
  for res in gzip none; do
    j1=$TMP/jobs/det1-$comp-$res.yaml j10=$TMP/jobs/det10-$comp-$res.yaml
    job_dets "$f" "$j1" 1 "$res"
    job_dets "$f" "$j10" 10 "$res"
    warm "$f"
    hb_run warmup "$f" "$comp" "$j10" hyperbatch 0 >/dev/null
    for ((rep = 1; rep <= DET_REPS; rep++)); do
      hb_run "dets1$res" "$f" "$comp" "$j1" hyperbatch "$rep"
      hb_run "dets10$res" "$f" "$comp" "$j10" hyperbatch "$rep"
    done
    for n in 1 10; do
      x=dets$n$res
      ids=$(pick "$RUNS" run experiment=$x input="$(basename "$f")" | tr '\n' ' ')
      echo "$(basename "$f"),$comp,$n,$DET_REPS,$(pick "$RUNS" wall_s experiment=$x input="$(basename "$f")" | med),$(pick "$RUNS" engine_s experiment=$x input="$(basename "$f")" | med),$(phase_med "$ids" read 4),$(phase_med "$ids" kernels 4),$(phase_med "$ids" write 4),$res" >>"$DETCSV"
    done
  done
done
printf '%-34s %10s %10s %10s %10s %10s %10s %10s\n' input detectors results "wall s" "engine s" "read s" "kernels s" "write s"
for comp in none gzip; do
  b=$(basename "$(input_file "$MAIN" "$comp")")
  awk -F, -v b="$b" 'NR > 1 && $1 == b { printf "%-34s %10s %10s %10.3f %10.3f %10.3f %10.3f %10.3f\n", $1, $3, $10, $5, $6, $7, $8, $9 }' "$DETCSV"
done

# ---- 5. targets -------------------------------------------------------------

hr "targets"
TGT=$OUT/targets.csv
echo "target,measured,threshold,unit,result" >"$TGT"
target() { # target NAME MEASURED THRESHOLD UNIT ge|lt|le
  local ok
  if [ -z "$2" ]; then
    printf '%-62s %-10s %10s %-5s  %s\n' "$1" "" "-" "" "n/a"
    echo "\"$1\",,$3,$4,n/a" >>"$TGT"
    return
  fi
  local sym
  case $5 in
    ge) ok=$(ge "$2" "$3") sym=">=" ;;
    lt) ok=$(lt "$2" "$3") sym="<" ;;
    le) ok=$(awk -v a="$2" -v b="$3" 'BEGIN { print (a + 0 <= b + 0) ? 1 : 0 }') sym="<=" ;;
  esac
  printf '%-62s %-10s %10s %-5s  %s\n' "$1" "$sym $3 $4" "$2" "$4" "$(verdict "$ok")"
  echo "\"$1\",$2,$3,$4,$(verdict "$ok")" >>"$TGT"
}
sval() { awk -F, -v b="$1" -v t="$2" -v c="$(col "$SUMMARY" "$3")" 'NR > 1 && $1 == b && $4 == t { print $c }' "$SUMMARY"; }
ratio() { # ratio INPUT [+first]: HyperSpy wall / hyperbatch wall on an input
  local h s f=0
  h=$(sval "$1" hyperspy wall_med_s) s=$(sval "$1" hyperbatch wall_med_s)
  [ "${2:-}" = +first ] && f=$(sval "$1" hyperspy hs_first_load_s)
  [ -n "$h" ] && [ -n "$s" ] && calc "($h + ${f:-0}) / $s" 1 || true
}
mu=$(basename "$(input_file "$MAIN" none)") mg=$(basename "$(input_file "$MAIN" gzip)")
bu=$(basename "$(input_file "$BIG" none)") bg=$(basename "$(input_file "$BIG" gzip)")
[ $DO_BIG = 1 ] || bu="" bg=""
MAIN_GB=$(gb_of "$(nbytes "$MAIN")") BIG_GB=$(gb_of "$(nbytes "$BIG")")
target "uncompressed, engine GB/s on $RANKS ranks, $MAIN_GB GB file" "$(r2 "$(sval "$mu" hyperbatch engine_gbps_med)")" 4 GB/s ge
[ -n "$bu" ] && target "uncompressed, engine GB/s on $RANKS ranks, $BIG_GB GB file" "$(r2 "$(sval "$bu" hyperbatch engine_gbps_med)")" 4 GB/s ge
target "uncompressed, HyperSpy / hyperbatch end to end, $BIG_GB GB file" "$([ -n "$bu" ] && ratio "$bu")" 10 x ge
target "gzip, engine GB/s on $RANKS ranks, $MAIN_GB GB file" "$(r2 "$(sval "$mg" hyperbatch engine_gbps_med)")" 1.4 GB/s ge
[ -n "$bg" ] && target "gzip, engine GB/s on $RANKS ranks, $BIG_GB GB file" "$(r2 "$(sval "$bg" hyperbatch engine_gbps_med)")" 1.4 GB/s ge
gz_for_pct=${bg:-$mg}
# per round: engine GB/s over RANKS x the libdeflate speed measured just before
# that run on the same file; the target takes the median of the rounds
pct_rounds=$(awk -F, -v b="$gz_for_pct" -v n="$RANKS" '
  FNR == 1 { next }
  FILENAME ~ /libdeflate_rounds/ { if ($1 == b) lib[$2] = $3; next }
  $2 == "compare" && $3 == b && $6 == "hyperbatch" && ($7 in lib) { printf "%.1f\n", 100 * $10 / (n * lib[$7]) }
' "$LIBREP" "$RUNS")
target "gzip, % of the libdeflate limit measured before each run (median)" "$(printf "%.0f" "$(echo "$pct_rounds" | med)")" 70 % ge
target "gzip, HyperSpy / hyperbatch end to end, $BIG_GB GB file" "$([ -n "$bg" ] && ratio "$bg")" 15 x ge
target "memory: peak RSS - results, worst rank and size" "$MEM_WORST" 64 MiB le
target "memory: growth of RSS - results, smallest to largest input" "$MEM_GROWTH" 4 MiB le
for comp in none gzip; do
  b=$(basename "$(input_file "$MAIN" "$comp")")
  det() { awk -F, -v b="$b" -v n="$1" -v r="$2" -v c="$3" 'NR > 1 && $1 == b && $3 == n && $10 == r { print $c }' "$DETCSV"; }
  e1=$(det 1 gzip 6) e10=$(det 10 gzip 6) w1=$(det 1 gzip 5) w10=$(det 10 gzip 5)
  target "ten detectors / one, engine time, $comp" "$(calc "$e10 / $e1" 2)" 1.3 x lt
  say "$(printf '   (end to end with mpirun: %sx; with output.compression: none, engine %sx, kernels phase %sx)' \
    "$(div "$w10" "$w1")" "$(div "$(det 10 none 6)" "$(det 1 none 6)")" "$(div "$(det 10 none 8)" "$(det 1 none 8)")")"
done
if [ $HAVE_HS = 1 ]; then
  say ""
  say "gzip against the libdeflate limit, $gz_for_pct: per round $(echo $pct_rounds | sed 's/ /%, /g')% of $RANKS x ($(awk -F, -v b="$gz_for_pct" '$1 == b { printf "%s%s", s, $3; s = ", " }' "$LIBREP") GB/s,"
say "  measured just before each run); against the single measurement at the start ($RANKS x $LIB1 GB/s): $(calc "100 * $(sval "$gz_for_pct" hyperbatch engine_gbps_med) / ($RANKS * $LIB1)" 0)%"
say ""
say "HyperSpy / hyperbatch end to end, for the record:"
  say "  $MAIN_GB GB files: uncompressed $(ratio "$mu")x, gzip $(ratio "$mg")x"
  say "  counting HyperSpy's first hs.load (its lazy imports, left out above): $MAIN_GB GB uncompressed $(ratio "$mu" +first)x, gzip $(ratio "$mg" +first)x$([ -n "$bu" ] && echo "; $BIG_GB GB uncompressed $(ratio "$bu" +first)x, gzip $(ratio "$bg" +first)x")"
fi

# ---- 6. plot ----------------------------------------------------------------

LOAD_END=$(loadavg)
say ""
say "load avg:  $LOAD_END (1, 5, 15 min) at the end (start: $LOAD_START)"
if [ $HAVE_MPL = 1 ]; then
  "$PY" "$here/plot.py" "$OUT" && say "plot:      $OUT/bench.png"
fi
say "csv:       $(cd "$OUT" && ls *.csv | tr '\n' ' ')(in $OUT)"
say "log:       $OUT/bench.log"
