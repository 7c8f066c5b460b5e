/* The randomized PCA's power-iteration kernel (power_run_512, AVX-512) at
 * sizes around its tiles: runs of 1 to 64 rows (tiles of 4), 1 to 22
 * components (tiles of 4), and column counts with and without a tail past
 * the last 16 and 64.  Each B += (X Zᵀ)ᵀ X must lie within float32's error
 * bound of the same sums in float64 (a wrong index or mask misses by the
 * sums' own size), and add to what B held.  Skipped where the CPU lacks
 * AVX-512: SGEMM runs there, as before the kernel. */
#include <float.h>

#include "../../src/decomposition/decomposition_svd.c"
#include "testutil.h"

int main(void) {
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx512f")) {
    printf("test_power_run: SKIP (no AVX-512 on this CPU)\n");
    return 0;
  }
  const size_t rows[] = {1, 3, 4, 5, 17, 64}, cols[] = {1, 15, 16, 17, 63, 64, 65, 200, 1000};
  const size_t comps[] = {1, 3, 4, 5, 13, 20, 22};
  for (size_t a = 0; a < sizeof rows / sizeof *rows; a++)
    for (size_t b = 0; b < sizeof cols / sizeof *cols; b++)
      for (size_t c = 0; c < sizeof comps / sizeof *comps; c++) {
        size_t nr = rows[a], M = cols[b], l = comps[c];
        float *X = malloc(nr * M * sizeof *X), *Z = malloc(l * M * sizeof *Z), *T = malloc(nr * l * sizeof *T);
        double *B = malloc(l * M * sizeof *B), *want = malloc(l * M * sizeof *want), *mag = malloc(l * M * sizeof *mag);
        double *t = malloc(nr * l * sizeof *t), *tmag = malloc(nr * l * sizeof *tmag);
        for (size_t i = 0; i < nr * M; i++) X[i] = (float)((i * 2654435761u) % 1000) * 0.01f - 3.0f;
        for (size_t i = 0; i < l * M; i++) Z[i] = (float)((i * 40503u) % 997) * 0.002f - 1.0f;
        for (size_t i = 0; i < l * M; i++) B[i] = 0.25 * (double)(i % 7); /* the partial so far */
        /* float64 sums, and the same sums of magnitudes for the error bound */
        for (size_t r = 0; r < nr; r++)
          for (size_t q = 0; q < l; q++) {
            double s = 0, m = 0;
            for (size_t k = 0; k < M; k++) s += (double)X[r * M + k] * Z[q * M + k], m += fabs((double)X[r * M + k] * Z[q * M + k]);
            t[r * l + q] = s, tmag[r * l + q] = m;
          }
        for (size_t q = 0; q < l; q++)
          for (size_t k = 0; k < M; k++) {
            double s = B[q * M + k], m = 0;
            for (size_t r = 0; r < nr; r++) s += t[r * l + q] * X[r * M + k], m += tmag[r * l + q] * fabs((double)X[r * M + k]);
            want[q * M + k] = s, mag[q * M + k] = m;
          }
        power_run_512(nr, l, M, X, Z, T, B);
        double worst = 0; /* the largest error as a multiple of the bound */
        for (size_t i = 0; i < l * M; i++) {
          double bound = (double)(M + nr + 2) * FLT_EPSILON * mag[i] + 1e-12;
          worst = fmax(worst, fabs(B[i] - want[i]) / bound);
        }
        CHECK(worst <= 1, "rows %zu, columns %zu, components %zu: error %.3g times float32's bound", nr, M, l, worst);
        free(X), free(Z), free(T), free(B), free(want), free(mag), free(t), free(tmag);
      }
  return TEST_DONE("test_power_run");
}
