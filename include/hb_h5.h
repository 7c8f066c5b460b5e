/* HDF5 attribute and metadata-tree helpers, HyperSpy's way of storing
 * values (docs/hspy-format.md "How values are stored"). */
#ifndef HB_H5_H
#define HB_H5_H

#include <hdf5.h>

/* ---- reading: 1 if read, 0 if absent or not of that kind ---------------- */
/* A string attribute (fixed or variable length) into buf. */
int hb_h5_read_attr_str(hid_t obj, const char *name, char *buf, size_t n);
/* A scalar integer or float attribute as a double. */
int hb_h5_read_attr_f64(hid_t obj, const char *name, double *out);
/* A boolean: h5py's enum over int8, or a plain integer. */
int hb_h5_read_attr_bool(hid_t obj, const char *name, int *out);
/* A string attribute of one or more values (NeXus @axes), each cut to 63
 * bytes; how many, 0 if absent, not strings, or more than `max`. */
int hb_h5_read_attr_strs(hid_t obj, const char *name, char (*out)[64], int max);
/* A dataset at `path` under obj holding one value (scalar, or an array of
 * one as NeXus writers store them): a string, or a number as a double. */
int hb_h5_read_value_str(hid_t obj, const char *path, char *buf, size_t n);
int hb_h5_read_value_f64(hid_t obj, const char *path, double *out);
/* The group at `path` under obj (any depth), or -1 when there is none. */
hid_t hb_h5_open_group(hid_t obj, const char *path);
/* A numeric dataset of exactly n values, as doubles. */
int hb_h5_read_vector_f64(hid_t obj, const char *path, size_t n, double *out);
/* The same into a new array (the caller frees it, or hands it to
 * hb_axis_from_points); NULL if absent or of another size.  Nothing is
 * allocated before the dataset is seen to hold n values: n comes from the
 * data's own shape, which a corrupt header can make absurd. */
double *hb_h5_read_vector_new(hid_t obj, const char *path, size_t n);

/* ---- writing (src/output/hspy_write.c) ----------------------------------- */
/* `path` may contain '/' and intermediate groups are created as needed. */
hid_t hb_h5_group(hid_t parent, const char *path); /* open or create; <0 on error */
int hb_h5_attr_str(hid_t obj, const char *name, const char *value);
int hb_h5_attr_i64(hid_t obj, const char *name, long long value);
int hb_h5_attr_f64(hid_t obj, const char *name, double value);
int hb_h5_attr_bool(hid_t obj, const char *name, int value);
/* A string list as `_list_<N>_<key>` group (or `_list_empty_<key>`). */
int hb_h5_str_list(hid_t obj, const char *key, char *const *items, int n);
/* A float64 array stored as a dataset named `key`.  In a parallel file every
 * rank calls it (collective) and rank 0 supplies the data. */
int hb_h5_array_f64(hid_t obj, const char *key, int ndim, const hsize_t *shape, const double *data);
/* All of dataset d from `data` (of mem_type); in a parallel file every rank
 * calls it (collective) and rank 0's data is written. */
int hb_h5_write_whole(hid_t d, hid_t mem_type, const void *data);

#endif
