/* sum, mean, max, min, std, var and the nan-variants (nansum, nanmean,
 * nanmax, nanmin, nanstd, nanvar): reductions over the navigation axes, the
 * signal axes or named axes, as HyperSpy's methods of the same names
 * (docs/hyperspy-semantics.md, sections 0 and 3). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hb_error.h"
#include "hb_kernel.h"

typedef enum { K_SUM, K_MEAN, K_MAX, K_MIN, K_VAR, K_STD } stat_kind;

static const struct {
  const char *op;
  stat_kind kind;
  int nan; /* ignores NaN */
} stat_ops[] = {
    {"sum", K_SUM, 0},       {"mean", K_MEAN, 0},       {"max", K_MAX, 0},       {"min", K_MIN, 0},
    {"std", K_STD, 0},       {"var", K_VAR, 0},         {"nansum", K_SUM, 1},    {"nanmean", K_MEAN, 1},
    {"nanmax", K_MAX, 1},    {"nanmin", K_MIN, 1},      {"nanstd", K_STD, 1},    {"nanvar", K_VAR, 1},
};

/* The partial of a reduction over the navigation axes, m pixels: */
typedef enum {
  ACC_SUM,        /* A[m]: numpy's sum type (integers exactly) */
  ACC_MEAN,       /* double[m]: sums, divided at the end */
  ACC_PICK,       /* T[m]: max or min */
  ACC_NANSUM,     /* double[m], floats: sums of the values that are not NaN */
  ACC_NANMEAN,    /* double[2m], floats: those sums, then their counts */
  ACC_MOMENTS,    /* uint64[2m], 8/16-bit integers: exact sums of x (two's complement), then of x^2 */
  ACC_SHIFTED,    /* double[1 + 3m]: the pattern count, then per pixel a shift K (the block's first
                     value), sum(x - K), sum((x - K)^2); merged with Chan's formula */
  ACC_NANSHIFTED, /* double[4m], floats: per pixel its count, K (NaN until the first value that is not
                     NaN), sum(x - K), sum((x - K)^2), over the values that are not NaN */
} acc_scheme;

typedef struct {
  stat_kind kind;
  int skip_nan;       /* a nan-variant on float data (integers have no NaN) */
  int per_pattern;    /* within each pattern (a NAV result), else over the navigation axes (SIGNAL) */
  int some_nav;       /* over some navigation axes: a partial per kept position (a FULL result, hb_nav_map) */
  hb_dtype in, out;
  acc_scheme acc;
  size_t m;           /* pixels per pattern */
  /* Result element o reduces pixels base[o] + off[j], j < nred; without
   * the lists (no signal axis reduced, or all of them), pixels o * nred + j. */
  size_t nout, nred;
  size_t *base, *off;
  void *scratch;      /* finish: the nout results, before they go to the partial's start */
} stat_state;

/* input type, C type, accumulator C type (numpy's sum dtype), lowest,
 * highest, and a 32-bit type that holds the exact sum of NARROW_MAX values of
 * the 8/16-bit types (N = A for the others).  Sums go through N in 32-bit
 * SIMD lanes, twice as many per instruction as 64-bit ones, and give the same
 * values: integer sums are exact either way, and so are their doubles (below
 * 2^53) for the mean. */
#define STAT_TYPES(X)                                                \
  X(HB_U8, uint8_t, uint64_t, 0, UINT8_MAX, uint32_t)                \
  X(HB_U16, uint16_t, uint64_t, 0, UINT16_MAX, uint32_t)             \
  X(HB_U32, uint32_t, uint64_t, 0, UINT32_MAX, uint64_t)             \
  X(HB_U64, uint64_t, uint64_t, 0, UINT64_MAX, uint64_t)             \
  X(HB_I8, int8_t, int64_t, INT8_MIN, INT8_MAX, int32_t)             \
  X(HB_I16, int16_t, int64_t, INT16_MIN, INT16_MAX, int32_t)         \
  X(HB_I32, int32_t, int64_t, INT32_MIN, INT32_MAX, int64_t)         \
  X(HB_I64, int64_t, int64_t, INT64_MIN, INT64_MAX, int64_t)         \
  X(HB_F32, float, double, -INFINITY, INFINITY, double)              \
  X(HB_F64, double, double, -INFINITY, INFINITY, double)

/* 65535 * 65536 < 2^32 and 32768 * 65536 = 2^31: exact in N */
#define NARROW_MAX ((size_t)65536)
/* pixels per tile of 32-bit per-pixel sums (16 KiB on the stack) */
#define TILE 4096
/* pixels per tile of the shifted sums: K, sum(x - K), sum((x - K)^2) of a
 * tile (24 KiB) stay in L1 while the block's patterns pass */
#define SHIFT_TILE 1024
#define IS_NARROW(T, N) (sizeof(N) == 4 && sizeof(T) <= 2)
/* 64-bit integers: numpy's mean sums them in float64, where an integer sum wraps */
#define MEAN_IN_DOUBLE(T) (sizeof(T) == 8 && (T)0.5 == 0)

/* NaN wins, as in numpy's max/min */
#define PICK_MAX(m, v) ((v) > (m) || (v) != (v) ? (v) : (m))
#define PICK_MIN(m, v) ((v) < (m) || (v) != (v) ? (v) : (m))
/* NaN loses, as in numpy's nanmax/nanmin (NaN only when every value is) */
#define PICK_NANMAX(m, v) ((v) > (m) || (m) != (m) ? (v) : (m))
#define PICK_NANMIN(m, v) ((v) < (m) || (m) != (m) ? (v) : (m))

const hb_param_spec hb_stats_params[] = {
    {"axes", HB_P_NAMES, HB_REQUIRED,
     .help = "navigation (every navigation axis: a signal-shaped result), signal (every signal axis: one value per "
             "pattern), or axes as HyperSpy's axis= takes them: one axis or a list, each by its name or its index in "
             "HyperSpy's order (navigation x, y, ..., then signal x, y, ...; negative from the end). Signal axes "
             "left over make an array per pattern, or per scan with every navigation axis, or per position of "
             "the navigation axes left over"},
    HB_PARAM_END,
};

static int is_narrow_int(hb_dtype t) { return !hb_dtype_is_float(t) && hb_dtype_size(t) <= 2; }

/* numpy's (HyperSpy's) result types, except that sum and mean of float32
 * stay float64 as they always were here (tests/interop/test_oracle_existing.py) */
static hb_dtype result_dtype(stat_kind kind, int nan_op, hb_dtype in) {
  switch (kind) {
    case K_SUM: return nan_op && hb_dtype_is_float(in) ? in : hb_dtype_sum(in);
    case K_MEAN: return nan_op && in == HB_F32 ? HB_F32 : HB_F64;
    case K_MAX:
    case K_MIN: return in;
    default: return in == HB_F32 ? HB_F32 : HB_F64;
  }
}

static acc_scheme scheme_of(const stat_state *s) {
  switch (s->kind) {
    case K_SUM: return s->skip_nan ? ACC_NANSUM : ACC_SUM;
    case K_MEAN: return s->skip_nan ? ACC_NANMEAN : ACC_MEAN;
    case K_MAX:
    case K_MIN: return ACC_PICK;
    default: return is_narrow_int(s->in) ? ACC_MOMENTS : s->skip_nan ? ACC_NANSHIFTED : ACC_SHIFTED;
  }
}

static hb_dtype acc_dtype(const stat_state *s) {
  switch (s->acc) {
    case ACC_SUM: return hb_dtype_sum(s->in);
    case ACC_PICK: return s->in;
    case ACC_MOMENTS: return HB_U64;
    default: return HB_F64;
  }
}

static size_t partial_elems(const stat_state *s) {
  switch (s->acc) {
    case ACC_NANMEAN:
    case ACC_MOMENTS: return 2 * s->m;
    case ACC_SHIFTED: return 1 + 3 * s->m;
    case ACC_NANSHIFTED: return 4 * s->m;
    default: return s->m;
  }
}

/* Elements of acc in a partial of a result of n elements: n when the
 * partial has the result's shape (the engine's convention, kept by the
 * merges of the unit tests), else the scheme's. */
static size_t partial_len(const stat_state *s, size_t n) {
  return partial_elems(s) == s->nout ? n : partial_elems(s);
}

/* The axes `axes` names, as HyperSpy's axis= (docs/hyperspy-semantics.md,
 * 0); reduced[d] is set for each array axis d.  An axis named twice is an
 * error, as in numpy. */
static int reduced_axes(const hb_stream *in, const hb_params *p, int *reduced) {
  const char *names[HB_PARAM_MAX_NUMBERS];
  int n = hb_param_names(p, "axes", names);
  if (n == 1 && !strcmp(names[0], "navigation")) {
    for (int d = 0; d < in->nav_dim; d++) reduced[d] = 1;
  } else if (n == 1 && !strcmp(names[0], "signal")) {
    for (int d = in->nav_dim; d < in->ndim; d++) reduced[d] = 1;
  } else {
    for (int i = 0; i < n; i++) {
      const char *where = hb_param_where_item(p, "axes", i);
      int axis;
      HB_CALL(hb_stream_axis(in, names[i], where, &axis));
      HB_CHECK(!reduced[axis], HB_EINVALID, where, "axis '%s' is named twice in axes", names[i]);
      reduced[axis] = 1;
    }
  }
  return 0;
}

/* Pixel lists of a reduction over some signal axes: result element o (C
 * order over the kept axes) takes pixels base[o] + off[j] (C order over the
 * reduced ones). */
static int plan_pixel_lists(stat_state *s, const hb_stream *in, const int *reduced) {
  const int nd = in->nav_dim, sd = in->sig_dim;
  size_t stride[HB_MAXDIM], st = 1;
  for (int k = sd - 1; k >= 0; k--) stride[k] = st, st *= in->shape[nd + k];
  s->nout = s->nred = 1;
  for (int k = 0; k < sd; k++) *(reduced[nd + k] ? &s->nred : &s->nout) *= in->shape[nd + k];
  HB_ALLOC(s->base, s->nout);
  HB_ALLOC(s->off, s->nred);
  for (int pass = 0; pass < 2; pass++) { /* base over the kept axes, off over the reduced */
    size_t *list = pass ? s->off : s->base, n = pass ? s->nred : s->nout;
    for (size_t i = 0; i < n; i++) {
      size_t rem = i, at = 0;
      for (int k = sd - 1; k >= 0; k--) {
        if (reduced[nd + k] != pass) continue;
        at += rem % in->shape[nd + k] * stride[k];
        rem /= in->shape[nd + k];
      }
      list[i] = at;
    }
  }
  return 0;
}

static int stats_plan(hb_kernel *k, const hb_stream *in, const hb_params *p) {
  stat_state *s;
  HB_ALLOC(s, 1);
  k->state = s;
  size_t which = 0;
  while (strcmp(stat_ops[which].op, k->def->op)) which++;
  s->kind = stat_ops[which].kind;
  s->in = in->dtype;
  s->skip_nan = stat_ops[which].nan && hb_dtype_is_float(in->dtype);
  s->out = result_dtype(s->kind, stat_ops[which].nan, in->dtype);
  s->m = in->sig_size;

  int reduced[HB_MAXDIM] = {0}, nav = 0, sig = 0;
  HB_CALL(reduced_axes(in, p, reduced));
  for (int d = 0; d < in->ndim; d++) *(d < in->nav_dim ? &nav : &sig) += reduced[d];
  HB_CHECK(nav + sig > 0, HB_EINVALID, hb_param_where(p, "axes"), "axes names no axis of the data");
  if (nav && !sig && hb_stream_virtual_nav(in)) {
    /* a single pattern has no navigation axis: HyperSpy reduces nothing and
     * returns it as it is, which the maximum over one pattern is */
    s->kind = K_MAX, s->skip_nan = 0, s->out = in->dtype;
  }
  s->per_pattern = nav == 0;
  s->some_nav = nav > 0 && nav < in->nav_dim;
  /* the signal axes that stay: the result's (per pattern, or in all) */
  hsize_t shape[HB_MAXDIM];
  hb_axis axes[HB_MAXDIM];
  int kept = 0;
  for (int d = in->nav_dim; d < in->ndim; d++)
    if (!reduced[d]) shape[kept] = in->shape[d], axes[kept++] = in->axes[d];
  if (sig > 0 && kept > 0) HB_CALL(plan_pixel_lists(s, in, reduced));
  else if (sig == 0) s->nout = s->m, s->nred = 1; /* pixel by pixel */
  else s->nout = 1, s->nred = s->m;               /* one value per pattern, or in all */

  static const char *const quantity[] = {"Intensity", "Mean intensity", "Intensity", "Intensity", "Variance",
                                         "Standard deviation"};
  if (s->per_pattern) {
    HB_CALL(hb_kernel_add_output(k, NULL, HB_OUT_NAV, s->out, s->out, quantity[s->kind]));
    if (kept) hb_output_set_shape(hb_kernel_output(k, 0), kept, shape, axes);
    return 0;
  }
  s->acc = scheme_of(s);
  s->scratch = malloc(s->nout * sizeof(double));
  HB_CHECK(s->scratch, HB_EINTERNAL, "memory", "out of memory");
  if (s->some_nav) { /* a partial per position of the navigation axes left over (hb_nav_map) */
    HB_CALL(hb_kernel_add_output(k, NULL, HB_OUT_FULL, s->out, acc_dtype(s), quantity[s->kind]));
    hb_output *o = hb_kernel_output(k, 0);
    if (kept) hb_output_set_shape(o, kept, shape, axes);
    hb_nav_map *m = &o->nav_map;
    m->on = 1;
    m->partial_bytes = partial_elems(s) * hb_dtype_size(acc_dtype(s));
    for (int d = 0; d < in->nav_dim; d++) {
      m->dropped[d] = reduced[d];
      m->factor[d] = m->step[d] = reduced[d] ? in->shape[d] : 1;
      m->shape[d] = reduced[d] ? 1 : in->shape[d];
      m->axes[d] = in->axes[d];
    }
    return 0;
  }
  HB_CALL(hb_kernel_add_output(k, NULL, HB_OUT_SIGNAL, s->out, acc_dtype(s), quantity[s->kind]));
  hb_output *o = hb_kernel_output(k, 0);
  if (partial_elems(s) != s->nout) o->partial_elems = partial_elems(s);
  if (sig) { /* some signal axes too: what stays, or one value on HyperSpy's axis "Scalar" */
    const hb_axis scalar = {.name = "Scalar", .scale = 1, .size = 1};
    const hsize_t one = 1;
    if (kept) hb_output_set_shape(o, kept, shape, axes);
    else hb_output_set_shape(o, 1, &one, &scalar);
  }
  return 0;
}

/* The hot loops are plain C that the compiler vectorises; each is built for
 * x86-64-v4 (AVX-512), x86-64-v3 (AVX2) and baseline x86-64 (SSE2, which has
 * no unsigned 16-bit max) and picked at load time.  Integer
 * results are the same bits in every clone, and float ones too: without
 * -ffast-math the compiler keeps every addition in source order. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define HB_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define HB_CLONES
#endif

static inline void put_real(hb_dtype t, void *out, size_t i, double v) {
  if (t == HB_F32) ((float *)out)[i] = (float)v;
  else ((double *)out)[i] = v;
}

/* sum, mean, max, min over every signal axis: one value per pattern. */
HB_CLONES static void per_pattern(const stat_state *s, const hb_block *b, void *out) {
  const size_t m = b->sig_size;
  switch (s->in) {
#define X(E, T, A, LO, HI, N)                                                  \
  case E: {                                                                    \
    const T *x = b->data;                                                      \
    for (size_t p = 0; p < b->npos; p++, x += m) {                             \
      if (s->kind == K_MEAN && MEAN_IN_DOUBLE(T)) {                           \
        double acc = 0;                                                        \
        for (size_t i = 0; i < m; i++) acc += (double)x[i];                    \
        ((double *)out)[p] = acc / (double)m;                                  \
      } else if (s->kind == K_SUM || s->kind == K_MEAN) {                      \
        A acc = 0;                                                             \
        if (IS_NARROW(T, N))                                                   \
          for (size_t i0 = 0; i0 < m; i0 += NARROW_MAX) {                      \
            size_t i1 = m - i0 < NARROW_MAX ? m : i0 + NARROW_MAX;             \
            N t = 0;                                                           \
            for (size_t i = i0; i < i1; i++) t += (N)x[i];                     \
            acc += (A)t;                                                       \
          }                                                                    \
        else                                                                   \
          for (size_t i = 0; i < m; i++) acc += x[i];                          \
        if (s->kind == K_SUM) ((A *)out)[p] = acc;                             \
        else ((double *)out)[p] = (double)acc / (double)m;                     \
      } else {                                                                 \
        T v = x[0];                                                            \
        if (s->kind == K_MAX)                                                  \
          for (size_t i = 1; i < m; i++) v = PICK_MAX(v, x[i]);                \
        else                                                                   \
          for (size_t i = 1; i < m; i++) v = PICK_MIN(v, x[i]);                \
        ((T *)out)[p] = v;                                                     \
      }                                                                        \
    }                                                                          \
    break;                                                                     \
  }
    STAT_TYPES(X)
#undef X
    default: break;
  }
}

/* Result element q from the n values V (an expression in j): every op, the
 * nan-variants too; std and var in numpy's two passes (the mean, then the
 * squared deviations), in float64 whatever the result's type. */
#define REDUCE_ONE(T, A, V)                                                              \
  switch (s->kind) {                                                                     \
    case K_SUM:                                                                          \
    case K_MEAN:                                                                         \
      if (s->kind == K_MEAN && !s->skip_nan && MEAN_IN_DOUBLE(T)) {                     \
        double acc = 0;                                                                  \
        for (size_t j = 0; j < n; j++) acc += (double)(V);                               \
        put_real(s->out, out, q, acc / (double)n);                                       \
      } else if (!s->skip_nan) {                                                         \
        A acc = 0;                                                                       \
        for (size_t j = 0; j < n; j++) acc += (V);                                       \
        if (s->kind == K_SUM) ((A *)out)[q] = acc;                                       \
        else put_real(s->out, out, q, (double)acc / (double)n);                          \
      } else {                                                                           \
        double acc = 0, c = 0;                                                           \
        for (size_t j = 0; j < n; j++) {                                                 \
          double v = (double)(V);                                                        \
          acc += v == v ? v : 0;                                                         \
          c += v == v;                                                                   \
        }                                                                                \
        put_real(s->out, out, q, s->kind == K_SUM ? acc : acc / c);                      \
      }                                                                                  \
      break;                                                                             \
    case K_MAX:                                                                          \
    case K_MIN: {                                                                        \
      size_t j = 0;                                                                      \
      T v = (V);                                                                         \
      if (s->kind == K_MAX && s->skip_nan)                                               \
        for (j = 1; j < n; j++) v = PICK_NANMAX(v, (V));                                 \
      else if (s->kind == K_MAX)                                                         \
        for (j = 1; j < n; j++) v = PICK_MAX(v, (V));                                    \
      else if (s->skip_nan)                                                              \
        for (j = 1; j < n; j++) v = PICK_NANMIN(v, (V));                                 \
      else                                                                               \
        for (j = 1; j < n; j++) v = PICK_MIN(v, (V));                                    \
      ((T *)out)[q] = v;                                                                 \
      break;                                                                             \
    }                                                                                    \
    default: {                                                                           \
      double sum = 0, c = 0, m2 = 0;                                                     \
      for (size_t j = 0; j < n; j++) {                                                   \
        double v = (double)(V);                                                          \
        int use = !s->skip_nan || v == v;                                                \
        sum += use ? v : 0;                                                              \
        c += use;                                                                        \
      }                                                                                  \
      const double mean = sum / c;                                                       \
      for (size_t j = 0; j < n; j++) {                                                   \
        double v = (double)(V), d = v - mean;                                            \
        m2 += !s->skip_nan || v == v ? d * d : 0;                                        \
      }                                                                                  \
      put_real(s->out, out, q, s->kind == K_STD ? sqrt(m2 / c) : m2 / c);                \
    }                                                                                    \
  }

/* Any op over every signal axis (nout 1) or some of them (an array per
 * pattern): pattern p's element o at out[p * nout + o]. */
HB_CLONES static void per_pattern_general(const stat_state *s, const hb_block *b, void *out) {
  const size_t m = b->sig_size, nout = s->nout, n = s->nred;
  switch (s->in) {
#define X(E, T, A, LO, HI, N)                                                  \
  case E: {                                                                    \
    const T *x = b->data;                                                      \
    for (size_t p = 0; p < b->npos; p++, x += m)                               \
      for (size_t o = 0; o < nout; o++) {                                      \
        const size_t q = p * nout + o;                                         \
        const T *xo = x + (s->base ? s->base[o] : o * n);                      \
        if (s->off) {                                                          \
          const size_t *off = s->off;                                          \
          REDUCE_ONE(T, A, xo[off[j]])                                         \
        } else {                                                               \
          REDUCE_ONE(T, A, xo[j])                                              \
        }                                                                      \
      }                                                                        \
    break;                                                                     \
  }
    STAT_TYPES(X)
#undef X
    default: break;
  }
}

/* sum, mean, max, min: accumulate the patterns of b into a signal-shaped partial. */
HB_CLONES static void per_pixel(const stat_state *s, const hb_block *b, void *acc) {
  const size_t m = b->sig_size;
  switch (s->in) {
#define X(E, T, A, LO, HI, N)                                                        \
  case E: {                                                                          \
    const T *x = b->data;                                                            \
    if (IS_NARROW(T, N) && (s->kind == K_SUM || s->kind == K_MEAN)) {                \
      /* per tile of pixels: up to NARROW_MAX patterns in 32 bits, then once */      \
      /* into the partial */                                                         \
      N t[TILE];                                                                     \
      for (size_t i0 = 0; i0 < m; i0 += TILE) {                                      \
        const size_t w = m - i0 < TILE ? m - i0 : TILE;                              \
        for (size_t p0 = 0; p0 < b->npos; p0 += NARROW_MAX) {                        \
          const size_t p1 = b->npos - p0 < NARROW_MAX ? b->npos : p0 + NARROW_MAX;   \
          for (size_t i = 0; i < w; i++) t[i] = (N)x[p0 * m + i0 + i];               \
          for (size_t p = p0 + 1; p < p1; p++) {                                     \
            const T *xp = x + p * m + i0;                                            \
            for (size_t i = 0; i < w; i++) t[i] += (N)xp[i];                         \
          }                                                                          \
          if (s->kind == K_SUM)                                                      \
            for (size_t i = 0; i < w; i++) ((A *)acc)[i0 + i] += (A)t[i];            \
          else                                                                       \
            for (size_t i = 0; i < w; i++) ((double *)acc)[i0 + i] += (double)t[i];  \
        }                                                                            \
      }                                                                              \
    } else if (s->kind == K_SUM) {                                                   \
      A *a = acc;                                                                    \
      for (size_t p = 0; p < b->npos; p++, x += m)                                   \
        for (size_t i = 0; i < m; i++) a[i] += x[i];                                 \
    } else if (s->kind == K_MEAN) {                                                  \
      double *a = acc;                                                               \
      for (size_t p = 0; p < b->npos; p++, x += m)                                   \
        for (size_t i = 0; i < m; i++) a[i] += (double)x[i];                         \
    } else {                                                                         \
      T *a = acc;                                                                    \
      for (size_t p = 0; p < b->npos; p++, x += m) {                                 \
        if (s->kind == K_MAX)                                                        \
          for (size_t i = 0; i < m; i++) a[i] = PICK_MAX(a[i], x[i]);                \
        else                                                                         \
          for (size_t i = 0; i < m; i++) a[i] = PICK_MIN(a[i], x[i]);                \
      }                                                                              \
    }                                                                                \
    break;                                                                           \
  }
    STAT_TYPES(X)
#undef X
    default: break;
  }
}

#define FLOAT_TYPES(X) X(HB_F32, float) X(HB_F64, double)

/* nansum, nanmean, nanmax, nanmin of float data over the navigation axes. */
HB_CLONES static void per_pixel_nan(const stat_state *s, const hb_block *b, void *acc) {
  const size_t m = b->sig_size;
  switch (s->in) {
#define X(E, T)                                                                   \
  case E: {                                                                       \
    const T *x = b->data;                                                         \
    for (size_t p = 0; p < b->npos; p++, x += m) {                                \
      if (s->acc == ACC_NANSUM) {                                                 \
        double *restrict a = acc;                                                 \
        for (size_t i = 0; i < m; i++) a[i] += x[i] == x[i] ? (double)x[i] : 0;   \
      } else if (s->acc == ACC_NANMEAN) {                                         \
        double *restrict a = acc, *restrict c = a + m;                            \
        for (size_t i = 0; i < m; i++) {                                          \
          a[i] += x[i] == x[i] ? (double)x[i] : 0;                                \
          c[i] += x[i] == x[i];                                                   \
        }                                                                         \
      } else if (s->kind == K_MAX) {                                              \
        T *restrict a = acc;                                                      \
        for (size_t i = 0; i < m; i++) a[i] = PICK_NANMAX(a[i], x[i]);            \
      } else {                                                                    \
        T *restrict a = acc;                                                      \
        for (size_t i = 0; i < m; i++) a[i] = PICK_NANMIN(a[i], x[i]);            \
      }                                                                           \
    }                                                                             \
    break;                                                                        \
  }
    FLOAT_TYPES(X)
#undef X
    default: break;
  }
}

#define NARROW_TYPES(X) X(HB_U8, uint8_t, uint32_t) X(HB_U16, uint16_t, uint32_t) X(HB_I8, int8_t, int32_t) \
  X(HB_I16, int16_t, int32_t)

/* std and var of 8/16-bit integers over the navigation axes: exact sums of
 * x and x^2 per pixel.  Per tile of pixels, up to NARROW_MAX patterns, four
 * per sweep, are summed in 32-bit lanes: x as it is, x^2 (below 2^32 for
 * any 16-bit value) with a count of the times its sum wrapped around; then
 * they go once into the 64-bit partial.  Integer sums are exact in any
 * order. */
#define MOMENT_TILE 2048
HB_CLONES static void per_pixel_moments(const stat_state *s, const hb_block *b, void *acc) {
  const size_t m = b->sig_size, npos = b->npos;
  uint64_t *restrict s1 = acc, *restrict s2 = s1 + m;
  switch (s->in) {
#define X(E, T, N)                                                                          \
  case E: {                                                                                 \
    const T *x = b->data;                                                                   \
    N t1[MOMENT_TILE];                                                                      \
    uint32_t t2[MOMENT_TILE], wraps[MOMENT_TILE];                                           \
    for (size_t i0 = 0; i0 < m; i0 += MOMENT_TILE) {                                        \
      const size_t w = m - i0 < MOMENT_TILE ? m - i0 : MOMENT_TILE;                         \
      for (size_t p0 = 0; p0 < npos; p0 += NARROW_MAX) {                                    \
        const size_t p1 = npos - p0 < NARROW_MAX ? npos : p0 + NARROW_MAX;                  \
        memset(t1, 0, w * sizeof *t1);                                                      \
        memset(t2, 0, w * sizeof *t2);                                                      \
        memset(wraps, 0, w * sizeof *wraps);                                                \
        size_t p = p0;                                                                      \
        for (; p + 4 <= p1; p += 4) {                                                       \
          const T *restrict xa = x + p * m + i0, *restrict xb = xa + m, *restrict xc = xb + m, \
                            *restrict xd = xc + m;                                          \
          for (size_t i = 0; i < w; i++) {                                                  \
            const N va = xa[i], vb = xb[i], vc = xc[i], vd = xd[i];                         \
            const uint32_t qa = (uint32_t)(va * va), qb = (uint32_t)(vb * vb),              \
                           qc = (uint32_t)(vc * vc), qd = (uint32_t)(vd * vd);              \
            uint32_t q = t2[i], c = wraps[i];                                               \
            q += qa, c += q < qa;                                                           \
            q += qb, c += q < qb;                                                           \
            q += qc, c += q < qc;                                                           \
            q += qd, c += q < qd;                                                           \
            t1[i] += va + vb + vc + vd;                                                     \
            t2[i] = q, wraps[i] = c;                                                        \
          }                                                                                 \
        }                                                                                   \
        for (; p < p1; p++) {                                                               \
          const T *restrict xp = x + p * m + i0;                                            \
          for (size_t i = 0; i < w; i++) {                                                  \
            const N v = xp[i];                                                              \
            const uint32_t qv = (uint32_t)(v * v);                                          \
            t1[i] += v;                                                                     \
            t2[i] += qv, wraps[i] += t2[i] < qv;                                            \
          }                                                                                 \
        }                                                                                   \
        for (size_t i = 0; i < w; i++) {                                                    \
          s1[i0 + i] += (uint64_t)(int64_t)t1[i];                                           \
          s2[i0 + i] += ((uint64_t)wraps[i] << 32) + t2[i];                                 \
        }                                                                                   \
      }                                                                                     \
    }                                                                                       \
    break;                                                                                  \
  }
    NARROW_TYPES(X)
#undef X
    default: break;
  }
}

#define WIDE_TYPES(X) X(HB_U32, uint32_t) X(HB_I32, int32_t) X(HB_U64, uint64_t) X(HB_I64, int64_t) \
  X(HB_F32, float) X(HB_F64, double)

/* std and var of floats (and of 32/64-bit integers, in float64 as numpy
 * does) over the navigation axes: per pixel, sums of x - K and (x - K)^2
 * with K the block's first value, which keeps them small, so that M2 =
 * sum((x - K)^2) - sum(x - K)^2 / n loses little to cancellation; merge
 * combines the blocks' means and M2 with Chan's formula.  Four patterns per
 * sweep over a tile, each pixel's values still added one by one in pattern
 * order: the same sums whatever the tiling and the runs. */
HB_CLONES static void per_pixel_shifted(const stat_state *s, const hb_block *b, void *acc) {
  const size_t m = b->sig_size, npos = b->npos;
  const int nan = s->acc == ACC_NANSHIFTED;
  double *count = acc, *restrict k = nan ? count + m : count + 1, *restrict s1 = k + m, *restrict s2 = s1 + m;
  switch (s->in) {
#define X(E, T)                                                                         \
  case E: {                                                                             \
    const T *x = b->data;                                                               \
    size_t first = 0;                                                                   \
    if (!nan && *count == 0 && npos) { /* the block's first pattern: its own shift */   \
      for (size_t i = 0; i < m; i++) k[i] = (double)x[i];                               \
      first = 1;                                                                        \
    }                                                                                   \
    for (size_t i0 = 0; i0 < m; i0 += SHIFT_TILE) {                                     \
      const size_t w = m - i0 < SHIFT_TILE ? m - i0 : SHIFT_TILE;                       \
      double *restrict kt = k + i0, *restrict a = s1 + i0, *restrict q = s2 + i0;       \
      size_t p = first;                                                                 \
      if (!nan)                                                                         \
        for (; p + 4 <= npos; p += 4) {                                                 \
          const T *restrict xa = x + p * m + i0, *restrict xb = xa + m, *restrict xc = xb + m, \
                            *restrict xd = xc + m;                                      \
          for (size_t i = 0; i < w; i++) {                                              \
            const double da = (double)xa[i] - kt[i], db = (double)xb[i] - kt[i],        \
                         dc = (double)xc[i] - kt[i], dd = (double)xd[i] - kt[i];        \
            a[i] = a[i] + da + db + dc + dd;                                            \
            q[i] = q[i] + da * da + db * db + dc * dc + dd * dd;                        \
          }                                                                             \
        }                                                                               \
      for (; p < npos; p++) {                                                           \
        const T *restrict xp = x + p * m + i0;                                          \
        if (!nan) {                                                                     \
          for (size_t i = 0; i < w; i++) {                                              \
            double d = (double)xp[i] - kt[i];                                           \
            a[i] += d;                                                                  \
            q[i] += d * d;                                                              \
          }                                                                             \
        } else {                                                                        \
          double *restrict c = count + i0;                                              \
          for (size_t i = 0; i < w; i++) {                                              \
            double v = (double)xp[i], shift = kt[i] != kt[i] ? v : kt[i];               \
            double d = v - shift;                                                       \
            int use = v == v;                                                           \
            kt[i] = shift;                                                              \
            a[i] += use ? d : 0;                                                        \
            q[i] += use ? d * d : 0;                                                    \
            c[i] += use;                                                                \
          }                                                                             \
        }                                                                               \
      }                                                                                 \
    }                                                                                   \
    if (!nan) *count += (double)npos;                                                   \
    break;                                                                              \
  }
    WIDE_TYPES(X)
#undef X
    default: break;
  }
}

/* The identity of each merge: 0 for sums, the lowest value for max (-inf
 * for floats, so a NaN still wins; NaN for nanmax, so a number wins), the
 * highest for min; shifted sums start without a shift (count 0, or NaN). */
static void stats_init(const hb_kernel *k, int iout, void *acc, size_t n) {
  (void)iout;
  const stat_state *s = k->state;
  const size_t len = partial_len(s, n);
  switch (s->acc) {
    case ACC_PICK:
      switch (s->in) {
#define X(E, T, A, LO, HI, N)                                                                    \
  case E:                                                                                        \
    for (size_t i = 0; i < len; i++)                                                             \
      ((T *)acc)[i] = s->skip_nan ? (T)NAN : s->kind == K_MAX ? (T)LO : (T)HI;                   \
    break;
        STAT_TYPES(X)
#undef X
        default: break;
      }
      break;
    case ACC_NANSHIFTED:
      memset(acc, 0, s->m * sizeof(double));
      for (size_t i = 0; i < s->m; i++) ((double *)acc)[s->m + i] = NAN;
      memset((double *)acc + 2 * s->m, 0, 2 * s->m * sizeof(double));
      break;
    default: memset(acc, 0, len * 8); break; /* every other partial is of 8-byte zeros */
  }
}

/* b's patterns into the partial acc. */
static void accumulate(const stat_state *s, const hb_block *b, void *acc) {
  switch (s->acc) {
    case ACC_SUM:
    case ACC_MEAN: per_pixel(s, b, acc); break;
    case ACC_PICK:
      if (s->skip_nan) per_pixel_nan(s, b, acc);
      else per_pixel(s, b, acc);
      break;
    case ACC_NANSUM:
    case ACC_NANMEAN: per_pixel_nan(s, b, acc); break;
    case ACC_MOMENTS: per_pixel_moments(s, b, acc); break;
    case ACC_SHIFTED:
    case ACC_NANSHIFTED: per_pixel_shifted(s, b, acc); break;
  }
}

static void stats_block(const hb_kernel *k, const hb_block *b, void *const *out) {
  const stat_state *s = k->state;
  if (s->per_pattern) {
    if (!s->off && !s->skip_nan && s->kind <= K_MIN) per_pattern(s, b, out[0]);
    else per_pattern_general(s, b, out[0]);
    return;
  }
  if (!s->some_nav) {
    accumulate(s, b, out[0]);
    return;
  }
  /* each run of patterns of one kept position into that position's partial */
  const hb_nav_map *m = &k->out[0].nav_map;
  const size_t slot = hb_output_slot_bytes(&k->out[0]), bytes = b->sig_size * hb_dtype_size(b->dtype);
  for (size_t p = 0, q; p < b->npos; p = q) {
    long long at = hb_nav_map_place(m, b, p);
    for (q = p + 1; q < b->npos && hb_nav_map_place(m, b, q) == at;) q++;
    hb_block run = *b;
    run.npos = q - p;
    run.data = (const char *)b->data + p * bytes;
    accumulate(s, &run, (char *)out[0] + (size_t)at * slot);
  }
}

/* Chan et al.'s pairwise update: (n, mean, m2) absorbs (nb, meanb, m2b). */
static void chan_merge(double *n, double *mean, double *m2, double nb, double meanb, double m2b) {
  if (nb == 0) return;
  if (*n == 0) {
    *n = nb, *mean = meanb, *m2 = m2b;
    return;
  }
  const double total = *n + nb, delta = meanb - *mean;
  *mean += delta * (nb / total);
  *m2 += m2b + delta * delta * (*n * (nb / total));
  *n = total;
}

/* Pixel i of a shifted partial as (count, mean, M2). */
static void shifted_moments(const stat_state *s, const double *acc, size_t i, double *n, double *mean, double *m2) {
  const size_t m = s->m;
  const double *k = s->acc == ACC_NANSHIFTED ? acc + m : acc + 1, *s1 = k + m, *s2 = s1 + m;
  *n = s->acc == ACC_NANSHIFTED ? acc[i] : acc[0];
  if (*n == 0) {
    *mean = *m2 = 0;
    return;
  }
  *mean = k[i] + s1[i] / *n;
  const double v = s2[i] - s1[i] * (s1[i] / *n);
  *m2 = v < 0 ? 0 : v; /* rounding; NaN stays */
}

/* Shifted partials with one count for every pixel (std, var): Chan's
 * update with its weights computed once (separate restrict arrays, so that
 * it vectorises). */
HB_CLONES static void chan_pixels(size_t m, double na, double nb, double *restrict k, double *restrict s1,
                                  double *restrict s2, const double *restrict ko, const double *restrict s1o,
                                  const double *restrict s2o) {
  const double total = na + nb, ia = 1 / na, ib = 1 / nb, wb = nb / total, wab = na * (nb / total);
  for (size_t i = 0; i < m; i++) {
    const double mean_a = k[i] + s1[i] * ia, mean_b = ko[i] + s1o[i] * ib;
    double m2a = s2[i] - s1[i] * (s1[i] * ia), m2b = s2o[i] - s1o[i] * (s1o[i] * ib);
    m2a = m2a < 0 ? 0 : m2a; /* rounding; NaN stays */
    m2b = m2b < 0 ? 0 : m2b;
    const double delta = mean_b - mean_a;
    k[i] = mean_a + delta * wb;
    s1[i] = 0;
    s2[i] = m2a + m2b + delta * delta * wab;
  }
}

static void merge_shifted(const stat_state *s, double *a, const double *o) {
  const size_t m = s->m;
  if (s->acc == ACC_SHIFTED) { /* the count first, then K, sum(x - K), sum((x - K)^2) */
    if (o[0] == 0) return;
    if (a[0] == 0) {
      memcpy(a, o, partial_elems(s) * sizeof *a);
      return;
    }
    chan_pixels(m, a[0], o[0], a + 1, a + 1 + m, a + 1 + 2 * m, o + 1, o + 1 + m, o + 1 + 2 * m);
    a[0] += o[0];
    return;
  }
  double *c = a, *k = c + m, *s1 = k + m, *s2 = s1 + m;
  for (size_t i = 0; i < m; i++) {
    double n, mean, m2, nb, meanb, m2b;
    shifted_moments(s, a, i, &n, &mean, &m2);
    shifted_moments(s, o, i, &nb, &meanb, &m2b);
    chan_merge(&n, &mean, &m2, nb, meanb, m2b);
    c[i] = n;
    k[i] = n ? mean : NAN; /* no value yet: no shift */
    s1[i] = 0;
    s2[i] = m2;
  }
}

static void stats_merge(const hb_kernel *k, int iout, void *acc, const void *other, size_t n) {
  (void)iout;
  const stat_state *s = k->state;
  const size_t len = partial_len(s, n);
  switch (s->acc) {
    case ACC_MEAN:
    case ACC_NANSUM:
    case ACC_NANMEAN:
      for (size_t i = 0; i < len; i++) ((double *)acc)[i] += ((const double *)other)[i];
      break;
    case ACC_MOMENTS: /* two's complement: the signed sums add alike */
      for (size_t i = 0; i < len; i++) ((uint64_t *)acc)[i] += ((const uint64_t *)other)[i];
      break;
    case ACC_SHIFTED:
    case ACC_NANSHIFTED: merge_shifted(s, acc, other); break;
    case ACC_SUM:
    case ACC_PICK:
      switch (s->in) {
#define X(E, T, A, LO, HI, N)                                                                \
  case E:                                                                                    \
    if (s->acc == ACC_SUM)                                                                   \
      for (size_t i = 0; i < len; i++) ((A *)acc)[i] += ((const A *)other)[i];                 \
    else if (s->kind == K_MAX && s->skip_nan)                                                \
      for (size_t i = 0; i < len; i++) ((T *)acc)[i] = PICK_NANMAX(((T *)acc)[i], ((const T *)other)[i]); \
    else if (s->kind == K_MAX)                                                               \
      for (size_t i = 0; i < len; i++) ((T *)acc)[i] = PICK_MAX(((T *)acc)[i], ((const T *)other)[i]); \
    else if (s->skip_nan)                                                                    \
      for (size_t i = 0; i < len; i++) ((T *)acc)[i] = PICK_NANMIN(((T *)acc)[i], ((const T *)other)[i]); \
    else                                                                                     \
      for (size_t i = 0; i < len; i++) ((T *)acc)[i] = PICK_MIN(((T *)acc)[i], ((const T *)other)[i]); \
    break;
        STAT_TYPES(X)
#undef X
        default: break;
      }
      break;
  }
}

/* Result element o: its pixels' partials folded in ascending order (one
 * pixel over the navigation axes alone), then the statistic. */
static void finish_one(const stat_state *s, const void *acc, size_t o, uint64_t npatterns, void *res) {
  const size_t m = s->m, n = s->nred, first = s->base ? s->base[o] : o * n;
#define PIXEL(j) (first + (s->off ? s->off[j] : (j)))
  switch (s->acc) {
    case ACC_SUM:
    case ACC_PICK:
      switch (s->in) {
#define X(E, T, A, LO, HI, N)                                                                \
  case E:                                                                                    \
    if (s->acc == ACC_SUM) {                                                                 \
      A v = 0;                                                                               \
      for (size_t j = 0; j < n; j++) v += ((const A *)acc)[PIXEL(j)];                        \
      ((A *)res)[o] = v;                                                                     \
    } else {                                                                                 \
      T v = ((const T *)acc)[PIXEL(0)];                                                      \
      for (size_t j = 1; j < n; j++) {                                                       \
        T w = ((const T *)acc)[PIXEL(j)];                                                    \
        if (s->kind == K_MAX) v = s->skip_nan ? PICK_NANMAX(v, w) : PICK_MAX(v, w);          \
        else v = s->skip_nan ? PICK_NANMIN(v, w) : PICK_MIN(v, w);                           \
      }                                                                                      \
      ((T *)res)[o] = v;                                                                     \
    }                                                                                        \
    break;
        STAT_TYPES(X)
#undef X
        default: break;
      }
      return;
    case ACC_MEAN:
    case ACC_NANSUM:
    case ACC_NANMEAN: {
      const double *a = acc;
      double sum = 0, count = s->acc == ACC_MEAN ? (double)npatterns * (double)n : 0;
      for (size_t j = 0; j < n; j++) {
        sum += a[PIXEL(j)];
        if (s->acc == ACC_NANMEAN) count += a[m + PIXEL(j)];
      }
      put_real(s->out, res, o, s->acc == ACC_NANSUM ? sum : sum / count);
      return;
    }
    case ACC_MOMENTS: {
      /* N sum(x^2) - (sum x)^2 exactly, then one division in long double */
      const uint64_t *a = acc;
      const int is_signed = hb_dtype_is_signed(s->in);
      __int128 s1 = 0;
      unsigned __int128 s2 = 0;
      for (size_t j = 0; j < n; j++) {
        s1 += is_signed ? (__int128)(int64_t)a[PIXEL(j)] : (__int128)a[PIXEL(j)];
        s2 += a[m + PIXEL(j)];
      }
      const unsigned __int128 count = (unsigned __int128)npatterns * n;
      const unsigned __int128 mag = (unsigned __int128)(s1 < 0 ? -s1 : s1);
      const unsigned __int128 num = count * s2 - mag * mag;
      const long double c = (long double)count;
      const double var = (double)((long double)num / (c * c));
      put_real(s->out, res, o, s->kind == K_STD ? sqrt(var) : var);
      return;
    }
    case ACC_SHIFTED:
    case ACC_NANSHIFTED: {
      double count = 0, mean = 0, m2 = 0;
      for (size_t j = 0; j < n; j++) {
        double nb, meanb, m2b;
        shifted_moments(s, acc, PIXEL(j), &nb, &meanb, &m2b);
        chan_merge(&count, &mean, &m2, nb, meanb, m2b);
      }
      const double var = m2 / count; /* no values: 0/0, NaN as numpy's */
      put_real(s->out, res, o, s->kind == K_STD ? sqrt(var) : var);
      return;
    }
  }
#undef PIXEL
}

static void stats_finish(const hb_kernel *k, int iout, void *acc, size_t n, uint64_t npatterns) {
  (void)iout, (void)n;
  const stat_state *s = k->state;
  for (size_t o = 0; o < s->nout; o++) finish_one(s, acc, o, npatterns, s->scratch);
  memcpy(acc, s->scratch, s->nout * hb_dtype_size(s->out));
}

static void stats_destroy(hb_kernel *k) {
  stat_state *s = k->state;
  if (s) free(s->base), free(s->off), free(s->scratch);
  free(s);
}

#define STATS_OUTPUTS                                                                                        \
  "axes: navigation -> <name>, signal-shaped; axes: signal -> <name>, one value per pattern; some signal axes " \
  "-> <name>, an array per pattern (the other signal axes); every navigation axis and some signal axes -> "     \
  "<name>, shaped as the other signal axes"
#define STATS_DEF(NAME, WHAT)                                                                            \
  const hb_kernel_def hb_kernel_##NAME = {                                                               \
      .op = #NAME,                                                                                       \
      .summary = WHAT,                                                                                   \
      .params = hb_stats_params,                                                                         \
      .outputs_doc = STATS_OUTPUTS,                                                                      \
      .plan = stats_plan,                                                                                \
      .block = stats_block,                                                                              \
      .merge = stats_merge,                                                                              \
      .finish = stats_finish,                                                                            \
      .destroy = stats_destroy,                                                                          \
      .init = stats_init,                                                                                \
  };

STATS_DEF(sum, "sum of the data (integers accumulate exactly in 64 bits; floats in float64, also the result's "
               "dtype for float32 data, which HyperSpy keeps as float32)")
STATS_DEF(mean, "mean of the data, as float64 (also for float32 data, which HyperSpy keeps as float32)")
STATS_DEF(max, "maximum, in the data's dtype (NaN wins, as in numpy)")
STATS_DEF(min, "minimum, in the data's dtype (NaN wins, as in numpy)")
STATS_DEF(std, "standard deviation with ddof 0 (HyperSpy has no ddof): float32 for float32 data, else float64. "
               "Computed in float64 (8/16-bit integers over the navigation axes: exact integer moments), so a "
               "float32 result is the float64 one rounded, closer than numpy's float32 arithmetic")
STATS_DEF(var, "variance with ddof 0 (HyperSpy has no ddof): float32 for float32 data, else float64; computed as "
               "std is")
STATS_DEF(nansum, "sum of the values that are not NaN (all NaN: 0): integers as sum (uint16 -> uint64), floats "
                  "keep their dtype, accumulated in float64")
STATS_DEF(nanmean, "mean of the values that are not NaN (all NaN: NaN): float32 for float32 data, else float64; "
                   "accumulated in float64")
STATS_DEF(nanmax, "maximum of the values that are not NaN (all NaN: NaN), in the data's dtype")
STATS_DEF(nanmin, "minimum of the values that are not NaN (all NaN: NaN), in the data's dtype")
STATS_DEF(nanstd, "standard deviation of the values that are not NaN (all NaN: NaN), ddof 0, as std")
STATS_DEF(nanvar, "variance of the values that are not NaN (all NaN: NaN), ddof 0, as std")
