/* py4DSTEM's EMD 1.0 files (emdfile): every DataCube under the file's roots,
 * calibrated from its root's Calibration metadata (docs/job-format.md
 * "Input formats"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hb_error.h"
#include "hb_h5.h"
#include "reader.h"

static int group_type_is(hid_t obj, const char *want) {
  char t[64];
  return hb_h5_read_attr_str(obj, "emd_group_type", t, sizeof t) && !strcmp(t, want);
}

static herr_t any_root(hid_t file, const char *name, const H5L_info_t *info, void *data) {
  (void)info;
  H5O_info_t oi;
  if (H5Oget_info_by_name(file, name, &oi, H5P_DEFAULT) < 0 || oi.type != H5O_TYPE_GROUP) return 0;
  hid_t g = H5Gopen2(file, name, H5P_DEFAULT);
  int yes = g >= 0 && group_type_is(g, "root");
  if (g >= 0) H5Gclose(g);
  *(int *)data |= yes;
  return yes; /* stop at the first */
}

/* emdfile's own test: the file's header, and a root group below it. */
static int detect(hid_t file) {
  double major = -1;
  if (!group_type_is(file, "file") || !hb_h5_read_attr_f64(file, "version_major", &major) || major != 1) return 0;
  int roots = 0;
  H5Literate(file, H5_INDEX_NAME, H5_ITER_INC, NULL, any_root, &roots);
  return roots;
}

typedef struct {
  const char *root;
  hb_candidates *out;
  int failed;
} walk;

static herr_t collect_datacube(hid_t root, const char *name, const H5O_info_t *info, void *data) {
  walk *w = data;
  if (info->type != H5O_TYPE_GROUP || strstr(name, "metadatabundle")) return 0;
  hid_t g = H5Gopen2(root, name, H5P_DEFAULT);
  if (g < 0) return 0;
  char cls[64] = "";
  int cube = group_type_is(g, "array") && hb_h5_read_attr_str(g, "python_class", cls, sizeof cls) &&
             !strcmp(cls, "DataCube") && H5Lexists(g, "data", H5P_DEFAULT) > 0;
  H5Gclose(g);
  if (!cube) return 0;
  char cand[256], dataset[512], group[512];
  snprintf(cand, sizeof cand, "%s/%s", w->root, name);
  snprintf(group, sizeof group, "/%s/%s", w->root, name);
  snprintf(dataset, sizeof dataset, "/%s/%s/data", w->root, name);
  if (hb_candidates_add(w->out, cand, dataset, group)) return w->failed = 1, -1;
  return 0;
}

static herr_t each_root(hid_t file, const char *name, const H5L_info_t *info, void *data) {
  (void)info;
  H5O_info_t oi;
  if (H5Oget_info_by_name(file, name, &oi, H5P_DEFAULT) < 0 || oi.type != H5O_TYPE_GROUP) return 0;
  hid_t g = H5Gopen2(file, name, H5P_DEFAULT);
  if (g < 0) return 0;
  herr_t e = 0;
  if (group_type_is(g, "root")) {
    walk w = {name, data, 0};
    e = H5Ovisit2(g, H5_INDEX_NAME, H5_ITER_INC, collect_datacube, &w, H5O_INFO_BASIC);
    if (w.failed) e = -1;
  }
  H5Gclose(g);
  return e < 0 ? -1 : 0;
}

static int list(hid_t file, const char *where, hb_candidates *out) {
  HB_CHECK(H5Literate(file, H5_INDEX_NAME, H5_ITER_INC, NULL, each_root, out) >= 0, HB_EIO, where,
           "cannot list the EMD file's datacubes");
  return 0;
}

/* py4DSTEM's units, in HyperSpy's spelling; "pixels" is an uncalibrated axis. */
static void hyperspy_units(const char *emd, char *out, size_t n) {
  if (!strcmp(emd, "A")) snprintf(out, n, "Å");
  else if (!strcmp(emd, "A^-1")) snprintf(out, n, "1/Å");
  else if (!strcmp(emd, "pixels")) out[0] = 0;
  else snprintf(out, n, "%s", emd);
}

/* The data axes are (Rx, Ry, Qx, Qy): R is the scan, Q the diffraction
 * pattern.  py4DSTEM takes the calibration from the root's Calibration
 * metadata and rebuilds the dim vectors from it on reading, so the pixel
 * sizes and units come from there; each axis' origin is its dim vector's
 * first value (the Q origin py4DSTEM subtracted when it saved). */
static int calibrate(hid_t file, const hb_candidate *c, hb_input *in, const char *where) {
  hb_axes_plain(in);
  /* a stack of datacubes (slicelabels) adds a 5th axis of labels: the job says its navigation */
  in->nav_dim = in->ndim == 4 ? 2 : -1;
  const char *slash = strchr(c->name, '/');
  snprintf(in->title, sizeof in->title, "%s", strrchr(c->name, '/') ? strrchr(c->name, '/') + 1 : c->name);
  char cal[600];
  snprintf(cal, sizeof cal, "/%.*s/metadatabundle/calibration", slash ? (int)(slash - c->name) : (int)strlen(c->name),
           c->name);
  /* py4DSTEM's calibration (and whatever else it keeps there) as original_metadata/calibration */
  snprintf(in->original_group, sizeof in->original_group, "%s", cal);
  snprintf(in->original_as, sizeof in->original_as, "calibration");
  hid_t g = H5Gopen2(file, c->group, H5P_DEFAULT);
  HB_H5(g, where, "cannot open %s", c->group);
  hid_t k = H5Lexists(file, cal, H5P_DEFAULT) > 0 ? H5Gopen2(file, cal, H5P_DEFAULT) : -1;
  for (int i = 0; i < in->ndim; i++) {
    hb_axis *ax = &in->axes[i];
    char dim[16], units[64] = "";
    snprintf(dim, sizeof dim, "dim%d", i);
    hid_t d = H5Lexists(g, dim, H5P_DEFAULT) > 0 ? H5Dopen2(g, dim, H5P_DEFAULT) : -1;
    if (d >= 0) {
      hb_h5_read_attr_str(d, "name", ax->name, sizeof ax->name);
      hb_h5_read_attr_str(d, "units", units, sizeof units);
      H5Dclose(d);
    }
    /* a dim vector is every point, or its first two when linear */
    double two[2];
    if (hb_h5_read_vector_f64(g, dim, 2, two) || (in->shape[i] == 1 && hb_h5_read_vector_f64(g, dim, 1, two))) {
      ax->offset = two[0];
      if (in->shape[i] > 1) ax->scale = two[1] - two[0];
    } else if (in->shape[i] > 2) {
      double *pts = hb_h5_read_vector_new(g, dim, in->shape[i]);
      if (pts) hb_axis_from_points(ax, pts, in->shape[i]);
    }
    if (k >= 0 && in->ndim == 4) {
      int q = i >= 2;
      double size;
      char u[64];
      if (hb_h5_read_value_f64(k, q ? "Q_pixel_size" : "R_pixel_size", &size)) ax->scale = size;
      if (hb_h5_read_value_str(k, q ? "Q_pixel_units" : "R_pixel_units", u, sizeof u)) snprintf(units, sizeof units, "%s", u);
    }
    hyperspy_units(units, ax->units, sizeof ax->units);
  }
  if (k >= 0) H5Gclose(k);
  H5Gclose(g);
  return 0;
}

const hb_reader hb_reader_emd = {
    .format = "emd",
    .looks_for = "EMD 1.0: root attributes emd_group_type = file and version_major = 1, and a root group",
    .pick_key = "signal",
    .detect = detect,
    .list = list,
    .calibrate = calibrate,
};
