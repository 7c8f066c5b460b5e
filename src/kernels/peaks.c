/* find_peaks: the local maxima of each pattern, a list of (row, column) per
 * pattern, as HyperSpy's Signal2D.find_peaks(method="local_max") gives them
 * (skimage.feature.peak_local_max, then sorted by column, then row):
 *
 * - a pixel is a candidate when it equals the maximum of the
 *   (2 min_distance + 1)^2 square around it, pixels outside the pattern
 *   counting as 0 (scipy's maximum_filter, mode "constant"), and is above
 *   the threshold: threshold_abs (default: the pattern's minimum), raised to
 *   threshold_rel x the pattern's maximum when given;
 * - a pattern whose every pixel equals that maximum has none;
 * - with exclude_border, none within min_distance of an edge;
 * - in the order of np.argsort(-values) (npsort.c: numpy's unstable
 *   introsort, which decides among equal values), a candidate closer than
 *   min_distance (Chebyshev) to one kept is dropped.  Only equal values can
 *   be that close, so the order of ties decides which of them stay.
 *
 * A pattern without peaks has an empty list (HyperSpy stores [[nan, nan]]).
 * The results are ragged: raggedwrite.c. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "hb_error.h"
#include "hb_kernel.h"
#include "hb_npsort.h"

static const hb_param_spec peaks_params[] = {
    {"min_distance", HB_P_INT, HB_DEFAULT_INT(1),
     .help = "half-width of the maximum filter, and the least spacing of two peaks (pixels, Chebyshev)"},
    {"threshold_abs", HB_P_FLOAT, .dflt_note = "the pattern's minimum", .help = "a peak is above this value"},
    {"threshold_rel", HB_P_FLOAT, .dflt_note = "none",
     .help = "a peak is also above threshold_rel x the pattern's maximum"},
    {"exclude_border", HB_P_BOOL, HB_DEFAULT_BOOL(1), .help = "no peaks within min_distance of an edge"},
    HB_PARAM_END,
};

typedef struct {
  long r;           /* min_distance */
  int has_abs, has_rel, exclude_border;
  double abs, rel;
  size_t ny, nx;
} peaks;

static int peaks_plan(hb_kernel *k, const hb_stream *in, const hb_params *p) {
  HB_CHECK(in->sig_dim == 2, HB_EINVALID, hb_params_where(p),
           "find_peaks needs a 2-D signal; this input's signal has %d axes", in->sig_dim);
  peaks *s;
  HB_ALLOC(s, 1);
  k->state = s;
  s->r = (long)hb_param_int(p, "min_distance");
  HB_CHECK(s->r >= 1, HB_EINVALID, hb_param_where(p, "min_distance"), "min_distance must be at least 1, got %ld",
           s->r);
  s->has_abs = hb_param_given(p, "threshold_abs");
  s->has_rel = hb_param_given(p, "threshold_rel");
  s->abs = hb_param_float(p, "threshold_abs");
  s->rel = hb_param_float(p, "threshold_rel");
  s->exclude_border = hb_param_bool(p, "exclude_border");
  s->ny = in->shape[in->nav_dim];
  s->nx = in->shape[in->nav_dim + 1];
  HB_CALL(hb_kernel_add_output(k, NULL, HB_OUT_RAGGED, HB_I64, HB_I64, "Peak position"));
  hb_output *o = hb_kernel_output(k, 0);
  hsize_t two = 2;
  hb_output_set_shape(o, 1, &two, NULL);
  return 0;
}

/* NaN never wins, as in the comparisons of scipy's filter */
#define MAX_OF(a, b) ((a) > (b) ? (a) : (b))

/* 1-D running maximum over [i - r, i + r], outside counting as 0: van Herk /
 * Gil-Werman, three comparisons per sample whatever r.  The line, padded
 * with r zeros each side, is cut into blocks of the window's width w; the
 * window starting at j is max(suffix max of j's block from j, prefix max of
 * the next block up to j + w - 1).  Maxima are exact, so the result is the
 * naive filter's bit for bit.  work holds 3 (n + 2r) doubles. */
static void max_line(const double *in, size_t n, size_t stride, long r, double *out, double *work) {
  const size_t w = 2 * (size_t)r + 1, len = n + 2 * (size_t)r;
  double *a = work, *pre = work + len, *suf = work + 2 * len;
  for (size_t j = 0; j < len; j++)
    a[j] = j < (size_t)r || j >= (size_t)r + n ? 0 : in[(j - (size_t)r) * stride];
  for (size_t j = 0; j < len; j++) pre[j] = j % w ? MAX_OF(a[j], pre[j - 1]) : MAX_OF(a[j], -INFINITY);
  for (size_t j = len; j-- > 0;)
    suf[j] = j + 1 == len || (j + 1) % w == 0 ? MAX_OF(a[j], -INFINITY) : MAX_OF(a[j], suf[j + 1]);
  for (size_t i = 0; i < n; i++) out[i * stride] = MAX_OF(pre[i + w - 1], suf[i]);
}

/* Candidates, in row-major order as np.nonzero gives them: flat index and
 * sort key of -value; order: their argsort. */
typedef struct {
  size_t *at, *order;
  uint64_t *key;
} cands;

/* HyperSpy's order: by column, then row */
static int by_column(const void *a, const void *b) {
  const int64_t *p = a, *q = b;
  if (p[1] != q[1]) return p[1] < q[1] ? -1 : 1;
  return (p[0] > q[0]) - (p[0] < q[0]);
}

/* One pattern (raw: its values in dtype dt, img: as doubles) into its list;
 * tmp/filt of ny*nx, work of 3 (max(ny, nx) + 2r), c of ny*nx. */
static size_t one_pattern(const peaks *s, hb_dtype dt, const void *raw, const double *img, double *tmp,
                          double *filt, double *work, cands c, int64_t *out) {
  size_t ny = s->ny, nx = s->nx, m = ny * nx;
  /* numpy's min and max are NaN when a pixel is */
  double lo = INFINITY, hi = -INFINITY;
  for (size_t i = 0; i < m; i++) {
    if (isnan(img[i])) {
      lo = hi = NAN;
      break;
    }
    lo = img[i] < lo ? img[i] : lo, hi = img[i] > hi ? img[i] : hi;
  }
  /* skimage's max(threshold, threshold_rel * max) keeps the first unless the
   * second is greater: a NaN maximum leaves threshold_abs, a NaN minimum stays */
  double t = s->has_abs ? s->abs : lo;
  if (s->has_rel && s->rel * hi > t) t = s->rel * hi;
  /* numpy compares float32 data with a float threshold in float32 (value-based
   * casting) unless |threshold| >= 3.4e38; other dtypes with a float threshold
   * in float64, and any dtype with its own minimum in that dtype: both as in
   * double here (64-bit integers past 2^53 aside) */
  if (dt == HB_F32 && (!isfinite(t) || fabs(t) < 3.4e38)) t = (float)t;
  for (size_t y = 0; y < ny; y++) max_line(img + y * nx, nx, 1, s->r, tmp + y * nx, work);
  for (size_t x = 0; x < nx; x++) max_line(tmp + x, ny, nx, s->r, filt + x, work);
  int trivial = 1;
  for (size_t i = 0; i < m && trivial; i++) trivial = img[i] == filt[i];
  if (trivial) return 0;
  long b = s->exclude_border ? s->r : 0;
  size_t n = 0;
  for (long y = b; y < (long)ny - b; y++)
    for (long x = b; x < (long)nx - b; x++) {
      size_t i = (size_t)y * nx + (size_t)x;
      if (img[i] == filt[i] && img[i] > t) c.at[n] = i, c.key[n++] = hb_np_key(dt, raw, i, 1);
    }
  hb_np_argsort(c.key, n, c.order);
  size_t kept = 0;
  for (size_t k = 0; k < n; k++) {
    int64_t y = (int64_t)(c.at[c.order[k]] / nx), x = (int64_t)(c.at[c.order[k]] % nx);
    int near = 0;
    for (size_t j = 0; j < kept && !near; j++)
      near = labs((long)(out[2 * j] - y)) < s->r && labs((long)(out[2 * j + 1] - x)) < s->r;
    if (!near) out[2 * kept] = y, out[2 * kept + 1] = x, kept++;
  }
  qsort(out, kept, 2 * sizeof *out, by_column);
  return kept;
}

static void peaks_block(const hb_kernel *k, const hb_block *b, void *const *out) {
  const peaks *s = k->state;
  size_t m = s->ny * s->nx, line = (s->ny > s->nx ? s->ny : s->nx) + 2 * (size_t)s->r;
  double *img = malloc((3 * m + 3 * line) * sizeof *img);
  cands c = {malloc(m * sizeof *c.at), malloc(m * sizeof *c.order), malloc(m * sizeof *c.key)};
  int64_t *list = malloc(2 * m * sizeof *list);
  hb_ragged *r = out[0];
  if (!img || !c.at || !c.order || !c.key || !list) {
    hb_ragged_out_of_memory(r); /* the engine reports it */
  } else {
    for (size_t p = 0; p < b->npos; p++) {
      switch (b->dtype) {
#define X(E, T)                                                          \
  case E:                                                                \
    for (size_t i = 0; i < m; i++) img[i] = (double)((const T *)b->data)[p * m + i]; \
    break;
        HB_FOREACH_DTYPE(X)
#undef X
        default: break;
      }
      const void *raw = (const char *)b->data + p * m * hb_dtype_size(b->dtype);
      size_t n = one_pattern(s, b->dtype, raw, img, img + m, img + 2 * m, img + 3 * m, c, list);
      hb_ragged_add(r, p, list, n);
    }
  }
  free(img), free(c.at), free(c.order), free(c.key), free(list);
}

static void peaks_destroy(hb_kernel *k) { free(k->state); }

const hb_kernel_def hb_kernel_find_peaks = {
    .op = "find_peaks",
    .summary = "local maxima of each pattern, as HyperSpy's find_peaks(method='local_max'): a ragged list of "
               "(row, column) per pattern",
    .params = peaks_params,
    .outputs_doc = "ragged: per pattern a list of int64 (row, column), sorted by column then row, in "
                   "<output stem>.ragged.hspy",
    .plan = peaks_plan,
    .block = peaks_block,
    .destroy = peaks_destroy,
};
