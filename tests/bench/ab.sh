#!/usr/bin/env bash
# Two hyperbatch binaries on the issue-4 benchmark's jobs, alternately, so
# that both see the same machine (load from other work hits both alike).
#
#   tests/bench/ab.sh OLD NEW [REPS]     (default REPS 9)
#
# Runs `mpirun -q -n 2 BIN run JOB` for each job bench.sh wrote into
# $HB_BENCH_DIR/tmp/jobs (run bench.sh, or bench.sh --quick, once first):
# the three results on the four comparison inputs, and one and ten virtual
# detectors (inputs uncompressed/gzip, results gzip/none), or the jobs named
# in AB_JOBS (e.g. AB_JOBS="det1-none-gzip det10-none-gzip").  Prints, per job
# and binary, the engine time (best and median of REPS) and the phases of the
# best run; the raw rows go to $HB_BENCH_DIR/results/ab.csv.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../../scripts/env.sh"
[ $# -ge 2 ] || { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2; }
A=$(realpath "$1") B=$(realpath "$2") REPS=${3:-9}
CACHE=${HB_BENCH_DIR:-/tmp/hb-bench}
J=$CACHE/tmp/jobs OUT=$CACHE/results/ab.csv
mkdir -p "$CACHE/results"
JOBS=${AB_JOBS:-"three-hyperspy-gzip-256x256x128x128 three-hyperspy-gzip-128x128x128x128 three-hyperspy-none-256x256x128x128
      three-hyperspy-none-128x128x128x128 det1-none-gzip det10-none-gzip det1-gzip-gzip det10-gzip-gzip
      det1-none-none det10-none-none"}
for job in $JOBS; do [ -e "$J/$job.yaml" ] || { echo "ab.sh: no $J/$job.yaml (run bench.sh first)" >&2; exit 2; }; done
echo "load avg at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "job,bin,rep,engine_s,gbps,read_med,read_max,kernels_med,write_med" >"$OUT"
for ((rep = 1; rep <= REPS; rep++)); do
  for job in $JOBS; do
    for bin in old new; do
      b=$A
      [ $bin = new ] && b=$B
      log=$(mpirun -q -n 2 "$b" run "$J/$job.yaml" 2>&1) || { echo "ab.sh: $b failed on $job:"; echo "$log"; exit 1; }
      eng=$(echo "$log" | sed -nE 's/.* GB read in ([0-9.]+) s \(([0-9.]+) GB\/s\).*/\1,\2/p')
      ph() { echo "$log" | awk -v p="$1" -v c="$2" '$2 == p { print $c }'; }
      echo "$job,$bin,$rep,$eng,$(ph read 4),$(ph read 5),$(ph kernels 4),$(ph write 4)" >>"$OUT"
    done
  done
done
echo "load avg at the end:   $(cut -d' ' -f1-3 /proc/loadavg)"
"${HB_PYTHON:-python3}" - "$OUT" <<'PY'
import collections, csv, statistics, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["engine_s"]]
by = collections.defaultdict(list)
jobs = []
for r in rows:
    by[r["job"], r["bin"]].append(r)
    if r["job"] not in jobs:
        jobs.append(r["job"])
print(f"{'job':38s} {'bin':3s} {'n':>2s} {'best s':>7s} {'median s':>8s} {'GB/s':>6s} | phases of the best run: "
      "read median/max over ranks, kernels, write (s)")
for j in jobs:
    for b in ("old", "new"):
        v = sorted(by[j, b], key=lambda r: float(r["engine_s"]))
        if not v:
            continue
        x = v[0]
        med = statistics.median(float(r["engine_s"]) for r in v)
        print(f"{j:38s} {b:3s} {len(v):2d} {float(x['engine_s']):7.3f} {med:8.3f} {float(x['gbps']):6.2f} | "
              f"{x['read_med']}/{x['read_max']} {x['kernels_med']} {x['write_med']}")
PY
