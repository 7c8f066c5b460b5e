#!/usr/bin/env bash
# Build the libFuzzer targets with clang (-fsanitize=fuzzer,address,undefined)
# and run one for a bounded time from its committed seed corpus, after
# replaying every saved reproducer.
#
#   tests/fuzz/run.sh TARGET [BUILDDIR] [SECONDS]
#     TARGET    job (fuzz_job.c: the job parser), hspy (fuzz_hspy.c: the .hspy
#               metadata and axes reader) or filters (fuzz_filters.c: the chunk
#               decoders)
#     BUILDDIR  where to build (default build/fuzz); the library is a meson build
#               of src/ in BUILDDIR/lib with clang, ASan, UBSan and fuzzer coverage
#     SECONDS   fuzzing time (default $HB_FUZZ_SECONDS, else 60)
#
# Exit: 0 clean; 1 a crash, leak, UBSan report or timeout (the reproducer is
# left in BUILDDIR/artifacts/ and the command to replay it is printed); 77
# (meson: skipped) if clang or libFuzzer is missing.
#
# Reproducers of bugs already reported but not fixed yet live in
# crashes/TARGET/ and are listed in crashes/KNOWN_OPEN: they are replayed and
# must still fail (each is reported); once fixed, remove the name from
# KNOWN_OPEN and the file stays as a regression test that must pass.
set -euo pipefail
TARGET=${1:?usage: run.sh job|hspy|filters [BUILDDIR] [SECONDS]}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
B=$(mkdir -p "${2:-$ROOT/build/fuzz}" && cd "${2:-$ROOT/build/fuzz}" && pwd)
SECS=${3:-${HB_FUZZ_SECONDS:-60}}
case $TARGET in job | hspy | filters) ;; *) echo "unknown target '$TARGET'"; exit 2 ;; esac

skip() {
  echo "#####################################################################"
  echo "SKIP: fuzz_$TARGET not run: $*"
  echo "      (scripts/install-deps installs clang and libclang-rt-14-dev)"
  echo "#####################################################################"
  exit 77
}

CC=${FUZZ_CC:-clang}
command -v "$CC" >/dev/null || skip "no $CC"
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }' >"$probe/p.c"
"$CC" -fsanitize=fuzzer,address,undefined "$probe/p.c" -o "$probe/p" 2>"$probe/err" ||
  skip "$CC cannot link -fsanitize=fuzzer ($(head -1 "$probe/err"))"

# ---- build (one at a time: the two targets share the library)
exec 9>"$B/.lock"
flock 9
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
t0=$(date +%s)
if [ ! -f "$B/lib/build.ninja" ]; then
  rm -rf "$B/lib"
  CC=$CC meson setup "$B/lib" "$ROOT" --buildtype=debugoptimized -Db_ndebug=false \
    -Db_lundef=false -Dc_args="$san -fsanitize=fuzzer-no-link" -Dc_link_args="$san" >"$B/setup.log" 2>&1 || {
    tail -20 "$B/setup.log"
    echo "meson setup of the fuzz library failed"
    exit 1
  }
fi
ninja -C "$B/lib" src/libhb.a >"$B/build.log" 2>&1 || {
  tail -30 "$B/build.log"
  echo "building the fuzz library failed"
  exit 1
}
mods=""
for m in hdf5-openmpi yaml-0.1 libpng libdeflate libisal liblz4 blosc libzstd libmatheval fftw3 scalapack-openmpi openblas; do
  pkg-config --exists "$m" && mods="$mods $m"
done
# shellcheck disable=SC2046,SC2086
"$CC" $san -fsanitize=fuzzer -g -O1 -I"$ROOT/include" -I"$ROOT/src/readers" $(pkg-config --cflags $mods) $(mpicc --showme:compile) \
  "$HERE/fuzz_$TARGET.c" "$B/lib/src/libhb.a" \
  $(pkg-config --libs $mods) -lhdf5_openmpi_hl -lfftw3_mpi $(mpicc --showme:link) -lpthread -lm -o "$B/fuzz_$TARGET"
echo "built $B/fuzz_$TARGET in $(($(date +%s) - t0)) s"
flock -u 9

# ---- sanitizer settings.  Fuzzing and replays run without leak detection
# (fast); the leak pass at the end replays the whole corpus once with it, with
# full stacks: Open MPI and HDF5 keep allocations for the life of the process
# and have no frame pointers, and the suppressions (only inside those
# libraries, so leaks in our code are reported) can only match a full stack.
export ASAN_OPTIONS=detect_leaks=0:symbolize=1
SUPP=$ROOT/tests/sanitize/lsan.supp
export LSAN_OPTIONS=suppressions=$SUPP:print_suppressions=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export OMPI_MCA_btl=self OMPI_MCA_pml=ob1 # a singleton: no networking
export OMPI_MCA_opal_signal="" # leave SIGSEGV/SIGABRT to the sanitizers and libFuzzer
cd "$B"

# ---- replay saved reproducers
fails=0
known=" $( (grep -v '^#' "$HERE/crashes/KNOWN_OPEN" 2>/dev/null || true) | tr '\n' ' ') "
: >"$B/known_$TARGET.sig" # signatures of the known open bugs (classify.py --signature)
for f in "$HERE/crashes/$TARGET"/*; do
  [ -f "$f" ] || continue
  name=$(basename "$f")
  if "./fuzz_$TARGET" -runs=1 "$f" >"$B/replay.log" 2>&1; then
    if [[ $known == *" $TARGET/$name "* ]]; then
      echo "note: known-open reproducer $TARGET/$name no longer fails: remove it from crashes/KNOWN_OPEN"
    else
      echo "ok   regression $TARGET/$name"
    fi
  else
    if [[ $known == *" $TARGET/$name "* ]]; then
      sig=$(/usr/bin/python3 "$HERE/classify.py" --signature "$B/replay.log")
      echo "$sig" >>"$B/known_$TARGET.sig"
      echo "open bug (reported, not fixed yet): $TARGET/$name: $sig"
    else
      echo "FAIL regression $TARGET/$name fails again:"
      grep -E -A12 'ERROR: |runtime error|MPI error that would abort' "$B/replay.log" | head -30
      fails=$((fails + 1))
    fi
  fi
done

# ---- fuzz from a copy of the seeds (the committed corpus stays as it is).
# Fork mode goes on after a crash, so that one crash inside libhdf5 (which has
# known memory bugs on corrupt files) does not end the run; every artifact is
# then replayed alone and classified (classify.py): a problem in our code fails
# the test, one inside a system library is listed as upstream.
rm -rf "$B/corpus_$TARGET" "$B/artifacts" "$B/reports"
mkdir -p "$B/corpus_$TARGET" "$B/artifacts" "$B/reports"
# a normal input takes milliseconds; HDF5 loops forever on some corrupt files
limits=(-timeout=3 -rss_limit_mb=2048 -malloc_limit_mb=1024)
t1=$(date +%s)
set +e
"./fuzz_$TARGET" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 -seed=1 \
  -max_total_time="$SECS" "${limits[@]}" -max_len=65536 -artifact_prefix="$B/artifacts/" \
  "$B/corpus_$TARGET" "$HERE/corpus_$TARGET" >"$B/fuzz_$TARGET.log" 2>&1
set -e
last=$(grep -E '^#[0-9]+:' "$B/fuzz_$TARGET.log" | tail -1 || true)
echo "fuzz_$TARGET: $(($(date +%s) - t1)) s: ${last:-no progress line}"
ours=0 upstream=0 flaky=0 n=0
for a in "$B"/artifacts/*; do
  [ -f "$a" ] || continue
  n=$((n + 1))
  if [ "$n" -gt 30 ]; then
    echo "note: more than 30 artifacts; the rest are not classified"
    break
  fi
  r=$B/reports/$(basename "$a").txt
  set +e
  tmo=5
  case $(basename "$a") in timeout-*) tmo=2 ;; esac # the stack at the alarm is all that is needed
  timeout 120 "./fuzz_$TARGET" -runs=1 -timeout=$tmo -rss_limit_mb=2048 -malloc_limit_mb=1024 "$a" >"$r" 2>&1
  rrc=$?
  set -e
  if [ "$rrc" = 0 ]; then
    flaky=$((flaky + 1))
    echo "note: $(basename "$a") did not fail when replayed alone (it depended on the fuzzer's state)"
    continue
  fi
  verdict=$(/usr/bin/python3 "$HERE/classify.py" "$r")
  sig=$(/usr/bin/python3 "$HERE/classify.py" --signature "$r")
  if [ "${verdict%% *}" = ours ] && grep -qxF "$sig" "$B/known_$TARGET.sig"; then
    echo "known open bug found again (same signature as a reproducer in crashes/): $(basename "$a"): $sig"
  elif [ "${verdict%% *}" = upstream ]; then
    upstream=$((upstream + 1))
    echo "upstream: $(basename "$a"): ${verdict#* }"
  else
    ours=$((ours + 1))
    echo "FAIL ours: $(basename "$a"): ${verdict#* } [$sig]"
    grep -E -A25 'ERROR: |runtime error|MPI error that would abort' "$r" | grep -v '^\s*#[0-9]* .*fuzzer::' | head -40
    echo "  reproducer: $a"
    echo "  replay:     $B/fuzz_$TARGET $a"
    echo "  keep it:    cp $a $HERE/crashes/$TARGET/  and list $TARGET/$(basename "$a") in crashes/KNOWN_OPEN until fixed"
  fi
done
# ---- leak pass: every seed and every new unit once, in one process.  An
# input that stops the pass with a known open bug or an upstream problem is
# set aside and the pass goes on without it.
corpus=("$HERE/corpus_$TARGET"/* "$B/corpus_$TARGET"/*)
skipped=()
for attempt in $(seq 10); do
  inputs=()
  for f in "${corpus[@]}"; do
    [[ " ${skipped[*]} " == *" $f "* ]] || inputs+=("$f")
  done
  set +e
  ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0:malloc_context_size=30:symbolize=1 \
    timeout 600 "./fuzz_$TARGET" -runs=1 -timeout=10 "${inputs[@]}" >"$B/reports/leaks.txt" 2>&1
  lrc=$?
  set -e
  if [ "$lrc" = 0 ]; then
    echo "ok   no leak in our code over ${#inputs[@]} corpus inputs${skipped[*]:+ (${#skipped[@]} set aside)}"
    break
  fi
  verdict=$(/usr/bin/python3 "$HERE/classify.py" "$B/reports/leaks.txt")
  sig=$(/usr/bin/python3 "$HERE/classify.py" --signature "$B/reports/leaks.txt")
  last=$(grep '^Running: ' "$B/reports/leaks.txt" | tail -1 | sed 's/^Running: //')
  if [ "${sig%%@*}" != leak ] && [ -n "$last" ] &&
    { [ "${verdict%% *}" = upstream ] || grep -qxF "$sig" "$B/known_$TARGET.sig"; }; then
    echo "note: leak pass: $(basename "$last") stops on ${sig} (${verdict%% *}, known); setting it aside"
    skipped+=("$last")
    continue
  fi
  ours=$((ours + 1))
  echo "FAIL ours (leak pass): ${verdict#* } [$sig]"
  grep -E -A25 'ERROR: |runtime error' "$B/reports/leaks.txt" | head -40
  echo "  report: $B/reports/leaks.txt${last:+ (last input: $last)}"
  break
done
if [ "$upstream" -gt 0 ]; then
  echo "note: $upstream problem(s) inside system libraries (libhdf5 on corrupt files: see tests/fuzz/README.md);"
  echo "      reports in $B/reports/"
fi
if [ "$ours" -gt 0 ]; then
  fails=$((fails + ours))
else
  echo "ok   fuzz_$TARGET: ${SECS} s, nothing in hyperbatch's code (crash, overflow, leak, undefined behaviour, fatal MPI error)"
fi
echo "fuzz_$TARGET: total $(($(date +%s) - t0)) s"
[ "$fails" = 0 ]
