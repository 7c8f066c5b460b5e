#!/usr/bin/env bash
# Benchmark (not a test): hyperbatch decomposition against HyperSpy 1.7.3 on
# a 16384 x 4096 float32 spectrum image (128 x 128 x 4096, 256 MB,
# uncompressed), end to end (load + decompose; the output write for
# hyperbatch), with peak RSS per process from /usr/bin/time -v.
#
#   [HB=path/to/hyperbatch] tests/bench/decomposition.sh [WORKDIR]     (default build/hyperbatch, /tmp/hb_bench_dec)
#
# Run it on an idle machine.  Prints one line per measurement: hyperbatch's
# runs with their peak RSS, then decomposition_warm.py's comparison with a
# warm HyperSpy (ROUNDS alternating rounds, default 6), and with COLD=1 also
# HyperSpy as whole processes.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
. "$here/scripts/env.sh"
HB=${HB:-$here/build/hyperbatch}
W=${1:-/tmp/hb_bench_dec}
mkdir -p "$W"
cd "$W"
[ -f si.hspy ] || "$HB" synth eels si.hspy --shape 128,128,4096 --dtype float32 --compression none >/dev/null

job() { # job NAME KERNEL
  cat >"$1.yaml" <<YAML
version: 1
input: {file: si.hspy}
output: {file: $1.hspy, overwrite: true, previews: false}
kernels:
  - {name: dec, $2}
run: {progress: off, threads: ${THREADS:-1}}
YAML
}

measure() { # measure LABEL COMMAND...: wall seconds and the largest max RSS of any process
  local label=$1
  shift
  /usr/bin/time -v "$@" >"$W/out.txt" 2>"$W/time.txt" || { echo "$label FAILED"; tail -5 "$W/time.txt"; return; }
  local wall rss
  wall=$(grep "Elapsed (wall clock)" "$W/time.txt" | awk '{print $NF}')
  rss=$(grep "Maximum resident set size" "$W/time.txt" | awk '{print $NF}')
  echo "$label  wall $wall  maxrss_of_largest_process ${rss} KB"
}

job pca_exact "op: decomposition, components: 10, svd_solver: exact"
job pca_exact_local "op: decomposition, components: 10, svd_solver: exact, gram_solver: local"
job pca_exact_sc "op: decomposition, components: 10, svd_solver: exact, gram_solver: scalapack"
job pca_rand "op: decomposition, components: 10, svd_solver: randomized"
job nmf "op: decomposition, algorithm: nmf, components: 4"

THREADS=2 job pca_exact_t2 "op: decomposition, components: 10, svd_solver: exact"
THREADS=2 job nmf_t2 "op: decomposition, algorithm: nmf, components: 4"
measure "hyperbatch exact k=10, 1 rank, 2 threads" "$HB" run pca_exact_t2.yaml
measure "hyperbatch exact k=10, 2 ranks (gram_solver auto)" mpirun -q -n 2 "$HB" run pca_exact.yaml
measure "hyperbatch exact k=10, 2 ranks, gram_solver local (rank 0)" mpirun -q -n 2 "$HB" run pca_exact_local.yaml
measure "hyperbatch exact k=10, 2 ranks, gram_solver scalapack (pdsyevr)" mpirun -q -n 2 "$HB" run pca_exact_sc.yaml
measure "hyperbatch randomized k=10, 2 ranks" mpirun -q -n 2 "$HB" run pca_rand.yaml
measure "hyperbatch nmf cd k=4, 2 ranks" mpirun -q -n 2 "$HB" run nmf.yaml
/usr/bin/python3 - <<'PY'
import h5py
a = h5py.File("nmf.hspy")["Experiments/dec_factors/metadata/Decomposition"].attrs
print(f"hyperbatch nmf: iterations {a['iterations']} residual {a['residual']:.6g}")
PY

# Against a warm HyperSpy, side by side, alternating (the comparison that counts):
/usr/bin/python3 "$here/tests/bench/decomposition_warm.py" "$HB" "$W" "${ROUNDS:-6}"
[ "${COLD:-0}" = 1 ] || exit 0

# HyperSpy as a whole process (imports and first calls included), COLD=1:
hs() { # hs LABEL PYTHON-STATEMENT
  measure "$1" /usr/bin/python3 -c "
import time, warnings; warnings.simplefilter('ignore')
import hyperspy.api as hs
t0 = time.time(); s = hs.load('si.hspy'); $2
print('inside python', time.time() - t0)"
  grep -h "inside python\|residual" "$W/out.txt" || true
}
hs "hyperspy decomposition(output_dimension=10) (randomized)" "s.decomposition(output_dimension=10, print_info=False)"
# sklearn's nndsvda init takes an unseeded randomized SVD, so HyperSpy's NMF
# converges along a different path (and iteration count) every run: repeat it.
for rep in $(seq "${REPS:-3}"); do
hs "hyperspy decomposition(algorithm='NMF', output_dimension=4) run $rep" "
from sklearn.decomposition import NMF
s.decomposition(algorithm='NMF', output_dimension=4, print_info=False)
import numpy as np
X = s.data.reshape(-1, s.data.shape[-1]).astype('float64')
L = s.learning_results.loadings; F = s.learning_results.factors
print('residual', np.linalg.norm(X - L @ F.T))"
done
if [ "${FULL:-0}" = 1 ]; then
  hs "hyperspy decomposition(svd_solver='full')" "s.decomposition(svd_solver='full', print_info=False)"
fi
