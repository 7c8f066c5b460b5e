/* Open the input lazily: format, array, shape, dtype, chunks, filters and
 * axes, no pixels; then read blocks or stream chunks of it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "chunkread.h"
#include "filters.h"
#include "hb_error.h"
#include "hb_input.h"
#include "hb_job.h"
#include "hb_settings.h"
#include "reader.h"

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

static int describe_filters(hb_input *in, hid_t dcpl, const char *where) {
  int nf = H5Pget_nfilters(dcpl);
  in->filters[0] = 0;
  for (int i = 0; i < nf; i++) {
    unsigned flags, cd[8];
    size_t ncd = 8;
    char name[64] = "";
    H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, cd, sizeof name, name, NULL);
    if (hb_filter_name((int)id)) snprintf(name, sizeof name, "%s", hb_filter_name((int)id));
    size_t len = strlen(in->filters);
    if (id == H5Z_FILTER_DEFLATE)
      snprintf(in->filters + len, sizeof in->filters - len, "%sgzip(%u)", len ? "+" : "", ncd ? cd[0] : 0);
    else if (id == H5Z_FILTER_SHUFFLE)
      snprintf(in->filters + len, sizeof in->filters - len, "%sshuffle", len ? "+" : "");
    else
      snprintf(in->filters + len, sizeof in->filters - len, "%s%s(id %d)", len ? "+" : "", name[0] ? name : "filter",
               (int)id);
    char hint[160];
    HB_CHECK(hb_filter_available((int)id), HB_EIO, where,
             "dataset %s uses HDF5 filter %d (%s), which this HDF5 cannot decode; install its plugin "
             "(or point HDF5_PLUGIN_PATH at it) or re-save the file with gzip%s",
             in->dataset, (int)id, name[0] ? name : "unknown", hb_filter_remedy((int)id, hint, sizeof hint));
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

/* The pixels' dtype from the file's type: integers and floats as they are;
 * float16 read as float32 (HDF5 converts); h5py's bool (an enum of FALSE,
 * TRUE over int8) as uint8, the same bytes; complex (h5py's compound of
 * r and i) as complex64/128, which only some ops take (hb_stream_check_real).
 * 1 if unsupported. */
static int settle_dtype(hb_input *in, hid_t ft) {
  in->file_dtype[0] = 0;
  if (in->mem_type > 0) H5Tclose(in->mem_type);
  in->mem_type = -1;
  H5T_class_t cls = H5Tget_class(ft);
  size_t size = H5Tget_size(ft);
  if (!hb_dtype_from_h5(ft, &in->dtype)) {
    return 0;
  } else if (cls == H5T_FLOAT && size == 2) {
    in->dtype = HB_F32;
    snprintf(in->file_dtype, sizeof in->file_dtype, "float16");
  } else if (cls == H5T_ENUM && size == 1 && H5Tget_nmembers(ft) == 2) {
    char *f = H5Tget_member_name(ft, 0), *t = H5Tget_member_name(ft, 1);
    int ok = f && t && !strcmp(f, "FALSE") && !strcmp(t, "TRUE");
    H5free_memory(f);
    H5free_memory(t);
    signed char v[2]; /* member values are in the base type, 1 byte here */
    ok = ok && H5Tget_member_value(ft, 0, &v[0]) >= 0 && H5Tget_member_value(ft, 1, &v[1]) >= 0;
    if (!ok || v[0] != 0 || v[1] != 1) return 1;
    in->dtype = HB_U8;
    snprintf(in->file_dtype, sizeof in->file_dtype, "bool");
    in->mem_type = H5Tcopy(ft); /* HDF5 converts no enum to an integer: read the bytes as they are */
    return in->mem_type < 0;
  } else {
    return 1;
  }
  return 0;
}

/* The type the pixels are read as. */
static hid_t read_type(const hb_input *in) { return in->mem_type > 0 ? in->mem_type : hb_dtype_h5(in->dtype); }

int hb_input_describe(hb_input *in, const char *wf) {
  hb_filters_init();
  hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
  /* Blocks are whole chunks read once: a chunk cache would only copy. */
  H5Pset_chunk_cache(dapl, H5D_CHUNK_CACHE_NSLOTS_DEFAULT, 0, H5D_CHUNK_CACHE_W0_DEFAULT);
  in->dset = H5Dopen2(in->file, in->dataset, dapl);
  H5Pclose(dapl);
  HB_H5(in->dset, wf, "cannot open dataset %s", in->dataset);
  HB_CHECK(H5Iget_type(in->dset) == H5I_DATASET, HB_EINVALID, wf, "%s is not a dataset", in->dataset);
  hid_t ft = H5Dget_type(in->dset);
  int bad = settle_dtype(in, ft);
  H5Tclose(ft);
  HB_CHECK(!bad, HB_EINVALID, wf,
           "dataset %s has an unsupported element type (integers, float16/32/64, bool and complex are read)",
           in->dataset);
  in->fspace = H5Dget_space(in->dset);
  int nd = H5Sget_simple_extent_ndims(in->fspace);
  HB_CHECK(nd >= 1 && nd <= HB_MAXDIM, HB_EINVALID, wf, "dataset %s has %d dimensions; need 1 to %d", in->dataset, nd,
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

/* Which format: input.format, else input.dataset means generic HDF5, else
 * what the file's structure says. */
static int settle_format(const hb_job *job, hb_input *in, const char *wf) {
  const char *format = hb_param_str(job->input, "format");
  if (strcmp(format, "auto")) {
    const hb_reader *r = hb_reader_named(format);
    HB_CHECK(r, HB_EINTERNAL, hb_param_where(job->input, "format"), "no reader for format '%s'", format);
    HB_CHECK(!job->input_dataset || !strcmp(r->pick_key, "dataset"), HB_EINVALID,
             hb_param_where_key(job->input, "dataset"),
             "input.dataset names an array of a generic HDF5 file (format: hdf5); a %s file's arrays are picked "
             "with input.signal",
             format);
    int yes;
    H5E_BEGIN_TRY { yes = r->detect(in->file); }
    H5E_END_TRY;
    HB_CHECK(yes > 0, HB_EINVALID, wf, "input.format is %s, but the file does not look like one (looked for %s)",
             format, r->looks_for);
  } else {
    format = job->input_dataset ? "hdf5" : hb_input_detect(in->file);
  }
  snprintf(in->format, sizeof in->format, "%s", format);
  const char *pick_key = hb_reader_named(format)->pick_key;
  HB_CHECK(!job->input_signal || strcmp(pick_key, "dataset"), HB_EINVALID, hb_param_where_key(job->input, "signal"),
           "input.signal picks a signal of a HyperSpy, EMD or NeXus file; this file is read as generic HDF5 (%s), "
           "whose arrays input.dataset names",
           job->input_dataset ? "input.dataset is set" : "no other format detected");
  return 0;
}

/* Which array: the candidate the job names, or the only one. */
static int pick_candidate(const hb_job *job, hb_input *in, const char *wf, hb_candidate *out) {
  int generic = !strcmp(in->format, "hdf5");
  const char *name = generic ? job->input_dataset : job->input_signal;
  /* a generic array the job names is taken as named (a 1-D or 9-D one then
   * gets its own error) */
  if (generic && name && H5Lexists(in->file, name, H5P_DEFAULT) > 0) {
    snprintf(out->name, sizeof out->name, "%s", name);
    snprintf(out->dataset, sizeof out->dataset, "%s", name);
    out->group[0] = 0;
    return 0;
  }
  hb_candidates c;
  HB_CALL(hb_input_candidates(in->file, in->format, wf, &c));
  int pick = 0;
  const char *where = name ? hb_param_where(job->input, generic ? "dataset" : "signal") : wf;
  int rc = hb_input_choose(&c, name, in->format, where, &pick);
  if (!rc) *out = c.items[pick];
  hb_candidates_free(&c);
  return rc;
}

/* A single spectrum or image (no navigation axis, as HyperSpy holds one) is
 * a scan of one pattern: a navigation axis of size 1 goes in front, which
 * the file does not have (in->virtual_nav; reads drop it). */
static int single_pattern(hb_input *in, const char *wf) {
  HB_CHECK(in->ndim < HB_MAXDIM, HB_EINVALID, wf, "dataset %s has %d signal axes; at most %d are read", in->dataset,
           in->ndim, HB_MAXDIM - 1);
  memmove(in->shape + 1, in->shape, (size_t)in->ndim * sizeof *in->shape);
  memmove(in->chunk + 1, in->chunk, (size_t)in->ndim * sizeof *in->chunk);
  memmove(in->axes + 1, in->axes, (size_t)in->ndim * sizeof *in->axes);
  in->shape[0] = in->chunk[0] = 1;
  memset(&in->axes[0], 0, sizeof in->axes[0]);
  in->axes[0].scale = 1;
  in->axes[0].size = 1;
  in->axes[0].navigate = 1;
  in->ndim++;
  in->nav_dim = 1;
  in->virtual_nav = 1;
  return 0;
}

/* The file's own part of a selection: without the navigation axis a single
 * pattern was given (single_pattern). */
static int file_dims(const hb_input *in, const hsize_t *v, hsize_t *out) {
  for (int d = in->virtual_nav; d < in->ndim; d++) out[d - in->virtual_nav] = v[d];
  return in->ndim - in->virtual_nav;
}

/* The file's calibration, then the job's: navigation_dimension, axes. */
static int settle_axes(const hb_job *job, hb_input *in, const char *wf) {
  if (job->nav_dim > 0) in->nav_dim = job->nav_dim;
  HB_CHECK(in->nav_dim >= 0, HB_EINVALID, wf,
           "dataset %s has %d axes: set input.navigation_dimension to say how many lead as navigation", in->dataset,
           in->ndim);
  in->sig_dim = in->ndim - in->nav_dim;
  HB_CHECK(in->sig_dim >= 1, HB_EINVALID, wf,
           "dataset %s has %d axes and navigation_dimension is %d: no signal axis is left", in->dataset, in->ndim,
           in->nav_dim);
  for (int i = 0; i < in->ndim; i++) in->axes[i].navigate = i < in->nav_dim;
  HB_CALL(apply_axis_overrides(job, in));
  if (in->nav_dim == 0) HB_CALL(single_pattern(in, wf));
  return 0;
}

/* A contiguous array has no chunks to plan blocks by: it gets pieces of
 * whole patterns along the last navigation axis (a row of the scan, or a
 * part of one), about 8 MiB each and contiguous in the file, so blocks are
 * runs of rows and memory stays bounded by the block. */
#define CONTIGUOUS_PIECE_BYTES (8u << 20)
static void contiguous_pieces(hb_input *in) {
  if (in->chunked) return;
  size_t pattern = hb_dtype_size(in->dtype) * hb_input_sig_size(in);
  hsize_t last = in->shape[in->nav_dim - 1], n = pattern ? CONTIGUOUS_PIECE_BYTES / pattern : last;
  for (int d = 0; d < in->nav_dim; d++) in->chunk[d] = 1;
  in->chunk[in->nav_dim - 1] = n < 1 ? 1 : n > last ? last : n;
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

  /* Everything below reads identical metadata on every rank, so ranks agree. */
  HB_CALL(settle_format(job, in, wf));
  hb_candidate pick;
  HB_CALL(pick_candidate(job, in, wf, &pick));
  HB_CALL(hb_input_describe_candidate(in->file, in->format, &pick, in, wf));
  HB_CALL(settle_axes(job, in, wf));
  contiguous_pieces(in);
  HB_CALL(hb_chunkreader_open(in, job->threads, &in->raw));
  return 0;
}

/* The rectangle [off, off+cnt) of the array (in->ndim axes) through HDF5,
 * into buf of its own shape, or at its place in buf of the shape bcnt (a
 * block starting at bstart) when bcnt is given.
 * On failure, HDF5's reason goes into why (n bytes): it must be taken
 * before the next HDF5 call, which clears the error stack. */
static herr_t read_rect(hb_input *in, const hsize_t *off, const hsize_t *cnt, void *buf, const hsize_t *bstart,
                        const hsize_t *bcnt, char *why, size_t n) {
  hsize_t foff[HB_MAXDIM], fcnt[HB_MAXDIM], moff[HB_MAXDIM], mcnt[HB_MAXDIM];
  int fnd = file_dims(in, off, foff);
  file_dims(in, cnt, fcnt);
  hid_t fs = H5Scopy(in->fspace);
  H5Sselect_hyperslab(fs, H5S_SELECT_SET, foff, NULL, fcnt, NULL);
  hid_t ms;
  if (bcnt) {
    for (int d = 0; d < in->ndim; d++) moff[d] = off[d] - bstart[d];
    file_dims(in, bcnt, mcnt);
    ms = H5Screate_simple(fnd, mcnt, NULL);
    file_dims(in, moff, moff);
    H5Sselect_hyperslab(ms, H5S_SELECT_SET, moff, NULL, fcnt, NULL);
  } else {
    ms = H5Screate_simple(fnd, fcnt, NULL);
  }
  herr_t e = H5Dread(in->dset, read_type(in), ms, fs, H5P_DEFAULT, buf);
  if (e < 0 && why) snprintf(why, n, "%s", hb_h5_error_text());
  H5Sclose(ms);
  H5Sclose(fs);
  return e;
}

/* Diagnostic path after a failed block read: find the first unreadable chunk
 * of those the read wanted. */
static void find_bad_chunk(hb_input *in, const hsize_t *start, const hsize_t *count, const hb_chunk_filter *only,
                           char *out, size_t n) {
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
    if (hb_chunk_refused(in, off, only)) continue;
    for (int d = 0; d < in->ndim; d++)
      cnt[d] = off[d] + in->chunk[d] > in->shape[d] ? in->shape[d] - off[d] : in->chunk[d];
    if (read_rect(in, off, cnt, buf, NULL, NULL, NULL, 0) < 0) {
      int len = snprintf(out, n, "chunk at (");
      for (int d = 0; d < in->ndim && len < (int)n; d++)
        len += snprintf(out + len, n - (size_t)len, "%s%llu", d ? ", " : "", (unsigned long long)off[d]);
      if (len < (int)n) snprintf(out + len, n - (size_t)len, ")");
      break;
    }
  } while (hb_chunk_walk_next(&cw));
  free(buf);
}

/* The part of the chunk grid's cell at off (all axes) inside the block
 * [bstart, bstart + bcnt) (whole signal): its offset and extent. */
static void chunk_in_block(const hb_input *in, const hsize_t *off, const hsize_t *bstart, const hsize_t *bcnt,
                           hsize_t *roff, hsize_t *rcnt) {
  for (int d = 0; d < in->ndim; d++) {
    hsize_t lo = off[d] > bstart[d] ? off[d] : bstart[d], hi = off[d] + in->chunk[d];
    if (hi > bstart[d] + bcnt[d]) hi = bstart[d] + bcnt[d];
    roff[d] = lo;
    rcnt[d] = hi - lo;
  }
}

/* The positions of the block's chunks that `only` wants, in only->positions;
 * with buf, each of those chunks is read through HDF5 into its place and the
 * rest of the block is zeros (without: the raw reader read them). */
static herr_t walk_wanted(hb_input *in, const hsize_t *bstart, const hsize_t *bcnt, void *buf, hb_chunk_filter *only,
                          char *why, size_t n) {
  size_t bytes = hb_dtype_size(in->dtype);
  for (int d = 0; d < in->ndim; d++) bytes *= bcnt[d];
  if (buf) memset(buf, 0, bytes);
  only->positions = 0;
  hb_chunk_walk cw;
  hb_chunk_walk_start(&cw, in, bstart, bcnt);
  do {
    int whole_signal = 1; /* the first chunk of its positions' signal: the signal is read whole */
    for (int d = in->nav_dim; d < in->ndim; d++) whole_signal &= cw.off[d] == 0;
    if (!whole_signal || hb_chunk_refused(in, cw.off, only)) continue;
    hsize_t roff[HB_MAXDIM], rcnt[HB_MAXDIM];
    chunk_in_block(in, cw.off, bstart, bcnt, roff, rcnt);
    if (buf && read_rect(in, roff, rcnt, buf, bstart, bcnt, why, n) < 0) return -1;
    size_t npos = 1;
    for (int d = 0; d < in->nav_dim; d++) npos *= rcnt[d];
    only->positions += npos;
  } while (hb_chunk_walk_next(&cw));
  return 0;
}

int hb_input_read(hb_input *in, const hsize_t *start, const hsize_t *count, void *buf, size_t block_index,
                  hb_chunk_filter *only) {
  hsize_t off[HB_MAXDIM], cnt[HB_MAXDIM];
  for (int d = 0; d < in->ndim; d++) {
    off[d] = d < in->nav_dim ? start[d] : 0;
    cnt[d] = d < in->nav_dim ? count[d] : in->shape[d];
  }
  char detail[512];
  if (hb_chunkreader_decodes(in->raw) && hb_chunkreader_fits(in, start, count)) {
    HB_CALL(hb_chunkreader_read(in->raw, in, start, count, buf, block_index, only));
    if (only) walk_wanted(in, off, cnt, NULL, only, detail, sizeof detail);
    return 0;
  }
  if (only ? walk_wanted(in, off, cnt, buf, only, detail, sizeof detail) >= 0
           : read_rect(in, off, cnt, buf, NULL, NULL, detail, sizeof detail) >= 0)
    return 0;
  char chunk[256];
  find_bad_chunk(in, start, count, only, chunk, sizeof chunk);
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

void hb_input_release_array(hb_input *in) {
  if (in->fspace >= 0) H5Sclose(in->fspace);
  if (in->dset >= 0) H5Dclose(in->dset);
  if (in->mem_type > 0) H5Tclose(in->mem_type);
  in->dset = in->fspace = in->mem_type = -1;
  hb_input_free_axes(in);
}

void hb_input_close(hb_input *in) {
  hb_chunkreader_close(in->raw);
  in->raw = NULL;
  hb_input_release_array(in);
  if (in->file >= 0) H5Fclose(in->file);
  in->file = -1;
}
