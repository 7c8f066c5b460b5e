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
    int rc = HB_FAIL(HB_EIO, path, "cannot read W and H (%s)", hb_h5_error_text());
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

/* Rows per run: a run of X (RUN × M doubles, 512 KiB at M = 4096) stays in
 * a core's L2 cache between its two uses, and the next run is prefetched
 * into L2 during the second.  X·Hᵀ takes H in tiles of TILE columns (16 KiB
 * of H at k = 4), which stay in the L1 cache. */
enum { NMF_RUN = 16, NMF_TILE = 512 };

typedef struct {
  int update_w, solver;
  double *W;
  const double *H, *HHt;
  double *XHt;     /* a run's X Hᵀ (NMF_RUN × k) */
  const float *Hf; /* H in float32, for the single-precision kernels */
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

/* One row of W from its X·Hᵀ and H·Hᵀ; returns cd's violation. */
static double update_row(const iter_arg *a, double *w, const double *xht, size_t K, size_t M) {
  if (a->solver == NMF_CD) return cd_row(w, xht, a->HHt, K);
  if (a->solver == NMF_HALS) {
    dec_hals_w(w, xht, a->HHt, 1, K, M);
    return 0;
  }
  double den[64];
  for (size_t t = 0; t < K; t++) {
    den[t] = 0;
    for (size_t q = 0; q < K; q++) den[t] += w[q] * a->HHt[q * K + t];
  }
  for (size_t t = 0; t < K; t++) w[t] *= xht[t] / (den[t] == 0 ? EPS32 : den[t]);
  return 0;
}

/* The products are plain loops over GCC/Clang vectors, written once in
 * decomposition_nmf_kernels.h and compiled for AVX-512, AVX2 and the
 * baseline, each with vectors of its own register width and the register
 * blocking that its registers hold.  No FMA anywhere (-ffp-contract=off),
 * and every sum is taken in an order that does not depend on the width, so
 * all of them round alike (tests/unit/test_nmf_clones.c).  BLAS would copy
 * (pack) X for products this thin, which costs more than the arithmetic. */
#define INLINE static inline __attribute__((always_inline))

INLINE double xval(const void *x, int single, size_t i) {
  return single ? (double)((const float *)x)[i] : ((const double *)x)[i];
}

typedef double run_fn(const iter_arg *a, size_t K, size_t M, size_t nr, const void *x, double *Wr, double *WtX,
                      const void *next, size_t nnext);
typedef double v8d __attribute__((vector_size(64)));
typedef double v8d_u __attribute__((vector_size(64), aligned(8), may_alias));
typedef double v4d __attribute__((vector_size(32)));
typedef double v4d_u __attribute__((vector_size(32), aligned(8), may_alias));
typedef double v2d __attribute__((vector_size(16)));
typedef double v2d_u __attribute__((vector_size(16), aligned(8), may_alias));
typedef float v16f __attribute__((vector_size(64)));
typedef float v16f_u __attribute__((vector_size(64), aligned(4), may_alias));
typedef float v8f __attribute__((vector_size(32)));
typedef float v8f_u __attribute__((vector_size(32), aligned(4), may_alias));
typedef float v4f __attribute__((vector_size(16)));
typedef float v4f_u __attribute__((vector_size(16), aligned(4), may_alias));

/* Floats widened element by element: GCC makes one vcvtps2pd of that, and
 * four instructions of __builtin_convertvector. */
#define XLDF8(p) ({ const float *p_ = (p); (v8d){p_[0], p_[1], p_[2], p_[3], p_[4], p_[5], p_[6], p_[7]}; })
#define XLDF4(p) ({ const float *p_ = (p); (v4d){p_[0], p_[1], p_[2], p_[3]}; })
#define XLDF2(p) ({ const float *p_ = (p); (v2d){p_[0], p_[1]}; })

/* AVX-512's 32 registers hold the sums of 4 rows × 4 components (X·Hᵀ) or
 * of 32 columns × 4 components (WᵀX); AVX2's 16 and SSE2's 16 (half as
 * wide) hold 1 row and 8 columns. */
#define VEC v8d
#define VEC_U v8d_u
#define W 8
#define XLDF XLDF8
#define KNAME(n) n##_512
#define VECF v16f
#define VECF_U v16f_u
#define WF 16
#define TARGET __attribute__((target("avx512f")))
#define RB_XHT 4
#define NV_WTX 4
#include "decomposition_nmf_kernels.h"
#include "decomposition_nmf_kernels_f32.h"

#define VEC v4d
#define VEC_U v4d_u
#define W 4
#define XLDF XLDF4
#define KNAME(n) n##_256
#define VECF v8f
#define VECF_U v8f_u
#define WF 8
#define TARGET __attribute__((target("avx2")))
#define RB_XHT 1
#define NV_WTX 1
#include "decomposition_nmf_kernels.h"
#include "decomposition_nmf_kernels_f32.h"

#define VEC v2d
#define VEC_U v2d_u
#define W 2
#define XLDF XLDF2
#define KNAME(n) n##_128
#define VECF v4f
#define VECF_U v4f_u
#define WF 4
#define TARGET
#define RB_XHT 1
#define NV_WTX 1
#include "decomposition_nmf_kernels.h"
#include "decomposition_nmf_kernels_f32.h"

int dec_kernel_isa(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") ? 2 : __builtin_cpu_supports("avx2") ? 1 : 0;
}

/* float64 rows: run_d; float32 rows: run_s in single precision, else run_f
 * (widened to float64). */
static run_fn *pick_run(int single, int precision) {
  static run_fn *const fns[3][3] = {
      {run_d_128, run_f_128, run_s_128}, {run_d_256, run_f_256, run_s_256}, {run_d_512, run_f_512, run_s_512}};
  return fns[dec_kernel_isa()][!single ? 0 : precision == PREC_SINGLE ? 2 : 1];
}

/* The randomized SVD's two products on the float32 cache (NNDSVD's SVD; see
 * decomposition_priv.h), by the same kernels: no widened copy of X. */
void dec_xzt(const dec_data *d, size_t i, const double *Zt, size_t l, double *Y) {
  size_t M = d->M, npos = d->blk[i].npos;
  const float *x = d->xs + d->off[i] * M;
  int isa = dec_kernel_isa();
  for (size_t r0 = 0; r0 < npos; r0 += NMF_RUN) {
    size_t nr = npos - r0 < NMF_RUN ? npos - r0 : NMF_RUN;
    (isa == 2 ? xzt_512 : isa ? xzt_256 : xzt_128)(l, M, nr, x + r0 * M, Zt, Y + r0 * l);
  }
}

void dec_ytx(const dec_data *d, size_t i, const double *Y, size_t l, double *B) {
  size_t M = d->M, npos = d->blk[i].npos;
  const float *x = d->xs + d->off[i] * M;
  int isa = dec_kernel_isa();
  memset(B, 0, l * M * sizeof *B);
  for (size_t r0 = 0; r0 < npos; r0 += NMF_RUN) {
    size_t nr = npos - r0 < NMF_RUN ? npos - r0 : NMF_RUN, nnext = npos - r0 - nr < NMF_RUN ? npos - r0 - nr : NMF_RUN;
    const float *xr = x + r0 * M, *next = nnext ? x + (r0 + nr) * M : NULL;
    (isa == 2 ? ytx_512 : isa ? ytx_256 : ytx_128)(l, M, nr, Y + r0 * l, xr, B, next, nnext);
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
  int single = !x; /* read from the float32 cache (dec_nmf passes no x then) */
  const float *xs = single ? d->xs + d->off[i] * M : NULL;
  run_fn *run = pick_run(single, d->p->nmf_precision);
  memset(WtX, 0, K * M * sizeof *WtX);
  for (size_t r0 = 0; r0 < npos; r0 += NMF_RUN) {
    size_t nr = npos - r0 < NMF_RUN ? npos - r0 : NMF_RUN;
    size_t nnext = npos - r0 - nr < NMF_RUN ? npos - r0 - nr : NMF_RUN;
    const void *xr = single ? (const void *)(xs + r0 * M) : (const void *)(x + r0 * M);
    const void *next = single ? (const void *)(xs + (r0 + nr) * M) : (const void *)(x + (r0 + nr) * M);
    viol += run(a, K, M, nr, xr, W + r0 * K, WtX, nnext ? next : NULL, nnext);
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

/* Partial: Σ x and Σ x² of the transformed block, each in eight lanes
 * (one sequential sum would take as long as an iteration's products). */
static void sums_partial(dec_data *d, size_t i, const double *x, double *out, void *arg) {
  (void)arg;
  const float *xs = x ? NULL : d->xs + d->off[i] * d->M;
  size_t n = d->blk[i].npos * d->M, n8 = n - n % 8;
  double s[8] = {0}, q[8] = {0};
  for (size_t j = 0; j < n8; j += 8)
    for (int l = 0; l < 8; l++) {
      double v = xs ? xs[j + (size_t)l] : x[j + (size_t)l];
      s[l] += v, q[l] += v * v;
    }
  out[0] = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  out[1] = ((q[0] + q[1]) + (q[2] + q[3])) + ((q[4] + q[5]) + (q[6] + q[7]));
  for (size_t j = n8; j < n; j++) {
    double v = xs ? xs[j] : x[j];
    out[0] += v, out[1] += v * v;
  }
}

int dec_nmf(dec_data *d, double *W, double *H, int *iters, double *res) {
  const dec_params *p = d->p;
  size_t K = d->p->k, M = d->M, n = K * K + K * M + 1;
  HB_CHECK(K <= 64, HB_EINVALID, "decomposition", "NMF supports up to 64 components, got %zu", K);
  double sums[2];
  int read = !d->xs; /* the passes below read the float32 cache themselves */
  HB_CALL(dec_reduce(d, 2, read, sums_partial, NULL, NULL, 1, sums));
  d->total = sums[0]; /* mean(X) for the inits: of X as normalised */
  d->sumsq = sums[1];
  if (p->init == INIT_CUSTOM) HB_CALL(hb_agree(d->g->comm, init_custom(d, W, H)));
  else if (p->init == INIT_RANDOM) init_random(d, W, H);
  else HB_CALL(init_nndsvd(d, W, H));
  dec_masks_zero(d, W, H); /* masked rows and columns stay 0 under every update */
  d->sumsq = sums[1]; /* the SVD of nndsvd recomputed it in another order */
  double *red = malloc(n * sizeof *red), *HHt = malloc(K * K * sizeof *HHt), *tmp = malloc(K * M * sizeof *tmp);
  double *XHt = malloc(NMF_RUN * K * sizeof *XHt);
  float *Hf = malloc(K * M * sizeof *Hf);
  int rc = !red || !HHt || !tmp || !XHt || !Hf ? HB_FAIL(HB_EINTERNAL, "memory", "out of memory") : 0;
  rc = hb_agree(d->g->comm, rc);
  iter_arg a = {0, p->nmf_solver, W, H, HHt, XHt, Hf};
  double err0 = 0, prev = 0, vinit = 0;
  if (p->nmf_solver != NMF_CD) { /* the initial error, for mu's and hals's stopping rules: a pass of WᵀX */
    if (!rc) rc = dec_reduce(d, n, read, iter_partial, &a, NULL, 1, red);
    if (!rc) err0 = prev = residual(d, red, red + K * K, H, tmp);
  }
  int it = 0;
  a.update_w = 1;
  for (it = 1; it <= p->max_iter && !rc; it++) {
    gram_rows(H, K, M, HHt);
    for (size_t i = 0; i < K * M; i++) Hf[i] = (float)H[i];
    rc = dec_reduce(d, n, read, iter_partial, &a, NULL, 1, red);
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
  free(Hf);
  return rc;
}
