/* crop, rebin, change_dtype: transforms of each pattern's signal, as
 * HyperSpy's methods of the same names do them (docs/hyperspy-semantics.md
 * has the rules).  In `preprocess` every kernel sees their output; named as
 * a kernel, their output is written as a dataset, and crop and rebin may
 * also change the scan (a navigation axis: hb_nav_map). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hb_error.h"
#include "hb_kernel.h"

/* ---- crop ------------------------------------------------------------------ */

typedef struct {
  int axis;          /* array axis (a navigation axis: the scan is cropped, nav_map) */
  hsize_t start, end, step, kept; /* kept: samples start, start + step, ... below end */
  size_t outer, inner; /* elements before the axis (per pattern) and after it */
  size_t es;
  double *points;      /* a thinned non-uniform axis' points */
} crop_state;

static const hb_param_spec crop_params[] = {
    {"axis", HB_P_STRING, HB_REQUIRED,
     .help = "the axis: its name, or its index in HyperSpy's order; a navigation axis crops the scan, as a kernel "
             "only (not in preprocess)"},
    {"start", HB_P_FLOAT,
     .help = "first sample kept: an integer is an index (negative from the end), a number with a point a value "
             "in the axis' units; default the first"},
    {"end", HB_P_FLOAT, .help = "first sample dropped (exclusive), likewise; default past the last"},
    {"step", HB_P_FLOAT, HB_DEFAULT_FLOAT(1),
     .help = "keep every step-th sample from start, as isig/inav's [start:end:step] (a thinned scan on a navigation "
             "axis): an integer counts samples, a number with a point is a distance in the axis' units (rounded "
             "to samples; uniform axes only)"},
    HB_PARAM_END,
};

/* A finite decimal number as Python writes one (no nan, inf or hex). */
static int is_decimal(const char *text) {
  return text[strspn(text, "0123456789+-.eE")] == 0;
}

/* A bound as HyperSpy's crop and slices take it, from its text (NULL: not
 * given, dflt): an integer literal is an index, a float a calibrated value
 * (value2index; on a non-uniform axis, hb_axis_nearest_point).  Indices clip as
 * numpy's slicing does where HyperSpy lets it: an end past the axis, a
 * slice's (`clip`) end before it, and a start before a non-uniform axis
 * (DataAxis slices its points); a start outside a uniform axis, a start
 * past the end, and crop's end before the axis are refused (HyperSpy's
 * IndexError, or nothing kept).  crop refuses a value outside the axis;
 * slices start a start value outside it at the first sample and end an
 * end value outside it at the last, refusing a start value above the
 * axis' greatest value and an end value below its least (HyperSpy's
 * IndexError), whichever way the axis runs.  Errors name `key` at `where`. */
static int bound_from_text(const char *text, const char *where, const char *key, const hb_axis *a, hsize_t dflt,
                           int clip, hsize_t *out) {
  *out = dflt;
  if (!text) return 0;
  char *rest;
  double v = strtod(text, &rest);
  HB_CHECK(rest != text && *rest == 0 && is_decimal(text) && isfinite(v), HB_EINVALID, where, "%s '%s' is not a number",
           key, text);
  long long i = 0, n = (long long)a->size;
  const double *pts = hb_axis_points(a, a->size);
  int is_start = !strcmp(key, "start");
  if (!strpbrk(text, ".eEnN")) { /* an integer: an index, Python-style */
    i = (long long)v;
    if (i < 0) i += n;
    if (!is_start && (i > n || (clip && i < 0))) i = i < 0 ? 0 : n;
    if (is_start && pts && i < 0) i = 0;
    HB_CHECK(i >= 0 && i <= n, HB_EINVALID, where, "%s %s is outside axis '%s' (%llu samples)", key, text, a->name,
             (unsigned long long)a->size);
    *out = (hsize_t)i;
    return 0;
  }
  /* HyperSpy's low_value and high_value: the least and greatest value,
   * whichever way the axis runs */
  double lo = a->offset, hi = a->offset + a->scale * (double)(n - 1);
  if (hi < lo) lo = hi, hi = a->offset;
  int outside;
  if (pts) {
    lo = hi = pts[0];
    for (long long k = 1; k < n; k++) lo = fmin(lo, pts[k]), hi = fmax(hi, pts[k]);
    outside = v < lo || v > hi;
  } else {
    i = hb_axis_value2index(a, v);
    outside = i < 0 || i >= n;
  }
  if (outside) { /* _get_array_slices compares the value, not the index: they run apart on a negative scale */
    HB_CHECK(clip, HB_EINVALID, where, "%s %g is outside axis '%s' (%g to %g%s%s)", key, v, a->name, lo, hi,
             a->units[0] ? " " : "", a->units);
    HB_CHECK(is_start ? v <= hi : v >= lo, HB_EINVALID, where, "%s %g is %s axis '%s' (%g to %g%s%s)", key, v,
             is_start ? "above" : "below", a->name, lo, hi, a->units[0] ? " " : "", a->units);
    *out = is_start ? 0 : a->size; /* from the first, or to the last */
    return 0;
  }
  *out = (hsize_t)(pts ? hb_axis_nearest_point(pts, a->size, v) : i);
  return 0;
}

static int crop_bound(const hb_params *p, const char *key, const hb_axis *a, hsize_t dflt, hsize_t *out) {
  return bound_from_text(hb_param_given(p, key) ? hb_param_text(p, key) : NULL, hb_param_where(p, key), key, a, dflt,
                         0, out);
}

/* A step as isig/inav's slices take it, from its text (NULL: 1): an
 * integer counts samples; a number with a point is a distance, rounded to
 * samples on a uniform axis (DataAxis._get_array_slices; refused on a
 * non-uniform one, as there). */
static int step_from_text(const char *text, const char *where, const hb_axis *a, hsize_t *out) {
  char *rest = NULL;
  double v = text ? strtod(text, &rest) : 1;
  HB_CHECK(!text || (rest != text && *rest == 0 && is_decimal(text) && isfinite(v)), HB_EINVALID, where,
           "step '%s' is not a number", text);
  if (text && strpbrk(text, ".eEnN")) {
    HB_CHECK(!hb_axis_points(a, a->size), HB_EINVALID, where,
             "step %g is a distance, and axis '%s' is not uniform: give a number of samples", v, a->name);
    HB_CHECK(nearbyint(v / a->scale) >= 1, HB_EINVALID, where, "step %g is less than one sample of axis '%s' (scale %g)",
             v, a->name, a->scale);
    v = nearbyint(v / a->scale);
  }
  HB_CHECK(v >= 1 && v == floor(v), HB_EINVALID, where, "step %g: a whole number of samples, at least 1", v);
  *out = (hsize_t)v;
  return 0;
}

static int crop_step(const hb_params *p, const hb_axis *a, hsize_t *out) {
  return step_from_text(hb_param_given(p, "step") ? hb_param_text(p, "step") : NULL, hb_param_where(p, "step"), a,
                        out);
}

/* Axis a cropped to [start, end) by step: a non-uniform one keeps its
 * points there (they stay the input's, or a copy in *own when thinned), as
 * HyperSpy's DataAxis slicing; a uniform one takes scale * step. */
static int crop_axis(const hb_axis *a, hsize_t start, hsize_t end, hsize_t step, double **own, hb_axis *out) {
  const double *pts = hb_axis_points(a, a->size);
  hsize_t n = (end - start + step - 1) / step;
  *out = *a;
  out->size = n;
  out->offset = pts ? pts[start] : a->offset + a->scale * (double)start;
  out->scale = pts ? a->scale : a->scale * (double)step;
  out->points = NULL;
  if (pts && n > 1) {
    hsize_t last = start + (n - 1) * step;
    out->scale = (pts[last] - pts[start]) / (double)(n - 1);
    out->points = pts + start, out->npoints = n;
    if (step > 1) {
      HB_ALLOC(*own, n);
      for (hsize_t i = 0; i < n; i++) (*own)[i] = pts[start + i * step];
      out->points = *own;
    }
  }
  return 0;
}

static int crop_plan(hb_transform *t, const hb_params *p) {
  crop_state *c;
  HB_ALLOC(c, 1);
  t->state = c;
  const hb_stream *in = &t->in;
  HB_CALL(hb_stream_axis(in, hb_param_str(p, "axis"), hb_param_where(p, "axis"), &c->axis));
  const hb_axis *a = &in->axes[c->axis];
  HB_CALL(crop_bound(p, "start", a, 0, &c->start));
  HB_CALL(crop_bound(p, "end", a, a->size, &c->end));
  HB_CHECK(c->end > c->start, HB_EINVALID, hb_param_where(p, hb_param_given(p, "end") ? "end" : "start"),
           "crop of axis '%s' from %llu to %llu keeps nothing", a->name, (unsigned long long)c->start,
           (unsigned long long)c->end);
  HB_CALL(crop_step(p, a, &c->step));
  c->kept = (c->end - c->start + c->step - 1) / c->step;
  c->es = hb_dtype_size(in->dtype);
  if (c->axis < in->nav_dim) { /* a cropped scan: the patterns as they are, fewer of them (hb_nav_map) */
    HB_CHECK(t->as_kernel, HB_EINVALID, hb_param_where(p, "axis"),
             "axis '%s' is a navigation axis: cropping the scan makes fewer positions than every other result "
             "has, so it works as a kernel (a result of its own), not in preprocess",
             hb_param_str(p, "axis"));
    hb_nav_map *m = &t->nav_map;
    m->on = 1;
    for (int d = 0; d < in->nav_dim; d++)
      m->factor[d] = m->step[d] = 1, m->shape[d] = in->shape[d], m->axes[d] = in->axes[d];
    m->first[c->axis] = c->start;
    m->step[c->axis] = c->step;
    m->shape[c->axis] = c->kept;
    return crop_axis(a, c->start, c->end, c->step, &c->points, &m->axes[c->axis]);
  }
  hsize_t shape[HB_MAXDIM];
  hb_axis axes[HB_MAXDIM];
  int k = c->axis - in->nav_dim;
  c->outer = c->inner = 1;
  for (int d = 0; d < in->sig_dim; d++) {
    shape[d] = in->shape[in->nav_dim + d];
    axes[d] = in->axes[in->nav_dim + d];
    if (d < k) c->outer *= shape[d];
    if (d > k) c->inner *= shape[d];
  }
  shape[k] = c->kept;
  HB_CALL(crop_axis(a, c->start, c->end, c->step, &c->points, &axes[k]));
  hb_stream_set_signal(&t->out, in->sig_dim, shape, axes, in->dtype);
  return 0;
}

/* A cropped or thinned scan: the kept positions' patterns, each to its place. */
static void place_kept(const hb_transform *t, const hb_block *b, void *in, void *out) {
  size_t bytes = t->in.sig_size * hb_dtype_size(t->in.dtype);
  for (size_t p = 0; p < b->npos; p++) {
    long long at = hb_nav_map_place(&t->nav_map, b, p);
    if (at >= 0) memcpy((char *)out + (size_t)at * bytes, (const char *)in + p * bytes, bytes);
  }
}

static void crop_apply(const hb_transform *t, const hb_block *b, void *in, void *out) {
  const crop_state *c = t->state;
  if (t->nav_map.on) {
    place_kept(t, b, in, out);
    return;
  }
  size_t n = t->in.shape[c->axis], item = c->inner * c->es, row = n * item;
  const char *src = in;
  char *dst = out;
  if (c->step == 1) { /* one run per row */
    for (size_t p = 0; p < b->npos; p++)
      for (size_t o = 0; o < c->outer; o++, src += row, dst += c->kept * item) memcpy(dst, src + c->start * item, c->kept * item);
    return;
  }
  for (size_t p = 0; p < b->npos; p++)
    for (size_t o = 0; o < c->outer; o++, src += row)
      for (size_t i = 0; i < c->kept; i++, dst += item) memcpy(dst, src + (c->start + i * c->step) * item, item);
}

static void crop_destroy(hb_transform *t) {
  crop_state *c = t->state;
  if (c) free(c->points);
  free(c);
}

static void free_state(hb_transform *t) { free(t->state); }

const hb_transform_def hb_transform_crop = {
    .op = "crop",
    .summary = "keep [start, end) of one axis, as HyperSpy's crop (isig, inav; every step-th sample as "
               "[start:end:step]): integers are indices, numbers with a point are values in the axis' units; as a "
               "kernel it may crop or thin the scan",
    .params = crop_params,
    .plan = crop_plan,
    .apply = crop_apply,
    .destroy = crop_destroy,
    .complex_patterns = 1,
};

/* ---- inav, isig -------------------------------------------------------------- */

/* HyperSpy's s.inav[...] and s.isig[...]: slices of several axes at once,
 * given as the text between the brackets.  inav is a changed scan like a
 * navigation crop's (a kernel only); isig a pattern transform like a signal
 * crop's. */
typedef struct {
  hsize_t start[HB_MAXDIM], step[HB_MAXDIM], kept[HB_MAXDIM]; /* per array axis of the sliced group */
  int dropped[HB_MAXDIM]; /* a single index: the axis is not in the result */
  size_t es;
  double *points[HB_MAXDIM]; /* thinned non-uniform axes' points */
} slices_state;

static const hb_param_spec inav_params[] = {
    {"slices", HB_P_STRING, HB_REQUIRED,
     .help = "HyperSpy's inav[...] slices as text, one start:end:step per navigation axis in HyperSpy's order (x, "
             "y, ...), separated by commas, e.g. \"10:50, 20:60:2\" (quote it), or a single index, which drops the "
             "axis (\"3, 10:50\": one row); integers are indices (negative "
             "from the end), numbers with a point values in the axis' units; an empty part, or an axis left out, "
             "keeps the whole axis; an end past the axis, a start value below the axis' values or an end value "
             "above them clip as in HyperSpy (whichever way the axis runs). A "
             "kernel only: it crops the scan"},
    HB_PARAM_END,
};

static const hb_param_spec isig_params[] = {
    {"slices", HB_P_STRING, HB_REQUIRED,
     .help = "HyperSpy's isig[...] slices as text, one start:end:step per signal axis in HyperSpy's order (kx, "
             "ky, ...), e.g. \"32:96, 32:96\" (quote it), or a single index, which drops the axis (not every "
             "one); as inav's"},
    HB_PARAM_END,
};

/* Splits `s` at `sep` into at most max parts (pointers into s, trimmed of
 * blanks); returns how many, or max + 1 when there are more. */
static int split_trimmed(char *s, char sep, char **part, int max) {
  int n = 0;
  for (char *at = s;; n++) {
    char *end = strchr(at, sep);
    if (end) *end = 0;
    while (*at == ' ' || *at == '\t') at++;
    char *tail = at + strlen(at);
    while (tail > at && (tail[-1] == ' ' || tail[-1] == '\t')) *--tail = 0;
    if (n == max) return max + 1;
    part[n] = at;
    if (!end) return n + 1;
    at = end + 1;
  }
}

/* A single index as HyperSpy's inav takes it: an integer (negative from
 * the end) or a value (value2index); outside the axis it raises, and so
 * is refused here. */
static int index_from_text(const char *text, const char *where, const hb_axis *a, hsize_t *out) {
  HB_CALL(bound_from_text(text, where, "index", a, 0, 0, out));
  HB_CHECK(*out < a->size, HB_EINVALID, where, "index %s is outside axis '%s' (%llu samples)", text, a->name,
           (unsigned long long)a->size);
  return 0;
}

/* The `slices` text of p over the array axes [first, first + n) of `in`
 * (named in HyperSpy's order: the group's last array axis first): st's
 * start, step and kept, and each axis as sliced into axes[d].  With
 * `index_drops`, a single index selects one position and drops the axis,
 * as in HyperSpy. */
static int parse_slices(const hb_params *p, const hb_stream *in, int first, int n, const char *group, int index_drops,
                        slices_state *st, hb_axis *axes) {
  const char *where = hb_param_where(p, "slices");
  char text[512];
  HB_CHECK(strlen(hb_param_str(p, "slices")) < sizeof text, HB_EINVALID, where, "slices: too long");
  strcpy(text, hb_param_str(p, "slices"));
  char *body = text;
  size_t len = strlen(body);
  if (len >= 2 && body[0] == '[' && body[len - 1] == ']') body[len - 1] = 0, body++; /* as written in Python */
  char *part[HB_MAXDIM];
  int nparts = split_trimmed(body, ',', part, n);
  HB_CHECK(nparts <= n, HB_EINVALID, where, "slices: more than the %d %s ax%s", n, group, n == 1 ? "is" : "es");
  for (int d = first; d < first + n; d++) st->start[d] = 0, st->step[d] = 1, st->kept[d] = in->shape[d], axes[d] = in->axes[d];
  for (int i = 0; i < nparts; i++) {
    int d = first + n - 1 - i;
    const hb_axis *a = &in->axes[d];
    char *f[3], whole[sizeof text];
    strcpy(whole, part[i]); /* for messages: the split cuts part[i] */
    int nf = split_trimmed(part[i], ':', f, 3);
    if (nf == 1 && index_drops && *f[0]) { /* HyperSpy's inav[i]: one position, the axis dropped */
      HB_CALL(index_from_text(f[0], where, a, &st->start[d]));
      st->kept[d] = 1;
      st->dropped[d] = 1;
      continue;
    }
    HB_CHECK(nf >= 2 && nf <= 3, HB_EINVALID, where,
             "slices: '%s' for axis '%s' is not %sstart:end or start:end:step", whole, a->name,
             index_drops ? "an index, " : "");
    hsize_t end;
    HB_CALL(bound_from_text(*f[0] ? f[0] : NULL, where, "start", a, 0, 1, &st->start[d]));
    HB_CALL(bound_from_text(*f[1] ? f[1] : NULL, where, "end", a, a->size, 1, &end));
    HB_CALL(step_from_text(nf == 3 && *f[2] ? f[2] : NULL, where, a, &st->step[d]));
    HB_CHECK(end > st->start[d], HB_EINVALID, where, "slices: axis '%s' from %llu to %llu keeps nothing", a->name,
             (unsigned long long)st->start[d], (unsigned long long)end);
    st->kept[d] = (end - st->start[d] + st->step[d] - 1) / st->step[d];
    HB_CALL(crop_axis(a, st->start[d], end, st->step[d], &st->points[d], &axes[d]));
  }
  return 0;
}

static int inav_plan(hb_transform *t, const hb_params *p) {
  slices_state *st;
  HB_ALLOC(st, 1);
  t->state = st;
  const hb_stream *in = &t->in;
  const char *where = hb_param_where(p, "slices");
  HB_CHECK(t->as_kernel, HB_EINVALID, where,
           "inav crops the scan, which makes fewer positions than every other result has, so it works as a kernel "
           "(a result of its own), not in preprocess");
  HB_CHECK(!hb_stream_virtual_nav(in), HB_EINVALID, where, "the input is a single pattern: it has no navigation axes");
  hb_nav_map *m = &t->nav_map;
  HB_CALL(parse_slices(p, in, 0, in->nav_dim, "navigation", 1, st, m->axes));
  m->on = 1;
  for (int d = 0; d < in->nav_dim; d++)
    m->factor[d] = 1, m->first[d] = st->start[d], m->step[d] = st->step[d], m->shape[d] = st->kept[d],
    m->dropped[d] = st->dropped[d];
  return 0;
}

static int isig_plan(hb_transform *t, const hb_params *p) {
  slices_state *st;
  HB_ALLOC(st, 1);
  t->state = st;
  const hb_stream *in = &t->in;
  hb_axis axes[HB_MAXDIM], kept_axes[HB_MAXDIM];
  HB_CALL(parse_slices(p, in, in->nav_dim, in->sig_dim, "signal", 1, st, axes));
  st->es = hb_dtype_size(in->dtype);
  hsize_t shape[HB_MAXDIM];
  int n = 0; /* the signal axes left: a single index drops its axis, as in HyperSpy */
  for (int d = in->nav_dim; d < in->ndim; d++)
    if (!st->dropped[d]) shape[n] = st->kept[d], kept_axes[n++] = axes[d];
  HB_CHECK(n > 0, HB_EINVALID, hb_param_where(p, "slices"),
           "slices: a single index on every signal axis leaves no signal (HyperSpy's value per pattern); keep one "
           "sample of an axis as i:i+1 instead");
  hb_stream_set_signal(&t->out, n, shape, kept_axes, in->dtype);
  return 0;
}

/* Each pattern's kept box, in runs along its last axis. */
static void isig_apply(const hb_transform *t, const hb_block *b, void *in, void *out) {
  const slices_state *st = t->state;
  int nd = t->in.nav_dim, sd = t->in.sig_dim, last = nd + sd - 1;
  size_t stride[HB_MAXDIM], es = st->es, rows = 1;
  stride[last] = 1;
  for (int d = last - 1; d >= nd; d--) stride[d] = stride[d + 1] * t->in.shape[d + 1];
  for (int d = nd; d < last; d++) rows *= st->kept[d];
  const char *src = in;
  char *dst = out;
  size_t n = st->kept[last], step = st->step[last];
  for (size_t p = 0; p < b->npos; p++, src += t->in.sig_size * es)
    for (size_t r = 0; r < rows; r++) {
      size_t at = st->start[last], rem = r; /* row r of the kept box: its first element in the pattern */
      for (int d = last - 1; d >= nd; d--) {
        at += (st->start[d] + rem % st->kept[d] * st->step[d]) * stride[d];
        rem /= st->kept[d];
      }
      if (step == 1) {
        memcpy(dst, src + at * es, n * es);
        dst += n * es;
      } else {
        for (size_t i = 0; i < n; i++, dst += es) memcpy(dst, src + (at + i * step) * es, es);
      }
    }
}

static void slices_destroy(hb_transform *t) {
  slices_state *st = t->state;
  for (int d = 0; st && d < HB_MAXDIM; d++) free(st->points[d]);
  free(st);
}

const hb_transform_def hb_transform_inav = {
    .op = "inav",
    .summary = "a region of the scan, as HyperSpy's s.inav[...]: start:end:step of several navigation axes at once "
               "(crop does one axis); a kernel only. A job whose results all crop, thin or bin the scan reads only "
               "the chunks they take",
    .params = inav_params,
    .plan = inav_plan,
    .apply = place_kept,
    .destroy = slices_destroy,
    .complex_patterns = 1,
};

const hb_transform_def hb_transform_isig = {
    .op = "isig",
    .summary = "a region of each pattern, as HyperSpy's s.isig[...]: start:end:step of several signal axes at once "
               "(crop does one axis); in preprocess or as a kernel",
    .params = isig_params,
    .plan = isig_plan,
    .apply = isig_apply,
    .destroy = slices_destroy,
    .complex_patterns = 1,
};

/* ---- numpy's casts ----------------------------------------------------------- */

/* numpy's astype is one C cast from the source type to the destination
 * type (its casting loops): int64 -> float32 rounds once, 1e19 -> uint64 is
 * exact, and out-of-range floats and NaN give what x86-64's truncating
 * conversions give, so 3e9 -> uint16 is 0; a detour through int64_t or
 * double gives other values.  Float to integer is written out here, as gcc
 * compiles numpy's casts: in C such a cast out of range is undefined, and
 * auto-vectorised code would answer otherwise by position in the block.
 * cvtN: cvttsd2si, NaN and out of range giving the lowest intN. */
static inline int32_t cvt32(double v) { return v > -0x1p31 - 1 && v < 0x1p31 ? (int32_t)v : INT32_MIN; }
static inline int64_t cvt64(double v) { return v >= -0x1p63 && v < 0x1p63 ? (int64_t)v : INT64_MIN; }
/* narrower integers: the int32 conversion, wrapped */
static inline uint8_t f_u8(double v) { return (uint8_t)cvt32(v); }
static inline uint16_t f_u16(double v) { return (uint16_t)cvt32(v); }
static inline int8_t f_i8(double v) { return (int8_t)cvt32(v); }
static inline int16_t f_i16(double v) { return (int16_t)cvt32(v); }
/* uint32 as numpy's vectorised loop does it: from 2^31 up, offset
 * by 2^31.  Only numpy's scalar tail (the last size % 4 elements of an
 * array) takes the low half of the int64 conversion instead, which differs
 * for out-of-range values; that is not reproduced. */
static inline uint32_t f_u32(double v) {
  return v >= 0x1p31 ? (uint32_t)cvt32(v - 0x1p31) ^ 0x80000000u : (uint32_t)cvt32(v);
}
static inline uint64_t f_u64(double v) {
  return v >= 0x1p63 ? (uint64_t)cvt64(v - 0x1p63) ^ (UINT64_C(1) << 63) : (uint64_t)cvt64(v);
}
static inline float f_f32(double v) { return (float)v; } /* float -> double -> float rounds once */
static inline double f_f64(double v) { return v; }
#define FROM_FLOAT(o, v)                                                                                           \
  _Generic(*(o), uint8_t: f_u8, uint16_t: f_u16, uint32_t: f_u32, uint64_t: f_u64, int8_t: f_i8, int16_t: f_i16, \
           int32_t: cvt32, int64_t: cvt64, float: f_f32, double: f_f64)(v)

/* cast_to_E(from, in, o, n, stride): element i of `in` (type from) to
 * o[i * stride] (stride 2: complex real parts); integers by a C cast. */
#define CAST_FROM(E, T)                                                                                     \
  case E:                                                                                                   \
    for (size_t i = 0; i < n; i++)                                                                          \
      o[i * stride] = _Generic((T)0, float: 1, double: 1, default: 0) ? FROM_FLOAT(o, ((const T *)in)[i]) \
                                                                       : (__typeof__(*o))((const T *)in)[i]; \
    break;
#define CAST_TO(E, T)                                                                      \
  static void cast_to_##E(hb_dtype from, const void *in, T *o, size_t n, size_t stride) { \
    switch (from) {                                                                        \
      HB_FOREACH_DTYPE(CAST_FROM)                                                          \
      default: break;                                                                      \
    }                                                                                      \
  }
HB_FOREACH_DTYPE_INNER(CAST_TO)
#undef CAST_TO
#undef CAST_FROM

/* n values of type `from` as type `to`, as numpy's astype: real to
 * complex gets a zero imaginary part, complex to complex casts each part
 * (complex to real is refused before). */
static void cast_values(hb_dtype from, const void *in, hb_dtype to, void *out, size_t n) {
  size_t stride = 1;
  if (hb_dtype_is_complex(to)) {
    if (hb_dtype_is_complex(from)) n *= 2, from = hb_dtype_real(from);
    else memset(out, 0, n * hb_dtype_size(to)), stride = 2;
    to = hb_dtype_real(to);
  }
  switch (to) {
#define X(E, T) case E: cast_to_##E(from, in, out, n, stride); break;
    HB_FOREACH_DTYPE(X)
#undef X
    default: break;
  }
}

/* ---- rebin ------------------------------------------------------------------- */

typedef struct {
  hb_dtype in, out, acc;   /* acc: the type summed in (8 bytes): out's numpy sum type */
  size_t in_size, out_size;
  int32_t *bin;            /* per input element: its output element, -1 when cropped */
  /* a 2-D or 1-D signal whose factors divide (the common case): bins summed
   * straight from the rows, with no table (rebin_sums) */
  int direct;
  size_t row, f0, f1, m0, m1; /* input row length, factors, output shape (1-D: f0 = m0 = 1) */
} rebin_state;

static const hb_param_spec rebin_params[] = {
    {"scale", HB_P_NUMBERS,
     .help = "a factor per axis, in HyperSpy's order (navigation x, y, ..., then signal x, y, ...); navigation "
             "factors other than 1 bin the scan, as a kernel only (not in preprocess)"},
    {"new_shape", HB_P_NUMBERS, .help = "the new size of every axis, in the same order (instead of scale)"},
    {"crop", HB_P_BOOL, HB_DEFAULT_BOOL(1),
     .help = "drop the samples past the last whole bin (false: a partial last bin)"},
    {"dtype", HB_P_STRING,
     .help = "the result's type: 'same' (the data's), a numpy name, or by default numpy's sum type (uint16 -> "
             "uint64, float32 -> float32); each value is cast to it before summing, as numpy's sum(dtype=). "
             "As in HyperSpy, every factor 1 keeps the data's type; a factor that does not divide its axis gives "
             "float64 for integer data and takes only a float dtype no narrower than float data"},
    HB_PARAM_END,
};

static int rebin_plan(hb_transform *t, const hb_params *p) {
  rebin_state *r;
  HB_ALLOC(r, 1);
  t->state = r;
  const hb_stream *in = &t->in;
  double v[HB_MAXDIM];
  int given_scale = hb_param_given(p, "scale"), given_shape = hb_param_given(p, "new_shape");
  HB_CHECK(given_scale != given_shape, HB_EINVALID, hb_params_where(p), "rebin needs one of scale and new_shape");
  const char *key = given_scale ? "scale" : "new_shape";
  int n = hb_param_numbers(p, key, v), skip = hb_stream_virtual_nav(in); /* one pattern: its signal's axes */
  HB_CHECK(n == in->ndim - skip, HB_EINVALID, hb_param_where(p, key), "%s needs %d numbers (one per axis), got %d",
           key, in->ndim - skip, n);
  if (skip) { /* the size-1 navigation axis, natural index 0, keeps factor 1 */
    memmove(v + 1, v, (size_t)n * sizeof *v);
    v[0] = 1;
  }
  int divides = 1, all_one = 1, crop = hb_param_bool(p, "crop"), sd = in->sig_dim;
  hsize_t nn[HB_MAXDIM], f[HB_MAXDIM], m[HB_MAXDIM];
  hb_axis axes[HB_MAXDIM];
  for (int i = 0; i < in->ndim; i++) { /* natural order i -> array axis d */
    int d = i < in->nav_dim ? in->nav_dim - 1 - i : in->ndim - 1 - (i - in->nav_dim);
    double fd = given_scale ? v[i] : (double)in->shape[d] / v[i];
    HB_CHECK(fd >= 1 && fd == floor(fd) && fd <= (double)in->shape[d], HB_EINVALID, hb_param_where(p, key),
             "axis %d: a factor of %g; whole factors from 1 to the axis' size only (for now)", i, fd);
    all_one &= fd == 1;
    if (d < in->nav_dim) { /* a binned scan: the engine aligns blocks to the bins (hb_nav_map) */
      hb_nav_map *m = &t->nav_map;
      m->factor[d] = m->step[d] = (hsize_t)fd;
      if (fd == 1) continue;
      HB_CHECK(t->as_kernel, HB_EINVALID, hb_param_where(p, key),
               "axis %d is a navigation axis: rebinning the scan makes fewer positions than every other result "
               "has, so it works as a kernel (a result of its own), not in preprocess",
               i);
      m->on = 1;
      divides &= in->shape[d] % m->factor[d] == 0;
      continue;
    }
    int k = d - in->nav_dim;
    nn[k] = in->shape[d];
    f[k] = (hsize_t)fd;
    m[k] = crop ? nn[k] / f[k] : (nn[k] + f[k] - 1) / f[k];
    divides &= nn[k] % f[k] == 0;
    axes[k] = in->axes[d];
    axes[k].offset += (fd - 1) * axes[k].scale / 2;
    axes[k].scale *= fd;
  }
  r->in = in->dtype;
  /* HyperSpy's array_rebin: factors that divide are numpy's sum(dtype=),
   * unless all are 1 (a copy: the data's type, dtype= unused); others go
   * through _linear_bin, which makes integers float64 whatever float dtype
   * is asked, refuses an integer one, and casts float data "safely" */
  const char *dt = hb_param_str(p, "dtype"), *dt_where = hb_param_where(p, "dtype");
  hb_dtype want = r->in;
  int same = dt && !strcmp(dt, "same");
  HB_CHECK(!dt || same || (!hb_dtype_parse(dt, &want) && !hb_dtype_is_complex(want)), HB_EINVALID, dt_where,
           "dtype '%s' is not a numpy integer or float type", dt);
  if (all_one) {
    r->out = r->in;
  } else if (divides) {
    r->out = dt ? want : hb_dtype_is_float(r->in) ? r->in : hb_dtype_sum(r->in);
  } else {
    HB_CHECK(!dt || hb_dtype_is_float(want), HB_EINVALID, dt_where,
             "a factor that does not divide its axis interpolates (HyperSpy's linear binning), which gives floats: "
             "dtype %s is refused, as in HyperSpy", dt);
    HB_CHECK(!hb_dtype_is_float(r->in) || hb_dtype_size(want) >= hb_dtype_size(r->in), HB_EINVALID, dt_where,
             "a factor that does not divide its axis interpolates, and %s data cannot become %s (numpy's safe "
             "cast, as in HyperSpy)", hb_dtype_name(r->in), dt);
    r->out = hb_dtype_is_float(r->in) ? want : HB_F64;
  }
  r->acc = hb_dtype_sum(r->out);
  hb_nav_map *nm = &t->nav_map;
  for (int d = 0; nm->on && d < in->nav_dim; d++) {
    hsize_t n = in->shape[d], f = nm->factor[d];
    nm->shape[d] = crop ? n / f : (n + f - 1) / f;
    nm->axes[d] = in->axes[d];
    nm->axes[d].offset += (double)(f - 1) * nm->axes[d].scale / 2;
    nm->axes[d].scale *= (double)f;
    nm->axes[d].size = nm->shape[d];
  }
  r->in_size = in->sig_size;
  if (divides && (sd == 1 || sd == 2)) {
    r->direct = 1;
    r->row = nn[sd - 1], r->f1 = f[sd - 1], r->m1 = m[sd - 1];
    r->f0 = sd == 2 ? f[0] : 1, r->m0 = sd == 2 ? m[0] : 1;
  }
  hb_stream_set_signal(&t->out, sd, m, axes, r->out);
  r->out_size = t->out.sig_size;
  if (r->direct) return 0;
  /* otherwise each input element's bin, planned once */
  r->bin = malloc(r->in_size * sizeof *r->bin);
  HB_CHECK(r->bin && r->out_size < INT32_MAX, HB_EINTERNAL, "memory", "out of memory planning rebin");
  for (size_t i = 0; i < r->in_size; i++) {
    size_t rem = i, o = 0, stride = 1;
    int inside = 1;
    for (int k = sd - 1; k >= 0; k--) {
      hsize_t ik = rem % nn[k] / f[k];
      rem /= nn[k];
      inside &= ik < m[k];
      o += ik * stride;
      stride *= m[k];
    }
    r->bin[i] = inside ? (int32_t)o : -1;
  }
  return 0;
}

/* Whether casting to `out` before the sum in hb_dtype_sum(out) can give
 * other sums than converting each value into that sum type directly: not
 * for a 64-bit integer sum of integers (both wrap alike) nor for float64,
 * which every value reaches by one rounding either way.  The default
 * (uint16 -> uint64) then sums the data as it is, with no copy. */
static int cast_first(hb_dtype in, hb_dtype out) {
  if (out == in || out == HB_F64) return 0;
  return !((out == HB_I64 || out == HB_U64) && !hb_dtype_is_float(in));
}

/* Pattern x's bin sums into `sums`, in r->acc: each value cast to r->out
 * first (into `cast`, r->in_size of them) where that matters, as numpy's
 * sum(dtype=). */
static void rebin_sums(const rebin_state *r, const void *x, void *cast, void *sums) {
  if (!r->direct) memset(sums, 0, r->out_size * 8);
  hb_dtype src = r->in;
  if (cast_first(r->in, r->out)) cast_values(r->in, x, r->out, cast, r->in_size), x = cast, src = r->out;
  /* Each bin's sum in the table loop's order (the bin's rows top to bottom,
   * each left to right), so the same bits: a row of bins at a time, each
   * input row adding its j-th column of every bin in turn, which the
   * compiler vectorises across bins for the common small factors (the
   * table loop's adds into one bin waited on each other through memory). */
#define DIRECT_COLUMN(T, ACC, F1)                                                                    \
  for (size_t b = 0; b < r->m1; b++) s[b] += (ACC)q[b * (F1) + j]
#define DIRECT(T, ACC)                                                                               \
  for (size_t a = 0; a < r->m0; a++) {                                                               \
    ACC *s = (ACC *)sums + a * r->m1;                                                                \
    for (size_t b = 0; b < r->m1; b++) s[b] = 0;                                                     \
    for (size_t i = 0; i < r->f0; i++) {                                                             \
      const T *q = v + (a * r->f0 + i) * r->row;                                                     \
      for (size_t j = 0; j < r->f1; j++) switch (r->f1) {                                            \
        case 1: DIRECT_COLUMN(T, ACC, 1); break;                                                     \
        case 2: DIRECT_COLUMN(T, ACC, 2); break;                                                     \
        case 4: DIRECT_COLUMN(T, ACC, 4); break;                                                     \
        default: DIRECT_COLUMN(T, ACC, r->f1); break;                                                \
        }                                                                                            \
    }                                                                                                \
  }
  switch (src) {
#define X(E, T)                                                                                      \
  case E: {                                                                                          \
    const T *v = (const T *)x;                                                                       \
    if (r->direct && r->acc == HB_F64) {                                                             \
      DIRECT(T, double)                                                                              \
    } else if (r->direct && r->acc == HB_I64) {                                                      \
      DIRECT(T, int64_t)                                                                             \
    } else if (r->direct) {                                                                          \
      DIRECT(T, uint64_t)                                                                            \
    } else if (r->acc == HB_F64)                                                                     \
      for (size_t i = 0; i < r->in_size; i++) {                                                      \
        if (r->bin[i] >= 0) ((double *)sums)[r->bin[i]] += (double)v[i];                            \
      }                                                                                              \
    else if (r->acc == HB_I64)                                                                       \
      for (size_t i = 0; i < r->in_size; i++) {                                                      \
        if (r->bin[i] >= 0) ((int64_t *)sums)[r->bin[i]] += (int64_t)v[i];                           \
      }                                                                                              \
    else                                                                                             \
      for (size_t i = 0; i < r->in_size; i++) {                                                      \
        if (r->bin[i] >= 0) ((uint64_t *)sums)[r->bin[i]] += (uint64_t)v[i];                         \
      }                                                                                              \
    break;                                                                                           \
  }
    HB_FOREACH_DTYPE(X)
#undef X
#undef DIRECT
#undef DIRECT_COLUMN
    default: break;
  }
}

/* The sums, in r->out, stored at o, or added to what o holds (a binned
 * scan: numpy's sum over the bin's positions adds in the result's type). */
static void rebin_store(const rebin_state *r, const void *sums, void *o, int add) {
  switch (r->out) {
#define X(E, T)                                                                                      \
  case E:                                                                                            \
    for (size_t i = 0; i < r->out_size; i++) {                                                       \
      T v = r->acc == HB_F64   ? (T)((const double *)sums)[i]                                        \
            : r->acc == HB_I64 ? (T)((const int64_t *)sums)[i]                                       \
                               : (T)((const uint64_t *)sums)[i];                                     \
      ((T *)o)[i] = add ? (T)(((T *)o)[i] + v) : v;                                                  \
    }                                                                                                \
    break;
    HB_FOREACH_DTYPE(X)
#undef X
    default: break;
  }
}

static void rebin_apply(const hb_transform *t, const hb_block *b, void *in, void *out) {
  const rebin_state *r = t->state;
  /* one pattern's sums, per call: calls come from whichever thread runs
   * the kernels, and a buffer kept per thread was lost with each worker */
  const int casts = cast_first(r->in, r->out);
  void *sums = malloc(r->out_size * 8), *cast = casts ? malloc(r->in_size * hb_dtype_size(r->out)) : NULL;
  if (!sums || (casts && !cast)) abort();
  const hb_nav_map *m = &t->nav_map;
  size_t out_bytes = r->out_size * hb_dtype_size(r->out);
  for (size_t p = 0; p < b->npos; p++) {
    /* the output position: the pattern's, or its bin's in the block */
    long long at = m->on ? hb_nav_map_place(m, b, p) : (long long)p;
    if (at < 0) continue; /* past the last whole bin */
    rebin_sums(r, (const char *)in + p * r->in_size * hb_dtype_size(r->in), cast, sums);
    rebin_store(r, sums, (char *)out + at * out_bytes, m->on);
  }
  free(cast);
  free(sums);
}

static void rebin_destroy(hb_transform *t) {
  rebin_state *r = t->state;
  if (r) free(r->bin);
  free(r);
}

const hb_transform_def hb_transform_rebin = {
    .op = "rebin",
    .summary = "sum bins of whole factors of the axes, as HyperSpy's rebin (scale or new_shape; the axes' "
               "scale and offset follow); as a kernel it may bin the scan too",
    .params = rebin_params,
    .plan = rebin_plan,
    .apply = rebin_apply,
    .destroy = rebin_destroy,
};

/* ---- change_dtype ------------------------------------------------------------- */

static const hb_param_spec change_dtype_params[] = {
    {"dtype", HB_P_STRING, HB_REQUIRED,
     .help = "a numpy type name (uint8 ... float64, complex64, complex128); values convert as numpy's astype"},
    HB_PARAM_END,
};

static int change_dtype_plan(hb_transform *t, const hb_params *p) {
  hb_dtype to;
  const char *name = hb_param_str(p, "dtype");
  HB_CHECK(!hb_dtype_parse(name, &to), HB_EINVALID, hb_param_where(p, "dtype"), "dtype '%s' is not a numpy type",
           name);
  /* HyperSpy's ComplexSignal.change_dtype refuses a real type too */
  HB_CHECK(!hb_dtype_is_complex(t->in.dtype) || hb_dtype_is_complex(to), HB_EINVALID, hb_param_where(p, "dtype"),
           "complex patterns change only to complex64 or complex128, as in HyperSpy; for %s use complex_part "
           "(amplitude, phase, real or imag)",
           name);
  t->out.dtype = to;
  t->state = NULL;
  return 0;
}

static void change_dtype_apply(const hb_transform *t, const hb_block *b, void *in, void *out) {
  cast_values(t->in.dtype, in, t->out.dtype, out, b->npos * t->in.sig_size);
}

const hb_transform_def hb_transform_change_dtype = {
    .op = "change_dtype",
    .summary = "convert the data to another type, as HyperSpy's change_dtype (numpy's astype)",
    .params = change_dtype_params,
    .plan = change_dtype_plan,
    .apply = change_dtype_apply,
    .complex_patterns = 1,
};

/* ---- complex_part ------------------------------------------------------------ */

static const char *const complex_parts[] = {"amplitude", "phase", "real", "imag"};

static const hb_param_spec complex_part_params[] = {
    {"part", HB_P_ENUM, HB_DEFAULT_STR("amplitude"), .choices = "amplitude|phase|real|imag",
     .help = "HyperSpy's ComplexSignal property: amplitude (|z|), phase (numpy's angle, radians), real or imag"},
    HB_PARAM_END,
};

static int complex_part_plan(hb_transform *t, const hb_params *p) {
  HB_CHECK(hb_dtype_is_complex(t->in.dtype), HB_EINVALID, hb_param_where(p, "part"),
           "complex_part takes complex patterns, and these are %s", hb_dtype_name(t->in.dtype));
  int *part = malloc(sizeof *part);
  HB_CHECK(part, HB_EINTERNAL, "memory", "out of memory");
  *part = 0;
  while (*part < 3 && strcmp(hb_param_str(p, "part"), complex_parts[*part])) ++*part;
  t->state = part;
  t->out.dtype = hb_dtype_real(t->in.dtype);
  return 0;
}

static void complex_part_apply(const hb_transform *t, const hb_block *b, void *in, void *out) {
  size_t n = b->npos * t->in.sig_size;
  int part = *(const int *)t->state;
#define PARTS(T, ABS, ARG)                                                                   \
  for (size_t i = 0; i < n; i++) {                                                           \
    T re = ((const T *)in)[2 * i], im = ((const T *)in)[2 * i + 1];                          \
    ((T *)out)[i] = part == 0 ? ABS(re, im) : part == 1 ? ARG(im, re) : part == 2 ? re : im; \
  }
  if (t->in.dtype == HB_C64) {
    PARTS(float, hypotf, atan2f)
  } else {
    PARTS(double, hypot, atan2)
  }
#undef PARTS
}

const hb_transform_def hb_transform_complex_part = {
    .op = "complex_part",
    .summary = "one real part of complex patterns, as HyperSpy's ComplexSignal amplitude, phase, real and imag "
               "(float32 from complex64, float64 from complex128)",
    .params = complex_part_params,
    .plan = complex_part_plan,
    .apply = complex_part_apply,
    .destroy = free_state,
    .complex_patterns = 1,
};
