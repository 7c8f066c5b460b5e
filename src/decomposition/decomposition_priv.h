/* Shared by the decomposition files: the unfolded data X (N patterns × M
 * pixels, rows distributed by block as the engine partitions them) and the
 * passes over it.  Every sum over patterns is a per-block partial combined
 * over hb_tree in block order, so results do not depend on the rank count. */
#ifndef HB_DECOMPOSITION_PRIV_H
#define HB_DECOMPOSITION_PRIV_H

#include <stddef.h>
#include <stdint.h>

#include "hb_kernel.h"
#include "hb_rng.h"

enum { DEC_SVD, DEC_NMF };
enum { CENTRE_NONE, CENTRE_NAVIGATION, CENTRE_SIGNAL };
enum { SVD_AUTO, SVD_EXACT, SVD_RANDOMIZED };
enum { GRAM_AUTO, GRAM_LOCAL, GRAM_SCALAPACK }; /* exact: where the Gram eigenproblem is solved */
enum { PREC_AUTO, PREC_DOUBLE, PREC_SINGLE };    /* exact: the products of each block's XᵀX */
enum { EIG_AUTO, EIG_DSYEVR, EIG_KRYLOV, EIG_PDSYEVR }; /* exact: the eigensolver of the Gram matrix */
enum { NMF_CD, NMF_MU, NMF_HALS };
enum { INIT_NNDSVDA, INIT_NNDSVD, INIT_RANDOM, INIT_CUSTOM };
enum { CACHE_AUTO, CACHE_MEMORY, CACHE_DISK };

typedef struct {
  int algorithm, centre, poisson, svd_solver, nmf_solver, init, cache;
  int gram_solver, gram_precision, eigensolver; /* gram_precision resolved at plan time */
  int nmf_precision;                           /* PREC_SINGLE or PREC_DOUBLE */
  size_t k;
  int n_iter, oversampling, max_iter;
  long long seed;
  double tol;
  char init_file[4096];     /* resolved */
  char init_text[4096];     /* as written, for messages */
  char init_where[1200];    /* where init_file errors point */
  unsigned char *nav_mask;  /* N flags, 1 = excluded (HyperSpy's True); NULL: no mask */
  unsigned char *sig_mask;  /* M flags, likewise */
  size_t n_used, m_used;    /* unmasked patterns and pixels */
  int bss, bss_on_loadings, bss_diff_order, bss_max_iter;
  int learning_results;     /* also the linked signal with HyperSpy's learning_results */
  double bss_tol;
} dec_params;

typedef struct {
  hb_global *g;
  const dec_params *p;
  size_t N, M, nb;          /* patterns, pixels, local blocks */
  hb_block *blk;            /* local blocks (descriptors only) */
  size_t *off;              /* first local row of each local block; nb + 1 */
  size_t nloc;              /* local rows */
  void *raw;                /* one block in the file's dtype */
  double *x;                /* the whole local X (cached) or one block */
  float *xs;                /* NMF: the whole local X as float32 when that holds every value exactly (then
                               x is one block); dec_reduce's passes still see doubles */
  float *xs_block;          /* not cached, randomized SVD where float32 is exact (centred or not): one
                               block as float32 for the power iterations (DEC_READ_SINGLE; the raw block
                               itself for float32 data) */
  int cached;
  double *rowsum;           /* nloc: Poisson normalisation */
  double *colsum, *mean;    /* M: column sums, mean pattern */
  double total;             /* sum of every value */
  double sumsq;             /* ||X||_F^2 after centring / normalisation */
  unsigned char *rowmask;   /* nloc: navigation_mask of the local rows, or NULL */
  int eig_used, eig_steps;  /* exact: the eigensolver that gave the result; Krylov steps run */
} dec_data;

/* What dec_reduce reads before each block's partial: nothing (the partial
 * uses the caches), the block as doubles (x), or, where float32 is exact,
 * the block's float32 rows for dec_rows_single (x NULL). */
enum { DEC_READ_NONE, DEC_READ_DOUBLE, DEC_READ_SINGLE };
/* Block i's float32 rows: in the cache (d->xs), or the block just read by a
 * DEC_READ_SINGLE pass. */
const float *dec_rows_single(const dec_data *d, size_t i);

/* Per-block partial of n doubles for local block i (x is NULL unless the
 * pass reads the data as doubles). */
typedef void (*dec_partial_fn)(dec_data *d, size_t i, const double *x, double *out, void *arg);
/* Collective: run fn on every local block, reduce the partials in block
 * order (summing, or with `merge`), and leave the result in `result` on every
 * rank (bcast) or on rank 0 only. */
int dec_reduce(dec_data *d, size_t n, int read, dec_partial_fn fn, void *arg, hb_merge_fn merge, int bcast,
               double *result);

/* Global C-order index of pattern p of block b. */
size_t dec_flat_nav(const dec_data *d, const hb_block *b, size_t p);

/* Truncated SVD of X: Vt (k × M, rows are the factors), s (k), and the local
 * loadings L = U·S (nloc × k), signs by HyperSpy's rule.  *solver receives
 * the solver used (SVD_EXACT or SVD_RANDOMIZED). */
int dec_svd(dec_data *d, size_t k, double *Vt, double *s, double *L, int *solver);
/* The solver dec_svd uses for k components: SVD_EXACT or SVD_RANDOMIZED. */
int dec_pick_solver(const dec_data *d, size_t k);
/* Whether exact SVD solved on the ScaLAPACK grid (GRAM_SCALAPACK) or rank 0
 * (GRAM_LOCAL): GRAM_AUTO's rule, for the metadata too. */
int dec_gram_where(const dec_data *d);
/* Collective: the top k eigenpairs of XᵀX (descending, eigenvalues clamped at
 * 0) with the Gram matrix distributed block-cyclically and pdsyevr; also sets
 * d->sumsq.  Vt and lam on every rank. */
int dec_gram_eigen_scalapack(dec_data *d, size_t k, double *Vt, double *lam);

/* Which width of the hand-written kernels this CPU runs (NMF's, the power
 * iterations'): 2 AVX-512, 1 AVX2, 0 baseline. */
int dec_kernel_isa(void);

/* On the float32 cache (d->xs), with NMF's kernels, in double arithmetic:
 * Y (npos × l) = X_i·Ztᵀ and B (l × M) = Yᵀ·X_i for local block i. */
void dec_xzt(const dec_data *d, size_t i, const double *Zt, size_t l, double *Y);
void dec_ytx(const dec_data *d, size_t i, const double *Y, size_t l, double *B);

/* NMF (sklearn's objective and rules) from the requested init: W local
 * (nloc × k), H (k × M); iterations run and the final ||X - WH||_F. */
int dec_nmf(dec_data *d, double *W, double *H, int *iters, double *residual);

/* HALS (decomposition_hals.c): update npos rows of W from X·Hᵀ and H·Hᵀ, or
 * all of H (K × M) from WᵀX and WᵀW, N = the patterns fitted. */
void dec_hals_w(double *W, const double *XHt, const double *HHt, size_t npos, size_t K, size_t M);
void dec_hals_h(double *H, const double *WtX, const double *WtW, size_t K, size_t M, size_t N);

/* Blind source separation (decomposition_bss.c) of the factors F (K × M,
 * every rank) and local loadings L (nloc × K), with NaN where masked; ev
 * (SVD) sorts the components.  BF (K × M) and BL (nloc × K) receive the
 * separated components, w (K × K) the unmixing matrix.  Collective. */
int dec_bss(dec_data *d, const double *F, const double *L, const double *ev, double *BF, double *BL, double *w,
            int *iters);

/* Masks (decomposition_mask.c).  plan: read both masks, count what is
 * used; setup: the local rows' flags; apply: zero the masked rows and columns
 * of block i as read, doubles or floats (elem bytes each; zero is all zero
 * bits in both); fill: NaN into masked factor columns and loading rows;
 * zero: masked rows of W and columns of H (NMF inits). */
int dec_masks_plan(dec_params *p, const hb_params *par, const hb_stream *in);
void dec_masks_free(dec_params *p);
int dec_masks_setup(dec_data *d);
void dec_masks_apply(const dec_data *d, size_t i, void *x, size_t elem);
void dec_masks_fill(const dec_data *d, size_t K, double *F, double *L);
void dec_masks_zero(const dec_data *d, double *W, double *H);

/* A standard normal deviate from a stream of hb_rng.h. */
double dec_rng_normal(hb_rng *r);

/* LAPACK (Fortran symbols, hidden string lengths last). */
void dsyevr_(const char *jobz, const char *range, const char *uplo, const int *n, double *a, const int *lda,
             const double *vl, const double *vu, const int *il, const int *iu, const double *abstol, int *m, double *w,
             double *z, const int *ldz, int *isuppz, double *work, const int *lwork, int *iwork, const int *liwork,
             int *info, size_t, size_t, size_t);
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t);
void dgeqrf_(const int *m, const int *n, double *a, const int *lda, double *tau, double *work, const int *lwork,
             int *info);
void dorgqr_(const int *m, const int *n, const int *k, double *a, const int *lda, const double *tau, double *work,
             const int *lwork, int *info);
void dgesdd_(const char *jobz, const int *m, const int *n, double *a, const int *lda, double *s, double *u,
             const int *ldu, double *vt, const int *ldvt, double *work, const int *lwork, int *iwork, int *info,
             size_t);

/* Rounds of collective writes that give every rank a round per local
 * block: the most blocks any rank has. */
size_t dec_write_rounds(const dec_data *d);

/* HyperSpy's learning_results layout (decomposition_learning.c): whether it
 * applies to this run, the linked signal with the decomposition, and the
 * BSS added to it.  Collective. */
int dec_learning_applies(const dec_data *d);
int dec_learning_write(dec_data *d, const hb_kernel *k, const char *algorithm, const double *F, const double *L,
                       const double *ev);
int dec_learning_write_bss(dec_data *d, const hb_kernel *k, const double *BF, const double *BL, const double *w);

#endif
