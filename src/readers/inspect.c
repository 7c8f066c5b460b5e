/* `hyperbatch inspect FILE`: what is in an .hspy or HDF5 file. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
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

/* ---- `hyperbatch init FILE`: a starter job from what inspect finds ---------- */

typedef struct {
  char names[16][256]; /* generic datasets of 2+ dimensions */
  int n;
  hsize_t size[16];
} candidates;

static herr_t collect_dataset(hid_t obj, const char *name, const H5O_info_t *info, void *data) {
  candidates *c = data;
  if (info->type != H5O_TYPE_DATASET || c->n >= 16) return 0;
  hid_t d = H5Dopen2(obj, name, H5P_DEFAULT), s = d >= 0 ? H5Dget_space(d) : -1;
  int nd = s >= 0 ? H5Sget_simple_extent_ndims(s) : 0;
  hsize_t dims[HB_MAXDIM + 1], n = 1;
  if (nd >= 2 && nd <= HB_MAXDIM) {
    H5Sget_simple_extent_dims(s, dims, NULL);
    for (int i = 0; i < nd; i++) n *= dims[i];
    snprintf(c->names[c->n], sizeof c->names[0], "/%s", name);
    c->size[c->n++] = n;
  }
  if (s >= 0) H5Sclose(s);
  if (d >= 0) H5Dclose(d);
  return 0;
}

/* A YAML double-quoted scalar: any path or name survives. */
static void print_quoted(const char *text) {
  putchar('"');
  for (const char *t = text; *t; t++) {
    if (*t == '"' || *t == '\\') putchar('\\');
    putchar(*t);
  }
  putchar('"');
}

/* The kernels a first look at a dataset wants, by its signal's dimension. */
static void print_kernels(const hb_input *in) {
  const hb_axis *sig = &in->axes[in->nav_dim];
  printf("kernels:\n");
  printf("  - {name: total, op: sum, axes: signal}            # one value per pattern\n");
  if (in->sig_dim == 1) {
    size_t n = (size_t)in->shape[in->nav_dim];
    double e1 = sig->offset + sig->scale * (double)(n / 3), e2 = sig->offset + sig->scale * (double)(2 * n / 3);
    printf("  - {name: mean_spectrum, op: mean, axes: navigation}\n");
    printf("  # an energy window, in the axis' units (%s): set it to an edge or a peak\n",
           sig->units[0] ? sig->units : "uncalibrated");
    printf("  - {name: window, op: virtual_image, detector: {shape: rectangle, x: [%g, %g], units: calibrated}}\n", e1,
           e2);
  } else if (in->sig_dim == 2) {
    long ky = (long)in->shape[in->nav_dim], kx = (long)in->shape[in->nav_dim + 1], m = ky < kx ? ky : kx;
    printf("  - {name: mean_pattern, op: mean, axes: navigation}\n");
    printf("  - {name: max_pattern, op: max, axes: navigation}\n");
    printf("  # detectors in pixels [x, y] of the %ld x %ld patterns, centred: move them to the\n", kx, ky);
    printf("  # direct beam as mean_pattern shows it\n");
    printf("  - {name: bf, op: virtual_image, detector: {shape: circle, center: [%ld, %ld], radius: %ld}}\n", kx / 2,
           ky / 2, m / 10 > 1 ? m / 10 : 1);
    printf("  - {name: adf, op: virtual_image, detector: {shape: annulus, center: [%ld, %ld], inner: %ld, outer: %ld}}\n",
           kx / 2, ky / 2, m / 6 > 1 ? m / 6 : 1, m / 2 - 1 > m / 6 ? m / 2 - 1 : m / 6 + 1);
  } else {
    printf("  - {name: mean_signal, op: mean, axes: navigation}\n");
  }
}

int hb_init_job(const char *path) {
  char full[PATH_MAX];
  HB_CHECK(realpath(path, full), HB_EINVALID, path, "no such file");
  hid_t f = H5Fopen(full, H5F_ACC_RDONLY, H5P_DEFAULT);
  HB_H5(f, path, "cannot open as HDF5: missing, truncated, corrupt or not HDF5");
  char fmt[64];
  hb_h5_read_attr_str(f, "file_format", fmt, sizeof fmt);
  int hspy = !strcmp(fmt, "HyperSpy") && H5Lexists(f, "/Experiments", H5P_DEFAULT) > 0;
  candidates c = {0};
  if (hspy) {
    hb_signal_names signals;
    hb_hspy_list_signals(f, &signals); /* /Experiments exists: checked above */
    for (int i = 0; i < signals.n; i++) snprintf(c.names[c.n++], sizeof c.names[0], "%s", signals.names[i]);
  } else {
    H5Ovisit2(f, H5_INDEX_NAME, H5_ITER_INC, collect_dataset, &c, H5O_INFO_BASIC);
  }
  int pick = 0; /* an .hspy file's first signal; the largest generic array */
  for (int i = 1; !hspy && i < c.n; i++)
    if (c.size[i] > c.size[pick]) pick = i;
  hb_input in;
  memset(&in, 0, sizeof in);
  in.file = f;
  in.dset = in.fspace = -1;
  int rc = 0;
  if (!c.n) {
    rc = HB_FAIL(HB_EINVALID, path, "%s", hspy ? "no signal in /Experiments" : "no dataset of 2 or more dimensions");
  } else {
    if (hspy) snprintf(in.dataset, sizeof in.dataset, "/Experiments/%s/data", c.names[pick]);
    else snprintf(in.dataset, sizeof in.dataset, "%s", c.names[pick]);
    rc = hb_input_describe(&in, path);
  }
  if (!rc) {
    if (hspy) {
      char group[600];
      snprintf(group, sizeof group, "/Experiments/%s", c.names[pick]);
      hid_t g = H5Gopen2(f, group, H5P_DEFAULT);
      hb_hspy_read_axes(g, in.ndim, in.shape, in.axes);
      H5Gclose(g);
      in.nav_dim = 0;
      for (int i = 0; i < in.ndim; i++) in.nav_dim += in.axes[i].navigate;
    } else {
      /* the job's default, or else one scan axis (written into the job as navigation_dimension) */
      in.nav_dim = hb_default_nav_dim(in.ndim) > 0 ? hb_default_nav_dim(in.ndim) : 1;
    }
    in.sig_dim = in.ndim - in.nav_dim;
    char stem[PATH_MAX], *base = strrchr(full, '/');
    snprintf(stem, sizeof stem, "%s", base ? base + 1 : full);
    char *dot = strrchr(stem, '.');
    if (dot && dot != stem) *dot = 0;
    printf("# A starter job for %s, from what `hyperbatch inspect` finds in it.\n", full);
    printf("# Edit it, then: hyperbatch validate job.yaml && mpirun -n 2 hyperbatch run job.yaml\n");
    printf("# Every op and parameter: hyperbatch kernels (docs/kernels.md).\n");
    printf("version: 1\ninput:\n  file: ");
    print_quoted(full);
    printf("\n");
    if (hspy && c.n > 1) {
      printf("  signal: ");
      print_quoted(c.names[pick]);
      printf("   # this file holds %d signals:", c.n);
      for (int i = 0; i < c.n; i++) printf(" %s", c.names[i]);
      printf("\n");
    }
    if (!hspy) {
      printf("  dataset: ");
      print_quoted(c.names[pick]);
      printf("   # the largest array; others:");
      for (int i = 0; i < c.n; i++)
        if (i != pick) printf(" %s", c.names[i]);
      printf("%s\n", c.n > 1 ? "" : " none");
      printf("  navigation_dimension: %d       # leading scan axes of (", in.nav_dim);
      print_dims(in.shape, 0, in.ndim);
      printf("); the rest is the signal\n");
      printf("  # axes: [{name: y, units: nm, scale: 1}, ...]   # the calibration, in array order\n");
    }
    char out[PATH_MAX + 32];
    snprintf(out, sizeof out, "results/%s_results.hspy", stem);
    printf("output:\n  file: ");
    print_quoted(out);
    printf("   # relative to this job's folder\n");
    print_kernels(&in);
    printf("run: {block: auto, progress: auto}\n");
  }
  if (in.fspace >= 0) H5Sclose(in.fspace);
  if (in.dset >= 0) H5Dclose(in.dset);
  H5Fclose(f);
  return rc;
}
