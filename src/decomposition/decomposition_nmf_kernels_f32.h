/* NMF's products in single precision (nmf_precision: single) for one vector
 * width, included by decomposition_nmf.c right after
 * decomposition_nmf_kernels.h, with its macros and
 *   VECF, VECF_U  a vector of WF floats (VECF_U: unaligned, may_alias);
 *   WF            16, 8 or 4;
 * and this file undefines all of them at its end.  Half the vector work of
 * the double kernels, and no widening of X: as scikit-learn keeps float32
 * data in float32.  Every width rounds alike: X·Hᵀ sums in sixteen float
 * lanes (column j mod 16, in column order), reduced pairwise, the columns
 * past the last sixteen then added in double; WᵀX sums a run's rows in
 * float, in row order, and adds that to the double total. */
#define NLF (16 / WF)
#define LDF(p) ((VECF)(*(const VECF_U *)(p)))
#define STF(p, v) (*(VECF_U *)(p) = (v))

/* lanes (nr × 4 × 16) += Xr·hᵀ over columns [j0, j1) for TN rows of h. */
TARGET INLINE void KNAME(xhtf_tile)(size_t M, size_t nr, const float *x, const float *h, size_t j0, size_t j1,
                                    float (*lanes)[16], const int TN, const int RB) {
  size_t r0 = 0;
  for (; r0 + (size_t)RB <= nr; r0 += (size_t)RB) {
    VECF acc[4][4][NLF], hv[4][NLF];
#pragma GCC unroll 4
    for (int r = 0; r < RB; r++)
#pragma GCC unroll 4
      for (int t = 0; t < TN; t++)
#pragma GCC unroll 4
        for (int q = 0; q < NLF; q++) acc[r][t][q] = LDF(lanes[(r0 + (size_t)r) * 4 + (size_t)t] + q * WF);
    for (size_t j = j0; j < j1; j += 16) {
#pragma GCC unroll 4
      for (int t = 0; t < TN; t++)
#pragma GCC unroll 4
        for (int q = 0; q < NLF; q++) hv[t][q] = LDF(h + (size_t)t * M + j + (size_t)(q * WF));
#pragma GCC unroll 4
      for (int r = 0; r < RB; r++)
#pragma GCC unroll 4
        for (int q = 0; q < NLF; q++) {
          VECF xx = LDF(x + (r0 + (size_t)r) * M + j + (size_t)(q * WF));
#pragma GCC unroll 4
          for (int t = 0; t < TN; t++) acc[r][t][q] += xx * hv[t][q];
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < RB; r++)
#pragma GCC unroll 4
      for (int t = 0; t < TN; t++)
#pragma GCC unroll 4
        for (int q = 0; q < NLF; q++) STF(lanes[(r0 + (size_t)r) * 4 + (size_t)t] + q * WF, acc[r][t][q]);
  }
  for (; r0 < nr; r0++) /* rows left over */
    for (int t = 0; t < TN; t++)
      for (size_t j = j0; j < j1; j += 16)
        for (int q = 0; q < NLF; q++) {
          float *s = lanes[r0 * 4 + (size_t)t] + q * WF;
          STF(s, LDF(s) + LDF(x + r0 * M + j + (size_t)(q * WF)) * LDF(h + (size_t)t * M + j + (size_t)(q * WF)));
        }
}

/* XHt (nr × K) = Xr·Hᵀ for a run, from H's float32 copy Hf (and H for the
 * columns past the last sixteen), in tiles of NMF_TILE columns. */
TARGET INLINE void KNAME(xhtf_body)(size_t K, size_t M, size_t nr, const float *x, const float *Hf, const double *H,
                                    double *XHt, const int RB) {
  float lanes[NMF_RUN * 4][16];
  size_t j16 = M - M % 16;
  for (size_t t0 = 0; t0 < K; t0 += 4) {
    size_t tn = K - t0 < 4 ? K - t0 : 4;
    const float *h = Hf + t0 * M;
    memset(lanes, 0, nr * 4 * sizeof *lanes);
    for (size_t j0 = 0; j0 < j16; j0 += NMF_TILE) {
      size_t j1 = j16 - j0 < NMF_TILE ? j16 : j0 + NMF_TILE;
      if (tn == 4) KNAME(xhtf_tile)(M, nr, x, h, j0, j1, lanes, 4, RB);
      else if (tn == 3) KNAME(xhtf_tile)(M, nr, x, h, j0, j1, lanes, 3, RB);
      else if (tn == 2) KNAME(xhtf_tile)(M, nr, x, h, j0, j1, lanes, 2, RB);
      else KNAME(xhtf_tile)(M, nr, x, h, j0, j1, lanes, 1, RB);
    }
    for (size_t r = 0; r < nr; r++)
      for (size_t t = 0; t < tn; t++) {
        const float *s = lanes[r * 4 + t];
        float p[8];
        for (int i = 0; i < 8; i++) p[i] = s[2 * i] + s[2 * i + 1];
        double v = ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
        for (size_t j = j16; j < M; j++) v += (double)x[r * M + j] * H[(t0 + t) * M + j];
        XHt[r * K + t0 + t] = v;
      }
  }
}

/* o (TN rows, M apart) += wᵀ·Xr over columns [0, jw): 16·NV columns of the
 * TN rows summed over the run's rows in registers, then added to o. */
TARGET INLINE void KNAME(wtxf_group)(size_t M, size_t nr, const double *w, size_t ldw, const float *x, double *o,
                                     size_t jw, const char *next, size_t nnext, const int TN, const int NV) {
  size_t cw = 16 * (size_t)NV;
  for (size_t j = 0; j < jw; j += cw) {
    VECF acc[4][4 * NLF];
#pragma GCC unroll 4
    for (int t = 0; t < TN; t++)
#pragma GCC unroll 16
      for (int v = 0; v < NV * NLF; v++) acc[t][v] = (VECF){0};
    for (size_t r = 0; r < nr; r++) {
      if (r < nnext)
        for (size_t b = 0; b < cw * sizeof(float); b += 64) __builtin_prefetch(next + (r * M + j) * sizeof(float) + b, 0, 2);
      float wr[4];
#pragma GCC unroll 4
      for (int t = 0; t < TN; t++) wr[t] = (float)w[r * ldw + (size_t)t];
#pragma GCC unroll 16
      for (int v = 0; v < NV * NLF; v++) {
        VECF xx = LDF(x + r * M + j + (size_t)(v * WF));
#pragma GCC unroll 4
        for (int t = 0; t < TN; t++) acc[t][v] += wr[t] * xx;
      }
    }
#pragma GCC unroll 4
    for (int t = 0; t < TN; t++)
#pragma GCC unroll 16
      for (int v = 0; v < NV * NLF; v++) {
        float s[WF];
        STF(s, acc[t][v]);
        double *out = o + (size_t)t * M + j + (size_t)(v * WF);
        for (int e = 0; e < WF; e++) out[e] += s[e];
      }
  }
}

/* WtX (K × M) += Wrᵀ·Xr for a run, four components at a time. */
TARGET INLINE void KNAME(wtxf_body)(size_t K, size_t M, size_t nr, const double *Wr, const float *x, double *WtX,
                                    const char *next, size_t nnext, const int NV) {
  size_t jw = M - M % (16 * (size_t)NV);
  for (size_t t0 = 0; t0 < K; t0 += 4) {
    size_t tn = K - t0 < 4 ? K - t0 : 4, pn = t0 == 0 ? nnext : 0; /* prefetch once */
    double *o = WtX + t0 * M;
    if (tn == 4) KNAME(wtxf_group)(M, nr, Wr + t0, K, x, o, jw, next, pn, 4, NV);
    else if (tn == 3) KNAME(wtxf_group)(M, nr, Wr + t0, K, x, o, jw, next, pn, 3, NV);
    else if (tn == 2) KNAME(wtxf_group)(M, nr, Wr + t0, K, x, o, jw, next, pn, 2, NV);
    else KNAME(wtxf_group)(M, nr, Wr + t0, K, x, o, jw, next, pn, 1, NV);
    for (size_t t = 0; t < tn; t++) /* columns left over, summed as the lanes are */
      for (size_t j = jw; j < M; j++) {
        float s = 0;
        for (size_t r = 0; r < nr; r++) s += (float)Wr[r * K + t0 + t] * x[r * M + j];
        o[t * M + j] += s;
      }
  }
}

/* One run in single precision: X·Hᵀ, the rows of W, the run's share of WᵀX. */
TARGET static double KNAME(run_s)(const iter_arg *a, size_t K, size_t M, size_t nr, const void *x, double *Wr,
                                  double *WtX, const void *next, size_t nnext) {
  double viol = 0;
  if (a->update_w) {
    KNAME(xhtf_body)(K, M, nr, x, a->Hf, a->H, a->XHt, RB_XHT);
    for (size_t r = 0; r < nr; r++) viol += update_row(a, Wr + r * K, a->XHt + r * K, K, M);
  }
  KNAME(wtxf_body)(K, M, nr, Wr, x, WtX, next, nnext, NV_WTX);
  return viol;
}

#undef NLF
#undef LDF
#undef STF
#undef VECF
#undef VECF_U
#undef WF
#undef VEC
#undef VEC_U
#undef W
#undef XLDF
#undef KNAME
#undef TARGET
#undef RB_XHT
#undef NV_WTX
