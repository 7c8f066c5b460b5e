/* NMF's per-run kernels (X·Hᵀ, the W update, WᵀX) are compiled for AVX-512,
 * AVX2 and the baseline with different register blocking, over float32 and
 * float64 X.  The machine running the suite takes one of them; this test
 * calls all six directly (those the CPU lacks are skipped) and checks that
 * they give bit-identical W and WᵀX, for every solver, component counts
 * around the groups of four, column counts with and without a tail past the
 * last 8, 16 and 32, and a short last run. */
#include "../../src/decomposition/decomposition_nmf.c"
#include "testutil.h"

int main(void) {
  run_fn *const fn[] = {run_d_128, run_f_128, run_d_256, run_f_256, run_d_512, run_f_512};
  const char *const isa[] = {NULL, NULL, "avx2", "avx2", "avx512f", "avx512f"};
  __builtin_cpu_init();
  int have[6];
  for (int f = 0; f < 6; f++)
    have[f] = !isa[f] || (f < 4 ? __builtin_cpu_supports("avx2") : __builtin_cpu_supports("avx512f"));
  const size_t N = 37; /* two full runs and a short one */
  for (size_t K = 1; K <= 9; K++)
    for (size_t M = 1000; M <= 1039; M += 13) /* 1000 = 8·125: a tail past 16 and 32 only; then 1013, 1026, 1039 */
      for (int solver = NMF_CD; solver <= NMF_HALS; solver++) {
        float *xf = malloc(N * M * sizeof *xf);
        double *xd = malloc(N * M * sizeof *xd), *H = malloc(K * M * sizeof *H), HHt[81], XHt[NMF_RUN * 9];
        double *W[6] = {0}, *WtX[6] = {0};
        for (size_t i = 0; i < N * M; i++) xf[i] = (float)((i * 2654435761u) % 1000) * 0.01f, xd[i] = xf[i];
        for (size_t i = 0; i < K * M; i++) H[i] = 0.5 + 0.1 * (double)(i % 7) + 1e-6 * (double)i;
        gram_rows(H, K, M, HHt);
        for (int f = 0; f < 6; f++) {
          if (!have[f]) continue;
          W[f] = malloc(N * K * sizeof *W[f]);
          WtX[f] = calloc(K * M, sizeof *WtX[f]);
          for (size_t i = 0; i < N * K; i++) W[f][i] = 0.3 + 0.01 * (double)(i % 5);
          iter_arg a = {1, solver, W[f], H, HHt, XHt};
          for (size_t r0 = 0; r0 < N; r0 += NMF_RUN) {
            size_t nr = N - r0 < NMF_RUN ? N - r0 : NMF_RUN, nnext = N - r0 - nr < NMF_RUN ? N - r0 - nr : NMF_RUN;
            const void *x = f % 2 ? (const void *)(xf + r0 * M) : (const void *)(xd + r0 * M);
            const void *next = f % 2 ? (const void *)(xf + (r0 + nr) * M) : (const void *)(xd + (r0 + nr) * M);
            fn[f](&a, K, M, nr, x, W[f] + r0 * K, WtX[f], nnext ? next : NULL, nnext);
          }
          if (f > 0)
            CHECK(!memcmp(W[f], W[0], N * K * sizeof *W[f]) && !memcmp(WtX[f], WtX[0], K * M * sizeof *WtX[f]),
                  "clone %d (%s, %s X) differs from the baseline's (K %zu, M %zu, solver %d)", f,
                  isa[f] ? isa[f] : "baseline", f % 2 ? "float32" : "float64", K, M, solver);
        }
        for (int f = 0; f < 6; f++) free(W[f]), free(WtX[f]);
        free(xf), free(xd), free(H);
      }
  return TEST_DONE("test_nmf_clones");
}
