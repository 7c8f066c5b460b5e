/* sum, mean, max, min over the navigation or the signal axes. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hb_error.h"
#include "hb_kernel.h"

typedef enum { ST_SUM, ST_MEAN, ST_MAX, ST_MIN } stat_op;

typedef struct {
  stat_op op;
  int over_nav;
  hb_dtype in;
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
#define IS_NARROW(T, N) (sizeof(N) == 4 && sizeof(T) <= 2)

/* NaN wins, as in numpy's max/min */
#define PICK_MAX(m, v) ((v) > (m) || (v) != (v) ? (v) : (m))
#define PICK_MIN(m, v) ((v) < (m) || (v) != (v) ? (v) : (m))

const hb_param_spec hb_stats_params[] = {
    {"axes", HB_P_ENUM, HB_REQUIRED, .choices = "navigation|signal",
     .help = "reduce over every navigation axis (a signal-shaped result) or every signal axis (one value per pattern)"},
    HB_PARAM_END,
};

static int stats_plan(hb_kernel *k, const hb_stream *in, const hb_params *p) {
  stat_state *s;
  HB_ALLOC(s, 1);
  k->state = s;
  const char *op = k->def->op;
  s->op = !strcmp(op, "sum") ? ST_SUM : !strcmp(op, "mean") ? ST_MEAN : !strcmp(op, "max") ? ST_MAX : ST_MIN;
  s->over_nav = !strcmp(hb_param_str(p, "axes"), "navigation");
  s->in = in->dtype;
  hb_dtype acc = s->op == ST_SUM ? hb_dtype_sum(in->dtype) : s->op == ST_MEAN ? HB_F64 : in->dtype;
  return hb_kernel_add_output(k, NULL, s->over_nav ? HB_OUT_SIGNAL : HB_OUT_NAV, acc, acc,
                              s->op == ST_MEAN ? "Mean intensity" : "Intensity");
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

/* One value per pattern. */
HB_CLONES static void per_pattern(const stat_state *s, const hb_block *b, void *out) {
  const size_t m = b->sig_size;
  switch (s->in) {
#define X(E, T, A, LO, HI, N)                                                  \
  case E: {                                                                    \
    const T *x = b->data;                                                      \
    for (size_t p = 0; p < b->npos; p++, x += m) {                             \
      if (s->op == ST_SUM || s->op == ST_MEAN) {                               \
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
        if (s->op == ST_SUM) ((A *)out)[p] = acc;                              \
        else ((double *)out)[p] = (double)acc / (double)m;                     \
      } else {                                                                 \
        T v = x[0];                                                            \
        if (s->op == ST_MAX)                                                   \
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

/* Accumulate the patterns of b into a signal-shaped partial. */
HB_CLONES static void per_pixel(const stat_state *s, const hb_block *b, void *acc) {
  const size_t m = b->sig_size;
  switch (s->in) {
#define X(E, T, A, LO, HI, N)                                                        \
  case E: {                                                                          \
    const T *x = b->data;                                                            \
    if (IS_NARROW(T, N) && (s->op == ST_SUM || s->op == ST_MEAN)) {                  \
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
          if (s->op == ST_SUM)                                                       \
            for (size_t i = 0; i < w; i++) ((A *)acc)[i0 + i] += (A)t[i];            \
          else                                                                       \
            for (size_t i = 0; i < w; i++) ((double *)acc)[i0 + i] += (double)t[i];  \
        }                                                                            \
      }                                                                              \
    } else if (s->op == ST_SUM) {                                                    \
      A *a = acc;                                                                    \
      for (size_t p = 0; p < b->npos; p++, x += m)                                   \
        for (size_t i = 0; i < m; i++) a[i] += x[i];                                 \
    } else if (s->op == ST_MEAN) {                                                   \
      double *a = acc;                                                               \
      for (size_t p = 0; p < b->npos; p++, x += m)                                   \
        for (size_t i = 0; i < m; i++) a[i] += (double)x[i];                         \
    } else {                                                                         \
      T *a = acc;                                                                    \
      for (size_t p = 0; p < b->npos; p++, x += m) {                                 \
        if (s->op == ST_MAX)                                                         \
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

/* The identity of each merge: 0 for sums, the lowest value for max (-inf
 * for floats, so a NaN still wins), the highest for min. */
static void stats_init(const hb_kernel *k, int iout, void *acc, size_t n) {
  (void)iout;
  const stat_state *s = k->state;
  if (s->op == ST_MEAN) {
    memset(acc, 0, n * sizeof(double));
    return;
  }
  switch (s->in) {
#define X(E, T, A, LO, HI, N)                                               \
  case E:                                                                   \
    if (s->op == ST_SUM) memset(acc, 0, n * sizeof(A));                     \
    else                                                                    \
      for (size_t i = 0; i < n; i++) ((T *)acc)[i] = s->op == ST_MAX ? LO : HI; \
    break;
    STAT_TYPES(X)
#undef X
    default: break;
  }
}

static void stats_block(const hb_kernel *k, const hb_block *b, void *const *out) {
  const stat_state *s = k->state;
  if (s->over_nav) per_pixel(s, b, out[0]);
  else per_pattern(s, b, out[0]);
}

static void stats_merge(const hb_kernel *k, int iout, void *acc, const void *other, size_t n) {
  (void)iout;
  const stat_state *s = k->state;
  if (s->op == ST_MEAN) {
    double *a = acc;
    const double *o = other;
    for (size_t i = 0; i < n; i++) a[i] += o[i];
    return;
  }
  switch (s->in) {
#define X(E, T, A, LO, HI, N)                                                                \
  case E:                                                                            \
    if (s->op == ST_SUM)                                                             \
      for (size_t i = 0; i < n; i++) ((A *)acc)[i] += ((const A *)other)[i];         \
    else if (s->op == ST_MAX)                                                        \
      for (size_t i = 0; i < n; i++)                                                 \
        ((T *)acc)[i] = PICK_MAX(((T *)acc)[i], ((const T *)other)[i]);              \
    else                                                                             \
      for (size_t i = 0; i < n; i++)                                                 \
        ((T *)acc)[i] = PICK_MIN(((T *)acc)[i], ((const T *)other)[i]);              \
    break;
    STAT_TYPES(X)
#undef X
    default: break;
  }
}

static void stats_finish(const hb_kernel *k, int iout, void *acc, size_t n, uint64_t npatterns) {
  (void)iout;
  const stat_state *s = k->state;
  if (s->op != ST_MEAN) return;
  double *a = acc;
  for (size_t i = 0; i < n; i++) a[i] /= (double)npatterns;
}

static void stats_destroy(hb_kernel *k) { free(k->state); }


#define STATS_DEF(NAME, WHAT)                                                                            \
  const hb_kernel_def hb_kernel_##NAME = {                                                               \
      .op = #NAME,                                                                                       \
      .summary = WHAT,                                                                                   \
      .params = hb_stats_params,                                                                         \
      .outputs_doc = "axes: signal -> <name>, navigation-shaped; axes: navigation -> <name>, signal-shaped", \
      .plan = stats_plan,                                                                           \
      .block = stats_block,                                                                              \
      .merge = stats_merge,                                                                              \
      .finish = stats_finish,                                                                            \
      .destroy = stats_destroy,                                                                          \
      .init = stats_init,                                                                                \
  };

STATS_DEF(sum, "sum of the data (integers accumulate exactly in 64 bits; floats in float64)")
STATS_DEF(mean, "mean of the data, as float64")
STATS_DEF(max, "maximum, in the data's dtype (NaN wins, as in numpy)")
STATS_DEF(min, "minimum, in the data's dtype (NaN wins, as in numpy)")
