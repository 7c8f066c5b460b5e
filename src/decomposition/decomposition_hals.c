/* NMF solver `hals`: hierarchical alternating least squares (Cichocki and
 * Phan 2009), accelerated as Gillis and Glineur (2012) propose: the costly
 * products X·Hᵀ and WᵀX are formed once per iteration, then several cheap
 * sweeps of exact coordinate updates reuse them.  With fixed H every row of W
 * is an independent problem (and every column of H with fixed W), so the
 * inner loop stops per row or column: the result does not depend on how the
 * rows are spread over ranks. */
#include <math.h>

#include "decomposition_priv.h"

/* min ½‖x − wA‖² over w ≥ 0 (w of K entries, `stride` apart), given
 * b = xAᵀ and G = AAᵀ.  Sweeps until one moves w by less than 1% of what the
 * first did, or `cap` sweeps. */
static void hals_vec(double *w, size_t stride, const double *b, size_t bstride, const double *G, size_t K, int cap) {
  double first = 0;
  for (int s = 0; s < cap; s++) {
    double moved = 0;
    for (size_t t = 0; t < K; t++) {
      double g = G[t * K + t];
      if (g <= 0) continue; /* a zero component: nothing to fit */
      double num = b[t * bstride];
      for (size_t r = 0; r < K; r++) num -= G[t * K + r] * w[r * stride];
      double old = w[t * stride], v = fmax(old + num / g, 0);
      w[t * stride] = v;
      moved += (v - old) * (v - old);
    }
    if (s == 0) first = moved;
    if (moved <= 1e-4 * first) break;
  }
}

/* Sweeps are worth repeating while they cost much less than the product
 * that feeds them: (length of the product's inner dimension) / K of them,
 * half of that as Gillis and Glineur's alpha = 0.5, and at most 50. */
static int hals_cap(size_t inner, size_t K) {
  double c = 1 + 0.5 * (double)inner / (double)K;
  return c > 50 ? 50 : (int)c;
}

void dec_hals_w(double *W, const double *XHt, const double *HHt, size_t npos, size_t K, size_t M) {
  int cap = hals_cap(M, K);
  for (size_t r = 0; r < npos; r++) hals_vec(W + r * K, 1, XHt + r * K, 1, HHt, K, cap);
}

void dec_hals_h(double *H, const double *WtX, const double *WtW, size_t K, size_t M, size_t N) {
  int cap = hals_cap(N, K);
  for (size_t j = 0; j < M; j++) hals_vec(H + j, M, WtX + j, M, WtW, K, cap);
}
