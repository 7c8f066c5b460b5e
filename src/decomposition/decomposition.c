/* decomposition: PCA by truncated SVD (exact or randomized) and NMF of the
 * unfolded data, distributed by rows as the engine reads them, with HyperSpy
 * 1.7.3's semantics (centring, Poisson normalisation, signs, explained
 * variance).  A global kernel: it runs after the single pass and makes its
 * own passes over the blocks.  See docs/decomposition.md. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "decomposition_priv.h"
#include "hb_detector.h"
#include "hb_error.h"
#include "hb_h5.h"
#include "hb_files.h"

void openblas_set_num_threads(int);

/* ---- parameters ----------------------------------------------------------- */

/* n_iter's default for a large k (k >= 0.1 min(N, M)), as scikit-learn's
 * randomized_svd; otherwise the row's default. */
#define N_ITER_LARGE_K 4

static const hb_param_spec dec_params_spec[] = {
    {"algorithm", HB_P_ENUM, HB_DEFAULT_STR("svd"), .choices = "svd|nmf",
     .help = "PCA by singular value decomposition, or NMF"},
    {"components", HB_P_INT, HB_REQUIRED, .help = "number of components k, at most min(N, M)"},
    {"centre", HB_P_ENUM, HB_DEFAULT_STR("none"), .choices = "none|navigation|signal",
     .help = "svd: subtract the mean pattern (navigation) or each pattern's mean (signal), as HyperSpy"},
    {"normalize_poissonian_noise", HB_P_BOOL, HB_DEFAULT_BOOL(0),
     .help = "divide X by sqrt(row sums) x sqrt(column sums) first (Keenan and Kotula); needs centre: none"},
    {"svd_solver", HB_P_ENUM, HB_DEFAULT_STR("auto"), .choices = "auto|exact|randomized",
     .help = "svd (and NMF's nndsvd init): exact Gram eigensolver or Halko-Martinsson-Tropp; auto picks the cheaper"},
    {"gram_solver", HB_P_ENUM, HB_DEFAULT_STR("auto"), .choices = "auto|local|scalapack",
     .help = "exact svd: eigensolve the M x M Gram matrix on rank 0 (LAPACK dsyevr) or block-cyclic over all ranks "
             "(ScaLAPACK pdsyevr); auto: scalapack once the matrix passes 2 GiB"},
    {"gram_precision", HB_P_ENUM, HB_DEFAULT_STR("auto"), .choices = "auto|single|double",
     .help = "exact svd, gram_solver local: each block's X^T X in float32 (single: twice as fast) or float64, summed "
             "over blocks in float64; auto: single when the input is float32 or an integer type of at most 16 bits"},
    {"eigensolver", HB_P_ENUM, HB_DEFAULT_STR("auto"), .choices = "auto|krylov|dsyevr",
     .help = "exact svd, gram_solver local: top k eigenpairs of the Gram matrix by block Krylov (falling back to "
             "dsyevr if it does not converge) or LAPACK dsyevr; auto: krylov when M >= 1024 and max(k, 16) <= M / 16"},
    {"n_iter", HB_P_INT, HB_DEFAULT_INT(7), .dflt_note = "or " HB_STR(N_ITER_LARGE_K) " when k >= 0.1 min(N, M)",
     .help = "randomized: power iterations"},
    {"oversampling", HB_P_INT, HB_DEFAULT_INT(10), .help = "randomized: extra columns of the sketch"},
    {"random_seed", HB_P_INT, HB_DEFAULT_INT(0), .help = "randomized sketch and random init"},
    {"solver", HB_P_ENUM, HB_DEFAULT_STR("cd"), .choices = "cd|mu|hals",
     .help = "nmf: coordinate descent or multiplicative updates (sklearn), or accelerated HALS"},
    {"init", HB_P_ENUM, HB_DEFAULT_STR("nndsvda"), .choices = "nndsvda|nndsvd|random|custom",
     .help = "nmf: initial W and H as sklearn; custom reads them from init_file"},
    {"init_file", HB_P_PATH,
     .help = "nmf, init custom: HDF5 file with W (*navigation_shape, k) and H (k, *signal_shape)"},
    {"nmf_precision", HB_P_ENUM, HB_DEFAULT_STR("single"), .choices = "single|double",
     .help = "nmf: the products X H^T and W^T X in float32 where the rows are held as float32 (float32 or integer "
             "input of at most 16 bits, no Poisson normalisation, cached in memory), as scikit-learn keeps float32 "
             "data in float32; a run's sums then go into float64. double: always in float64"},
    {"max_iter", HB_P_INT, HB_DEFAULT_INT(200), .help = "nmf: iterations at most"},
    {"tol", HB_P_FLOAT, HB_DEFAULT_FLOAT(1e-4),
     .help = "nmf: stopping tolerance (sklearn's rule for cd and mu; hals: relative decrease of the error per "
             "iteration)"},
    {"navigation_mask", HB_P_MAP_OR_PATH, .sub = hb_detector_params,
     .help = "patterns to EXCLUDE (HyperSpy's True): a virtual_image detector over the navigation axes, or a dataset "
             "(FILE.hspy holding one signal, FILE:/DATASET, or {shape: mask, file, dataset}) with nonzero = "
             "excluded; their loadings are NaN"},
    {"signal_mask", HB_P_MAP_OR_PATH, .sub = hb_detector_params,
     .help = "pixels to EXCLUDE, likewise over the signal axes; their factor values are NaN"},
    {"bss", HB_P_BOOL, HB_DEFAULT_BOOL(0),
     .help = "also blind source separation of the k components: FastICA as HyperSpy's blind_source_separation() "
             "defaults"},
    {"bss_on", HB_P_ENUM, HB_DEFAULT_STR("factors"), .choices = "factors|loadings",
     .help = "bss: separate the factors (HyperSpy's default) or the loadings (gathered to rank 0, k x N)"},
    {"bss_diff_order", HB_P_INT, HB_DEFAULT_INT(1), .help = "bss: derivative order along each axis first (0 to 2)"},
    {"bss_max_iter", HB_P_INT, HB_DEFAULT_INT(200), .help = "bss: FastICA iterations at most"},
    {"bss_tol", HB_P_FLOAT, HB_DEFAULT_FLOAT(1e-10), .help = "bss: FastICA tolerance (HyperSpy's)"},
    {"learning_results", HB_P_BOOL, HB_DEFAULT_BOOL(0),
     .help = "also a signal <name> whose data is the input (an HDF5 external link to it) with HyperSpy's "
             "learning_results: hs.load(out, lazy=True) then get_decomposition_model() and the rest work on it; "
             "a chunked input, no preprocess steps, not centre: signal"},
    {"cache", HB_P_ENUM, HB_DEFAULT_STR("auto"), .choices = "auto|memory|disk",
     .help = "keep this rank's rows in memory (float64; NMF: float32 where that is exact), or read the blocks again "
             "every pass; auto: memory up to 1 GiB"},
    HB_PARAM_END,
};

/* The index of an enum parameter's value in `names`. */
static int enum_of(const hb_params *p, const char *key, const char *const *names) {
  const char *s = hb_param_str(p, key);
  for (int i = 0; s && names[i]; i++)
    if (!strcmp(s, names[i])) return i;
  return 0; /* the schema allows only these */
}

/* An integer parameter in [lo, hi] (its default from the table). */
static int int_param(const hb_params *p, const char *key, long long lo, long long hi, long long *v) {
  *v = hb_param_int(p, key);
  HB_CHECK(*v >= lo && *v <= hi, HB_EINVALID, hb_param_where(p, key), "'%s' must be %lld to %lld, got %lld", key, lo,
           hi, *v);
  return 0;
}

/* Keys that only mean something for one algorithm are errors for the other:
 * a typo'd intent must not be silently ignored. */
static int check_applies(const hb_params *p, int algorithm) {
  static const char *const svd_only =
      "centre|svd_solver|gram_solver|gram_precision|eigensolver|n_iter|oversampling";
  static const char *const nmf_only = "solver|init|init_file|nmf_precision|max_iter|tol";
  const char *other = algorithm == DEC_SVD ? nmf_only : svd_only;
  for (const char *c = other; c;) {
    const char *bar = strchr(c, '|');
    char key[32];
    snprintf(key, sizeof key, "%.*s", (int)(bar ? (size_t)(bar - c) : strlen(c)), c);
    HB_CHECK(!hb_param_given(p, key), HB_EINVALID, hb_param_where_key(p, key), "'%s' does not apply to algorithm %s",
             key, algorithm == DEC_SVD ? "svd" : "nmf");
    c = bar ? bar + 1 : NULL;
  }
  return 0;
}

/* The custom init file must hold W and H of the right shapes. */
static int check_init_file(const dec_params *p, const hb_stream *in) {
  hid_t f = H5Fopen(p->init_file, H5F_ACC_RDONLY, H5P_DEFAULT);
  HB_CHECK(f >= 0, HB_EINVALID, p->init_where, "cannot open init_file '%s' as HDF5", p->init_text);
  int rc = 0;
  for (int w = 0; w < 2 && !rc; w++) {
    const char *name = w ? "H" : "W";
    int want = w ? 1 + in->sig_dim : in->nav_dim + 1;
    hsize_t expect[HB_MAXDIM], dims[HB_MAXDIM] = {0};
    if (w) {
      expect[0] = p->k;
      for (int d = 0; d < in->sig_dim; d++) expect[1 + d] = in->shape[in->nav_dim + d];
    } else {
      for (int d = 0; d < in->nav_dim; d++) expect[d] = in->shape[d];
      expect[in->nav_dim] = p->k;
    }
    hid_t ds = H5Lexists(f, name, H5P_DEFAULT) > 0 ? H5Dopen2(f, name, H5P_DEFAULT) : -1;
    int nd = -1;
    if (ds >= 0) {
      hid_t sp = H5Dget_space(ds);
      nd = H5Sget_simple_extent_ndims(sp);
      if (nd == want) H5Sget_simple_extent_dims(sp, dims, NULL);
      H5Sclose(sp);
      H5Dclose(ds);
    }
    int same = nd == want;
    for (int d = 0; same && d < want; d++) same = dims[d] == expect[d];
    if (!same)
      rc = HB_FAIL(HB_EINVALID, p->init_where, "init_file '%s' needs a dataset %s of shape %s", p->init_text, name,
                   w ? "(components, *signal_shape)" : "(*navigation_shape, components)");
  }
  H5Fclose(f);
  return rc;
}

static int bss_params(const hb_params *par, const hb_stream *in, dec_params *p) {
  p->bss = hb_param_bool(par, "bss");
  static const char *const bss_keys[] = {"bss_on", "bss_diff_order", "bss_max_iter", "bss_tol", NULL};
  for (int i = 0; bss_keys[i] && !p->bss; i++)
    HB_CHECK(!hb_param_given(par, bss_keys[i]), HB_EINVALID, hb_param_where_key(par, bss_keys[i]),
             "'%s' needs bss: true", bss_keys[i]);
  p->bss_on_loadings = !strcmp(hb_param_str(par, "bss_on"), "loadings");
  long long v;
  HB_CALL(int_param(par, "bss_diff_order", 0, 2, &v));
  p->bss_diff_order = (int)v;
  HB_CALL(int_param(par, "bss_max_iter", 1, 1000000, &v));
  p->bss_max_iter = (int)v;
  p->bss_tol = hb_param_float(par, "bss_tol");
  HB_CHECK(p->bss_tol >= 0, HB_EINVALID, hb_param_where(par, "bss_tol"), "bss_tol must be >= 0, got %g", p->bss_tol);
  if (!p->bss) return 0;
  const char *where = hb_param_where(par, "bss");
  HB_CHECK(p->k >= 2 && p->k <= 64, HB_EINVALID, where,
           "bss needs 2 to 64 components (HyperSpy needs at least 2), got %zu", p->k);
  /* numpy.gradient needs 2 values along every axis it differentiates */
  int nd = p->bss_on_loadings ? in->nav_dim : in->sig_dim, first = p->bss_on_loadings ? 0 : in->nav_dim;
  for (int a = 0; a < nd && p->bss_diff_order; a++)
    HB_CHECK(in->shape[first + a] >= 2, HB_EINVALID, where,
             "bss_diff_order %d needs every %s axis to have 2 or more values; axis '%s' has %llu", p->bss_diff_order,
             p->bss_on_loadings ? "navigation" : "signal", in->axes[first + a].name,
             (unsigned long long)in->shape[first + a]);
  return 0;
}

static int read_params(const hb_params *par, const hb_stream *in, dec_params *p) {
  static const char *const alg[] = {"svd", "nmf", NULL}, *const centre[] = {"none", "navigation", "signal", NULL},
                           *const solver[] = {"auto", "exact", "randomized", NULL}, *const nmf[] = {"cd", "mu", "hals", NULL},
                           *const init[] = {"nndsvda", "nndsvd", "random", "custom", NULL},
                           *const cache[] = {"auto", "memory", "disk", NULL},
                           *const gram[] = {"auto", "local", "scalapack", NULL},
                           *const prec[] = {"auto", "double", "single", NULL},
                           *const eig[] = {"auto", "dsyevr", "krylov", NULL};
  p->algorithm = enum_of(par, "algorithm", alg);
  p->centre = enum_of(par, "centre", centre);
  p->learning_results = hb_param_bool(par, "learning_results");
  /* HyperSpy's model is loadings x factors (+ mean) of the patterns the
   * signal holds: the file's own, and a mean the layout can hold */
  HB_CHECK(!p->learning_results || !in->preprocessed, HB_EINVALID, hb_param_where(par, "learning_results"),
           "learning_results links the input's data, but preprocess steps change the patterns this decomposition "
           "sees");
  HB_CHECK(!p->learning_results || in->input->chunked, HB_EINVALID, hb_param_where(par, "learning_results"),
           "learning_results links the input's data, which HyperSpy 1.7.3 loads lazily only from a chunked dataset; "
           "this one is contiguous");
  HB_CHECK(!p->learning_results || p->centre != CENTRE_SIGNAL, HB_EINVALID, hb_param_where(par, "learning_results"),
           "learning_results with centre: signal would need each pattern's mean, which HyperSpy's layout keeps and "
           "this output does not");
  p->svd_solver = enum_of(par, "svd_solver", solver);
  p->nmf_solver = enum_of(par, "solver", nmf);
  p->init = enum_of(par, "init", init);
  p->cache = enum_of(par, "cache", cache);
  p->gram_solver = enum_of(par, "gram_solver", gram);
  p->gram_precision = enum_of(par, "gram_precision", prec);
  p->nmf_precision = enum_of(par, "nmf_precision", prec);
  p->eigensolver = enum_of(par, "eigensolver", eig);
  for (int i = 0; i < 2 && p->gram_solver == GRAM_SCALAPACK; i++) {
    const char *key = i ? "eigensolver" : "gram_precision", *v = hb_param_str(par, key);
    HB_CHECK(!strcmp(v, "auto") || (!i && !strcmp(v, "double")), HB_EINVALID, hb_param_where_key(par, key),
             "%s: %s needs gram_solver: local (scalapack sums in float64 and solves with pdsyevr)", key, v);
  }
  /* float32 products lose nothing the data had: float32, or integers that float32 holds exactly */
  if (p->gram_precision == PREC_AUTO)
    p->gram_precision = p->gram_solver != GRAM_SCALAPACK && (in->dtype == HB_F32 || hb_dtype_size(in->dtype) <= 2)
                            ? PREC_SINGLE
                            : PREC_DOUBLE;
  HB_CALL(check_applies(par, p->algorithm));
  p->poisson = hb_param_bool(par, "normalize_poissonian_noise");
  HB_CHECK(!(p->poisson && p->centre != CENTRE_NONE), HB_EINVALID, hb_param_where_key(par, "normalize_poissonian_noise"),
           "normalize_poissonian_noise needs centre: none (HyperSpy refuses both too), got centre: %s",
           centre[p->centre]);

  size_t N = hb_input_nav_size(in->input), M = in->sig_size, lim = N < M ? N : M;
  HB_CHECK(in->nav_dim >= 1 && N >= 2, HB_EINVALID, hb_params_where(par),
           "decomposition needs at least 2 patterns; this input has %zu", N);
  long long v = hb_param_int(par, "components");
  HB_CALL(dec_masks_plan(p, par, in));
  int masked = p->nav_mask || p->sig_mask;
  if (masked) N = p->n_used, M = p->m_used, lim = N < M ? N : M;
  HB_CHECK(v >= 1 && (unsigned long long)v <= lim, HB_EINVALID, hb_param_where(par, "components"),
           "components must be 1 to min(N, M) = %zu (%snavigation size N = %zu, signal size M = %zu), got %lld", lim,
           masked ? "unmasked " : "", N, M, v);
  p->k = (size_t)v;
  HB_CALL(int_param(par, "n_iter", 0, 1000, &v));
  p->n_iter = hb_param_given(par, "n_iter") || p->k < 0.1 * (double)lim ? (int)v : N_ITER_LARGE_K;
  HB_CALL(int_param(par, "oversampling", 0, 100000, &v));
  p->oversampling = (int)v;
  HB_CALL(int_param(par, "random_seed", 0, (long long)1 << 62, &p->seed));
  HB_CALL(int_param(par, "max_iter", 1, 1000000, &v));
  p->max_iter = (int)v;
  HB_CALL(bss_params(par, in, p));
  p->tol = hb_param_float(par, "tol");
  HB_CHECK(p->tol >= 0, HB_EINVALID, hb_param_where(par, "tol"), "tol must be >= 0, got %g", p->tol);

  int has_file = hb_param_given(par, "init_file");
  HB_CHECK(!has_file || p->init == INIT_CUSTOM, HB_EINVALID, hb_param_where_key(par, "init_file"),
           "init_file needs init: custom");
  if (p->init == INIT_CUSTOM) {
    HB_CHECK(has_file, HB_EINVALID, hb_param_where(par, "init"), "init: custom needs init_file");
    snprintf(p->init_file, sizeof p->init_file, "%s", hb_param_str(par, "init_file"));
    snprintf(p->init_text, sizeof p->init_text, "%s", hb_param_text(par, "init_file"));
    snprintf(p->init_where, sizeof p->init_where, "%s", hb_param_where(par, "init_file"));
    HB_CHECK(strlen(hb_param_str(par, "init_file")) < sizeof p->init_file, HB_EINVALID, p->init_where,
             "init_file's path is longer than %zu bytes", sizeof p->init_file - 1);
    HB_CALL(hb_file_check_read(p->init_file, p->init_where));
    HB_CALL(check_init_file(p, in));
  }
  return 0;
}

/* ---- plan ------------------------------------------------------------------- */

static void component_axis(hb_axis *a, const char *name, size_t k, int navigate) {
  memset(a, 0, sizeof *a);
  snprintf(a->name, sizeof a->name, "%s", name);
  a->scale = 1;
  a->size = k;
  a->navigate = navigate;
}

/* A global output of `lead` component axes followed by `n` axes of the input. */
static int add_global(hb_kernel *k, const char *part, const char *quantity, size_t ncomp, const char *axis_name,
                      int navigate, const hb_stream *in, int first, int n, int nav_chunks) {
  HB_CALL(hb_kernel_add_output(k, part, HB_OUT_GLOBAL, HB_F64, HB_F64, quantity));
  hb_output *o = &k->out[k->nout - 1];
  o->ndim = 1 + n;
  o->shape[0] = ncomp;
  component_axis(&o->axes[0], axis_name, ncomp, navigate);
  for (int d = 0; d < n; d++) {
    o->shape[1 + d] = in->shape[first + d];
    o->axes[1 + d] = in->axes[first + d];
    o->axes[1 + d].navigate = 0;
  }
  o->nav_chunks = nav_chunks;
  return 0;
}

static int dec_plan(hb_kernel *k, const hb_stream *in, const hb_params *par) {
  dec_params *p;
  HB_ALLOC(p, 1);
  k->state = p;
  HB_CALL(read_params(par, in, p));
  /* (k | signal) and (k | navigation), as get_decomposition_factors/loadings */
  HB_CALL(add_global(k, "factors", "Factor", p->k, "Decomposition component index", 1, in, in->nav_dim, in->sig_dim, 0));
  HB_CALL(add_global(k, "loadings", "Loading", p->k, "Decomposition component index", 1, in, 0, in->nav_dim, 1));
  if (p->algorithm == DEC_SVD)
    HB_CALL(add_global(k, "explained_variance_ratio", "Explained variance ratio", p->k, "Principal component index", 0,
                       in, 0, 0, 0));
  if (p->bss) {
    HB_CALL(add_global(k, "bss_factors", "BSS factor", p->k, "BSS component index", 1, in, in->nav_dim, in->sig_dim, 0));
    HB_CALL(add_global(k, "bss_loadings", "BSS loading", p->k, "BSS component index", 1, in, 0, in->nav_dim, 1));
  }
  return 0;
}

/* ---- the data ------------------------------------------------------------------ */

/* n values of type t as doubles, or as floats (single) */
static void to_real(hb_dtype t, const void *src, void *dst, int single, size_t n) {
  switch (t) {
#define X(E, T)                                                                        \
  case E:                                                                              \
    if (single)                                                                        \
      for (size_t i = 0; i < n; i++) ((float *)dst)[i] = (float)((const T *)src)[i];   \
    else                                                                               \
      for (size_t i = 0; i < n; i++) ((double *)dst)[i] = (double)((const T *)src)[i]; \
    break;
    HB_FOREACH_DTYPE(X)
#undef X
    default: break;
  }
}

/* Centring and Poisson normalisation of block i's rows, in place. */
static void transform(dec_data *d, size_t i, double *x) {
  const dec_params *p = d->p;
  size_t M = d->M, npos = d->blk[i].npos;
  const unsigned char *sm = p->sig_mask;
  for (size_t r = 0; r < npos; r++) {
    double *row = x + r * M;
    if (d->rowmask && d->rowmask[d->off[i] + r]) continue; /* stays 0 */
    if (p->poisson) {
      double ra = sqrt(d->rowsum[d->off[i] + r]);
      for (size_t j = 0; j < M; j++) {
        double den = ra * d->colsum[j]; /* colsum holds sqrt(column sums) here */
        row[j] = den > 0 ? row[j] / den : 0; /* 0/0 -> 0, as HyperSpy's nan_to_num */
      }
    } else if (p->centre == CENTRE_NAVIGATION) {
      for (size_t j = 0; j < M; j++) row[j] -= d->mean[j]; /* masked columns: mean 0 */
    } else if (p->centre == CENTRE_SIGNAL) {
      double m = 0;
      for (size_t j = 0; j < M; j++) m += row[j]; /* masked pixels are 0 */
      m /= (double)p->m_used;
      for (size_t j = 0; j < M; j++)
        if (!sm || !sm[j]) row[j] -= m;
    }
  }
}

static int read_block(dec_data *d, size_t i, double *x) {
  hb_block b;
  HB_CALL(hb_global_read(d->g, d->g->first + i, &b, d->raw));
  to_real(b.dtype, d->raw, x, 0, b.npos * d->M);
  if (d->p->nav_mask || d->p->sig_mask) dec_masks_apply(d, i, x, sizeof *x);
  return 0;
}

/* Block i as float32 rows at f, masked but not centred (a centred power
 * iteration takes the mean off after its pass): float32 data read straight
 * there, other types through the raw buffer. */
static int read_single(dec_data *d, size_t i, float *f) {
  hb_block b;
  int as_read = d->g->in->dtype == HB_F32;
  HB_CALL(hb_global_read(d->g, d->g->first + i, &b, as_read ? (void *)f : d->raw));
  if (!as_read) to_real(b.dtype, d->raw, f, 1, b.npos * d->M);
  if (d->p->nav_mask || d->p->sig_mask) dec_masks_apply(d, i, f, sizeof *f);
  return 0;
}

/* Block i read again as float32 rows (DEC_READ_SINGLE). */
static int load_single(dec_data *d, size_t i) { return read_single(d, i, d->xs_block); }

const float *dec_rows_single(const dec_data *d, size_t i) {
  return d->xs ? d->xs + d->off[i] * d->M : d->xs_block;
}

/* Block i of X, transformed: from the cache, or read again. */
static int load(dec_data *d, size_t i, const double **x) {
  if (d->xs) {
    const float *f = d->xs + d->off[i] * d->M;
    for (size_t j = 0; j < d->blk[i].npos * d->M; j++) d->x[j] = f[j];
    *x = d->x;
    return 0;
  }
  if (d->cached) {
    *x = d->x + d->off[i] * d->M;
    return 0;
  }
  HB_CALL(read_block(d, i, d->x));
  transform(d, i, d->x);
  *x = d->x;
  return 0;
}

static void merge_add(void *ctx, void *acc, const void *other) {
  size_t n = *(const size_t *)ctx;
  double *a = acc;
  const double *o = other;
  for (size_t i = 0; i < n; i++) a[i] += o[i];
}

typedef struct {
  size_t n;
  hb_merge_fn merge;
} reduce_ctx;

static void merge_dispatch(void *ctx, void *acc, const void *other) {
  reduce_ctx *c = ctx;
  c->merge(&c->n, acc, other);
}

int dec_reduce(dec_data *d, size_t n, int read, dec_partial_fn fn, void *arg, hb_merge_fn merge, int bcast,
               double *result) {
  reduce_ctx rc_ = {n, merge ? merge : merge_add};
  hb_tree t;
  hb_tree_init(&t, n * sizeof(double), merge_dispatch, &rc_);
  int rc = 0;
  for (size_t i = 0; i < d->nb && !rc; i++) {
    const double *x = NULL;
    double *buf = hb_tree_buffer(&t);
    if (!buf) rc = HB_FAIL(HB_EINTERNAL, "memory", "out of memory in a reduction");
    if (!rc && read == DEC_READ_DOUBLE) rc = load(d, i, &x);
    if (!rc && read == DEC_READ_SINGLE && !d->xs) rc = load_single(d, i);
    if (rc) {
      free(buf);
      break;
    }
    fn(d, i, x, buf, arg);
    hb_tree_push(&t, 0, d->g->first + i, buf);
  }
  rc = hb_agree(d->g->comm, rc);
  void *root = NULL;
  if (!rc) rc = hb_agree(d->g->comm, hb_tree_reduce(&t, d->g->comm, &root));
  if (!rc && d->g->rank == 0) memcpy(result, root, n * sizeof(double));
  hb_tree_free(&t);
  HB_CALL(rc);
  if (bcast) HB_MPI(MPI_Bcast(result, (int)n, MPI_DOUBLE, 0, d->g->comm));
  return 0;
}

/* ---- first pass: sums, the negative-value check, the cache ---------------------- */

/* Partial: column sums (M), total (1), sum of squares after the transform
 * is not known yet, so only raw sums here.  Also fills rowsum and the cache,
 * and finds the block's first negative value. */
typedef struct {
  uint64_t first_neg; /* global flat index (pattern * M + pixel), UINT64_MAX: none */
  double neg_value;
} neg_scan;

size_t dec_flat_nav(const dec_data *d, const hb_block *b, size_t p) {
  const hb_input *in = d->g->in;
  size_t idx = 0, rem = p, coord[HB_MAXDIM];
  for (int a = b->nav_dim - 1; a >= 0; a--) {
    coord[a] = b->start[a] + rem % b->count[a];
    rem /= b->count[a];
  }
  for (int a = 0; a < b->nav_dim; a++) idx = idx * in->shape[a] + coord[a];
  return idx;
}

/* Where block i is read to: its place in the double cache, or the block buffer. */
static double *block_buffer(dec_data *d, size_t i) {
  return d->cached && !d->xs ? d->x + d->off[i] * d->M : d->x;
}

/* Block i's rows of type T at x: their sums (column sums into out, row sums,
 * the total) and the first negative value. */
#define STATS_ROWS(T)                                                                                      \
  for (size_t r = 0; r < npos; r++) {                                                                      \
    const T *row = (const T *)x + r * M;                                                                   \
    /* the row sum in eight lanes (a fixed order, and no chain of dependent                                \
     * additions); the first negative value looked for only in a row that has one */                      \
    double lane[8] = {0};                                                                                  \
    int neg = 0;                                                                                           \
    size_t m8 = M - M % 8;                                                                                 \
    for (size_t j = 0; j < m8; j += 8)                                                                     \
      for (int q = 0; q < 8; q++) lane[q] += (double)row[j + q];                                           \
    for (size_t j = 0; j < M; j++) out[j] += (double)row[j], neg |= row[j] < 0;                            \
    double rs = ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7])); \
    for (size_t j = m8; j < M; j++) rs += (double)row[j];                                                  \
    for (size_t j = 0; neg && ns->first_neg == UINT64_MAX && j < M; j++)                                   \
      if (row[j] < 0) {                                                                                    \
        ns->first_neg = (uint64_t)dec_flat_nav(d, &d->blk[i], r) * M + j;                                  \
        ns->neg_value = (double)row[j];                                                                    \
      }                                                                                                    \
    d->rowsum[d->off[i] + r] = rs;                                                                         \
    out[M] += rs;                                                                                          \
  }

/* The statistics of block i, from the float32 cache or the block's doubles
 * (the same sums: a float32 value widens exactly). */
static void stats_partial(dec_data *d, size_t i, double *out, neg_scan *ns) {
  size_t M = d->M, npos = d->blk[i].npos;
  memset(out, 0, (M + 1) * sizeof *out);
  if (d->xs) {
    const float *x = d->xs + d->off[i] * M;
    STATS_ROWS(float)
  } else {
    const double *x = block_buffer(d, i);
    STATS_ROWS(double)
  }
}
#undef STATS_ROWS

/* Reads every local block once into the cache (or the block buffer) before
 * the partial is made, so dec_reduce is called without reading. */
typedef struct {
  neg_scan ns;
  int rc;
} first_pass_arg;

static void first_partial(dec_data *d, size_t i, const double *x, double *out, void *arg) {
  (void)x;
  first_pass_arg *a = arg;
  if (!a->rc) a->rc = d->xs ? read_single(d, i, d->xs + d->off[i] * d->M) : read_block(d, i, block_buffer(d, i));
  if (a->rc) {
    memset(out, 0, (d->M + 1) * sizeof *out);
    return;
  }
  stats_partial(d, i, out, &a->ns);
}

static int describe_negative(dec_data *d, uint64_t at, double value) {
  const hb_input *in = d->g->in;
  size_t pat = (size_t)(at / d->M), pix = (size_t)(at % d->M);
  char pos[256] = "", sig[256] = "";
  for (int a = in->nav_dim - 1, n = 0; a >= 0; a--) {
    size_t c = pat % in->shape[a];
    pat /= in->shape[a];
    char t[256];
    snprintf(t, sizeof t, "%zu%s%s", c, n++ ? ", " : "", pos);
    snprintf(pos, sizeof pos, "%s", t);
  }
  for (int a = in->sig_dim - 1, n = 0; a >= 0; a--) {
    size_t len = in->shape[in->nav_dim + a], c = pix % len;
    pix /= len;
    char t[256];
    snprintf(t, sizeof t, "%zu%s%s", c, n++ ? ", " : "", sig);
    snprintf(sig, sizeof sig, "%s", t);
  }
  HB_RAISE(HB_EINVALID, in->path,
           "dataset %s: negative value %g at navigation index (%s), signal index (%s) (array order); %s needs "
           "non-negative data",
           in->dataset, value, pos, sig, d->p->algorithm == DEC_NMF ? "NMF" : "Poisson normalisation");
}

static int first_pass(dec_data *d) {
  const dec_params *p = d->p;
  size_t M = d->M;
  int stats = p->poisson || p->centre == CENTRE_NAVIGATION || p->algorithm == DEC_NMF;
  if (!stats && !d->cached) return 0; /* read when needed */
  double *sums;
  HB_ALLOC(sums, M + 1);
  first_pass_arg a = {{UINT64_MAX, 0}, 0};
  int rc = dec_reduce(d, M + 1, 0, first_partial, &a, NULL, 1, sums);
  rc = rc ? rc : hb_agree(d->g->comm, a.rc);
  unsigned long long neg = a.ns.first_neg, gneg = neg;
  double val = a.ns.neg_value, gval = 0;
  if (!rc && stats) {
    rc = MPI_Allreduce(&neg, &gneg, 1, MPI_UNSIGNED_LONG_LONG, MPI_MIN, d->g->comm) == MPI_SUCCESS ? 0 : HB_EINTERNAL;
    double mine = neg == gneg && neg != UINT64_MAX ? val : 0;
    if (!rc) rc = MPI_Allreduce(&mine, &gval, 1, MPI_DOUBLE, MPI_SUM, d->g->comm) == MPI_SUCCESS ? 0 : HB_EINTERNAL;
  }
  if (!rc) {
    memcpy(d->colsum, sums, M * sizeof *sums);
    d->total = sums[M];
    for (size_t j = 0; j < M; j++) d->mean[j] = d->colsum[j] / (double)p->n_used;
  }
  free(sums);
  HB_CALL(rc);
  if ((p->poisson || p->algorithm == DEC_NMF) && gneg != UINT64_MAX) HB_CALL(describe_negative(d, gneg, gval));
  if (p->poisson)
    for (size_t j = 0; j < M; j++) d->colsum[j] = sqrt(d->colsum[j]);
  if (d->cached && !d->xs) /* the float32 cache needs no transform (single_exact) */
    for (size_t i = 0; i < d->nb; i++) transform(d, i, d->x + d->off[i] * M);
  return 0;
}

/* ---- outputs ---------------------------------------------------------------------- */

size_t dec_write_rounds(const dec_data *d) {
  size_t rounds = 0;
  for (int r = 0; r < d->g->size; r++) {
    size_t f, e;
    hb_partition_range(d->g->part->nblocks, r, d->g->size, &f, &e);
    if (e - f > rounds) rounds = e - f;
  }
  return rounds;
}

/* Loadings (k, *navigation) from the local rows L (nloc × k): every rank
 * writes its blocks' hyperslabs, one collective write per round. */
static int write_loadings(dec_data *d, const hb_kernel *k, int iout, size_t K, const double *L) {
  hb_global *g = d->g;
  size_t rounds = dec_write_rounds(d);
  double *buf;
  HB_ALLOC(buf, g->part->max_block_pos * K);
  int rc = 0;
  for (size_t r = 0; r < rounds; r++) {
    hsize_t start[HB_MAXDIM], count[HB_MAXDIM];
    int have = r < d->nb && !rc;
    if (have) {
      const hb_block *b = &d->blk[r];
      start[0] = 0;
      count[0] = K;
      for (int a = 0; a < b->nav_dim; a++) start[1 + a] = b->start[a], count[1 + a] = b->count[a];
      for (size_t c = 0; c < K; c++)
        for (size_t p = 0; p < b->npos; p++) buf[c * b->npos + p] = L[(d->off[r] + p) * K + c];
    }
    rc = hb_agree(g->comm, hb_global_write(g, k, iout, have ? start : NULL, count, buf));
    if (rc) break;
  }
  free(buf);
  return rc;
}

/* Rank 0 writes a whole (small) output. */
static int write_whole(dec_data *d, const hb_kernel *k, int iout, const double *v) {
  const hb_output *o = &k->out[iout];
  hsize_t start[HB_MAXDIM] = {0};
  return hb_agree(d->g->comm, hb_global_write(d->g, k, iout, d->g->rank == 0 ? start : NULL, o->shape, v));
}

typedef struct {
  const char *algorithm, *solver;
  int iterations;
  double residual;
  const double *ev, *evr; /* SVD only */
  const char *gram;       /* exact SVD only: where the Gram eigenproblem was solved */
} dec_meta;

/* Exact SVD's solvers, as they ran: the Gram matrix's precision and the eigensolver (with Krylov's steps). */
static int write_exact_meta(const dec_data *d, hid_t g) {
  static const char *const eig[] = {"", "dsyevr", "krylov", "pdsyevr"};
  int scalapack = d->eig_used == EIG_PDSYEVR;
  int rc = hb_h5_attr_str(g, "gram_precision", !scalapack && d->p->gram_precision == PREC_SINGLE ? "single" : "double");
  if (!rc) rc = hb_h5_attr_str(g, "eigensolver", eig[d->eig_used]);
  if (!rc) rc = hb_h5_attr_i64(g, "eigensolver_iterations", d->eig_steps);
  return rc;
}

static int write_meta(dec_data *d, const hb_kernel *k, const dec_meta *m) {
  static const char *const centre[] = {"_None_", "navigation", "signal"};
  const dec_params *p = d->p;
  int rc = 0;
  for (int i = 0; i < k->nout && !rc; i++) {
    hid_t g = hb_h5_group(hb_global_group(d->g, k, i), "metadata/Decomposition");
    if (g < 0) return hb_error_trace(HB_EIO, __FILE__, __LINE__);
    hsize_t n = p->k;
    rc = hb_h5_attr_str(g, "decomposition_algorithm", m->algorithm);
    if (!rc) rc = hb_h5_attr_str(g, "solver", m->solver);
    if (!rc && m->gram) rc = hb_h5_attr_str(g, "gram_solver", m->gram);
    if (!rc && m->gram) rc = write_exact_meta(d, g);
    if (!rc && p->algorithm == DEC_NMF) /* as the products ran: single only on float32 rows */
      rc = hb_h5_attr_str(g, "nmf_precision", d->xs && p->nmf_precision == PREC_SINGLE ? "single" : "double");
    if (!rc) rc = hb_h5_attr_i64(g, "output_dimension", (long long)p->k);
    if (!rc) rc = hb_h5_attr_str(g, "centre", centre[p->centre]);
    if (!rc) rc = hb_h5_attr_bool(g, "poissonian_noise_normalized", p->poisson);
    if (!rc) rc = hb_h5_attr_i64(g, "iterations", m->iterations);
    if (!rc) rc = hb_h5_attr_f64(g, "residual", m->residual);
    if (!rc) rc = hb_h5_attr_f64(g, "total_sum_of_squares", d->sumsq);
    if (!rc && m->ev) rc = hb_h5_array_f64(g, "explained_variance", 1, &n, m->ev);
    if (!rc && m->evr) rc = hb_h5_array_f64(g, "explained_variance_ratio", 1, &n, m->evr);
    H5Gclose(g);
  }
  return hb_agree(d->g->comm, rc);
}

/* ---- the global function --------------------------------------------------------- */

/* Whether float32 holds every value of X exactly, as NMF and the
 * randomized SVD see it: data of float32 or of integers of up to 16 bits,
 * not rescaled (no centring, no Poisson scaling; masks only zero values).
 * They then cache X as float32, half the bytes their passes stream, and
 * widen it to double as they read (dec_xzt, dec_ytx), so the arithmetic is
 * the double cache's. */
static int float_exact(hb_dtype t) { return t == HB_F32 || t == HB_U8 || t == HB_I8 || t == HB_U16 || t == HB_I16; }

static int single_exact(const dec_data *d, const dec_params *p, hb_dtype t) {
  int exact = float_exact(t);
  int streams = p->algorithm == DEC_NMF || (p->algorithm == DEC_SVD && dec_pick_solver(d, p->k) == SVD_RANDOMIZED);
  return streams && !p->poisson && p->centre == CENTRE_NONE && exact;
}

/* The cache of X, in 2 MiB pages where the kernel gives them: the first
 * pass writes every byte of it once, and 4 KiB pages cost a fault each,
 * which took a fifth of a randomized PCA of 256 MB (docs/performance.md). */
static int cache_alloc(void **p, size_t bytes) {
  const size_t huge = (size_t)2 << 20;
  size_t n = (bytes + huge - 1) / huge * huge;
  HB_CHECK(!posix_memalign(p, huge, n ? n : huge), HB_EINTERNAL, "memory",
           "out of memory caching the data (%zu bytes; cache: disk reads it again instead)", bytes);
  madvise(*p, n ? n : huge, MADV_HUGEPAGE); /* advice only: without it, small pages */
  return 0;
}

static int setup(dec_data *d, hb_global *g, const dec_params *p) {
  d->g = g;
  d->p = p;
  d->N = hb_input_nav_size(g->in);
  d->M = g->sig_size;
  d->nb = g->end - g->first;
  HB_ALLOC(d->blk, d->nb ? d->nb : 1);
  HB_ALLOC(d->off, d->nb + 1);
  for (size_t i = 0; i < d->nb; i++) {
    hb_block *b = &d->blk[i];
    b->index = g->first + i;
    b->nav_dim = g->part->nd;
    hb_partition_block(g->part, b->index, b->start, b->count);
    b->npos = 1;
    for (int a = 0; a < b->nav_dim; a++) b->npos *= b->count[a];
    d->off[i + 1] = d->off[i] + b->npos;
  }
  d->nloc = d->off[d->nb];
  int single = single_exact(d, p, g->in->dtype);
  double bytes = (double)d->nloc * (double)d->M * (single ? sizeof(float) : sizeof(double));
  /* auto: memory up to 1 GiB, except for exact SVD on rank 0 without a
   * statistics pass: it reads X only twice (Gram matrix, loadings), and from
   * an uncompressed file the second read costs less than first touching a
   * float64 copy (0.05 s against 0.3 s for the benchmark's 256 MB of
   * float32).  (ScaLAPACK's Gram matrix reads X once per column panel.) */
  int two_reads = p->algorithm == DEC_SVD && !p->poisson && p->centre != CENTRE_NAVIGATION &&
                  !strcmp(g->in->filters, "none") && dec_pick_solver(d, p->k) == SVD_EXACT &&
                  dec_gram_where(d) == GRAM_LOCAL;
  d->cached = p->cache == CACHE_MEMORY || (p->cache == CACHE_AUTO && bytes <= (double)(1u << 30) && !two_reads);
  HB_ALLOC(d->raw, g->part->max_block_pos * d->M * hb_dtype_size(g->in->dtype));
  if (d->cached && single) HB_CALL(cache_alloc((void **)&d->xs, d->nloc * d->M * sizeof *d->xs));
  if (d->cached && !single) HB_CALL(cache_alloc((void **)&d->x, d->nloc * d->M * sizeof *d->x));
  else HB_ALLOC(d->x, g->part->max_block_pos * d->M);
  /* out of core, the randomized power iterations read float32 blocks
   * (SGEMM), centred or not: the mean comes off after each pass */
  int power_single = p->algorithm == DEC_SVD && dec_pick_solver(d, p->k) == SVD_RANDOMIZED && !p->poisson &&
                     p->centre != CENTRE_SIGNAL && float_exact(g->in->dtype);
  if (!d->cached && power_single) {
    if (g->in->dtype == HB_F32) d->xs_block = d->raw;
    else HB_ALLOC(d->xs_block, g->part->max_block_pos * d->M);
  }
  HB_ALLOC(d->rowsum, d->nloc);
  HB_ALLOC(d->colsum, d->M);
  HB_ALLOC(d->mean, d->M);
  return dec_masks_setup(d);
}

static void teardown(dec_data *d) {
  free(d->blk);
  free(d->off);
  if (d->xs_block != d->raw) free(d->xs_block);
  free(d->raw);
  free(d->x);
  free(d->xs);
  free(d->rowsum);
  free(d->colsum);
  free(d->mean);
  free(d->rowmask);
}

/* Poisson normalisation is undone on the results: factors × sqrt(column
 * sums), loadings × sqrt(row sums). */
static void unnormalise(dec_data *d, size_t K, double *F, double *L) {
  if (!d->p->poisson) return;
  for (size_t c = 0; c < K; c++)
    for (size_t j = 0; j < d->M; j++) F[c * d->M + j] *= d->colsum[j];
  for (size_t r = 0; r < d->nloc; r++)
    for (size_t c = 0; c < K; c++) L[r * K + c] *= sqrt(d->rowsum[r]);
}

/* BSS of the final factors F and local loadings L; the last two outputs. */
static int run_bss(dec_data *d, const hb_kernel *k, const double *F, const double *L, const double *ev) {
  size_t K = d->p->k, M = d->M;
  double *BF = malloc(K * M * sizeof *BF), *BL = malloc((d->nloc ? d->nloc : 1) * K * sizeof *BL),
         *w = malloc(K * K * sizeof *w);
  int iters = 0, rc = !BF || !BL || !w ? HB_FAIL(HB_EINTERNAL, "memory", "out of memory") : 0;
  rc = hb_agree(d->g->comm, rc);
  if (!rc) rc = dec_bss(d, F, L, ev, BF, BL, w, &iters);
  if (!rc) rc = write_whole(d, k, k->nout - 2, BF);
  if (!rc) rc = write_loadings(d, k, k->nout - 1, K, BL);
  if (!rc && dec_learning_applies(d)) rc = dec_learning_write_bss(d, k, BF, BL, w);
  for (int i = k->nout - 2; i < k->nout && !rc; i++) {
    hid_t g = hb_h5_group(hb_global_group(d->g, k, i), "metadata/BSS");
    if (g < 0) rc = hb_error_trace(HB_EIO, __FILE__, __LINE__);
    hsize_t sh[2] = {K, K};
    if (!rc) rc = hb_h5_attr_str(g, "bss_algorithm", "sklearn_fastica");
    if (!rc) rc = hb_h5_attr_bool(g, "on_loadings", d->p->bss_on_loadings);
    if (!rc) rc = hb_h5_attr_i64(g, "diff_order", d->p->bss_diff_order);
    if (!rc) rc = hb_h5_attr_i64(g, "iterations", iters);
    if (!rc) rc = hb_h5_array_f64(g, "unmixing_matrix", 2, sh, w);
    if (g >= 0) H5Gclose(g);
  }
  rc = hb_agree(d->g->comm, rc);
  free(BF);
  free(BL);
  free(w);
  return rc;
}

/* Factors F (K × M) and local loadings L (nloc × K) back to the data's
 * scale, NaN where masked, written as results 0 and 1. */
static int write_model(dec_data *d, const hb_kernel *k, size_t K, double *F, double *L) {
  unnormalise(d, K, F, L);
  dec_masks_fill(d, K, F, L);
  HB_CALL(write_whole(d, k, 0, F));
  return write_loadings(d, k, 1, K, L);
}

static int run_svd(dec_data *d, const hb_kernel *k) {
  size_t K = d->p->k, M = d->M;
  double *F = NULL, *s = NULL, *L = NULL, *ev = NULL, *evr = NULL;
  int solver = 0, rc = 0;
  F = malloc(K * M * sizeof *F);
  s = malloc(K * sizeof *s);
  L = malloc((d->nloc ? d->nloc : 1) * K * sizeof *L);
  ev = malloc(K * sizeof *ev);
  evr = malloc(K * sizeof *evr);
  if (!F || !s || !L || !ev || !evr) rc = HB_FAIL(HB_EINTERNAL, "memory", "out of memory");
  rc = hb_agree(d->g->comm, rc);
  if (!rc) rc = dec_svd(d, K, F, s, L, &solver);
  if (!rc) {
    double kept = 0;
    for (size_t c = 0; c < K; c++) {
      ev[c] = s[c] * s[c] / (double)d->p->n_used; /* HyperSpy: S^2 / N, N of the unmasked rows */
      evr[c] = d->sumsq > 0 ? s[c] * s[c] / d->sumsq : 0; /* of the total variance */
      kept += s[c] * s[c];
    }
    dec_meta m = {"SVD", solver == SVD_EXACT ? "exact" : "randomized", solver == SVD_EXACT ? 0 : d->p->n_iter,
                  sqrt(fmax(d->sumsq - kept, 0)), ev, evr,
                  solver != SVD_EXACT ? NULL : dec_gram_where(d) == GRAM_SCALAPACK ? "scalapack" : "local"};
    rc = write_model(d, k, K, F, L);
    if (!rc) rc = write_whole(d, k, 2, evr);
    if (!rc) rc = write_meta(d, k, &m);
    if (!rc && dec_learning_applies(d)) rc = dec_learning_write(d, k, "SVD", F, L, ev);
    if (!rc && d->p->bss) rc = run_bss(d, k, F, L, ev);
  }
  free(F);
  free(s);
  free(L);
  free(ev);
  free(evr);
  return rc;
}

static int run_nmf(dec_data *d, const hb_kernel *k) {
  size_t K = d->p->k, M = d->M;
  double *W = malloc((d->nloc ? d->nloc : 1) * K * sizeof *W), *H = malloc(K * M * sizeof *H);
  int rc = !W || !H ? HB_FAIL(HB_EINTERNAL, "memory", "out of memory") : 0;
  rc = hb_agree(d->g->comm, rc);
  int iters = 0;
  double res = 0;
  if (!rc) rc = dec_nmf(d, W, H, &iters, &res);
  if (!rc) {
    static const char *const nmf_name[] = {"cd", "mu", "hals"};
    dec_meta m = {"NMF", nmf_name[d->p->nmf_solver], iters, res, NULL, NULL, NULL};
    rc = write_model(d, k, K, H, W);
    if (!rc) rc = write_meta(d, k, &m);
    if (!rc && dec_learning_applies(d)) rc = dec_learning_write(d, k, "NMF", H, W, NULL);
    if (!rc && d->p->bss) rc = run_bss(d, k, H, W, NULL);
  }
  free(W);
  free(H);
  return rc;
}

static int dec_global(hb_kernel *k, hb_global *g) {
  const dec_params *p = k->state;
  dec_data d;
  memset(&d, 0, sizeof d);
  openblas_set_num_threads(g->threads);
  int rc = hb_agree(g->comm, setup(&d, g, p));
  if (!rc) rc = hb_agree(g->comm, first_pass(&d));
  if (!rc) rc = p->algorithm == DEC_SVD ? run_svd(&d, k) : run_nmf(&d, k);
  teardown(&d);
  return rc;
}


static void dec_destroy(hb_kernel *k) {
  if (k->state) dec_masks_free(k->state);
  free(k->state);
}

const hb_kernel_def hb_kernel_decomposition = {
    .op = "decomposition",
    .summary = "PCA (truncated SVD, exact or randomized) or NMF of the unfolded data, distributed by rows; HyperSpy "
               "1.7.3 semantics (see docs/decomposition.md)",
    .params = dec_params_spec,
    .outputs_doc = "<name>_factors (k | signal), <name>_loadings (k | navigation), for svd "
                   "<name>_explained_variance_ratio (k), and with bss <name>_bss_factors (k | signal) and "
                   "<name>_bss_loadings (k | navigation), all float64",
    .plan = dec_plan,
    .destroy = dec_destroy,
    .global = dec_global,
};
