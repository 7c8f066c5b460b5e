/* HyperSpy's .hspy and older .hdf5 files, format versions 1.0 to 3.x, as
 * HyperSpy 1.7.3 reads them (docs/hspy-format.md "Older versions"). */
#include <math.h>
#include <matheval.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hb_error.h"
#include "hb_h5.h"
#include "reader.h"

static void undefined_to_empty(char *s) {
  if (!strcmp(s, "<undefined>") || !strcmp(s, "_None_")) s[0] = 0;
}

/* The n points of the axis a FunctionalDataAxis is a function of (a new
 * array, NULL if missing): the group `x`, with its own `axis` points or
 * uniform (offset, scale) of size n. */
static double *functional_x(hid_t g, hsize_t n) {
  if (H5Lexists(g, "x", H5P_DEFAULT) <= 0) return NULL;
  hid_t xg = H5Gopen2(g, "x", H5P_DEFAULT);
  if (xg < 0) return NULL;
  double *x = hb_h5_read_vector_new(xg, "axis", n);
  double scale = 1, offset = 0, size = 0;
  if (!x && hb_h5_read_attr_f64(xg, "size", &size) && size == (double)n && (x = malloc(n * sizeof *x))) {
    hb_h5_read_attr_f64(xg, "scale", &scale);
    hb_h5_read_attr_f64(xg, "offset", &offset);
    for (hsize_t i = 0; i < n; i++) x[i] = offset + (double)i * scale;
  }
  H5Gclose(xg);
  return x;
}

/* HyperSpy's FunctionalDataAxis: its `expression` of x (sympy's syntax),
 * with the other names in it given as the group's attributes, evaluated by
 * GNU libmatheval into the axis' points (written back as a DataAxis: the
 * points survive, the formula does not). */
static int functional_points(hid_t g, hb_axis *ax, hsize_t n, const char *axis_name, const char *where) {
  char expr[1024], text[1024];
  HB_CHECK(hb_h5_read_attr_str(g, "expression", expr, sizeof expr) && expr[0], HB_EINVALID, where,
           "%s is a FunctionalDataAxis without an expression", axis_name);
  size_t o = 0; /* sympy's power is libmatheval's ^ */
  for (const char *p = expr; *p && o + 1 < sizeof text; p++) {
    if (p[0] == '*' && p[1] == '*') p++, text[o++] = '^';
    else text[o++] = *p;
  }
  text[o] = 0;
  double *x = functional_x(g, n), *pts = x ? malloc(n * sizeof *pts) : NULL;
  void *ev = pts ? evaluator_create(text) : NULL;
  const char *why = !x ? "its x axis (the group x) is missing or has the wrong size"
                    : !pts ? "out of memory"
                    : !ev  ? "libmatheval cannot parse it"
                           : NULL;
  char **names = NULL, missing[64] = "";
  int count = 0, xi = -1;
  if (!why) evaluator_get_variables(ev, &names, &count);
  double values[64];
  if (!why && count > 64) why = "it has more than 64 names";
  for (int k = 0; !why && k < count; k++) {
    if (!strcmp(names[k], "x")) xi = k;
    else if (!hb_h5_read_attr_f64(g, names[k], &values[k])) snprintf(missing, sizeof missing, "%s", names[k]);
  }
  if (!why && missing[0]) why = "a name in it is not among the axis' attributes";
  for (hsize_t i = 0; !why && i < n; i++) {
    if (xi >= 0) values[xi] = x[i];
    pts[i] = evaluator_evaluate(ev, count, names, values);
    if (!isfinite(pts[i])) why = "it is not finite at every point";
    /* written back as a DataAxis, which HyperSpy loads only when ordered */
    else if (i >= 2 && (pts[i] - pts[i - 1]) * (pts[1] - pts[0]) <= 0) why = "its points are not in order";
  }
  if (!why && n == 2 && pts[1] == pts[0]) why = "its points are not in order";
  if (ev) evaluator_destroy(ev);
  free(x);
  if (why) {
    free(pts);
    HB_RAISE(HB_EINVALID, where, "%s is a FunctionalDataAxis whose expression '%s' cannot be evaluated: %s%s%s%s", axis_name,
             expr, why, missing[0] ? " ('" : "", missing, missing[0] ? "')" : "");
  }
  hb_axis_from_points(ax, pts, n);
  return 0;
}

/* *with_navigate: how many of the axes carry a `navigate` attribute (format
 * 2.1 on); HyperSpy trusts the flags only when every axis has one. */
int hb_hspy_read_axes(hid_t group, int ndim, const hsize_t *shape, hb_axis *axes, int *flagged, const char *where) {
  int with_navigate = 0;
  for (int i = 0; i < ndim; i++) {
    hb_axis *ax = &axes[i];
    free((double *)ax->points);
    memset(ax, 0, sizeof *ax);
    ax->scale = 1;
    ax->size = shape[i];
    char name[32];
    snprintf(name, sizeof name, "axis-%d", i);
    if (H5Lexists(group, name, H5P_DEFAULT) <= 0) continue;
    hid_t g = H5Gopen2(group, name, H5P_DEFAULT);
    if (g < 0) continue;
    hb_h5_read_attr_str(g, "name", ax->name, sizeof ax->name);
    hb_h5_read_attr_str(g, "units", ax->units, sizeof ax->units);
    undefined_to_empty(ax->name);
    undefined_to_empty(ax->units);
    hb_h5_read_attr_f64(g, "scale", &ax->scale);
    hb_h5_read_attr_f64(g, "offset", &ax->offset);
    with_navigate += hb_h5_read_attr_bool(g, "navigate", &ax->navigate);
    hb_h5_read_attr_bool(g, "is_binned", &ax->is_binned);
    /* A non-uniform axis keeps its points in a dataset (hb_axis_from_points);
     * only one with a point per sample is usable */
    double *pts = hb_h5_read_vector_new(g, "axis", shape[i]);
    if (pts) hb_axis_from_points(ax, pts, shape[i]);
    char type[64] = "";
    int rc = 0;
    if (hb_h5_read_attr_str(g, "_type", type, sizeof type) && !strcmp(type, "FunctionalDataAxis") && shape[i] > 0)
      rc = functional_points(g, ax, shape[i], name, where);
    H5Gclose(g);
    if (rc) return rc;
  }
  *flagged = with_navigate;
  return 0;
}

int hb_hspy_binned_type(const char *t) {
  static const char *const binned[] = {"EELS", "TEM EELS", "EDS_SEM", "EDS_TEM"};
  for (size_t i = 0; t && i < sizeof binned / sizeof binned[0]; i++)
    if (!strcmp(t, binned[i])) return 1;
  return 0;
}

/* The format version as HyperSpy reads it: the root's file_format_version
 * (a string, or a float in some old files); 1.0 when absent. */
static void format_version(hid_t file, int *major, int *minor) {
  char ver[64] = "";
  double v;
  if (!hb_h5_read_attr_str(file, "file_format_version", ver, sizeof ver) &&
      hb_h5_read_attr_f64(file, "file_format_version", &v))
    snprintf(ver, sizeof ver, "%.2f", v);
  *major = 1, *minor = 0;
  if (ver[0]) sscanf(ver, "%d.%d", major, minor);
}

static int detect(hid_t file) {
  char fmt[64];
  if (hb_h5_read_attr_str(file, "file_format", fmt, sizeof fmt)) return !strcmp(fmt, "HyperSpy");
  /* HyperSpy's own reader takes a file without the attribute, with
   * /Experiments, for format 1.0 */
  return H5Lexists(file, "/Experiments", H5P_DEFAULT) > 0;
}

static herr_t collect_signal(hid_t g, const char *name, const H5L_info_t *info, void *data) {
  (void)info;
  char path[300];
  snprintf(path, sizeof path, "%s/data", name);
  if (H5Lexists(g, name, H5P_DEFAULT) > 0 && H5Lexists(g, path, H5P_DEFAULT) > 0) {
    char dataset[512], group[512];
    snprintf(group, sizeof group, "/Experiments/%s", name);
    snprintf(dataset, sizeof dataset, "/Experiments/%s/data", name);
    if (hb_candidates_add(data, name, dataset, group)) return -1;
  }
  return 0;
}

static int list(hid_t file, const char *where, hb_candidates *out) {
  int major, minor;
  format_version(file, &major, &minor);
  HB_CHECK(major >= 1 && major <= 3, HB_EINVALID, where,
           "HyperSpy format version %d.%d is not supported (1.x to 3.x are, as HyperSpy 1.7.3 reads them)", major,
           minor);
  hid_t ex = H5Gopen2(file, "/Experiments", H5P_DEFAULT);
  HB_H5(ex, where, "HyperSpy file without an /Experiments group");
  herr_t e = H5Literate(ex, H5_INDEX_NAME, H5_ITER_INC, NULL, collect_signal, out);
  H5Gclose(ex);
  HB_CHECK(e >= 0, HB_EIO, where, "cannot list /Experiments");
  return 0;
}

/* Attribute `key` of the group at `path` under `group`, if there. */
static void read_meta_str(hid_t group, const char *path, const char *key, char *buf, size_t n) {
  if (buf[0] || H5Lexists(group, path, H5P_DEFAULT) <= 0) return;
  hid_t m = H5Gopen2(group, path, H5P_DEFAULT);
  if (m < 0) return;
  hb_h5_read_attr_str(m, key, buf, n);
  H5Gclose(m);
}

/* Where HyperSpy 1.7.3 finds title, signal_type, record_by and binned: the
 * metadata tree of 1.2 on, or mapped_parameters' root (1.0, 1.1; 1.0 also
 * names them `name` and `signal`), which its reader moves into place. */
static int calibrate(hid_t file, const hb_candidate *c, hb_input *in, const char *where) {
  int major, minor;
  format_version(file, &major, &minor);
  int before_1_2 = major == 1 && minor < 2, before_1_1 = major == 1 && minor < 1;
  hid_t g = H5Gopen2(file, c->group, H5P_DEFAULT);
  HB_H5(g, where, "cannot open %s", c->group);
  int flagged = 0, rc = hb_hspy_read_axes(g, in->ndim, in->shape, in->axes, &flagged, where);
  if (rc) {
    H5Gclose(g);
    return rc;
  }
  char record_by[32] = "";
  int binned = -1; /* an old file's metadata Signal/binned, if any */
  if (before_1_2) {
    read_meta_str(g, "mapped_parameters", "title", in->title, sizeof in->title);
    read_meta_str(g, "mapped_parameters", "signal_type", in->signal_type, sizeof in->signal_type);
    read_meta_str(g, "mapped_parameters", "record_by", record_by, sizeof record_by);
    if (before_1_1) {
      read_meta_str(g, "mapped_parameters", "name", in->title, sizeof in->title);
      read_meta_str(g, "mapped_parameters", "signal", in->signal_type, sizeof in->signal_type);
    }
  } else {
    read_meta_str(g, "metadata/General", "title", in->title, sizeof in->title);
    read_meta_str(g, "metadata/Signal", "signal_type", in->signal_type, sizeof in->signal_type);
    read_meta_str(g, "metadata/Signal", "record_by", record_by, sizeof record_by);
    hid_t m = H5Lexists(g, "metadata/Signal", H5P_DEFAULT) > 0 ? H5Gopen2(g, "metadata/Signal", H5P_DEFAULT) : -1;
    if (m >= 0) {
      if (!hb_h5_read_attr_bool(m, "binned", &binned)) binned = -1;
      H5Gclose(m);
    }
  }
  if (!strcmp(in->title, "__unnamed__")) in->title[0] = 0;
  /* before 1.2 the tree had another layout, which HyperSpy's reader
   * rearranges key by key (src/output/carry.c does the same) */
  snprintf(in->meta_group, sizeof in->meta_group, "%s/%s", c->group, before_1_2 ? "mapped_parameters" : "metadata");
  in->meta_mapped_parameters = before_1_2;
  in->meta_before_3 = major < 3;
  snprintf(in->original_group, sizeof in->original_group, "%s/%s", c->group,
           before_1_2 ? "original_parameters" : "original_metadata");
  H5Gclose(g);
  /* HyperSpy: the navigate flags when every axis has one, else record_by,
   * else every axis is signal */
  int sig = in->ndim;
  if (flagged == in->ndim) {
    int nav = 0;
    while (nav < in->ndim && in->axes[nav].navigate) nav++;
    for (int i = nav; i < in->ndim; i++)
      HB_CHECK(!in->axes[i].navigate, HB_EINVALID, where,
               "navigation axes must come first in array order (axis %d navigates, axis %d does not)", i, nav);
    sig = in->ndim - nav;
  } else if (!strcmp(record_by, "spectrum")) {
    sig = 1;
  } else if (!strcmp(record_by, "image")) {
    sig = 2;
  }
  in->nav_dim = in->ndim - sig < 0 ? 0 : in->ndim - sig;
  for (int i = 0; i < in->ndim; i++) in->axes[i].navigate = i < in->nav_dim;
  /* is_binned as 1.7.3 loads it: the axis' own attribute; then the class's
   * __init__ (EELSSpectrum, EDSSEMSpectrum, EDSTEMSpectrum set their one
   * signal axis binned); then an old file's Signal/binned, which io.py
   * moves onto every signal axis */
  if (in->ndim - in->nav_dim == 1 && hb_hspy_binned_type(in->signal_type)) in->axes[in->ndim - 1].is_binned = 1;
  if (binned >= 0)
    for (int i = in->nav_dim; i < in->ndim; i++) in->axes[i].is_binned = binned;
  return 0;
}

const hb_reader hb_reader_hspy = {
    .format = "hspy",
    .looks_for = "HyperSpy: root attribute file_format = HyperSpy, or an /Experiments group",
    .pick_key = "signal",
    .detect = detect,
    .list = list,
    .calibrate = calibrate,
};
