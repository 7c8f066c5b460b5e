/* indexmax, indexmin, valuemax, valuemin, integrate1D, integrate_simpson,
 * derivative and diff: HyperSpy 1.7.3's one-axis methods, over one signal
 * axis, pattern by pattern (docs/hyperspy-semantics.md, sections 0, 4 and
 * 5; docs/axisops.md says what each gives and where it differs).
 *
 * A pattern is outer x n x inner values in C order, the axis the middle:
 * n samples `inner` apart.  The reductions give outer x inner values per
 * pattern (the other signal axes), the transforms a pattern of the same
 * layout (diff: n - order samples).  Each result value depends on its own
 * pattern only, so every rank count gives the same bits. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hb_error.h"
#include "hb_kernel.h"

typedef enum { M_ARGMAX, M_ARGMIN, M_SUM, M_SIMPSON, M_GRADIENT, M_DIFF } method;

typedef struct {
  method how;
  int value;          /* valuemax, valuemin: the index's axis value */
  hb_dtype in, out;
  size_t outer, n, inner, m; /* m: outer * n * inner, the pattern */
  double *x;          /* the axis' values as HyperSpy's axis.axis: its points, or offset + scale * i */
  double *w;          /* integrate_simpson: scipy 1.10's simps(y, x) as weights, without */
  int ends;           /* an even N's end trapezoids, */
  double half_last, half_first; /* 0.5 dx of the last and the first interval */
  int order, edge_order;
  /* np.gradient's spacing: uniform (every np.diff(x) equal: dx), or per
   * interval (dxs[n - 1], and the interior coefficients ca, cb, cc[n - 2]) */
  int uniform;
  double dx, *dxs, *ca, *cb, *cc;
  /* edge_order 2: the coefficients of the first and last samples */
  double e0[3], e1[3];
  void *work;         /* reductions: inner partials; derivative, diff: one pattern */
} axis_state;

/* The input types, the C type, and the type a sum of them has (numpy's sum
 * dtype for integers; floats are summed in float64). */
#define AX_TYPES(X)                     \
  X(HB_U8, uint8_t, uint64_t, 0)        \
  X(HB_U16, uint16_t, uint64_t, 0)      \
  X(HB_U32, uint32_t, uint64_t, 0)      \
  X(HB_U64, uint64_t, uint64_t, 0)      \
  X(HB_I8, int8_t, int64_t, 0)          \
  X(HB_I16, int16_t, int64_t, 0)        \
  X(HB_I32, int32_t, int64_t, 0)        \
  X(HB_I64, int64_t, int64_t, 0)        \
  X(HB_F32, float, double, 1)           \
  X(HB_F64, double, double, 1)

#define AXIS_HELP                                                                                                \
  "the axis, as HyperSpy's axis= takes it: its name, or its index in HyperSpy's order (navigation x, y, ..., " \
  "then signal x, y, ...; negative from the end). A signal axis; a navigation axis is not supported yet"

static const hb_param_spec reduce_params[] = {
    {"axis", HB_P_STRING, HB_REQUIRED, .help = AXIS_HELP},
    HB_PARAM_END,
};

static const hb_param_spec derivative_params[] = {
    {"axis", HB_P_STRING, HB_REQUIRED, .help = AXIS_HELP},
    {"order", HB_P_INT, HB_DEFAULT_INT(1), .help = "how many times np.gradient is applied (HyperSpy's order), 1 or more"},
    {"edge_order", HB_P_INT, HB_DEFAULT_INT(1),
     .help = "np.gradient's edge_order (a keyword HyperSpy passes on): one-sided differences of first (1) or second "
             "(2) order at the ends"},
    HB_PARAM_END,
};

static const hb_param_spec diff_params[] = {
    {"axis", HB_P_STRING, HB_REQUIRED, .help = AXIS_HELP},
    {"order", HB_P_INT, HB_DEFAULT_INT(1),
     .help = "np.diff's n: differences taken this many times, 1 to the axis' size - 1"},
    HB_PARAM_END,
};

/* scipy 1.10's simps(y, x) with its default even='avg' over samples
 * x[0 .. N), as weights: sum(w y) is its result up to the order of the
 * additions.  Its non-uniform formula panel by panel (h0, h1 from np.diff(x));
 * for even N the mean of Simpson on the first N-2 intervals plus a
 * trapezoid on the last, and its mirror (the trapezoids left out when
 * `ends` is 0: the caller adds them).  N < 2: no panel, 0. */
void hb_simpson_weights(const double *x, size_t N, int ends, double *w) {
  for (size_t k = 0; k < N; k++) w[k] = 0;
  if (N < 2) return;
  long starts[2], stops[2]; /* panels j = start, start+2, ... < stop; N - 3 is -1 for N = 2: none */
  int runs;
  double f;
  if (N % 2) {
    runs = 1, starts[0] = 0, stops[0] = (long)N - 2, f = 1;
  } else {
    runs = 2, starts[0] = 0, stops[0] = (long)N - 3, starts[1] = 1, stops[1] = (long)N - 2, f = 0.5;
    double last = 0.5 * (x[N - 1] - x[N - 2]), first = 0.5 * (x[1] - x[0]);
    if (ends) w[N - 1] += f * last, w[N - 2] += f * last, w[1] += f * first, w[0] += f * first;
  }
  for (int r = 0; r < runs; r++)
    for (long j = starts[r]; j < stops[r]; j += 2) {
      double h0 = x[j + 1] - x[j], h1 = x[j + 2] - x[j + 1], hsum = h0 + h1, hprod = h0 * h1;
      double h0divh1 = h1 != 0 ? h0 / h1 : 0, inv = h0divh1 != 0 ? 1.0 / h0divh1 : 0;
      double c = hsum / 6.0;
      w[j] += f * c * (2.0 - inv);
      w[j + 1] += f * c * (hsum * (hprod != 0 ? hsum / hprod : 0));
      w[j + 2] += f * c * (2.0 - h0divh1);
    }
}

/* np.gradient's spacing from the axis values (numpy 1.24): uniform when
 * every np.diff(x) equals the first, else per interval with the
 * three-point coefficients of the interior; and the edges' coefficients for
 * edge_order 2. */
static int plan_gradient(axis_state *s) {
  const size_t n = s->n;
  HB_ALLOC(s->dxs, n - 1);
  s->uniform = 1;
  for (size_t i = 0; i + 1 < n; i++) {
    s->dxs[i] = s->x[i + 1] - s->x[i];
    if (s->dxs[i] != s->dxs[0]) s->uniform = 0;
  }
  s->dx = s->dxs[0];
  if (!s->uniform && n > 2) {
    HB_ALLOC(s->ca, n - 2);
    HB_ALLOC(s->cb, n - 2);
    HB_ALLOC(s->cc, n - 2);
    for (size_t i = 0; i + 2 < n; i++) {
      const double dx1 = s->dxs[i], dx2 = s->dxs[i + 1];
      s->ca[i] = -(dx2) / (dx1 * (dx1 + dx2));
      s->cb[i] = (dx2 - dx1) / (dx1 * dx2);
      s->cc[i] = dx1 / (dx2 * (dx1 + dx2));
    }
  }
  if (s->edge_order == 2) {
    if (s->uniform) {
      const double d = s->dx;
      s->e0[0] = -1.5 / d, s->e0[1] = 2. / d, s->e0[2] = -0.5 / d;
      s->e1[0] = 0.5 / d, s->e1[1] = -2. / d, s->e1[2] = 1.5 / d;
    } else {
      double dx1 = s->dxs[0], dx2 = s->dxs[1];
      s->e0[0] = -(2. * dx1 + dx2) / (dx1 * (dx1 + dx2));
      s->e0[1] = (dx1 + dx2) / (dx1 * dx2);
      s->e0[2] = -dx1 / (dx2 * (dx1 + dx2));
      dx1 = s->dxs[n - 3], dx2 = s->dxs[n - 2];
      s->e1[0] = (dx2) / (dx1 * (dx1 + dx2));
      s->e1[1] = -(dx2 + dx1) / (dx1 * dx2);
      s->e1[2] = (2. * dx2 + dx1) / (dx2 * (dx1 + dx2));
    }
  }
  return 0;
}

static int axis_plan(hb_kernel *k, const hb_stream *in, const hb_params *p) {
  axis_state *s;
  HB_ALLOC(s, 1);
  k->state = s;
  const char *op = k->def->op, *where = hb_param_where(p, "axis"), *text = hb_param_str(p, "axis");
  HB_CHECK(!hb_dtype_is_complex(in->dtype), HB_EINVALID, hb_node_where(k->spec, 0),
           "%s takes real data; this kernel sees %s (after the preprocess steps)", op, hb_dtype_name(in->dtype));
  int axis;
  HB_CALL(hb_stream_axis(in, text, where, &axis));
  const hb_axis *a = &in->axes[axis];
  char desc[160]; /* "axis 'E'", or "axis -1 ('E')" for an index */
  if (a->name[0] && strcmp(a->name, text)) snprintf(desc, sizeof desc, "axis %s ('%s')", text, a->name);
  else snprintf(desc, sizeof desc, "axis '%s'", text);
  HB_CHECK(axis >= in->nav_dim, HB_EINVALID, where,
           "%s is a navigation axis: %s over a navigation axis is not supported yet; name a signal axis", desc, op);
  s->in = in->dtype;
  s->n = in->shape[axis];
  s->outer = s->inner = 1;
  for (int d = in->nav_dim; d < axis; d++) s->outer *= in->shape[d];
  for (int d = axis + 1; d < in->ndim; d++) s->inner *= in->shape[d];
  s->m = s->outer * s->n * s->inner;
  HB_ALLOC(s->x, s->n);
  const double *points = hb_axis_values(a, s->n, s->x);

  /* the result's signal axes: the stream's, with the axis removed or changed */
  const int ks = axis - in->nav_dim;
  hsize_t shape[HB_MAXDIM];
  hb_axis axes[HB_MAXDIM];
  for (int d = 0; d < in->sig_dim; d++) shape[d] = in->shape[in->nav_dim + d], axes[d] = in->axes[in->nav_dim + d];

  if (!strcmp(op, "derivative") || !strcmp(op, "diff")) {
    const int deriv = op[1] == 'e';
    s->how = deriv ? M_GRADIENT : M_DIFF;
    HB_CHECK(deriv || !points, HB_EINVALID, where,
             "%s is non-uniform: diff of uneven samples is refused, as HyperSpy raises NotImplementedError (use "
             "derivative, which takes the points)", desc);
    long long order = hb_param_int(p, "order");
    if (deriv)
      HB_CHECK(order >= 1 && order <= 1 << 20, HB_EINVALID, hb_param_where(p, "order"),
               "order %lld: the derivative's order is 1 to %d", order, 1 << 20);
    else
      HB_CHECK(order >= 1 && order < (long long)s->n, HB_EINVALID, hb_param_where(p, "order"),
               "order %lld: diff's order is 1 to %llu (%s has %llu samples)", order,
               (unsigned long long)s->n - 1, desc, (unsigned long long)s->n);
    s->order = (int)order;
    if (deriv) {
      long long eo = hb_param_int(p, "edge_order");
      HB_CHECK(eo == 1 || eo == 2, HB_EINVALID, hb_param_where(p, "edge_order"), "edge_order %lld: 1 or 2", eo);
      s->edge_order = (int)eo;
      HB_CHECK(s->n > (size_t)eo, HB_EINVALID, where,
               "%s has %llu sample%s: np.gradient with edge_order %d needs at least %d", desc,
               (unsigned long long)s->n, s->n == 1 ? "" : "s", s->edge_order, s->edge_order + 1);
      HB_CALL(plan_gradient(s));
      s->out = s->in == HB_F32 ? HB_F32 : HB_F64; /* numpy: integers as float64 */
    } else {
      s->out = s->in;
      shape[ks] -= (hsize_t)s->order;
      axes[ks].offset = a->offset + ((double)s->order * a->scale / 2);
    }
    const size_t es = hb_dtype_size(s->out) > hb_dtype_size(s->in) ? hb_dtype_size(s->out) : hb_dtype_size(s->in);
    HB_CHECK((s->work = malloc(s->m * es)), HB_EINTERNAL, "memory", "out of memory");
    HB_CALL(hb_kernel_add_output(k, NULL, HB_OUT_FULL, s->out, s->out, deriv ? "Derivative" : "Difference"));
    hb_output *o = hb_kernel_output(k, 0);
    hb_output_set_shape(o, in->sig_dim, shape, axes);
    /* EELS and EDS data keep their class (and with it the binned axis), as
     * HyperSpy's results do; other types are left out (docs/output.md) */
    const char *type = in->input ? in->input->signal_type : NULL;
    o->signal_type = in->sig_dim == 1 && hb_hspy_binned_type(type) ? type : NULL;
    return 0;
  }

  const char *quantity = "Integral";
  if (!strncmp(op, "index", 5) || !strncmp(op, "value", 5)) {
    s->how = !strcmp(op + 5, "max") ? M_ARGMAX : M_ARGMIN;
    s->value = op[0] == 'v';
    s->out = s->value ? HB_F64 : HB_I64;
    quantity = s->value ? "Position" : "Index";
  } else if (!strcmp(op, "integrate1D") && a->is_binned) {
    s->how = M_SUM; /* HyperSpy's sum: numpy's sum dtype; floats keep theirs */
    s->out = hb_dtype_is_float(s->in) ? s->in : hb_dtype_sum(s->in);
  } else {
    s->how = M_SIMPSON;
    /* float64, but one panel of float32 data stays float32 (scipy's np.float64 of a one-element h) */
    s->out = s->in == HB_F32 && s->n == 3 ? HB_F32 : HB_F64;
    HB_ALLOC(s->w, s->n);
    hb_simpson_weights(s->x, s->n, 0, s->w);
    if (s->n % 2 == 0) { /* scipy's end trapezoids, 0.5 dx (y[a] + y[b]) each, their sum halved */
      s->ends = 1;
      s->half_last = 0.5 * (s->x[s->n - 1] - s->x[s->n - 2]);
      s->half_first = 0.5 * (s->x[1] - s->x[0]);
    }
  }
  HB_CHECK((s->work = malloc(s->inner * 16)), HB_EINTERNAL, "memory", "out of memory");
  HB_CALL(hb_kernel_add_output(k, NULL, HB_OUT_NAV, s->out, s->out, quantity));
  int kept = 0;
  for (int d = 0; d < in->sig_dim; d++)
    if (d != ks) shape[kept] = shape[d], axes[kept++] = axes[d];
  if (kept) hb_output_set_shape(hb_kernel_output(k, 0), kept, shape, axes);
  return 0;
}

/* ---- the reductions --------------------------------------------------------- */

/* numpy's argmax / argmin: the first extreme, and the first NaN wins. */
#define ARG_RUN(E, T, A, FLOAT)                                                                      \
  static void arg_##E(const axis_state *s, const T *x, size_t npos, void *out) {                     \
    const size_t n = s->n, inner = s->inner;                                                         \
    T *best = s->work;                                                                               \
    int64_t *idx = (int64_t *)((char *)s->work + inner * 8);                                         \
    size_t q = 0;                                                                                    \
    for (size_t r = 0; r < npos * s->outer; r++, x += n * inner) {                                   \
      for (size_t i = 0; i < inner; i++) best[i] = x[i], idx[i] = 0;                                 \
      for (size_t j = 1; j < n; j++) {                                                               \
        const T *row = x + j * inner;                                                                \
        if (s->how == M_ARGMAX)                                                                      \
          for (size_t i = 0; i < inner; i++) {                                                       \
            const T v = row[i], b = best[i];                                                         \
            if (b == b && (v > b || v != v)) best[i] = v, idx[i] = (int64_t)j;                       \
          }                                                                                          \
        else                                                                                         \
          for (size_t i = 0; i < inner; i++) {                                                       \
            const T v = row[i], b = best[i];                                                         \
            if (b == b && (v < b || v != v)) best[i] = v, idx[i] = (int64_t)j;                       \
          }                                                                                          \
      }                                                                                              \
      if (s->value)                                                                                  \
        for (size_t i = 0; i < inner; i++) ((double *)out)[q++] = s->x[idx[i]];                      \
      else                                                                                           \
        for (size_t i = 0; i < inner; i++) ((int64_t *)out)[q++] = idx[i];                           \
    }                                                                                                \
  }

/* A binned axis' integral, HyperSpy's sum: integers exactly in 64 bits,
 * floats in float64, rounded to the result's type. */
#define SUM_RUN(E, T, A, FLOAT)                                                                      \
  static void sum_##E(const axis_state *s, const T *x, size_t npos, void *out) {                     \
    const size_t n = s->n, inner = s->inner;                                                         \
    A *acc = s->work;                                                                                \
    size_t q = 0;                                                                                    \
    for (size_t r = 0; r < npos * s->outer; r++, x += n * inner) {                                   \
      for (size_t i = 0; i < inner; i++) acc[i] = 0;                                                 \
      for (size_t j = 0; j < n; j++)                                                                 \
        for (size_t i = 0; i < inner; i++) acc[i] += (A)x[j * inner + i];                            \
      if (s->out == HB_F32)                                                                          \
        for (size_t i = 0; i < inner; i++) ((float *)out)[q++] = (float)acc[i];                      \
      else                                                                                           \
        for (size_t i = 0; i < inner; i++) ((A *)out)[q++] = acc[i];                                 \
    }                                                                                                \
  }

/* Simpson's rule as sum(w y), in float64; for an even N plus scipy's end
 * trapezoids, whose two samples it adds in the data's type first: float32
 * data's pairs are float32 sums, as scipy's (integers are added exactly,
 * where scipy's uint16 sum wraps past 65535). */
#define SIMPSON_RUN(E, T, A, FLOAT)                                                                  \
  static void simpson_##E(const axis_state *s, const T *x, size_t npos, void *out) {                 \
    const size_t n = s->n, inner = s->inner;                                                         \
    double *acc = s->work;                                                                           \
    size_t q = 0;                                                                                    \
    for (size_t r = 0; r < npos * s->outer; r++, x += n * inner) {                                   \
      for (size_t i = 0; i < inner; i++) acc[i] = 0;                                                 \
      for (size_t j = 0; j < n; j++) {                                                               \
        const double wj = s->w[j];                                                                   \
        for (size_t i = 0; i < inner; i++) acc[i] += wj * (double)x[j * inner + i];                  \
      }                                                                                              \
      if (s->ends)                                                                                   \
        for (size_t i = 0; i < inner; i++) {                                                         \
          const T a = x[(n - 1) * inner + i], b = x[(n - 2) * inner + i], c = x[inner + i], d = x[i]; \
          const double pl = FLOAT ? (double)(T)(a + b) : (double)a + (double)b;                      \
          const double pf = FLOAT ? (double)(T)(c + d) : (double)c + (double)d;                      \
          acc[i] += (s->half_last * pl + s->half_first * pf) / 2.0;                                  \
        }                                                                                            \
      if (s->out == HB_F32)                                                                          \
        for (size_t i = 0; i < inner; i++) ((float *)out)[q++] = (float)acc[i];                      \
      else                                                                                           \
        for (size_t i = 0; i < inner; i++) ((double *)out)[q++] = acc[i];                            \
    }                                                                                                \
  }

/* ---- derivative --------------------------------------------------------------- */

/* One np.gradient (numpy 1.24) of f into g, pattern by pattern, in the
 * result's type OT: a float32 pattern's differences and divisions by a
 * spacing are float32 operations (numpy casts the float64 scalar spacing to
 * float32), the non-uniform interior's three terms float64 ones rounded once
 * to float32 (coefficient arrays are float64), as numpy does them. */
#define GRADIENT(OT)                                                                                 \
  static void gradient_##OT(const axis_state *s, const OT *f, OT *g) {                               \
    const size_t n = s->n, inner = s->inner, step = n * inner;                                       \
    for (size_t o = 0; o < s->outer; o++, f += step, g += step) {                                    \
      if (s->uniform) {                                                                              \
        const OT d2 = (OT)(2. * s->dx);                                                              \
        for (size_t j = 1; j + 1 < n; j++) {                                                         \
          const OT *f0 = f + (j - 1) * inner, *f2 = f + (j + 1) * inner;                             \
          OT *gj = g + j * inner;                                                                    \
          for (size_t i = 0; i < inner; i++) gj[i] = (f2[i] - f0[i]) / d2;                           \
        }                                                                                            \
      } else {                                                                                       \
        for (size_t j = 1; j + 1 < n; j++) {                                                         \
          const OT *f0 = f + (j - 1) * inner, *f1 = f + j * inner, *f2 = f + (j + 1) * inner;        \
          const double a = s->ca[j - 1], b = s->cb[j - 1], c = s->cc[j - 1];                         \
          OT *gj = g + j * inner;                                                                    \
          for (size_t i = 0; i < inner; i++)                                                         \
            gj[i] = (OT)(a * (double)f0[i] + b * (double)f1[i] + c * (double)f2[i]);                 \
        }                                                                                            \
      }                                                                                              \
      const OT *fl = f + (n - 1) * inner;                                                            \
      OT *gl = g + (n - 1) * inner;                                                                  \
      if (s->edge_order == 1) {                                                                      \
        const OT d0 = (OT)(s->uniform ? s->dx : s->dxs[0]), dn = (OT)(s->uniform ? s->dx : s->dxs[n - 2]); \
        for (size_t i = 0; i < inner; i++) g[i] = (f[inner + i] - f[i]) / d0;                        \
        for (size_t i = 0; i < inner; i++) gl[i] = (fl[i] - fl[i - inner]) / dn;                     \
      } else {                                                                                       \
        const OT a0 = (OT)s->e0[0], b0 = (OT)s->e0[1], c0 = (OT)s->e0[2];                            \
        const OT a1 = (OT)s->e1[0], b1 = (OT)s->e1[1], c1 = (OT)s->e1[2];                            \
        for (size_t i = 0; i < inner; i++) g[i] = a0 * f[i] + b0 * f[inner + i] + c0 * f[2 * inner + i]; \
        for (size_t i = 0; i < inner; i++)                                                           \
          gl[i] = a1 * fl[i - 2 * inner] + b1 * fl[i - inner] + c1 * fl[i];                          \
      }                                                                                              \
    }                                                                                                \
  }
GRADIENT(float)
GRADIENT(double)

/* `order` gradients: the pattern in the result's type (integers as
 * float64) in work, each gradient from work into out, copied back for the
 * next. */
#define DERIV_RUN(E, T, A, FLOAT)                                                                    \
  static void deriv_##E(const axis_state *s, const T *x, size_t npos, void *out) {                   \
    const size_t m = s->m;                                                                           \
    for (size_t p = 0; p < npos; p++, x += m) {                                                      \
      if (s->out == HB_F32) {                                                                        \
        float *w = s->work, *g = (float *)out + p * m;                                               \
        for (size_t i = 0; i < m; i++) w[i] = (float)x[i];                                           \
        for (int r = 0; r < s->order; r++) {                                                         \
          if (r) memcpy(w, g, m * sizeof *w);                                                        \
          gradient_float(s, w, g);                                                                   \
        }                                                                                            \
      } else {                                                                                       \
        double *w = s->work, *g = (double *)out + p * m;                                             \
        for (size_t i = 0; i < m; i++) w[i] = (double)x[i];                                          \
        for (int r = 0; r < s->order; r++) {                                                         \
          if (r) memcpy(w, g, m * sizeof *w);                                                        \
          gradient_double(s, w, g);                                                                  \
        }                                                                                            \
      }                                                                                              \
    }                                                                                                \
  }

/* ---- diff ---------------------------------------------------------------------- */

/* np.diff(n=order): a[1:] - a[:-1] `order` times, in the data's type
 * (integers wrap, as numpy's do; the subtraction goes through uint64 so
 * that no signed overflow is undefined), in place in work; then the first
 * n - order samples of each run out. */
#define DIFF_RUN(E, T, A, FLOAT)                                                                     \
  static void diff_##E(const axis_state *s, const T *x, size_t npos, void *out) {                    \
    const size_t n = s->n, inner = s->inner, keep = (n - (size_t)s->order) * inner;                   \
    T *w = s->work, *y = out;                                                                        \
    for (size_t r = 0; r < npos * s->outer; r++, x += n * inner, y += keep) {                        \
      memcpy(w, x, n * inner * sizeof *w);                                                           \
      for (size_t k = 1; k <= (size_t)s->order; k++)                                                 \
        for (size_t j = 0; j + k < n; j++)                                                           \
          for (size_t i = 0; i < inner; i++) {                                                       \
            T *a = w + j * inner + i;                                                                \
            if (FLOAT) *a = (T)(a[inner] - *a);                                                      \
            else *a = (T)((uint64_t)a[inner] - (uint64_t)*a);                                        \
          }                                                                                          \
      memcpy(y, w, keep * sizeof *w);                                                                \
    }                                                                                                \
  }

AX_TYPES(ARG_RUN)
AX_TYPES(SUM_RUN)
AX_TYPES(SIMPSON_RUN)
AX_TYPES(DERIV_RUN)
AX_TYPES(DIFF_RUN)

static void axis_block(const hb_kernel *k, const hb_block *b, void *const *out) {
  const axis_state *s = k->state;
  switch (b->dtype) {
#define X(E, T, A, FLOAT)                                              \
  case E:                                                              \
    switch (s->how) {                                                  \
      case M_ARGMAX:                                                   \
      case M_ARGMIN: arg_##E(s, b->data, b->npos, out[0]); break;      \
      case M_SUM: sum_##E(s, b->data, b->npos, out[0]); break;         \
      case M_SIMPSON: simpson_##E(s, b->data, b->npos, out[0]); break; \
      case M_GRADIENT: deriv_##E(s, b->data, b->npos, out[0]); break;  \
      case M_DIFF: diff_##E(s, b->data, b->npos, out[0]); break;       \
    }                                                                  \
    break;
    AX_TYPES(X)
#undef X
    default: break;
  }
}

static void axis_destroy(hb_kernel *k) {
  axis_state *s = k->state;
  if (!s) return;
  free(s->x), free(s->w), free(s->dxs), free(s->ca), free(s->cb), free(s->cc), free(s->work);
  free(s);
}

#define REDUCED_OUTPUTS                                                                                        \
  "<name>: one value per pattern (a spectrum's axis), or an array of the other signal axes per pattern (one " \
  "axis of a 2-D pattern)"
#define AXIS_DEF(NAME, PARAMS, OUTPUTS, WHAT) \
  const hb_kernel_def hb_kernel_##NAME = {    \
      .op = #NAME,                            \
      .summary = WHAT,                        \
      .params = PARAMS,                       \
      .outputs_doc = OUTPUTS,                 \
      .plan = axis_plan,                      \
      .block = axis_block,                    \
      .destroy = axis_destroy,                \
  };

AXIS_DEF(indexmax, reduce_params, REDUCED_OUTPUTS,
         "index of the maximum along one signal axis, as HyperSpy's indexmax (np.argmax): int64; the first of equal "
         "maxima, and the first NaN wins")
AXIS_DEF(indexmin, reduce_params, REDUCED_OUTPUTS,
         "index of the minimum along one signal axis, as HyperSpy's indexmin (np.argmin): int64; the first of equal "
         "minima, and the first NaN wins")
AXIS_DEF(valuemax, reduce_params, REDUCED_OUTPUTS,
         "the axis value (its point, or offset + scale x index) of the maximum along one signal axis, as HyperSpy's "
         "valuemax: "
         "float64")
AXIS_DEF(valuemin, reduce_params, REDUCED_OUTPUTS,
         "the axis value (its point, or offset + scale x index) of the minimum along one signal axis, as HyperSpy's "
         "valuemin: "
         "float64")
AXIS_DEF(integrate1D, reduce_params, REDUCED_OUTPUTS,
         "integral along one signal axis, as HyperSpy's integrate1D: on a binned axis (EELS, EDS_SEM, EDS_TEM data, "
         "or an axis saved with is_binned) the sum (numpy's sum dtype: uint16 -> uint64; float32 stays float32, "
         "summed in float64), otherwise integrate_simpson")
AXIS_DEF(integrate_simpson, reduce_params, REDUCED_OUTPUTS,
         "integral along one signal axis by Simpson's rule, as HyperSpy's integrate_simpson (scipy 1.10's "
         "simps(y, x=axis values), even='avg' for an even number of samples): float64 (float32 for float32 data "
         "on an axis of 3 samples, as scipy), computed in float64 as a weighted sum")
AXIS_DEF(derivative, derivative_params,
         "<name>: a pattern per pattern, the input's signal axes (size unchanged) and signal type",
         "derivative along one signal axis, as HyperSpy's derivative (np.gradient with the axis values, order "
         "times; the same size, central differences inside): float32 for float32 data, else float64; the same "
         "bits as numpy")
AXIS_DEF(diff, diff_params, "<name>: a pattern per pattern, the axis order samples shorter and its offset moved "
         "by order x scale / 2, as HyperSpy's",
         "differences of neighbours along one signal axis, order times, as HyperSpy's diff (np.diff): the data's "
         "dtype (unsigned integers wrap, as numpy's); no division by the scale")
