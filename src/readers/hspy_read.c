/* Open the input lazily: shape, dtype, chunks, filters and axes, no pixels. */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "chunkread.h"
#include "hb_error.h"
#include "hb_hspy.h"
#include "hb_job.h"
#include "hb_settings.h"

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

int hb_h5_read_attr_str(hid_t obj, const char *name, char *buf, size_t n) {
  buf[0] = 0;
  hid_t a = open_scalar_attr(obj, name);
  if (a < 0) return 0;
  hid_t t = H5Aget_type(a);
  int ok = 0;
  if (H5Tget_class(t) == H5T_STRING) {
    if (H5Tis_variable_str(t) > 0) {
      char *s = NULL;
      hid_t mt = H5Tcopy(H5T_C_S1);
      H5Tset_size(mt, H5T_VARIABLE);
      H5Tset_cset(mt, H5Tget_cset(t));
      if (H5Aread(a, mt, &s) >= 0 && s) {
        snprintf(buf, n, "%s", s);
        ok = 1;
      }
      if (s) H5free_memory(s);
      H5Tclose(mt);
    } else {
      size_t sz = H5Tget_size(t);
      char *s = calloc(sz + 1, 1);
      if (s && H5Aread(a, t, s) >= 0) {
        snprintf(buf, n, "%s", s);
        ok = 1;
      }
      free(s);
    }
  }
  H5Tclose(t);
  H5Aclose(a);
  return ok;
}

static int attr_double(hid_t obj, const char *name, double *out) {
  hid_t a = open_scalar_attr(obj, name);
  if (a < 0) return 0;
  hid_t t = H5Aget_type(a);
  int ok = 0;
  H5T_class_t c = H5Tget_class(t);
  if (c == H5T_INTEGER || c == H5T_FLOAT) ok = H5Aread(a, H5T_NATIVE_DOUBLE, out) >= 0;
  H5Tclose(t);
  H5Aclose(a);
  return ok;
}

/* h5py booleans are an enum over int8; accept plain integers too. */
static int attr_bool(hid_t obj, const char *name, int *out) {
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

static void undefined_to_empty(char *s) {
  if (!strcmp(s, "<undefined>") || !strcmp(s, "_None_")) s[0] = 0;
}

int hb_hspy_read_axes(hid_t group, int ndim, const hsize_t *shape, hb_axis *axes) {
  for (int i = 0; i < ndim; i++) {
    hb_axis *ax = &axes[i];
    memset(ax, 0, sizeof *ax);
    ax->scale = 1;
    ax->size = shape[i];
    char name[32];
    snprintf(name, sizeof name, "axis-%d", i);
    if (H5Lexists(group, name, H5P_DEFAULT) <= 0) continue;
    hid_t g = H5Gopen2(group, name, H5P_DEFAULT);
    if (g < 0) continue;
    hb_h5_read_attr_str(g, "name", ax->name, sizeof ax->name);
    hb_h5_read_attr_str(g, "units", ax->units, sizeof ax->units);
    undefined_to_empty(ax->name);
    undefined_to_empty(ax->units);
    attr_double(g, "scale", &ax->scale);
    attr_double(g, "offset", &ax->offset);
    attr_bool(g, "navigate", &ax->navigate);
    attr_bool(g, "is_binned", &ax->is_binned);
    /* A non-uniform axis keeps its points in a dataset; we carry its linear fit. */
    if (H5Lexists(g, "axis", H5P_DEFAULT) > 0 && shape[i] > 0) {
      hid_t d = H5Dopen2(g, "axis", H5P_DEFAULT);
      hid_t sp = d >= 0 ? H5Dget_space(d) : -1;
      hssize_t npts = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
      if (sp >= 0) H5Sclose(sp);
      /* only an axis with one point per sample is usable (and safe to read) */
      double *pts = d >= 0 && npts == (hssize_t)shape[i] ? malloc(shape[i] * sizeof *pts) : NULL;
      if (pts && H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, pts) >= 0) {
        ax->offset = pts[0];
        ax->scale = shape[i] > 1 ? (pts[shape[i] - 1] - pts[0]) / (double)(shape[i] - 1) : 1;
      }
      free(pts);
      if (d >= 0) H5Dclose(d);
    }
    H5Gclose(g);
  }
  return 0;
}

size_t hb_input_sig_size(const hb_input *in) {
  size_t m = 1;
  for (int i = in->nav_dim; i < in->ndim; i++) m *= in->shape[i];
  return m;
}

size_t hb_input_nav_size(const hb_input *in) {
  size_t m = 1;
  for (int i = 0; i < in->nav_dim; i++) m *= in->shape[i];
  return m;
}

static herr_t collect_signal(hid_t g, const char *name, const H5L_info_t *info, void *data) {
  (void)info;
  hb_signal_names *l = data;
  char path[300];
  snprintf(path, sizeof path, "%s/data", name);
  if (H5Lexists(g, name, H5P_DEFAULT) > 0 && H5Lexists(g, path, H5P_DEFAULT) > 0) {
    if (l->n < 16) snprintf(l->names[l->n++], 256, "%s", name);
    l->total++;
  }
  return 0;
}

int hb_hspy_list_signals(hid_t file, hb_signal_names *out) {
  memset(out, 0, sizeof *out);
  hid_t ex = H5Gopen2(file, "/Experiments", H5P_DEFAULT);
  if (ex < 0) return -1;
  H5Literate(ex, H5_INDEX_NAME, H5_ITER_INC, NULL, collect_signal, out);
  H5Gclose(ex);
  return 0;
}

int hb_default_nav_dim(int ndim) { return ndim == 4 ? 2 : ndim == 2 ? 1 : -1; }

static void join_names(const hb_signal_names *l, char *buf, size_t n) {
  buf[0] = 0;
  for (int i = 0; i < l->n; i++) {
    size_t len = strlen(buf);
    snprintf(buf + len, n - len, "%s'%s'", i ? ", " : "", l->names[i]);
  }
}

/* Which array to read: input.dataset, or the .hspy signal. */
static int pick_dataset(const hb_job *job, hb_input *in, const char *where_file) {
  if (job->input_dataset) {
    HB_CHECK(H5Lexists(in->file, job->input_dataset, H5P_DEFAULT) > 0, HB_EINVALID,
             hb_param_where(job->input, "dataset"),
             "%s has no dataset '%s'", job->input_file_as_written, job->input_dataset);
    snprintf(in->dataset, sizeof in->dataset, "%s", job->input_dataset);
    return 0;
  }
  HB_CHECK(in->is_hspy, HB_EINVALID, where_file,
           "not a HyperSpy file (no file_format attribute); set input.dataset to the array's path");
  HB_CHECK(H5Lexists(in->file, "/Experiments", H5P_DEFAULT) > 0, HB_EIO, where_file,
           "HyperSpy file without an /Experiments group");
  hb_signal_names l;
  HB_H5(hb_hspy_list_signals(in->file, &l), where_file, "cannot open /Experiments");
  char names[1024];
  join_names(&l, names, sizeof names);
  if (job->input_signal) {
    int found = 0;
    for (int i = 0; i < l.n; i++) found |= !strcmp(l.names[i], job->input_signal);
    HB_CHECK(found, HB_EINVALID, hb_param_where(job->input, "signal"),
             "%s has no signal '%s'; it has %s", job->input_file_as_written, job->input_signal,
             l.n ? names : "none");
    snprintf(in->signal, sizeof in->signal, "%s", job->input_signal);
  } else {
    HB_CHECK(l.total > 0, HB_EINVALID, where_file, "the file holds no signal (no /Experiments/*/data)");
    HB_CHECK(l.total == 1, HB_EINVALID, where_file, "the file holds %d signals (%s); pick one with input.signal",
             l.total, names);
    snprintf(in->signal, sizeof in->signal, "%s", l.names[0]);
  }
  snprintf(in->dataset, sizeof in->dataset, "/Experiments/%s/data", in->signal);
  return 0;
}

/* Registered HDF5 filters that detector and HyperSpy files use, by name,
 * and the Debian 12 package whose plugin this HDF5 (Open MPI's) loads from
 * its default plugin folder.  Debian 12's other filter packages install
 * plugins for the serial HDF5 only (hdf5-filter-plugin: bzip2, lz4, the
 * latter linked to the serial library), so none is named for them. */
static const struct {
  int id;
  const char *name, *package;
} known_filters[] = {
    {307, "bzip2", NULL},      {32000, "lzf", "hdf5-plugin-lzf liblzf1"},
    {32001, "blosc", NULL},    {32004, "lz4", NULL},
    {32008, "bitshuffle", NULL}, {32013, "zfp", NULL},
    {32015, "zstd", NULL},
};

/* Debian 12's LZF plugin (hdf5-plugin-lzf) calls lzf_decompress but is not
 * linked to liblzf, so HDF5 fails to dlopen it ("undefined symbol:
 * lzf_decompress").  liblzf loaded into the global scope first supplies the
 * symbol; where it is missing, the filter stays unavailable and says so. */
static void lzf_plugin_workaround(void) {
  static int tried;
  if (!tried) tried = 1, dlopen("liblzf.so.1", RTLD_NOW | RTLD_GLOBAL);
}

/* "; apt install P (Debian 12)" for a filter with a usable package, else "". */
static const char *filter_package_hint(int id, char *buf, size_t n) {
  buf[0] = 0;
  for (size_t i = 0; i < sizeof known_filters / sizeof *known_filters; i++)
    if (known_filters[i].id == id && known_filters[i].package)
      snprintf(buf, n, "; on Debian 12: apt install %s", known_filters[i].package);
  return buf;
}

static int describe_filters(hb_input *in, hid_t dcpl, const char *where) {
  int nf = H5Pget_nfilters(dcpl);
  in->filters[0] = 0;
  for (int i = 0; i < nf; i++) {
    unsigned flags, cd[8];
    size_t ncd = 8;
    char name[64] = "";
    H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, cd, sizeof name, name, NULL);
    for (size_t k = 0; !name[0] && k < sizeof known_filters / sizeof *known_filters; k++)
      if (known_filters[k].id == (int)id) snprintf(name, sizeof name, "%s", known_filters[k].name);
    size_t len = strlen(in->filters);
    if (id == H5Z_FILTER_DEFLATE)
      snprintf(in->filters + len, sizeof in->filters - len, "%sgzip(%u)", len ? "+" : "", ncd ? cd[0] : 0);
    else if (id == H5Z_FILTER_SHUFFLE)
      snprintf(in->filters + len, sizeof in->filters - len, "%sshuffle", len ? "+" : "");
    else
      snprintf(in->filters + len, sizeof in->filters - len, "%s%s(id %d)", len ? "+" : "", name[0] ? name : "filter",
               (int)id);
    if (id == 32000) lzf_plugin_workaround();
    char hint[160];
    HB_CHECK(H5Zfilter_avail(id) > 0, HB_EIO, where,
             "dataset %s uses HDF5 filter %d (%s), which this HDF5 cannot decode; install its plugin "
             "(or point HDF5_PLUGIN_PATH at it) or re-save the file with gzip%s",
             in->dataset, (int)id, name[0] ? name : "unknown", filter_package_hint((int)id, hint, sizeof hint));
  }
  if (!nf) snprintf(in->filters, sizeof in->filters, "none");
  return 0;
}

static int apply_axis_overrides(const hb_job *job, hb_input *in) {
  size_t n = hb_param_count(job->input, "axes");
  HB_CHECK((int)n <= in->ndim, HB_EINVALID, hb_param_where_key(job->input, "axes"),
           "input.axes has %zu entries but the data has %d axes", n, in->ndim);
  for (size_t i = 0; i < n; i++) {
    const hb_params *a = hb_param_item(job->input, "axes", i);
    if (hb_param_given(a, "name")) snprintf(in->axes[i].name, sizeof in->axes[i].name, "%s", hb_param_str(a, "name"));
    if (hb_param_given(a, "units"))
      snprintf(in->axes[i].units, sizeof in->axes[i].units, "%s", hb_param_str(a, "units"));
    if (hb_param_given(a, "scale")) in->axes[i].scale = hb_param_float(a, "scale");
    if (hb_param_given(a, "offset")) in->axes[i].offset = hb_param_float(a, "offset");
  }
  return hb_params_misused(job->input);
}

int hb_input_describe(hb_input *in, const char *wf) {
  hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
  /* Blocks are whole chunks read once: a chunk cache would only copy. */
  H5Pset_chunk_cache(dapl, H5D_CHUNK_CACHE_NSLOTS_DEFAULT, 0, H5D_CHUNK_CACHE_W0_DEFAULT);
  in->dset = H5Dopen2(in->file, in->dataset, dapl);
  H5Pclose(dapl);
  HB_H5(in->dset, wf, "cannot open dataset %s", in->dataset);
  HB_CHECK(H5Iget_type(in->dset) == H5I_DATASET, HB_EINVALID, wf, "%s is not a dataset", in->dataset);
  hid_t ft = H5Dget_type(in->dset);
  int bad = hb_dtype_from_h5(ft, &in->dtype) || hb_dtype_is_complex(in->dtype);
  H5Tclose(ft);
  HB_CHECK(!bad, HB_EINVALID, wf, "dataset %s has an unsupported element type (plain integers and floats only)",
           in->dataset);
  in->fspace = H5Dget_space(in->dset);
  int nd = H5Sget_simple_extent_ndims(in->fspace);
  HB_CHECK(nd >= 2 && nd <= HB_MAXDIM, HB_EINVALID, wf, "dataset %s has %d dimensions; need 2 to %d", in->dataset, nd,
           HB_MAXDIM);
  in->ndim = nd;
  H5Sget_simple_extent_dims(in->fspace, in->shape, NULL);
  /* Reject absurd headers before any allocation. */
  double bytes = (double)hb_dtype_size(in->dtype);
  for (int i = 0; i < nd; i++) {
    HB_CHECK(in->shape[i] > 0, HB_EINVALID, wf, "dataset %s has an empty axis %d", in->dataset, i);
    bytes *= (double)in->shape[i];
  }
  HB_CHECK(bytes < 9.0e18, HB_EINVALID, wf, "dataset %s claims %.3g bytes; the header is corrupt", in->dataset,
           bytes);
  hid_t dcpl = H5Dget_create_plist(in->dset);
  in->chunked = H5Pget_layout(dcpl) == H5D_CHUNKED;
  if (in->chunked) {
    H5Pget_chunk(dcpl, nd, in->chunk);
  } else {
    for (int i = 0; i < nd; i++) in->chunk[i] = in->shape[i];
  }
  int rc = describe_filters(in, dcpl, wf);
  H5Pclose(dcpl);
  HB_CALL(rc);
  return 0;
}

int hb_hspy_binned_type(const char *t) {
  static const char *const binned[] = {"EELS", "TEM EELS", "EDS_SEM", "EDS_TEM"};
  for (size_t i = 0; t && i < sizeof binned / sizeof binned[0]; i++)
    if (!strcmp(t, binned[i])) return 1;
  return 0;
}

/* is_binned as HyperSpy 1.7.3 loads it: the axis' own attribute; then the
 * class's __init__ (EELSSpectrum, EDSSEMSpectrum and EDSTEMSpectrum, the
 * one-signal-axis classes of those types, set their signal axis binned);
 * then an old file's metadata Signal/binned (binned >= 0), which io.py moves
 * onto every signal axis. */
static void settle_binned(hb_input *in, int binned) {
  if (in->ndim - in->nav_dim == 1 && hb_hspy_binned_type(in->signal_type)) in->axes[in->ndim - 1].is_binned = 1;
  if (binned >= 0)
    for (int i = in->nav_dim; i < in->ndim; i++) in->axes[i].is_binned = binned;
}

static int settle_axes(const hb_job *job, hb_input *in, const char *wf) {
  if (in->is_hspy && !job->input_dataset) {
    char group[600];
    snprintf(group, sizeof group, "/Experiments/%s", in->signal);
    hid_t g = H5Gopen2(in->file, group, H5P_DEFAULT);
    HB_H5(g, wf, "cannot open %s", group);
    hb_hspy_read_axes(g, in->ndim, in->shape, in->axes);
    char meta[700];
    snprintf(meta, sizeof meta, "%s/metadata/General", group);
    hid_t m = H5Lexists(in->file, meta, H5P_DEFAULT) > 0 ? H5Gopen2(in->file, meta, H5P_DEFAULT) : -1;
    if (m >= 0) hb_h5_read_attr_str(m, "title", in->title, sizeof in->title), H5Gclose(m);
    snprintf(meta, sizeof meta, "%s/metadata/Signal", group);
    m = H5Lexists(in->file, meta, H5P_DEFAULT) > 0 ? H5Gopen2(in->file, meta, H5P_DEFAULT) : -1;
    int binned = -1; /* an old file's metadata Signal/binned, if any */
    if (m >= 0) {
      hb_h5_read_attr_str(m, "signal_type", in->signal_type, sizeof in->signal_type);
      if (!attr_bool(m, "binned", &binned)) binned = -1;
      H5Gclose(m);
    }
    H5Gclose(g);
    int nav = 0;
    while (nav < in->ndim && in->axes[nav].navigate) nav++;
    for (int i = nav; i < in->ndim; i++)
      HB_CHECK(!in->axes[i].navigate, HB_EINVALID, wf,
               "navigation axes must come first in array order (axis %d navigates, axis %d does not)", i, nav);
    in->nav_dim = nav;
    settle_binned(in, binned);
  } else {
    for (int i = 0; i < in->ndim; i++) {
      memset(&in->axes[i], 0, sizeof in->axes[i]);
      in->axes[i].scale = 1;
      in->axes[i].size = in->shape[i];
    }
    in->nav_dim = hb_default_nav_dim(in->ndim);
    HB_CHECK(job->nav_dim > 0 || in->nav_dim > 0, HB_EINVALID, wf,
             "dataset %s has %d axes: set input.navigation_dimension to say how many lead as navigation",
             in->dataset, in->ndim);
  }
  if (job->nav_dim > 0) in->nav_dim = job->nav_dim;
  in->sig_dim = in->ndim - in->nav_dim;
  HB_CHECK(in->nav_dim >= 1 && in->sig_dim >= 1, HB_EINVALID, wf,
           "dataset %s has %d navigation and %d signal axes; hyperbatch needs at least one of each", in->dataset,
           in->nav_dim, in->sig_dim);
  for (int i = 0; i < in->ndim; i++) in->axes[i].navigate = i < in->nav_dim;
  HB_CALL(apply_axis_overrides(job, in));
  return 0;
}

int hb_input_open(MPI_Comm comm, const hb_job *job, hb_input *in) {
  int rank;
  MPI_Comm_rank(comm, &rank);
  memset(in, 0, sizeof *in);
  in->file = in->dset = in->fspace = -1;
  snprintf(in->path, sizeof in->path, "%s", job->input_file);
  const char *wf = job->input_file_as_written;
  const char *wjob = hb_param_where(job->input, "file");

  /* stat on rank 0 only: a missing file is a job error, reported once */
  long long meta[3] = {0, 0, 0};
  int rc = 0;
  if (rank == 0) {
    struct stat st;
    if (stat(in->path, &st))
      rc = HB_FAIL(HB_EINVALID, wjob, "input file '%s' %s", wf, errno == ENOENT ? "does not exist" : strerror(errno));
    else if (!S_ISREG(st.st_mode))
      rc = HB_FAIL(HB_EINVALID, wjob, "input '%s' is not a regular file", wf);
    meta[0] = st.st_size, meta[1] = st.st_mtime;
  }
  HB_CALL(hb_agree(comm, rc));
  HB_MPI(MPI_Bcast(meta, 3, MPI_LONG_LONG, 0, comm));
  in->file_size = meta[0];
  in->mtime = meta[1];

  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_fapl_mpio(fapl, comm, job->mpiio_info);
  in->file = H5Fopen(in->path, H5F_ACC_RDONLY, fapl);
  if (in->file < 0)
    rc = HB_FAIL(HB_EIO, wf, "cannot open as HDF5: truncated, corrupt or not HDF5 (%s)", hb_h5_error_text());
  H5Pclose(fapl);
  HB_CALL(hb_agree(comm, rc));

  char fmt[64], ver[64];
  hb_h5_read_attr_str(in->file, "file_format", fmt, sizeof fmt);
  hb_h5_read_attr_str(in->file, "file_format_version", ver, sizeof ver);
  in->is_hspy = !strcmp(fmt, "HyperSpy");
  if (in->is_hspy && !job->input_dataset)
    HB_CHECK(ver[0] == '3' && ver[1] == '.', HB_EINVALID, wf,
             "HyperSpy format version '%s' is not supported (3.x is; re-save with HyperSpy >= 1.5)", ver);
  /* Everything below reads identical metadata on every rank, so ranks agree. */
  HB_CALL(pick_dataset(job, in, wf));
  HB_CALL(hb_input_describe(in, wf));
  HB_CALL(settle_axes(job, in, wf));
  HB_CALL(hb_chunkreader_open(in, job->threads, &in->raw));
  return 0;
}

/* Diagnostic path after a failed block read: find the first unreadable chunk. */
static void find_bad_chunk(hb_input *in, const hsize_t *start, const hsize_t *count, char *out, size_t n) {
  hsize_t cnt[HB_MAXDIM];
  size_t bytes = hb_dtype_size(in->dtype);
  for (int d = 0; d < in->ndim; d++) bytes *= in->chunk[d];
  void *buf = malloc(bytes);
  snprintf(out, n, "chunk unknown");
  if (!buf) return;
  hb_chunk_walk cw;
  hb_chunk_walk_start(&cw, in, start, count);
  do {
    const hsize_t *off = cw.off;
    for (int d = 0; d < in->ndim; d++)
      cnt[d] = off[d] + in->chunk[d] > in->shape[d] ? in->shape[d] - off[d] : in->chunk[d];
    hid_t fs = H5Scopy(in->fspace);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, off, NULL, cnt, NULL);
    hid_t ms = H5Screate_simple(in->ndim, cnt, NULL);
    herr_t e = H5Dread(in->dset, hb_dtype_h5(in->dtype), ms, fs, H5P_DEFAULT, buf);
    H5Sclose(ms);
    H5Sclose(fs);
    if (e < 0) {
      int len = snprintf(out, n, "chunk at (");
      for (int d = 0; d < in->ndim && len < (int)n; d++)
        len += snprintf(out + len, n - (size_t)len, "%s%llu", d ? ", " : "", (unsigned long long)off[d]);
      if (len < (int)n) snprintf(out + len, n - (size_t)len, ")");
      break;
    }
  } while (hb_chunk_walk_next(&cw));
  free(buf);
}

int hb_input_read(hb_input *in, const hsize_t *start, const hsize_t *count, void *buf, size_t block_index) {
  if (hb_chunkreader_decodes(in->raw) && hb_chunkreader_fits(in, start, count))
    return hb_chunkreader_read(in->raw, in, start, count, buf, block_index);
  hsize_t off[HB_MAXDIM], cnt[HB_MAXDIM];
  for (int d = 0; d < in->ndim; d++) {
    off[d] = d < in->nav_dim ? start[d] : 0;
    cnt[d] = d < in->nav_dim ? count[d] : in->shape[d];
  }
  hid_t fs = H5Scopy(in->fspace);
  H5Sselect_hyperslab(fs, H5S_SELECT_SET, off, NULL, cnt, NULL);
  hid_t ms = H5Screate_simple(in->ndim, cnt, NULL);
  herr_t e = H5Dread(in->dset, hb_dtype_h5(in->dtype), ms, fs, H5P_DEFAULT, buf);
  H5Sclose(ms);
  H5Sclose(fs);
  if (e >= 0) return 0;
  char detail[512];
  snprintf(detail, sizeof detail, "%s", hb_h5_error_text());
  char chunk[256];
  find_bad_chunk(in, start, count, chunk, sizeof chunk);
  char block[300];
  hb_block_desc(in, start, count, block_index, block, sizeof block);
  HB_RAISE(HB_EIO, in->path, "dataset %s: %s: %s cannot be read (%s)", in->dataset, block, chunk, detail);
}

int hb_input_whole_pattern_chunks(const hb_input *in) {
  if (!in->chunked) return 0;
  for (int d = in->nav_dim; d < in->ndim; d++)
    if (in->chunk[d] != in->shape[d]) return 0;
  return 1;
}

int hb_input_streams(const hb_input *in) {
  return in->raw && hb_input_whole_pattern_chunks(in) && !hb_settings_get()->read_block;
}

int hb_input_stream(hb_input *in, const hsize_t *start, const hsize_t *count, size_t block_index, hb_chunk_fn fn,
                    void *ctx) {
  HB_CHECK(in->raw && hb_input_whole_pattern_chunks(in) && hb_chunkreader_fits(in, start, count), HB_EINTERNAL,
           in->path, "chunk stream on a block that is not whole chunks of whole patterns");
  return hb_chunkreader_stream(in->raw, in, start, count, block_index, fn, ctx);
}

void hb_input_close(hb_input *in) {
  hb_chunkreader_close(in->raw);
  in->raw = NULL;
  if (in->fspace >= 0) H5Sclose(in->fspace);
  if (in->dset >= 0) H5Dclose(in->dset);
  if (in->file >= 0) H5Fclose(in->file);
  in->file = in->dset = in->fspace = -1;
}
