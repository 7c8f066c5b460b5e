/* Every kernel's plan + block (+ merge/finish), called directly through the
 * registry with a hand-made hb_input and parameters parsed from YAML, checked
 * against plain reference loops written here.
 *
 *  - sum/mean/max/min, axes: signal and axes: navigation (two and three
 *    blocks merged, then finished), for every dtype; exact integer sums;
 *    NaN wins in max/min; output kinds and dtypes as declared;
 *  - virtual_image: the exact pixel set of every detector shape (read back
 *    with one-hot patterns), calibrated units, HDF5 masks, and the errors;
 *  - preprocess filter_hot_pixels. */
#include <hdf5.h>
#include <math.h>
#include <mpi.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hb_error.h"
#include "hb_kernel.h"
#include "hb_params.h"
#include "hb_yaml.h"
#include "testutil.h"

static char tmpdir[64];

/* ---- typed buffers, written independently of dtype.c ---------------------- */

static const hb_dtype all_dtypes[] = {HB_U8, HB_U16, HB_U32, HB_U64, HB_I8, HB_I16, HB_I32, HB_I64, HB_F32, HB_F64};
static const char *const dname[] = {"uint8", "uint16", "uint32", "uint64", "int8",
                                    "int16", "int32",  "int64",  "float32", "float64"};
static const size_t dsize[] = {1, 2, 4, 8, 1, 2, 4, 8, 4, 8};

static int is_float(hb_dtype t) { return t == HB_F32 || t == HB_F64; }
static int is_signed(hb_dtype t) { return t >= HB_I8 && t <= HB_I64; }

static void put(hb_dtype t, void *buf, size_t i, double v) {
  switch (t) {
    case HB_U8: ((uint8_t *)buf)[i] = (uint8_t)v; break;
    case HB_U16: ((uint16_t *)buf)[i] = (uint16_t)v; break;
    case HB_U32: ((uint32_t *)buf)[i] = (uint32_t)v; break;
    case HB_U64: ((uint64_t *)buf)[i] = (uint64_t)v; break;
    case HB_I8: ((int8_t *)buf)[i] = (int8_t)v; break;
    case HB_I16: ((int16_t *)buf)[i] = (int16_t)v; break;
    case HB_I32: ((int32_t *)buf)[i] = (int32_t)v; break;
    case HB_I64: ((int64_t *)buf)[i] = (int64_t)v; break;
    case HB_F32: ((float *)buf)[i] = (float)v; break;
    case HB_F64: ((double *)buf)[i] = v; break;
    default: break;
  }
}

static double getd(hb_dtype t, const void *buf, size_t i) {
  switch (t) {
    case HB_U8: return ((const uint8_t *)buf)[i];
    case HB_U16: return ((const uint16_t *)buf)[i];
    case HB_U32: return ((const uint32_t *)buf)[i];
    case HB_U64: return (double)((const uint64_t *)buf)[i];
    case HB_I8: return ((const int8_t *)buf)[i];
    case HB_I16: return ((const int16_t *)buf)[i];
    case HB_I32: return ((const int32_t *)buf)[i];
    case HB_I64: return (double)((const int64_t *)buf)[i];
    case HB_F32: return ((const float *)buf)[i];
    case HB_F64: return ((const double *)buf)[i];
    default: return 0;
  }
}

static int64_t geti(hb_dtype t, const void *buf, size_t i) {
  switch (t) {
    case HB_I8: return ((const int8_t *)buf)[i];
    case HB_I16: return ((const int16_t *)buf)[i];
    case HB_I32: return ((const int32_t *)buf)[i];
    case HB_I64: return ((const int64_t *)buf)[i];
    default: return 0;
  }
}

static uint64_t getu(hb_dtype t, const void *buf, size_t i) {
  switch (t) {
    case HB_U8: return ((const uint8_t *)buf)[i];
    case HB_U16: return ((const uint16_t *)buf)[i];
    case HB_U32: return ((const uint32_t *)buf)[i];
    case HB_U64: return ((const uint64_t *)buf)[i];
    default: return 0;
  }
}

static uint64_t hash(uint64_t x) {
  x ^= x >> 31;
  x *= 0x7fb5d329728ea185ull;
  x ^= x >> 27;
  x *= 0x81dadef4bc2dd44dull;
  x ^= x >> 33;
  return x;
}

/* A value of dtype t for pattern p, pixel j: the full range of the small
 * types (extremes included), moderate values for the wide integers, floats of
 * mixed sign and magnitude. */
static double sample(hb_dtype t, size_t p, size_t j) {
  uint64_t h = hash(p * 1000003u + j * 7919u + 17);
  int extreme = (h >> 60) == 0; /* about 1 in 16 */
  switch (t) {
    case HB_U8: return extreme ? 255 : (double)(h % 256);
    case HB_U16: return extreme ? 65535 : (double)(h % 65536);
    case HB_U32: return extreme ? 4294967295.0 : (double)(h % 100000);
    case HB_U64: return (double)(h % 1000000);
    case HB_I8: return extreme ? ((h & 1) ? 127 : -128) : (double)(h % 256) - 128;
    case HB_I16: return extreme ? ((h & 1) ? 32767 : -32768) : (double)(h % 65536) - 32768;
    case HB_I32: return extreme ? ((h & 1) ? 2147483647.0 : -2147483648.0) : (double)(h % 200001) - 100000;
    case HB_I64: return (double)(h % 2000001) - 1000000;
    default: return (double)((int64_t)(h % 2000001) - 1000000) * pow(10.0, (double)(h >> 59) - 16.0) / 7.0;
  }
}

/* ---- inputs, kernels, blocks --------------------------------------------- */

static void make_input(hb_input *in, int nav_dim, const hsize_t *nav, int sig_dim, const hsize_t *sig, hb_dtype t) {
  memset(in, 0, sizeof *in);
  snprintf(in->path, sizeof in->path, "test.hspy");
  snprintf(in->dataset, sizeof in->dataset, "/Experiments/test/data");
  snprintf(in->format, sizeof in->format, "hspy");
  in->nav_dim = nav_dim;
  in->sig_dim = sig_dim;
  in->ndim = nav_dim + sig_dim;
  for (int d = 0; d < in->ndim; d++) {
    in->shape[d] = d < nav_dim ? nav[d] : sig[d - nav_dim];
    in->chunk[d] = in->shape[d];
    in->axes[d].scale = 1;
    in->axes[d].offset = 0;
    in->axes[d].size = in->shape[d];
    in->axes[d].navigate = d < nav_dim;
    snprintf(in->axes[d].name, sizeof in->axes[d].name, "axis%d", d);
    snprintf(in->axes[d].units, sizeof in->axes[d].units, "px");
  }
  in->chunked = 1;
  in->dtype = t;
  in->file = in->dset = in->fspace = -1;
}

typedef struct {
  hb_node *spec;
  hb_kernel k;
} ktest;

/* Parse the kernel map, check it against the op's schema (as the job does),
 * then plan.  Returns 0 or the error code; always call kdone. */
static int kplan_src(ktest *t, const char *src, const char *yaml, const hb_input *in) {
  memset(t, 0, sizeof *t);
  hb_error_clear();
  HB_CALL(hb_yaml_parse(src, yaml, strlen(yaml), &t->spec));
  const hb_node *op = hb_node_child(t->spec, "op"), *name = hb_node_child(t->spec, "name");
  if (!op || !name) return -1;
  t->k.def = hb_kernel_find(op->text);
  if (!t->k.def) return -2;
  t->k.name = name->text;
  t->k.spec = t->spec;
  HB_CALL(hb_params_check(t->spec, t->k.def->params, "kernel 'k'", "name|op"));
  /* as the engine: bind, plan against the stream, then a misused accessor fails */
  const hb_params *p;
  HB_CALL(hb_params_bind(t->spec, t->k.def->params, &p));
  hb_stream st;
  hb_stream_of_input(in, &st);
  HB_CALL(t->k.def->plan(&t->k, &st, p));
  return hb_params_misused(p);
}

static int kplan(ktest *t, const char *yaml, const hb_input *in) { return kplan_src(t, "k.yaml", yaml, in); }

/* The engine's contract: a signal-shaped partial is prepared by `init` once
 * per block, and every `block` call on a run of the block's patterns
 * accumulates into it. */
static void kblock(const hb_kernel *k, const hb_block *b, void *const *out) {
  for (int i = 0; i < k->nout; i++)
    if (k->out[i].kind == HB_OUT_SIGNAL) k->def->init(k, i, out[i], b->sig_size);
  k->def->block(k, b, out);
}


static void kdone(ktest *t) {
  if (t->k.def && t->k.def->destroy) t->k.def->destroy(&t->k);
  hb_node_free(t->spec);
  memset(t, 0, sizeof *t);
  hb_error_clear();
}

static hb_block make_block(size_t index, const hb_input *in, size_t first, size_t npos, const void *data) {
  hb_block b;
  memset(&b, 0, sizeof b);
  b.index = index;
  b.nav_dim = 1; /* a run of patterns, in C order */
  b.start[0] = first;
  b.count[0] = npos;
  b.npos = npos;
  b.sig_size = hb_input_sig_size(in);
  b.dtype = in->dtype;
  b.data = (const char *)data + first * b.sig_size * dsize[in->dtype];
  return b;
}

/* ---- sum / mean / max / min ---------------------------------------------- */

enum { OP_SUM, OP_MEAN, OP_MAX, OP_MIN };
static const char *const opname[] = {"sum", "mean", "max", "min"};

static hb_dtype expected_dtype(int op, hb_dtype t) {
  if (op == OP_MEAN) return HB_F64;
  if (op == OP_SUM) return is_float(t) ? HB_F64 : is_signed(t) ? HB_I64 : HB_U64;
  return t;
}

/* Reference over `n` values x[first + k*stride]: returns 1 and fills the
 * one matching field of the result. */
typedef struct {
  uint64_t u;
  int64_t i;
  double d; /* float sums, means, and max/min of any type */
  double abs_sum;
} refval;

static refval reference(int op, hb_dtype t, const void *x, size_t first, size_t n, size_t stride) {
  refval r = {0, 0, 0, 0};
  long double s = 0;
  int has_nan = 0;
  double best = 0;
  for (size_t k = 0; k < n; k++) {
    size_t i = first + k * stride;
    double v = getd(t, x, i);
    if (is_float(t)) s += v;
    else if (is_signed(t)) r.i += geti(t, x, i);
    else r.u += getu(t, x, i);
    r.abs_sum += fabs(v);
    if (v != v) has_nan = 1;
    if (k == 0 || (op == OP_MAX && v > best) || (op == OP_MIN && v < best)) best = v;
  }
  if (op == OP_SUM) r.d = is_float(t) ? (double)s : is_signed(t) ? (double)r.i : (double)r.u;
  if (op == OP_MEAN) {
    /* an exact integer sum divided once, as numpy's mean of ints does */
    double sum = is_float(t) ? (double)s : is_signed(t) ? (double)r.i : (double)r.u;
    r.d = sum / (double)n;
  }
  if (op == OP_MAX || op == OP_MIN) r.d = has_nan ? NAN : best;
  return r;
}

/* Compare out[i] (of dtype od) against the reference; integer sums exact,
 * float sums/means to rounding, max/min exact (NaN == NaN). */
static int matches(int op, hb_dtype t, hb_dtype od, const void *out, size_t i, const refval *r, char *why,
                   size_t whylen) {
  if (op == OP_SUM && !is_float(t)) {
    if (is_signed(t)) {
      int64_t got = ((const int64_t *)out)[i];
      snprintf(why, whylen, "got %lld, want %lld", (long long)got, (long long)r->i);
      return got == r->i;
    }
    uint64_t got = ((const uint64_t *)out)[i];
    snprintf(why, whylen, "got %llu, want %llu", (unsigned long long)got, (unsigned long long)r->u);
    return got == r->u;
  }
  double got = getd(od, out, i);
  snprintf(why, whylen, "got %.17g, want %.17g", got, r->d);
  if (op == OP_MAX || op == OP_MIN) return (isnan(got) && isnan(r->d)) || got == r->d;
  if (isnan(r->d)) return isnan(got);
  double tol = 1e-13 * (r->abs_sum + fabs(r->d)) + 1e-300;
  if (op == OP_MEAN && !is_float(t)) tol = 0; /* exact sum / n: the same bits */
  return fabs(got - r->d) <= tol;
}

static void fill_data(hb_dtype t, void *data, size_t npat, size_t m) {
  for (size_t p = 0; p < npat; p++)
    for (size_t j = 0; j < m; j++) put(t, data, p * m + j, sample(t, p, j));
}

/* One op, one dtype: axes signal (one block and two blocks) and axes
 * navigation (2 and 3 blocks merged in tree order, then finished). */
static void stats_case(int op, hb_dtype t, const void *data, const hb_input *in, const char *label) {
  const size_t npat = hb_input_nav_size(in), m = hb_input_sig_size(in);
  const hb_dtype od = expected_dtype(op, t);
  char yaml[128], why[160];
  ktest kt;

  /* axes: signal — navigation-shaped, one value per pattern */
  snprintf(yaml, sizeof yaml, "{name: k, op: %s, axes: signal}", opname[op]);
  int rc = kplan(&kt, yaml, in);
  CHECK(rc == 0, "%s %s %s axes signal: plan rc %d (%s: %s)", label, opname[op], dname[t], rc, hb_error_where(),
        hb_error_what());
  if (!rc) {
    CHECK(kt.k.nout == 1 && kt.k.out[0].kind == HB_OUT_NAV && kt.k.out[0].dtype == od,
          "%s %s %s axes signal: outputs %d, kind %d, dtype %s; want 1 navigation-shaped %s", label, opname[op],
          dname[t], kt.k.nout, (int)kt.k.out[0].kind, kt.k.nout ? dname[kt.k.out[0].dtype] : "-", dname[od]);
    CHECK_STR(kt.k.out[0].name, "k");
    unsigned char *out = malloc(npat * 8), *out2 = malloc(npat * 8);
    memset(out, 0xCD, npat * 8);
    memset(out2, 0xAB, npat * 8);
    /* whole in one block; and split in two blocks into the same array */
    hb_block b = make_block(0, in, 0, npat, data);
    void *o1[1] = {out};
    kblock(&kt.k, &b, o1);
    size_t cut = npat / 3 + 1;
    hb_block b1 = make_block(0, in, 0, cut, data), b2 = make_block(1, in, cut, npat - cut, data);
    void *oa[1] = {out2}, *ob[1] = {out2 + cut * dsize[od]};
    kblock(&kt.k, &b1, oa);
    kblock(&kt.k, &b2, ob);
    size_t bad = 0, first_bad = 0;
    char first_why[160] = "";
    for (size_t p = 0; p < npat; p++) {
      refval r = reference(op, t, data, p * m, m, 1);
      if (!matches(op, t, od, out, p, &r, why, sizeof why)) {
        if (!bad++) first_bad = p, snprintf(first_why, sizeof first_why, "%s", why);
      }
    }
    CHECK(bad == 0, "%s %s %s axes signal: %zu of %zu patterns wrong; first pattern %zu: %s", label, opname[op],
          dname[t], bad, npat, first_bad, first_why);
    CHECK(!memcmp(out, out2, npat * dsize[od]), "%s %s %s axes signal: two blocks differ from one block", label,
          opname[op], dname[t]);
    free(out);
    free(out2);
  }
  kdone(&kt);

  /* axes: navigation — signal-shaped partials, merged, finished */
  snprintf(yaml, sizeof yaml, "{name: k, op: %s, axes: navigation}", opname[op]);
  rc = kplan(&kt, yaml, in);
  CHECK(rc == 0, "%s %s %s axes navigation: plan rc %d (%s)", label, opname[op], dname[t], rc, hb_error_what());
  if (!rc) {
    CHECK(kt.k.nout == 1 && kt.k.out[0].kind == HB_OUT_SIGNAL && kt.k.out[0].dtype == od && kt.k.out[0].acc == od,
          "%s %s %s axes navigation: kind %d dtype %s acc %s; want signal-shaped %s", label, opname[op], dname[t],
          (int)kt.k.out[0].kind, dname[kt.k.out[0].dtype], dname[kt.k.out[0].acc], dname[od]);
    CHECK(kt.k.def->merge != NULL, "%s %s: a signal-shaped output needs merge", label, opname[op]);
    size_t bytes = m * dsize[od];
    for (int nb = 2; nb <= 3 && kt.k.def->merge; nb++) {
      unsigned char *part[3];
      size_t cuts[4] = {0, npat / nb, nb == 3 ? 2 * npat / 3 : npat, npat};
      if (nb == 2) cuts[1] = npat / 2 - 1; /* uneven halves */
      for (int i = 0; i < nb; i++) {
        part[i] = malloc(bytes);
        memset(part[i], 0x5A + i, bytes); /* partials must be fully overwritten */
        hb_block b = make_block((size_t)i, in, cuts[i], cuts[i + 1] - cuts[i], data);
        void *o[1] = {part[i]};
        kblock(&kt.k, &b, o);
      }
      /* the tree for nb blocks: ((0,1),2) */
      kt.k.def->merge(&kt.k, 0, part[0], part[1], m);
      if (nb == 3) kt.k.def->merge(&kt.k, 0, part[0], part[2], m);
      if (kt.k.def->finish) kt.k.def->finish(&kt.k, 0, part[0], m, npat);
      size_t bad = 0, first_bad = 0;
      char first_why[160] = "";
      for (size_t j = 0; j < m; j++) {
        refval r = reference(op, t, data, j, npat, m);
        if (!matches(op, t, od, part[0], j, &r, why, sizeof why)) {
          if (!bad++) first_bad = j, snprintf(first_why, sizeof first_why, "%s", why);
        }
      }
      CHECK(bad == 0, "%s %s %s axes navigation, %d blocks: %zu of %zu pixels wrong; first pixel %zu: %s", label,
            opname[op], dname[t], nb, bad, m, first_bad, first_why);
      for (int i = 0; i < nb; i++) free(part[i]);
    }
  }
  kdone(&kt);
}

static void test_stats(void) {
  /* every dtype: navigation (3, 4), signal (5, 6) */
  hsize_t nav[] = {3, 4}, sig[] = {5, 6};
  for (size_t di = 0; di < sizeof all_dtypes / sizeof all_dtypes[0]; di++) {
    hb_dtype t = all_dtypes[di];
    hb_input in;
    make_input(&in, 2, nav, 2, sig, t);
    size_t npat = 12, m = 30;
    void *data = malloc(npat * m * dsize[t]);
    fill_data(t, data, npat, m);
    for (int op = 0; op < 4; op++) stats_case(op, t, data, &in, "3x4|5x6");
    free(data);
  }
  /* 1-D navigation and 1-D signal (a spectrum image line), 3 nav dims */
  {
    hsize_t n1[] = {7}, s1[] = {40};
    hb_input in;
    make_input(&in, 1, n1, 1, s1, HB_I16);
    void *data = malloc(7 * 40 * 2);
    fill_data(HB_I16, data, 7, 40);
    for (int op = 0; op < 4; op++) stats_case(op, HB_I16, data, &in, "7|40");
    free(data);
    hsize_t n3[] = {2, 3, 2}, s3[] = {4, 3};
    make_input(&in, 3, n3, 2, s3, HB_F32);
    data = malloc(12 * 12 * 4);
    fill_data(HB_F32, data, 12, 12);
    for (int op = 0; op < 4; op++) stats_case(op, HB_F32, data, &in, "2x3x2|4x3");
    free(data);
  }

  /* uint16 sums are uint64 and exact where 32-bit (and float) accumulators
   * are not: 300x300 pixels near 65535 sum to about 5.9e9 per pattern */
  {
    hsize_t nav[] = {2}, sig[] = {300, 300};
    hb_input in;
    make_input(&in, 1, nav, 2, sig, HB_U16);
    size_t m = 90000;
    uint16_t *data = malloc(2 * m * sizeof *data);
    uint64_t want[2] = {0, 0};
    for (size_t p = 0; p < 2; p++)
      for (size_t j = 0; j < m; j++) {
        data[p * m + j] = (uint16_t)(65535 - (j % 3) - p);
        want[p] += data[p * m + j];
      }
    ktest kt;
    int rc = kplan(&kt, "{name: k, op: sum, axes: signal}", &in);
    CHECK(rc == 0 && kt.k.out[0].dtype == HB_U64, "sum of uint16 must be uint64 (rc %d, dtype %s)", rc,
          rc ? "-" : dname[kt.k.out[0].dtype]);
    if (!rc) {
      uint64_t out[2] = {0, 0};
      hb_block b = make_block(0, &in, 0, 2, data);
      void *o[1] = {out};
      kblock(&kt.k, &b, o);
      CHECK(want[0] > UINT32_MAX, "the test sum must exceed 32 bits");
      CHECK(out[0] == want[0] && out[1] == want[1], "uint16 sum: got %llu %llu, want %llu %llu",
            (unsigned long long)out[0], (unsigned long long)out[1], (unsigned long long)want[0],
            (unsigned long long)want[1]);
    }
    kdone(&kt);
    /* and over the navigation axes: 70000 patterns of 2x2 */
    hsize_t nav2[] = {70000}, sig2[] = {2, 2};
    make_input(&in, 1, nav2, 2, sig2, HB_U16);
    uint16_t *d2 = malloc(70000 * 4 * sizeof *d2);
    uint64_t w2[4] = {0, 0, 0, 0};
    for (size_t p = 0; p < 70000; p++)
      for (size_t j = 0; j < 4; j++) d2[p * 4 + j] = (uint16_t)(65535 - (p + j) % 5), w2[j] += d2[p * 4 + j];
    rc = kplan(&kt, "{name: k, op: sum, axes: navigation}", &in);
    if (!rc) {
      uint64_t a[4], c[4];
      hb_block b1 = make_block(0, &in, 0, 40000, d2), b2 = make_block(1, &in, 40000, 30000, d2);
      void *o1[1] = {a}, *o2[1] = {c};
      kblock(&kt.k, &b1, o1);
      kblock(&kt.k, &b2, o2);
      kt.k.def->merge(&kt.k, 0, a, c, 4);
      if (kt.k.def->finish) kt.k.def->finish(&kt.k, 0, a, 4, 70000);
      CHECK(!memcmp(a, w2, sizeof a), "uint16 navigation sum: got %llu, want %llu (pixel 0)",
            (unsigned long long)a[0], (unsigned long long)w2[0]);
    } else {
      CHECK(0, "plan sum navigation: rc %d", rc);
    }
    kdone(&kt);
    free(d2);
    free(data);
  }

  /* NaN wins in max and min (numpy), wherever it is: first pixel, middle,
   * only in the second block */
  for (int fl = 0; fl < 2; fl++) {
    hb_dtype t = fl ? HB_F64 : HB_F32;
    hsize_t nav[] = {4}, sig[] = {3, 3};
    hb_input in;
    make_input(&in, 1, nav, 2, sig, t);
    void *data = malloc(4 * 9 * dsize[t]);
    fill_data(t, data, 4, 9);
    put(t, data, 0 * 9 + 0, NAN); /* pattern 0, first pixel */
    put(t, data, 1 * 9 + 4, NAN); /* pattern 1, middle pixel */
    put(t, data, 3 * 9 + 8, NAN); /* pattern 3, last pixel (second block) */
    for (int op = OP_MAX; op <= OP_MIN; op++) {
      ktest kt;
      char yaml[96];
      snprintf(yaml, sizeof yaml, "{name: k, op: %s, axes: signal}", opname[op]);
      int rc = kplan(&kt, yaml, &in);
      if (!rc) {
        double out[4];
        float outf[4];
        void *o[1] = {fl ? (void *)out : (void *)outf};
        hb_block b = make_block(0, &in, 0, 4, data);
        kblock(&kt.k, &b, o);
        double v[4];
        for (int p = 0; p < 4; p++) v[p] = fl ? out[p] : outf[p];
        CHECK(isnan(v[0]) && isnan(v[1]) && !isnan(v[2]) && isnan(v[3]),
              "%s %s per pattern with NaN: got %g %g %g %g, want nan nan <number> nan", opname[op], dname[t], v[0],
              v[1], v[2], v[3]);
      } else {
        CHECK(0, "plan %s: rc %d", opname[op], rc);
      }
      kdone(&kt);
      snprintf(yaml, sizeof yaml, "{name: k, op: %s, axes: navigation}", opname[op]);
      rc = kplan(&kt, yaml, &in);
      if (!rc) {
        unsigned char a[9 * 8], c[9 * 8];
        hb_block b1 = make_block(0, &in, 0, 2, data), b2 = make_block(1, &in, 2, 2, data);
        void *o1[1] = {a}, *o2[1] = {c};
        kblock(&kt.k, &b1, o1);
        kblock(&kt.k, &b2, o2);
        kt.k.def->merge(&kt.k, 0, a, c, 9);
        if (kt.k.def->finish) kt.k.def->finish(&kt.k, 0, a, 9, 4);
        int ok = 1;
        for (size_t j = 0; j < 9; j++) {
          int want_nan = j == 0 || j == 4 || j == 8;
          double g = getd(t, a, j);
          if (want_nan != !!isnan(g)) ok = 0;
        }
        CHECK(ok, "%s %s over navigation with NaN: pixels 0, 4 and 8 (8 only in the second block) must be NaN, "
                  "the rest numbers: got %g %g %g ... %g",
              opname[op], dname[t], getd(t, a, 0), getd(t, a, 1), getd(t, a, 4), getd(t, a, 8));
        /* NaN in the accumulator stays NaN when merged with a number, and
         * the reverse */
        unsigned char x[8], y[8];
        put(t, x, 0, NAN), put(t, y, 0, 1.0);
        kt.k.def->merge(&kt.k, 0, x, y, 1);
        CHECK(isnan(getd(t, x, 0)), "%s merge(NaN, 1) must be NaN", opname[op]);
        put(t, x, 0, 1.0), put(t, y, 0, NAN);
        kt.k.def->merge(&kt.k, 0, x, y, 1);
        CHECK(isnan(getd(t, x, 0)), "%s merge(1, NaN) must be NaN", opname[op]);
      } else {
        CHECK(0, "plan %s navigation: rc %d", opname[op], rc);
      }
      kdone(&kt);
    }
    free(data);
  }

  /* parameter errors */
  {
    hsize_t nav[] = {2}, sig[] = {3, 3};
    hb_input in;
    make_input(&in, 1, nav, 2, sig, HB_U16);
    ktest kt;
    int rc = kplan(&kt, "{name: k, op: sum, axes: everything}", &in);
    CHECK(rc == HB_EINVALID, "axes: everything: expected HB_EINVALID, got %d", rc);
    kdone(&kt);
    rc = kplan(&kt, "{name: k, op: mean}", &in);
    CHECK(rc == HB_EINVALID, "missing axes: expected HB_EINVALID, got %d", rc);
    CHECK_CONTAINS(hb_error_what(), "axes");
    kdone(&kt);
    rc = kplan(&kt, "{name: k, op: max, axis: signal}", &in);
    CHECK(rc == HB_EINVALID, "axis (typo): expected HB_EINVALID, got %d", rc);
    CHECK_CONTAINS(hb_error_what(), "did you mean 'axes'");
    kdone(&kt);
  }
}

/* ---- virtual_image -------------------------------------------------------- */

#define KY 11
#define KX 11

/* The detector's weight for every pixel, read back with one-hot patterns:
 * pattern p is 1 at pixel p and 0 elsewhere, so out[p] is pixel p's weight. */
static int weights(ktest *kt, const hb_input *in, double *w) {
  size_t m = hb_input_sig_size(in);
  /* one spare all-zero pattern: a detector that indexes past its pattern
   * reads zeros (and is caught by the checks) instead of past the buffer */
  void *data = calloc((m + 1) * m, dsize[in->dtype]);
  for (size_t p = 0; p < m; p++) put(in->dtype, data, p * m + p, 1);
  for (size_t p = 0; p < m; p++) w[p] = -999;
  hb_block b = make_block(0, in, 0, m, data);
  void *o[1] = {w};
  kblock(&kt->k, &b, o);
  free(data);
  return 0;
}

/* weights(), surviving a detector whose index points far outside the
 * pattern: a crash is reported as a failed check instead of ending the test. */
static sigjmp_buf crash_jmp;
static void on_crash(int sig) { siglongjmp(crash_jmp, sig); }

static int guarded_weights(ktest *kt, const hb_input *in, double *w) {
  struct sigaction sa, old_segv, old_bus;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_crash;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_NODEFER;
  sigaction(SIGSEGV, &sa, &old_segv);
  sigaction(SIGBUS, &sa, &old_bus);
  int ok = 0;
  if (sigsetjmp(crash_jmp, 1) == 0) {
    weights(kt, in, w);
    ok = 1;
  }
  sigaction(SIGSEGV, &old_segv, NULL);
  sigaction(SIGBUS, &old_bus, NULL);
  return ok;
}

static void vinput(hb_input *in, hb_dtype t) {
  hsize_t nav[] = {2, 3}, sig[] = {KY, KX};
  make_input(in, 2, nav, 2, sig, t);
}

/* Plan `yaml`, read the weights, compare with `want` (row-major KY x KX). */
static void detector_case(int line, const char *yaml, const hb_input *in, const double *want, size_t want_n) {
  ktest kt;
  int rc = kplan(&kt, yaml, in);
  CHECK(rc == 0, "case at line %d: plan rc %d (%s: %s)", line, rc, hb_error_where(), hb_error_what());
  if (!rc) {
    CHECK(kt.k.nout == 1 && kt.k.out[0].kind == HB_OUT_NAV && kt.k.out[0].dtype == HB_F64,
          "case at line %d: virtual_image declares one navigation-shaped float64 output", line);
    CHECK_STR(kt.k.out[0].name, "k");
    double w[KY * KX];
    weights(&kt, in, w);
    size_t n = 0, wrong = 0, first = 0;
    for (size_t i = 0; i < KY * KX; i++) {
      n += w[i] != 0;
      if (w[i] != want[i] && !wrong++) first = i;
    }
    CHECK(n == want_n, "case at line %d: the detector covers %zu pixels, want %zu", line, n, want_n);
    CHECK(wrong == 0, "case at line %d: %zu pixels have the wrong weight; first at row %zu column %zu: %g, want %g",
          line, wrong, first / KX, first % KX, w[first], want[first]);
  }
  kdone(&kt);
}
#define DETECTOR(yaml, in, want, n) detector_case(__LINE__, (yaml), (in), (want), (n))

static void expect_plan_error(int line, const char *yaml, const hb_input *in, const char *where, const char *msg) {
  ktest kt;
  int rc = kplan(&kt, yaml, in);
  CHECK(rc == HB_EINVALID, "case at line %d: expected HB_EINVALID, got %d (%s: %s)", line, rc, hb_error_where(),
        hb_error_what());
  if (where)
    CHECK(!strcmp(hb_error_where(), where), "case at line %d: where \"%s\", want \"%s\" (%s)", line,
          hb_error_where(), where, hb_error_what());
  if (msg)
    CHECK(strstr(hb_error_what(), msg) != NULL, "case at line %d: message \"%s\" should contain \"%s\"", line,
          hb_error_what(), msg);
  kdone(&kt);
}
#define PLAN_ERROR(yaml, in, where, msg) expect_plan_error(__LINE__, (yaml), (in), (where), (msg))

/* want[] for a disc/annulus in pixels: rin^2 <= dx^2+dy^2 <= rout^2 */
static size_t ring(double *want, double cx, double cy, double rin, double rout) {
  size_t n = 0;
  for (int y = 0; y < KY; y++)
    for (int x = 0; x < KX; x++) {
      double r2 = (x - cx) * (x - cx) + (y - cy) * (y - cy);
      want[y * KX + x] = r2 >= rin * rin && r2 <= rout * rout;
      n += want[y * KX + x] != 0;
    }
  return n;
}

static int write_mask(const char *path, const char *dset, int nd, const hsize_t *dims, const double *w) {
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (f < 0) return -1;
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  hid_t sp = H5Screate_simple(nd, dims, NULL);
  hid_t ds = H5Dcreate2(f, dset, H5T_IEEE_F32LE, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  herr_t rc = ds >= 0 ? H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, w) : -1;
  if (ds >= 0) H5Dclose(ds);
  H5Sclose(sp);
  H5Pclose(lcpl);
  H5Fclose(f);
  return rc < 0 ? -1 : 0;
}

static void test_virtual(void) {
  hb_input in;
  double want[KY * KX];
  size_t n;

  for (int pass = 0; pass < 2; pass++) {
    vinput(&in, pass ? HB_U16 : HB_F64);
    /* circle: boundary included, 13 pixels */
    n = ring(want, 5, 5, 0, 2);
    CHECK(n == 13, "reference circle has %zu pixels", n);
    DETECTOR("{name: k, op: virtual_image, detector: {shape: circle, center: [5, 5], radius: 2}}", &in, want, 13);
    /* annulus 1..2: 12 pixels (the centre is out, the r = 2 ring is in) */
    n = ring(want, 5, 5, 1, 2);
    CHECK(n == 12, "reference annulus has %zu pixels", n);
    DETECTOR("{name: k, op: virtual_image, detector: {shape: annulus, center: [5, 5], inner: 1, outer: 2}}", &in,
             want, 12);
    /* off-centre, sub-pixel centre, radius sqrt(2): the r^2 == 2 diagonal is in */
    n = ring(want, 2.5, 7, 0, sqrt(2.0));
    DETECTOR("{name: k, op: virtual_image, detector: {shape: circle, center: [2.5, 7], radius: 1.4142135623730951}}",
             &in, want, n);
    /* a circle clipped by the edge */
    n = ring(want, 0, 10, 0, 3);
    DETECTOR("{name: k, op: virtual_image, detector: {shape: circle, center: [0, 10], radius: 3}}", &in, want, n);
    /* radius 0: the centre pixel only */
    n = ring(want, 4, 6, 0, 0);
    CHECK(n == 1, "reference radius 0 has %zu pixels", n);
    DETECTOR("{name: k, op: virtual_image, detector: {shape: circle, center: [4, 6], radius: 0}}", &in, want, 1);
    /* rectangle x: [2, 5), y: [1, 3): 6 pixels, half-open like a slice */
    memset(want, 0, sizeof want);
    for (int y = 1; y < 3; y++)
      for (int x = 2; x < 5; x++) want[y * KX + x] = 1;
    DETECTOR("{name: k, op: virtual_image, detector: {shape: rectangle, x: [2, 5], y: [1, 3]}}", &in, want, 6);
    /* the whole detector */
    for (int i = 0; i < KY * KX; i++) want[i] = 1;
    DETECTOR("{name: k, op: virtual_image, detector: {shape: rectangle, x: [0, 11], y: [0, 11]}}", &in, want,
             KY * KX);
    /* point [x, y] = [3, 4]: row 4, column 3 */
    memset(want, 0, sizeof want);
    want[4 * KX + 3] = 1;
    DETECTOR("{name: k, op: virtual_image, detector: {shape: point, at: [3, 4]}}", &in, want, 1);
    memset(want, 0, sizeof want);
    want[10 * KX + 0] = 1;
    DETECTOR("{name: k, op: virtual_image, detector: {shape: point, at: [0, 10], units: px}}", &in, want, 1);
  }

  /* a point on the outer edge of the detector ([-0.5, kx - 0.5] is what the
   * range check lets through) is either refused or picks the edge pixel:
   * never the neighbouring row, never a pixel outside the pattern */
  vinput(&in, HB_F64);
  {
    static const struct {
      const char *yaml;
      int row, col;
    } edge[] = {
        {"{name: k, op: virtual_image, detector: {shape: point, at: [-0.5, 3]}}", 3, 0},
        {"{name: k, op: virtual_image, detector: {shape: point, at: [10.5, 10]}}", 10, 10},
        {"{name: k, op: virtual_image, detector: {shape: point, at: [10.5, 4]}}", 4, 10},
        {"{name: k, op: virtual_image, detector: {shape: point, at: [2, -0.5]}}", 0, 2},
        {"{name: k, op: virtual_image, detector: {shape: point, at: [2, 10.5]}}", 10, 2},
        {"{name: k, op: virtual_image, detector: {shape: point, at: [2.5, 3]}}", 3, 3},
        {"{name: k, op: virtual_image, detector: {shape: point, at: [2.49, 3]}}", 3, 2},
    };
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++) {
      ktest kt;
      int rc = kplan(&kt, edge[i].yaml, &in);
      CHECK(rc == 0 || rc == HB_EINVALID, "%s: plan rc %d", edge[i].yaml, rc);
      if (!rc) {
        double w[KY * KX];
        if (!guarded_weights(&kt, &in, w)) {
          CHECK(0, "%s: the kernel's block function crashed (reads outside the pattern)", edge[i].yaml);
          kdone(&kt);
          continue;
        }
        size_t n = 0, at = 0;
        for (size_t j = 0; j < KY * KX; j++)
          if (w[j] != 0) n++, at = j;
        CHECK(n == 1 && at == (size_t)(edge[i].row * KX + edge[i].col),
              "%s: picks %zu pixel(s), the last at row %zu column %zu; want exactly row %d column %d (or an error)",
              edge[i].yaml, n, at / KX, at % KX, edge[i].row, edge[i].col);
      }
      kdone(&kt);
    }
  }

  /* calibrated units: x (last axis) scale 0.5 offset -2.5; y scale 0.5 offset 1 */
  vinput(&in, HB_F32);
  in.axes[3].scale = 0.5, in.axes[3].offset = -2.5; /* kx: px = (x + 2.5) / 0.5 */
  in.axes[2].scale = 0.5, in.axes[2].offset = 1.0;  /* ky: px = (y - 1) / 0.5 */
  memset(want, 0, sizeof want);
  want[4 * KX + 3] = 1; /* x = -1.0 -> 3 px; y = 3.0 -> 4 px */
  DETECTOR("{name: k, op: virtual_image, detector: {shape: point, at: [-1.0, 3.0], units: calibrated}}", &in, want, 1);
  memset(want, 0, sizeof want);
  want[3 * KX + 4] = 1; /* the same numbers in px: the units matter */
  DETECTOR("{name: k, op: virtual_image, detector: {shape: point, at: [4, 3]}}", &in, want, 1);
  n = ring(want, 5, 5, 0, 2); /* centre (0.0, 3.5) = (5, 5) px; radius 1.0 = 2 px */
  DETECTOR("{name: k, op: virtual_image, detector: {shape: circle, center: [0.0, 3.5], radius: 1.0, units: calibrated}}",
           &in, want, n);
  n = ring(want, 5, 5, 1, 2);
  DETECTOR("{name: k, op: virtual_image, detector: {shape: annulus, center: [0.0, 3.5], inner: 0.5, outer: 1.0, "
           "units: calibrated}}",
           &in, want, n);
  memset(want, 0, sizeof want);
  for (int y = 1; y < 3; y++)
    for (int x = 2; x < 5; x++) want[y * KX + x] = 1;
  DETECTOR("{name: k, op: virtual_image, detector: {shape: rectangle, x: [-1.5, 0.0], y: [1.5, 2.5], "
           "units: calibrated}}",
           &in, want, 6);
  /* non-square pixels: rectangles are fine, a calibrated radius is not */
  in.axes[2].scale = 2.0, in.axes[2].offset = 0.0;
  memset(want, 0, sizeof want);
  for (int y = 1; y < 3; y++)
    for (int x = 2; x < 5; x++) want[y * KX + x] = 1;
  DETECTOR("{name: k, op: virtual_image, detector: {shape: rectangle, x: [-1.5, 0.0], y: [2, 6], units: calibrated}}",
           &in, want, 6);
  PLAN_ERROR("{name: k, op: virtual_image, detector: {shape: circle, center: [0.0, 10], radius: 1, units: calibrated}}",
             &in, NULL, "square");

  /* a mask from an HDF5 file: 2-D float weights with zeros and negatives */
  vinput(&in, HB_F64);
  char mpath[256], bpath[256], yaml[512];
  snprintf(mpath, sizeof mpath, "%s/mask.h5", tmpdir);
  snprintf(bpath, sizeof bpath, "%s/bad.h5", tmpdir);
  double mw[KY * KX];
  size_t nonzero = 0;
  for (int i = 0; i < KY * KX; i++) {
    mw[i] = (i % 4 == 0) ? 0.0 : (i % 4 == 1) ? -0.75 * (i % 7) : 0.5 * (i % 9) + 0.25;
    nonzero += mw[i] != 0;
  }
  hsize_t mdims[2] = {KY, KX}, wrong_dims[2] = {KY - 1, KX}, one_d[1] = {KY * KX};
  int wrc = write_mask(mpath, "/mask", 2, mdims, mw);
  wrc |= write_mask(bpath, "/group/short", 2, wrong_dims, mw);
  CHECK(wrc == 0, "cannot write the mask files in %s", tmpdir);
  {
    hid_t f = H5Fopen(bpath, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t sp = H5Screate_simple(1, one_d, NULL);
    hid_t ds = H5Dcreate2(f, "/flat", H5T_NATIVE_DOUBLE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, mw);
    H5Dclose(ds);
    H5Sclose(sp);
    hsize_t d2[2] = {KY, KX};
    double nanw[KY * KX];
    memcpy(nanw, mw, sizeof nanw);
    nanw[17] = NAN;
    sp = H5Screate_simple(2, d2, NULL);
    ds = H5Dcreate2(f, "/nan", H5T_NATIVE_DOUBLE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, nanw);
    H5Dclose(ds);
    H5Sclose(sp);
    H5Fclose(f);
  }
  snprintf(yaml, sizeof yaml, "{name: k, op: virtual_image, detector: {shape: mask, file: '%s', dataset: /mask}}",
           mpath);
  /* weights are stored as float32: compare with the float32 values */
  for (int i = 0; i < KY * KX; i++) want[i] = (double)(float)mw[i];
  DETECTOR(yaml, &in, want, nonzero);
  {
    /* a relative mask path resolves against the job file's folder */
    char src[128];
    snprintf(src, sizeof src, "%s/job.yaml", tmpdir);
    ktest kt;
    int rc = kplan_src(&kt, src, "{name: k, op: virtual_image, detector: {shape: mask, file: mask.h5, dataset: mask}}",
                       &in);
    CHECK(rc == 0, "mask.h5 relative to %s: rc %d (%s: %s)", src, rc, hb_error_where(), hb_error_what());
    if (!rc) {
      double w[KY * KX];
      weights(&kt, &in, w);
      int same = 1;
      for (int i = 0; i < KY * KX; i++) same &= w[i] == want[i];
      CHECK(same, "the relative mask must give the same weights as the absolute one");
    }
    kdone(&kt);
  }
  {
    /* the weighted sum on real data, against a reference loop */
    ktest kt;
    int rc = kplan(&kt, yaml, &in);
    if (!rc) {
      size_t npat = 6, m = KY * KX;
      double *data = malloc(npat * m * sizeof *data), out[6];
      fill_data(HB_F64, data, npat, m);
      hb_block b = make_block(0, &in, 0, npat, data);
      void *o[1] = {out};
      kblock(&kt.k, &b, o);
      int ok = 1;
      double worst = 0;
      for (size_t p = 0; p < npat; p++) {
        long double s = 0, a = 0;
        for (size_t j = 0; j < m; j++) s += (long double)want[j] * data[p * m + j], a += fabs(want[j] * data[p * m + j]);
        double err = fabs(out[p] - (double)s);
        if (err > 1e-13 * (double)a) ok = 0;
        if (err > worst) worst = err;
      }
      CHECK(ok, "mask weighted sum differs from the reference (worst error %g)", worst);
      free(data);
    } else {
      CHECK(0, "mask plan rc %d: %s: %s", rc, hb_error_where(), hb_error_what());
    }
    kdone(&kt);
  }

  /* errors */
  vinput(&in, HB_F64);
  PLAN_ERROR("{name: k, op: virtual_image, detector: {shape: circle, center: [20, 5], radius: 2}}", &in,
             "k.yaml:1:64", "outside");
  PLAN_ERROR("{name: k, op: virtual_image, detector: {shape: circle, center: [5, -1], radius: 2}}", &in, NULL,
             "outside");
  PLAN_ERROR("{name: k, op: virtual_image, detector: {shape: annulus, center: [11, 5], inner: 1, outer: 2}}", &in, NULL,
             "outside");
  PLAN_ERROR("{name: k, op: virtual_image, detector: {shape: point, at: [3, 11]}}", &in, NULL, "outside");
  PLAN_ERROR("{name: k, op: virtual_image, detector: {shape: circle, center: [5, 5], radius: -1}}", &in,
             "k.yaml:1:80", "radius");
  PLAN_ERROR("{name: k, op: virtual_image, detector: {shape: annulus, center: [5, 5], inner: -1, outer: 2}}", &in,
             NULL, "inner");
  PLAN_ERROR("{name: k, op: virtual_image, detector: {shape: annulus, center: [5, 5], inner: 3, outer: 2}}", &in,
             NULL, "inner");
  PLAN_ERROR("{name: k, op: virtual_image, detector: {shape: rectangle, x: [2, 12], y: [1, 3]}}", &in, "k.yaml:1:62",
             NULL);
  PLAN_ERROR("{name: k, op: virtual_image, detector: {shape: rectangle, x: [-1, 3], y: [1, 3]}}", &in, NULL, NULL);
  PLAN_ERROR("{name: k, op: virtual_image, detector: {shape: rectangle, x: [2, 5], y: [3, 3]}}", &in, NULL, NULL);
  PLAN_ERROR("{name: k, op: virtual_image, detector: {shape: rectangle, x: [5, 2], y: [1, 3]}}", &in, NULL, NULL);
  PLAN_ERROR("{name: k, op: virtual_image, detector: {shape: rectangle, x: [2, 5], y: [1, 3], radius: 2}}", &in,
             "k.yaml:1:81", "does not apply");
  PLAN_ERROR("{name: k, op: virtual_image, detector: {shape: point, at: [1, 1], center: [1, 1]}}", &in, NULL,
             "does not apply");
  PLAN_ERROR("{name: k, op: virtual_image, detector: {shape: circle, center: [5, 5]}}", &in, NULL, "radius");
  PLAN_ERROR("{name: k, op: virtual_image, detector: {shape: annulus, center: [5, 5], outer: 2}}", &in, NULL,
             "inner");
  PLAN_ERROR("{name: k, op: virtual_image, detector: {shape: point}}", &in, NULL, "'at'");
  PLAN_ERROR("{name: k, op: virtual_image, detector: {shape: rectangle, x: [1, 2]}}", &in, NULL, "'y'");
  PLAN_ERROR("{name: k, op: virtual_image, detector: {center: [5, 5], radius: 2}}", &in, NULL, "shape");
  PLAN_ERROR("{name: k, op: virtual_image, detector: {shape: hexagon}}", &in, NULL, "hexagon");
  PLAN_ERROR("{name: k, op: virtual_image, detector: {shape: circle, center: [5, 5], raduis: 2}}", &in, "k.yaml:1:72",
             "did you mean 'radius'");
  PLAN_ERROR("{name: k, op: virtual_image}", &in, NULL, "detector");
  PLAN_ERROR("{name: k, op: virtual_image, detector: {shape: circle, center: [5, 5, 5], radius: 2}}", &in, NULL,
             "center");
  snprintf(yaml, sizeof yaml, "{name: k, op: virtual_image, detector: {shape: mask, file: '%s', dataset: /group/short}}",
           bpath);
  PLAN_ERROR(yaml, &in, NULL, "must be 11 x 11");
  snprintf(yaml, sizeof yaml, "{name: k, op: virtual_image, detector: {shape: mask, file: '%s', dataset: /flat}}", bpath);
  PLAN_ERROR(yaml, &in, NULL, "must be 11 x 11");
  snprintf(yaml, sizeof yaml, "{name: k, op: virtual_image, detector: {shape: mask, file: '%s', dataset: /nope}}", mpath);
  PLAN_ERROR(yaml, &in, NULL, "/nope");
  snprintf(yaml, sizeof yaml, "{name: k, op: virtual_image, detector: {shape: mask, file: '%s', dataset: /a/b/c}}", mpath);
  PLAN_ERROR(yaml, &in, NULL, "/a/b/c");
  snprintf(yaml, sizeof yaml, "{name: k, op: virtual_image, detector: {shape: mask, file: '%s', dataset: /nan}}", bpath);
  PLAN_ERROR(yaml, &in, NULL, "non-finite");
  snprintf(yaml, sizeof yaml, "{name: k, op: virtual_image, detector: {shape: mask, file: '%s/none.h5', dataset: /m}}",
           tmpdir);
  PLAN_ERROR(yaml, &in, NULL, "none.h5");
  snprintf(yaml, sizeof yaml, "{name: k, op: virtual_image, detector: {shape: mask, file: '%s'}}", mpath);
  PLAN_ERROR(yaml, &in, NULL, "dataset");
  {
    /* an all-zero mask covers nothing */
    double z[KY * KX];
    memset(z, 0, sizeof z);
    char zpath[256];
    snprintf(zpath, sizeof zpath, "%s/zero.h5", tmpdir);
    write_mask(zpath, "/m", 2, mdims, z);
    snprintf(yaml, sizeof yaml, "{name: k, op: virtual_image, detector: {shape: mask, file: '%s', dataset: /m}}",
             zpath);
    PLAN_ERROR(yaml, &in, NULL, "covers no pixel");
  }
  /* a signal that is not 2-D */
  {
    hsize_t nav[] = {4}, sig1[] = {100}, sig3[] = {4, 5, 6};
    make_input(&in, 1, nav, 1, sig1, HB_F32);
    PLAN_ERROR("{name: k, op: virtual_image, detector: {shape: circle, center: [5, 5], radius: 2}}", &in, NULL, "2-D");
    make_input(&in, 1, nav, 3, sig3, HB_F32);
    PLAN_ERROR("{name: k, op: virtual_image, detector: {shape: point, at: [1, 1]}}", &in, NULL, "2-D");
  }
  unlink(mpath);
  unlink(bpath);
  char zpath[256];
  snprintf(zpath, sizeof zpath, "%s/zero.h5", tmpdir);
  unlink(zpath);
}

/* ---- 8/16-bit sums in 32-bit lanes --------------------------------------- */

/* Sums of 8/16-bit data go through 32-bit partial sums of at most 65536
 * values: extreme values over more pixels (axes: signal) or more patterns
 * (axes: navigation) than that must still come out exact. */
static void narrow_case(hb_dtype t, double v, const hsize_t *nav, const hsize_t *sig, const char *axes) {
  hb_input in;
  make_input(&in, 1, nav, 2, sig, t);
  size_t npat = nav[0], m = sig[0] * sig[1];
  void *data = malloc(npat * m * dsize[t]);
  for (size_t i = 0; i < npat * m; i++) put(t, data, i, v);
  int over_sig = !strcmp(axes, "signal");
  size_t nout = over_sig ? npat : m, count = over_sig ? m : npat;
  for (int op = OP_SUM; op <= OP_MEAN; op++) {
    ktest kt;
    char yaml[96];
    snprintf(yaml, sizeof yaml, "{name: k, op: %s, axes: %s}", opname[op], axes);
    if (kplan(&kt, yaml, &in)) {
      CHECK(0, "plan %s", yaml);
      continue;
    }
    void *out = calloc(nout, 8);
    hb_block b = make_block(0, &in, 0, npat, data);
    void *o[1] = {out};
    kblock(&kt.k, &b, o);
    if (!over_sig && op == OP_MEAN) kt.k.def->finish(&kt.k, 0, out, nout, npat);
    size_t bad = 0;
    for (size_t i = 0; i < nout; i++) {
      if (op == OP_MEAN) bad += ((double *)out)[i] != v;
      else if (is_signed(t)) bad += ((int64_t *)out)[i] != (int64_t)v * (int64_t)count;
      else bad += ((uint64_t *)out)[i] != (uint64_t)v * (uint64_t)count;
    }
    CHECK(bad == 0, "%s of %zu values of %g (%s, axes %s): %zu of %zu wrong", opname[op], count, v, dname[t], axes,
          bad, nout);
    free(out);
    kdone(&kt);
  }
  free(data);
}

static void test_narrow_sums(void) {
  hsize_t nav_few[] = {3}, sig_big[] = {300, 300}; /* 90000 pixels > 65536 */
  hsize_t nav_many[] = {70000}, sig_small[] = {1, 3}; /* 70000 patterns > 65536 */
  narrow_case(HB_U16, 65535, nav_few, sig_big, "signal");
  narrow_case(HB_I16, -32768, nav_few, sig_big, "signal");
  narrow_case(HB_U8, 255, nav_few, sig_big, "signal");
  narrow_case(HB_U16, 65535, nav_many, sig_small, "navigation");
  narrow_case(HB_I16, -32768, nav_many, sig_small, "navigation");
  narrow_case(HB_I8, -128, nav_many, sig_small, "navigation");
  /* a signal wider than one 4096-pixel tile, and patterns of mixed values */
  hsize_t nav5[] = {5}, sig75[] = {75, 75};
  const hb_dtype narrow[] = {HB_U8, HB_U16, HB_I8, HB_I16};
  for (size_t ti = 0; ti < 4; ti++) {
    hb_input in;
    make_input(&in, 1, nav5, 2, sig75, narrow[ti]);
    void *data = malloc(5 * 75 * 75 * dsize[narrow[ti]]);
    fill_data(narrow[ti], data, 5, 75 * 75);
    for (int op = 0; op < 4; op++) stats_case(op, narrow[ti], data, &in, "5|75x75");
    free(data);
  }
}

/* ---- fused virtual detectors --------------------------------------------- */

/* Every virtual_image kernel of a job runs as one fused sweep (hb_fused).
 * Each detector's value must equal, bit for bit, both the kernel's own
 * `block` and the plain sum over its pixels in ascending order, whatever the
 * overlaps, weights and dtype, and over a block cut into runs. */
static void test_fused(void) {
  char mpath[128];
  snprintf(mpath, sizeof mpath, "%s/fmask.h5", tmpdir);
  double mw[KY * KX];
  for (int i = 0; i < KY * KX; i++) mw[i] = (i % 5 == 0) ? 0.0 : (i % 3 ? 0.37 * (i % 7) : -1.25);
  hsize_t mdims[2] = {KY, KX};
  CHECK(write_mask(mpath, "/m", 2, mdims, mw) == 0, "cannot write %s", mpath);
  char maskyaml[256];
  snprintf(maskyaml, sizeof maskyaml,
           "{name: k7, op: virtual_image, detector: {shape: mask, file: '%s', dataset: /m}}", mpath);
  const char *yamls[] = {
      "{name: k0, op: virtual_image, detector: {shape: circle, center: [5, 5], radius: 2}}",
      "{name: k1, op: virtual_image, detector: {shape: annulus, center: [5, 5], inner: 1, outer: 3}}",
      "{name: k2, op: virtual_image, detector: {shape: circle, center: [6.5, 4], radius: 3}}",
      "{name: k3, op: virtual_image, detector: {shape: rectangle, x: [0, 11], y: [2, 4]}}",
      "{name: k4, op: virtual_image, detector: {shape: point, at: [3, 4]}}",
      "{name: k5, op: virtual_image, detector: {shape: circle, center: [5, 5], radius: 2}}",
      "{name: k6, op: virtual_image, detector: {shape: rectangle, x: [10, 11], y: [10, 11]}}",
      maskyaml,
  };
  enum { NK = 8, NP = 6 };
  const hb_dtype types[] = {HB_U8, HB_U16, HB_I16, HB_I32, HB_U32, HB_U64, HB_I64, HB_F32, HB_F64};
  for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
    hb_dtype t = types[ti];
    hb_input in;
    vinput(&in, t);
    const size_t m = KY * KX;
    void *data = malloc(NP * m * dsize[t]);
    fill_data(t, data, NP, m);
    ktest kt[NK];
    hb_kernel *ks[NK];
    int ok = 1;
    for (int i = 0; i < NK; i++) {
      int rc = kplan(&kt[i], yamls[i], &in);
      CHECK(rc == 0, "%s: plan %s: %s", dname[t], yamls[i], hb_error_what());
      ok &= rc == 0;
      ks[i] = &kt[i].k;
    }
    const hb_kernel_def *def = hb_kernel_find("virtual_image");
    hb_stream st;
    hb_stream_of_input(&in, &st);
    hb_fused f = {def, &st, NK, ks, NULL};
    CHECK(def->fuse && def->fused_block && def->fused_destroy, "virtual_image has the fusion hooks");
    if (ok && def->fuse) {
      CHECK(def->fuse(&f) == 0, "%s: fuse: %s", dname[t], hb_error_what());
      double fused[NK][NP], runs[NK][NP], own[NK][NP], ref[NK][NP];
      void *fo[NK];
      for (int i = 0; i < NK; i++) fo[i] = fused[i];
      hb_block b = make_block(0, &in, 0, NP, data);
      def->fused_block(&f, &b, fo);
      /* the same block in two runs, as the engine cuts it */
      for (size_t c0 = 0; c0 < NP; c0 += 4) {
        hb_block r = b;
        r.pos0 = c0;
        r.npos = NP - c0 < 4 ? NP - c0 : 4;
        r.data = (const char *)data + c0 * m * dsize[t];
        void *ro2[NK];
        for (int i = 0; i < NK; i++) ro2[i] = runs[i] + c0;
        def->fused_block(&f, &r, ro2);
      }
      for (int i = 0; i < NK; i++) {
        void *oo[1] = {own[i]};
        ks[i]->def->block(ks[i], &b, oo);
        double w[KY * KX];
        weights(&kt[i], &in, w);
        for (size_t p = 0; p < NP; p++) {
          double sum = 0;
          for (size_t j = 0; j < m; j++)
            if (w[j] != 0) sum += w[j] * getd(t, data, p * m + j);
          ref[i][p] = sum;
        }
        CHECK(!memcmp(fused[i], ref[i], sizeof ref[i]), "%s: fused detector %d equals the in-order sum (%.17g vs %.17g)",
              dname[t], i, fused[i][0], ref[i][0]);
        CHECK(!memcmp(fused[i], own[i], sizeof own[i]), "%s: fused detector %d equals its own block", dname[t], i);
        CHECK(!memcmp(fused[i], runs[i], sizeof runs[i]), "%s: fused detector %d: runs equal one call", dname[t], i);
      }
      def->fused_destroy(&f);
      CHECK(f.state == NULL, "fused_destroy clears the state");
    }
    for (int i = 0; i < NK; i++) kdone(&kt[i]);
    free(data);
  }
  unlink(mpath);
}

/* uint16 detectors with every pixel weight 1 are summed in 32-bit SIMD
 * lanes, reduced once per pattern (virtual.c, lanes_run): exact at the lane
 * limit (all 65535, 32767 loads of 8 pixels into each lane), falling back
 * to the segment sweep just past it, and equal to the in-order sum when
 * fused, with detectors touching the pattern's first pixels. */
static void test_lanes(void) {
  hb_input in;
  hsize_t nav[] = {1, 3}, sig[] = {512, 520};
  make_input(&in, 2, nav, 2, sig, HB_U16);
  const size_t m = 512 * 520;
  uint16_t *data = malloc(3 * m * sizeof *data);
  for (size_t j = 0; j < m; j++) data[j] = 65535, data[m + j] = (uint16_t)(hash(j) % 65536), data[2 * m + j] = 0;
  /* rectangles x: [x0, 520], y: [0, y1]; rows of 520 are contiguous, so a
   * full-width rectangle is one run: 504 rows = 32760 loads, 512 = 33280 */
  const struct { const char *yaml; size_t x0, y1; } cases[] = {
      {"{name: k, op: virtual_image, detector: {shape: rectangle, x: [0, 520], y: [0, 504]}}", 0, 504},
      {"{name: k, op: virtual_image, detector: {shape: rectangle, x: [0, 520], y: [0, 512]}}", 0, 512},
      {"{name: k, op: virtual_image, detector: {shape: rectangle, x: [1, 520], y: [0, 512]}}", 1, 512},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    ktest kt;
    int rc = kplan(&kt, cases[c].yaml, &in);
    CHECK(rc == 0, "plan %s: %s", cases[c].yaml, hb_error_what());
    if (rc) continue;
    double out[3], want = 0, n = (double)(520 - cases[c].x0) * (double)cases[c].y1;
    void *o[1] = {out};
    hb_block b = make_block(0, &in, 0, 3, data);
    kblock(&kt.k, &b, o);
    for (size_t j = 0; j < m; j++)
      if (j / 520 < cases[c].y1 && j % 520 >= cases[c].x0) want += data[m + j];
    CHECK(out[0] == n * 65535, "%s: all 65535 gives %.17g, want %.17g", cases[c].yaml, out[0], n * 65535);
    CHECK(out[1] == want, "%s: mixed values give %.17g, want %.17g", cases[c].yaml, out[1], want);
    CHECK(out[2] == 0, "%s: zeros give %g", cases[c].yaml, out[2]);
    kdone(&kt);
  }
  free(data);

  /* fused, every detector exact: the lane plan of several detectors at once */
  const char *yamls[] = {
      "{name: k0, op: virtual_image, detector: {shape: circle, center: [5, 5], radius: 2}}",
      "{name: k1, op: virtual_image, detector: {shape: annulus, center: [5, 5], inner: 1, outer: 3}}",
      "{name: k2, op: virtual_image, detector: {shape: rectangle, x: [0, 3], y: [0, 1]}}",
      "{name: k3, op: virtual_image, detector: {shape: rectangle, x: [0, 11], y: [0, 4]}}",
      "{name: k4, op: virtual_image, detector: {shape: point, at: [0, 0]}}",
      "{name: k5, op: virtual_image, detector: {shape: circle, center: [10, 10], radius: 3}}",
  };
  enum { NK = 6, NP = 6 };
  vinput(&in, HB_U16);
  const size_t mk = KY * KX;
  void *d = malloc(NP * mk * sizeof(uint16_t));
  fill_data(HB_U16, d, NP, mk);
  ktest kt[NK];
  hb_kernel *ks[NK];
  int ok = 1;
  for (int i = 0; i < NK; i++) {
    int rc = kplan(&kt[i], yamls[i], &in);
    CHECK(rc == 0, "plan %s: %s", yamls[i], hb_error_what());
    ok &= rc == 0;
    ks[i] = &kt[i].k;
  }
  const hb_kernel_def *def = hb_kernel_find("virtual_image");
  hb_stream st;
  hb_stream_of_input(&in, &st);
  hb_fused f = {def, &st, NK, ks, NULL};
  if (ok && def->fuse(&f) == 0) {
    double fused[NK][NP];
    void *fo[NK];
    for (int i = 0; i < NK; i++) fo[i] = fused[i];
    hb_block b = make_block(0, &in, 0, NP, d);
    def->fused_block(&f, &b, fo);
    for (int i = 0; i < NK; i++) {
      double w[KY * KX];
      weights(&kt[i], &in, w);
      for (size_t p = 0; p < NP; p++) {
        double sum = 0;
        for (size_t j = 0; j < mk; j++)
          if (w[j] != 0) sum += w[j] * getd(HB_U16, d, p * mk + j);
        CHECK(fused[i][p] == sum, "fused exact uint16 detector %d, pattern %zu: %.17g, want %.17g", i, p,
              fused[i][p], sum);
      }
    }
    def->fused_destroy(&f);
  }
  for (int i = 0; i < NK; i++) kdone(&kt[i]);
  free(d);
}

/* ---- preprocess filter_hot_pixels ---------------------------------------- */

static int prep_plan(hb_transform *p, hb_node **spec, const char *yaml, const hb_input *in) {
  memset(p, 0, sizeof *p);
  *spec = NULL;
  hb_error_clear();
  p->def = hb_transform_find("filter_hot_pixels");
  if (!p->def) return -1;
  HB_CALL(hb_yaml_parse("p.yaml", yaml, strlen(yaml), spec));
  HB_CALL(hb_params_check(*spec, p->def->params, "preprocess step 'filter_hot_pixels'", "op"));
  const hb_params *par;
  HB_CALL(hb_params_bind(*spec, p->def->params, &par));
  hb_stream_of_input(in, &p->in);
  p->out = p->in;
  HB_CALL(p->def->plan(p, par));
  return hb_params_misused(par);
}

static void prep_done(hb_transform *p, hb_node *spec) {
  if (p->def && p->def->destroy) p->def->destroy(p);
  hb_node_free(spec);
  hb_error_clear();
}

static double median8(double *v, int n) {
  /* selection by counting, unlike the insertion sort in hotpix.c */
  double s[8];
  for (int i = 0; i < n; i++) {
    int rank = 0;
    for (int j = 0; j < n; j++) rank += v[j] < v[i] || (v[j] == v[i] && j < i);
    s[rank] = v[i];
  }
  return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

static double neighbours_median(const float *x, int kx, int ky, int r, int c) {
  double v[8];
  int n = 0;
  for (int y = r - 1; y <= r + 1; y++)
    for (int xx = c - 1; xx <= c + 1; xx++)
      if ((y != r || xx != c) && y >= 0 && xx >= 0 && y < ky && xx < kx) v[n++] = x[y * kx + xx];
  return median8(v, n);
}

static void test_hotpix(void) {
  CHECK(hb_transform_find("filter_hot_pixels") != NULL, "filter_hot_pixels must be in the transform registry");
  CHECK(hb_transform_find("no_such_step") == NULL, "hb_transform_find of an unknown op must be NULL");
  CHECK(hb_transform_find("filter_hot_pixels")->in_place, "filter_hot_pixels works in place");
  hb_input in;
  hb_transform p;
  hb_node *spec;

  /* uint16 flat 100 with one 10000: that pixel becomes 100, nothing else moves */
  {
    hsize_t nav[] = {2}, sig[] = {9, 9};
    make_input(&in, 1, nav, 2, sig, HB_U16);
    int rc = prep_plan(&p, &spec, "{op: filter_hot_pixels}", &in);
    CHECK(rc == 0, "plan filter_hot_pixels: rc %d (%s)", rc, hb_error_what());
    if (!rc) {
      uint16_t d[2 * 81], orig[2 * 81];
      for (int i = 0; i < 2 * 81; i++) d[i] = 100;
      d[4 * 9 + 5] = 10000;       /* pattern 0, row 4 col 5 */
      d[81 + 0] = 10000;          /* pattern 1, corner */
      memcpy(orig, d, sizeof d);
      hb_block b = make_block(0, &in, 0, 2, d);
      p.def->apply(&p, &b, d, d);
      CHECK_INT(d[4 * 9 + 5], 100);
      CHECK_INT(d[81 + 0], 100);
      int others = 1;
      for (int i = 0; i < 2 * 81; i++)
        if (i != 4 * 9 + 5 && i != 81 && d[i] != orig[i]) others = 0;
      CHECK(others, "only the hot pixels may change");
    }
    prep_done(&p, spec);
  }
  /* float32 with a textured background: the hot pixel gets exactly the
   * median of its 8 (or 5 or 3 at the edges) neighbours */
  {
    hsize_t nav[] = {3}, sig[] = {12, 10};
    const int ky = 12, kx = 10, m = 120;
    make_input(&in, 1, nav, 2, sig, HB_F32);
    int rc = prep_plan(&p, &spec, "{op: filter_hot_pixels, threshold: 8}", &in);
    if (!rc) {
      float d[3 * 120], orig[3 * 120];
      for (int q = 0; q < 3; q++)
        for (int y = 0; y < ky; y++)
          for (int x = 0; x < kx; x++) d[q * m + y * kx + x] = 100.0f + (float)((x * 7 + y * 3 + q) % 11);
      const int hot[3][2] = {{5, 4}, {0, 6}, {11, 9}}; /* inside, top edge, far corner */
      double want[3];
      for (int q = 0; q < 3; q++) {
        d[q * m + hot[q][0] * kx + hot[q][1]] = 10000.0f;
        want[q] = neighbours_median(d + q * m, kx, ky, hot[q][0], hot[q][1]);
      }
      memcpy(orig, d, sizeof d);
      hb_block b = make_block(0, &in, 0, 3, d);
      p.def->apply(&p, &b, d, d);
      for (int q = 0; q < 3; q++)
        CHECK_NEAR(d[q * m + hot[q][0] * kx + hot[q][1]], (float)want[q], 0);
      int changed = 0;
      for (int q = 0; q < 3; q++)
        for (int i = 0; i < m; i++)
          if (i != hot[q][0] * kx + hot[q][1] && d[q * m + i] != orig[q * m + i]) changed++;
      CHECK(changed == 0, "%d pixels other than the hot ones changed", changed);
    } else {
      CHECK(0, "plan rc %d", rc);
    }
    prep_done(&p, spec);
  }
  /* a cluster of three hot pixels: each gets the median of its neighbours
   * as they came (the others still hot among them), so a pattern turned by
   * 180 degrees gives the same pixels turned (before, a pixel replaced
   * earlier in the scan counted as a neighbour of the next) */
  {
    hsize_t nav[] = {2}, sig[] = {12, 10};
    const int ky = 12, kx = 10, m = 120;
    make_input(&in, 1, nav, 2, sig, HB_F32);
    int rc = prep_plan(&p, &spec, "{op: filter_hot_pixels, threshold: 8}", &in);
    if (!rc) {
      float d[2 * 120];
      for (int y = 0; y < ky; y++)
        for (int x = 0; x < kx; x++) d[y * kx + x] = 100.0f + (float)((x * 7 + y * 3) % 11);
      const int hot[3][2] = {{5, 4}, {5, 5}, {6, 5}};
      for (int h = 0; h < 3; h++) d[hot[h][0] * kx + hot[h][1]] = 10000.0f + 1000.0f * (float)h;
      double want[3];
      for (int h = 0; h < 3; h++) want[h] = neighbours_median(d, kx, ky, hot[h][0], hot[h][1]);
      for (int i = 0; i < m; i++) d[m + i] = d[m - 1 - i]; /* pattern 1: pattern 0 turned */
      hb_block b = make_block(0, &in, 0, 2, d);
      p.def->apply(&p, &b, d, d);
      for (int h = 0; h < 3; h++) CHECK_NEAR(d[hot[h][0] * kx + hot[h][1]], (float)want[h], 0);
      int same = 1;
      for (int i = 0; i < m; i++) same &= d[m + i] == d[m - 1 - i];
      CHECK(same, "a pattern turned by 180 degrees must come out turned: the filter must not depend on scan order");
    } else {
      CHECK(0, "plan rc %d", rc);
    }
    prep_done(&p, spec);
  }
  /* a smooth bright disk (and a sharp-edged one) on a dark background is
   * left exactly as it was */
  {
    hsize_t nav[] = {2}, sig[] = {32, 32};
    make_input(&in, 1, nav, 2, sig, HB_F64);
    int rc = prep_plan(&p, &spec, "{op: filter_hot_pixels}", &in);
    if (!rc) {
      double d[2 * 1024], orig[2 * 1024];
      for (int y = 0; y < 32; y++)
        for (int x = 0; x < 32; x++) {
          double r = hypot(x - 15.5, y - 14.2);
          d[y * 32 + x] = 5.0 + 50000.0 / (1.0 + exp((r - 7.0) / 0.8));
          d[1024 + y * 32 + x] = r <= 6 ? 40000.0 : 3.0;
        }
      memcpy(orig, d, sizeof d);
      hb_block b = make_block(0, &in, 0, 2, d);
      p.def->apply(&p, &b, d, d);
      CHECK(!memcmp(d, orig, 1024 * sizeof(double)), "a smooth bright disk must be left unchanged");
      CHECK(!memcmp(d + 1024, orig + 1024, 1024 * sizeof(double)), "a sharp bright disk must be left unchanged");
    } else {
      CHECK(0, "plan rc %d", rc);
    }
    prep_done(&p, spec);
  }
  /* negative data (dark-subtracted counts, signed detectors): a noisy
   * background with no hot pixel is left alone, and a hot pixel on it is
   * still replaced by its neighbours' median */
  for (int fl = 0; fl < 2; fl++) {
    hb_dtype t = fl ? HB_F32 : HB_I16;
    hsize_t nav[] = {2}, sig[] = {8, 8};
    make_input(&in, 1, nav, 2, sig, t);
    int rc = prep_plan(&p, &spec, "{op: filter_hot_pixels}", &in);
    if (!rc) {
      unsigned char d[2 * 64 * 4], orig[2 * 64 * 4];
      for (int i = 0; i < 2 * 64; i++) put(t, d, (size_t)i, -100.0 + (double)((i * 7) % 5));
      put(t, d, 64 + 3 * 8 + 4, 30000); /* pattern 1: one hot pixel */
      float nb[8];
      int n = 0;
      for (int y = 2; y <= 4; y++)
        for (int x = 3; x <= 5; x++)
          if (y != 3 || x != 4) nb[n++] = (float)getd(t, d, 64 + (size_t)(y * 8 + x));
      double v8[8];
      for (int i = 0; i < 8; i++) v8[i] = nb[i];
      double med = median8(v8, 8);
      memcpy(orig, d, sizeof d);
      hb_block b = make_block(0, &in, 0, 2, d);
      p.def->apply(&p, &b, d, d);
      int changed = 0;
      for (int i = 0; i < 64; i++) changed += getd(t, d, (size_t)i) != getd(t, orig, (size_t)i);
      CHECK(changed == 0, "%s: %d of 64 pixels of a noisy negative background (no hot pixel) changed", dname[t],
            changed);
      changed = 0;
      for (int i = 64; i < 128; i++)
        if (i != 64 + 3 * 8 + 4) changed += getd(t, d, (size_t)i) != getd(t, orig, (size_t)i);
      CHECK(changed == 0, "%s: %d background pixels around a hot pixel on a negative background changed", dname[t],
            changed);
      /* floats take the median exactly; integers a median of .5 rounded
       * either way */
      double got = getd(t, d, 64 + 3 * 8 + 4);
      CHECK(fl ? got == med : fabs(got - med) <= 0.5, "%s: the hot pixel on a negative background is %g, want %g%s",
            dname[t], got, med, fl ? "" : " (+/- 0.5)");
    } else {
      CHECK(0, "plan rc %d", rc);
    }
    prep_done(&p, spec);
  }
  /* threshold: a pixel 5x its surroundings is hot at threshold 3, not at 8 */
  {
    hsize_t nav[] = {1}, sig[] = {5, 5};
    make_input(&in, 1, nav, 2, sig, HB_F64);
    double d[25];
    for (int thr = 0; thr < 2; thr++) {
      int rc = prep_plan(&p, &spec, thr ? "{op: filter_hot_pixels, threshold: 3}" : "{op: filter_hot_pixels}", &in);
      for (int i = 0; i < 25; i++) d[i] = 10;
      d[12] = 60; /* 6x its surroundings: hot at threshold 3, not at 8 */
      if (!rc) {
        hb_block b = make_block(0, &in, 0, 1, d);
        p.def->apply(&p, &b, d, d);
        CHECK_NEAR(d[12], thr ? 10 : 60, 0);
      } else {
        CHECK(0, "plan rc %d", rc);
      }
      prep_done(&p, spec);
    }
  }
  /* errors */
  {
    hsize_t nav[] = {1}, sig[] = {5, 5}, sig1[] = {50};
    make_input(&in, 1, nav, 2, sig, HB_F64);
    int rc = prep_plan(&p, &spec, "{op: filter_hot_pixels, threshold: 0.5}", &in);
    CHECK(rc == HB_EINVALID, "threshold 0.5: expected HB_EINVALID, got %d", rc);
    CHECK_CONTAINS(hb_error_what(), "threshold");
    prep_done(&p, spec);
    rc = prep_plan(&p, &spec, "{op: filter_hot_pixels, threshold: high}", &in);
    CHECK(rc == HB_EINVALID, "threshold high: expected HB_EINVALID, got %d", rc);
    prep_done(&p, spec);
    rc = prep_plan(&p, &spec, "{op: filter_hot_pixels, treshold: 5}", &in);
    CHECK(rc == HB_EINVALID, "treshold: expected HB_EINVALID, got %d", rc);
    CHECK_CONTAINS(hb_error_what(), "did you mean 'threshold'");
    prep_done(&p, spec);
    make_input(&in, 1, nav, 1, sig1, HB_F64);
    rc = prep_plan(&p, &spec, "{op: filter_hot_pixels}", &in);
    CHECK(rc == HB_EINVALID, "1-D signal: expected HB_EINVALID, got %d", rc);
    CHECK_CONTAINS(hb_error_what(), "2-D");
    prep_done(&p, spec);
  }
}

static void test_registry(void) {
  static const char *const ops[] = {"sum", "mean", "max", "min", "virtual_image"};
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
    const hb_kernel_def *d = hb_kernel_find(ops[i]);
    CHECK(d && !strcmp(d->op, ops[i]) && d->plan && d->block && d->destroy && d->params,
          "op %s must be registered with plan, block, destroy and params", ops[i]);
  }
  CHECK(hb_kernel_find("summ") == NULL, "an unknown op must not be found");
  CHECK(hb_kernel_find("") == NULL, "an empty op must not be found");
  int n = 0, dup = 0;
  for (const hb_kernel_def *const *d = hb_kernel_table; *d; d++, n++)
    for (const hb_kernel_def *const *e = hb_kernel_table; e < d; e++) dup += !strcmp((*d)->op, (*e)->op);
  CHECK(n >= 5 && dup == 0, "the registry has %d ops, %d duplicated", n, dup);
}

/* The engine hands a block to the kernels in cache-sized runs: init once,
 * then each run accumulates into the same partial.  That must equal one call
 * over the whole block, bit for bit. */
static void test_runs_accumulate(void) {
  hsize_t nav[] = {23}, sig[] = {4, 5};
  const hb_dtype types[] = {HB_U16, HB_I32, HB_F32, HB_F64};
  for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
    hb_dtype t = types[ti];
    hb_input in;
    make_input(&in, 1, nav, 2, sig, t);
    void *data = malloc(23 * 20 * dsize[t]);
    fill_data(t, data, 23, 20);
    for (int op = 0; op <= OP_MIN; op++) {
      ktest kt;
      char yaml[96];
      snprintf(yaml, sizeof yaml, "{name: k, op: %s, axes: navigation}", opname[op]);
      if (kplan(&kt, yaml, &in)) {
        CHECK(0, "plan %s", yaml);
        continue;
      }
      unsigned char whole[20 * 8], runs[20 * 8];
      hb_block b = make_block(0, &in, 0, 23, data);
      void *o1[1] = {whole}, *o2[1] = {runs};
      kblock(&kt.k, &b, o1);
      kt.k.def->init(&kt.k, 0, runs, 20);
      size_t cuts[] = {0, 1, 9, 17, 23};
      for (int c = 0; c < 4; c++) {
        hb_block r = b;
        r.pos0 = cuts[c];
        r.npos = cuts[c + 1] - cuts[c];
        r.data = (const char *)data + cuts[c] * 20 * dsize[t];
        kt.k.def->block(&kt.k, &r, o2);
      }
      CHECK(!memcmp(whole, runs, 20 * dsize[kt.k.out[0].acc]), "%s %s: runs of a block accumulate like one call",
            opname[op], dname[t]);
      kdone(&kt);
    }
    free(data);
  }
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  snprintf(tmpdir, sizeof tmpdir, "/tmp/hb_test_kernels_XXXXXX");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    MPI_Finalize();
    return 1;
  }
  test_registry();
  test_stats();
  test_virtual();
  test_hotpix();
  test_runs_accumulate();
  test_fused();
  test_lanes();
  test_narrow_sums();
  rmdir(tmpdir);
  int rc = TEST_DONE("test_kernels");
  MPI_Finalize();
  return rc;
}
