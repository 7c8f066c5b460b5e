/* fft, ifft: the discrete Fourier transform of each pattern over all its
 * signal axes, as HyperSpy's fft and ifft (docs/hyperspy-semantics.md, 7),
 * with FFTW3.  Transforms: in `preprocess` the kernels see the spectrum (a
 * mean power spectrum is `preprocess: [{op: fft, power_spectrum: true}]`
 * and `mean` over the navigation axes); named as a kernel, the spectra are
 * written as a dataset of their own (ComplexSignal1D/2D in HyperSpy).
 *
 * Where this differs from HyperSpy 1.7.3 on purpose (each is a bug there):
 * - apodization windows the data with or without shift (HyperSpy's
 *   unshifted branch transforms the data without its window);
 * - with shift, a signal axis' offset is the frequency of the first sample,
 *   -(N//2)·scale; HyperSpy's -(N-1)·scale/2 is half a bin off for even N.
 *
 * Bytes never depend on the run: plans are made once per transform at plan
 * time with FFTW_ESTIMATE (no timing), or from a wisdom file every rank
 * imports; every pattern goes through the one aligned buffer the plan was
 * made on, so each execution takes the same code path. */
#include <fftw3.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hb_error.h"
#include "hb_files.h"
#include "hb_kernel.h"

typedef struct {
  int inverse, shift;
  int power;            /* fft: |F|^2 as float64 */
  int real_part;        /* ifft: the real part as float64 */
  hb_dtype in, out;
  size_t size;          /* elements per pattern */
  size_t row, nrows;    /* the last signal axis' length, and the rows of a pattern */
  size_t half;          /* shift along the last axis: row / 2 */
  uint32_t *row_shift;  /* shift: row r's shifted row ((i + n/2) % n on every other axis) */
  double *window;       /* apodization, per element; NULL without */
  double norm;          /* ifft: 1 / size, numpy's normalisation */
  fftw_complex *work;   /* the pattern being transformed (c2c), or its half spectrum (r2c); the plan's */
  fftw_plan plan;
  /* fft of real data: FFTW's r2c (half the work) from `real`, the plan's
   * input buffer, then each row completed by Hermitian symmetry in `full` */
  double *real;
  uint32_t *row_neg;    /* row r's mirror: (n - i) % n on every other axis */
  fftw_complex *full;
} fft_state;

/* ---- windows, as numpy and scipy compute them ------------------------------ */

typedef enum { WIN_NONE, WIN_HANN, WIN_HAMMING, WIN_TUKEY } window_kind;

/* np.hanning / np.hamming: a + b·cos(π n / (M - 1)), n = 1-M, 3-M, ..., M-1. */
static void cosine_window(double a, double b, size_t m, double *w) {
  if (m == 1) {
    w[0] = 1;
    return;
  }
  for (size_t i = 0; i < m; i++) {
    double n = (double)(2 * (long long)i + 1 - (long long)m);
    w[i] = a + b * cos(M_PI * n / (double)(m - 1));
  }
}

/* HyperSpy's hann_window_nth_order (misc/math_tools.py): m ≥ 2. */
static void hann_order_window(long long order, size_t m, double *w) {
  double sin_arg = M_PI * ((double)m - 1.) / (double)m, cos_arg = 2. * M_PI / ((double)m - 1.);
  for (size_t n = 0; n < m; n++) {
    double sum = 0;
    for (long long i = 1; i <= order; i++)
      sum += (i % 2 ? -1.0 : 1.0) / (double)i * sin((double)i * sin_arg) * (cos((double)i * (cos_arg * (double)n)) - 1);
    w[n] = (double)m / ((double)order * 2 * M_PI) * sum;
  }
}

/* scipy.signal.windows.tukey(m, alpha), symmetric; alpha >= 1 is scipy's hann. */
static void tukey_window(double alpha, size_t m, double *w) {
  if (m <= 1 || alpha <= 0) {
    for (size_t i = 0; i < m; i++) w[i] = 1;
    return;
  }
  if (alpha >= 1) { /* general_cosine(m, [0.5, 0.5]) over np.linspace(-π, π, m) */
    double step = 2 * M_PI / (double)(m - 1);
    for (size_t i = 0; i < m; i++) {
      double fac = i == m - 1 ? M_PI : (double)i * step + -M_PI;
      w[i] = 0.5 + 0.5 * cos(fac);
    }
    return;
  }
  long long width = (long long)floor(alpha * (double)(m - 1) / 2.0), mm = (long long)m;
  for (long long n = 0; n < mm; n++) {
    if (n <= width)
      w[n] = 0.5 * (1 + cos(M_PI * (-1 + 2.0 * (double)n / alpha / (double)(m - 1))));
    else if (n < mm - width - 1)
      w[n] = 1;
    else
      w[n] = 0.5 * (1 + cos(M_PI * (-2.0 / alpha + 1 + 2.0 * (double)n / alpha / (double)(m - 1))));
  }
}

static void window_1d(window_kind kind, long long hann_order, double tukey_alpha, size_t m, double *w) {
  if (kind == WIN_HANN && hann_order) hann_order_window(hann_order, m, w);
  else if (kind == WIN_HANN) cosine_window(0.5, 0.5, m, w);
  else if (kind == WIN_HAMMING) cosine_window(0.54, 0.46, m, w);
  else tukey_window(tukey_alpha, m, w);
}

/* The n-D window: HyperSpy's outer product of the 1-D windows in natural
 * order (the last array axis first), multiplied in that order. */
static int make_window(fft_state *f, const hb_stream *in, window_kind kind, long long hann_order, double alpha) {
  int nav = in->nav_dim, sd = in->sig_dim;
  double *w1[HB_MAXDIM] = {0};
  int rc = 0;
  f->window = malloc(f->size * sizeof *f->window);
  if (!f->window) rc = HB_FAIL(HB_EINTERNAL, "memory", "out of memory for the apodization window");
  for (int d = 0; !rc && d < sd; d++) {
    size_t m = in->shape[nav + d];
    if (!(w1[d] = malloc(m * sizeof *w1[d]))) rc = HB_FAIL(HB_EINTERNAL, "memory", "out of memory");
    else window_1d(kind, hann_order, alpha, m, w1[d]);
  }
  for (size_t i = 0; !rc && i < f->size; i++) {
    size_t rem = i, idx[HB_MAXDIM] = {0};
    for (int d = sd - 1; d >= 0; d--) idx[d] = rem % in->shape[nav + d], rem /= in->shape[nav + d];
    double v = w1[sd - 1][idx[sd - 1]];
    for (int d = sd - 2; d >= 0; d--) v *= w1[d][idx[d]];
    f->window[i] = v;
  }
  for (int d = 0; d < sd; d++) free(w1[d]);
  return rc;
}

/* ---- axes ---------------------------------------------------------------- */

/* HyperSpy 1.7.3 inverts units with pint 0.19 and writes them with '{:~}'
 * (short symbols): "nm" -> "1 / nm", "1/um" -> "µm", "nm^-1" -> "nm",
 * "pixels" -> "1 / pixel", "eV/c" -> "c / eV", "m^2" -> "1 / m ** 2"; units
 * pint does not know stay as they are (HyperSpy warns).  Here for the forms
 * A, A^n (or A**n), 1/A, A/B and A^n/B^m with A and B named below; any other
 * text stays as it is, as an unknown unit would. */

/* pint's symbol of a unit name it knows: prefix + unit, or a whole name */
static int unit_symbol(const char *tok, char *out, size_t cap) {
  static const char *const whole[][2] = {
      {"angstrom", "\u00c5"}, {"\u00c5", "\u00c5"}, {"micron", "\u00b5"},  {"deg", "deg"},     {"degree", "deg"},
      {"degrees", "deg"},    {"\u00b0", "deg"},     {"px", "px"},           {"pixel", "pixel"}, {"pixels", "pixel"},
      {"count", "count"},    {"counts", "count"}};
  static const char *const prefix[][2] = {{"", ""},   {"y", "y"}, {"z", "z"}, {"a", "a"}, {"f", "f"}, {"p", "p"},
                                          {"n", "n"}, {"u", "\u00b5"}, {"\u00b5", "\u00b5"}, {"m", "m"}, {"c", "c"},
                                          {"d", "d"}, {"k", "k"}, {"M", "M"}, {"G", "G"}, {"T", "T"}};
  static const char *const prefix_word[][2] = {{"", ""},     {"pico", "p"},  {"nano", "n"}, {"micro", "\u00b5"},
                                               {"milli", "m"}, {"centi", "c"}, {"kilo", "k"}, {"mega", "M"}};
  static const char *const unit[] = {"m", "s", "Hz", "eV", "rad", "A"};
  static const char *const unit_word[][2] = {{"meter", "m"}, {"metre", "m"}, {"second", "s"}, {"hertz", "Hz"},
                                             {"radian", "rad"}, {"electronvolt", "eV"}};
  for (size_t i = 0; i < sizeof whole / sizeof whole[0]; i++)
    if (!strcmp(tok, whole[i][0])) return snprintf(out, cap, "%s", whole[i][1]), 1;
  for (size_t i = 0; i < sizeof prefix / sizeof prefix[0]; i++) {
    size_t n = strlen(prefix[i][0]);
    if (strncmp(tok, prefix[i][0], n)) continue;
    for (size_t j = 0; j < sizeof unit / sizeof unit[0]; j++)
      if (!strcmp(tok + n, unit[j])) return snprintf(out, cap, "%s%s", prefix[i][1], unit[j]), 1;
  }
  for (size_t i = 0; i < sizeof prefix_word / sizeof prefix_word[0]; i++) {
    size_t n = strlen(prefix_word[i][0]);
    if (strncmp(tok, prefix_word[i][0], n)) continue;
    for (size_t j = 0; j < sizeof unit_word / sizeof unit_word[0]; j++)
      if (!strcmp(tok + n, unit_word[j][0])) return snprintf(out, cap, "%s%s", prefix_word[i][1], unit_word[j][1]), 1;
  }
  return 0;
}

/* One factor "name", "name^n" or "name**n", optionally in parentheses:
 * its symbol and power; 0 if it is not of that form or not a known unit. */
static int unit_factor(const char *text, size_t len, char *sym, size_t cap, long *power) {
  char buf[64];
  while (len && *text == ' ') text++, len--;
  while (len && text[len - 1] == ' ') len--;
  if (len >= 2 && text[0] == '(' && text[len - 1] == ')') return unit_factor(text + 1, len - 2, sym, cap, power);
  if (!len || len >= sizeof buf) return 0;
  memcpy(buf, text, len);
  buf[len] = 0;
  *power = 1;
  char *op = strstr(buf, "**");
  size_t oplen = 2;
  if (!op) op = strchr(buf, '^'), oplen = 1;
  if (op) {
    char *end;
    *power = strtol(op + oplen, &end, 10);
    if (end == op + oplen || *end || !*power) return 0;
    while (op > buf && op[-1] == ' ') op--;
    *op = 0;
  }
  return !strpbrk(buf, " */^()") && unit_symbol(buf, sym, cap);
}

static void invert_units(const char *units, char *out, size_t cap) {
  char sym[2][32];
  long power[2] = {0, 0};
  int n = 0;
  const char *slash = strchr(units, '/');
  size_t num_len = slash ? (size_t)(slash - units) : strlen(units);
  const char *num = units;
  while (num_len && *num == ' ') num++, num_len--;
  while (num_len && num[num_len - 1] == ' ') num_len--;
  int ok = 1;
  if (!(slash && num_len == 1 && *num == '1')) ok = unit_factor(num, num_len, sym[n], sizeof sym[n], &power[n]), n++;
  if (ok && slash) {
    ok = !strchr(slash + 1, '/') && unit_factor(slash + 1, strlen(slash + 1), sym[n], sizeof sym[n], &power[n]);
    power[n] = -power[n];
    n++;
  }
  if (!ok || !n || (n == 2 && !strcmp(sym[0], sym[1]))) {
    snprintf(out, cap, "%s", units); /* empty, or what pint would not take: as it is */
    return;
  }
  /* inverted: what had a negative power goes first, as pint writes it */
  size_t at = 0;
  int up = 0;
  for (int i = 0; i < n; i++) {
    if (power[i] >= 0) continue;
    at += (size_t)snprintf(out + at, at < cap ? cap - at : 0, "%s%s", up++ ? " * " : "", sym[i]);
    if (power[i] != -1) at += (size_t)snprintf(out + at, at < cap ? cap - at : 0, " ** %ld", -power[i]);
  }
  if (!up) at += (size_t)snprintf(out + at, at < cap ? cap - at : 0, "1");
  for (int i = 0; i < n; i++) {
    if (power[i] < 0) continue;
    at += (size_t)snprintf(out + at, at < cap ? cap - at : 0, " / %s", sym[i]);
    if (power[i] != 1) at += (size_t)snprintf(out + at, at < cap ? cap - at : 0, " ** %ld", power[i]);
  }
}

/* Each signal axis: scale 1/(N·scale) (HyperSpy's 1/N/scale), units
 * inverted, offset 0, or with fft's shift the first sample's frequency. */
static void fourier_axes(const hb_stream *in, int shift, hb_axis *axes) {
  for (int d = 0; d < in->sig_dim; d++) {
    const hb_axis *a = &in->axes[in->nav_dim + d];
    hb_axis *b = &axes[d];
    *b = *a;
    b->scale = 1. / (double)a->size / a->scale;
    b->offset = shift ? -(double)(a->size / 2) * b->scale : 0.0;
    invert_units(a->units, b->units, sizeof b->units);
  }
}

/* ---- plan ------------------------------------------------------------------ */

static const hb_param_spec fft_params[] = {
    {"shift", HB_P_BOOL, HB_DEFAULT_BOOL(0), .help = "put the zero frequency at the centre (numpy's fftshift)"},
    {"apodization", HB_P_ENUM, HB_DEFAULT_STR("false"), .choices = "false|true|hann|hamming|tukey",
     .help = "window the data first (true is hann): with or without shift (HyperSpy 1.7.3 ignores it unless "
             "shift is true, a bug)"},
    {"hann_order", HB_P_INT,
     .help = "hann: HyperSpy's hann_window_nth_order of this order (as apply_apodization's hann_order); by "
             "default np.hanning"},
    {"tukey_alpha", HB_P_FLOAT, HB_DEFAULT_FLOAT(0.5), .help = "tukey: the tapered fraction, 0 to 1 (scipy's alpha)"},
    {"power_spectrum", HB_P_BOOL, HB_DEFAULT_BOOL(0),
     .help = "give |F|^2 as float64 instead of F (HyperSpy has it only as a plot option: abs(s.fft())**2)"},
    {"wisdom", HB_P_PATH,
     .help = "an FFTW wisdom file (from fftw-wisdom, docs/fft.md) every rank imports; sizes it lacks are planned "
             "with FFTW_ESTIMATE"},
    HB_PARAM_END,
};

static const hb_param_spec ifft_params[] = {
    {"shift", HB_P_BOOL, HB_DEFAULT_BOOL(0),
     .help = "the spectra are centred (numpy's ifftshift first); HyperSpy's default reads Signal.FFT.shifted, which "
             "a job must say"},
    {"return_real", HB_P_BOOL, HB_DEFAULT_BOOL(1), .help = "keep the real part, as float64 (false: complex128)"},
    {"wisdom", HB_P_PATH, .help = "as fft's"},
    HB_PARAM_END,
};

/* FFTW's planner, wrapped once: a plan for one pattern, r2c from f->real
 * into f->work (fft of real data) or in place in f->work.  Wisdom, when
 * given, is imported first (every rank reads the same file, so every rank
 * gets the same plan); without wisdom for this problem, ESTIMATE. */
static int make_plan(fft_state *f, const hb_stream *in, const hb_params *p, int r2c) {
  int n[HB_MAXDIM];
  for (int d = 0; d < in->sig_dim; d++) n[d] = (int)in->shape[in->nav_dim + d];
  f->work = fftw_malloc(f->size * sizeof *f->work);
  if (r2c) f->real = fftw_malloc(f->size * sizeof *f->real);
  HB_CHECK(f->work && (!r2c || f->real), HB_EINTERNAL, "memory", "out of memory for an FFT buffer");
  int sign = f->inverse ? FFTW_BACKWARD : FFTW_FORWARD;
#define PLAN(flags)                                                                           \
  (r2c ? fftw_plan_dft_r2c(in->sig_dim, n, f->real, f->work, (flags))                         \
       : fftw_plan_dft(in->sig_dim, n, f->work, f->work, sign, (flags)))
  if (hb_param_given(p, "wisdom")) {
    const char *path = hb_param_str(p, "wisdom");
    char where[1200];
    snprintf(where, sizeof where, "%s", hb_param_where(p, "wisdom"));
    HB_CALL(hb_file_check_read(path, where));
    HB_CHECK(fftw_import_wisdom_from_filename(path), HB_EINVALID, where,
             "'%s' is not an FFTW wisdom file (fftw-wisdom makes one, docs/fft.md)", hb_param_text(p, "wisdom"));
    f->plan = PLAN(FFTW_ESTIMATE | FFTW_WISDOM_ONLY);
  }
  if (!f->plan) f->plan = PLAN(FFTW_ESTIMATE);
#undef PLAN
  HB_CHECK(f->plan, HB_EINTERNAL, hb_params_where(p), "FFTW could not plan a transform of this shape");
  return 0;
}

static int plan_common(hb_transform *t, const hb_params *p, int inverse) {
  fft_state *f;
  HB_ALLOC(f, 1);
  t->state = f;
  const hb_stream *in = &t->in;
  const char *op = inverse ? "ifft" : "fft";
  f->inverse = inverse;
  f->in = in->dtype;
  f->shift = hb_param_bool(p, "shift");
  HB_CHECK(in->sig_dim >= 1, HB_EINVALID, hb_params_where(p), "%s needs a signal axis; the data has none", op);
  f->size = in->sig_size;
  f->row = in->shape[in->ndim - 1];
  f->nrows = f->size / f->row;
  f->half = f->row / 2;
  for (int d = in->nav_dim; d < in->ndim; d++) {
    HB_CHECK(in->shape[d] <= INT_MAX && f->size <= INT_MAX, HB_EINVALID, hb_params_where(p),
             "%s: a pattern of %zu elements is too large for one FFT", op, f->size);
    /* HyperSpy raises NotImplementedError: samples not evenly spaced have no frequency axis */
    HB_CHECK(!in->axes[d].points, HB_EINVALID, hb_params_where(p),
             "%s needs evenly spaced signal axes; signal axis %d%s%s%s is non-uniform (HyperSpy refuses it too)", op,
             d - in->nav_dim, in->axes[d].name[0] ? " ('" : "", in->axes[d].name, in->axes[d].name[0] ? "')" : "");
  }

  window_kind win = WIN_NONE;
  if (!inverse) {
    const char *a = hb_param_str(p, "apodization");
    win = !strcmp(a, "false") ? WIN_NONE : !strcmp(a, "hamming") ? WIN_HAMMING : !strcmp(a, "tukey") ? WIN_TUKEY
                                                                                                    : WIN_HANN;
    long long order = 0;
    if (hb_param_given(p, "hann_order")) {
      order = hb_param_int(p, "hann_order");
      HB_CHECK(win == WIN_HANN, HB_EINVALID, hb_param_where(p, "hann_order"),
               "hann_order applies to apodization: hann (or true), not '%s'", a);
      /* a sum of `order` terms per sample, at plan time: bounded so a typo cannot hang the plan */
      HB_CHECK(order >= 1 && order <= 1000, HB_EINVALID, hb_param_where(p, "hann_order"),
               "hann_order must be 1 to 1000, got %lld", order);
      for (int d = in->nav_dim; d < in->ndim; d++)
        HB_CHECK(in->shape[d] >= 2, HB_EINVALID, hb_param_where(p, "hann_order"),
                 "hann_order needs at least 2 samples on every signal axis (HyperSpy divides by N - 1); axis '%s' "
                 "has 1", in->axes[d].name);
    }
    double alpha = hb_param_float(p, "tukey_alpha");
    if (hb_param_given(p, "tukey_alpha")) {
      HB_CHECK(win == WIN_TUKEY, HB_EINVALID, hb_param_where(p, "tukey_alpha"),
               "tukey_alpha applies to apodization: tukey, not '%s'", a);
      HB_CHECK(alpha >= 0 && alpha <= 1, HB_EINVALID, hb_param_where(p, "tukey_alpha"),
               "tukey_alpha must be 0 to 1 (0: no taper, 1: hann), got %g", alpha);
    }
    if (win != WIN_NONE) HB_CALL(make_window(f, in, win, order, alpha));
    f->power = hb_param_bool(p, "power_spectrum");
    f->out = f->power ? HB_F64 : HB_C128;
  } else {
    f->real_part = hb_param_bool(p, "return_real");
    f->out = f->real_part ? HB_F64 : HB_C128;
    f->norm = 1.0 / (double)f->size;
  }

  int real_fft = !inverse && !hb_dtype_is_complex(f->in); /* rows fit uint32: size <= INT_MAX */
  if (f->shift) HB_ALLOC(f->row_shift, f->nrows);
  if (real_fft) {
    HB_ALLOC(f->row_neg, f->nrows);
    HB_ALLOC(f->full, f->row);
  }
  for (size_t r = 0; r < f->nrows && (f->shift || real_fft); r++) {
    size_t rem = r, shifted = 0, mirror = 0, stride = 1;
    for (int d = in->ndim - 2; d >= in->nav_dim; d--) {
      size_t n = in->shape[d], i = rem % n;
      rem /= n;
      shifted += (i + n / 2) % n * stride;
      mirror += (n - i) % n * stride;
      stride *= n;
    }
    if (f->shift) f->row_shift[r] = (uint32_t)shifted;
    if (real_fft) f->row_neg[r] = (uint32_t)mirror;
  }
  HB_CALL(make_plan(f, in, p, real_fft));

  hb_axis axes[HB_MAXDIM];
  hsize_t shape[HB_MAXDIM];
  fourier_axes(in, !inverse && f->shift, axes);
  for (int d = 0; d < in->sig_dim; d++) shape[d] = in->shape[in->nav_dim + d];
  hb_stream_set_signal(&t->out, in->sig_dim, shape, axes, f->out);
  return 0;
}

static int fft_plan(hb_transform *t, const hb_params *p) { return plan_common(t, p, 0); }
static int ifft_plan(hb_transform *t, const hb_params *p) { return plan_common(t, p, 1); }

/* ---- apply ----------------------------------------------------------------- */

/* n elements of a pattern of type `dt` from element `from` into dst, times
 * the window w when there is one (w indexed like dst). */
static void load(hb_dtype dt, const void *pattern, size_t from, size_t n, fftw_complex *dst, const double *w) {
  switch (dt) {
#define X(E, T)                                                              \
  case E: {                                                                  \
    const T *x = (const T *)pattern + from;                                  \
    if (w)                                                                   \
      for (size_t i = 0; i < n; i++) dst[i][0] = (double)x[i] * w[i], dst[i][1] = 0; \
    else                                                                     \
      for (size_t i = 0; i < n; i++) dst[i][0] = (double)x[i], dst[i][1] = 0; \
    break;                                                                   \
  }
    HB_FOREACH_DTYPE(X)
#undef X
#define C(E, T)                                                                            \
  case E: {                                                                                \
    const T *x = (const T *)pattern + 2 * from;                                            \
    for (size_t i = 0; i < n; i++) {                                                       \
      double s = w ? w[i] : 1;                                                             \
      dst[i][0] = (double)x[2 * i] * s, dst[i][1] = (double)x[2 * i + 1] * s;              \
    }                                                                                      \
    break;                                                                                 \
  }
    C(HB_C64, float)
    C(HB_C128, double)
#undef C
    default: break;
  }
}

/* n values of src to element `to` of a pattern of `out` (complex128, or
 * float64: |F|^2, or the real part), times `scale`. */
static void store(const fft_state *f, const fftw_complex *src, size_t n, void *pattern, size_t to, double scale) {
  if (f->out == HB_C128) {
    double *o = (double *)pattern + 2 * to;
    if (scale == 1) memcpy(o, src, n * sizeof *src);
    else
      for (size_t i = 0; i < n; i++) o[2 * i] = src[i][0] * scale, o[2 * i + 1] = src[i][1] * scale;
  } else if (f->power) {
    double *o = (double *)pattern + to;
    for (size_t i = 0; i < n; i++) o[i] = src[i][0] * src[i][0] + src[i][1] * src[i][1];
  } else {
    double *o = (double *)pattern + to;
    for (size_t i = 0; i < n; i++) o[i] = src[i][0] * scale;
  }
}

/* n values of a real pattern of type `dt`, times the window w when there is one. */
static void load_real(hb_dtype dt, const void *pattern, size_t n, double *dst, const double *w) {
  switch (dt) {
#define X(E, T)                                                       \
  case E: {                                                           \
    const T *x = pattern;                                             \
    if (w)                                                            \
      for (size_t i = 0; i < n; i++) dst[i] = (double)x[i] * w[i];    \
    else                                                              \
      for (size_t i = 0; i < n; i++) dst[i] = (double)x[i];           \
    break;                                                            \
  }
    HB_FOREACH_DTYPE(X)
#undef X
    default: break;
  }
}

/* Row r of the spectrum, whole, to its place in pattern y: with fft's
 * shift, y[(i + n/2) % n] = src[i] on every axis. */
static void put_row(const fft_state *f, const fftw_complex *src, size_t r, void *y, double scale) {
  size_t row = f->row, h = f->half;
  if (!f->shift || f->inverse) {
    store(f, src, row, y, r * row, scale);
    return;
  }
  size_t to = (size_t)f->row_shift[r] * row;
  store(f, src, row - h, y, to + h, scale);
  store(f, src + row - h, h, y, to, scale);
}

static void fft_apply(const hb_transform *t, const hb_block *b, void *in, void *out) {
  const fft_state *f = t->state;
  size_t in_bytes = f->size * hb_dtype_size(f->in), out_bytes = f->size * hb_dtype_size(f->out);
  size_t row = f->row, h = f->half, half_row = row / 2 + 1;
  double scale = f->inverse ? f->norm : 1;
  for (size_t p = 0; p < b->npos; p++) {
    const char *x = (const char *)in + p * in_bytes;
    char *y = (char *)out + p * out_bytes;
    if (f->real) { /* r2c: row r holds k = 0 .. n/2; F[r][k] = conj(F[-r][n - k]) gives the rest */
      load_real(f->in, x, f->size, f->real, f->window);
      fftw_execute(f->plan);
      for (size_t r = 0; r < f->nrows; r++) {
        const fftw_complex *half = f->work + r * half_row, *mirror = f->work + (size_t)f->row_neg[r] * half_row;
        memcpy(f->full, half, half_row * sizeof *half);
        for (size_t k = half_row; k < row; k++) f->full[k][0] = mirror[row - k][0], f->full[k][1] = -mirror[row - k][1];
        put_row(f, f->full, r, y, 1);
      }
      continue;
    }
    if (f->inverse && f->shift) /* ifftshift: work[i] = x[(i + n/2) % n] on every axis */
      for (size_t r = 0; r < f->nrows; r++) {
        size_t from = (size_t)f->row_shift[r] * row;
        load(f->in, x, from + h, row - h, f->work + r * row, NULL);
        load(f->in, x, from, h, f->work + r * row + row - h, NULL);
      }
    else
      load(f->in, x, 0, f->size, f->work, f->window);
    fftw_execute(f->plan);
    if (!f->inverse && f->shift)
      for (size_t r = 0; r < f->nrows; r++) put_row(f, f->work + r * row, r, y, scale);
    else
      store(f, f->work, f->size, y, 0, scale);
  }
}

static void fft_destroy(hb_transform *t) {
  fft_state *f = t->state;
  if (!f) return;
  if (f->plan) fftw_destroy_plan(f->plan);
  fftw_free(f->work);
  fftw_free(f->real);
  free(f->window);
  free(f->row_shift);
  free(f->row_neg);
  free(f->full);
  free(f);
  t->state = NULL;
}

const hb_transform_def hb_transform_fft = {
    .op = "fft",
    .summary = "discrete Fourier transform over every signal axis, as HyperSpy's fft: complex128 (power_spectrum: "
               "|F|^2, float64); each signal axis gets scale 1/(N scale), inverted units and offset 0, or with shift "
               "-(N//2) scale, the first frequency (HyperSpy's -(N-1) scale/2 is half a bin off for even N); "
               "apodization applies with or without shift (HyperSpy applies it only with shift)",
    .params = fft_params,
    .plan = fft_plan,
    .apply = fft_apply,
    .destroy = fft_destroy,
    .complex_patterns = 1,
};

const hb_transform_def hb_transform_ifft = {
    .op = "ifft",
    .summary = "inverse discrete Fourier transform over every signal axis, as HyperSpy's ifft (numpy's 1/N): the "
               "real part as float64, or complex128; each signal axis gets scale 1/(N scale), inverted units and "
               "offset 0; takes real data too (HyperSpy's ifft() raises on a real signal)",
    .params = ifft_params,
    .plan = ifft_plan,
    .apply = fft_apply,
    .destroy = fft_destroy,
    .complex_patterns = 1,
};
