/* Writing HyperSpy .hspy files (format 3.1) and their metadata trees, serial
 * or collectively through MPI-IO.  The rules are in hspy-notes.md. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hb_error.h"
#include "hb_h5.h"
#include "hb_hspy.h"

/* ---- errors ------------------------------------------------------------- */

/* Records an HDF5 failure as "<file>: <what> (<HDF5 detail>)".  Call it
 * before closing any id: every HDF5 API call clears the error stack. */
static int h5fail(hid_t obj, const char *src, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int h5fail(hid_t obj, const char *src, int line, const char *fmt, ...) {
  char detail[256], what[512], file[1024] = "HDF5";
  snprintf(detail, sizeof detail, "%s", hb_h5_error_text());
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  if (obj < 0 || H5Fget_name(obj, file, sizeof file) < 0) snprintf(file, sizeof file, "HDF5");
  return hb_error_raise(HB_EIO, src, line, file, "%s (%s)", what, detail);
}
#define H5FAIL(obj, ...) h5fail((obj), __FILE__, __LINE__, __VA_ARGS__)

/* Path of an object inside its file, for messages. */
static const char *obj_path(hid_t obj, char *buf, size_t n) {
  if (H5Iget_name(obj, buf, n) <= 0) snprintf(buf, n, "?");
  return buf;
}

/* ---- parallel detection ------------------------------------------------- */

/* H5Fget_mpi_atomicity succeeds only on MPI-IO files, and unlike
 * H5Fget_access_plist it does not copy the access properties (which dups
 * the file's communicator: a tenth of creating a signal). */
static int is_parallel(hid_t obj) {
  hid_t f = H5Iget_file_id(obj);
  hbool_t atomic;
  int par = f >= 0 && H5Fget_mpi_atomicity(f, &atomic) >= 0;
  if (f >= 0) H5Fclose(f);
  return par;
}

/* Rank in the file's communicator (collective: H5Pget_fapl_mpio dups it). */
static int file_rank(hid_t obj) {
  int rank = 0;
  hid_t f = H5Iget_file_id(obj);
  hid_t fapl = f < 0 ? -1 : H5Fget_access_plist(f);
  MPI_Comm comm = MPI_COMM_NULL;
  MPI_Info info = MPI_INFO_NULL;
  if (fapl >= 0 && H5Pget_fapl_mpio(fapl, &comm, &info) >= 0) {
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_free(&comm);
    if (info != MPI_INFO_NULL) MPI_Info_free(&info);
  }
  if (fapl >= 0) H5Pclose(fapl);
  if (f >= 0) H5Fclose(f);
  return rank;
}

/* ---- attributes --------------------------------------------------------- */

/* Create scalar attribute `name` of `type` on obj; `space` is a scalar
 * dataspace or -1 to make one. */
static int create_attr(hid_t obj, const char *name, hid_t type, hid_t space, const void *val) {
  hid_t sp = space >= 0 ? space : H5Screate(H5S_SCALAR);
  hid_t a = sp < 0 ? -1 : H5Acreate2(obj, name, type, sp, H5P_DEFAULT, H5P_DEFAULT);
  herr_t rc = a < 0 ? -1 : H5Awrite(a, type, val);
  char path[512];
  int err = rc < 0 ? H5FAIL(obj, "cannot write attribute '%s' of %s", name, obj_path(obj, path, sizeof path)) : 0;
  if (a >= 0) H5Aclose(a);
  if (sp >= 0 && space < 0) H5Sclose(sp);
  return err;
}

/* Scalar attribute of `type`, replacing an existing one of the same name. */
static int attr_scalar(hid_t obj, const char *name, hid_t type, const void *val) {
  htri_t ex = type < 0 ? -1 : H5Aexists(obj, name);
  if (ex < 0 || (ex > 0 && H5Adelete(obj, name) < 0)) {
    char path[512];
    return H5FAIL(obj, "cannot write attribute '%s' of %s", name, obj_path(obj, path, sizeof path));
  }
  return create_attr(obj, name, type, -1, val);
}

/* Variable-length UTF-8 string, as h5py writes str. */
static hid_t str_type(void) {
  hid_t t = H5Tcopy(H5T_C_S1);
  if (t >= 0 && (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0)) {
    H5Tclose(t);
    return -1;
  }
  return t;
}

/* h5py's bool: enum over int8 with FALSE = 0, TRUE = 1. */
static hid_t bool_type(void) {
  hid_t t = H5Tenum_create(H5T_NATIVE_INT8);
  int8_t f = 0, tr = 1;
  if (t >= 0 && (H5Tenum_insert(t, "FALSE", &f) < 0 || H5Tenum_insert(t, "TRUE", &tr) < 0)) {
    H5Tclose(t);
    return -1;
  }
  return t;
}

int hb_h5_attr_str(hid_t obj, const char *name, const char *value) {
  hid_t t = str_type();
  const char *v = value ? value : "_None_"; /* None, as HyperSpy stores it */
  int rc = attr_scalar(obj, name, t, &v);
  if (t >= 0) H5Tclose(t);
  return rc;
}

int hb_h5_attr_i64(hid_t obj, const char *name, long long value) {
  int64_t v = value;
  return attr_scalar(obj, name, H5T_NATIVE_INT64, &v);
}

int hb_h5_attr_f64(hid_t obj, const char *name, double value) {
  return attr_scalar(obj, name, H5T_NATIVE_DOUBLE, &value);
}

int hb_h5_attr_bool(hid_t obj, const char *name, int value) {
  hid_t t = bool_type();
  int8_t v = value ? 1 : 0;
  int rc = attr_scalar(obj, name, t, &v);
  if (t >= 0) H5Tclose(t);
  return rc;
}

/* ---- groups ------------------------------------------------------------- */

/* No timestamps in object headers, so equal inputs give equal files. */
static hid_t untimed_plist(hid_t cls) {
  hid_t p = H5Pcreate(cls);
  if (p >= 0 && H5Pset_obj_track_times(p, 0) < 0) {
    H5Pclose(p);
    return -1;
  }
  return p;
}

hid_t hb_h5_group(hid_t parent, const char *path) {
  char buf[1024], *save = NULL;
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
    HB_FAIL(HB_EIO, "HDF5", "group path too long: %.64s...", path);
    return -1;
  }
  hid_t gcpl = untimed_plist(H5P_GROUP_CREATE);
  hid_t cur = gcpl < 0 ? -1 : H5Gopen2(parent, ".", H5P_DEFAULT); /* an id we may close */
  if (cur < 0) H5FAIL(parent, "cannot open a group to create '%s' in", path);
  for (char *tok = strtok_r(buf, "/", &save); tok && cur >= 0; tok = strtok_r(NULL, "/", &save)) {
    htri_t ex = H5Lexists(cur, tok, H5P_DEFAULT);
    hid_t next = ex > 0    ? H5Gopen2(cur, tok, H5P_DEFAULT)
                 : ex == 0 ? H5Gcreate2(cur, tok, H5P_DEFAULT, gcpl, H5P_DEFAULT)
                           : -1;
    char where[512];
    if (next < 0) H5FAIL(cur, "cannot open or create group '%s' in %s", tok, obj_path(cur, where, sizeof where));
    H5Gclose(cur);
    cur = next;
  }
  if (gcpl >= 0) H5Pclose(gcpl);
  return cur;
}

int hb_h5_str_list(hid_t obj, const char *key, char *const *items, int n) {
  char name[512];
  if (n <= 0) {
    snprintf(name, sizeof name, "_list_empty_%s", key);
    return hb_h5_attr_str(obj, name, "_None_");
  }
  snprintf(name, sizeof name, "_list_%d_%s", n, key);
  hid_t g = hb_h5_group(obj, name);
  if (g < 0) return hb_error_trace(HB_EIO, __FILE__, __LINE__);
  /* Readers sort the item names as strings: zero-pad so "10" follows "09". */
  int width = snprintf(NULL, 0, "%d", n - 1), rc = 0;
  for (int i = 0; i < n && !rc; i++) {
    char idx[16];
    snprintf(idx, sizeof idx, "%0*d", width, i);
    rc = hb_h5_attr_str(g, idx, items[i]);
  }
  H5Gclose(g);
  return rc;
}

/* ---- datasets ----------------------------------------------------------- */

void hb_hspy_default_chunks(int ndim, const hsize_t *shape, int nav_dim, size_t elem_size,
                            hsize_t *chunk) {
  /* hyperspy.io_plugins._hierarchical.get_signal_chunks, target 1e6 bytes. */
  unsigned long long sig_bytes = elem_size, nsig = 1;
  for (int i = 0; i < ndim; i++) {
    chunk[i] = shape[i];
    if (i < nav_dim) nsig *= shape[i];
    else sig_bytes *= shape[i];
  }
  unsigned long long n = sig_bytes ? 1000000ULL / sig_bytes : 0; /* whole signals per chunk */
  if (n < 2 || nav_dim == 0) {
    for (int i = 0; i < nav_dim; i++) chunk[i] = 1;
    return;
  }
  /* HyperSpy tests n > nsig; at n == nsig its loop below still gives the
   * whole array unless pow() rounds down, e.g. 64 ** (1/3) -> 3. */
  if (n > nsig) return; /* everything fits in one chunk */
  /* n ** (1/d) per axis; an axis shorter than that keeps its length and the
   * rest share what is left (HyperSpy's loop, including its float pow). */
  int small[HB_MAXDIM] = {0}, nsmall = 0;
  double small_prod = 1;
  hsize_t c;
  for (int again = 1; again;) {
    again = 0;
    c = (hsize_t)floor(pow((double)n / small_prod, 1.0 / (nav_dim - nsmall)));
    for (int i = 0; i < nav_dim; i++)
      if (!small[i] && shape[i] < c) {
        small[i] = 1;
        small_prod *= (double)shape[i];
        nsmall++;
        again = 1;
      }
  }
  for (int i = 0; i < nav_dim; i++)
    if (!small[i]) chunk[i] = c;
}

/* Dataset creation properties shared by every dataset we write: chunked, no
 * timestamps, never filled (every chunk gets written) and, in parallel files,
 * allocated early: MPI-IO files need chunk space allocated collectively.
 * (HDF5 1.10.8 does so for filtered datasets whatever is asked, and writes
 * them only with collective transfers and no type conversion.) */
static hid_t data_cpl(hid_t loc, int ndim, const hsize_t *chunk, int gzip) {
  hid_t p = untimed_plist(H5P_DATASET_CREATE);
  herr_t rc = p < 0 ? -1 : H5Pset_chunk(p, ndim, chunk);
  if (rc >= 0) rc = H5Pset_fill_time(p, H5D_FILL_TIME_NEVER);
  if (rc >= 0 && is_parallel(loc)) rc = H5Pset_alloc_time(p, H5D_ALLOC_TIME_EARLY);
  if (rc >= 0 && gzip) rc = H5Pset_shuffle(p); /* shuffle before deflate, as h5py */
  if (rc >= 0 && gzip) rc = H5Pset_deflate(p, 4);
  if (rc < 0 && p >= 0) {
    H5FAIL(loc, "cannot set up dataset creation properties");
    H5Pclose(p);
    return -1;
  }
  return p;
}

/* Create `name` in loc; maxdims unlimited only where an axis is empty
 * (HDF5 refuses a fixed axis shorter than its chunk). */
static int create_dataset(hid_t loc, const char *name, hid_t type, int ndim, const hsize_t *shape,
                          const hsize_t *chunk, int gzip, hid_t *dset) {
  hsize_t maxd[HB_MAXDIM];
  for (int i = 0; i < ndim; i++) maxd[i] = shape[i] ? shape[i] : H5S_UNLIMITED;
  hid_t dcpl = data_cpl(loc, ndim, chunk, gzip);
  if (dcpl < 0) return hb_error_trace(HB_EIO, __FILE__, __LINE__);
  hid_t sp = H5Screate_simple(ndim, shape, maxd);
  *dset = sp < 0 ? -1 : H5Dcreate2(loc, name, type, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  char path[512];
  int rc = *dset < 0 ? H5FAIL(loc, "cannot create dataset '%s' in %s", name, obj_path(loc, path, sizeof path)) : 0;
  if (sp >= 0) H5Sclose(sp);
  H5Pclose(dcpl);
  return rc;
}

int hb_h5_write_whole(hid_t d, hid_t mem_type, const void *data) {
  int par = is_parallel(d);
  int writer = !par || file_rank(d) == 0; /* rank 0 supplies the data */
  hid_t fs = H5Dget_space(d), ms = fs >= 0 ? H5Scopy(fs) : -1;
  hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
  herr_t rc = fs < 0 || ms < 0 || dxpl < 0 ? -1 : 0;
  if (rc >= 0 && par) rc = H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE);
  if (rc >= 0 && !writer) rc = H5Sselect_none(fs) < 0 || H5Sselect_none(ms) < 0 ? -1 : 0;
  static const double dummy = 0; /* non-writers pass no data */
  if (rc >= 0) rc = H5Dwrite(d, mem_type, ms, fs, dxpl, writer && data ? data : &dummy);
  char path[512];
  int err = rc < 0 ? H5FAIL(d, "cannot write dataset %s", obj_path(d, path, sizeof path)) : 0;
  if (dxpl >= 0) H5Pclose(dxpl);
  if (ms >= 0) H5Sclose(ms);
  if (fs >= 0) H5Sclose(fs);
  return err;
}

int hb_h5_array_f64(hid_t obj, const char *key, int ndim, const hsize_t *shape, const double *data) {
  HB_CHECK(ndim >= 1 && ndim <= HB_MAXDIM, HB_EINTERNAL, "hspy", "array '%s' has %d dimensions", key, ndim);
  hsize_t chunk[HB_MAXDIM];
  hb_hspy_default_chunks(ndim, shape, ndim, sizeof(double), chunk);
  for (int i = 0; i < ndim; i++)
    if (!chunk[i]) chunk[i] = 1;
  if (H5Lexists(obj, key, H5P_DEFAULT) > 0 && H5Ldelete(obj, key, H5P_DEFAULT) < 0)
    return H5FAIL(obj, "cannot replace dataset '%s'", key);
  hid_t d = -1;
  HB_CALL(create_dataset(obj, key, H5T_NATIVE_DOUBLE, ndim, shape, chunk, 0, &d));
  int err = hb_h5_write_whole(d, H5T_NATIVE_DOUBLE, data);
  H5Dclose(d);
  return err;
}

/* ---- files and signals -------------------------------------------------- */

int hb_hspy_create(const char *path, MPI_Comm comm, MPI_Info info, hid_t *file) {
  *file = -1;
  /* STRONG: closing the file also closes ids left open on an error path, so
   * the file is really closed before it is renamed or removed. */
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  herr_t rc = fapl < 0 ? -1 : H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
  if (rc >= 0 && comm != MPI_COMM_NULL) rc = H5Pset_fapl_mpio(fapl, comm, info);
  /* exclusive (O_EXCL): a file, or a link planted at the name, is never
   * replaced or followed; callers remove what they own first */
  hid_t f = rc < 0 ? -1 : H5Fcreate(path, H5F_ACC_EXCL, H5P_DEFAULT, fapl);
  int err = f < 0 ? HB_FAIL(HB_EIO, path, "cannot create the file (%s)", hb_h5_error_text())
                  : 0; /* recorded before H5Pclose clears HDF5's error stack */
  if (fapl >= 0) H5Pclose(fapl);
  if (err) return err;
  err = hb_h5_attr_str(f, "file_format", "HyperSpy");
  if (!err) err = hb_h5_attr_str(f, "file_format_version", "3.1");
  hid_t g = err ? -1 : hb_h5_group(f, "Experiments");
  if (!err && g < 0) err = HB_EIO;
  if (g >= 0) H5Gclose(g);
  if (err) {
    H5Fclose(f);
    return hb_error_trace(err, __FILE__, __LINE__);
  }
  *file = f;
  return 0;
}

/* HDF5 1.10.8: once a flush fails (e.g. the disk is full) the file can no
 * longer be closed, and library shutdown (H5close, MPI_Finalize) segfaults;
 * after a failure here the caller should remove the file and _exit(). */
int hb_hspy_close(hid_t file) {
  if (file < 0) return 0;
  char name[1024] = "HDF5";
  H5Fget_name(file, name, sizeof name);
  HB_H5(H5Fclose(file), name, "cannot close the file");
  return 0;
}

static int leading_nav(const hb_signal_desc *d) {
  int n = 0;
  while (n < d->ndim && d->axes[n].navigate) n++;
  return n;
}

/* A new signal's tree: every group and attribute in it is new, so they are
 * created directly, with one set of properties and types, instead of through
 * the open-or-create and replace helpers above (a third of the instructions
 * of creating a signal). */
typedef struct {
  hid_t gcpl, str, boolean, scalar;
} fresh_tree;

static void fresh_close(fresh_tree *t) {
  if (t->gcpl >= 0) H5Pclose(t->gcpl);
  if (t->str >= 0) H5Tclose(t->str);
  if (t->boolean >= 0) H5Tclose(t->boolean);
  if (t->scalar >= 0) H5Sclose(t->scalar);
}

static int fresh_open(hid_t loc, fresh_tree *t) {
  t->gcpl = untimed_plist(H5P_GROUP_CREATE);
  t->str = str_type();
  t->boolean = bool_type();
  t->scalar = H5Screate(H5S_SCALAR);
  if (t->gcpl >= 0 && t->str >= 0 && t->boolean >= 0 && t->scalar >= 0) return 0;
  int rc = H5FAIL(loc, "cannot set up the properties of a new signal");
  fresh_close(t);
  return rc;
}

static hid_t fresh_group(const fresh_tree *t, hid_t parent, const char *name) {
  hid_t g = H5Gcreate2(parent, name, H5P_DEFAULT, t->gcpl, H5P_DEFAULT);
  char where[512];
  if (g < 0) H5FAIL(parent, "cannot create group '%s' in %s", name, obj_path(parent, where, sizeof where));
  return g;
}

static int fresh_str(const fresh_tree *t, hid_t obj, const char *name, const char *value) {
  const char *v = value ? value : "_None_";
  return create_attr(obj, name, t->str, t->scalar, &v);
}

static int fresh_bool(const fresh_tree *t, hid_t obj, const char *name, int value) {
  int8_t v = value ? 1 : 0;
  return create_attr(obj, name, t->boolean, t->scalar, &v);
}

static int write_axis(const fresh_tree *t, hid_t g, int i, const hb_axis *ax, hsize_t size) {
  char name[32];
  snprintf(name, sizeof name, "axis-%d", i);
  hid_t a = fresh_group(t, g, name);
  if (a < 0) return hb_error_trace(HB_EIO, __FILE__, __LINE__);
  int64_t n = (int64_t)size;
  int rc = 0; /* name and units are omitted rather than written empty */
  if (!rc && ax->name[0]) rc = fresh_str(t, a, "name", ax->name);
  if (!rc && ax->units[0]) rc = fresh_str(t, a, "units", ax->units);
  /* a non-uniform axis the result keeps: HyperSpy's DataAxis, its points
   * in a dataset `axis` and no scale or offset (docs/hspy-format.md) */
  const double *points = hb_axis_points(ax, size);
  hsize_t npts = size;
  if (!rc) rc = create_attr(a, "size", H5T_NATIVE_INT64, t->scalar, &n);
  if (!rc && !points) rc = create_attr(a, "scale", H5T_NATIVE_DOUBLE, t->scalar, &ax->scale);
  if (!rc && !points) rc = create_attr(a, "offset", H5T_NATIVE_DOUBLE, t->scalar, &ax->offset);
  if (!rc && points) rc = hb_h5_array_f64(a, "axis", 1, &npts, points);
  if (!rc) rc = fresh_bool(t, a, "navigate", ax->navigate);
  if (!rc) rc = fresh_bool(t, a, "is_binned", ax->is_binned);
  if (!rc) rc = fresh_str(t, a, "_type", points ? "DataAxis" : "UniformDataAxis");
  H5Gclose(a);
  return rc;
}

/* New group `name` under g with string attributes kv (NULL values omitted);
 * returns the group when `keep`, else closes it. */
static hid_t group_strs(const fresh_tree *t, hid_t g, const char *name, int n, const char *const *kv, int keep) {
  hid_t m = fresh_group(t, g, name);
  int rc = m < 0;
  for (int i = 0; i < n && !rc; i++)
    if (kv[2 * i + 1]) rc = fresh_str(t, m, kv[2 * i], kv[2 * i + 1]);
  if (m >= 0 && (rc || !keep)) H5Gclose(m);
  return rc ? -1 : keep ? m : 0;
}

static int write_metadata(const fresh_tree *t, hid_t g, const hb_signal_desc *d) {
  const char *general[] = {"title", d->title ? d->title : "", "original_filename", d->original_filename};
  const char *signal[] = {"signal_type", d->signal_type ? d->signal_type : "", "quantity", d->quantity};
  const char *folding[] = {"original_shape", "_None_", "original_axes_manager", "_None_"};
  hid_t m = fresh_group(t, g, "metadata"), hs = -1, f = -1;
  int rc = m < 0;
  if (!rc) rc = group_strs(t, m, "General", 2, general, 0) < 0;
  if (!rc) rc = group_strs(t, m, "Signal", 2, signal, 0) < 0; /* never Signal/binned */
  if (!rc) rc = (hs = fresh_group(t, m, "_HyperSpy")) < 0;
  if (!rc) rc = (f = group_strs(t, hs, "Folding", 2, folding, 1)) < 0;
  if (!rc) rc = fresh_bool(t, f, "unfolded", 0);
  if (!rc) rc = fresh_bool(t, f, "signal_unfolded", 0);
  if (f >= 0) H5Gclose(f);
  if (hs >= 0) H5Gclose(hs);
  if (m >= 0) H5Gclose(m);
  return rc ? hb_error_trace(HB_EIO, __FILE__, __LINE__) : 0;
}

static int check_desc(const hb_signal_desc *d, hsize_t *chunk) {
  HB_CHECK(d->ndim >= 1 && d->ndim <= HB_MAXDIM && d->axes && d->shape && d->dtype < HB_DTYPE_COUNT,
           HB_EINTERNAL, "hspy", "invalid signal description for '%s'", d->name ? d->name : "");
  size_t es = hb_dtype_size(d->dtype);
  if (d->chunk) memcpy(chunk, d->chunk, d->ndim * sizeof *chunk);
  else hb_hspy_default_chunks(d->ndim, d->shape, leading_nav(d), es, chunk);
  double bytes = (double)es;
  for (int i = 0; i < d->ndim; i++) {
    if (chunk[i] > d->shape[i]) chunk[i] = d->shape[i]; /* HDF5 refuses larger */
    if (chunk[i] < 1) chunk[i] = 1;
    bytes *= (double)chunk[i];
  }
  HB_CHECK(bytes < 4294967296.0, HB_EINVALID, "hspy", "chunk of %.0f bytes for '%s': HDF5 allows < 4 GiB",
           bytes, d->name ? d->name : "");
  return 0;
}

/* Signal group name: the title with '/' replaced, "__unnamed__" if empty. */
static void group_name(const char *name, char *out, size_t n) {
  snprintf(out, n, "%s", name && name[0] ? name : "__unnamed__");
  for (char *p = out; *p; p++)
    if (*p == '/') *p = '-';
}

int hb_hspy_signal_create(hid_t file, const hb_signal_desc *d, hid_t *group, hid_t *dset) {
  *group = *dset = -1;
  hsize_t chunk[HB_MAXDIM];
  HB_CALL(check_desc(d, chunk));
  char name[300], path[320];
  group_name(d->name, name, sizeof name);
  snprintf(path, sizeof path, "Experiments/%s", name);
  fresh_tree t;
  HB_CALL(fresh_open(file, &t));
  hid_t g = hb_h5_group(file, path);
  int rc = g < 0 ? HB_EIO : fresh_str(&t, g, "package", ""); /* empty: HyperSpy imports nothing */
  if (!rc) rc = fresh_str(&t, g, "package_version", "");
  /* an external link: HyperSpy reads it lazily with the input's own chunks
   * (a virtual dataset has none, and 1.7.3's lazy loading refuses it) */
  if (!rc && d->link_file && H5Lcreate_external(d->link_file, d->link_dataset, g, "data", H5P_DEFAULT, H5P_DEFAULT) < 0)
    rc = H5FAIL(g, "cannot link %s of %s as the data of %s", d->link_dataset, d->link_file, path);
  if (!rc && !d->link_file) rc = create_dataset(g, "data", hb_dtype_h5(d->dtype), d->ndim, d->shape, chunk, d->gzip, dset);
  for (int i = 0; i < d->ndim && !rc; i++) rc = write_axis(&t, g, i, &d->axes[i], d->shape[i]);
  if (!rc) rc = write_metadata(&t, g, d);
  hid_t om = rc ? -1 : fresh_group(&t, g, "original_metadata");
  if (!rc && om < 0) rc = HB_EIO;
  if (om >= 0) H5Gclose(om);
  fresh_close(&t);
  if (rc && g < 0) return hb_error_trace(rc, __FILE__, __LINE__);
  if (rc) {
    if (*dset >= 0) H5Dclose(*dset);
    H5Gclose(g);
    *dset = -1;
    return hb_error_trace(rc, __FILE__, __LINE__);
  }
  *group = g;
  return 0;
}

/* ---- ragged signals (docs/hyperspy-semantics.md, section 1) ---------------- */

int hb_hspy_ragged_create(hid_t file, const hb_signal_desc *d, hid_t *group, hid_t *data, hid_t *shapes) {
  *group = *data = *shapes = -1;
  char name[300], path[320];
  group_name(d->name, name, sizeof name);
  snprintf(path, sizeof path, "Experiments/%s", name);
  fresh_tree t;
  HB_CALL(fresh_open(file, &t));
  hid_t g = hb_h5_group(file, path);
  int rc = g < 0 ? HB_EIO : fresh_str(&t, g, "package", "");
  if (!rc) rc = fresh_str(&t, g, "package_version", "");
  /* a variable-length list per position: the flattened records, and their
   * shapes; a vlen dataset cannot skip its fill values (HDF5), so the
   * default fill time */
  hid_t vt = H5Tvlen_create(hb_dtype_h5(d->dtype)), st = H5Tvlen_create(H5T_NATIVE_INT64);
  hid_t dcpl = untimed_plist(H5P_DATASET_CREATE), sp = H5Screate_simple(d->ndim, d->shape, NULL);
  herr_t prc = dcpl < 0 ? -1 : H5Pset_chunk(dcpl, d->ndim, d->chunk);
  if (prc >= 0 && d->gzip) prc = H5Pset_shuffle(dcpl);
  if (prc >= 0 && d->gzip) prc = H5Pset_deflate(dcpl, 4);
  if (!rc && (vt < 0 || st < 0 || sp < 0 || prc < 0)) rc = H5FAIL(file, "cannot set up ragged dataset '%s'", name);
  if (!rc && (*data = H5Dcreate2(g, "data", vt, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT)) < 0)
    rc = H5FAIL(file, "cannot create dataset 'data' in %s", path);
  if (!rc && (*shapes = H5Dcreate2(g, "ragged_shapes", st, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT)) < 0)
    rc = H5FAIL(file, "cannot create dataset 'ragged_shapes' in %s", path);
  if (vt >= 0) H5Tclose(vt);
  if (st >= 0) H5Tclose(st);
  if (dcpl >= 0) H5Pclose(dcpl);
  if (sp >= 0) H5Sclose(sp);
  for (int i = 0; i < d->ndim && !rc; i++) rc = write_axis(&t, g, i, &d->axes[i], d->shape[i]);
  if (!rc) rc = write_metadata(&t, g, d);
  hid_t om = rc ? -1 : fresh_group(&t, g, "original_metadata");
  if (!rc && om < 0) rc = HB_EIO;
  if (om >= 0) H5Gclose(om);
  /* HyperSpy 2.x flags the signal ragged from here; 1.7.3 ignores it */
  hid_t at = rc ? -1 : fresh_group(&t, g, "attributes");
  if (!rc && at < 0) rc = HB_EIO;
  if (!rc) rc = fresh_bool(&t, at, "ragged", 1);
  if (!rc) rc = fresh_bool(&t, at, "_lazy", 0);
  if (at >= 0) H5Gclose(at);
  fresh_close(&t);
  if (rc) {
    if (*data >= 0) H5Dclose(*data);
    if (*shapes >= 0) H5Dclose(*shapes);
    if (g >= 0) H5Gclose(g);
    *data = *shapes = -1;
    return hb_error_trace(rc ? rc : HB_EIO, __FILE__, __LINE__);
  }
  *group = g;
  return 0;
}
