/* Preprocess filter_hot_pixels: a pixel brighter than threshold × max(1,
 * median of its 8 neighbours) is replaced by that median, per pattern.  The
 * floor of 1 keeps zero and negative backgrounds (dark-subtracted data) from
 * flagging ordinary noise. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hb_error.h"
#include "hb_kernel.h"

typedef struct {
  double threshold;
  size_t kx, ky;
} hotpix;

static const hb_param_spec hotpix_params[] = {
    {"threshold", HB_P_FLOAT, HB_DEFAULT_FLOAT(8),
     .help = "hot when value > threshold * max(1, median of its 8 neighbours)"},
    HB_PARAM_END,
};

static int hotpix_plan(hb_transform *p, const hb_params *par) {
  const hb_stream *in = &p->in;
  hotpix *h;
  HB_ALLOC(h, 1);
  p->state = h;
  h->threshold = hb_param_float(par, "threshold");
  HB_CHECK(h->threshold > 1, HB_EINVALID, hb_param_where(par, "threshold"), "threshold must be > 1, got %g",
           h->threshold);
  HB_CHECK(in->sig_dim == 2, HB_EINVALID, hb_params_where(par), "filter_hot_pixels needs a 2-D signal");
  h->ky = in->shape[in->nav_dim];
  h->kx = in->shape[in->nav_dim + 1];
  return 0;
}

static double median(double *v, int n) {
  for (int i = 1; i < n; i++) /* insertion sort: n <= 8 */
    for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
      double t = v[j];
      v[j] = v[j - 1];
      v[j - 1] = t;
    }
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Integers take the rounded median; floats take it as it is. */
#define HOTPIX_ROUND(T, v) ((T)((T)0.5 == 0 ? llround(v) : (v)))

/* The minimum of the 8 neighbours bounds their median from below, so it
 * screens pixels cheaply; only suspects pay for the median.  Neighbours are
 * read from the pattern as it came (orig), so a replaced pixel never counts
 * as a neighbour and the result does not depend on the scan order. */
#define HOTPIX_LOOP(T)                                                                          \
  {                                                                                             \
    T *x = data, *orig = scratch;                                                               \
    for (size_t p = 0; p < b->npos; p++, x += kx * ky) {                                        \
      memcpy(orig, x, kx * ky * sizeof(T));                                                     \
      for (size_t y = 0; y < ky; y++)                                                           \
        for (size_t c = 0; c < kx; c++) {                                                       \
          double v = (double)orig[y * kx + c], nb[8], lo = HUGE_VAL;                            \
          int n = 0;                                                                            \
          for (int dy = -1; dy <= 1; dy++)                                                      \
            for (int dx = -1; dx <= 1; dx++) {                                                  \
              long yy = (long)y + dy, xx = (long)c + dx;                                        \
              if ((dx || dy) && yy >= 0 && xx >= 0 && yy < (long)ky && xx < (long)kx) {         \
                nb[n] = (double)orig[yy * (long)kx + xx];                                       \
                if (nb[n] < lo) lo = nb[n];                                                     \
                n++;                                                                            \
              }                                                                                 \
            }                                                                                   \
          if (!n || !(v > t * fmax(lo, 1))) continue;                                           \
          double med = median(nb, n);                                                           \
          if (v > t * fmax(med, 1)) x[y * kx + c] = HOTPIX_ROUND(T, med);                       \
        }                                                                                       \
    }                                                                                           \
  }

static void hotpix_apply(const hb_transform *pp, const hb_block *b, void *data, void *out) {
  (void)out; /* in place */
  const hotpix *h = pp->state;
  const size_t kx = h->kx, ky = h->ky;
  const double t = h->threshold;
  /* per call, not per transform: blocks may be filtered on several threads */
  void *scratch = malloc(kx * ky * hb_dtype_size(b->dtype));
  if (!scratch) abort();
  switch (b->dtype) {
#define X(E, T) \
  case E: HOTPIX_LOOP(T) break;
    HB_FOREACH_DTYPE(X)
#undef X
    default: break;
  }
  free(scratch);
}

static void hotpix_destroy(hb_transform *p) { free(p->state); }

const hb_transform_def hb_transform_filter_hot_pixels = {
    .op = "filter_hot_pixels",
    .summary = "replace isolated hot pixels by the median of their 8 neighbours (as the pattern came, whatever was "
               "replaced beside them), per pattern",
    .params = hotpix_params,
    .plan = hotpix_plan,
    .apply = hotpix_apply,
    .destroy = hotpix_destroy,
    .in_place = 1,
};
