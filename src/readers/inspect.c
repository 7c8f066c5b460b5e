/* `hyperbatch inspect FILE`: what is in an .hspy or HDF5 file. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hb_engine.h"
#include "hb_error.h"
#include "hb_input.h"
#include "reader.h"

static void print_dims(const hsize_t *v, int lo, int hi) {
  for (int i = lo; i < hi; i++) printf("%s%llu", i > lo ? ", " : "", (unsigned long long)v[i]);
}

static void print_dataset(hb_input *in) {
  printf("  array shape  (");
  print_dims(in->shape, 0, in->ndim);
  if (in->file_dtype[0])
    printf(")  %s (read as %s)\n  chunks       ", in->file_dtype, hb_dtype_name(in->dtype));
  else
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

/* HyperSpy prints each group reversed: (nx, ny | kx, ky) */
static void print_hyperspy_shape(const hb_input *in) {
  int nav = in->nav_dim;
  printf("(");
  for (int i = nav - 1; i >= 0; i--) printf("%s%llu", i < nav - 1 ? ", " : "", (unsigned long long)in->shape[i]);
  printf("|");
  for (int i = in->ndim - 1; i >= nav; i--)
    printf("%s%llu", i < in->ndim - 1 ? ", " : " ", (unsigned long long)in->shape[i]);
  printf(")");
}

static void inspect_candidate(hid_t file, const char *format, const hb_candidate *c, int used, const char *path) {
  hb_input in;
  memset(&in, 0, sizeof in);
  in.dset = in.fspace = -1;
  int generic = !strcmp(format, "hdf5");
  printf("%s '%s'", generic ? "array" : "signal", c->name);
  if (!generic) printf("  (%s)", c->dataset);
  printf("%s\n", used ? "  <- a job uses this one" : "");
  if (hb_input_describe_candidate(file, format, c, &in, path)) {
    printf("  unreadable: %s\n", hb_error_what());
    hb_error_clear();
    hb_input_release_array(&in);
    return;
  }
  if (in.title[0]) printf("  title        %s\n", in.title);
  if (!generic) printf("  signal_type  '%s'\n", in.signal_type);
  print_dataset(&in);
  if (in.nav_dim >= 0 && in.nav_dim < in.ndim) {
    printf("  hyperspy     ");
    print_hyperspy_shape(&in);
    printf("%s\n", in.nav_dim ? "" : "  (a single pattern: a job reads it as a scan of one)");
  } else {
    printf("  navigation   not known: set input.navigation_dimension (leading scan axes)\n");
  }
  for (int i = 0; i < in.ndim; i++) {
    const hb_axis *a = &in.axes[i];
    printf("  axis-%d       %-12s size %-6llu scale %-10g offset %-10g units %-8s %s%s\n", i,
           a->name[0] ? a->name : "<unnamed>", (unsigned long long)a->size, a->scale, a->offset,
           a->units[0] ? a->units : "-", in.nav_dim < 0 ? "" : i < in.nav_dim ? "navigation" : "signal",
           a->points ? " (non-uniform: its own points; scale and offset are their line)" : "");
  }
  hb_input_release_array(&in);
}

static const char *format_label(const char *format) {
  return !strcmp(format, "hspy")    ? "HyperSpy"
         : !strcmp(format, "emd")   ? "EMD 1.0 (py4DSTEM)"
         : !strcmp(format, "nexus") ? "NeXus"
                                    : "HDF5";
}

int hb_inspect(const char *path) {
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  HB_H5(f, path, "cannot open as HDF5: missing, truncated, corrupt or not HDF5");
  const char *format = hb_input_detect(f);
  const hb_reader *r = hb_reader_named(format);
  printf("%s: %s file, input.format %s (detected: %s)\n", path, format_label(format), format, r->looks_for);
  hb_candidates c;
  int rc = hb_input_candidates(f, format, path, &c);
  if (!rc) {
    int pick = -1;
    if (hb_input_choose(&c, NULL, format, path, &pick)) {
      hb_error_clear();
      pick = -1;
    }
    const char *what = !strcmp(format, "hdf5") ? "array" : "signal";
    if (c.n == 0)
      printf("no %s of 2 to %d dimensions\n", what, HB_MAXDIM);
    else if (pick < 0)
      printf("%d %ss; a job picks one with input.%s\n", c.n, what, r->pick_key);
    for (int i = 0; i < c.n; i++) inspect_candidate(f, format, &c.items[i], i == pick, path);
    hb_candidates_free(&c);
  }
  H5Fclose(f);
  return rc;
}

/* ---- `hyperbatch init FILE`: a starter job from what inspect finds ---------- */

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
  if (hb_dtype_is_complex(in->dtype)) /* the ops below take real patterns */
    printf("preprocess:                 # complex data: the ops below see the amplitude (or part: phase, real, imag)\n"
           "  - {op: complex_part, part: amplitude}\n");
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

static hssize_t array_elements(hid_t file, const char *dataset) {
  hid_t d = H5Dopen2(file, dataset, H5P_DEFAULT), s = d >= 0 ? H5Dget_space(d) : -1;
  hssize_t n = s >= 0 ? H5Sget_simple_extent_npoints(s) : -1;
  if (s >= 0) H5Sclose(s);
  if (d >= 0) H5Dclose(d);
  return n;
}

int hb_init_job(const char *path) {
  char full[PATH_MAX];
  HB_CHECK(realpath(path, full), HB_EINVALID, path, "no such file");
  hid_t f = H5Fopen(full, H5F_ACC_RDONLY, H5P_DEFAULT);
  HB_H5(f, path, "cannot open as HDF5: missing, truncated, corrupt or not HDF5");
  const char *format = hb_input_detect(f);
  int generic = !strcmp(format, "hdf5");
  hb_candidates c;
  int rc = hb_input_candidates(f, format, path, &c);
  if (rc) {
    H5Fclose(f);
    return rc;
  }
  hb_input in;
  memset(&in, 0, sizeof in);
  in.dset = in.fspace = -1;
  int pick = 0; /* the first signal; the largest generic array */
  for (int i = 1; generic && i < c.n; i++)
    if (array_elements(f, c.items[i].dataset) > array_elements(f, c.items[pick].dataset)) pick = i;
  if (!c.n)
    rc = HB_FAIL(HB_EINVALID, path, "no %s of 2 to %d dimensions", generic ? "array" : "signal", HB_MAXDIM);
  else
    rc = hb_input_describe_candidate(f, format, &c.items[pick], &in, path);
  if (!rc) {
    /* the file's navigation, or else one scan axis (written into the job as navigation_dimension) */
    int nav_known = in.nav_dim >= 0 && in.nav_dim < in.ndim; /* 0: a single pattern */
    if (!nav_known) in.nav_dim = 1;
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
    if (!generic && c.n > 1) {
      printf("  signal: ");
      print_quoted(c.items[pick].name);
      printf("   # this file holds %d signals:", c.n);
      for (int i = 0; i < c.n; i++) printf(" %s", c.items[i].name);
      printf("\n");
    }
    if (generic) {
      printf("  dataset: ");
      print_quoted(c.items[pick].name);
      printf("   # the largest array; others:");
      for (int i = 0; i < c.n; i++)
        if (i != pick) printf(" %s", c.items[i].name);
      printf("%s\n", c.n > 1 ? "" : " none");
    }
    if (!nav_known) {
      printf("  navigation_dimension: %d       # leading scan axes of (", in.nav_dim);
      print_dims(in.shape, 0, in.ndim);
      printf("); the rest is the signal\n");
    }
    if (generic) printf("  # axes: [{name: y, units: nm, scale: 1}, ...]   # the calibration, in array order\n");
    char out[PATH_MAX + 32];
    snprintf(out, sizeof out, "results/%s_results.hspy", stem);
    printf("output:\n  file: ");
    print_quoted(out);
    printf("   # relative to this job's folder\n");
    print_kernels(&in);
    printf("run: {block: auto, progress: auto}\n");
  }
  hb_input_release_array(&in);
  hb_candidates_free(&c);
  H5Fclose(f);
  return rc;
}
