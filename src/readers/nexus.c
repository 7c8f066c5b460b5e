/* NeXus files: the NXdata groups of each NXentry, calibrated from their
 * axis datasets; STXM stacks (NXstxm, as SLS PolLux writes them) are
 * (energy, sample_y, sample_x) with energy the navigation (docs/job-format.md
 * "Input formats"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hb_error.h"
#include "hb_h5.h"
#include "reader.h"

static int nx_class_is(hid_t obj, const char *want) {
  char c[64];
  return hb_h5_read_attr_str(obj, "NX_class", c, sizeof c) && !strcmp(c, want);
}

/* Calls fn(group, name, ctx) for each child group of `parent` of class `cls`. */
typedef int (*child_fn)(hid_t parent, const char *name, void *ctx);
typedef struct {
  const char *cls;
  child_fn fn;
  void *ctx;
  int rc;
} children;

static herr_t each_child(hid_t parent, const char *name, const H5L_info_t *info, void *data) {
  (void)info;
  children *c = data;
  H5O_info_t oi;
  if (H5Oget_info_by_name(parent, name, &oi, H5P_DEFAULT) < 0 || oi.type != H5O_TYPE_GROUP) return 0;
  hid_t g = H5Gopen2(parent, name, H5P_DEFAULT);
  if (g < 0) return 0;
  int yes = nx_class_is(g, c->cls);
  H5Gclose(g);
  if (!yes) return 0;
  c->rc = c->fn(parent, name, c->ctx);
  return c->rc;
}

static int each_of_class(hid_t parent, const char *cls, child_fn fn, void *ctx) {
  children c = {cls, fn, ctx, 0};
  herr_t e = H5Literate(parent, H5_INDEX_NAME, H5_ITER_INC, NULL, each_child, &c);
  return c.rc ? c.rc : e < 0 ? -1 : 0;
}

static int found(hid_t parent, const char *name, void *ctx) {
  (void)parent, (void)name;
  *(int *)ctx = 1;
  return 1; /* stop */
}

static int detect(hid_t file) {
  int any = 0;
  each_of_class(file, "NXentry", found, &any);
  return any;
}

/* The signal dataset of an NXdata group: @signal names it (NeXus 2014 on);
 * else the dataset marked signal=1 (older rules); else `data`. */
static herr_t marked_signal(hid_t g, const char *name, const H5L_info_t *info, void *data) {
  (void)info;
  H5O_info_t oi;
  if (H5Oget_info_by_name(g, name, &oi, H5P_DEFAULT) < 0 || oi.type != H5O_TYPE_DATASET) return 0;
  hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
  double v = 0;
  int yes = d >= 0 && hb_h5_read_attr_f64(d, "signal", &v) && v == 1;
  if (d >= 0) H5Dclose(d);
  if (yes) snprintf(data, 256, "%s", name);
  return yes;
}

static void signal_name(hid_t g, char *out) {
  if (hb_h5_read_attr_str(g, "signal", out, 256) && out[0]) return;
  out[0] = 0;
  H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, marked_signal, out);
  if (!out[0]) snprintf(out, 256, "data");
}

typedef struct {
  const char *entry;
  hb_candidates *out;
} listing;

static int add_nxdata(hid_t entry, const char *name, void *ctx) {
  listing *l = ctx;
  hid_t g = H5Gopen2(entry, name, H5P_DEFAULT);
  if (g < 0) return 0;
  char sig[256];
  signal_name(g, sig);
  hid_t d = H5Lexists(g, sig, H5P_DEFAULT) > 0 ? H5Dopen2(g, sig, H5P_DEFAULT) : -1;
  hid_t s = d >= 0 ? H5Dget_space(d) : -1;
  int nd = s >= 0 ? H5Sget_simple_extent_ndims(s) : 0;
  if (s >= 0) H5Sclose(s);
  if (d >= 0) H5Dclose(d);
  H5Gclose(g);
  if (nd < 2 || nd > HB_MAXDIM) return 0;
  char cand[256], group[512], dataset[512];
  snprintf(cand, sizeof cand, "%s/%s", l->entry, name);
  snprintf(group, sizeof group, "/%s/%s", l->entry, name);
  snprintf(dataset, sizeof dataset, "/%s/%s/%s", l->entry, name, sig);
  return hb_candidates_add(l->out, cand, dataset, group);
}

static int list_entry(hid_t file, const char *name, void *ctx) {
  hid_t e = H5Gopen2(file, name, H5P_DEFAULT);
  if (e < 0) return 0;
  listing l = {name, ctx};
  int rc = each_of_class(e, "NXdata", add_nxdata, &l);
  H5Gclose(e);
  return rc;
}

static int list(hid_t file, const char *where, hb_candidates *out) {
  HB_CHECK(each_of_class(file, "NXentry", list_entry, out) >= 0, HB_EIO, where, "cannot list the NeXus entries");
  return 0;
}

/* The axis dataset names, one per dimension ("." or "" for none): the
 * group's @axes; else the signal's "a:b" or "a,b" @axes (older rules); else
 * each dataset's @axis = N, counted from 1 (oldest rules). */
static int split_axes(const char *text, char (*names)[64], int max) {
  int n = 0;
  const char *p = text;
  while (*p && n < max) {
    size_t len = strcspn(p, ":,");
    snprintf(names[n++], 64, "%.*s", (int)(len < 63 ? len : 63), p);
    p += len;
    if (*p) p++;
  }
  return n;
}

typedef struct {
  char (*names)[64];
  int max;
} numbered;

static herr_t axis_numbered(hid_t g, const char *name, const H5L_info_t *info, void *data) {
  (void)info;
  numbered *nb = data;
  H5O_info_t oi;
  if (H5Oget_info_by_name(g, name, &oi, H5P_DEFAULT) < 0 || oi.type != H5O_TYPE_DATASET) return 0;
  hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
  double v = 0;
  if (d >= 0 && hb_h5_read_attr_f64(d, "axis", &v) && v >= 1 && v <= nb->max && !nb->names[(int)v - 1][0])
    snprintf(nb->names[(int)v - 1], 64, "%s", name);
  if (d >= 0) H5Dclose(d);
  return 0;
}

static void axis_names(hid_t g, hid_t signal, int ndim, char (*names)[64]) {
  memset(names, 0, (size_t)ndim * 64);
  char text[512];
  int n = hb_h5_read_attr_strs(g, "axes", names, ndim);
  if (n == 1 && strpbrk(names[0], ":,")) snprintf(text, sizeof text, "%s", names[0]), split_axes(text, names, ndim);
  if (n) return;
  if (hb_h5_read_attr_str(signal, "axes", text, sizeof text)) {
    split_axes(text, names, ndim);
    return;
  }
  numbered nb = {names, ndim};
  H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, axis_numbered, &nb);
}

/* NXstxm leaves units out; its readers take eV and µm. */
static const char *stxm_units(const char *axis) {
  if (!strcmp(axis, "energy") || !strcmp(axis, "photon_energy")) return "eV";
  if (!strcmp(axis, "sample_x") || !strcmp(axis, "sample_y")) return "µm";
  return "";
}

void hb_nexus_axes(hid_t group, hid_t signal, hb_input *in, int stxm) {
  char names[HB_MAXDIM][64];
  axis_names(group, signal, in->ndim, names);
  for (int i = 0; i < in->ndim; i++) {
    hb_axis *ax = &in->axes[i];
    if (!names[i][0] || !strcmp(names[i], ".")) continue;
    snprintf(ax->name, sizeof ax->name, "%.63s", names[i]);
    hid_t d = H5Lexists(group, names[i], H5P_DEFAULT) > 0 ? H5Dopen2(group, names[i], H5P_DEFAULT) : -1;
    if (d >= 0 && !hb_h5_read_attr_str(d, "units", ax->units, sizeof ax->units) && stxm)
      snprintf(ax->units, sizeof ax->units, "%s", stxm_units(names[i]));
    if (d >= 0) H5Dclose(d);
    /* the axis' points: a non-uniform one (energy) stays so in the results
     * that keep it; the kernels compute with its line */
    double *pts = hb_h5_read_vector_new(group, names[i], in->shape[i]);
    if (pts) hb_axis_from_points(ax, pts, in->shape[i]);
  }
}

static int calibrate(hid_t file, const hb_candidate *c, hb_input *in, const char *where) {
  hb_axes_plain(in);
  /* images are the last two axes; a stack's leading axes (energy) navigate */
  in->nav_dim = in->ndim - 2;
  char entry[256], definition[64] = "";
  snprintf(entry, sizeof entry, "/%.*s", (int)strcspn(c->name, "/"), c->name);
  hid_t e = H5Gopen2(file, entry, H5P_DEFAULT);
  HB_H5(e, where, "cannot open %s", entry);
  if (!hb_h5_read_value_str(e, "title", in->title, sizeof in->title)) snprintf(in->title, sizeof in->title, "%s", c->name);
  hb_h5_read_value_str(e, "definition", definition, sizeof definition);
  H5Gclose(e);
  int stxm = !strcmp(definition, "NXstxm");
  /* the entry's scan metadata as original_metadata/<entry> (src/output/carry.c leaves the data out) */
  snprintf(in->original_group, sizeof in->original_group, "%s", entry);
  snprintf(in->original_as, sizeof in->original_as, "%s", entry + 1);
  hid_t g = H5Gopen2(file, c->group, H5P_DEFAULT);
  HB_H5(g, where, "cannot open %s", c->group);
  hid_t sig = H5Dopen2(file, c->dataset, H5P_DEFAULT);
  hb_nexus_axes(g, sig, in, stxm);
  if (sig >= 0) H5Dclose(sig);
  H5Gclose(g);
  return 0;
}

const hb_reader hb_reader_nexus = {
    .format = "nexus",
    .looks_for = "NeXus: a top-level group with NX_class = NXentry",
    .pick_key = "signal",
    .detect = detect,
    .list = list,
    .calibrate = calibrate,
};
