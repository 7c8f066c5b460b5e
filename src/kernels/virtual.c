/* virtual_image: a virtual detector over a 2-D signal, or energy windows over
 * a 1-D one, per pattern.
 *
 * 2-D signals: planning turns the geometry into a sparse list of pixel
 * offsets (and weights for masks), so a detector costs only the pixels it
 * covers.  Evaluation is a sweep: the union of the detectors' pixels cut into
 * segments (runs of consecutive pixels covered by the same detectors), each
 * with its list of (detector, weights).  One kernel sweeps its own detector;
 * the kernels of a job are fused (hb_fused) into one sweep, so each pattern
 * is read once however many detectors there are.  Results equal the plain
 * per-detector sum in pixel order, bit for bit: integer data with unit
 * weights are summed exactly in 64-bit integers (the double sum is exact
 * too), everything else in double, per detector, in ascending pixel order.
 *
 * 1-D signals (spectra): a rectangle is one window [x0, x1) and `windows`
 * several; each is HyperSpy's s.isig[x0:x1].sum(-1), in numpy's sum dtype
 * for integers (exact, wrapping as numpy's) and in float64 for floats.  A
 * spectrum's windows are contiguous and short, so they are summed directly
 * (a fused family runs each member on the run, which is in cache). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hb_detector.h"
#include "hb_error.h"
#include "hb_files.h"
#include "hb_kernel.h"
#ifdef __SSE2__
#include <emmintrin.h>
#endif

typedef hb_detector detector; /* idx ascending */

/* Longest segment: a 16-bit segment sum fits 32 bits (65535 * 65536 < 2^32,
 * 32768 * 65536 = 2^31). */
#define SEG_MAX 65536

/* Pixels [start, start+len) are covered by detectors pair[p0 .. p0+np). */
typedef struct {
  uint32_t start, len, p0, np;
  int isum; /* some pair takes the segment's exact integer sum */
} segment;

typedef struct {
  uint32_t det;
  int exact;        /* add the segment's integer sum */
  const double *w;  /* weights of the segment's pixels, or NULL (all 1) */
} pair;

/* Pixels [start, start + 8 * nfull + rest) of one detector: a row of a
 * disc, say.  scalar: the masked last load would start before the pattern. */
typedef struct {
  uint32_t start;
  uint16_t nfull;
  uint8_t rest, scalar;
} run;

typedef struct {
  int ndet;
  size_t nseg, npair;
  segment *seg;
  pair *pair;
  unsigned char *exact; /* per detector: integer-exact sums */
  /* uint16 data, every detector exact: each detector's runs, summed in
   * 32-bit SSE2 lanes over the whole pattern and reduced once per pattern,
   * instead of a horizontal sum and a pair list for every segment */
  run *runs;            /* detector i's: runs[run0[i] .. run0[i + 1]) */
  size_t *run0;
  int64_t *unbias;      /* per detector: 32768 per pixel summed in lanes */
} sweep;

/* One kernel: its detector and its own one-detector sweep; or, on a 1-D
 * signal, its windows [lo[w], hi[w]). */
typedef struct {
  detector d;
  sweep s;
  size_t nwin;
  size_t *lo, *hi;
} vstate;

const hb_param_spec hb_detector_params[] = {
    /* required, checked by hb_detector_plan: a table row marked required
     * would make an absent optional detector map (virtual_image with
     * windows) an error when the job is loaded */
    {"shape", HB_P_ENUM, .choices = "point|circle|annulus|rectangle|mask", .help = "detector geometry (required)"},
    {"at", HB_P_NUMBERS, .count = 2,
     .help = "point: [x, y]; in pixels the nearest pixel (halves up), calibrated the sample s.isig[x, y] takes"},
    {"center", HB_P_NUMBERS, .count = 2, .help = "circle, annulus: [x, y]"},
    {"radius", HB_P_FLOAT, .help = "circle: pixels whose centre is within radius (inclusive)"},
    {"inner", HB_P_FLOAT, .help = "annulus: inner <= r"},
    {"outer", HB_P_FLOAT, .help = "annulus: r <= outer"},
    {"x", HB_P_NUMBERS, .count = 2,
     .help = "rectangle: [x0, x1), half-open like a slice; on a 1-D space the only key (an interval)"},
    {"y", HB_P_NUMBERS, .count = 2, .help = "rectangle: [y0, y1), half-open like a slice"},
    {"file", HB_P_PATH, .help = "mask: HDF5/.hspy file"},
    {"dataset", HB_P_STRING, .help = "mask: dataset of weights, shaped like the space"},
    {"units", HB_P_ENUM, HB_DEFAULT_STR("px"), .choices = "px|calibrated",
     .help = "positions in pixels or in the signal axes' units"},
    HB_PARAM_END,
};

static const hb_param_spec virtual_params[] = {
    {"detector", HB_P_MAP, .sub = hb_detector_params,
     .help = "the detector (on a 1-D signal: a rectangle with x only, one energy window, or a mask)"},
    {"windows", HB_P_LIST,
     .help = "1-D signals, instead of detector: several windows [[x0, x1], [x2, x3], ...], each half-open like a "
             "slice; one array of their sums per pattern"},
    {"units", HB_P_ENUM, HB_DEFAULT_STR("px"), .choices = "px|calibrated",
     .help = "windows: positions in channels or in the signal axis' units (a detector has its own units)"},
    HB_PARAM_END,
};

/* Which keys each shape uses; any other geometry key is an error. */
static const struct {
  const char *shape, *keys;
} shape_keys[] = {
    {"point", "at"}, {"circle", "center|radius"}, {"annulus", "center|inner|outer"},
    {"rectangle", "x|y"}, {"mask", "file|dataset"},
};

static int key_in(const char *keys, const char *k) {
  size_t n = strlen(k);
  for (const char *c = keys; c;) {
    const char *bar = strchr(c, '|');
    size_t len = bar ? (size_t)(bar - c) : strlen(c);
    if (len == n && !strncmp(c, k, n)) return 1;
    c = bar ? bar + 1 : NULL;
  }
  return 0;
}

typedef struct {
  const hb_params *det;
  int nd;
  const hsize_t *dims; /* the space, array order */
  const char *space;
  size_t kx, ky;
  const hb_axis *ax_x, *ax_y;
  int calibrated;
} geom;

/* [x, y] in pixels (converting calibrated positions). */
static void get_point(const geom *g, const char *key, double *x, double *y) {
  double v[2] = {0, 0};
  hb_param_numbers(g->det, key, v);
  *x = g->calibrated ? (v[0] - g->ax_x->offset) / g->ax_x->scale : v[0];
  *y = g->calibrated ? (v[1] - g->ax_y->offset) / g->ax_y->scale : v[1];
}

static int get_length(const geom *g, const char *key, double *r) {
  *r = hb_param_float(g->det, key);
  const char *where = hb_param_where(g->det, key);
  HB_CHECK(*r >= 0, HB_EINVALID, where, "'%s' must be >= 0, got %g", key, *r);
  if (g->calibrated) {
    HB_CHECK(fabs(fabs(g->ax_x->scale) - fabs(g->ax_y->scale)) <= 1e-9 * fabs(g->ax_x->scale), HB_EINVALID, where,
             "calibrated '%s' needs square pixels; the signal axes' scales differ", key);
    *r /= fabs(g->ax_x->scale);
  }
  return 0;
}

/* HyperSpy's value2index of v on an axis of n samples: 1 and the index when
 * it is a sample of the axis, else 0 (and an index past the end or before
 * the start, by the side v is on). */
static int value_index(const hb_axis *a, size_t n, double v, long long *i) {
  double f = (v - a->offset) / a->scale;
  if (!(fabs(f) < 1e15)) { /* far outside: no cast of a huge double */
    *i = f > 0 ? (long long)n : -1;
    return 0;
  }
  *i = hb_axis_value2index(a, v);
  return *i >= 0 && *i < (long long)n;
}

/* [v0, v1) in the units of axis a (n samples) to samples [i0, i1), as
 * HyperSpy's isig[v0:v1] with float bounds: value2index at each end, the stop
 * exclusive; a start before the axis starts at its first sample and a stop
 * past it ends at its end, while a start above the axis or a stop below it
 * is an error (an IndexError there), and so is a range that selects nothing
 * (an empty slice there). */
static int calibrated_span(const hb_axis *a, size_t n, const double *v, const char *key, const char *where,
                           long *i0, long *i1) {
  double first = a->offset, last = a->offset + a->scale * (double)(n - 1);
  double lo = fmin(first, last), hi = fmax(first, last);
  const char *name = a->name[0] ? a->name : "(unnamed)", *units = a->units[0] ? a->units : "units";
  HB_CHECK(isfinite(v[0]) && isfinite(v[1]), HB_EINVALID, where, "%s [%g, %g] must be finite", key, v[0], v[1]);
  long long s, e;
  if (!value_index(a, n, v[0], &s)) {
    HB_CHECK(!(v[0] > hi), HB_EINVALID, where, "%s starts at %g %s, above axis '%s' (%g to %g %s)", key, v[0], units,
             name, lo, hi, units);
    s = 0;
  }
  if (!value_index(a, n, v[1], &e)) {
    HB_CHECK(!(v[1] < lo), HB_EINVALID, where, "%s ends at %g %s, below axis '%s' (%g to %g %s)", key, v[1], units,
             name, lo, hi, units);
    e = (long long)n;
  }
  HB_CHECK(s < e, HB_EINVALID, where,
           "%s [%g, %g) %s selects no sample of axis '%s' (it gives samples [%lld, %lld); the stop is exclusive)", key,
           v[0], v[1], units, name, s, e);
  *i0 = (long)s;
  *i1 = (long)e;
  return 0;
}

/* A rectangle's side `key` ([x0, x1) or [y0, y1)) over an axis of n samples:
 * pixels rounded to the nearest, or calibrated values as isig takes them. */
static int rect_side(const geom *g, const char *key, const hb_axis *a, size_t n, long *i0, long *i1) {
  double v[2] = {0, 0};
  hb_param_numbers(g->det, key, v);
  const char *where = hb_param_where(g->det, key);
  if (g->calibrated) return calibrated_span(a, n, v, key, where, i0, i1);
  *i0 = lround(v[0]);
  *i1 = lround(v[1]);
  HB_CHECK(0 <= *i0 && *i0 < *i1 && *i1 <= (long)n, HB_EINVALID, where,
           "%s [%ld, %ld) must satisfy 0 <= %s0 < %s1 <= %zu", key, *i0, *i1, key, key, n);
  return 0;
}

static int check_inside(const geom *g, const char *key, double x, double y) {
  HB_CHECK(x >= -0.5 && x <= (double)g->kx - 0.5 && y >= -0.5 && y <= (double)g->ky - 0.5, HB_EINVALID,
           hb_param_where(g->det, key),
           "%s [%g, %g] px is outside the %zu x %zu detector (x in [0, %zu), y in [0, %zu))", key, x, y, g->kx, g->ky,
           g->kx, g->ky);
  return 0;
}

static int add_pixel(detector *d, size_t cap, size_t off, double w) {
  HB_CHECK(d->n < cap, HB_EINTERNAL, "virtual_image", "detector pixel list overflow");
  d->idx[d->n] = (uint32_t)off;
  if (d->w) d->w[d->n] = w;
  d->n++;
  return 0;
}

/* As doubles.  h5py and HyperSpy store booleans as an HDF5 enum, which HDF5
 * does not convert to numbers: those are read as their integer base. */
static int read_weights(hid_t ds, size_t n, double *w) {
  hid_t ft = H5Dget_type(ds);
  if (ft < 0) return -1;
  if (H5Tget_class(ft) != H5T_ENUM) {
    H5Tclose(ft);
    return H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, w);
  }
  hid_t base = H5Tget_super(ft), mt = H5Tget_native_type(ft, H5T_DIR_ASCEND);
  size_t sz = H5Tget_size(ft);
  int sgn = base >= 0 ? H5Tget_sign(base) == H5T_SGN_2 : 0;
  unsigned char *raw = (sz == 1 || sz == 2 || sz == 4 || sz == 8) ? malloc(n * sz) : NULL;
  herr_t e = raw && mt >= 0 ? H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) : -1;
  for (size_t i = 0; e >= 0 && i < n; i++) {
    const unsigned char *q = raw + i * sz;
    switch (sz) {
      case 1: w[i] = sgn ? (double)*(const int8_t *)q : (double)*q; break;
      case 2: w[i] = sgn ? (double)*(const int16_t *)q : (double)*(const uint16_t *)q; break;
      case 4: w[i] = sgn ? (double)*(const int32_t *)q : (double)*(const uint32_t *)q; break;
      default: w[i] = sgn ? (double)*(const int64_t *)q : (double)*(const uint64_t *)q; break;
    }
  }
  free(raw);
  if (mt >= 0) H5Tclose(mt);
  if (base >= 0) H5Tclose(base);
  H5Tclose(ft);
  return e;
}

/* A mask dataset: `path` (resolved; `file` as the user wrote it, for
 * messages), dataset `dset`, errors at where_file and where_dset. */
static int read_mask(const geom *g, detector *d, size_t cap, const char *path, const char *file, const char *dset,
                     const char *where_file, const char *where_dset) {
  /* copies: the positions come from hb_node_where's few buffers */
  char wf[1200], wd[1200];
  snprintf(wf, sizeof wf, "%s", where_file);
  snprintf(wd, sizeof wd, "%s", where_dset);
  HB_CALL(hb_file_check_read(path, wf));
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  HB_CHECK(f >= 0, HB_EINVALID, wf, "cannot open mask file '%s' as HDF5", file);
  hid_t ds = H5Lexists(f, dset, H5P_DEFAULT) > 0 ? H5Dopen2(f, dset, H5P_DEFAULT) : -1;
  if (ds < 0) {
    H5Fclose(f);
    HB_RAISE(HB_EINVALID, wd, "mask file '%s' has no dataset '%s'", file, dset);
  }
  hid_t sp = H5Dget_space(ds);
  hsize_t dims[HB_MAXDIM] = {0};
  int nd = H5Sget_simple_extent_ndims(sp), same = nd == g->nd;
  if (nd >= 0 && nd <= HB_MAXDIM) H5Sget_simple_extent_dims(sp, dims, NULL);
  H5Sclose(sp);
  for (int a = 0; same && a < nd; a++) same = dims[a] == g->dims[a];
  int rc = 0;
  double *w = NULL;
  if (!same) {
    char want[256] = "", got[256] = "";
    for (int a = 0; a < g->nd; a++)
      snprintf(want + strlen(want), sizeof want - strlen(want), "%s%llu", a ? " x " : "",
               (unsigned long long)g->dims[a]);
    for (int a = 0; a < nd && a < HB_MAXDIM; a++)
      snprintf(got + strlen(got), sizeof got - strlen(got), "%s%llu", a ? " x " : "", (unsigned long long)dims[a]);
    rc = HB_FAIL(HB_EINVALID, wd, "mask '%s' must be %s (the %s shape), got %d-D %s", dset, want,
                 g->space, nd, got);
  } else if (!(w = malloc(cap * sizeof *w))) {
    rc = HB_FAIL(HB_EINTERNAL, "memory", "out of memory");
  } else if (read_weights(ds, cap, w) < 0) {
    rc = HB_FAIL(HB_EIO, path, "cannot read mask dataset %s (%s)", dset, hb_h5_error_text());
  }
  H5Dclose(ds);
  H5Fclose(f);
  for (size_t i = 0; !rc && i < cap; i++) {
    if (!isfinite(w[i]) && g->nd == 2)
      rc = HB_FAIL(HB_EINVALID, wd, "mask '%s' has a non-finite weight at pixel (x=%zu, y=%zu)", dset,
                   i % g->kx, i / g->kx);
    else if (!isfinite(w[i]))
      rc = HB_FAIL(HB_EINVALID, wd, "mask '%s' has a non-finite weight at offset %zu (C order)", dset,
                   i);
    else if (w[i] != 0)
      rc = add_pixel(d, cap, i, w[i]);
  }
  free(w);
  return rc;
}

/* Largest |value| of an integer dtype, 0 for the 64-bit and float types
 * (no exact double sum is guaranteed for them). */
static double int_range(hb_dtype t) {
  switch (t) {
    case HB_U8: return 255;
    case HB_U16: return 65535;
    case HB_U32: return 4294967295.0;
    case HB_I8: return 128;
    case HB_I16: return 32768;
    case HB_I32: return 2147483648.0;
    default: return 0;
  }
}

static void sweep_free(sweep *s) {
  free(s->seg);
  free(s->pair);
  free(s->exact);
  free(s->runs);
  free(s->run0);
  free(s->unbias);
  memset(s, 0, sizeof *s);
}

static int sweep_push(sweep *s, size_t *segcap, size_t *paircap, const segment *sg, const pair *pairs) {
  if (s->nseg == *segcap) {
    *segcap = *segcap ? 2 * *segcap : 64;
    segment *more = realloc(s->seg, *segcap * sizeof *more);
    HB_CHECK(more, HB_EINTERNAL, "memory", "out of memory");
    s->seg = more;
  }
  if (s->npair + sg->np > *paircap) {
    while (s->npair + sg->np > *paircap) *paircap = *paircap ? 2 * *paircap : 64;
    pair *more = realloc(s->pair, *paircap * sizeof *more);
    HB_CHECK(more, HB_EINTERNAL, "memory", "out of memory");
    s->pair = more;
  }
  s->seg[s->nseg] = *sg;
  s->seg[s->nseg++].p0 = (uint32_t)s->npair;
  memcpy(s->pair + s->npair, pairs, sg->np * sizeof *pairs);
  s->npair += sg->np;
  return 0;
}

/* 8-value loads of a run, the last one masked. */
static size_t run_loads(size_t len) { return (len + 7) / 8; }

/* The lane plan (see sweep), when it applies: uint16 data, every detector
 * exact with strictly ascending pixels, and few enough loads per detector
 * that no 32-bit lane can overflow (each load adds two biased values, each
 * in [-32768, 32767], to a lane).  Otherwise s->runs stays NULL and the
 * segments are used. */
static int lanes_build(sweep *s, const detector *const *d, int nd, hb_dtype dtype) {
  if (dtype != HB_U16) return 0;
  size_t nruns = 0;
  for (int i = 0; i < nd; i++) {
    if (!s->exact[i]) return 0;
    size_t loads = 0;
    for (size_t k = 0, len = 0; k < d[i]->n; k++) {
      if (k && d[i]->idx[k] <= d[i]->idx[k - 1]) return 0;
      len++;
      if (k + 1 == d[i]->n || d[i]->idx[k + 1] != d[i]->idx[k] + 1) {
        loads += run_loads(len);
        nruns++;
        len = 0;
      }
    }
    if (loads >= 32768) return 0;
  }
  s->runs = malloc((nruns ? nruns : 1) * sizeof *s->runs);
  s->run0 = malloc(((size_t)nd + 1) * sizeof *s->run0);
  s->unbias = calloc((size_t)nd, sizeof *s->unbias);
  HB_CHECK(s->runs && s->run0 && s->unbias, HB_EINTERNAL, "memory", "out of memory");
  size_t r = 0;
  for (int i = 0; i < nd; i++) {
    s->run0[i] = r;
    for (size_t k = 0, k0 = 0; k < d[i]->n; k++)
      if (k + 1 == d[i]->n || d[i]->idx[k + 1] != d[i]->idx[k] + 1) { /* a run ends at k */
        uint32_t start = d[i]->idx[k0], len = (uint32_t)(k - k0 + 1);
        s->runs[r] = (run){start, (uint16_t)(len / 8), (uint8_t)(len % 8), len % 8 && start + len < 8};
        s->unbias[i] += 32768 * (int64_t)(s->runs[r].scalar ? len - len % 8 : len);
        r++;
        k0 = k + 1;
      }
  }
  s->run0[nd] = r;
  return 0;
}

/* Merge detectors (ascending pixel lists) into one sweep: walk the union of
 * their pixels in order, opening a segment wherever the set of covering
 * detectors changes or a gap starts. */
static int sweep_build(sweep *s, const detector *const *d, int nd, size_t m, hb_dtype dtype) {
  memset(s, 0, sizeof *s);
  s->ndet = nd;
  size_t segcap = 0, paircap = 0;
  size_t *cur = calloc((size_t)nd, sizeof *cur);
  pair *open = malloc((size_t)nd * sizeof *open), *here = malloc((size_t)nd * sizeof *here);
  s->exact = calloc((size_t)nd, 1);
  int rc = cur && open && here && s->exact ? 0 : HB_FAIL(HB_EINTERNAL, "memory", "out of memory");
  for (int i = 0; !rc && i < nd; i++) /* every partial sum stays below 2^53 */
    s->exact[i] = !d[i]->w && int_range(dtype) > 0 && (double)d[i]->n * int_range(dtype) <= 9007199254740992.0;
  segment sg = {0, 0, 0, 0, 0};
  while (!rc) {
    size_t j = m; /* the next pixel any detector covers */
    for (int i = 0; i < nd; i++)
      if (cur[i] < d[i]->n && d[i]->idx[cur[i]] < j) j = d[i]->idx[cur[i]];
    if (j == m) break;
    uint32_t nh = 0;
    for (int i = 0; i < nd; i++)
      if (cur[i] < d[i]->n && d[i]->idx[cur[i]] == j) {
        here[nh++] = (pair){(uint32_t)i, s->exact[i], d[i]->w ? d[i]->w + cur[i] : NULL};
        cur[i]++;
      }
    int same = sg.len && sg.len < SEG_MAX && j == (size_t)sg.start + sg.len && nh == sg.np;
    for (uint32_t q = 0; same && q < nh; q++) same = open[q].det == here[q].det;
    if (same) {
      sg.len++;
      continue;
    }
    if (sg.len) rc = sweep_push(s, &segcap, &paircap, &sg, open);
    sg = (segment){(uint32_t)j, 1, 0, nh, 0};
    memcpy(open, here, nh * sizeof *open);
    for (uint32_t q = 0; q < nh; q++) sg.isum |= open[q].exact;
  }
  if (!rc && sg.len) rc = sweep_push(s, &segcap, &paircap, &sg, open);
  if (!rc) rc = lanes_build(s, d, nd, dtype);
  free(cur);
  free(open);
  free(here);
  if (rc) sweep_free(s);
  return rc;
}

static inline int is_signed(hb_dtype t) { return t == HB_I8 || t == HB_I16 || t == HB_I32 || t == HB_I64; }

/* Sum of len uint16 values, exact (len <= SEG_MAX).  Segments of virtual
 * detectors are short (a disc's row: ~10-40 pixels), so the tail matters as
 * much as the body: with back_ok (8 values before x + len belong to the same
 * pattern) it is one overlapping load with the already-counted lanes masked
 * off, instead of up to 7 scalar steps. */
static inline int64_t sum_u16(const uint16_t *x, size_t len, int back_ok) {
#ifdef __SSE2__
  static const uint16_t keep[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff};
  const __m128i zero = _mm_setzero_si128();
  __m128i acc = zero;
  size_t j = 0;
  for (; j + 8 <= len; j += 8) {
    __m128i v = _mm_loadu_si128((const __m128i *)(x + j));
    acc = _mm_add_epi32(acc, _mm_add_epi32(_mm_unpacklo_epi16(v, zero), _mm_unpackhi_epi16(v, zero)));
  }
  size_t r = len - j;
  if (r && back_ok) { /* the last r of the 8 values ending at x + len */
    __m128i v = _mm_loadu_si128((const __m128i *)(x + len - 8));
    v = _mm_and_si128(v, _mm_loadu_si128((const __m128i *)(keep + r)));
    acc = _mm_add_epi32(acc, _mm_add_epi32(_mm_unpacklo_epi16(v, zero), _mm_unpackhi_epi16(v, zero)));
    r = 0;
  }
  acc = _mm_add_epi32(acc, _mm_shuffle_epi32(acc, _MM_SHUFFLE(1, 0, 3, 2)));
  acc = _mm_add_epi32(acc, _mm_shuffle_epi32(acc, _MM_SHUFFLE(2, 3, 0, 1)));
  uint32_t t = (uint32_t)_mm_cvtsi128_si32(acc);
  for (j = len - r; j < len; j++) t += x[j];
  return t;
#else
  (void)back_ok;
  uint32_t t = 0;
  for (size_t j = 0; j < len; j++) t += x[j];
  return t;
#endif
}

#ifdef __SSE2__
/* The lane plan (see sweep): detector by detector, run by run.  Values are
 * biased to int16 so that one madd adds pairs into the 32-bit lanes (the
 * bias, 32768 per pixel, is added back at the end); a run's last load ends
 * at its end, with the lanes before the run masked off. */
static void lanes_run(const sweep *s, const hb_block *b, void *const *out) {
  static const uint16_t keep[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff};
  const __m128i bias = _mm_set1_epi16((short)0x8000), ones = _mm_set1_epi16(1);
  const uint16_t *x = b->data;
  for (size_t p = 0; p < b->npos; p++, x += b->sig_size) {
    /* ten discs touch most of a pattern's cache lines, scattered: ask for
     * the next pattern's while summing this one (the kernels phase of ten
     * discs on the benchmark input fell by about a third) */
    const size_t next = p + 1 < b->npos ? b->sig_size : 0;
    for (int i = 0; i < s->ndet; i++) {
      __m128i acc = _mm_setzero_si128();
      int64_t sum = s->unbias[i];
      for (const run *r = s->runs + s->run0[i], *re = s->runs + s->run0[i + 1]; r < re; r++) {
        const uint16_t *xs = x + r->start, *xe = xs + 8 * (size_t)r->nfull;
        _mm_prefetch((const char *)(xs + next), _MM_HINT_T0);
        for (; xs < xe; xs += 8)
          acc = _mm_add_epi32(acc, _mm_madd_epi16(_mm_xor_si128(_mm_loadu_si128((const __m128i *)xs), bias), ones));
        if (r->scalar) {
          for (int j = 0; j < r->rest; j++) sum += xe[j];
        } else if (r->rest) {
          __m128i v = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(xe + r->rest - 8)), bias);
          v = _mm_and_si128(v, _mm_loadu_si128((const __m128i *)(keep + r->rest)));
          acc = _mm_add_epi32(acc, _mm_madd_epi16(v, ones));
        }
      }
      int32_t l[4];
      _mm_storeu_si128((__m128i *)l, acc);
      ((double *)out[i])[p] = (double)(sum + l[0] + l[1] + l[2] + (int64_t)l[3]);
    }
  }
}
#endif

/* out[i]: detector i's npos values. */
static void sweep_run(const sweep *s, const hb_block *b, void *const *out) {
#ifdef __SSE2__
  if (s->runs) {
    lanes_run(s, b, out);
    return;
  }
#endif
  const size_t m = b->sig_size, nseg = s->nseg;
  const int nd = s->ndet;
  int64_t ai[nd];
  double af[nd];
  switch (b->dtype) {
#define X(E, T)                                                                     \
  case E: {                                                                         \
    const int is_int = (T)0.5 == 0;                                                 \
    const T *x = b->data;                                                           \
    for (size_t p = 0; p < b->npos; p++, x += m) {                                  \
      memset(ai, 0, sizeof ai);                                                     \
      memset(af, 0, sizeof af);                                                     \
      for (size_t g = 0; g < nseg; g++) {                                           \
        const segment *sg = &s->seg[g];                                             \
        const T *xs = x + sg->start;                                                \
        const size_t len = sg->len;                                                 \
        int64_t t = 0;                                                              \
        if (is_int && sg->isum) {                                                   \
          /* 8/16-bit data in 32-bit lanes (4 per SSE2 add): exact, as */           \
          /* segments hold at most SEG_MAX pixels */                                \
          if (E == HB_U16) {                                                        \
            t = sum_u16((const void *)xs, len, sg->start + len >= 8);               \
          } else if (sizeof(T) <= 2 && is_signed(E)) {                              \
            int32_t u = 0;                                                          \
            for (size_t j = 0; j < len; j++) u += (int32_t)xs[j];                   \
            t = u;                                                                  \
          } else if (sizeof(T) <= 2) {                                              \
            uint32_t u = 0;                                                         \
            for (size_t j = 0; j < len; j++) u += (uint32_t)xs[j];                  \
            t = u;                                                                  \
          } else {                                                                  \
            for (size_t j = 0; j < len; j++) t += (int64_t)xs[j];                   \
          }                                                                         \
        }                                                                           \
        for (const pair *q = s->pair + sg->p0, *qe = q + sg->np; q < qe; q++) {     \
          if (q->exact) {                                                           \
            ai[q->det] += t;                                                        \
            continue;                                                               \
          }                                                                         \
          double a = af[q->det];                                                    \
          if (q->w)                                                                 \
            for (size_t j = 0; j < len; j++) a += q->w[j] * (double)xs[j];          \
          else                                                                      \
            for (size_t j = 0; j < len; j++) a += (double)xs[j];                    \
          af[q->det] = a;                                                           \
        }                                                                           \
      }                                                                             \
      for (int i = 0; i < nd; i++) ((double *)out[i])[p] = s->exact[i] ? (double)ai[i] : af[i]; \
    }                                                                               \
    break;                                                                          \
  }
    HB_FOREACH_DTYPE(X)
#undef X
    default: break;
  }
}

/* A 1-D signal's windows, per pattern: input type, C type, the 64-bit type
 * it widens to (its sign), the accumulator (uint64_t for integers: numpy's
 * sum wraps, and unsigned arithmetic wraps alike without undefined
 * behaviour; the bits are the int64 sum for signed data) and, for 8/16-bit
 * data, a 32-bit partial that holds WIN_NARROW values exactly (32-bit SIMD
 * lanes, twice as many per instruction). */
#define WIN_TYPES(X)                                     \
  X(HB_U8, uint8_t, uint64_t, uint64_t, uint32_t)        \
  X(HB_U16, uint16_t, uint64_t, uint64_t, uint32_t)      \
  X(HB_U32, uint32_t, uint64_t, uint64_t, uint64_t)      \
  X(HB_U64, uint64_t, uint64_t, uint64_t, uint64_t)      \
  X(HB_I8, int8_t, int64_t, uint64_t, int32_t)           \
  X(HB_I16, int16_t, int64_t, uint64_t, int32_t)         \
  X(HB_I32, int32_t, int64_t, uint64_t, int64_t)         \
  X(HB_I64, int64_t, int64_t, uint64_t, int64_t)         \
  X(HB_F32, float, double, double, double)               \
  X(HB_F64, double, double, double, double)
/* 65535 * 65536 < 2^32 and 32768 * 65536 = 2^31 */
#define WIN_NARROW ((size_t)65536)

/* out: npos x nwin sums, in numpy's sum dtype for integers, float64 for
 * floats (added in channel order). */
static void window_sums(const vstate *vs, const hb_block *b, void *out) {
  const size_t m = b->sig_size, nw = vs->nwin;
  switch (b->dtype) {
#define X(E, T, W, A, N)                                                                \
  case E: {                                                                             \
    const T *x = b->data;                                                               \
    A *o = out;                                                                         \
    const int narrow = sizeof(N) == 4 && sizeof(T) <= 2;                                \
    for (size_t p = 0; p < b->npos; p++, x += m)                                        \
      for (size_t w = 0; w < nw; w++) {                                                 \
        const size_t i0 = vs->lo[w], i1 = vs->hi[w];                                    \
        A acc = 0;                                                                      \
        if (narrow)                                                                     \
          for (size_t j0 = i0; j0 < i1; j0 += WIN_NARROW) {                             \
            const size_t j1 = i1 - j0 < WIN_NARROW ? i1 : j0 + WIN_NARROW;              \
            N t = 0;                                                                    \
            for (size_t j = j0; j < j1; j++) t += (N)x[j];                              \
            acc += (A)(W)t;                                                             \
          }                                                                             \
        else                                                                            \
          for (size_t j = i0; j < i1; j++) acc += (A)(W)x[j];                           \
        *o++ = acc;                                                                     \
      }                                                                                 \
    break;                                                                              \
  }
    WIN_TYPES(X)
#undef X
    default: break;
  }
}

int hb_detector_plan(const hb_params *det, int nd, const hsize_t *dims, const hb_axis *axes, const char *space,
                     hb_detector *d) {
  memset(d, 0, sizeof *d);
  const char *shape = hb_param_str(det, "shape");
  const char *where = hb_params_where(det);
  HB_CHECK(shape, HB_EINVALID, where, "the detector needs a 'shape' (point, circle, annulus, rectangle or mask)");
  size_t cap = 1;
  for (int a = 0; a < nd; a++) cap *= dims[a];
  HB_CHECK(cap < UINT32_MAX, HB_EINVALID, where, "the %s space is too large for a detector", space);
  /* On a 1-D space (a spectrum, a line scan) a rectangle is an interval along
   * x, as HyperSpy's SpanROI; other geometry needs y. */
  int span = nd == 1 && !strcmp(shape, "rectangle");
  HB_CHECK(nd == 2 || span || !strcmp(shape, "mask"), HB_EINVALID, where,
           "a %s detector needs a 2-D %s; this one has %d ax%s (use shape: mask%s)", shape, space, nd,
           nd == 1 ? "is" : "es", nd == 1 ? ", or a rectangle with x only" : "");
  geom g = {det, nd, dims, space, nd == 2 ? dims[1] : span ? dims[0] : 0, nd == 2 ? dims[0] : 1,
            nd == 2 ? &axes[1] : span ? &axes[0] : NULL, nd == 2 ? &axes[0] : NULL, 0};
  g.calibrated = !strcmp(hb_param_str(det, "units"), "calibrated");
  const char *keys = NULL;
  for (size_t i = 0; i < sizeof shape_keys / sizeof shape_keys[0]; i++)
    if (!strcmp(shape, shape_keys[i].shape)) keys = span ? "x" : shape_keys[i].keys;
  for (const hb_param_spec *r = hb_detector_params; r->name; r++) {
    if (!strcmp(r->name, "shape") || !strcmp(r->name, "units") || !hb_param_given(det, r->name)) continue;
    HB_CHECK(key_in(keys, r->name), HB_EINVALID, hb_param_where_key(det, r->name),
             "'%s' does not apply to a %s detector (it takes: %s)", r->name, shape, keys);
  }
  for (const char *c = keys; c;) {
    const char *bar = strchr(c, '|');
    char key[16];
    snprintf(key, sizeof key, "%.*s", (int)(bar ? (size_t)(bar - c) : strlen(c)), c);
    HB_CHECK(hb_param_given(det, key), HB_EINVALID, where, "a %s detector needs '%s'", shape, key);
    c = bar ? bar + 1 : NULL;
  }

  HB_ALLOC(d->idx, cap);
  if (!strcmp(shape, "mask")) {
    HB_ALLOC(d->w, cap);
    HB_CALL(read_mask(&g, d, cap, hb_param_str(det, "file"), hb_param_text(det, "file"), hb_param_str(det, "dataset"),
                      hb_param_where(det, "file"), hb_param_where(det, "dataset")));
  } else if (!strcmp(shape, "point")) {
    double x = 0, y = 0;
    long long px, py;
    get_point(&g, "at", &x, &y);
    if (g.calibrated) { /* the sample s.isig[x, y] takes: value2index's rounding */
      double v[2] = {0, 0};
      hb_param_numbers(det, "at", v);
      value_index(g.ax_x, g.kx, v[0], &px);
      value_index(g.ax_y, g.ky, v[1], &py);
    } else { /* the pixel whose centre is nearest; exact halves round up, like floor(v + 0.5) */
      px = fabs(x) < 1e15 ? (long long)floor(x + 0.5) : -1;
      py = fabs(y) < 1e15 ? (long long)floor(y + 0.5) : -1;
    }
    HB_CHECK(px >= 0 && px < (long long)g.kx && py >= 0 && py < (long long)g.ky, HB_EINVALID,
             hb_param_where(det, "at"), "at [%g, %g] px is outside the %zu x %zu detector (x in [0, %zu), y in [0, %zu))",
             x, y, g.kx, g.ky, g.kx, g.ky);
    HB_CALL(add_pixel(d, cap, (size_t)py * g.kx + (size_t)px, 1));
  } else if (!strcmp(shape, "rectangle")) {
    long x0, x1, y0 = 0, y1 = 1;
    HB_CALL(rect_side(&g, "x", g.ax_x, g.kx, &x0, &x1));
    if (!span) HB_CALL(rect_side(&g, "y", g.ax_y, g.ky, &y0, &y1));
    for (long y = y0; y < y1; y++)
      for (long x = x0; x < x1; x++) HB_CALL(add_pixel(d, cap, (size_t)y * g.kx + (size_t)x, 1));
  } else {
    double cx = 0, cy = 0, rin = 0, rout = 0;
    get_point(&g, "center", &cx, &cy);
    HB_CALL(check_inside(&g, "center", cx, cy));
    if (!strcmp(shape, "circle")) {
      HB_CALL(get_length(&g, "radius", &rout));
    } else {
      HB_CALL(get_length(&g, "inner", &rin));
      HB_CALL(get_length(&g, "outer", &rout));
      HB_CHECK(rin <= rout, HB_EINVALID, hb_param_where(det, "inner"), "inner (%g) must not exceed outer (%g)", rin,
               rout);
    }
    /* boundary included; the tolerance keeps r == radius exact under rounding */
    double lo = rin * rin * (1 - 1e-12), hi = rout * rout * (1 + 1e-12);
    for (size_t y = 0; y < g.ky; y++)
      for (size_t x = 0; x < g.kx; x++) {
        double dx = (double)x - cx, dy = (double)y - cy, r2 = dx * dx + dy * dy;
        if (r2 >= lo && r2 <= hi) HB_CALL(add_pixel(d, cap, y * g.kx + x, 1));
      }
  }
  HB_CHECK(d->n > 0, HB_EINVALID, where, "the %s detector covers no pixel of the %s", shape, space);
  return 0;
}

int hb_detector_plan_mask(const char *path, const char *file, const char *dset, const char *where_file,
                          const char *where, int nd, const hsize_t *dims, const char *space, hb_detector *d) {
  memset(d, 0, sizeof *d);
  char w[1200];
  snprintf(w, sizeof w, "%s", where);
  size_t cap = 1;
  for (int a = 0; a < nd; a++) cap *= dims[a];
  HB_CHECK(cap < UINT32_MAX, HB_EINVALID, w, "the %s space is too large for a detector", space);
  geom g = {NULL, nd, dims, space, nd == 2 ? dims[1] : 0, nd == 2 ? dims[0] : 1, NULL, NULL, 0};
  HB_ALLOC(d->idx, cap);
  HB_ALLOC(d->w, cap);
  HB_CALL(read_mask(&g, d, cap, path, file, dset, where_file, where_file));
  HB_CHECK(d->n > 0, HB_EINVALID, w, "the mask detector covers no pixel of the %s", space);
  return 0;
}

void hb_detector_free(hb_detector *d) {
  free(d->idx);
  free(d->w);
  d->idx = NULL;
  d->w = NULL;
}

/* `windows` of a 1-D signal: each item a pair [x0, x1), in channels or
 * calibrated (as isig); errors at the item. */
static int plan_windows(vstate *vs, const hb_stream *in, const hb_params *p) {
  const hb_node *list = hb_param_node(p, "windows");
  const hb_axis *a = &in->axes[in->nav_dim];
  const size_t n = in->shape[in->nav_dim];
  const int calibrated = !strcmp(hb_param_str(p, "units"), "calibrated");
  HB_CHECK(list->n > 0, HB_EINVALID, hb_param_where(p, "windows"), "windows is empty: give one [x0, x1] or more");
  HB_ALLOC(vs->lo, list->n);
  HB_ALLOC(vs->hi, list->n);
  for (size_t w = 0; w < list->n; w++) {
    char where[1200], key[48];
    snprintf(where, sizeof where, "%s", hb_node_where(list->kids[w], 0));
    snprintf(key, sizeof key, "window %zu", w + 1);
    double v[2];
    HB_CHECK(list->kids[w]->kind == HB_NODE_SEQ && list->kids[w]->n == 2, HB_EINVALID, where,
             "%s must be a pair [x0, x1] (the window [x0, x1), like a slice)", key);
    HB_CALL(hb_node_numbers(list->kids[w], v, 2));
    long i0, i1;
    if (calibrated) {
      HB_CALL(calibrated_span(a, n, v, key, where, &i0, &i1));
    } else {
      i0 = lround(v[0]);
      i1 = lround(v[1]);
      HB_CHECK(0 <= i0 && i0 < i1 && i1 <= (long)n, HB_EINVALID, where,
               "%s [%ld, %ld) must satisfy 0 <= x0 < x1 <= %zu (the channels)", key, i0, i1, n);
    }
    vs->lo[w] = (size_t)i0;
    vs->hi[w] = (size_t)i1;
    vs->nwin = w + 1;
  }
  return 0;
}

static int virtual_plan(hb_kernel *k, const hb_stream *in, const hb_params *p) {
  const int has_det = hb_param_given(p, "detector"), has_win = hb_param_given(p, "windows");
  HB_CHECK(in->sig_dim == 1 || in->sig_dim == 2, HB_EINVALID, hb_params_where(p),
           "virtual_image needs a 1-D or 2-D signal; this input's signal has %d axes", in->sig_dim);
  HB_CHECK(has_det || has_win, HB_EINVALID, hb_params_where(p), "virtual_image needs a detector%s",
           in->sig_dim == 1 ? " (or windows)" : "");
  HB_CHECK(!(has_det && has_win), HB_EINVALID, hb_param_where_key(p, "windows"),
           "give either a detector or windows, not both");
  HB_CHECK(has_win || !hb_param_given(p, "units"), HB_EINVALID, hb_param_where_key(p, "units"),
           "units applies to windows; a detector takes its own (detector: {..., units: calibrated})");
  HB_CHECK(!has_win || in->sig_dim == 1, HB_EINVALID, hb_param_where_key(p, "windows"),
           "windows need a 1-D signal (a spectrum); this input's signal has %d axes: use a detector", in->sig_dim);
  vstate *vs;
  HB_ALLOC(vs, 1);
  k->state = vs;
  const hsize_t *dims = &in->shape[in->nav_dim];
  const hb_dtype sum_type = hb_dtype_sum(in->dtype);
  if (has_win) {
    HB_CALL(plan_windows(vs, in, p));
    hsize_t nw = vs->nwin;
    hb_axis axis = {.name = "window", .scale = 1, .size = nw};
    HB_CALL(hb_kernel_add_output(k, NULL, HB_OUT_NAV, sum_type, sum_type, "Intensity"));
    hb_output_set_shape(hb_kernel_output(k, 0), 1, &nw, &axis);
    return 0;
  }
  const hb_params *det = hb_param_map(p, "detector");
  HB_CALL(hb_detector_plan(det, in->sig_dim, dims, &in->axes[in->nav_dim], "signal", &vs->d));
  if (in->sig_dim == 1 && !vs->d.w) { /* a rectangle: one window, its pixels consecutive */
    HB_ALLOC(vs->lo, 1);
    HB_ALLOC(vs->hi, 1);
    vs->lo[0] = vs->d.idx[0];
    vs->hi[0] = (size_t)vs->d.idx[vs->d.n - 1] + 1;
    vs->nwin = 1;
    return hb_kernel_add_output(k, NULL, HB_OUT_NAV, sum_type, sum_type, "Intensity");
  }
  const detector *one = &vs->d;
  HB_CALL(sweep_build(&vs->s, &one, 1, in->sig_size, in->dtype));
  return hb_kernel_add_output(k, NULL, HB_OUT_NAV, HB_F64, HB_F64, "Intensity");
}

static void virtual_block(const hb_kernel *k, const hb_block *b, void *const *out) {
  const vstate *vs = k->state;
  if (vs->nwin) window_sums(vs, b, out[0]);
  else sweep_run(&vs->s, b, out);
}

static void virtual_destroy(hb_kernel *k) {
  vstate *vs = k->state;
  if (!vs) return;
  sweep_free(&vs->s);
  hb_detector_free(&vs->d);
  free(vs->lo);
  free(vs->hi);
  free(vs);
}

/* Every virtual_image kernel of the job in one sweep.  A 1-D signal's
 * members run one after the other on the run (no state): their windows are
 * contiguous reads of patterns already in cache. */
static int virtual_fuse(hb_fused *f) {
  if (f->in->sig_dim == 1) return 0;
  const detector **d = malloc((size_t)f->n * sizeof *d);
  sweep *s = calloc(1, sizeof *s);
  if (!d || !s) {
    free(d);
    free(s);
    HB_RAISE(HB_EINTERNAL, "memory", "out of memory");
  }
  for (int i = 0; i < f->n; i++) d[i] = &((const vstate *)f->k[i]->state)->d;
  int rc = sweep_build(s, d, f->n, f->in->sig_size, f->in->dtype);
  free(d);
  if (rc) {
    free(s);
    return rc;
  }
  f->state = s;
  return 0;
}

static void virtual_fused_block(const hb_fused *f, const hb_block *b, void *const *out) {
  if (f->state) {
    sweep_run(f->state, b, out);
    return;
  }
  for (int i = 0; i < f->n; i++) virtual_block(f->k[i], b, &out[i]);
}

static void virtual_fused_destroy(hb_fused *f) {
  if (!f->state) return;
  sweep_free(f->state);
  free(f->state);
  f->state = NULL;
}

const hb_kernel_def hb_kernel_virtual_image = {
    .op = "virtual_image",
    .summary = "integrated intensity in a virtual detector (point, circle, annulus, rectangle or weighted mask) of a "
               "2-D signal, or in energy windows of a 1-D one, per pattern. A window [x0, x1) is HyperSpy's "
               "s.isig[x0:x1].sum(-1): calibrated bounds convert by value2index (half towards zero for values >= 0), "
               "the stop exclusive, a start before the axis or a stop past it clipped to its ends (as are calibrated "
               "rectangles on 2-D signals); a window's sum has numpy's sum dtype for integer data (exact), and is "
               "float64 for float data (HyperSpy keeps float32 for float32 data)",
    .params = virtual_params,
    .outputs_doc = "<name>: navigation-shaped; float64 for a 2-D signal or a mask; for a 1-D signal's rectangle or "
                   "windows numpy's sum dtype (uint64 / int64) for integer data and float64 for float data, and "
                   "with windows an array of n sums per pattern (item axis 'window')",
    .plan = virtual_plan,
    .block = virtual_block,
    .destroy = virtual_destroy,
    .fuse = virtual_fuse,
    .fused_block = virtual_fused_block,
    .fused_destroy = virtual_fused_destroy,
};
