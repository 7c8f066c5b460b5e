#!/usr/bin/env bash
# The normal tests under AddressSanitizer and UndefinedBehaviorSanitizer (gcc):
# a second build of the whole project with -Db_sanitize=address,undefined in
# BUILDDIR, then
#   - the unit tests (meson's suite 'unit') and the 2-rank reduction tree test;
#   - an end-to-end run at 2 ranks (mpirun) of a job with every kind of kernel
#     and the hot-pixel filter, then validate, inspect, --dry-run, and a job
#     error, an input error and a corrupt chunk (the error paths).
# UBSan is fatal (-fno-sanitize-recover).  LeakSanitizer is on, with
# suppressions only for allocations made inside Open MPI, hwloc, PMIx,
# libevent and HDF5 (global state they keep until exit), so leaks in our code
# are still reported.
# Usage: tests/sanitize/run.sh [BUILDDIR]   (default build/sanitize)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
B=$(mkdir -p "${1:-$ROOT/build/sanitize}" && cd "${1:-$ROOT/build/sanitize}" && pwd)
. "$ROOT/scripts/env.sh"
t0=$(date +%s)

exec 9>"$B/.lock"
flock 9
if [ ! -f "$B/build/build.ninja" ]; then
  rm -rf "$B/build"
  meson setup "$B/build" "$ROOT" --buildtype=debugoptimized -Db_ndebug=false -Db_sanitize=address,undefined \
    -Db_lundef=false -Dc_args='-fno-sanitize-recover=undefined -fno-omit-frame-pointer' >"$B/setup.log" 2>&1 || {
    tail -20 "$B/setup.log"
    echo "FAIL meson setup of the sanitizer build"
    exit 1
  }
fi
ninja -C "$B/build" >"$B/build.log" 2>&1 || {
  grep -E -B2 -A8 'error|Error' "$B/build.log" | head -40
  echo "FAIL building with -Db_sanitize=address,undefined"
  exit 1
}
echo "sanitizer build ready in $(($(date +%s) - t0)) s"

# full stacks for leaks: the libraries in lsan.supp have no frame pointers, and a
# suppression matches only a stack that reaches into them
export ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0:malloc_context_size=30:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1
# use_tls=0: gcc 12's LeakSanitizer crashes ("Tracer caught signal 11") reading the
# dynamic TLS that Open MPI's plugins leave behind; our code keeps nothing in TLS
SUPP=$ROOT/tests/sanitize/lsan.supp
export LSAN_OPTIONS=suppressions=$SUPP:print_suppressions=0:use_tls=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export OMPI_MCA_opal_signal="" # let ASan report a SEGV instead of Open MPI's handler
HB=$B/build/hyperbatch
FAILS=0
ok() { echo "ok   $*"; }
bad() {
  FAILS=$((FAILS + 1))
  echo "FAIL $*"
}
sanitizer_report() { grep -E -A30 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error' "$1" | head -60; }

# ---- unit tests and the reduction tree, through the sanitized build's own meson
t=$(date +%s)
# test_job asserts that a "billion laughs" job is refused in under 1 s, which
# the slow (full-stack) unwinder that leak suppression needs makes it miss:
# it runs with the fast unwinder and without leak detection.  Its parser paths
# are leak-checked by the fuzz_job leak pass (tests/fuzz/run.sh) instead.
mapfile -t unit < <(meson test -C "$B/build" --list --suite unit 2>/dev/null | sed -n 's|^hyperbatch:unit / ||p' | grep -vx test_job)
meson_test() { # meson_test LABEL ARGS...
  local label=$1
  shift
  if meson test -C "$B/build" "$@" --num-processes 1 --print-errorlogs >"$B/unit.log" 2>&1; then
    ok "$label: $(grep -cE '^ *[0-9]+/[0-9]+ .* OK ' "$B/unit.log") passed"
  else
    bad "$label"
    grep -E '^ *[0-9]+/[0-9]+ ' "$B/unit.log"
    sanitizer_report "$B/build/meson-logs/testlog.txt"
  fi
}
meson_test "unit tests (${unit[*]}) and tree_np2, ASan+UBSan+LSan" "${unit[@]}" tree_np2
ASAN_OPTIONS=detect_leaks=0 meson_test "test_job, ASan+UBSan" test_job
echo "unit tests under the sanitizers: $(($(date +%s) - t)) s"

# ---- end to end at 2 ranks
W=$(mktemp -d /tmp/hbsan.XXXXXX)
trap 'rm -rf "$W"' EXIT
cd "$W"
n_run=0
run() { # run NAME EXPECTED_RC NP ARGS...: hyperbatch under mpirun, output in $W/run-N.log
  local name=$1 want=$2 np=$3 rc log
  shift 3
  n_run=$((n_run + 1))
  log=$W/run-$n_run.log
  set +e
  timeout 300 mpirun -q -n "$np" "$HB" "$@" >"$log" 2>&1
  rc=$?
  set -e
  if grep -q -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error' "$log"; then
    bad "$name: sanitizer report (exit $rc)"
    sanitizer_report "$log"
  elif [ "$rc" != "$want" ]; then
    bad "$name: exit $rc, expected $want"
    tail -20 "$log"
  else
    ok "$name (exit $rc)"
  fi
}
t=$(date +%s)
mpirun -q -n 1 "$HB" synth 4dstem in.hspy --shape 12,10,32,32 --chunks 3,5,32,32 >"$W/synth.log" 2>&1 ||
  bad "synth under ASan: $(tail -5 "$W/synth.log")"
cat >job.yaml <<'EOF'
version: 1
input: {file: in.hspy}
output: {file: out/res.hspy, previews: true}
preprocess:
  - {op: filter_hot_pixels, threshold: 8}
kernels:
  - {name: bf, op: virtual_image, detector: {shape: circle, center: [16, 16], radius: 4}}
  - {name: adf, op: virtual_image, detector: {shape: annulus, center: [16, 16], inner: 6, outer: 14}}
  - {name: box, op: virtual_image, detector: {shape: rectangle, x: [2, 9], y: [20, 30]}}
  - {name: total, op: sum, axes: signal}
  - {name: mean_dp, op: mean, axes: navigation}
  - {name: max_dp, op: max, axes: navigation}
  - {name: min_px, op: min, axes: signal}
run: {block: 15, progress: lines}
EOF
run "run at 2 ranks" 0 2 run job.yaml
[ -f out/res.hspy ] || bad "run at 2 ranks: no out/res.hspy"
run "run at 1 rank, uncompressed output" 0 1 run job.yaml --set output.file=out/one.hspy --set output.compression=none
run "validate" 0 2 validate job.yaml --set output.file=out/v.hspy
run "run --dry-run" 0 2 run job.yaml --dry-run --set output.file=out/dry.hspy
run "inspect" 0 1 inspect out/res.hspy
run "job error (unknown key)" 2 2 run job.yaml --set kernels.bf.detector.raduis=3
run "input error (missing file)" 2 2 run job.yaml --set input.file=nope.hspy
# every result kind (per-pattern arrays, full-size, changed scans, complex,
# ragged, two passes, global), then a job that reads part of the file, on
# two decoding threads
cat >kinds.yaml <<'EOF'
version: 1
input: {file: in.hspy}
output: {file: out/kinds.hspy, previews: false}
kernels:
  - {name: profile, op: sum, axes: ky}
  - {name: std_dp, op: std, axes: navigation}
  - {name: binned, op: rebin, scale: [2, 2, 2, 2]}
  - {name: thinned, op: crop, axis: x, start: 1, step: 3}
  - {name: region, op: inav, slices: "1:8:2, 2:9"}
  - {name: row, op: inav, slices: "4"}
  - {name: box, op: isig, slices: "3:29:2, 4:20"}
  - {name: line, op: isig, slices: "2:30, 7"}
  - {name: rows, op: sum, axes: x}
  - {name: spectrum, op: fft, shift: true, apodization: hann}
  - {name: peaks, op: find_peaks, min_distance: 3, threshold_rel: 0.2}
  - {name: hist, op: histogram, bins: fd}
  - {name: pca, op: decomposition, components: 3}
run: {block: 15, progress: off}
EOF
run "every result kind at 2 ranks" 0 2 run kinds.yaml
cat >part.yaml <<'EOF'
version: 1
input: {file: in.hspy}
output: {file: out/part.hspy, previews: false}
kernels:
  - {name: rows, op: crop, axis: y, start: 9}
  - {name: left, op: crop, axis: x, start: 1, end: 4}
run: {block: 60, progress: off, threads: 2}
EOF
run "crops only (chunks left out of blocks), 2 threads" 0 1 run part.yaml
run "crops only (blocks left out), 2 ranks" 0 2 run part.yaml --set run.block=15 --set output.file=out/part2.hspy
grep -q "8 blocks (5 of them read)" "$W/run-$n_run.log" || bad "crops only: the summary does not say 5 of 8 blocks were read"
# a corrupt chunk: overwrite bytes in the middle of the data with garbage
cp in.hspy bad.hspy
size=$(stat -c %s bad.hspy)
dd if=/dev/urandom of=bad.hspy bs=1 seek=$((size / 2)) count=4096 conv=notrunc status=none
run "corrupt chunk (I/O error)" 3 2 run job.yaml --set input.file=bad.hspy --set output.file=out/bad.hspy
echo "end-to-end under ASan+UBSan: $(($(date +%s) - t)) s; total $(($(date +%s) - t0)) s"
echo "sanitize: $FAILS failed"
[ "$FAILS" = 0 ]
