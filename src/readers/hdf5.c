/* Any HDF5 array: the job names it (input.dataset) and its navigation axes
 * (input.navigation_dimension, or the default by dimension).  Calibration
 * comes from what the file records beside the array (dimension scales,
 * dimension labels, NeXus-style @axes), and input.axes overrides it. */
#include <hdf5_hl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hb_error.h"
#include "hb_h5.h"
#include "reader.h"

static int detect(hid_t file) {
  (void)file;
  return 1;
}

static herr_t collect_dataset(hid_t obj, const char *name, const H5O_info_t *info, void *data) {
  if (info->type != H5O_TYPE_DATASET) return 0;
  hid_t d = H5Dopen2(obj, name, H5P_DEFAULT), s = d >= 0 ? H5Dget_space(d) : -1;
  int nd = s >= 0 ? H5Sget_simple_extent_ndims(s) : 0;
  if (s >= 0) H5Sclose(s);
  if (d >= 0) H5Dclose(d);
  if (nd < 2 || nd > HB_MAXDIM) return 0;
  char path[512];
  snprintf(path, sizeof path, "/%s", name);
  return hb_candidates_add(data, path, path, "") ? -1 : 0;
}

static int list(hid_t file, const char *where, hb_candidates *out) {
  HB_CHECK(H5Ovisit2(file, H5_INDEX_NAME, H5_ITER_INC, collect_dataset, out, H5O_INFO_BASIC) >= 0, HB_EIO, where,
           "cannot list the file's datasets");
  return 0;
}

int hb_default_nav_dim(int ndim) { return ndim == 4 ? 2 : ndim == 2 ? 1 : ndim == 1 ? 0 : -1; }

typedef struct {
  hid_t file;
  hb_axis *axis;
  hsize_t size;
} scale_target;

/* The first scale attached to a dimension: its name (@NAME, else the
 * dataset's own), @units, and its values when they are one per index. */
static herr_t first_scale(hid_t dset, unsigned dim, hid_t scale, void *data) {
  (void)dset, (void)dim;
  scale_target *t = data;
  char path[1024] = "", name[256] = "";
  H5Iget_name(scale, path, sizeof path);
  if (H5DSget_scale_name(scale, name, sizeof name) <= 0 || !name[0]) {
    const char *slash = strrchr(path, '/');
    snprintf(name, sizeof name, "%s", slash ? slash + 1 : path);
  }
  snprintf(t->axis->name, sizeof t->axis->name, "%s", name);
  hb_h5_read_attr_str(scale, "units", t->axis->units, sizeof t->axis->units);
  double *pts = path[0] ? hb_h5_read_vector_new(t->file, path, t->size) : NULL;
  if (pts) hb_axis_from_points(t->axis, pts, t->size);
  return 1; /* the first one only */
}

/* h5py's dims[i].attach_scale (netCDF-4's coordinate variables are the
 * same) and dims[i].label; 1 if any dimension had either. */
static int from_dimension_scales(hid_t file, hb_input *in) {
  int any = 0;
  for (int i = 0; i < in->ndim; i++) {
    char label[64] = "";
    if (H5DSget_label(in->dset, (unsigned)i, label, sizeof label) > 0 && label[0])
      snprintf(in->axes[i].name, sizeof in->axes[i].name, "%s", label), any = 1;
    if (H5DSget_num_scales(in->dset, (unsigned)i) > 0) {
      scale_target t = {file, &in->axes[i], in->shape[i]};
      H5DSiterate_scales(in->dset, (unsigned)i, NULL, first_scale, &t);
      any = 1;
    }
  }
  return any;
}

/* An NXdata group without NeXus' NXentry around it: the array's group
 * names it in @signal (or the array carries signal = 1 or its own @axes),
 * and @axes names one dataset per dimension. */
static void from_group_axes(hid_t file, hb_input *in) {
  char group[4096], sig[256] = "";
  snprintf(group, sizeof group, "%s", in->dataset);
  char *slash = strrchr(group, '/');
  const char *base = slash ? slash + 1 : group;
  char name[256];
  snprintf(name, sizeof name, "%.255s", base);
  if (slash == group) snprintf(group, sizeof group, "/");
  else if (slash) *slash = 0;
  hid_t g = H5Gopen2(file, group, H5P_DEFAULT);
  if (g < 0) return;
  double flag = 0;
  int mine = (hb_h5_read_attr_str(g, "signal", sig, sizeof sig) && !strcmp(sig, name) &&
              H5Aexists(g, "axes") > 0) ||
             H5Aexists(in->dset, "axes") > 0 ||
             (hb_h5_read_attr_f64(in->dset, "signal", &flag) && flag == 1 && H5Aexists(g, "axes") > 0);
  if (mine) hb_nexus_axes(g, in->dset, in, 0);
  H5Gclose(g);
}

static int calibrate(hid_t file, const hb_candidate *c, hb_input *in, const char *where) {
  (void)c, (void)where;
  hb_axes_plain(in);
  in->nav_dim = hb_default_nav_dim(in->ndim);
  H5E_BEGIN_TRY { /* the H5DS calls report "no such attribute" as errors */
    if (!from_dimension_scales(file, in)) from_group_axes(file, in);
  }
  H5E_END_TRY;
  return 0;
}

const hb_reader hb_reader_hdf5 = {
    .format = "hdf5",
    .looks_for = "any HDF5 file; the job names the array with input.dataset",
    .pick_key = "dataset",
    .detect = detect,
    .list = list,
    .calibrate = calibrate,
};
