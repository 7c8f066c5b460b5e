/* Any HDF5 array: the job names it (input.dataset) and says its calibration
 * (input.axes) and its navigation axes (input.navigation_dimension, or the
 * default by dimension). */
#include <stdio.h>
#include <string.h>

#include "hb_error.h"
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

static int calibrate(hid_t file, const hb_candidate *c, hb_input *in, const char *where) {
  (void)file, (void)c, (void)where;
  hb_axes_plain(in);
  in->nav_dim = hb_default_nav_dim(in->ndim);
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
