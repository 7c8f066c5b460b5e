/* `hyperbatch inspect FILE`: what is in an .hspy or HDF5 file. */
#include <stdio.h>
#include <string.h>

#include "hb_engine.h"
#include "hb_error.h"
#include "hb_hspy.h"

static void print_dims(const hsize_t *v, int lo, int hi) {
  for (int i = lo; i < hi; i++) printf("%s%llu", i > lo ? ", " : "", (unsigned long long)v[i]);
}

static void print_dataset(hb_input *in) {
  printf("  array shape  (");
  print_dims(in->shape, 0, in->ndim);
  printf(")  %s\n  chunks       ", hb_dtype_name(in->dtype));
  if (in->chunked) {
    printf("(");
    print_dims(in->chunk, 0, in->ndim);
    printf(")");
  } else {
    printf("contiguous");
  }
  printf("  filters %s\n", in->filters);
}

static int inspect_signal(hid_t file, const char *name, const char *path) {
  hb_input in;
  memset(&in, 0, sizeof in);
  in.file = file;
  in.dset = in.fspace = -1;
  snprintf(in.dataset, sizeof in.dataset, "/Experiments/%s/data", name);
  printf("signal '%s'  (%s)\n", name, in.dataset);
  int rc = hb_input_describe(&in, path);
  if (rc) {
    printf("  unreadable: %s\n", hb_error_what());
    hb_error_clear();
    if (in.fspace >= 0) H5Sclose(in.fspace);
    if (in.dset >= 0) H5Dclose(in.dset);
    return rc;
  }
  char group[600];
  snprintf(group, sizeof group, "/Experiments/%s", name);
  hid_t g = H5Gopen2(file, group, H5P_DEFAULT);
  hb_hspy_read_axes(g, in.ndim, in.shape, in.axes);
  char meta[700], title[256] = "", stype[64] = "";
  snprintf(meta, sizeof meta, "%s/metadata/General", group);
  if (H5Lexists(file, meta, H5P_DEFAULT) > 0) {
    hid_t m = H5Gopen2(file, meta, H5P_DEFAULT);
    hb_h5_read_attr_str(m, "title", title, sizeof title);
    H5Gclose(m);
  }
  snprintf(meta, sizeof meta, "%s/metadata/Signal", group);
  if (H5Lexists(file, meta, H5P_DEFAULT) > 0) {
    hid_t m = H5Gopen2(file, meta, H5P_DEFAULT);
    hb_h5_read_attr_str(m, "signal_type", stype, sizeof stype);
    H5Gclose(m);
  }
  H5Gclose(g);
  int nav = 0;
  for (int i = 0; i < in.ndim; i++) nav += in.axes[i].navigate;
  if (title[0]) printf("  title        %s\n", title);
  printf("  signal_type  '%s'\n", stype);
  print_dataset(&in);
  /* HyperSpy prints each group reversed: (nx, ny | kx, ky) */
  printf("  hyperspy     (");
  for (int i = nav - 1; i >= 0; i--) printf("%s%llu", i < nav - 1 ? ", " : "", (unsigned long long)in.shape[i]);
  printf("|");
  for (int i = in.ndim - 1; i >= nav; i--)
    printf("%s%llu", i < in.ndim - 1 ? ", " : " ", (unsigned long long)in.shape[i]);
  printf(")\n");
  for (int i = 0; i < in.ndim; i++) {
    const hb_axis *a = &in.axes[i];
    printf("  axis-%d       %-12s size %-6llu scale %-10g offset %-10g units %-8s %s\n", i,
           a->name[0] ? a->name : "<unnamed>", (unsigned long long)a->size, a->scale, a->offset,
           a->units[0] ? a->units : "-", a->navigate ? "navigation" : "signal");
  }
  H5Sclose(in.fspace);
  H5Dclose(in.dset);
  return 0;
}

struct ctx {
  hid_t file;
  const char *path;
};

static herr_t each_signal(hid_t g, const char *name, const H5L_info_t *info, void *data) {
  (void)info;
  char sub[300];
  snprintf(sub, sizeof sub, "%s/data", name);
  if (H5Lexists(g, sub, H5P_DEFAULT) > 0) {
    const struct ctx *c = data;
    inspect_signal(c->file, name, c->path);
  }
  return 0;
}

static herr_t each_dataset(hid_t obj, const char *name, const H5O_info_t *info, void *data) {
  if (info->type != H5O_TYPE_DATASET) return 0;
  hb_input in;
  memset(&in, 0, sizeof in);
  in.file = obj;
  in.dset = in.fspace = -1;
  snprintf(in.dataset, sizeof in.dataset, "/%s", name);
  printf("dataset /%s\n", name);
  if (hb_input_describe(&in, (const char *)data)) {
    printf("  %s\n", hb_error_what());
    hb_error_clear();
  } else {
    print_dataset(&in);
  }
  if (in.fspace >= 0) H5Sclose(in.fspace);
  if (in.dset >= 0) H5Dclose(in.dset);
  return 0;
}

int hb_inspect(const char *path) {
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  HB_H5(f, path, "cannot open as HDF5: missing, truncated, corrupt or not HDF5");
  char fmt[64], ver[64];
  hb_h5_read_attr_str(f, "file_format", fmt, sizeof fmt);
  hb_h5_read_attr_str(f, "file_format_version", ver, sizeof ver);
  if (!strcmp(fmt, "HyperSpy") && H5Lexists(f, "/Experiments", H5P_DEFAULT) > 0) {
    printf("%s: HyperSpy file, format %s\n", path, ver);
    hid_t ex = H5Gopen2(f, "/Experiments", H5P_DEFAULT);
    struct ctx c = {f, path};
    H5Literate(ex, H5_INDEX_NAME, H5_ITER_INC, NULL, each_signal, &c);
    H5Gclose(ex);
  } else {
    printf("%s: HDF5 file (not HyperSpy); every dataset:\n", path);
    H5Ovisit2(f, H5_INDEX_NAME, H5_ITER_INC, each_dataset, (void *)path, H5O_INFO_BASIC);
  }
  H5Fclose(f);
  return 0;
}
