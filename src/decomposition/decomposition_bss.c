/* Blind source separation of a decomposition (`bss: true`), as HyperSpy
 * 1.7.3's blind_source_separation with its defaults: algorithm
 * sklearn_fastica, diff_order 1, whiten_method PCA, tol 1e-10, and the
 * components sorted by explained variance and reversed by the factors' rule.
 *
 * The k components to unmix (the factors, replicated; or the loadings,
 * gathered to rank 0 in pattern order: k × N is small) are differentiated
 * along each axis of their space (numpy.gradient with the axis scale,
 * stacked), centred and PCA-whitened, then FastICA (parallel, logcosh,
 * sklearn's update and stopping rule, a seeded Gaussian start) finds W on
 * rank 0.  The unmixing matrix w = W·whitening is broadcast and every rank
 * applies it (or its inverse) to its factors and local loadings. */
#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "decomposition_priv.h"
#include "hb_error.h"

void dsyev_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w, double *work,
            const int *lwork, int *info, size_t, size_t);
void dgetrf_(const int *m, const int *n, double *a, const int *lda, int *ipiv, int *info);
void dgetri_(const int *n, double *a, const int *lda, const int *ipiv, double *work, const int *lwork, int *info);

/* All eigenpairs of the symmetric K × K matrix A (row-major; symmetric, so
 * LAPACK's column-major view is the same): on return A's columns (row-major
 * A[i*K + j], column j) are the eigenvectors, lam ascending. */
static int sym_eigen(double *A, size_t K, double *lam) {
  int n = (int)K, info = 0, lwork = -1;
  double q;
  dsyev_("V", "U", &n, A, &n, lam, &q, &lwork, &info, 1, 1);
  lwork = (int)q;
  double *work = malloc((size_t)lwork * sizeof *work), *t = malloc(K * K * sizeof *t);
  if (!work || !t) {
    free(work);
    free(t);
    HB_RAISE(HB_EINTERNAL, "memory", "out of memory");
  }
  dsyev_("V", "U", &n, A, &n, lam, work, &lwork, &info, 1, 1);
  /* column-major output: eigenvector j is A[j*K .. j*K + K); transpose to row-major columns */
  for (size_t i = 0; i < K; i++)
    for (size_t j = 0; j < K; j++) t[i * K + j] = A[j * K + i];
  memcpy(A, t, K * K * sizeof *t);
  free(work);
  free(t);
  HB_CHECK(info == 0, HB_EINTERNAL, "decomposition", "bss: dsyev failed (info %d)", info);
  return 0;
}

/* W <- (W Wᵀ)^(-1/2) W, sklearn's symmetric decorrelation. */
static int sym_decorrelate(double *W, size_t K, double *t1, double *t2) {
  double lam[64];
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)K, (int)K, (int)K, 1.0, W, (int)K, W, (int)K, 0.0, t1,
              (int)K);
  HB_CALL(sym_eigen(t1, K, lam)); /* t1 = U */
  for (size_t j = 0; j < K; j++) {
    double s = 1 / sqrt(fmax(lam[j], DBL_MIN));
    for (size_t i = 0; i < K; i++) t2[i * K + j] = t1[i * K + j] * s; /* U diag(s^-1/2) */
  }
  double *t3 = malloc(K * K * sizeof *t3);
  HB_CHECK(t3, HB_EINTERNAL, "memory", "out of memory");
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)K, (int)K, (int)K, 1.0, t2, (int)K, t1, (int)K, 0.0, t3,
              (int)K);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)K, (int)K, (int)K, 1.0, t3, (int)K, W, (int)K, 0.0, t1,
              (int)K);
  memcpy(W, t1, K * K * sizeof *W);
  free(t3);
  return 0;
}

/* FastICA, parallel, logcosh (alpha 1) on the white X1 (K × n): sklearn's
 * _ica_par.  W (K × K) holds the start and receives the result. */
static int fastica(const double *X1, size_t K, size_t n, int max_iter, double tol, double *W, int *iters) {
  double *WX = malloc(K * n * sizeof *WX), *W1 = malloc(K * K * sizeof *W1), *t1 = malloc(K * K * sizeof *t1),
         *t2 = malloc(K * K * sizeof *t2);
  int rc = !WX || !W1 || !t1 || !t2 ? HB_FAIL(HB_EINTERNAL, "memory", "out of memory") : 0;
  if (!rc) rc = sym_decorrelate(W, K, t1, t2);
  int it = 0;
  for (it = 1; it <= max_iter && !rc; it++) {
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)K, (int)n, (int)K, 1.0, W, (int)K, X1, (int)n, 0.0, WX,
                (int)n);
    double gmean[64];
    for (size_t i = 0; i < K; i++) {
      double s = 0;
      for (size_t p = 0; p < n; p++) {
        double g = tanh(WX[i * n + p]);
        WX[i * n + p] = g;
        s += 1 - g * g;
      }
      gmean[i] = s / (double)n;
    }
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)K, (int)K, (int)n, 1.0 / (double)n, WX, (int)n, X1,
                (int)n, 0.0, W1, (int)K);
    for (size_t i = 0; i < K; i++)
      for (size_t j = 0; j < K; j++) W1[i * K + j] -= gmean[i] * W[i * K + j];
    rc = sym_decorrelate(W1, K, t1, t2);
    if (rc) break;
    double lim = 0;
    for (size_t i = 0; i < K; i++) {
      double dot = 0;
      for (size_t j = 0; j < K; j++) dot += W1[i * K + j] * W[i * K + j];
      lim = fmax(lim, fabs(fabs(dot) - 1));
    }
    memcpy(W, W1, K * K * sizeof *W);
    if (lim < tol) break;
  }
  *iters = it > max_iter ? max_iter : it;
  free(WX);
  free(W1);
  free(t1);
  free(t2);
  return rc;
}

/* numpy.gradient of v (a C-order array of `nd` axes `dims`, spacing h) along
 * axis a, first order at the edges: into out. */
static void gradient(const double *v, int nd, const hsize_t *dims, int a, double h, double *out) {
  size_t stride = 1, size = 1, n = dims[a];
  for (int b = a + 1; b < nd; b++) stride *= dims[b];
  for (int b = 0; b < nd; b++) size *= dims[b];
  for (size_t p = 0; p < size; p++) {
    size_t c = (p / stride) % n;
    if (c == 0) out[p] = (v[p + stride] - v[p]) / h;
    else if (c == n - 1) out[p] = (v[p] - v[p - stride]) / h;
    else out[p] = (v[p + stride] - v[p - stride]) / (2 * h);
  }
}

/* The K × size components C (rows) -> samples Y (n × K): each axis'
 * derivative of order `order`, stacked; samples with a NaN (masked, or next
 * to one) are left out, as HyperSpy's dilated mask does. */
static int samples(const double *C, size_t K, int nd, const hsize_t *dims, const hb_axis *axes, int order, double **Y,
                   size_t *n) {
  size_t size = 1;
  for (int a = 0; a < nd; a++) size *= dims[a];
  int naxes = order ? nd : 1;
  double *D = malloc(K * size * (size_t)naxes * sizeof *D), *t = malloc(size * sizeof *t);
  if (!D || !t) {
    free(D);
    free(t);
    HB_RAISE(HB_EINTERNAL, "memory", "out of memory");
  }
  size_t tot = size * (size_t)naxes;
  for (size_t c = 0; c < K; c++)
    for (int a = 0; a < naxes; a++) {
      double *dst = D + c * tot + (size_t)a * size;
      memcpy(dst, C + c * size, size * sizeof *dst);
      for (int o = 0; o < order; o++) {
        gradient(dst, nd, dims, a, axes[a].scale, t);
        memcpy(dst, t, size * sizeof *dst);
      }
    }
  free(t);
  double *out = malloc(tot * K * sizeof *out);
  if (!out) {
    free(D);
    HB_RAISE(HB_EINTERNAL, "memory", "out of memory");
  }
  size_t m = 0;
  for (size_t p = 0; p < tot; p++) {
    int ok = 1;
    for (size_t c = 0; c < K && ok; c++) ok = !isnan(D[c * tot + p]);
    if (!ok) continue;
    for (size_t c = 0; c < K; c++) out[m * K + c] = D[c * tot + p];
    m++;
  }
  free(D);
  *Y = out;
  *n = m;
  return 0;
}

/* Rank 0: the unmixing matrix w (K × K) from samples Y (n × K, consumed). */
static int unmixing(const dec_params *p, double *Y, size_t n, size_t K, const double *ev, double *w, int *iters) {
  HB_CHECK(n >= 2, HB_EINVALID, "decomposition", "bss: %zu samples to separate; at least 2 are needed", n);
  /* whiten_data(centre=True, method="PCA"): Wh = diag((s + 1e-10)^-1/2) Uᵀ of YᵀY / n */
  for (size_t c = 0; c < K; c++) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m += Y[i * K + c];
    m /= (double)n;
    for (size_t i = 0; i < n; i++) Y[i * K + c] -= m;
  }
  double R[64 * 64], lam[64], Wh[64 * 64], W[64 * 64];
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)K, (int)n, 1.0 / (double)n, Y, (int)K, Y, (int)K,
              0.0, R, (int)K);
  HB_CALL(sym_eigen(R, K, lam));
  for (size_t i = 0; i < K; i++) { /* descending, as the SVD HyperSpy uses */
    size_t e = K - 1 - i;
    double s = 1 / sqrt(fmax(lam[e], 0) + 1e-10);
    for (size_t j = 0; j < K; j++) Wh[i * K + j] = R[j * K + e] * s;
  }
  double *X1 = malloc(K * n * sizeof *X1); /* white data, K × n */
  HB_CHECK(X1, HB_EINTERNAL, "memory", "out of memory");
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)K, (int)n, (int)K, 1.0, Wh, (int)K, Y, (int)K, 0.0, X1,
              (int)n);
  hb_rng r;
  hb_rng_seed(&r, (uint64_t)p->seed, UINT64_MAX - 1); /* a stream no pattern uses */
  for (size_t i = 0; i < K * K; i++) W[i] = dec_rng_normal(&r);
  int rc = fastica(X1, K, n, p->bss_max_iter, p->bss_tol, W, iters);
  free(X1);
  HB_CALL(rc);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)K, (int)K, (int)K, 1.0, W, (int)K, Wh, (int)K, 0.0, w,
              (int)K);
  if (ev) { /* HyperSpy: rows sorted by ev @ |wᵀ|, descending */
    double score[64], t[64 * 64];
    size_t order[64];
    for (size_t i = 0; i < K; i++) {
      score[i] = 0;
      for (size_t j = 0; j < K; j++) score[i] += ev[j] * fabs(w[i * K + j]);
      order[i] = i;
    }
    for (size_t i = 1; i < K; i++) /* insertion sort, stable */
      for (size_t j = i; j > 0 && score[order[j]] > score[order[j - 1]]; j--) {
        size_t s = order[j];
        order[j] = order[j - 1];
        order[j - 1] = s;
      }
    for (size_t i = 0; i < K; i++) memcpy(t + i * K, w + order[i] * K, K * sizeof *t);
    memcpy(w, t, K * K * sizeof *w);
  }
  return 0;
}

/* w⁻¹, row-major (LAPACK inverts the column-major view wᵀ; (wᵀ)⁻¹ read
 * row-major is w⁻¹). */
static int invert(const double *w, size_t K, double *inv) {
  int n = (int)K, info = 0, ipiv[64], lwork = 64 * 64;
  double work[64 * 64];
  memcpy(inv, w, K * K * sizeof *inv);
  dgetrf_(&n, &n, inv, &n, ipiv, &info);
  if (!info) dgetri_(&n, inv, &n, ipiv, work, &lwork, &info);
  HB_CHECK(info == 0, HB_EINVALID, "decomposition", "bss: the unmixing matrix is singular (info %d)", info);
  return 0;
}

/* Loadings L (nloc × K) of every rank to rank 0, in pattern order (N × K). */
static int gather_loadings(dec_data *d, const double *L, double **all) {
  size_t K = d->p->k;
  hb_global *g = d->g;
  int n = (int)(d->nloc * (K + 1)), *counts = NULL, *displs = NULL;
  double *mine = malloc((d->nloc ? d->nloc : 1) * (K + 1) * sizeof *mine), *buf = NULL;
  int rc = mine ? 0 : HB_FAIL(HB_EINTERNAL, "memory", "out of memory");
  for (size_t i = 0, r = 0; !rc && i < d->nb; i++)
    for (size_t q = 0; q < d->blk[i].npos; q++, r++) {
      mine[r * (K + 1)] = (double)dec_flat_nav(d, &d->blk[i], q); /* exact below 2^53 */
      memcpy(mine + r * (K + 1) + 1, L + r * K, K * sizeof *L);
    }
  if (g->rank == 0 && !rc) {
    counts = malloc((size_t)g->size * sizeof *counts);
    displs = malloc((size_t)g->size * sizeof *displs);
    buf = malloc(d->N * (K + 1) * sizeof *buf);
    *all = malloc(d->N * K * sizeof **all);
    if (!counts || !displs || !buf || !*all) rc = HB_FAIL(HB_EINTERNAL, "memory", "out of memory");
  }
  rc = hb_agree(g->comm, rc);
  if (!rc) rc = MPI_Gather(&n, 1, MPI_INT, counts, 1, MPI_INT, 0, g->comm) == MPI_SUCCESS ? 0 : HB_EINTERNAL;
  if (!rc && g->rank == 0)
    for (int r = 0, off = 0; r < g->size; r++) displs[r] = off, off += counts[r];
  if (!rc)
    rc = MPI_Gatherv(mine, n, MPI_DOUBLE, buf, counts, displs, MPI_DOUBLE, 0, g->comm) == MPI_SUCCESS ? 0
                                                                                                   : HB_EINTERNAL;
  if (!rc && g->rank == 0)
    for (size_t r = 0; r < d->N; r++)
      memcpy(*all + (size_t)buf[r * (K + 1)] * K, buf + r * (K + 1) + 1, K * sizeof *buf);
  free(mine);
  free(buf);
  free(counts);
  free(displs);
  return rc;
}

int dec_bss(dec_data *d, const double *F, const double *L, const double *ev, double *BF, double *BL, double *w,
            int *iters) {
  const dec_params *p = d->p;
  const hb_input *in = d->g->in;
  size_t K = p->k, M = d->M;
  HB_CHECK(K <= 64, HB_EINVALID, "decomposition", "bss supports up to 64 components, got %zu", K);
  int rc = 0;
  double winv[64 * 64], wt[64 * 64];
  if (d->g->rank == 0 || p->bss_on_loadings) {
    double *C = NULL, *Y = NULL;
    size_t n = 0;
    if (p->bss_on_loadings) {
      double *all = NULL;
      rc = gather_loadings(d, L, &all);
      if (!rc && d->g->rank == 0) { /* K × N */
        C = malloc(d->N * K * sizeof *C);
        if (!C) rc = HB_FAIL(HB_EINTERNAL, "memory", "out of memory");
        for (size_t r = 0; !rc && r < d->N; r++)
          for (size_t c = 0; c < K; c++) C[c * d->N + r] = all[r * K + c];
      }
      free(all);
      if (!rc && d->g->rank == 0) rc = samples(C, K, in->nav_dim, in->shape, in->axes, p->bss_diff_order, &Y, &n);
    } else {
      rc = samples(F, K, in->sig_dim, in->shape + in->nav_dim, in->axes + in->nav_dim, p->bss_diff_order, &Y, &n);
    }
    if (!rc && d->g->rank == 0) rc = unmixing(p, Y, n, K, ev, w, iters);
    if (!rc && d->g->rank == 0) rc = invert(w, K, winv);
    free(C);
    free(Y);
  }
  rc = hb_agree(d->g->comm, rc);
  HB_CALL(rc);
  HB_MPI(MPI_Bcast(w, (int)(K * K), MPI_DOUBLE, 0, d->g->comm));
  HB_MPI(MPI_Bcast(winv, (int)(K * K), MPI_DOUBLE, 0, d->g->comm));
  HB_MPI(MPI_Bcast(iters, 1, MPI_INT, 0, d->g->comm));
  /* On factors: BF = w·F and BL = L·w⁻¹; on loadings: BL = L·wᵀ and
   * BF = (w⁻¹)ᵀ·F (HyperSpy's _unmix_components). */
  const double *mf = w, *ml = winv;
  if (p->bss_on_loadings) {
    for (size_t i = 0; i < K; i++)
      for (size_t j = 0; j < K; j++) wt[i * K + j] = winv[j * K + i];
    mf = wt;
    ml = w;
  }
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)K, (int)M, (int)K, 1.0, mf, (int)K, F, (int)M, 0.0, BF,
              (int)M);
  if (d->nloc)
    cblas_dgemm(CblasRowMajor, CblasNoTrans, p->bss_on_loadings ? CblasTrans : CblasNoTrans, (int)d->nloc, (int)K,
                (int)K, 1.0, L, (int)K, ml, (int)K, 0.0, BL, (int)K);
  /* HyperSpy's reverse_component_criterion="factors": flip a component whose
   * most negative factor value outweighs its largest */
  for (size_t c = 0; c < K; c++) {
    double lo = INFINITY, hi = -INFINITY;
    for (size_t j = 0; j < M; j++)
      if (!isnan(BF[c * M + j])) lo = fmin(lo, BF[c * M + j]), hi = fmax(hi, BF[c * M + j]);
    if (lo < 0 && -lo > hi) {
      for (size_t j = 0; j < M; j++) BF[c * M + j] = -BF[c * M + j];
      for (size_t r = 0; r < d->nloc; r++) BL[r * K + c] = -BL[r * K + c];
    }
  }
  return 0;
}
