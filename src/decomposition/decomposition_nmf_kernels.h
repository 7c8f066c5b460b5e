/* NMF's products for one vector width, included by decomposition_nmf.c once
 * per instruction set (a C template: the vector type must be one the target
 * holds in a register, or GCC keeps it in memory).  The includer defines
 *   VEC, VEC_U  a vector of W doubles (VEC_U: unaligned, may_alias);
 *   W           8, 4 or 2;
 *   XLDF(p)     W floats at p widened to a VEC;
 *   KNAME(n)    the name of kernel n in this width;
 *   TARGET      its target attribute;
 *   RB_XHT      rows of X·Hᵀ and NV_WTX groups of eight columns of WᵀX in
 *               registers at a time;
 * and decomposition_nmf_kernels_f32.h, included next with the same macros,
 * undefines them.  Sums have eight lanes (an
 * 8-lane sum is NL vectors), so every width rounds alike.  See the comments
 * in decomposition_nmf.c. */
#define NL (8 / W)
#define XLD(x, single, i) \
  ((single) ? XLDF((const float *)(x) + (i)) : (VEC)(*(const VEC_U *)((const double *)(x) + (i))))
#define LD(p) ((VEC)(*(const VEC_U *)(p)))
#define ST(p, v) (*(VEC_U *)(p) = (v))

/* lanes (nr × 4 × 8) += Xr·hᵀ over columns [j0, j1) for TN rows of H (h, M
 * apart).  RB rows at a time share each load of H. */
TARGET INLINE void KNAME(xht_tile)(size_t M, size_t nr, const void *x, int single, const double *h, size_t j0,
                                   size_t j1, double (*lanes)[8], const int TN, const int RB) {
  size_t r0 = 0;
  for (; r0 + (size_t)RB <= nr; r0 += (size_t)RB) { /* constant trip counts: registers */
    VEC acc[4][4][NL], hv[4][NL];
#pragma GCC unroll 4
    for (int r = 0; r < RB; r++)
#pragma GCC unroll 4
      for (int t = 0; t < TN; t++)
#pragma GCC unroll 4
        for (int q = 0; q < NL; q++) acc[r][t][q] = LD(lanes[(r0 + (size_t)r) * 4 + (size_t)t] + q * W);
    for (size_t j = j0; j < j1; j += 8) {
#pragma GCC unroll 4
      for (int t = 0; t < TN; t++)
#pragma GCC unroll 4
        for (int q = 0; q < NL; q++) hv[t][q] = XLD(h, 0, (size_t)t * M + j + (size_t)(q * W));
#pragma GCC unroll 4
      for (int r = 0; r < RB; r++)
#pragma GCC unroll 4
        for (int q = 0; q < NL; q++) {
          VEC xx = XLD(x, single, (r0 + (size_t)r) * M + j + (size_t)(q * W));
#pragma GCC unroll 4
          for (int t = 0; t < TN; t++) acc[r][t][q] += xx * hv[t][q];
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < RB; r++)
#pragma GCC unroll 4
      for (int t = 0; t < TN; t++)
#pragma GCC unroll 4
        for (int q = 0; q < NL; q++) ST(lanes[(r0 + (size_t)r) * 4 + (size_t)t] + q * W, acc[r][t][q]);
  }
  for (; r0 < nr; r0++) /* rows left over */
    for (int t = 0; t < TN; t++)
      for (size_t j = j0; j < j1; j += 8)
        for (int q = 0; q < NL; q++) {
          double *s = lanes[r0 * 4 + (size_t)t] + q * W;
          ST(s, LD(s) + XLD(x, single, r0 * M + j + (size_t)(q * W)) * XLD(h, 0, (size_t)t * M + j + (size_t)(q * W)));
        }
}

/* XHt (nr × K) = Xr·Hᵀ for a run, four components of H at a time, in tiles
 * of NMF_TILE columns: each dot product in eight lanes (column j mod 8, each
 * in column order), the lanes then pairwise, then the columns past the last
 * eight. */
TARGET INLINE void KNAME(xht_body)(size_t K, size_t M, size_t nr, const void *x, int single, const double *H,
                                   double *XHt, const int RB) {
  double lanes[NMF_RUN * 4][8];
  size_t j8 = M - M % 8;
  for (size_t t0 = 0; t0 < K; t0 += 4) {
    size_t tn = K - t0 < 4 ? K - t0 : 4;
    const double *h = H + t0 * M;
    memset(lanes, 0, nr * 4 * sizeof *lanes);
    for (size_t j0 = 0; j0 < j8; j0 += NMF_TILE) {
      size_t j1 = j8 - j0 < NMF_TILE ? j8 : j0 + NMF_TILE;
      if (tn == 4) KNAME(xht_tile)(M, nr, x, single, h, j0, j1, lanes, 4, RB);
      else if (tn == 3) KNAME(xht_tile)(M, nr, x, single, h, j0, j1, lanes, 3, RB);
      else if (tn == 2) KNAME(xht_tile)(M, nr, x, single, h, j0, j1, lanes, 2, RB);
      else KNAME(xht_tile)(M, nr, x, single, h, j0, j1, lanes, 1, RB);
    }
    for (size_t r = 0; r < nr; r++)
      for (size_t t = 0; t < tn; t++) {
        const double *s = lanes[r * 4 + t];
        double v = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
        for (size_t j = j8; j < M; j++) v += xval(x, single, r * M + j) * h[t * M + j];
        XHt[r * K + t0 + t] = v;
      }
  }
}

/* o (TN rows, M apart) += wᵀ·Xr over columns [0, jw) for a run, w being TN
 * columns of Wr (ldw apart): 8·NV columns of the TN rows at a time stay in
 * registers while the run's rows are added in row order.  `next` (nnext
 * rows) is prefetched into L2 meanwhile. */
TARGET INLINE void KNAME(wtx_group)(size_t M, size_t nr, const double *w, size_t ldw, const void *x, int single,
                                    double *o, size_t jw, const char *next, size_t nnext, const int TN,
                                    const int NV) {
  size_t esz = single ? sizeof(float) : sizeof(double), cw = 8 * (size_t)NV;
  for (size_t j = 0; j < jw; j += cw) {
    VEC acc[4][4 * NL];
#pragma GCC unroll 4
    for (int t = 0; t < TN; t++)
#pragma GCC unroll 16
      for (int v = 0; v < NV * NL; v++) acc[t][v] = LD(o + (size_t)t * M + j + (size_t)(v * W));
    for (size_t r = 0; r < nr; r++) {
      const double *wr = w + r * ldw;
      if (r < nnext)
        for (size_t b = 0; b < cw * esz; b += 64) __builtin_prefetch(next + (r * M + j) * esz + b, 0, 2);
#pragma GCC unroll 16
      for (int v = 0; v < NV * NL; v++) {
        VEC xx = XLD(x, single, r * M + j + (size_t)(v * W));
#pragma GCC unroll 4
        for (int t = 0; t < TN; t++) acc[t][v] += wr[t] * xx;
      }
    }
#pragma GCC unroll 4
    for (int t = 0; t < TN; t++)
#pragma GCC unroll 16
      for (int v = 0; v < NV * NL; v++) ST(o + (size_t)t * M + j + (size_t)(v * W), acc[t][v]);
  }
}

/* WtX (K × M) += Wrᵀ·Xr for a run, four components at a time, so each
 * row's values are loaded once for the four and every WtX entry sums the
 * rows in order. */
TARGET INLINE void KNAME(wtx_body)(size_t K, size_t M, size_t nr, const double *Wr, const void *x, int single,
                                   double *WtX, const char *next, size_t nnext, const int NV) {
  size_t jw = M - M % (8 * (size_t)NV);
  for (size_t t0 = 0; t0 < K; t0 += 4) {
    size_t tn = K - t0 < 4 ? K - t0 : 4, pn = t0 == 0 ? nnext : 0; /* prefetch once */
    double *o = WtX + t0 * M;
    if (tn == 4) KNAME(wtx_group)(M, nr, Wr + t0, K, x, single, o, jw, next, pn, 4, NV);
    else if (tn == 3) KNAME(wtx_group)(M, nr, Wr + t0, K, x, single, o, jw, next, pn, 3, NV);
    else if (tn == 2) KNAME(wtx_group)(M, nr, Wr + t0, K, x, single, o, jw, next, pn, 2, NV);
    else KNAME(wtx_group)(M, nr, Wr + t0, K, x, single, o, jw, next, pn, 1, NV);
    for (size_t t = 0; t < tn; t++) /* columns left over */
      for (size_t j = jw; j < M; j++)
        for (size_t r = 0; r < nr; r++) o[t * M + j] += Wr[r * K + t0 + t] * xval(x, single, r * M + j);
  }
}

/* One run of nr rows: X·Hᵀ, the rows of W, the run's share of WᵀX. */
TARGET INLINE double KNAME(run_body)(const iter_arg *a, size_t K, size_t M, size_t nr, const void *x, int single,
                                     double *Wr, double *WtX, const void *next, size_t nnext) {
  double viol = 0;
  if (a->update_w) {
    KNAME(xht_body)(K, M, nr, x, single, a->H, a->XHt, RB_XHT);
    for (size_t r = 0; r < nr; r++) viol += update_row(a, Wr + r * K, a->XHt + r * K, K, M);
  }
  KNAME(wtx_body)(K, M, nr, Wr, x, single, WtX, next, nnext, NV_WTX);
  return viol;
}

TARGET static double KNAME(run_d)(const iter_arg *a, size_t K, size_t M, size_t nr, const void *x, double *Wr,
                                  double *WtX, const void *next, size_t nnext) {
  return KNAME(run_body)(a, K, M, nr, x, 0, Wr, WtX, next, nnext);
}

TARGET static double KNAME(run_f)(const iter_arg *a, size_t K, size_t M, size_t nr, const void *x, double *Wr,
                                  double *WtX, const void *next, size_t nnext) {
  return KNAME(run_body)(a, K, M, nr, x, 1, Wr, WtX, next, nnext);
}

/* The randomized SVD's products on the float32 cache: Y = X·Ztᵀ, B += Yᵀ·X. */
TARGET static void KNAME(xzt)(size_t l, size_t M, size_t nr, const float *x, const double *Zt, double *Y) {
  KNAME(xht_body)(l, M, nr, x, 1, Zt, Y, RB_XHT);
}

TARGET static void KNAME(ytx)(size_t l, size_t M, size_t nr, const double *Y, const float *x, double *B,
                              const float *next, size_t nnext) {
  KNAME(wtx_body)(l, M, nr, Y, x, 1, B, (const char *)next, nnext, NV_WTX);
}

#undef NL
#undef XLD
#undef LD
#undef ST
