/* NMF's per-run kernels (X·Hᵀ, the W update, WᵀX) are compiled for AVX-512,
 * AVX2 and the baseline with different register blocking: over float64 X,
 * over float32 X widened to float64, and over float32 X in single precision.
 * The machine running the suite takes one of them; this test calls all nine
 * directly (those the CPU lacks are skipped) and checks that they give
 * bit-identical W and WᵀX (the double ones among themselves, the single
 * ones among themselves), for every solver, component counts around the
 * groups of four, column counts with and without a tail past the last 8,
 * 16, 32 and 64, and a short last run.  The single ones must also stay
 * within float32's reach of the double ones. */
#include <math.h>

#include "../../src/decomposition/decomposition_nmf.c"
#include "testutil.h"

int main(void) {
  /* rows: baseline, AVX2, AVX-512; columns: float64 X, float32 X widened, float32 X in single precision */
  run_fn *const fn[3][3] = {
      {run_d_128, run_f_128, run_s_128}, {run_d_256, run_f_256, run_s_256}, {run_d_512, run_f_512, run_s_512}};
  const char *const isa[] = {"baseline", "avx2", "avx512f"};
  __builtin_cpu_init();
  const int have[3] = {1, __builtin_cpu_supports("avx2"), __builtin_cpu_supports("avx512f")};
  const size_t N = 37; /* two full runs and a short one */
  for (size_t K = 1; K <= 9; K++)
    for (size_t M = 1000; M <= 1039; M += 13) /* 1000 = 8·125: a tail past 16, 32, 64 only; then 1013, 1026, 1039 */
      for (int solver = NMF_CD; solver <= NMF_HALS; solver++) {
        float *xf = malloc(N * M * sizeof *xf), *Hf = malloc(K * M * sizeof *Hf);
        double *xd = malloc(N * M * sizeof *xd), *H = malloc(K * M * sizeof *H), HHt[81], XHt[NMF_RUN * 9];
        double *W[3][3] = {{0}}, *WtX[3][3] = {{0}};
        for (size_t i = 0; i < N * M; i++) xf[i] = (float)((i * 2654435761u) % 1000) * 0.01f, xd[i] = xf[i];
        for (size_t i = 0; i < K * M; i++) H[i] = 0.5 + 0.1 * (double)(i % 7) + 1e-6 * (double)i, Hf[i] = (float)H[i];
        gram_rows(H, K, M, HHt);
        for (int w = 0; w < 3; w++)
          for (int v = 0; v < 3; v++) {
            if (!have[w]) continue;
            W[w][v] = malloc(N * K * sizeof *W[w][v]);
            WtX[w][v] = calloc(K * M, sizeof *WtX[w][v]);
            for (size_t i = 0; i < N * K; i++) W[w][v][i] = 0.3 + 0.01 * (double)(i % 5);
            iter_arg a = {1, solver, W[w][v], H, HHt, XHt, Hf};
            for (size_t r0 = 0; r0 < N; r0 += NMF_RUN) {
              size_t nr = N - r0 < NMF_RUN ? N - r0 : NMF_RUN, nnext = N - r0 - nr < NMF_RUN ? N - r0 - nr : NMF_RUN;
              const void *x = v ? (const void *)(xf + r0 * M) : (const void *)(xd + r0 * M);
              const void *next = v ? (const void *)(xf + (r0 + nr) * M) : (const void *)(xd + (r0 + nr) * M);
              fn[w][v](&a, K, M, nr, x, W[w][v] + r0 * K, WtX[w][v], nnext ? next : NULL, nnext);
            }
            const int ref = v == 2 ? 2 : 0; /* the baseline's single kernel, or its double one */
            if (w > 0 || v == 1)
              CHECK(!memcmp(W[w][v], W[0][ref], N * K * sizeof *W[w][v]) &&
                        !memcmp(WtX[w][v], WtX[0][ref], K * M * sizeof *WtX[w][v]),
                    "%s kernel over %s differs from the baseline's (K %zu, M %zu, solver %d)", isa[w],
                    v == 0 ? "float64" : v == 1 ? "float32 widened" : "float32 in single precision", K, M, solver);
          }
        /* single against double, on the baseline: W after its update (a
         * float32 X·Hᵀ of M terms, then cd's or HALS's step), and WᵀX of
         * one W (each a run's float32 sum of at most 16 rows) */
        double ew = 0, ex = 0, *wtx[2];
        for (size_t i = 0; i < N * K; i++) ew = fmax(ew, fabs(W[0][2][i] - W[0][0][i]) / (fabs(W[0][0][i]) + 1));
        for (int v = 0; v < 2; v++) {
          wtx[v] = calloc(K * M, sizeof *wtx[v]);
          iter_arg a = {0, solver, W[0][0], H, HHt, XHt, Hf};
          for (size_t r0 = 0; r0 < N; r0 += NMF_RUN)
            fn[0][2 * v](&a, K, M, N - r0 < NMF_RUN ? N - r0 : NMF_RUN, v ? (const void *)(xf + r0 * M)
                                                                              : (const void *)(xd + r0 * M),
                         W[0][0] + r0 * K, wtx[v], NULL, 0);
        }
        for (size_t i = 0; i < K * M; i++) ex = fmax(ex, fabs(wtx[1][i] - wtx[0][i]) / fabs(wtx[0][i]));
        CHECK(ew < 1e-4 && ex < 1e-5, "single precision within float32's reach (K %zu, M %zu, solver %d): W %.1e, "
              "WtX %.1e", K, M, solver, ew, ex);
        free(wtx[0]), free(wtx[1]);
        for (int w = 0; w < 3; w++)
          for (int v = 0; v < 3; v++) free(W[w][v]), free(WtX[w][v]);
        free(xf), free(xd), free(H), free(Hf);
      }
  return TEST_DONE("test_nmf_clones");
}
