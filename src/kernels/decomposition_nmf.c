/* NMF with sklearn 1.2's objective ½‖X − WH‖²_F, initialisations and
 * stopping rules, distributed as MPI-FAUN/PLANC do: W's rows stay with the
 * rank that read them, H is replicated.  Each iteration is one pass over the
 * local blocks (update W's rows, then form the partials WᵀW and WᵀX) and one
 * reduction over the block tree; H is then updated alike on every rank.  The
 * residual comes from ‖X‖², WᵀX and WᵀW without forming WH. */
#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "decomposition_priv.h"
#include "hb_error.h"

#define EPS32 FLT_EPSILON /* sklearn's EPSILON for zero denominators */

/* ---- initialisation ------------------------------------------------------ */

/* Partial: Σ max(u, 0)² and Σ min(u, 0)² per column of U = L / s. */
static void split_norms(dec_data *d, size_t i, const double *x, double *out, void *arg) {
  (void)x;
  const double *L = ((void **)arg)[0], *s = ((void **)arg)[1];
  size_t K = d->p->k;
  memset(out, 0, 2 * K * sizeof *out);
  for (size_t r = d->off[i]; r < d->off[i + 1]; r++)
    for (size_t c = 0; c < K; c++) {
      double u = s[c] > 0 ? L[r * K + c] / s[c] : 0;
      out[2 * c + (u < 0)] += u * u;
    }
}

/* NNDSVD (Boutsidis and Gallopoulos) from the top-k SVD, as sklearn's
 * _initialize_nmf, with nndsvda's fill of zeros by the mean of X. */
static int init_nndsvd(dec_data *d, double *W, double *H) {
  size_t K = d->p->k, M = d->M;
  double *s, *nrm;
  int solver;
  HB_ALLOC(s, K);
  HB_ALLOC(nrm, 2 * K);
  int rc = dec_svd(d, K, H, s, W, &solver); /* H = Vt, W = U·S for now */
  void *arg[2] = {W, s};
  if (!rc) rc = dec_reduce(d, 2 * K, 0, split_norms, arg, NULL, 1, nrm);
  if (rc) {
    free(s);
    free(nrm);
    return rc;
  }
  double avg = d->total / ((double)d->p->n_used * (double)d->p->m_used);
  for (size_t c = 0; c < K; c++) {
    double *h = H + c * M;
    double xp = sqrt(nrm[2 * c]), xn = sqrt(nrm[2 * c + 1]), yp = 0, yn = 0;
    for (size_t j = 0; j < M; j++) {
      if (h[j] > 0) yp += h[j] * h[j];
      else yn += h[j] * h[j];
    }
    yp = sqrt(yp);
    yn = sqrt(yn);
    /* component 0 is non-negative up to sign: sqrt(S0)·|u|, sqrt(S0)·|v| */
    int pos = c == 0 || xp * yp > xn * yn;
    double sigma = c == 0 ? 1 : pos ? xp * yp : xn * yn, lbd = sqrt(s[c] * sigma);
    double wx = c == 0 ? sqrt(s[c]) : pos ? lbd / xp : lbd / xn, wy = c == 0 ? sqrt(s[c]) : pos ? lbd / yp : lbd / yn;
    for (size_t j = 0; j < M; j++) {
      double v = c == 0 ? fabs(h[j]) : pos ? fmax(h[j], 0) : fmax(-h[j], 0);
      h[j] = v * wy;
    }
    for (size_t r = 0; r < d->nloc; r++) {
      double u = s[c] > 0 ? W[r * K + c] / s[c] : 0;
      double v = c == 0 ? fabs(u) : pos ? fmax(u, 0) : fmax(-u, 0);
      W[r * K + c] = v * wx;
    }
  }
  for (size_t i = 0; i < K * M; i++)
    if (H[i] < 1e-6) H[i] = d->p->init == INIT_NNDSVDA ? avg : 0;
  for (size_t i = 0; i < d->nloc * K; i++)
    if (W[i] < 1e-6) W[i] = d->p->init == INIT_NNDSVDA ? avg : 0;
  free(s);
  free(nrm);
  return 0;
}

/* sqrt(mean(X) / k)·|N(0, 1)|: H from stream 0, each pattern's row of W from
 * its own stream, so W does not depend on the rank count. */
static void init_random(dec_data *d, double *W, double *H) {
  size_t K = d->p->k, M = d->M;
  double avg = sqrt(d->total / ((double)d->p->n_used * (double)d->p->m_used) / (double)K);
  hb_rng r;
  hb_rng_seed(&r, (uint64_t)d->p->seed, 0);
  for (size_t i = 0; i < K * M; i++) H[i] = avg * fabs(dec_rng_normal(&r));
  for (size_t i = 0; i < d->nb; i++)
    for (size_t p = 0; p < d->blk[i].npos; p++) {
      hb_rng_seed(&r, (uint64_t)d->p->seed, 1 + dec_flat_nav(d, &d->blk[i], p));
      for (size_t c = 0; c < K; c++) W[(d->off[i] + p) * K + c] = avg * fabs(dec_rng_normal(&r));
    }
}

/* W's local rows and all of H from init_file (checked at plan time). */
static int init_custom(dec_data *d, double *W, double *H) {
  const char *path = d->p->init_file;
  size_t K = d->p->k;
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  HB_H5(f, path, "cannot open init_file");
  hid_t w = H5Dopen2(f, "W", H5P_DEFAULT), h = H5Dopen2(f, "H", H5P_DEFAULT);
  int bad = w < 0 || h < 0 || H5Dread(h, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, H) < 0;
  for (size_t i = 0; i < d->nb && !bad; i++) {
    const hb_block *b = &d->blk[i];
    hsize_t start[HB_MAXDIM + 1], count[HB_MAXDIM + 1], n = b->npos * K;
    for (int a = 0; a < b->nav_dim; a++) start[a] = b->start[a], count[a] = b->count[a];
    start[b->nav_dim] = 0;
    count[b->nav_dim] = K;
    hid_t fs = H5Dget_space(w), ms = H5Screate_simple(1, &n, NULL);
    bad = H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
          H5Dread(w, H5T_NATIVE_DOUBLE, ms, fs, H5P_DEFAULT, W + d->off[i] * K) < 0;
    H5Sclose(ms);
    H5Sclose(fs);
  }
  if (bad) {
    int rc = hb_error_raise(HB_EIO, __FILE__, __LINE__, path, "cannot read W and H (%s)", hb_h5_error_text());
    if (w >= 0) H5Dclose(w);
    if (h >= 0) H5Dclose(h);
    H5Fclose(f);
    return rc;
  }
  H5Dclose(w);
  H5Dclose(h);
  H5Fclose(f);
  return 0;
}

/* ---- iterations ---------------------------------------------------------------- */

typedef struct {
  int update_w, solver;
  double *W;
  const double *H, *HHt;
  double *XHt; /* one row's X Hᵀ */
} iter_arg;

/* cd on one row of W (sklearn's _update_cdnmf_fast; rows are independent). */
static double cd_row(double *w, const double *xht, const double *HHt, size_t K) {
  double viol = 0;
  for (size_t t = 0; t < K; t++) {
    double grad = -xht[t];
    for (size_t r = 0; r < K; r++) grad += HHt[t * K + r] * w[r];
    double pg = w[t] == 0 ? fmin(0, grad) : grad;
    viol += fabs(pg);
    double hess = HHt[t * K + t];
    if (hess != 0) w[t] = fmax(w[t] - grad / hess, 0);
  }
  return viol;
}

/* Rows per run: a run of X (RUN × M doubles, 512 KiB at M = 4096) stays in
 * a core's L2 cache between its two uses. */
enum { NMF_RUN = 16, NMF_COLS = 512 };

/* WtX (K × M) += Wrᵀ Xr for a run of nr rows.  Eight columns of four
 * components at a time are kept in registers while the run's rows are added
 * in row order, so each row's eight values are loaded once for the four.
 * Plain loops: BLAS would copy (pack) X for a product this thin, which costs
 * more than the arithmetic. */
/* AVX2 where the CPU has it; no FMA, so the roundings are those of the default */
__attribute__((target_clones("avx2", "default")))
static void add_wtx(size_t K, size_t M, size_t nr, const double *Wr, const double *xr, double *WtX) {
  size_t j8 = M - M % 8;
  for (size_t t0 = 0; t0 < K; t0 += 4) {
    size_t tn = K - t0 < 4 ? K - t0 : 4;
    for (size_t j = 0; j < j8; j += 8) {
      double acc[4][8] = {{0}};
      for (size_t t = 0; t < tn; t++)
        for (int l = 0; l < 8; l++) acc[t][l] = WtX[(t0 + t) * M + j + l];
      for (size_t r = 0; r < nr; r++) {
        const double *xx = xr + r * M + j, *w = Wr + r * K + t0;
        if (tn == 4) /* constant trip counts: registers, vectorised */
          for (int t = 0; t < 4; t++)
            for (int l = 0; l < 8; l++) acc[t][l] += w[t] * xx[l];
        else
          for (size_t t = 0; t < tn; t++)
            for (int l = 0; l < 8; l++) acc[t][l] += w[t] * xx[l];
      }
      for (size_t t = 0; t < tn; t++)
        for (int l = 0; l < 8; l++) WtX[(t0 + t) * M + j + l] = acc[t][l];
    }
    for (size_t t = t0; t < t0 + tn; t++)
      for (size_t j = j8; j < M; j++)
        for (size_t r = 0; r < nr; r++) WtX[t * M + j] += Wr[r * K + t] * xr[r * M + j];
  }
}

/* Update block i's rows of W, then its partial [WᵀW | WᵀX | cd's violation].
 * One sweep over the block: each run of rows gives X·Hᵀ, its W update and
 * its share of WᵀX while it is still in cache (X is read once per iteration,
 * not twice). */
static void iter_partial(dec_data *d, size_t i, const double *x, double *out, void *arg) {
  iter_arg *a = arg;
  size_t K = d->p->k, M = d->M, npos = d->blk[i].npos;
  double *W = a->W + d->off[i] * K, viol = 0, *WtX = out + K * K;
  memset(WtX, 0, K * M * sizeof *WtX);
  for (size_t r0 = 0; r0 < npos; r0 += NMF_RUN) {
    size_t nr = npos - r0 < NMF_RUN ? npos - r0 : NMF_RUN;
    const double *xr = x + r0 * M;
    double *Wr = W + r0 * K;
    for (size_t r = 0; a->update_w && r < nr; r++) {
      double *w = Wr + r * K, *xht = a->XHt;
      cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)K, (int)M, 1.0, a->H, (int)M, xr + r * M, 1, 0.0, xht, 1);
      if (a->solver == NMF_CD) {
        viol += cd_row(w, xht, a->HHt, K);
        continue;
      }
      if (a->solver == NMF_HALS) {
        dec_hals_w(w, xht, a->HHt, 1, K, M);
        continue;
      }
      double den[64];
      for (size_t t = 0; t < K; t++) {
        den[t] = 0;
        for (size_t q = 0; q < K; q++) den[t] += w[q] * a->HHt[q * K + t];
      }
      for (size_t t = 0; t < K; t++) w[t] *= xht[t] / (den[t] == 0 ? EPS32 : den[t]);
    }
    add_wtx(K, M, nr, Wr, xr, WtX);
  }
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)K, (int)npos, 1.0, W, (int)K, W, (int)K, 0.0, out,
              (int)K);
  out[K * K + K * M] = viol;
}

/* H Hᵀ (k × k). */
static void gram_rows(const double *H, size_t K, size_t M, double *HHt) {
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)K, (int)K, (int)M, 1.0, H, (int)M, H, (int)M, 0.0, HHt,
              (int)K);
}

/* ‖X − WH‖_F from ‖X‖², WᵀX and WᵀW. */
static double residual(const dec_data *d, const double *WtW, const double *WtX, const double *H, double *HHt) {
  size_t K = d->p->k, M = d->M;
  double cross = 0, quad = 0;
  for (size_t i = 0; i < K * M; i++) cross += WtX[i] * H[i];
  gram_rows(H, K, M, HHt);
  for (size_t i = 0; i < K * K; i++) quad += WtW[i] * HHt[i];
  return sqrt(fmax(d->sumsq - 2 * cross + quad, 0));
}

/* H from the reduced WᵀW and WᵀX, identically on every rank; returns cd's
 * violation. */
static double update_h(const dec_data *d, double *H, const double *WtW, const double *WtX, double *tmp) {
  size_t K = d->p->k, M = d->M;
  double viol = 0;
  if (d->p->nmf_solver == NMF_MU) {
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)K, (int)M, (int)K, 1.0, WtW, (int)K, H, (int)M, 0.0,
                tmp, (int)M);
    for (size_t i = 0; i < K * M; i++) H[i] *= WtX[i] / (tmp[i] == 0 ? EPS32 : tmp[i]);
    return 0;
  }
  if (d->p->nmf_solver == NMF_HALS) {
    dec_hals_h(H, WtX, WtW, K, M, d->p->n_used);
    return 0;
  }
  for (size_t t = 0; t < K; t++) /* sklearn: components outer, rows of Hᵀ inner */
    for (size_t j = 0; j < M; j++) {
      double grad = -WtX[t * M + j];
      for (size_t r = 0; r < K; r++) grad += WtW[t * K + r] * H[r * M + j];
      double h = H[t * M + j], pg = h == 0 ? fmin(0, grad) : grad;
      viol += fabs(pg);
      double hess = WtW[t * K + t];
      if (hess != 0) H[t * M + j] = fmax(h - grad / hess, 0);
    }
  return viol;
}

/* Partial: Σ x and Σ x² of the transformed block. */
static void sums_partial(dec_data *d, size_t i, const double *x, double *out, void *arg) {
  (void)arg;
  out[0] = out[1] = 0;
  for (size_t j = 0; j < d->blk[i].npos * d->M; j++) out[0] += x[j], out[1] += x[j] * x[j];
}

int dec_nmf(dec_data *d, double *W, double *H, int *iters, double *res) {
  const dec_params *p = d->p;
  size_t K = d->p->k, M = d->M, n = K * K + K * M + 1;
  HB_CHECK(K <= 64, HB_EINVALID, "decomposition", "NMF supports up to 64 components, got %zu", K);
  double sums[2];
  HB_CALL(dec_reduce(d, 2, 1, sums_partial, NULL, NULL, 1, sums));
  d->total = sums[0]; /* mean(X) for the inits: of X as normalised */
  d->sumsq = sums[1];
  if (p->init == INIT_CUSTOM) HB_CALL(hb_agree(d->g->comm, init_custom(d, W, H)));
  else if (p->init == INIT_RANDOM) init_random(d, W, H);
  else HB_CALL(init_nndsvd(d, W, H));
  dec_masks_zero(d, W, H); /* masked rows and columns stay 0 under every update */
  d->sumsq = sums[1]; /* the SVD of nndsvd recomputed it in another order */
  double *red = malloc(n * sizeof *red), *HHt = malloc(K * K * sizeof *HHt), *tmp = malloc(K * M * sizeof *tmp);
  double *XHt = malloc(K * sizeof *XHt);
  int rc = !red || !HHt || !tmp || !XHt ? hb_error_raise(HB_EINTERNAL, __FILE__, __LINE__, "memory", "out of memory")
                                        : 0;
  rc = hb_agree(d->g->comm, rc);
  iter_arg a = {0, p->nmf_solver, W, H, HHt, XHt};
  if (!rc) rc = dec_reduce(d, n, 1, iter_partial, &a, NULL, 1, red); /* the initial error */
  double err0 = 0, prev = 0, vinit = 0;
  if (!rc) err0 = prev = residual(d, red, red + K * K, H, tmp);
  int it = 0;
  a.update_w = 1;
  for (it = 1; it <= p->max_iter && !rc; it++) {
    gram_rows(H, K, M, HHt);
    rc = dec_reduce(d, n, 1, iter_partial, &a, NULL, 1, red);
    if (rc) break;
    double viol = red[n - 1] + update_h(d, H, red, red + K * K, tmp);
    if (p->nmf_solver == NMF_CD) {
      if (it == 1) vinit = viol;
      if (vinit == 0 || viol / vinit <= p->tol) break;
    } else if (p->nmf_solver == NMF_HALS) {
      /* the error of the new (W, H) costs no pass: WᵀW and WᵀX are those of the new W */
      double err = residual(d, red, red + K * K, H, tmp);
      if (p->tol > 0 && (prev - err) / err0 < p->tol) break;
      prev = err;
    } else if (p->tol > 0 && it % 10 == 0) {
      double err = residual(d, red, red + K * K, H, tmp);
      if ((prev - err) / err0 < p->tol) break;
      prev = err;
    }
  }
  if (!rc) {
    *iters = it > p->max_iter ? p->max_iter : it;
    *res = residual(d, red, red + K * K, H, tmp);
  }
  free(red);
  free(HHt);
  free(tmp);
  free(XHt);
  return rc;
}
