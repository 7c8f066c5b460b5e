/* histogram: HyperSpy's eager s.get_histogram(bins, range_bins,
 * max_num_bins) over all the data, NaN removed; and
 * estimate_poissonian_noise_variance, per pattern
 * (docs/hyperspy-semantics.md, sections 10 and 11; docs/histogram.md).
 *
 * The bin edges need the whole data first, so the histogram takes passes:
 *   1     count, min and max of every value; count, shift and shifted sums
 *         of the values inside range_bins (scott's std, Chan's merge); for
 *         'fd' a histogram of the top digit of each value's order key
 *   2..L  'fd' on 32/64-bit types only: per needed order statistic, a
 *         histogram of the next 16-bit digit among the values whose key
 *         starts with the digits found so far
 *   last  the counts, into a result whose length `refine` sets.
 * The order keys make the 25th/75th percentiles exact (numpy's linear
 * interpolation) with partials bounded by 65536 counts per statistic. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hb_error.h"
#include "hb_h5.h"
#include "hb_kernel.h"

/* ---- histogram -------------------------------------------------------------- */

static const hb_param_spec hist_params[] = {
    {"bins", HB_P_INT, HB_DEFAULT_STR("fd"), .choices = "fd|scott",
     .help = "the number of bins, or the estimator of their width: fd (Freedman-Diaconis: 2 IQR n^(-1/3), exact "
             "percentiles) or scott ((24 sqrt(pi)/n)^(1/3) std), as numpy.histogram_bin_edges"},
    {"range_bins", HB_P_NUMBERS, .count = 2, .dflt_note = "the data's min and max",
     .help = "[lo, hi]: the range of the bins; values outside are not counted (and not used by fd or scott)"},
    {"max_num_bins", HB_P_INT, HB_DEFAULT_INT(250),
     .help = "at most this many bins: with more, HyperSpy's cap applies (exactly max_num_bins bins over the "
             "data's min and max, range_bins dropped)"},
    HB_PARAM_END,
};

enum { BINS_INT, BINS_FD, BINS_SCOTT };
enum { ST_N, ST_MIN, ST_MAX, ST_NT, ST_K, ST_S1, ST_S2, ST_LEN }; /* the pass-1 partial (float64) */
#define DIGIT 16
#define SLOTS 4                   /* the order statistics fd interpolates between */
#define MAX_BINS_LIMIT (1 << 20)  /* a partial of 8 MiB */

typedef struct {
  hb_dtype dt;
  int mode;
  long long bins, max_bins;
  int has_range;
  double lo, hi;          /* as given */
  double tlo, thi;        /* the same as numpy compares them with the data (float32 data: rounded) */
  int keybits, d1, nlevels; /* fd: order-key bits, the first digit's, the digit levels */
  int o_stats, o_level[8], o_hist, hist_pass;
  int pass;               /* the kernel's current pass (refine sets it): other passes' partials are not merged */
  /* fd, from `refine`: the ranks needed, and after the levels known so far, each rank's key prefix
   * (resolved bits) and its rank among the values with that prefix */
  uint64_t rank[SLOTS], prefix[SLOTS], within[SLOTS];
  int resolved;
  int nslots;             /* this level's distinct prefixes, slot_prefix[] */
  uint64_t slot_prefix[SLOTS];
  /* the last pass: the edges, as values of edge_dt, and a lookup table for 8/16-bit integers */
  size_t nbins;
  hb_dtype edge_dt;
  double *edges;
  int32_t *lut;
  char where[256], title[300];
} hist;

/* ---- order keys: unsigned integers ordered as the values --------------------- */

#define KEY_KIND(E) ((E) == HB_F32 || (E) == HB_F64 ? 2 : hb_dtype_is_signed(E) ? 1 : 0)

static uint64_t key_of_bits(uint64_t u, int kind, int nbits) {
  uint64_t top = (uint64_t)1 << (nbits - 1), mask = nbits == 64 ? ~(uint64_t)0 : ((uint64_t)1 << nbits) - 1;
  u &= mask;
  if (kind == 1) return u ^ top;
  if (kind == 2) return (u & top) ? ~u & mask : u | top;
  return u;
}

static uint64_t bits_of_key(uint64_t k, int kind, int nbits) {
  uint64_t top = (uint64_t)1 << (nbits - 1), mask = nbits == 64 ? ~(uint64_t)0 : ((uint64_t)1 << nbits) - 1;
  if (kind == 1) return k ^ top;
  if (kind == 2) return (k & top) ? k & ~top : ~k & mask;
  return k;
}

/* The per-type loops: X(enum, C type, unsigned of its width). */
#define HIST_TYPES(X)                                                                                          \
  X(HB_U8, uint8_t, uint8_t) X(HB_U16, uint16_t, uint16_t) X(HB_U32, uint32_t, uint32_t)                        \
  X(HB_U64, uint64_t, uint64_t) X(HB_I8, int8_t, uint8_t) X(HB_I16, int16_t, uint16_t)                          \
  X(HB_I32, int32_t, uint32_t) X(HB_I64, int64_t, uint64_t) X(HB_F32, float, uint32_t) X(HB_F64, double, uint64_t)

/* numpy's percentile (linear) between sorted values a <= b given by their keys:
 * b - a in the data's type (float32 rounds, integers wrap as numpy's do), the rest in float64. */
static double lerp_keys(hb_dtype t, uint64_t ka, uint64_t kb, double g) {
  double a = 0, diff = 0;
  int kind = KEY_KIND(t), nb = (int)hb_dtype_size(t) * 8;
  uint64_t ua = bits_of_key(ka, kind, nb), ub = bits_of_key(kb, kind, nb);
  switch (t) {
#define X(E, T, U)                             \
  case E: {                                    \
    U ba = (U)ua, bb = (U)ub;                  \
    T va, vb;                                  \
    memcpy(&va, &ba, sizeof va);               \
    memcpy(&vb, &bb, sizeof vb);               \
    if (KEY_KIND(E) == 2) {                    \
      T d = (T)(vb - va);                      \
      diff = (double)d;                        \
    } else {                                   \
      U d = (U)(bb - ba);                      \
      T sd;                                    \
      memcpy(&sd, &d, sizeof sd);              \
      diff = (double)sd;                       \
    }                                          \
    a = (double)va;                            \
    double b = (double)vb;                     \
    return g >= 0.5 ? b - diff * (1 - g) : a + diff * g; \
  }
    HIST_TYPES(X)
#undef X
    default: return 0;
  }
}

/* ---- plan --------------------------------------------------------------------- */

static void outer_edges(const hist *s, const double *st, int use_range, double *first, double *last, int *py);

static int hist_plan(hb_kernel *k, const hb_stream *in, const hb_params *p) {
  hist *s;
  HB_ALLOC(s, 1);
  k->state = s;
  s->dt = in->dtype;
  snprintf(s->where, sizeof s->where, "%s", hb_params_where(p));
  HB_CHECK(!hb_dtype_is_complex(s->dt), HB_EINVALID, s->where, "histogram of complex data is not supported");
  const char *word = hb_param_word(p, "bins");
  s->mode = !word ? BINS_INT : !strcmp(word, "fd") ? BINS_FD : BINS_SCOTT;
  s->bins = word ? 0 : hb_param_int(p, "bins");
  HB_CHECK(word || s->bins >= 1, HB_EINVALID, hb_param_where(p, "bins"), "bins must be at least 1, got %lld",
           s->bins);
  s->max_bins = hb_param_int(p, "max_num_bins");
  HB_CHECK(s->max_bins >= 1 && s->max_bins <= MAX_BINS_LIMIT, HB_EINVALID, hb_param_where(p, "max_num_bins"),
           "max_num_bins must be between 1 and %d, got %lld", MAX_BINS_LIMIT, s->max_bins);
  double r[2];
  s->has_range = hb_param_numbers(p, "range_bins", r) == 2;
  if (s->has_range) {
    s->lo = r[0], s->hi = r[1];
    HB_CHECK(isfinite(s->lo) && isfinite(s->hi), HB_EINVALID, hb_param_where(p, "range_bins"),
             "range_bins [%g, %g] is not finite", s->lo, s->hi);
    HB_CHECK(s->lo <= s->hi, HB_EINVALID, hb_param_where(p, "range_bins"),
             "range_bins [%g, %g]: the first must not be larger than the second", s->lo, s->hi);
    /* numpy keeps the data within its outer edges (an empty range widened by
     * 0.5 each way; fd and scott estimate their width from what is kept), and
     * compares float32 data with a Python float in float32 (when it fits) */
    double keep_lo, keep_hi;
    int py;
    outer_edges(s, NULL, 1, &keep_lo, &keep_hi, &py);
    int f32 = s->dt == HB_F32 && fabs(keep_lo) <= FLT_MAX && fabs(keep_hi) <= FLT_MAX;
    s->tlo = f32 ? (double)(float)keep_lo : keep_lo;
    s->thi = f32 ? (double)(float)keep_hi : keep_hi;
  }
  snprintf(s->title, sizeof s->title, "%s histogram", in->input->title);
  s->pass = 1;

  HB_CALL(hb_kernel_add_output(k, "_stats", HB_OUT_SIGNAL, HB_F64, HB_F64, NULL));
  s->o_stats = k->nout - 1;
  hsize_t n = ST_LEN;
  hb_output_set_shape(hb_kernel_output(k, s->o_stats), 1, &n, NULL);
  hb_kernel_output(k, s->o_stats)->hidden = 1;
  s->hist_pass = 2;
  if (s->mode == BINS_FD) {
    s->keybits = (int)hb_dtype_size(s->dt) * 8;
    s->d1 = s->keybits < DIGIT ? s->keybits : DIGIT;
    s->nlevels = 1 + (s->keybits - s->d1) / DIGIT;
    for (int l = 0; l < s->nlevels; l++) {
      char part[32];
      snprintf(part, sizeof part, "_level%d", l + 1);
      HB_CALL(hb_kernel_add_output(k, part, HB_OUT_SIGNAL, HB_U64, HB_U64, NULL));
      s->o_level[l] = k->nout - 1;
      hb_output *o = hb_kernel_output(k, k->nout - 1);
      n = l ? (hsize_t)SLOTS << DIGIT : (hsize_t)1 << s->d1;
      hb_output_set_shape(o, 1, &n, NULL);
      o->hidden = 1;
      o->pass = l + 1;
    }
    s->hist_pass = s->nlevels + 1;
  }
  HB_CALL(hb_kernel_add_output(k, NULL, HB_OUT_SIGNAL, HB_I64, HB_I64, NULL));
  s->o_hist = k->nout - 1;
  hb_output *o = hb_kernel_output(k, s->o_hist);
  n = (hsize_t)s->max_bins; /* no more, capped or not */
  hb_axis value = {.name = "value", .scale = 1, .size = n};
  hb_output_set_shape(o, 1, &n, &value);
  o->pass = s->hist_pass;
  o->deferred = 1;
  o->title = s->title;
  return 0;
}

/* ---- passes ------------------------------------------------------------------- */

static int in_range(const hist *s, double v) { return !s->has_range || (v >= s->tlo && v <= s->thi); }

static void pass_stats(const hist *s, const hb_block *b, double *st, uint64_t *lvl1) {
  size_t n = b->npos * b->sig_size;
  int shift = s->keybits - s->d1;
  switch (b->dtype) {
#define X(E, T, U)                                                             \
  case E: {                                                                    \
    const T *x = b->data;                                                      \
    for (size_t i = 0; i < n; i++) {                                           \
      double v = (double)x[i];                                                 \
      if (v != v) continue;                                                    \
      st[ST_N] += 1;                                                           \
      if (v < st[ST_MIN]) st[ST_MIN] = v;                                      \
      if (v > st[ST_MAX]) st[ST_MAX] = v;                                      \
      if (!in_range(s, v)) continue;                                           \
      if (st[ST_NT] == 0) st[ST_K] = v;                                        \
      double d = v - st[ST_K];                                                 \
      st[ST_NT] += 1, st[ST_S1] += d, st[ST_S2] += d * d;                      \
      if (lvl1) {                                                              \
        U u;                                                                   \
        memcpy(&u, &x[i], sizeof u);                                           \
        lvl1[key_of_bits(u, KEY_KIND(E), (int)sizeof(U) * 8) >> shift]++;     \
      }                                                                        \
    }                                                                          \
    break;                                                                     \
  }
    HIST_TYPES(X)
#undef X
    default: break;
  }
}

/* Level l (>= 1, 0-based) of fd: the next digit of the values in each slot's prefix. */
static void pass_level(const hist *s, const hb_block *b, int l, uint64_t *h) {
  size_t n = b->npos * b->sig_size;
  int rest = s->keybits - s->d1 - (l - 1) * DIGIT; /* bits below the slots' prefix */
  int shift = rest - DIGIT;
  switch (b->dtype) {
#define X(E, T, U)                                                             \
  case E: {                                                                    \
    const T *x = b->data;                                                      \
    for (size_t i = 0; i < n; i++) {                                           \
      double v = (double)x[i];                                                 \
      if (v != v || !in_range(s, v)) continue;                                 \
      U u;                                                                     \
      memcpy(&u, &x[i], sizeof u);                                             \
      uint64_t key = key_of_bits(u, KEY_KIND(E), (int)sizeof(U) * 8);          \
      for (int j = 0; j < s->nslots; j++)                                      \
        if (key >> rest == s->slot_prefix[j])                                  \
          h[((size_t)j << DIGIT) + ((key >> shift) & 0xFFFF)]++;               \
    }                                                                          \
    break;                                                                     \
  }
    HIST_TYPES(X)
#undef X
    default: break;
  }
}

/* The bin of v among the edges (numpy: edges[i] <= v < edges[i+1], the last bin closed), -1 outside. */
static long bin_of(const hist *s, double v) {
  const double *e = s->edges;
  size_t nb = s->nbins;
  if (!(v >= e[0] && v <= e[nb])) return -1; /* NaN too */
  double g = (v - e[0]) / (e[nb] - e[0]) * (double)nb; /* a guess: NaN when every edge is equal */
  size_t i = g >= 0 && g < (double)nb ? (size_t)g : nb - 1;
  while (i > 0 && v < e[i]) i--;
  while (i + 1 < nb && v >= e[i + 1]) i++;
  return (long)i;
}

static void pass_count(const hist *s, const hb_block *b, int64_t *c) {
  size_t n = b->npos * b->sig_size;
  switch (b->dtype) {
#define X(E, T, U)                                                             \
  case E: {                                                                    \
    const T *x = b->data;                                                      \
    if (s->lut) {                                                              \
      for (size_t i = 0; i < n; i++) {                                         \
        U u;                                                                   \
        memcpy(&u, &x[i], sizeof u);                                           \
        int32_t j = s->lut[u];                                                 \
        if (j >= 0) c[j]++;                                                    \
      }                                                                        \
    } else {                                                                   \
      for (size_t i = 0; i < n; i++) {                                         \
        long j = bin_of(s, (double)x[i]);                                      \
        if (j >= 0) c[j]++;                                                    \
      }                                                                        \
    }                                                                          \
    break;                                                                     \
  }
    HIST_TYPES(X)
#undef X
    default: break;
  }
}

static void hist_block(const hb_kernel *k, const hb_block *b, void *const *out) {
  const hist *s = k->state;
  if (out[s->o_stats]) pass_stats(s, b, out[s->o_stats], s->mode == BINS_FD ? out[s->o_level[0]] : NULL);
  for (int l = 1; l < s->nlevels; l++)
    if (out[s->o_level[l]]) pass_level(s, b, l, out[s->o_level[l]]);
  if (out[s->o_hist]) pass_count(s, b, out[s->o_hist]);
}

static void hist_init(const hb_kernel *k, int iout, void *acc, size_t n) {
  const hist *s = k->state;
  memset(acc, 0, n * 8);
  if (iout == s->o_stats) ((double *)acc)[ST_MIN] = INFINITY, ((double *)acc)[ST_MAX] = -INFINITY;
}

/* mean and M2 of the shifted sums (n > 0) */
static void moments(const double *st, double *mean, double *m2) {
  *mean = st[ST_K] + st[ST_S1] / st[ST_NT];
  *m2 = st[ST_S2] - st[ST_S1] * st[ST_S1] / st[ST_NT];
}

/* The kernel's pass that output iout belongs to. */
static int pass_of(const hist *s, int iout) {
  for (int l = 0; l < s->nlevels; l++)
    if (iout == s->o_level[l]) return l + 1;
  return iout == s->o_hist ? s->hist_pass : 1;
}

static void hist_merge(const hb_kernel *k, int iout, void *acc, const void *other, size_t n) {
  const hist *s = k->state;
  /* outside its pass a partial holds the identity (or what is done with): its up to 2 MiB need no adding */
  if (pass_of(s, iout) != s->pass) return;
  if (iout == s->o_stats) {
    double *a = acc;
    const double *b = other;
    a[ST_N] += b[ST_N];
    if (b[ST_MIN] < a[ST_MIN]) a[ST_MIN] = b[ST_MIN];
    if (b[ST_MAX] > a[ST_MAX]) a[ST_MAX] = b[ST_MAX];
    if (b[ST_NT] == 0) return;
    if (a[ST_NT] == 0) {
      memcpy(a + ST_NT, b + ST_NT, 4 * sizeof *a);
      return;
    }
    double ma, m2a, mb, m2b, na = a[ST_NT], nb = b[ST_NT], nt = na + nb;
    moments(a, &ma, &m2a);
    moments(b, &mb, &m2b);
    double delta = mb - ma; /* Chan et al.'s pairwise update */
    a[ST_NT] = nt, a[ST_K] = ma + delta * nb / nt, a[ST_S1] = 0;
    a[ST_S2] = m2a + m2b + delta * delta * na * nb / nt;
    return;
  }
  if (iout == s->o_hist) {
    int64_t *a = acc;
    const int64_t *b = other;
    for (size_t i = 0; i < n; i++) a[i] += b[i];
  } else {
    uint64_t *a = acc;
    const uint64_t *b = other;
    for (size_t i = 0; i < n; i++) a[i] += b[i];
  }
}

/* ---- refine: the needed order statistics, then the edges ---------------------------- */

/* The slot of rank j's prefix among this level's distinct prefixes. */
static int slot_of(const hist *s, uint64_t prefix) {
  for (int j = 0; j < s->nslots; j++)
    if (s->slot_prefix[j] == prefix) return j;
  return -1;
}

static void set_slots(hist *s) {
  s->nslots = 0;
  for (int r = 0; r < SLOTS; r++)
    if (slot_of(s, s->prefix[r]) < 0) s->slot_prefix[s->nslots++] = s->prefix[r];
}

/* Rank r's next digit from the counts h of its group's values, by that digit. */
static void descend(hist *s, int r, const uint64_t *h, size_t len, int bits) {
  uint64_t w = s->within[r];
  size_t d = 0;
  while (d + 1 < len && w >= h[d]) w -= h[d++];
  s->prefix[r] = (s->prefix[r] << bits) | d;
  s->within[r] = w;
}

/* numpy's outer edges: range_bins, or the data's min and max (st; unused
 * with use_range), ±0.5 when equal.  `py` tells whether they are Python (or
 * float64) numbers rather than scalars of the data's type. */
static void outer_edges(const hist *s, const double *st, int use_range, double *first, double *last, int *py) {
  *py = 1;
  if (use_range) *first = s->lo, *last = s->hi;
  else if (st[ST_N] == 0) *first = 0, *last = 1;
  else *first = st[ST_MIN], *last = st[ST_MAX], *py = 0;
  if (*first == *last) *first -= 0.5, *last += 0.5, *py = 1;
}

/* numpy's bin_type: result_type(first, last, a), integers made float64; a Python float
 * that float32 cannot hold makes float32 data's edges float64 */
static hb_dtype edge_dtype(const hist *s, double first, double last, int py) {
  if (s->dt == HB_F32 && (!py || (fabs(first) <= FLT_MAX && fabs(last) <= FLT_MAX))) return HB_F32;
  return HB_F64;
}

/* _unsigned_subtract(last, first) / width: the data's scalars subtract in their type */
static double span(const hist *s, double first, double last, int py) {
  if (!py && s->dt == HB_F32) return (double)((float)last - (float)first);
  return last - first;
}

/* np.linspace(first, last, nb + 1) (float64), then cast to the edges' type */
static int make_edges(hist *s, double first, double last, size_t nb, hb_dtype edt) {
  free(s->edges);
  HB_ALLOC(s->edges, nb + 1);
  double delta = last - first, step = delta / (double)nb;
  for (size_t i = 0; i <= nb; i++) {
    double y = step == 0 ? (double)i / (double)nb * delta : (double)i * step;
    y += first;
    if (i == nb) y = last;
    s->edges[i] = edt == HB_F32 ? (double)(float)y : y;
  }
  s->nbins = nb;
  s->edge_dt = edt;
  return 0;
}

static int hist_refine(hb_kernel *k, const void *const *earlier) {
  hist *s = k->state;
  const double *st = earlier[s->o_stats];
  HB_CHECK(st, HB_EINTERNAL, k->name, "no first-pass result");
  /* which pass starts: the first whose results are not in yet */
  int pass = 2;
  while (pass - 1 < s->nlevels && earlier[s->o_level[pass - 1]]) pass++;
  s->pass = pass;
  uint64_t nt = (uint64_t)st[ST_NT];
  if (s->mode == BINS_FD && nt > 0) {
    static const double q[2] = {0.75, 0.25};
    for (int j = 0; j < 2; j++) { /* numpy's virtual index (n - 1) q, its floor and the next */
      double v = (double)(nt - 1) * q[j];
      uint64_t prev = v >= (double)(nt - 1) ? nt - 1 : (uint64_t)floor(v);
      s->rank[2 * j] = prev;
      s->rank[2 * j + 1] = v >= (double)(nt - 1) ? nt - 1 : prev + 1;
    }
    for (int r = 0; r < SLOTS; r++) s->prefix[r] = 0, s->within[r] = s->rank[r];
    for (int r = 0; r < SLOTS; r++) descend(s, r, earlier[s->o_level[0]], (size_t)1 << s->d1, s->d1);
    for (int l = 1; l < pass - 1; l++) {
      set_slots(s); /* as pass l + 1 saw them */
      const uint64_t *h = earlier[s->o_level[l]];
      int sl[SLOTS];
      for (int r = 0; r < SLOTS; r++) sl[r] = slot_of(s, s->prefix[r]);
      for (int r = 0; r < SLOTS; r++) descend(s, r, h + ((size_t)sl[r] << DIGIT), (size_t)1 << DIGIT, DIGIT);
    }
    set_slots(s);
  }
  if (pass < s->hist_pass) return 0;

  /* the last pass: numpy.histogram_bin_edges, then HyperSpy's cap */
  double first, last;
  int py;
  outer_edges(s, st, s->has_range, &first, &last, &py);
  HB_CHECK(s->has_range || (isfinite(first) && isfinite(last)), HB_EINVALID, s->where,
           "the data's range [%g, %g] is not finite: give range_bins", first, last);
  double nb = (double)s->bins;
  if (s->mode != BINS_INT) {
    double width = 0;
    if (nt > 0 && s->mode == BINS_FD) {
      double g[2];
      for (int j = 0; j < 2; j++) {
        double v = (double)(nt - 1) * (j ? 0.25 : 0.75);
        double gamma = v >= (double)(nt - 1) ? 0 : v - floor(v);
        g[j] = lerp_keys(s->dt, s->prefix[2 * j], s->prefix[2 * j + 1], gamma);
      }
      width = 2.0 * (g[0] - g[1]) * pow((double)nt, -1.0 / 3.0);
    } else if (nt > 0) {
      double mean, m2;
      moments(st, &mean, &m2);
      double sd = sqrt((m2 > 0 ? m2 : 0) / (double)nt);
      if (s->dt == HB_F32) sd = (double)(float)sd; /* numpy's std of float32 is float32 */
      width = pow(24.0 * pow(M_PI, 0.5) / (double)nt, 1.0 / 3.0) * sd;
    }
    nb = width != 0 ? ceil(span(s, first, last, py) / width) : 1;
  }
  hb_dtype edt = edge_dtype(s, first, last, py);
  if (nb + 1 > (double)s->max_bins) { /* HyperSpy's cap: np.histogram(a, max_num_bins), range dropped */
    nb = (double)s->max_bins;
    outer_edges(s, st, 0, &first, &last, &py);
    HB_CHECK(isfinite(first) && isfinite(last), HB_EINVALID, s->where,
             "the data's range [%g, %g] is not finite (the bins were capped at max_num_bins)", first, last);
    edt = edge_dtype(s, first, last, py);
  }
  HB_CALL(make_edges(s, first, last, (size_t)nb, edt));
  /* 8/16-bit integers: each value's bin, once */
  if (!hb_dtype_is_float(s->dt) && hb_dtype_size(s->dt) <= 2) {
    size_t nv = (size_t)1 << (8 * hb_dtype_size(s->dt));
    free(s->lut);
    HB_ALLOC(s->lut, nv);
    int sg = hb_dtype_is_signed(s->dt);
    for (size_t u = 0; u < nv; u++) {
      double v = sg ? (double)(u >= nv / 2 ? (long)u - (long)nv : (long)u) : (double)u;
      s->lut[u] = (int32_t)bin_of(s, v);
    }
  }
  hb_output *o = hb_kernel_output(k, s->o_hist);
  hsize_t n = (hsize_t)s->nbins;
  double e0 = s->edges[0], scale = s->edges[1] - s->edges[0];
  if (edt == HB_F32) scale = (double)((float)s->edges[1] - (float)s->edges[0]);
  hb_axis value = {.name = "value", .scale = scale, .offset = e0, .size = n, .is_binned = 1};
  hb_output_set_shape(o, 1, &n, &value);
  return 0;
}

static void hist_destroy(hb_kernel *k) {
  hist *s = k->state;
  if (s) free(s->edges), free(s->lut);
  free(s);
}

const hb_kernel_def hb_kernel_histogram = {
    .op = "histogram",
    .summary = "the histogram of every value (navigation and signal, NaN removed), as HyperSpy's eager "
               "s.get_histogram(): the same bins, edges and counts",
    .params = hist_params,
    .outputs_doc = "reduced: int64 counts, one per bin (axis 'value': offset the first edge, scale the first bin's "
                   "width, is_binned), title '<input title> histogram'; two passes over the data, more for fd on "
                   "32-bit (3) and 64-bit (5) types",
    .plan = hist_plan,
    .block = hist_block,
    .merge = hist_merge,
    .init = hist_init,
    .refine = hist_refine,
    .destroy = hist_destroy,
};

/* ---- estimate_poissonian_noise_variance ------------------------------------------ */

static const hb_param_spec noise_params[] = {
    {"gain_factor", HB_P_FLOAT, HB_DEFAULT_FLOAT(1),
     .help = "a in clip((E a + b) c, b c, inf); not negative; when not given, the input's "
             "metadata.Signal.Noise_properties.Variance_linear_model's, as HyperSpy, else this default"},
    {"gain_offset", HB_P_FLOAT, HB_DEFAULT_FLOAT(0), .help = "b; not negative; when not given, as gain_factor"},
    {"correlation_factor", HB_P_FLOAT, HB_DEFAULT_FLOAT(1), .help = "c; not negative; when not given, as gain_factor"},
    HB_PARAM_END,
};

typedef struct {
  double a, b, c;
  char title[300];
} noise;

static int noise_plan(hb_kernel *k, const hb_stream *in, const hb_params *p) {
  noise *s;
  HB_ALLOC(s, 1);
  k->state = s;
  HB_CHECK(!hb_dtype_is_complex(in->dtype), HB_EINVALID, hb_params_where(p),
           "estimate_poissonian_noise_variance of complex data is not supported");
  static const char *const names[] = {"gain_factor", "gain_offset", "correlation_factor"};
  double *v[] = {&s->a, &s->b, &s->c};
  /* as HyperSpy: a parameter not given is the input's own model's, if it has one */
  const hb_input *src = in->input;
  char model_path[sizeof src->meta_group + 64];
  snprintf(model_path, sizeof model_path, "%s/%s", src->meta_group,
           src->meta_mapped_parameters ? "Variance_estimation" : "Signal/Noise_properties/Variance_linear_model");
  hid_t model = src->meta_group[0] ? hb_h5_open_group(src->file, model_path) : H5I_INVALID_HID;
  for (int i = 0; i < 3; i++) {
    *v[i] = hb_param_float(p, names[i]);
    if (!hb_param_given(p, names[i]) && model >= 0) hb_h5_read_attr_f64(model, names[i], v[i]);
    if (!(*v[i] >= 0)) {
      if (model >= 0) H5Gclose(model);
      HB_RAISE(HB_EINVALID, hb_param_given(p, names[i]) ? hb_param_where(p, names[i]) : src->path,
               "%s must not be negative (HyperSpy: must be positive), got %g%s", names[i], *v[i],
               hb_param_given(p, names[i]) ? "" : " from the input's metadata (Variance_linear_model): give it in the job");
    }
  }
  if (model >= 0) H5Gclose(model);
  snprintf(s->title, sizeof s->title, "Variance of %s", in->input->title);
  /* numpy: float32 data with Python numbers stays float32; integers go to float64 (the clip to inf) */
  hb_dtype out = in->dtype == HB_F32 ? HB_F32 : HB_F64;
  HB_CALL(hb_kernel_add_output(k, NULL, HB_OUT_FULL, out, out, NULL));
  hb_output *o = hb_kernel_output(k, 0);
  hb_output_set_shape(o, in->sig_dim, &in->shape[in->nav_dim], &in->axes[in->nav_dim]);
  o->title = s->title;
  return 0;
}

static void noise_block(const hb_kernel *k, const hb_block *b, void *const *out) {
  const noise *s = k->state;
  size_t n = b->npos * b->sig_size;
  if (b->dtype == HB_F32) { /* every step in float32, the bound b c a float64 product rounded */
    const float *x = b->data;
    float *y = out[0], a = (float)s->a, o = (float)s->b, c = (float)s->c, lo = (float)(s->b * s->c);
    for (size_t i = 0; i < n; i++) {
      float v = (x[i] * a + o) * c;
      y[i] = v != v || v > lo ? v : lo; /* np.clip: NaN stays */
    }
    return;
  }
  double *y = out[0], lo = s->b * s->c;
  switch (b->dtype) {
#define X(E, T)                                         \
  case E: {                                             \
    const T *x = b->data;                               \
    for (size_t i = 0; i < n; i++) {                    \
      double v = ((double)x[i] * s->a + s->b) * s->c;   \
      y[i] = v != v || v > lo ? v : lo;                 \
    }                                                   \
    break;                                              \
  }
    HB_FOREACH_DTYPE(X)
#undef X
    default: break;
  }
}

static void noise_destroy(hb_kernel *k) { free(k->state); }

const hb_kernel_def hb_kernel_estimate_poissonian_noise_variance = {
    .op = "estimate_poissonian_noise_variance",
    .summary = "HyperSpy's estimate_poissonian_noise_variance: clip((E a + b) c, b c, inf) per pixel, E the data "
               "(HyperSpy keeps it in metadata.Signal.Noise_properties.variance; here a result of its own)",
    .params = noise_params,
    .outputs_doc = "full: the variance of every pixel, the input's shape; float32 for float32 data, else float64; "
                   "title 'Variance of <input title>'",
    .plan = noise_plan,
    .block = noise_block,
    .destroy = noise_destroy,
};
