/* HyperSpy .hspy (format 3.x) and generic HDF5: reading the input lazily,
 * writing results.  See docs/hspy-format.md. */
#ifndef HB_HSPY_H
#define HB_HSPY_H

#include <hdf5.h>
#include <mpi.h>
#include <stdint.h>
#include "hb_dtype.h"

#define HB_MAXDIM 8

typedef struct {
  char name[64];   /* "" if the file has none */
  char units[64];  /* "" if the file has none */
  double scale, offset;
  hsize_t size;
  int navigate;
  int is_binned;   /* HyperSpy's axis.is_binned as 1.7.3 loads it (hb_input_open) */
} hb_axis;

/* ---- reading ------------------------------------------------------------ */

typedef struct hb_input {
  char path[4096];       /* resolved path */
  char dataset[512];     /* e.g. /Experiments/scan/data */
  char signal[256];      /* .hspy signal group name, "" for generic HDF5 */
  char title[256];
  char signal_type[64];
  int is_hspy;
  int ndim, nav_dim, sig_dim;
  hsize_t shape[HB_MAXDIM];
  hsize_t chunk[HB_MAXDIM];  /* == shape for contiguous datasets */
  int chunked;
  hb_dtype dtype;
  hb_axis axes[HB_MAXDIM];
  char filters[256];         /* "gzip(4)+shuffle", "none" */
  long long file_size;
  long long mtime;           /* seconds since the epoch */
  hid_t file, dset, fspace;  /* open while the job runs */
  struct hb_chunkreader *raw; /* raw chunk reader, NULL: HDF5 reads (chunkread.h) */
} hb_input;

struct hb_job;
/* Collective: open the job's input with an MPI-IO file access property list,
 * pick the signal, read shape, dtype, chunks, filters and axes, and apply the
 * job's overrides.  Reads no pixels. */
int hb_input_open(MPI_Comm comm, const struct hb_job *job, hb_input *in);
/* Read the navigation rectangle [start, start+count) × whole signal, in the
 * file's own dtype, into buf.  Independent I/O; whole chunks when the
 * rectangle is chunk-aligned.  On failure, names the file, dataset, block and
 * the first chunk that fails to read. */
int hb_input_read(hb_input *in, const hsize_t *start, const hsize_t *count,
                  void *buf, size_t block_index);
/* The chunks hold whole patterns (the signal axes are not split). */
int hb_input_whole_pattern_chunks(const hb_input *in);
/* Chunk by chunk instead of block by block: for each chunk of the navigation
 * rectangle (whole chunks, hb_input_whole_pattern_chunks), in C order over
 * the chunk grid, fn gets the chunk's offset (all axes) and its values,
 * decoded, in the chunk's full extent (positions past the dataset's edge are
 * junk).  The buffer is the reader's, writable, valid until fn returns; it
 * is small enough to stay in cache while the kernels run on it.  Needs
 * hb_input_streams (the raw reader applies; HB_READ=block turns it off). */
typedef int (*hb_chunk_fn)(void *ctx, const hsize_t *off, void *chunk);
int hb_input_streams(const hb_input *in);
int hb_input_stream(hb_input *in, const hsize_t *start, const hsize_t *count, size_t block_index, hb_chunk_fn fn,
                    void *ctx);
void hb_input_close(hb_input *in);
/* Open in->dataset of in->file and fill dtype, shape, chunks and filters;
 * `where` names the file in errors. */
int hb_input_describe(hb_input *in, const char *where);
size_t hb_input_sig_size(const hb_input *in);
size_t hb_input_nav_size(const hb_input *in);

/* The signals of an .hspy file: the groups of /Experiments holding a
 * `data` dataset, in name order; the first 16 names, and how many there
 * are.  -1 if /Experiments cannot be opened. */
typedef struct {
  char names[16][256];
  int n, total;
} hb_signal_names;
int hb_hspy_list_signals(hid_t file, hb_signal_names *out);
/* Navigation axes of a generic HDF5 array when the job does not say: a 4-D
 * array is a 2-D scan of images, a 2-D one a line of spectra; otherwise -1
 * (input.navigation_dimension must say). */
int hb_default_nav_dim(int ndim);
/* Read "axis-i" groups of a signal group (attributes per hspy-notes). */
int hb_hspy_read_axes(hid_t group, int ndim, const hsize_t *shape, hb_axis *axes);
/* A signal_type whose HyperSpy 1.7.3 class (one signal axis) makes that
 * axis binned: EELS ("TEM EELS"), EDS_SEM, EDS_TEM. */
int hb_hspy_binned_type(const char *signal_type);
/* Read a string attribute (fixed or variable length) into buf; 0 if absent. */
int hb_h5_read_attr_str(hid_t obj, const char *name, char *buf, size_t n);

/* ---- writing ------------------------------------------------------------ */

/* Who encodes HDF5's deflate filter in this process: "libdeflate" (this
 * executable's compress2, src/output/hdf5_deflate.c) or "zlib" (HB_WRITE=hdf5). */
const char *hb_hdf5_deflate_encoder(void);

/* Create an .hspy file (format 3.1) with /Experiments.  comm == MPI_COMM_NULL
 * opens it serially; otherwise collectively with MPI-IO (with the job's hints
 * in `info`, or MPI_INFO_NULL), and every later call
 * on it must be made by all ranks with identical arguments (HDF5's rule for
 * metadata in parallel). */
int hb_hspy_create(const char *path, MPI_Comm comm, MPI_Info info, hid_t *file);
int hb_hspy_close(hid_t file);

typedef struct {
  const char *name;            /* group name under /Experiments */
  const char *title;           /* metadata General/title */
  const char *original_filename;
  const char *signal_type;     /* "" is fine */
  const char *quantity;        /* NULL to omit */
  hb_dtype dtype;
  int ndim;
  const hsize_t *shape;
  const hsize_t *chunk;        /* NULL: HyperSpy's default chunk rule */
  const hb_axis *axes;         /* ndim axes, array order */
  int gzip;                    /* gzip level 4 + shuffle */
} hb_signal_desc;

/* Create /Experiments/<name> with data (chunked, allocated early, never
 * filled), axis-i groups, metadata (General, Signal, _HyperSpy/Folding) and an
 * empty original_metadata.  Returns the open group and dataset. */
int hb_hspy_signal_create(hid_t file, const hb_signal_desc *d, hid_t *group, hid_t *dset);

/* A ragged signal (HyperSpy's layout, docs/hyperspy-semantics.md): d's
 * shape and axes are the navigation's; `data` holds a variable-length list
 * of d->dtype per position (the flattened records), `ragged_shapes` each
 * list's int64 shape.  Serial files only (parallel HDF5 writes no vlen). */
int hb_hspy_ragged_create(hid_t file, const hb_signal_desc *d, hid_t *group, hid_t *data, hid_t *shapes);

/* HyperSpy's default chunk rule (target 1e6 bytes), hspy-notes "Chunks". */
void hb_hspy_default_chunks(int ndim, const hsize_t *shape, int nav_dim,
                            size_t elem_size, hsize_t *chunk);

/* Metadata-tree helpers (hspy-notes "How values are stored").  `path` may
 * contain '/' and intermediate groups are created as needed. */
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

#endif
