/* Reading HDF5 attributes of any file, hostile ones included. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hb_h5.h"

/* Open attribute `name` if it holds exactly one value: a hostile or odd file
 * may store an array where one value belongs, and reading that into one
 * value would overrun. */
static hid_t open_scalar_attr(hid_t obj, const char *name) {
  if (H5Aexists(obj, name) <= 0) return -1;
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  if (a < 0) return -1;
  hid_t sp = H5Aget_space(a);
  hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
  if (sp >= 0) H5Sclose(sp);
  if (n != 1) {
    H5Aclose(a);
    return -1;
  }
  return a;
}

/* One string, fixed or variable length, of an attribute or a dataset of
 * type t (holding one value) into buf. */
static herr_t read_as(hid_t obj, int is_attr, hid_t mem, void *dst) {
  return is_attr ? H5Aread(obj, mem, dst) : H5Dread(obj, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst);
}

static int read_one_string(hid_t obj, int is_attr, hid_t t, char *buf, size_t n) {
  int ok = 0;
  if (H5Tget_class(t) != H5T_STRING) return 0;
  if (H5Tis_variable_str(t) > 0) {
    char *s = NULL;
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, H5T_VARIABLE);
    H5Tset_cset(mt, H5Tget_cset(t));
    if (read_as(obj, is_attr, mt, &s) >= 0 && s) snprintf(buf, n, "%s", s), ok = 1;
    if (s) H5free_memory(s);
    H5Tclose(mt);
  } else {
    char *s = calloc(H5Tget_size(t) + 1, 1);
    if (s && read_as(obj, is_attr, t, s) >= 0) snprintf(buf, n, "%s", s), ok = 1;
    free(s);
  }
  return ok;
}

int hb_h5_read_attr_str(hid_t obj, const char *name, char *buf, size_t n) {
  buf[0] = 0;
  hid_t a = open_scalar_attr(obj, name);
  if (a < 0) return 0;
  hid_t t = H5Aget_type(a);
  int ok = read_one_string(a, 1, t, buf, n);
  H5Tclose(t);
  H5Aclose(a);
  return ok;
}

/* Numbers (integer or float) of an attribute or a dataset, as doubles. */
static int read_numbers(hid_t obj, int is_attr, double *out) {
  hid_t t = is_attr ? H5Aget_type(obj) : H5Dget_type(obj);
  H5T_class_t c = H5Tget_class(t);
  int ok = (c == H5T_INTEGER || c == H5T_FLOAT) && read_as(obj, is_attr, H5T_NATIVE_DOUBLE, out) >= 0;
  H5Tclose(t);
  return ok;
}

int hb_h5_read_attr_f64(hid_t obj, const char *name, double *out) {
  hid_t a = open_scalar_attr(obj, name);
  if (a < 0) return 0;
  int ok = read_numbers(a, 1, out);
  H5Aclose(a);
  return ok;
}

int hb_h5_read_attr_bool(hid_t obj, const char *name, int *out) {
  hid_t a = open_scalar_attr(obj, name);
  if (a < 0) return 0;
  hid_t t = H5Aget_type(a);
  int ok = 0;
  if (H5Tget_class(t) == H5T_ENUM && H5Tget_size(t) <= 8) {
    hid_t base = H5Tget_super(t);
    long long v = 0;
    unsigned char raw[8] = {0};
    if (H5Aread(a, t, raw) >= 0 && H5Tconvert(base, H5T_NATIVE_LLONG, 1, raw, NULL, H5P_DEFAULT) >= 0) {
      memcpy(&v, raw, sizeof v);
      *out = v != 0;
      ok = 1;
    }
    H5Tclose(base);
  } else if (H5Tget_class(t) == H5T_INTEGER) {
    int v;
    if (H5Aread(a, H5T_NATIVE_INT, &v) >= 0) *out = v != 0, ok = 1;
  }
  H5Tclose(t);
  H5Aclose(a);
  return ok;
}

hid_t hb_h5_open_group(hid_t obj, const char *path) {
  if (!path[0] || H5Lexists(obj, path, H5P_DEFAULT) <= 0) return -1; /* a missing parent fails: also absent */
  H5O_info_t info;
  if (H5Oget_info_by_name(obj, path, &info, H5P_DEFAULT) < 0 || info.type != H5O_TYPE_GROUP) return -1;
  return H5Gopen2(obj, path, H5P_DEFAULT);
}

/* Open dataset `path` of obj if it holds `want` values (any shape), else -1. */
static hid_t open_sized_dataset(hid_t obj, const char *path, hssize_t want) {
  if (H5Lexists(obj, path, H5P_DEFAULT) <= 0) return -1;
  H5O_info_t info;
  if (H5Oget_info_by_name(obj, path, &info, H5P_DEFAULT) < 0 || info.type != H5O_TYPE_DATASET) return -1;
  hid_t d = H5Dopen2(obj, path, H5P_DEFAULT);
  if (d < 0) return -1;
  hid_t sp = H5Dget_space(d);
  hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
  if (sp >= 0) H5Sclose(sp);
  if (n != want) {
    H5Dclose(d);
    return -1;
  }
  return d;
}

int hb_h5_read_value_str(hid_t obj, const char *path, char *buf, size_t n) {
  buf[0] = 0;
  hid_t d = open_sized_dataset(obj, path, 1);
  if (d < 0) return 0;
  hid_t t = H5Dget_type(d);
  int ok = read_one_string(d, 0, t, buf, n);
  H5Tclose(t);
  H5Dclose(d);
  return ok;
}

int hb_h5_read_value_f64(hid_t obj, const char *path, double *out) { return hb_h5_read_vector_f64(obj, path, 1, out); }

int hb_h5_read_vector_f64(hid_t obj, const char *path, size_t n, double *out) {
  hid_t d = open_sized_dataset(obj, path, (hssize_t)n);
  if (d < 0) return 0;
  int ok = read_numbers(d, 0, out);
  H5Dclose(d);
  return ok;
}

double *hb_h5_read_vector_new(hid_t obj, const char *path, size_t n) {
  hid_t d = open_sized_dataset(obj, path, (hssize_t)n);
  if (d < 0) return NULL;
  double *v = malloc(n * sizeof *v);
  if (v && !read_numbers(d, 0, v)) free(v), v = NULL;
  H5Dclose(d);
  return v;
}

int hb_h5_read_attr_strs(hid_t obj, const char *name, char (*out)[64], int max) {
  if (H5Aexists(obj, name) <= 0) return 0;
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  if (a < 0) return 0;
  hid_t sp = H5Aget_space(a), t = H5Aget_type(a);
  hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
  int got = 0;
  if (n >= 1 && n <= max && H5Tget_class(t) == H5T_STRING) {
    if (H5Tis_variable_str(t) > 0) {
      char **s = calloc((size_t)n, sizeof *s);
      hid_t mt = H5Tcopy(H5T_C_S1);
      H5Tset_size(mt, H5T_VARIABLE);
      H5Tset_cset(mt, H5Tget_cset(t));
      if (s && H5Aread(a, mt, s) >= 0) {
        for (hssize_t i = 0; i < n; i++) snprintf(out[i], 64, "%s", s[i] ? s[i] : "");
        H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, s);
        got = (int)n;
      }
      H5Tclose(mt);
      free(s);
    } else {
      size_t sz = H5Tget_size(t);
      char *s = calloc((size_t)n, sz + 1);
      if (s && H5Aread(a, t, s) >= 0) {
        for (hssize_t i = 0; i < n; i++) {
          size_t len = strnlen(s + (size_t)i * sz, sz);
          snprintf(out[i], 64, "%.*s", (int)len, s + (size_t)i * sz);
        }
        got = (int)n;
      }
      free(s);
    }
  }
  if (sp >= 0) H5Sclose(sp);
  H5Tclose(t);
  H5Aclose(a);
  return got;
}
