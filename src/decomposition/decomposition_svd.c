/* Truncated SVD of the distributed X.
 *
 * exact: the M × M Gram matrix XᵀX (dsyrk per block, summed over the block
 * tree) and its top k eigenpairs (dsyevr) on rank 0; V is broadcast and each
 * rank forms its loadings X·V.  Nothing N-sized leaves a rank.
 *
 * randomized: Halko, Martinsson and Tropp (2011) with power iterations.  Each
 * power iteration is one pass over X: Z := orth(XᵀX Z), with XᵀX Z summed
 * block by block as (X_b Z)ᵀ X_b, each run of rows read twice while it is in
 * cache (the same span as orthonormalising X Z in between, at one read of X
 * instead of two).  Then the sketch Y = X Z stays distributed by rows and is
 * orthonormalised with CholeskyQR2 (only l × l Gram matrices are reduced);
 * B = QᵀX (l × M) is decomposed on rank 0. */
#include <cblas.h>
#include <dirent.h>
#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "decomposition_priv.h"
#include "hb_error.h"
#include "hb_rng.h"

void openblas_set_num_threads(int);

/* ---- random numbers ------------------------------------------------------- */

/* Box-Muller; one value per call keeps the stream simple to reproduce. */
double dec_rng_normal(hb_rng *r) {
  double u1 = ((double)(hb_rng_next(r) >> 11) + 1) * 0x1.0p-53, u2 = hb_rng_unif(r);
  return sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
}

/* ---- signs ------------------------------------------------------------------ */

/* HyperSpy's (sklearn's svd_flip) rule: the largest-|value| entry of each
 * loading column is positive.  Partial per column: (|value|, value) of the
 * first largest entry; the merge keeps the left one on ties, so the winner is
 * the first in pattern order, as numpy's argmax. */
static void argmax_partial(dec_data *d, size_t i, const double *x, double *out, void *arg) {
  (void)x;
  const double *L = arg;
  size_t K = d->p->k;
  for (size_t c = 0; c < K; c++) out[2 * c] = -1, out[2 * c + 1] = 0;
  for (size_t r = d->off[i]; r < d->off[i + 1]; r++)
    for (size_t c = 0; c < K; c++)
      if (fabs(L[r * K + c]) > out[2 * c]) out[2 * c] = fabs(L[r * K + c]), out[2 * c + 1] = L[r * K + c];
}

static void merge_argmax(void *ctx, void *acc, const void *other) {
  size_t n = *(const size_t *)ctx;
  double *a = acc;
  const double *o = other;
  for (size_t c = 0; c < n; c += 2)
    if (o[c] > a[c]) a[c] = o[c], a[c + 1] = o[c + 1];
}

static int flip_signs(dec_data *d, size_t K, double *Vt, double *L) {
  double *best;
  HB_ALLOC(best, 2 * K);
  int rc = dec_reduce(d, 2 * K, 0, argmax_partial, L, merge_argmax, 1, best);
  for (size_t c = 0; !rc && c < K; c++)
    if (best[2 * c + 1] < 0) {
      for (size_t j = 0; j < d->M; j++) Vt[c * d->M + j] = -Vt[c * d->M + j];
      for (size_t r = 0; r < d->nloc; r++) L[r * K + c] = -L[r * K + c];
    }
  free(best);
  return rc;
}

/* ---- exact: the Gram matrix ---------------------------------------------------- */

/* double: this rank's XᵀX (row-major upper) with dsyrk, its blocks summed in
 * block order into one buffer: one M × M partial per rank instead of one per
 * block (each 128 MB at M = 4096; merging those cost more than the products).
 * The ranks' partials are then summed in rank order, so a run is
 * reproducible bit for bit and other rank counts agree to rounding. */
static void gram_accumulate(dec_data *d, size_t i, const double *x, double *out, void *arg) {
  size_t M = d->M;
  out[0] = 0;
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)M, (int)d->blk[i].npos, 1.0, x, (int)M, 1.0, arg, (int)M);
}

/* single: each block's XᵀX with float32 products and sums (ssyrk and sgemm,
 * twice dsyrk's speed), one GRAM_TILE square at a time, added into the double
 * partial while the tile is in cache.  A block's float32 sums run over its own
 * rows only, so with the tile fixed they do not depend on the rank count.
 * Nor on the thread count: the run.threads threads share out the tiles, each
 * tile one single-threaded OpenBLAS call of a fixed shape.  (With OpenBLAS's
 * own threads, ssyrk rounds a few entries differently by thread count, and
 * a float32 rounding difference is far above the 1e-9 ranks agree to.)
 * The float32 products are of the block less its own column means m:
 * X_bᵀX_b = (X_b - 1mᵀ)ᵀ(X_b - 1mᵀ) + n m mᵀ, the last term in float64, so
 * float32 rounds relative to the block's variation about its mean rather
 * than to the mean, which dominates most data (99% of the benchmark's
 * variance): on the benchmark the noise components' 1 - |cos| against a
 * float64 SVD fell from 8e-6 to 3e-12. */
enum { GRAM_TILE = 1024, GRAM_THREADS = 64 };

typedef struct {
  double *G;
  size_t M, n, ntiles, *tiles; /* tiles: (first row, first column) pairs, largest first */
  float *xs;                   /* this block less its column means, float32 */
  double *mean;                /* the block's column means */
  float *buf[GRAM_THREADS];    /* a tile per thread */
  int nthreads, next;
} gram_single_arg;

/* AVX2 where the CPU has it (twice SSE2's speed here); conversions and
 * sums round alike either way */
__attribute__((target_clones("avx2", "default")))
static void add_floats(double *restrict g, const float *restrict s, double w, const double *restrict m, size_t n) {
  for (size_t i = 0; i < n; i++) g[i] += s[i] + w * m[i];
}

/* f (n × M) = x less its column means, which go to m */
__attribute__((target_clones("avx2", "default")))
static void to_floats(float *restrict f, const double *restrict x, double *restrict m, size_t n, size_t M) {
  for (size_t j = 0; j < M; j++) m[j] = 0;
  for (size_t r = 0; r < n; r++)
    for (size_t j = 0; j < M; j++) m[j] += x[r * M + j];
  for (size_t j = 0; j < M; j++) m[j] /= (double)n;
  for (size_t r = 0; r < n; r++)
    for (size_t j = 0; j < M; j++) f[r * M + j] = (float)(x[r * M + j] - m[j]);
}

static void *gram_tiles(void *arg) {
  gram_single_arg *a = ((void **)arg)[0];
  float *tile = ((void **)arg)[1];
  size_t M = a->M, n = a->n;
  for (;;) {
    size_t t = (size_t)__atomic_fetch_add(&a->next, 1, __ATOMIC_RELAXED);
    if (t >= a->ntiles) return NULL;
    size_t r0 = a->tiles[2 * t], c0 = a->tiles[2 * t + 1];
    size_t nr = M - r0 < GRAM_TILE ? M - r0 : GRAM_TILE, nc = M - c0 < GRAM_TILE ? M - c0 : GRAM_TILE;
    if (c0 == r0)
      cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)nr, (int)n, 1.0f, a->xs + r0, (int)M, 0.0f, tile,
                  (int)nc);
    else
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)nr, (int)nc, (int)n, 1.0f, a->xs + r0, (int)M,
                  a->xs + c0, (int)M, 0.0f, tile, (int)nc);
    for (size_t r = 0, c = 0; r < nr; r++, c += c0 == r0) /* c: where a diagonal tile's upper part starts */
      add_floats(a->G + (r0 + r) * M + c0 + c, tile + r * nc + c, (double)n * a->mean[r0 + r], a->mean + c0 + c,
                 nc - c);
  }
}

static void gram_single(dec_data *d, size_t i, const double *x, double *out, void *arg) {
  gram_single_arg *a = arg;
  out[0] = 0;
  a->n = d->blk[i].npos;
  to_floats(a->xs, x, a->mean, a->n, a->M);
  a->next = 0;
  pthread_t tid[GRAM_THREADS];
  void *targ[GRAM_THREADS][2];
  int started[GRAM_THREADS] = {0};
  for (int t = 0; t < a->nthreads; t++) targ[t][0] = a, targ[t][1] = a->buf[t];
  for (int t = 1; t < a->nthreads; t++) started[t] = !pthread_create(&tid[t], NULL, gram_tiles, targ[t]);
  gram_tiles(targ[0]); /* a thread that did not start leaves its tiles to the others */
  for (int t = 1; t < a->nthreads; t++)
    if (started[t]) pthread_join(tid[t], NULL);
}

/* This rank's partial Gram matrix G (zeroed, row-major upper) in the
 * requested precision. */
static int gram_partial(dec_data *d, double *G) {
  double dummy;
  if (d->p->gram_precision != PREC_SINGLE) return dec_reduce(d, 1, 1, gram_accumulate, G, NULL, 0, &dummy);
  size_t M = d->M, t = M < GRAM_TILE ? M : GRAM_TILE, nt = (M + GRAM_TILE - 1) / GRAM_TILE;
  gram_single_arg a = {.G = G, .M = M, .nthreads = d->g->threads < GRAM_THREADS ? d->g->threads : GRAM_THREADS};
  a.tiles = malloc(nt * (nt + 1) * sizeof *a.tiles);
  a.xs = malloc(d->g->part->max_block_pos * M * sizeof *a.xs);
  a.mean = malloc(M * sizeof *a.mean);
  int ok = a.tiles && a.xs && a.mean;
  for (int i = 0; i < a.nthreads; i++) ok = ok && (a.buf[i] = malloc(t * t * sizeof(float)));
  /* off-diagonal tiles (sgemm) before the diagonal ones (ssyrk, half the work) */
  for (size_t r = 0; r < nt; r++)
    for (size_t c = r + 1; ok && c < nt; c++)
      a.tiles[2 * a.ntiles] = r * GRAM_TILE, a.tiles[2 * a.ntiles++ + 1] = c * GRAM_TILE;
  for (size_t r = 0; ok && r < nt; r++) a.tiles[2 * a.ntiles] = a.tiles[2 * a.ntiles + 1] = r * GRAM_TILE, a.ntiles++;
  int rc = hb_agree(d->g->comm, ok ? 0 : HB_FAIL(HB_EINTERNAL, "memory", "out of memory"));
  openblas_set_num_threads(1);
  if (!rc) rc = dec_reduce(d, 1, 1, gram_single, &a, NULL, 0, &dummy);
  openblas_set_num_threads(d->g->threads);
  free(a.tiles);
  free(a.xs);
  free(a.mean);
  for (int i = 0; i < a.nthreads; i++) free(a.buf[i]);
  return rc;
}

/* rank 0: G += every other rank's G, in rank order, through one chunk. */
static int sum_to_root(dec_data *d, double *G, size_t n) {
  enum { CHUNK = 1 << 20 };
  MPI_Comm comm = d->g->comm;
  if (d->g->rank > 0) {
    for (size_t o = 0; o < n; o += CHUNK)
      HB_MPI(MPI_Send(G + o, (int)(n - o < CHUNK ? n - o : CHUNK), MPI_DOUBLE, 0, 7311, comm));
    return 0;
  }
  double *buf;
  HB_ALLOC(buf, n < CHUNK ? n : CHUNK);
  int rc = 0;
  for (int r = 1; r < d->g->size && !rc; r++)
    for (size_t o = 0; o < n && !rc; o += CHUNK) {
      size_t c = n - o < CHUNK ? n - o : CHUNK;
      rc = MPI_Recv(buf, (int)c, MPI_DOUBLE, r, 7311, comm, MPI_STATUS_IGNORE) == MPI_SUCCESS ? 0 : HB_EINTERNAL;
      for (size_t j = 0; j < c; j++) G[o + j] += buf[j];
    }
  free(buf);
  HB_CHECK(!rc, HB_EINTERNAL, "MPI", "receiving a Gram partial failed");
  return 0;
}

/* ---- exact: the top eigenpairs ------------------------------------------------- */

/* Top K eigenpairs of the symmetric G (row-major upper = column-major lower),
 * descending: Vt rows are eigenvectors, lam eigenvalues clamped at 0. */
static int top_eigen(double *G, size_t M, size_t K, double *Vt, double *lam) {
  int n = (int)M, il = (int)(M - K + 1), iu = (int)M, m = 0, info = 0, lwork = -1, liwork = -1, iw;
  double vl = 0, vu = 0, abstol = 0, wq;
  double *w = malloc(M * sizeof *w), *z = malloc(M * K * sizeof *z);
  int *isuppz = malloc(2 * K * sizeof *isuppz);
  HB_CHECK(w && z && isuppz, HB_EINTERNAL, "memory", "out of memory for the eigensolver");
  dsyevr_("V", "I", "L", &n, G, &n, &vl, &vu, &il, &iu, &abstol, &m, w, z, &n, isuppz, &wq, &lwork, &iw, &liwork,
          &info, 1, 1, 1);
  lwork = (int)wq;
  liwork = iw;
  double *work = malloc((size_t)lwork * sizeof *work);
  int *iwork = malloc((size_t)liwork * sizeof *iwork);
  if (work && iwork)
    dsyevr_("V", "I", "L", &n, G, &n, &vl, &vu, &il, &iu, &abstol, &m, w, z, &n, isuppz, work, &lwork, iwork, &liwork,
            &info, 1, 1, 1);
  int ok = work && iwork && info == 0 && (size_t)m == K;
  for (size_t c = 0; ok && c < K; c++) {
    lam[c] = fmax(w[K - 1 - c], 0);
    memcpy(Vt + c * M, z + (K - 1 - c) * M, M * sizeof *Vt);
  }
  free(w);
  free(z);
  free(isuppz);
  free(work);
  free(iwork);
  HB_CHECK(ok, HB_EINTERNAL, "LAPACK", "dsyevr failed (info %d, %d of %zu eigenvalues)", info, m, K);
  return 0;
}

/* Krylov: block Lanczos with full reorthogonalisation.  A step is one product
 * G·Q_j with a block of KRYLOV_BLOCK columns, which reads G once, where
 * dsyevr's tridiagonalisation sweeps all of G about M times, memory-bound.
 * After every step, Rayleigh-Ritz on the whole basis; it stops when every
 * wanted Ritz pair has ||G y - θ y|| <= KRYLOV_TOL θ_1, that is an eigenvector
 * error below KRYLOV_TOL ||G|| / gap: far below what rounding in the Gram
 * matrix itself costs at the gaps of real spectra.  The start block is
 * seeded, so a run is reproducible.  *converged is 0 when the basis reached
 * its budget first; the caller then uses dsyevr. */
enum { KRYLOV_BLOCK = 16 };
#define KRYLOV_TOL 1e-12

/* Columns of the basis Krylov may use on an M × M matrix with block b. */
static size_t krylov_budget(size_t M, size_t b) {
  size_t n = (M / 4 / b > 4 ? M / 4 / b : 4) * b;
  return n < M / b * b ? n : M / b * b;
}

static size_t krylov_block(size_t M, size_t K) {
  size_t b = K > KRYLOV_BLOCK ? K : KRYLOV_BLOCK;
  return b < M ? b : M;
}

/* Q (M × b, column-major, ld M) := its Householder Q.  *small: some R_ii
 * fell below 1e-3 ref, so that column of Q may lean towards directions
 * projected out before by up to 1e3 times their rounding. */
static int orthonormalise(double *Q, size_t M, size_t b, double ref, double *tau, double *work, int lwork, int *small) {
  int m = (int)M, n = (int)b, info = 0;
  dgeqrf_(&m, &n, Q, &m, tau, work, &lwork, &info);
  *small = 0;
  for (size_t i = 0; i < b; i++) *small |= !(fabs(Q[i * M + i]) >= 1e-3 * ref);
  if (!info) dorgqr_(&m, &n, &n, Q, &m, tau, work, &lwork, &info);
  HB_CHECK(!info, HB_EINTERNAL, "LAPACK", "QR in the Krylov eigensolver failed (info %d)", info);
  return 0;
}

/* Z (M × b) -= Q (Qᵀ Z), twice (classical Gram-Schmidt with reorthogonalisation);
 * C (n × b) receives the first pass's coefficients. */
static void project_out(const double *Q, size_t M, size_t n, double *Z, size_t b, double *C, double *C2) {
  cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, (int)n, (int)b, (int)M, 1.0, Q, (int)M, Z, (int)M, 0.0, C,
              (int)n);
  cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)b, (int)n, -1.0, Q, (int)M, C, (int)n, 1.0, Z,
              (int)M);
  cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, (int)n, (int)b, (int)M, 1.0, Q, (int)M, Z, (int)M, 0.0, C2,
              (int)n);
  cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)b, (int)n, -1.0, Q, (int)M, C2, (int)n, 1.0, Z,
              (int)M);
}

/* Top K eigenpairs of H (n × n, column-major, ld ldh; copied): theta
 * descending, S (n × K) the matching eigenvectors. */
static int ritz(const double *H, size_t ldh, size_t n, size_t K, double *Hc, double *theta, double *S, double *w,
                double *work, int lwork, int *iwork, int liwork, int *isuppz) {
  int nn = (int)n, il = (int)(n - K + 1), iu = (int)n, m = 0, info = 0;
  double vl = 0, vu = 0, abstol = 0;
  for (size_t c = 0; c < n; c++) memcpy(Hc + c * n, H + c * ldh, n * sizeof *Hc);
  dsyevr_("V", "I", "L", &nn, Hc, &nn, &vl, &vu, &il, &iu, &abstol, &m, w, S + n * K, &nn, isuppz, work, &lwork,
          iwork, &liwork, &info, 1, 1, 1);
  HB_CHECK(!info && (size_t)m == K, HB_EINTERNAL, "LAPACK", "dsyevr on the Krylov basis failed (info %d)", info);
  for (size_t c = 0; c < K; c++) {
    theta[c] = w[K - 1 - c];
    memcpy(S + c * n, S + n * K + (K - 1 - c) * n, n * sizeof *S);
  }
  return 0;
}

static int krylov_eigen(const double *G, size_t M, size_t K, double *Vt, double *lam, int *steps, int *converged) {
  size_t b = krylov_block(M, K), nmax = krylov_budget(M, b);
  int lwork = (int)(40 * nmax > 64 * b ? 40 * nmax : 64 * b), liwork = (int)(10 * nmax); /* dsyevr, dgeqrf */
  double *Q = malloc(M * nmax * sizeof *Q), *W = malloc(M * nmax * sizeof *W), *H = malloc(nmax * nmax * sizeof *H),
         *Hc = malloc(nmax * nmax * sizeof *Hc), *S = malloc(nmax * 2 * K * sizeof *S),
         *C = malloc(nmax * b * sizeof *C), *C2 = malloc(nmax * b * sizeof *C2), *Y = malloc(M * K * sizeof *Y),
         *R = malloc(M * K * sizeof *R), *theta = malloc(nmax * sizeof *theta), *w = malloc(nmax * sizeof *w),
         *tau = malloc(b * sizeof *tau), *work = malloc((size_t)lwork * sizeof *work);
  int *iwork = malloc((size_t)liwork * sizeof *iwork), *isuppz = malloc(2 * K * sizeof *isuppz);
  int rc = !Q || !W || !H || !Hc || !S || !C || !C2 || !Y || !R || !theta || !w || !tau || !work || !iwork || !isuppz
               ? HB_FAIL(HB_EINTERNAL, "memory", "out of memory for the Krylov eigensolver")
               : 0;
  *converged = 0;
  *steps = 0;
  if (!rc) {
    hb_rng r;
    hb_rng_seed(&r, 0x6b72796c6f76ULL, 0);
    for (size_t i = 0; i < M * b; i++) Q[i] = dec_rng_normal(&r);
    int small;
    rc = orthonormalise(Q, M, b, 0, tau, work, lwork, &small);
  }
  for (size_t n = b; !rc; n += b) {
    size_t j0 = n - b;
    double *Qj = Q + j0 * M, *Wj = W + j0 * M;
    cblas_dsymm(CblasColMajor, CblasLeft, CblasLower, (int)M, (int)b, 1.0, G, (int)M, Qj, (int)M, 0.0, Wj, (int)M);
    ++*steps;
    /* H's new block column Q[:, :n]ᵀ W_j, mirrored into the new block row */
    cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, (int)n, (int)b, (int)M, 1.0, Q, (int)M, Wj, (int)M, 0.0,
                H + j0 * nmax, (int)nmax);
    for (size_t c = j0; c < n; c++)
      for (size_t i = 0; i < c; i++) {
        double v = i >= j0 ? 0.5 * (H[c * nmax + i] + H[i * nmax + c]) : H[c * nmax + i];
        H[c * nmax + i] = H[i * nmax + c] = v;
      }
    rc = ritz(H, nmax, n, K, Hc, theta, S, w, work, lwork, iwork, liwork, isuppz); /* n >= b >= K */
    if (rc) break;
    /* Ritz vectors Y = Q s and residuals G y - θ y = W s - θ y */
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)K, (int)n, 1.0, Q, (int)M, S, (int)n, 0.0, Y,
                (int)M);
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)K, (int)n, 1.0, W, (int)M, S, (int)n, 0.0, R,
                (int)M);
    double worst = 0;
    for (size_t c = 0; c < K; c++) {
      cblas_daxpy((int)M, -theta[c], Y + c * M, 1, R + c * M, 1);
      worst = fmax(worst, cblas_dnrm2((int)M, R + c * M, 1));
    }
    if (worst <= KRYLOV_TOL * fabs(theta[0])) {
      *converged = 1;
      for (size_t c = 0; c < K; c++) {
        lam[c] = fmax(theta[c], 0);
        memcpy(Vt + c * M, Y + c * M, M * sizeof *Vt);
      }
      break;
    }
    if (n + b > nmax) break;
    /* the next block: W_j orthogonalised against the basis and
     * orthonormalised.  Where little of W_j was new (converged directions,
     * or the space is nearly invariant), its normalised remainder is mostly
     * rounding: orthogonalise it once more.  Still little: no new
     * directions left, and dsyevr decides. */
    double *Z = Q + n * M, ref = 0;
    memcpy(Z, Wj, M * b * sizeof *Z);
    for (size_t c = 0; c < b; c++) ref = fmax(ref, cblas_dnrm2((int)M, Wj + c * M, 1));
    project_out(Q, M, n, Z, b, C, C2);
    int small = 0;
    rc = orthonormalise(Z, M, b, ref, tau, work, lwork, &small);
    if (!rc && small) {
      project_out(Q, M, n, Z, b, C, C2);
      rc = orthonormalise(Z, M, b, 1, tau, work, lwork, &small);
    }
    if (!rc && small) break;
  }
  free(Q);
  free(W);
  free(H);
  free(Hc);
  free(S);
  free(C);
  free(C2);
  free(Y);
  free(R);
  free(theta);
  free(w);
  free(tau);
  free(work);
  free(iwork);
  free(isuppz);
  return rc;
}

/* The eigensolver for the local Gram matrix: Krylov where it is cheap (M
 * large, K small against it), dsyevr otherwise. */
static int local_eigensolver(const dec_data *d, size_t K) {
  if (d->p->eigensolver != EIG_AUTO) return d->p->eigensolver;
  size_t M = d->M;
  return M >= 1024 && krylov_block(M, K) * 16 <= M ? EIG_KRYLOV : EIG_DSYEVR;
}

static void loadings_partial(dec_data *d, size_t i, const double *x, double *out, void *arg) {
  const double *Vt = ((void **)arg)[0];
  double *L = ((void **)arg)[1];
  size_t K = d->p->k;
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)d->blk[i].npos, (int)K, (int)d->M, 1.0, x, (int)d->M, Vt,
              (int)d->M, 0.0, L + d->off[i] * K, (int)K);
  out[0] = 0;
}

/* Collective: a barrier that sleeps instead of spinning, so a waiting rank
 * leaves its core to rank 0's eigensolver. */
static int quiet_barrier(MPI_Comm comm) {
  MPI_Request req;
  HB_MPI(MPI_Ibarrier(comm, &req));
  for (int done = 0;;) {
    HB_MPI(MPI_Test(&req, &done, MPI_STATUS_IGNORE));
    if (done) return 0;
    nanosleep(&(struct timespec){0, 1000000}, NULL);
  }
}

/* Rank 0's threads and the CPU masks they had before borrow_cores. */
enum { MAX_TASKS = 256 };
typedef struct {
  int n;
  pid_t tid[MAX_TASKS];
  cpu_set_t mask[MAX_TASKS];
} borrowed;

/* Collective: the number of ranks on rank 0's node, whose cores are idle
 * while rank 0 runs the eigensolver.  mpirun binds each rank to its own core
 * and OpenBLAS's threads inherit that, so rank 0 also lets every thread of
 * its own run on the union of the node's masks until return_cores. */
static int borrow_cores(MPI_Comm comm, int rank, borrowed *b) {
  MPI_Comm node;
  int n = 1;
  b->n = 0;
  if (MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) != MPI_SUCCESS) return 1;
  MPI_Comm_size(node, &n);
  cpu_set_t mine, all;
  CPU_ZERO(&mine);
  CPU_ZERO(&all);
  sched_getaffinity(0, sizeof mine, &mine);
  int ok = MPI_Reduce(&mine, &all, sizeof mine, MPI_BYTE, MPI_BOR, 0, node) == MPI_SUCCESS;
  MPI_Comm_free(&node);
  DIR *dir = ok && rank == 0 && n > 1 ? opendir("/proc/self/task") : NULL;
  for (struct dirent *e; dir && (e = readdir(dir)) && b->n < MAX_TASKS;) {
    pid_t tid = (pid_t)atoi(e->d_name);
    if (tid > 0 && !sched_getaffinity(tid, sizeof b->mask[b->n], &b->mask[b->n]) &&
        !sched_setaffinity(tid, sizeof all, &all))
      b->tid[b->n++] = tid;
  }
  if (dir) closedir(dir);
  return n;
}

static void return_cores(const borrowed *b) {
  for (int i = 0; i < b->n; i++) sched_setaffinity(b->tid[i], sizeof b->mask[i], &b->mask[i]);
}

/* Every rank's partial Gram matrix; rank 0 sums them and finds the top K
 * eigenpairs, with OpenBLAS threads for its node's ranks while they sleep. */
static int svd_exact_local(dec_data *d, size_t K, double *Vt, double *s) {
  size_t M = d->M;
  double *G = calloc(M * M, sizeof *G);
  int rc = !G ? HB_FAIL(HB_EINTERNAL, "memory", "out of memory for the %zu x %zu Gram matrix", M, M) : 0;
  HB_CALL(hb_agree(d->g->comm, rc));
  rc = gram_partial(d, G);
  if (!rc) rc = hb_agree(d->g->comm, sum_to_root(d, G, M * M));
  borrowed b; /* on the stack: an allocation failing here would leave the other ranks in borrow_cores */
  int share = borrow_cores(d->g->comm, d->g->rank, &b), info[2] = {local_eigensolver(d, K), 0};
  if (!rc && d->g->rank == 0) {
    d->sumsq = 0;
    for (size_t j = 0; j < M; j++) d->sumsq += G[j * M + j];
    openblas_set_num_threads(d->g->threads * share);
    int converged = 0;
    if (info[0] == EIG_KRYLOV) rc = krylov_eigen(G, M, K, Vt, s, &info[1], &converged);
    if (!rc && !converged) info[0] = EIG_DSYEVR, rc = top_eigen(G, M, K, Vt, s);
    openblas_set_num_threads(d->g->threads);
    return_cores(&b);
  }
  free(G);
  HB_CALL(quiet_barrier(d->g->comm));
  HB_CALL(hb_agree(d->g->comm, rc));
  HB_MPI(MPI_Bcast(Vt, (int)(K * M), MPI_DOUBLE, 0, d->g->comm));
  HB_MPI(MPI_Bcast(s, (int)K, MPI_DOUBLE, 0, d->g->comm));
  HB_MPI(MPI_Bcast(&d->sumsq, 1, MPI_DOUBLE, 0, d->g->comm));
  HB_MPI(MPI_Bcast(info, 2, MPI_INT, 0, d->g->comm));
  d->eig_used = info[0];
  d->eig_steps = info[1];
  return 0;
}

static int svd_exact(dec_data *d, size_t K, double *Vt, double *s, double *L, int distributed) {
  if (distributed) d->eig_used = EIG_PDSYEVR;
  HB_CALL(distributed ? dec_gram_eigen_scalapack(d, K, Vt, s) : svd_exact_local(d, K, Vt, s));
  for (size_t c = 0; c < K; c++) s[c] = sqrt(s[c]);
  double dummy;
  void *arg[2] = {Vt, L};
  return dec_reduce(d, 1, 1, loadings_partial, arg, NULL, 0, &dummy);
}

/* ---- randomized ------------------------------------------------------------------ */

typedef struct {
  size_t l;
  const double *Zt; /* l × M: Y = X Ztᵀ */
  double *Y;        /* nloc × l, local rows */
  int fresh;        /* sketch: form Y from X in this pass; qtx: also sum ||X||² */
  float *Zf, *Tf, *Bf; /* power iterations on the float32 cache: Zt, a run's X Ztᵀ, its (X Ztᵀ)ᵀ X */
  int avx512;          /* ... by power_run_512, else SGEMM */
} sketch_arg;

/* Y_b = X_b Ztᵀ (when fresh), and the partial Y_bᵀY_b for CholeskyQR. */
static void sketch_partial(dec_data *d, size_t i, const double *x, double *out, void *arg) {
  sketch_arg *a = arg;
  size_t l = a->l, npos = d->blk[i].npos;
  double *Y = a->Y + d->off[i] * l;
  if (a->fresh && x)
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)npos, (int)l, (int)d->M, 1.0, x, (int)d->M, a->Zt,
                (int)d->M, 0.0, Y, (int)l);
  else if (a->fresh)
    dec_xzt(d, i, a->Zt, l, Y); /* the float32 cache: no widened copy for BLAS */
  memset(out, 0, l * l * sizeof *out);
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)l, (int)npos, 1.0, Y, (int)l, 0.0, out, (int)l);
}

/* Y := Y R⁻¹ with G = RᵀR (row-major upper R from dpotrf on the column-major
 * lower triangle).  A rank-deficient sketch gets a small shift (shifted
 * CholeskyQR), made exact by the passes that follow. */
static int chol_apply(dec_data *d, size_t l, double *G, double *Y) {
  int n = (int)l, info = 0;
  double tr = 0;
  for (size_t j = 0; j < l; j++) tr += G[j * l + j];
  double *Gc = malloc(l * l * sizeof *Gc);
  HB_CHECK(Gc, HB_EINTERNAL, "memory", "out of memory");
  memcpy(Gc, G, l * l * sizeof *Gc);
  dpotrf_("L", &n, Gc, &n, &info, 1);
  if (info) {
    memcpy(Gc, G, l * l * sizeof *Gc);
    for (size_t j = 0; j < l; j++) Gc[j * l + j] += 1e-13 * tr + 1e-300;
    dpotrf_("L", &n, Gc, &n, &info, 1);
  }
  if (!info && d->nloc)
    cblas_dtrsm(CblasRowMajor, CblasRight, CblasUpper, CblasNoTrans, CblasNonUnit, (int)d->nloc, n, 1.0, Gc, n, Y, n);
  free(Gc);
  HB_CHECK(!info, HB_EINTERNAL, "LAPACK", "dpotrf failed on the sketch's Gram matrix (info %d)", info);
  return 0;
}

/* Q = orthonormal basis of Y (distributed): CholeskyQR twice (three times if
 * the first needed a shift). */
static int cholqr2(dec_data *d, size_t l, double *Y, int first_read, const double *Zt) {
  double *G;
  HB_ALLOC(G, l * l);
  int rc = 0;
  for (int pass = 0; pass < 3 && !rc; pass++) {
    sketch_arg a = {.l = l, .Zt = Zt, .Y = Y, .fresh = pass == 0 && first_read};
    rc = dec_reduce(d, l * l, a.fresh && !d->xs, sketch_partial, &a, NULL, 1, G);
    if (rc) break;
    /* stop once R is the identity to rounding: Q is orthonormal */
    double off = 0;
    for (size_t i = 0; i < l; i++)
      for (size_t j = i; j < l; j++) off = fmax(off, fabs(G[i * l + j] - (i == j)));
    if (pass > 0 && off < 1e-12) break;
    rc = hb_agree(d->g->comm, chol_apply(d, l, G, Y));
  }
  free(G);
  return rc;
}

/* Partial of Qᵀ X (l × M), plus ||X_b||² in the last slot (the last pass's
 * only: a sequential sum costs about as much as the product). */
static void qtx_partial(dec_data *d, size_t i, const double *x, double *out, void *arg) {
  sketch_arg *a = arg;
  size_t l = a->l, M = d->M, npos = d->blk[i].npos;
  const float *xs = x ? NULL : d->xs + d->off[i] * M;
  if (x)
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)l, (int)M, (int)npos, 1.0, a->Y + d->off[i] * l, (int)l,
                x, (int)M, 0.0, out, (int)M);
  else
    dec_ytx(d, i, a->Y + d->off[i] * l, l, out);
  double ss = 0, s8[8] = {0};
  size_t n = a->fresh ? npos * M : 0, n8 = xs ? n - n % 8 : 0;
  for (size_t j = 0; j < n8; j += 8) /* the float32 cache (NMF's init): in eight lanes, like its kernels */
    for (int q = 0; q < 8; q++) s8[q] += (double)xs[j + q] * xs[j + q];
  ss = ((s8[0] + s8[1]) + (s8[2] + s8[3])) + ((s8[4] + s8[5]) + (s8[6] + s8[7]));
  for (size_t j = n8; j < n; j++) ss += x ? x[j] * x[j] : (double)xs[j] * xs[j];
  out[l * M] = ss;
}

/* ---- the power iterations' products, AVX-512 ------------------------------------- */

/* One run of nr float32 rows of X: T (nr × l) = X Zᵀ, then B (l × M, double)
 * += Tᵀ X, each run's sums kept in float32 registers.  At l = 20 OpenBLAS's
 * SGEMM copies (packs) the run once for each product, which took as long as
 * the arithmetic; these read it in place, the second time from cache: 0.038
 * against 0.053 s a pass over 8192 × 4096 on one core, with a third of SGEMM's
 * largest error against double sums (runs of 64 rows against 256). */
#define PR_TARGET __attribute__((target("avx512f")))
#define PR_INLINE static inline __attribute__((always_inline, target("avx512f")))

PR_INLINE __mmask16 tail_mask(size_t left) { return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1); }

/* a[i][q] += x_i · z_q over the whole vectors below k1, then (m not 0) the
 * masked vector at k1 */
PR_INLINE void dots_4x4(const float *const *x, const float *const *z, size_t k1, __mmask16 m, __m512 a[4][4]) {
  for (size_t k = 0; k < k1; k += 16) {
    __m512 x0 = _mm512_loadu_ps(x[0] + k), x1 = _mm512_loadu_ps(x[1] + k), x2 = _mm512_loadu_ps(x[2] + k),
           x3 = _mm512_loadu_ps(x[3] + k);
    for (int q = 0; q < 4; q++) {
      __m512 zq = _mm512_loadu_ps(z[q] + k);
      a[0][q] = _mm512_fmadd_ps(x0, zq, a[0][q]);
      a[1][q] = _mm512_fmadd_ps(x1, zq, a[1][q]);
      a[2][q] = _mm512_fmadd_ps(x2, zq, a[2][q]);
      a[3][q] = _mm512_fmadd_ps(x3, zq, a[3][q]);
    }
  }
  if (m) {
    __m512 xv[4];
    for (int i = 0; i < 4; i++) xv[i] = _mm512_maskz_loadu_ps(m, x[i] + k1);
    for (int q = 0; q < 4; q++) {
      __m512 zq = _mm512_maskz_loadu_ps(m, z[q] + k1);
      for (int i = 0; i < 4; i++) a[i][q] = _mm512_fmadd_ps(xv[i], zq, a[i][q]);
    }
  }
}

/* a[q][v] += Σ_r t[r][q] x[r][j + 16v ...] over the run's rows; a missing
 * component (past l) adds zeros */
#define AXPY_4x4(LOAD)                                                                      \
  for (size_t r = 0; r < nr; r++) {                                                         \
    const float *xr = X + r * M + j, *t = T + r * l + c;                                    \
    __m512 x0 = LOAD(0), x1 = LOAD(1), x2 = LOAD(2), x3 = LOAD(3);                          \
    for (int q = 0; q < 4; q++) {                                                           \
      __m512 tq = _mm512_set1_ps(t[tq_at[q]] * tq_on[q]);                                   \
      a[q][0] = _mm512_fmadd_ps(tq, x0, a[q][0]);                                           \
      a[q][1] = _mm512_fmadd_ps(tq, x1, a[q][1]);                                           \
      a[q][2] = _mm512_fmadd_ps(tq, x2, a[q][2]);                                           \
      a[q][3] = _mm512_fmadd_ps(tq, x3, a[q][3]);                                           \
    }                                                                                       \
  }
#define LOAD_FULL(v) _mm512_loadu_ps(xr + 16 * (v))
#define LOAD_MASKED(v) _mm512_maskz_loadu_ps(m[v], xr + 16 * (v))

PR_TARGET static void power_run_512(size_t nr, size_t l, size_t M, const float *X, const float *Z, float *T, double *B) {
  size_t M16 = M - M % 16;
  __mmask16 mt = (__mmask16)((1u << (M % 16)) - 1);
  for (size_t r = 0; r < nr; r += 4)
    for (size_t c = 0; c < l; c += 4) {
      const float *x[4], *z[4];
      for (size_t i = 0; i < 4; i++) x[i] = X + (r + (r + i < nr ? i : 0)) * M;
      for (size_t q = 0; q < 4; q++) z[q] = Z + (c + (c + q < l ? q : 0)) * M;
      __m512 a[4][4];
      for (int i = 0; i < 4; i++)
        for (int q = 0; q < 4; q++) a[i][q] = _mm512_setzero_ps();
      dots_4x4(x, z, M16, mt, a);
      for (size_t i = 0; i < 4 && r + i < nr; i++)
        for (size_t q = 0; q < 4 && c + q < l; q++) T[(r + i) * l + c + q] = _mm512_reduce_add_ps(a[i][q]);
    }
  for (size_t j = 0; j < M; j += 64)
    for (size_t c = 0; c < l; c += 4) {
      size_t tq_at[4];
      float tq_on[4];
      for (size_t q = 0; q < 4; q++) tq_at[q] = c + q < l ? q : 0, tq_on[q] = c + q < l ? 1.0f : 0.0f;
      __m512 a[4][4];
      for (int q = 0; q < 4; q++)
        for (int v = 0; v < 4; v++) a[q][v] = _mm512_setzero_ps();
      if (j + 64 <= M) {
        AXPY_4x4(LOAD_FULL)
      } else {
        __mmask16 m[4];
        for (int v = 0; v < 4; v++) m[v] = j + 16 * v < M ? tail_mask(M - j - 16 * v) : 0;
        AXPY_4x4(LOAD_MASKED)
      }
      for (size_t q = 0; q < 4 && c + q < l; q++)
        for (int v = 0; v < 4; v++) {
          float s[16];
          _mm512_storeu_ps(s, a[q][v]);
          double *b = B + (c + q) * M + j + 16 * v;
          for (size_t e = 0; e < 16 && j + 16 * v + e < M; e++) b[e] += s[e];
        }
    }
}
#undef AXPY_4x4
#undef LOAD_FULL
#undef LOAD_MASKED

/* A power iteration's partial (X_b Ztᵀ)ᵀ X_b (l × M), with Y's rows of the
 * block as scratch: in runs of rows that stay in cache.  On the float32
 * cache in single precision (power_run_512, or SGEMM: twice DGEMM's rate on
 * the same bytes),
 * each run's product added into the double partial: the power iterations
 * only steer the subspace, which the last passes (in double) make exact to
 * the data's float32 values. */
#define POWER_RUN 16
#define POWER_RUN_SINGLE 256
#define POWER_RUN_OWN 64 /* power_run_512: at most POWER_RUN_SINGLE */
static void power_partial(dec_data *d, size_t i, const double *x, double *out, void *arg) {
  sketch_arg *a = arg;
  size_t l = a->l, M = d->M, npos = d->blk[i].npos;
  double *T = a->Y + d->off[i] * l;
  if (!x) {
    const float *xs = dec_rows_single(d, i);
    memset(out, 0, l * M * sizeof *out);
    if (a->avx512) {
      for (size_t r0 = 0; r0 < npos; r0 += POWER_RUN_OWN)
        power_run_512(npos - r0 < POWER_RUN_OWN ? npos - r0 : POWER_RUN_OWN, l, M, xs + r0 * M, a->Zf, a->Tf, out);
      return;
    }
    for (size_t r0 = 0; r0 < npos; r0 += POWER_RUN_SINGLE) {
      int nr = (int)(npos - r0 < POWER_RUN_SINGLE ? npos - r0 : POWER_RUN_SINGLE);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, (int)l, (int)M, 1.0f, xs + r0 * M, (int)M, a->Zf,
                  (int)M, 0.0f, a->Tf, (int)l);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)l, (int)M, nr, 1.0f, a->Tf, (int)l, xs + r0 * M,
                  (int)M, 0.0f, a->Bf, (int)M);
      for (size_t j = 0; j < l * M; j++) out[j] += a->Bf[j];
    }
    return;
  }
  for (size_t r0 = 0; r0 < npos; r0 += POWER_RUN) {
    int nr = (int)(npos - r0 < POWER_RUN ? npos - r0 : POWER_RUN);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, (int)l, (int)M, 1.0, x + r0 * M, (int)M, a->Zt, (int)M,
                0.0, T + r0 * l, (int)l);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)l, (int)M, nr, 1.0, T + r0 * l, (int)l, x + r0 * M,
                (int)M, r0 ? 1.0 : 0.0, out, (int)M);
  }
}

/* Orthonormal rows of Zt (l × M), identically on every rank. */
static int orthonormal_rows(double *Zt, size_t l, size_t M) {
  int m = (int)M, n = (int)l, info = 0, lwork = -1;
  double wq, *tau = malloc(l * sizeof *tau);
  HB_CHECK(tau, HB_EINTERNAL, "memory", "out of memory");
  dgeqrf_(&m, &n, Zt, &m, tau, &wq, &lwork, &info);
  lwork = (int)wq;
  double *work = malloc((size_t)lwork * sizeof *work);
  if (work) dgeqrf_(&m, &n, Zt, &m, tau, work, &lwork, &info);
  if (work && !info) dorgqr_(&m, &n, &n, Zt, &m, tau, work, &lwork, &info);
  free(work);
  free(tau);
  HB_CHECK(work && !info, HB_EINTERNAL, "LAPACK", "QR of the sketch failed (info %d)", info);
  return 0;
}

/* SVD of B (l × M, row-major) on rank 0: B's right singular vectors go to
 * Vt rows, its left ones to Uh (l × l row-major, column c for component c). */
static int small_svd(double *B, size_t l, size_t M, double *sv, double *Vfull, double *Uh) {
  int m = (int)M, n = (int)l, info = 0, lwork = -1;
  double wq;
  int *iwork = malloc(8 * l * sizeof *iwork);
  HB_CHECK(iwork, HB_EINTERNAL, "memory", "out of memory");
  /* B row-major is Bᵀ column-major (M × l): Bᵀ = U Σ VTᵀ, so B = VT Σ Uᵀ */
  dgesdd_("S", &m, &n, B, &m, sv, Vfull, &m, Uh, &n, &wq, &lwork, iwork, &info, 1);
  lwork = (int)wq;
  double *work = malloc((size_t)lwork * sizeof *work);
  if (work) dgesdd_("S", &m, &n, B, &m, sv, Vfull, &m, Uh, &n, work, &lwork, iwork, &info, 1);
  free(work);
  free(iwork);
  HB_CHECK(work && !info, HB_EINTERNAL, "LAPACK", "dgesdd failed (info %d)", info);
  return 0;
}

static int svd_randomized(dec_data *d, size_t K, double *Vt, double *s, double *L) {
  const dec_params *p = d->p;
  size_t M = d->M, lim = d->N < M ? d->N : M, l = K + (size_t)p->oversampling;
  if (l > lim) l = lim;
  double *Zt = malloc(l * M * sizeof *Zt), *Y = malloc((d->nloc ? d->nloc : 1) * l * sizeof *Y);
  double *B = malloc((l * M + 1) * sizeof *B), *sv = malloc(l * sizeof *sv), *Uh = malloc(l * l * sizeof *Uh);
  int rc = !Zt || !Y || !B || !sv || !Uh ? HB_FAIL(HB_EINTERNAL, "memory", "out of memory") : 0;
  rc = hb_agree(d->g->comm, rc);
  if (!rc) { /* Ω, the same on every rank */
    hb_rng r;
    hb_rng_seed(&r, (uint64_t)p->seed, 0);
    for (size_t i = 0; i < l * M; i++) Zt[i] = dec_rng_normal(&r);
  }
  sketch_arg a = {l, Zt, Y, 0, NULL, NULL, NULL, dec_kernel_isa() == 2};
  int read = d->xs ? DEC_READ_NONE : DEC_READ_DOUBLE; /* else the partials read the float32 cache */
  /* the power iterations in SGEMM on float32 rows: cached, or read again */
  int power_read = d->xs ? DEC_READ_NONE : d->xs_block ? DEC_READ_SINGLE : DEC_READ_DOUBLE;
  if (power_read != DEC_READ_DOUBLE && !rc) {
    a.Zf = malloc(l * M * sizeof *a.Zf), a.Bf = malloc(l * M * sizeof *a.Bf);
    a.Tf = malloc(POWER_RUN_SINGLE * l * sizeof *a.Tf);
    rc = !a.Zf || !a.Bf || !a.Tf ? HB_FAIL(HB_EINTERNAL, "memory", "out of memory") : 0;
    rc = hb_agree(d->g->comm, rc);
  }
  for (int it = 0; it < p->n_iter && !rc; it++) { /* Z := orth(XᵀX Z), one pass each */
    for (size_t j = 0; a.Zf && j < l * M; j++) a.Zf[j] = (float)Zt[j];
    rc = dec_reduce(d, l * M, power_read, power_partial, &a, NULL, 1, B);
    if (!rc && power_read == DEC_READ_SINGLE && p->centre == CENTRE_NAVIGATION) {
      /* the blocks were read uncentred: Z Xcᵀ Xc = Z XᵀX − n (Z μ) μᵀ, Xc = X less
       * the mean μ of the n unmasked rows (masked rows and columns are 0 in both) */
      for (size_t j = 0; j < l; j++) {
        double zm = 0;
        for (size_t c = 0; c < M; c++) zm += Zt[j * M + c] * d->mean[c];
        for (size_t c = 0; c < M; c++) B[j * M + c] -= (double)p->n_used * zm * d->mean[c];
      }
    }
    if (!rc) {
      memcpy(Zt, B, l * M * sizeof *Zt);
      rc = hb_agree(d->g->comm, orthonormal_rows(Zt, l, M));
    }
  }
  if (!rc) rc = cholqr2(d, l, Y, 1, Zt); /* Q = orth(X Z) */
  a.fresh = 1;
  if (!rc) rc = dec_reduce(d, l * M + 1, read, qtx_partial, &a, NULL, 0, B);
  if (!rc) {
    if (d->g->rank == 0) {
      d->sumsq = B[l * M];
      rc = small_svd(B, l, M, sv, Zt, Uh); /* Zt now holds the right singular vectors */
    }
    rc = hb_agree(d->g->comm, rc);
  }
  if (!rc) {
    HB_MPI(MPI_Bcast(Zt, (int)(K * M), MPI_DOUBLE, 0, d->g->comm));
    HB_MPI(MPI_Bcast(sv, (int)l, MPI_DOUBLE, 0, d->g->comm));
    HB_MPI(MPI_Bcast(Uh, (int)(l * l), MPI_DOUBLE, 0, d->g->comm));
    HB_MPI(MPI_Bcast(&d->sumsq, 1, MPI_DOUBLE, 0, d->g->comm));
    memcpy(Vt, Zt, K * M * sizeof *Vt);
    memcpy(s, sv, K * sizeof *s);
    /* U·S = Q Ũ Σ: Ũ(j, c) is Uh[j * l + c] (column-major VT of Bᵀ) */
    if (d->nloc)
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)d->nloc, (int)K, (int)l, 1.0, Y, (int)l, Uh, (int)l,
                  0.0, L, (int)K);
    for (size_t r = 0; r < d->nloc; r++)
      for (size_t c = 0; c < K; c++) L[r * K + c] *= sv[c];
  }
  free(a.Zf), free(a.Tf), free(a.Bf);
  free(Zt);
  free(Y);
  free(B);
  free(sv);
  free(Uh);
  return rc;
}

/* exact where the Gram matrix and its eigensolve cost less than about four
 * randomized passes (2·N·M·l flops each).  NMF's NNDSVD: randomized, as
 * sklearn's, and the same at any rank count (exact sums each rank's Gram
 * matrix before the ranks', and NMF's float32 products would carry that
 * last-bit difference far). */
int dec_pick_solver(const dec_data *d, size_t K) {
  if (d->p->algorithm == DEC_NMF) return SVD_RANDOMIZED;
  if (d->p->svd_solver != SVD_AUTO) return d->p->svd_solver;
  double N = (double)d->N, M = (double)d->M, l = (double)(K + (size_t)d->p->oversampling);
  return N * M * M + 4.0 / 3.0 * M * M * M <= 4 * 2 * N * M * l ? SVD_EXACT : SVD_RANDOMIZED;
}

/* auto: distributed once the Gram matrix passes GRAM_LOCAL_MAX bytes, which
 * rank 0 would otherwise hold (twice, with dsyevr's copy) on top of its rows.
 * Below that, rank 0's dsyevr: at M = 4096 on 2 ranks it beat pdsyevr in
 * every run we made (docs/performance.md). */
#define GRAM_LOCAL_MAX (2.0 * (1u << 30))
int dec_gram_where(const dec_data *d) {
  if (d->p->gram_solver != GRAM_AUTO) return d->p->gram_solver;
  return (double)d->M * (double)d->M * sizeof(double) > GRAM_LOCAL_MAX ? GRAM_SCALAPACK : GRAM_LOCAL;
}

int dec_svd(dec_data *d, size_t K, double *Vt, double *s, double *L, int *solver) {
  *solver = dec_pick_solver(d, K);
  HB_CALL(*solver == SVD_EXACT ? svd_exact(d, K, Vt, s, L, dec_gram_where(d) == GRAM_SCALAPACK)
                               : svd_randomized(d, K, Vt, s, L));
  return flip_signs(d, K, Vt, L);
}
