/* remove_background: HyperSpy's Signal1D.remove_background with fast=True,
 * per pattern (docs/hyperspy-semantics.md, section 8): the background's
 * parameters are estimated from signal_range, the background is evaluated
 * on every channel and subtracted.
 *
 *   PowerLaw    A x^-r by the two-area method: the range is cut in two
 *               halves, each integrated as integrate1D does (a sum on a
 *               binned axis, scipy 1.10's Simpson otherwise), then
 *               r = 2 (ln I1 - ln I2) / (ln X2 - ln X1), A = k I2 / (X2^k - X3^k)
 *               with k = 1 - r, and numpy's nan_to_num on both
 *   Polynomial  numpy's polyfit over [i1, i2): unweighted least squares in
 *               the calibrated x, uncentred; as it depends on x alone, plan
 *               computes the pseudo-inverse once and a pattern's fit is a
 *               small matrix-vector product
 *   Offset      the mean over [i1, i2)
 *
 * On a binned axis (is_binned as HyperSpy 1.7.3 loads it: EELS, EDS_SEM
 * and EDS_TEM data, or an axis saved binned) Polynomial and Offset divide their
 * parameters by the scale and every background is multiplied by it, as
 * HyperSpy does.  Everything is computed in float64, pattern by pattern, so
 * the results do not depend on how the scan is cut. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hb_error.h"
#include "hb_kernel.h"

/* LAPACK (Fortran symbol, hidden string length last). */
void dgesdd_(const char *jobz, const int *m, const int *n, double *a, const int *lda, double *s, double *u,
             const int *ldu, double *vt, const int *ldvt, double *work, const int *lwork, int *iwork, int *info,
             size_t);

#define BG_MAX_ORDER 16

typedef enum { BG_POWERLAW, BG_POLYNOMIAL, BG_OFFSET } bg_type;

typedef struct {
  bg_type type;
  int binned;
  double scale;      /* binned: Polynomial and Offset divide their parameters by it */
  double *grad;      /* binned and non-uniform: each channel's np.gradient of the points, which
                        multiplies its background (NULL: scale does) */
  size_t n;          /* channels */
  size_t zero_end;   /* zero_fill: channels [0, zero_end) become 0 */
  int out_signal;    /* out[0] is the subtracted spectra */
  int npar_out;      /* parameter outputs after it */
  /* PowerLaw: halves [i1, i3) and [i3, i2), their integration weights */
  size_t i1, i3, half;
  double *w1, *w2;
  double X2, X3, log_span; /* log_span = ln X2 - ln X1 */
  double *log_x;           /* ln x per channel (x > 0) */
  /* Polynomial and Offset: the fit range [i1, i1 + nfit) */
  size_t nfit;
  int order;
  double *pinv;     /* (order + 1) x nfit, highest power first (polyfit's order) */
  double col_scale[BG_MAX_ORDER + 1];
  double *x_pow;    /* (order + 1) x n: x^k per channel, k = 0 .. order */
  int *positive;    /* PowerLaw: per channel, x > left_cutoff (0) */
} bg_state;

static const hb_param_spec bg_params[] = {
    {"signal_range", HB_P_NUMBERS, HB_REQUIRED, .count = 2,
     .help = "[x1, x2]: the range the background is estimated from, in the signal axis' units (always calibrated: "
             "an integer is a value too); ends outside the axis are taken at its ends"},
    {"background_type", HB_P_STRING, HB_DEFAULT_STR("PowerLaw"),
     .help = "PowerLaw ('Power law'), Polynomial or Offset; case and spaces do not matter, as in HyperSpy"},
    {"polynomial_order", HB_P_INT, HB_DEFAULT_INT(2),
     .help = "Polynomial only: the order, 1 to " HB_STR(BG_MAX_ORDER)},
    {"fast", HB_P_BOOL, HB_DEFAULT_BOOL(1),
     .help = "estimate the parameters only (true); false, a least-squares fit after the estimate, is not "
             "supported yet"},
    {"zero_fill", HB_P_BOOL, HB_DEFAULT_BOOL(0),
     .help = "set every channel before signal_range's start (x1) to 0"},
    {"outputs", HB_P_ENUM, HB_DEFAULT_STR("signal"), .choices = "signal|parameters|both",
     .help = "the background-subtracted spectra, the fitted parameters per pattern, or both"},
    HB_PARAM_END,
};

/* "Power law" -> "powerlaw", as HyperSpy's _get_background_estimator. */
static void squeeze_lower(const char *in, char *out, size_t cap) {
  size_t n = 0;
  for (; *in && n + 1 < cap; in++)
    if (*in != ' ') out[n++] = (char)(*in >= 'A' && *in <= 'Z' ? *in - 'A' + 'a' : *in);
  out[n] = 0;
}

/* HyperSpy's value2index of v, when it is a sample of the axis: x holds
 * its values (axis.axis), the points of a non-uniform one (DataAxis: the
 * closest, as numba_closest_index_round). */
static int value_index(const hb_axis *a, const double *x, size_t n, double v, size_t *i) {
  if (a->points) {
    if (!(v >= fmin(x[0], x[n - 1]) && v <= fmax(x[0], x[n - 1]))) return 0;
    *i = (size_t)hb_axis_nearest_point(x, n, v);
    return 1;
  }
  double f = (v - a->offset) / a->scale;
  if (!(fabs(f) < 1e15)) return 0;
  long long k = hb_axis_value2index(a, v);
  if (k < 0 || k >= (long long)n) return 0;
  *i = (size_t)k;
  return 1;
}

/* HyperSpy's value_range_to_indices: [v1, v2] to [i1, i2], each end inside
 * the axis by value2index, an end outside it at the axis' end. */
static void range_to_indices(const hb_axis *a, const double *x, size_t n, double v1, double v2, size_t *i1,
                             size_t *i2) {
  double lo = fmin(x[0], x[n - 1]), hi = fmax(x[0], x[n - 1]);
  *i1 = 0;
  *i2 = n - 1;
  if (a->scale > 0) {
    if (lo < v1 && v1 <= hi) value_index(a, x, n, v1, i1);
    if (hi > v2 && v2 >= lo) value_index(a, x, n, v2, i2);
  } else {
    if (hi > v1 && v1 >= lo) value_index(a, x, n, v1, i1);
    if (lo < v2 && v2 <= hi) value_index(a, x, n, v2, i2);
  }
}

/* integrate1D's weights over samples x[0 .. N) (w[k] multiplies y[k]): 1 on
 * a binned axis (a sum); otherwise scipy 1.10's simps(y, x). */
static void integration_weights(const double *x, size_t N, int binned, double *w) {
  if (!binned) {
    hb_simpson_weights(x, N, 1, w);
    return;
  }
  for (size_t k = 0; k < N; k++) w[k] = 1;
}

/* polyfit's solve, once: lhs = vander(x, p) with unit-norm columns; its
 * pseudo-inverse by SVD with lstsq's cut-off (singular values below
 * m * eps * the largest count as zero), so that a pattern's coefficients are
 * pinv y / col_scale. */
static int polyfit_plan(bg_state *s, const double *x, const char *where) {
  const int m = (int)s->nfit, p = s->order + 1;
  double *a = NULL, *u = NULL, *work = NULL, sv[BG_MAX_ORDER + 1], vt[(BG_MAX_ORDER + 1) * (BG_MAX_ORDER + 1)];
  int *iwork = NULL, info = 0, lwork = -1;
  HB_ALLOC(s->pinv, (size_t)p * (size_t)m);
  a = malloc((size_t)m * (size_t)p * sizeof *a);
  u = malloc((size_t)m * (size_t)p * sizeof *u);
  iwork = malloc(8 * (size_t)p * sizeof *iwork);
  int rc = a && u && iwork ? 0 : HB_FAIL(HB_EINTERNAL, "memory", "out of memory");
  for (int c = 0; !rc && c < p; c++) { /* column c: x^(p-1-c), column-major */
    double ss = 0;
    for (int i = 0; i < m; i++) {
      double v = pow(x[i], (double)(p - 1 - c));
      a[(size_t)c * (size_t)m + (size_t)i] = v;
      ss += v * v;
    }
    s->col_scale[c] = sqrt(ss);
    for (int i = 0; i < m; i++) a[(size_t)c * (size_t)m + (size_t)i] /= s->col_scale[c];
  }
  double wq = 0;
  if (!rc) dgesdd_("S", &m, &p, a, &m, sv, u, &m, vt, &p, &wq, &lwork, iwork, &info, 1);
  if (!rc && !info) {
    lwork = (int)wq + 1;
    work = malloc((size_t)lwork * sizeof *work);
    if (!work) rc = HB_FAIL(HB_EINTERNAL, "memory", "out of memory");
    else dgesdd_("S", &m, &p, a, &m, sv, u, &m, vt, &p, work, &lwork, iwork, &info, 1);
  }
  if (!rc && info)
    rc = HB_FAIL(HB_EINVALID, where, "the polynomial fit's SVD failed (LAPACK dgesdd info %d)", info);
  if (!rc) { /* pinv = V diag(1/s) U^T, singular values below the cut-off dropped */
    double cut = (double)m * DBL_EPSILON * sv[0];
    for (int j = 0; j < p; j++)
      for (int i = 0; i < m; i++) {
        double t = 0;
        for (int q = 0; q < p; q++)
          if (sv[q] > cut) t += vt[(size_t)j * (size_t)p + (size_t)q] * u[(size_t)q * (size_t)m + (size_t)i] / sv[q];
        s->pinv[(size_t)j * (size_t)m + (size_t)i] = t;
      }
  }
  free(a);
  free(u);
  free(work);
  free(iwork);
  return rc;
}

static int bg_plan(hb_kernel *k, const hb_stream *in, const hb_params *p) {
  bg_state *s;
  HB_ALLOC(s, 1);
  k->state = s;
  HB_CHECK(in->sig_dim == 1, HB_EINVALID, hb_params_where(p),
           "remove_background needs a 1-D signal (spectra); this input's signal has %d axes", in->sig_dim);
  HB_CHECK(hb_param_bool(p, "fast"), HB_EINVALID, hb_param_where(p, "fast"),
           "fast: false (a least-squares fit of the background) is not supported yet; fast: true estimates it");
  char type[64];
  squeeze_lower(hb_param_str(p, "background_type"), type, sizeof type);
  const char *where_type = hb_param_where(p, "background_type");
  if (!strcmp(type, "powerlaw")) s->type = BG_POWERLAW;
  else if (!strcmp(type, "polynomial")) s->type = BG_POLYNOMIAL;
  else if (!strcmp(type, "offset")) s->type = BG_OFFSET;
  else {
    static const char *const later =
        "gaussian|lorentzian|doniach|exponential|skewnormal|splitvoigt|voigt"; /* HyperSpy's others */
    size_t n = strlen(type);
    const char *hit = n ? strstr(later, type) : NULL;
    int known = hit && (hit == later || hit[-1] == '|') && (hit[n] == '|' || !hit[n]);
    HB_RAISE(HB_EINVALID, where_type, "background_type '%s' %s: PowerLaw, Polynomial or Offset",
             hb_param_str(p, "background_type"), known ? "is not supported yet" : "is unknown");
  }
  HB_CHECK(s->type == BG_POLYNOMIAL || !hb_param_given(p, "polynomial_order"), HB_EINVALID,
           hb_param_where_key(p, "polynomial_order"), "polynomial_order applies to background_type Polynomial only");
  s->order = (int)hb_param_int(p, "polynomial_order");
  HB_CHECK(s->type != BG_POLYNOMIAL || (s->order >= 1 && s->order <= BG_MAX_ORDER), HB_EINVALID,
           hb_param_where(p, "polynomial_order"), "polynomial_order must be 1 to %d, got %lld", BG_MAX_ORDER,
           hb_param_int(p, "polynomial_order"));

  const hb_axis *a = &in->axes[in->nav_dim];
  const size_t n = in->shape[in->nav_dim];
  const char *where = hb_param_where(p, "signal_range");
  const char *units = a->units[0] ? a->units : "units";
  s->n = n;
  s->scale = a->scale;
  s->binned = a->is_binned; /* HyperSpy's is_binned(signal), as the reader loads it */
  double *x = malloc(n * sizeof *x);
  HB_CHECK(x, HB_EINTERNAL, "memory", "out of memory");
  const double *points = hb_axis_values(a, n, x);
  if (s->binned && points && n > 1) {
    /* np.gradient(axis.axis) scales each channel's background, and its mean
     * (polynomial.py, offset.py: "a best guess") the parameters */
    s->grad = malloc(n * sizeof *s->grad);
    if (!s->grad) free(x);
    HB_CHECK(s->grad, HB_EINTERNAL, "memory", "out of memory");
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
      s->grad[i] = i == 0 ? x[1] - x[0] : i == n - 1 ? x[n - 1] - x[n - 2] : (x[i + 1] - x[i - 1]) / 2;
      sum += s->grad[i];
    }
    s->scale = sum / (double)n;
  }
  double v[2];
  hb_param_numbers(p, "signal_range", v);
  double lo = fmin(x[0], x[n - 1]), hi = fmax(x[0], x[n - 1]);
  int rc = 0;
  if (!(isfinite(v[0]) && isfinite(v[1])))
    rc = HB_FAIL(HB_EINVALID, where, "signal_range must be finite");
  else if (!(a->scale > 0 ? v[0] < v[1] : v[0] > v[1]))
    rc = HB_FAIL(HB_EINVALID, where, "signal_range [%g, %g] must run in the axis' direction (%s)", v[0], v[1],
                 a->scale > 0 ? "x1 < x2" : "x1 > x2: its scale is negative");
  else if (!(fmax(v[0], v[1]) >= lo && fmin(v[0], v[1]) <= hi))
    rc = HB_FAIL(HB_EINVALID, where, "signal_range [%g, %g] %s is outside the signal axis (%g to %g %s)", v[0], v[1],
                 units, lo, hi, units);
  if (rc) {
    free(x);
    return rc;
  }
  size_t i1, i2;
  range_to_indices(a, x, n, v[0], v[1], &i1, &i2);
  /* zero_fill is isig[:x1] = 0: x1's index; off the axis, the whole axis
   * unless x1 is below it (HyperSpy's IndexError there: nothing is zeroed) */
  if (hb_param_bool(p, "zero_fill") && !value_index(a, x, n, v[0], &s->zero_end)) s->zero_end = v[0] < lo ? 0 : n;

  if (s->type == BG_POWERLAW) {
    if ((i1 + i2) % 2) i2--;
    if (i2 == i1) i2 += 2;
    size_t i3 = (i1 + i2) / 2, half = i3 - i1;
    s->i1 = i1, s->i3 = i3, s->half = half;
    double X1 = x[i1], X2 = i2 < n ? x[i2] : NAN, X3 = x[i3];
    if (i2 >= n)
      rc = HB_FAIL(HB_EINVALID, where, "signal_range [%g, %g] %s is too narrow at the end of the axis: PowerLaw needs "
                   "3 channels from x1 on", v[0], v[1], units);
    else if (!(X1 > 0 && X2 > 0 && X3 > 0))
      rc = HB_FAIL(HB_EINVALID, where,
                   "PowerLaw needs signal_range at positive x (its channels from %g to %g %s): ln x is taken", X1, X2,
                   units);
    else if (half < 2 && !s->binned)
      rc = HB_FAIL(HB_EINVALID, where,
                   "signal_range [%g, %g] %s gives halves of 1 channel: Simpson's rule (the axis is not binned) "
                   "integrates one sample to 0, so the estimate would fail everywhere; widen it",
                   v[0], v[1], units);
    s->X2 = X2, s->X3 = X3, s->log_span = log(X2) - log(X1);
    /* each half as integrate1D sees isig[a:b]: its own axis, offset x[a]
     * (a non-uniform one: those points) */
    double *xs = rc ? NULL : malloc((half ? half : 1) * sizeof *xs);
    s->w1 = rc ? NULL : malloc((half ? half : 1) * sizeof *s->w1);
    s->w2 = rc ? NULL : malloc((half ? half : 1) * sizeof *s->w2);
    s->log_x = rc ? NULL : malloc(n * sizeof *s->log_x);
    s->positive = rc ? NULL : malloc(n * sizeof *s->positive);
    if (!rc && (!xs || !s->w1 || !s->w2 || !s->log_x || !s->positive))
      rc = HB_FAIL(HB_EINTERNAL, "memory", "out of memory");
    for (int h = 0; !rc && h < 2; h++) {
      for (size_t j = 0; j < half; j++) xs[j] = points ? x[(h ? i3 : i1) + j] : x[h ? i3 : i1] + a->scale * (double)j;
      integration_weights(xs, half, s->binned, h ? s->w2 : s->w1);
    }
    for (size_t i = 0; !rc && i < n; i++) {
      s->positive[i] = x[i] > 0; /* left_cutoff: 0 below */
      s->log_x[i] = x[i] > 0 ? log(x[i]) : 0;
    }
    free(xs);
  } else {
    s->i1 = i1;
    s->nfit = i2 - i1;
    int need = s->type == BG_POLYNOMIAL ? s->order + 1 : 1;
    if (s->nfit < (size_t)need)
      rc = HB_FAIL(HB_EINVALID, where, "signal_range [%g, %g] %s covers %zu channel%s (x2's excluded): %s needs %d",
                   v[0], v[1], units, s->nfit, s->nfit == 1 ? "" : "s",
                   s->type == BG_POLYNOMIAL ? "a polynomial of that order" : "Offset", need);
    if (!rc && s->type == BG_POLYNOMIAL) {
      rc = polyfit_plan(s, x + i1, where);
      s->x_pow = rc ? NULL : malloc((size_t)(s->order + 1) * n * sizeof *s->x_pow);
      if (!rc && !s->x_pow) rc = HB_FAIL(HB_EINTERNAL, "memory", "out of memory");
      for (int q = 0; !rc && q <= s->order; q++)
        for (size_t i = 0; i < n; i++) s->x_pow[(size_t)q * n + i] = q ? pow(x[i], (double)q) : 1.0;
    }
  }
  free(x);
  HB_CALL(rc);

  const char *outputs = hb_param_str(p, "outputs");
  s->out_signal = strcmp(outputs, "parameters") != 0;
  int params = strcmp(outputs, "signal") != 0;
  if (s->out_signal) {
    hsize_t len = n;
    HB_CALL(hb_kernel_add_output(k, NULL, HB_OUT_FULL, HB_F64, HB_F64, "Intensity"));
    hb_output *o = hb_kernel_output(k, 0);
    hb_output_set_shape(o, 1, &len, a);
    /* the input's class (EELSSpectrum, ...), which keeps the axis binned;
     * other types are left out, as for every result (docs/output.md) */
    const char *type = in->input ? in->input->signal_type : NULL;
    o->signal_type = hb_hspy_binned_type(type) ? type : NULL;
  }
  if (params) {
    if (s->type == BG_POWERLAW) {
      HB_CALL(hb_kernel_add_output(k, "A", HB_OUT_NAV, HB_F64, HB_F64, "A"));
      HB_CALL(hb_kernel_add_output(k, "r", HB_OUT_NAV, HB_F64, HB_F64, "r"));
      s->npar_out = 2;
    } else if (s->type == BG_OFFSET) {
      HB_CALL(hb_kernel_add_output(k, "offset", HB_OUT_NAV, HB_F64, HB_F64, "offset"));
      s->npar_out = 1;
    } else {
      hsize_t np = (hsize_t)s->order + 1;
      hb_axis power = {.name = "power", .scale = 1, .size = np};
      HB_CALL(hb_kernel_add_output(k, "coefficients", HB_OUT_NAV, HB_F64, HB_F64, "Coefficient"));
      hb_output_set_shape(hb_kernel_output(k, k->nout - 1), 1, &np, &power);
      s->npar_out = 1;
    }
  }
  return 0;
}

/* numpy's nan_to_num: NaN -> 0, +-inf -> +-the largest double. */
static double nan_to_num(double v) { return isnan(v) ? 0 : isinf(v) ? copysign(DBL_MAX, v) : v; }

/* The two-area estimate from the halves' integrals.  Where numpy would
 * divide by zero (an integral of 0, or X2^k = X3^k), HyperSpy abandons the
 * estimate for the whole dataset and subtracts nothing anywhere; here only
 * that pattern has no background: r = A = 0, as HyperSpy gives a pattern
 * whose integral is negative or NaN. */
static void powerlaw_estimate(const bg_state *s, double I1, double I2, double *A, double *r) {
  double rr = 2 * (log(I1) - log(I2)) / s->log_span, k = 1 - rr;
  double num = k * I2, den = pow(s->X2, k) - pow(s->X3, k);
  if (I1 == 0 || I2 == 0 || (den == 0 && num != 0 && isfinite(num))) {
    *A = *r = 0;
    return;
  }
  *r = nan_to_num(rr);
  *A = nan_to_num(num / den);
}

/* Pattern by pattern: the parameters, the subtracted spectrum and the
 * parameter outputs.  par: A, r (PowerLaw); offset; or a_0 .. a_order. */
#define BG_RUN(T)                                                                                       \
  static void bg_run_##T(const bg_state *s, const T *x, size_t npos, void *const *out) {               \
    const size_t n = s->n;                                                                              \
    double *sig = s->out_signal ? out[0] : NULL;                                                        \
    void *const *pout = out + s->out_signal;                                                            \
    for (size_t p = 0; p < npos; p++, x += n) {                                                         \
      double par[BG_MAX_ORDER + 1];                                                                     \
      if (s->type == BG_POWERLAW) {                                                                     \
        double I1 = 0, I2 = 0;                                                                          \
        for (size_t j = 0; j < s->half; j++) I1 += s->w1[j] * (double)x[s->i1 + j];                     \
        for (size_t j = 0; j < s->half; j++) I2 += s->w2[j] * (double)x[s->i3 + j];                     \
        powerlaw_estimate(s, I1, I2, &par[0], &par[1]);                                                 \
      } else if (s->type == BG_OFFSET) {                                                                \
        double t = 0;                                                                                   \
        for (size_t j = 0; j < s->nfit; j++) t += (double)x[s->i1 + j];                                 \
        par[0] = t / (double)s->nfit;                                                                   \
        if (s->binned) par[0] /= s->scale;                                                              \
      } else {                                                                                          \
        const int np = s->order + 1;                                                                    \
        for (int c = 0; c < np; c++) { /* c: polyfit's order, highest power first */                    \
          const double *row = s->pinv + (size_t)c * s->nfit;                                            \
          double t = 0;                                                                                 \
          for (size_t j = 0; j < s->nfit; j++) t += row[j] * (double)x[s->i1 + j];                      \
          t /= s->col_scale[c];                                                                         \
          par[np - 1 - c] = s->binned ? t / s->scale : t;                                               \
        }                                                                                               \
      }                                                                                                 \
      if (sig) {                                                                                        \
        double *o = sig + p * n;                                                                        \
        const double f = s->binned ? s->scale : 1;                                                      \
        if (s->type == BG_POWERLAW) {                                                                   \
          for (size_t i = 0; i < n; i++) {                                                              \
            double bkg = s->positive[i] ? par[0] * exp(-par[1] * s->log_x[i]) : 0;                      \
            o[i] = (double)x[i] - (s->binned ? bkg * (s->grad ? s->grad[i] : f) : bkg);                 \
          }                                                                                             \
        } else if (s->type == BG_OFFSET) {                                                              \
          const double bkg = s->binned ? par[0] * f : par[0];                                           \
          for (size_t i = 0; i < n; i++) o[i] = (double)x[i] - (s->grad ? par[0] * s->grad[i] : bkg);  \
        } else { /* numexpr's a2*x**2+a1*x**1+a0*x**0, left to right, summed in o */                   \
          for (size_t i = 0; i < n; i++) o[i] = 0;                                                      \
          for (int q = s->order; q >= 0; q--) {                                                         \
            const double aq = par[q], *xq = s->x_pow + (size_t)q * n;                                   \
            for (size_t i = 0; i < n; i++) o[i] += aq * xq[i];                                          \
          }                                                                                             \
          for (size_t i = 0; i < n; i++)                                                                \
            o[i] = (double)x[i] - (s->binned ? o[i] * (s->grad ? s->grad[i] : f) : o[i]);               \
        }                                                                                               \
        for (size_t i = 0; i < s->zero_end; i++) o[i] = 0;                                              \
      }                                                                                                 \
      if (s->npar_out) {                                                                                \
        if (s->type == BG_POWERLAW) {                                                                   \
          ((double *)pout[0])[p] = par[0];                                                              \
          ((double *)pout[1])[p] = par[1];                                                              \
        } else if (s->type == BG_OFFSET) {                                                              \
          ((double *)pout[0])[p] = par[0];                                                              \
        } else {                                                                                        \
          memcpy((double *)pout[0] + p * (size_t)(s->order + 1), par,                                   \
                 (size_t)(s->order + 1) * sizeof(double));                                              \
        }                                                                                               \
      }                                                                                                 \
    }                                                                                                   \
  }
BG_RUN(uint8_t)
BG_RUN(uint16_t)
BG_RUN(uint32_t)
BG_RUN(uint64_t)
BG_RUN(int8_t)
BG_RUN(int16_t)
BG_RUN(int32_t)
BG_RUN(int64_t)
BG_RUN(float)
BG_RUN(double)

static void bg_block(const hb_kernel *k, const hb_block *b, void *const *out) {
  const bg_state *s = k->state;
  switch (b->dtype) {
#define X(E, T) \
  case E: bg_run_##T(s, b->data, b->npos, out); break;
    HB_FOREACH_DTYPE(X)
#undef X
    default: break;
  }
}

static void bg_destroy(hb_kernel *k) {
  bg_state *s = k->state;
  if (!s) return;
  free(s->w1);
  free(s->w2);
  free(s->log_x);
  free(s->positive);
  free(s->grad);
  free(s->pinv);
  free(s->x_pow);
  free(s);
}

const hb_kernel_def hb_kernel_remove_background = {
    .op = "remove_background",
    .summary =
        "subtract a background estimated per pattern from signal_range, as HyperSpy's Signal1D.remove_background "
        "with fast=True (PowerLaw by the two-area method, Polynomial by polyfit, Offset by the mean; on a binned "
        "axis (EELS, EDS_SEM or EDS_TEM data, or an axis saved with is_binned) the integrals are sums and the backgrounds scale with the channel width). "
        "Unlike HyperSpy: a pattern whose PowerLaw estimate divides by zero (a half-range integral of 0) gets no "
        "background (r = A = 0) while the others keep theirs, where HyperSpy subtracts nothing anywhere; "
        "signal_range is always calibrated, zero_fill too (HyperSpy takes an integer x1 as an index there); "
        "parameters are estimated in float64 (HyperSpy's Offset keeps float32 data's mean in float32)",
    .params = bg_params,
    .outputs_doc = "outputs: signal -> <name>, the subtracted spectra (float64, the input's axes and signal type); "
                   "outputs: parameters -> navigation-shaped float64 <name>_A and <name>_r (PowerLaw), "
                   "<name>_offset (Offset) or <name>_coefficients (Polynomial: a_0 .. a_order per pattern, "
                   "a_k multiplying x^k); both -> all of them",
    .plan = bg_plan,
    .block = bg_block,
    .destroy = bg_destroy,
};
