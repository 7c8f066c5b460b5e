/* The per-pattern pipeline: the `preprocess` transforms, in order, on every
 * run of patterns, before any kernel (docs/architecture.md, "Steps").
 *
 * A transform that keeps the pattern's size works in place; one that
 * changes it (crop, rebin, change_dtype, fft) writes into one of the work
 * slot's two scratch buffers, which alternate, each a run of the largest
 * pattern of the chain.  Runs fit in L2, so the chain costs no memory
 * traffic beyond the first read of the data. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_priv.h"
#include "hb_error.h"

void hb_stream_of_input(const hb_input *in, hb_stream *s) {
  memset(s, 0, sizeof *s);
  s->ndim = in->ndim;
  s->nav_dim = in->nav_dim;
  s->sig_dim = in->sig_dim;
  memcpy(s->shape, in->shape, sizeof s->shape);
  memcpy(s->axes, in->axes, sizeof s->axes);
  s->dtype = in->dtype;
  s->sig_size = hb_input_sig_size(in);
  s->input = in;
}

void hb_stream_set_signal(hb_stream *s, int sig_dim, const hsize_t *shape, const hb_axis *axes, hb_dtype dtype) {
  s->sig_dim = sig_dim;
  s->ndim = s->nav_dim + sig_dim;
  s->sig_size = 1;
  for (int d = 0; d < sig_dim; d++) {
    s->shape[s->nav_dim + d] = shape[d];
    s->axes[s->nav_dim + d] = axes ? axes[d] : (hb_axis){.scale = 1};
    s->axes[s->nav_dim + d].size = shape[d];
    s->axes[s->nav_dim + d].navigate = 0;
    s->sig_size *= shape[d];
  }
  s->dtype = dtype;
}

int hb_stream_virtual_nav(const hb_stream *s) { return s->input && s->input->virtual_nav; }

int hb_stream_axis(const hb_stream *s, const char *text, const char *where, int *axis) {
  char *end;
  long v = strtol(text, &end, 10);
  if (*text && !*end) { /* an index in natural order */
    /* a single pattern's size-1 navigation axis is not HyperSpy's: its
     * indices count the signal axes only */
    int skip = hb_stream_virtual_nav(s), n = s->ndim - skip;
    HB_CHECK(v >= -n && v < n, HB_EINVALID, where, "axis %ld: the data has %d axes (0 to %d, or -%d to -1)", v, n,
             n - 1, n);
    if (v < 0) v += n;
    v += skip;
    /* natural order is each group reversed: x (the fastest) first */
    *axis = v < s->nav_dim ? s->nav_dim - 1 - (int)v : s->nav_dim + s->sig_dim - 1 - ((int)v - s->nav_dim);
    return 0;
  }
  char names[512] = "";
  for (int d = 0, at = 0; d < s->ndim; d++) {
    if (!strcmp(s->axes[d].name, text)) {
      *axis = d;
      return 0;
    }
    if (s->axes[d].name[0] && at < (int)sizeof names - 70)
      at += snprintf(names + at, sizeof names - (size_t)at, "%s'%s'", at ? ", " : "", s->axes[d].name);
  }
  HB_RAISE(HB_EINVALID, where, "no axis named '%s' (the data's axes: %s; or give an index)", text,
           names[0] ? names : "none named");
}

long long hb_axis_value2index(const hb_axis *a, double value) {
  double idx = (1.0 / 1e12) * trunc((value - a->offset) / a->scale * 1e12);
  int towards = a->scale > 0 ? value >= 0 : value < 0;
  double r = towards ? (idx >= 0 ? ceil(idx - 0.5) : floor(idx + 0.5)) : (idx >= 0 ? floor(idx + 0.5) : ceil(idx - 0.5));
  return (long long)r;
}

long long hb_axis_nearest_point(const double *pts, size_t n, double v) {
  double step = INFINITY, nudge = (v > 0) - (v < 0), best = INFINITY;
  for (size_t i = 1; i < n; i++) step = fmin(step, fabs(pts[i] - pts[i - 1]));
  long long at = 0;
  for (size_t i = 0; i < n; i++) {
    double dist = fabs(pts[i] - v + nudge * step * 1e-12);
    if (dist < best) best = dist, at = (long long)i;
  }
  return at;
}

const double *hb_axis_values(const hb_axis *a, size_t n, double *x) {
  const double *points = hb_axis_points(a, n);
  for (size_t i = 0; i < n; i++) x[i] = points ? points[i] : a->offset + a->scale * (double)i;
  return points;
}

static size_t pattern_bytes(const hb_stream *s) { return s->sig_size * hb_dtype_size(s->dtype); }

int hb_stream_check_real(const hb_stream *s, const char *op, int takes_complex, const char *where) {
  HB_CHECK(takes_complex || !hb_dtype_is_complex(s->dtype), HB_EINVALID, where,
           "op '%s' takes real patterns, and these are %s (%s); make them real first, as HyperSpy's s.amplitude, "
           "s.phase, s.real or s.imag do, with preprocess: [{op: complex_part, part: amplitude}] (or phase, real, "
           "imag)",
           op, hb_dtype_name(s->dtype), s->preprocessed ? "after preprocess" : "the input's");
  return 0;
}

int hb_pipeline_plan(hb_engine *e) {
  const hb_node *pre = e->job->preprocess;
  e->nsteps = pre ? (int)pre->n : 0;
  HB_ALLOC(e->steps, e->nsteps);
  hb_stream_of_input(&e->in, &e->stream);
  e->step_bytes = pattern_bytes(&e->stream);
  for (int i = 0; i < e->nsteps; i++) {
    hb_transform *t = &e->steps[i];
    const hb_node *spec = pre->kids[i];
    t->def = hb_transform_find(hb_node_child(spec, "op")->text);
    t->in = t->out = e->stream;
    const hb_params *p;
    HB_CALL(hb_params_bind(spec, t->def->params, &p));
    HB_CALL(hb_stream_check_real(&t->in, t->def->op, t->def->complex_patterns, hb_node_where(spec, 0)));
    HB_CALL(t->def->plan(t, p));
    HB_CALL(hb_params_misused(p));
    HB_CHECK(!t->def->in_place || pattern_bytes(&t->out) == pattern_bytes(&t->in), HB_EINTERNAL, t->def->op,
             "an in-place transform changed the pattern's size");
    e->stream = t->out;
    e->stream.preprocessed = 1;
    if (pattern_bytes(&e->stream) > e->step_bytes) e->step_bytes = pattern_bytes(&e->stream);
  }
  return 0;
}

int hb_pipeline_changes_data(const hb_engine *e) {
  const hb_stream *s = &e->stream;
  if (s->dtype != e->in.dtype || s->sig_dim != e->in.sig_dim) return 1;
  for (int d = 0; d < s->ndim; d++)
    if (s->shape[d] != e->in.shape[d]) return 1;
  return 0;
}

void *hb_pipeline_run(const hb_engine *e, void *const scratch[2], hb_block *sub, void *data) {
  int next = 0;
  for (int i = 0; i < e->nsteps; i++) {
    const hb_transform *t = &e->steps[i];
    sub->sig_size = t->in.sig_size;
    sub->dtype = t->in.dtype;
    sub->data = data;
    void *out = t->def->in_place ? data : scratch[next];
    t->def->apply(t, sub, data, out);
    if (out != data) data = out, next ^= 1;
  }
  sub->sig_size = e->stream.sig_size;
  sub->dtype = e->stream.dtype;
  sub->data = data;
  return data;
}

void hb_pipeline_free(hb_engine *e) {
  for (int i = 0; i < e->nsteps; i++)
    if (e->steps[i].def && e->steps[i].def->destroy) e->steps[i].def->destroy(&e->steps[i]);
  free(e->steps);
  e->steps = NULL;
  e->nsteps = 0;
}

/* ---- a transform named as a kernel: its output is a FULL result ---------- */

/* k->transform is set by the engine, and p is bound to its table. */
static int transform_kernel_plan(hb_kernel *k, const hb_stream *in, const hb_params *p) {
  hb_transform *t;
  HB_ALLOC(t, 1);
  k->state = t;
  t->def = k->transform;
  t->in = t->out = *in;
  t->as_kernel = 1;
  HB_CALL(t->def->plan(t, p));
  HB_CALL(hb_kernel_add_output(k, NULL, HB_OUT_FULL, t->out.dtype, t->out.dtype, NULL));
  hb_kernel_output(k, 0)->nav_map = t->nav_map;
  hb_output_set_shape(hb_kernel_output(k, 0), t->out.sig_dim, t->out.shape + t->out.nav_dim,
                      t->out.axes + t->out.nav_dim);
  hb_kernel_output(k, 0)->signal_type = t->out.input ? t->out.input->signal_type : NULL;
  return 0;
}

static void transform_kernel_block(const hb_kernel *k, const hb_block *b, void *const *out) {
  const hb_transform *t = k->state;
  /* the kernels share the run: an in-place transform works on a copy (of
   * the run's own patterns: in-place transforms keep the scan) */
  if (t->def->in_place) memcpy(out[0], b->data, b->npos * t->in.sig_size * hb_dtype_size(t->in.dtype));
  t->def->apply(t, b, t->def->in_place ? out[0] : (void *)b->data, out[0]);
}

static void transform_kernel_destroy(hb_kernel *k) {
  hb_transform *t = k->state;
  if (t && t->def && t->def->destroy) t->def->destroy(t);
  free(t);
}

const hb_kernel_def hb_transform_kernel = {
    .op = "(transform)",
    .summary = "a transform's output, written as a dataset",
    .plan = transform_kernel_plan,
    .block = transform_kernel_block,
    .destroy = transform_kernel_destroy,
};

/* ---- kernels that read other kernels' results ---------------------------- */

int hb_kernel_use(hb_kernel *k, const char *name, const char *where, int *slot) {
  HB_CHECK(k->nuses < HB_MAX_USES, HB_EINVALID, where, "kernel '%s' reads more than %d results", k->name,
           HB_MAX_USES);
  HB_CHECK(strlen(name) < sizeof k->use[0].name, HB_EINVALID, where, "result name '%s' is too long", name);
  *slot = k->nuses;
  snprintf(k->use[k->nuses].name, sizeof k->use[0].name, "%s", name);
  k->use[k->nuses].where = where;
  k->use[k->nuses].o = NULL;
  k->nuses++;
  return 0;
}
