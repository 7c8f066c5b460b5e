/* The input: one array of an HDF5 file, opened lazily.  A reader per file
 * format (src/readers/<format>.c) finds the arrays a job may pick and their
 * calibration; reading pixels is common to all (docs/job-format.md "Input
 * formats"). */
#ifndef HB_INPUT_H
#define HB_INPUT_H

#include <hdf5.h>
#include <mpi.h>
#include "hb_dtype.h"

#define HB_MAXDIM 8

typedef struct {
  char name[64];   /* "" if the file has none */
  char units[64];  /* "" if the file has none */
  double scale, offset;
  hsize_t size;
  int navigate;
  int is_binned;   /* HyperSpy's axis.is_binned as 1.7.3 loads it (hb_input_open) */
  /* A non-uniform axis (HyperSpy's DataAxis): its npoints values, owned by
   * the hb_input it came from (freed by hb_input_free_axes); NULL when
   * uniform.  scale and offset are its line through the first and last
   * point, which the kernels compute with.  A result that keeps the axis
   * unchanged writes the points (hb_axis_points). */
  const double *points;
  hsize_t npoints;
} hb_axis;

/* The points to write for an axis of `size` values: the axis' own when it
 * is still the one they describe (same size, first point and line), else
 * NULL (binned or recalibrated: uniform; a crop points at its part). */
const double *hb_axis_points(const hb_axis *a, hsize_t size);
/* Set ax's calibration from n points: kept as non-uniform (taking pts) when
 * they do not lie on their line within 1e-9 of its span, else freed. */
void hb_axis_from_points(hb_axis *ax, double *pts, hsize_t n);

typedef struct hb_input {
  char path[4096];       /* resolved path */
  char format[16];       /* hspy, emd, nexus or hdf5 (hb_input_formats) */
  char dataset[512];     /* e.g. /Experiments/scan/data */
  char signal[256];      /* the picked candidate's name (input.signal), "" for generic HDF5 */
  char title[256];
  char signal_type[64];
  /* what every result carries over (src/output/carry.c): the input's
   * HyperSpy metadata tree, and the group whose contents go into
   * original_metadata (under original_as, or merged when ""); "" if none */
  char meta_group[640];
  int meta_mapped_parameters; /* meta_group is a pre-1.2 .hspy's mapped_parameters (carry.c rearranges it) */
  int meta_before_3;          /* ...or a pre-3.0 .hspy's metadata (carry.c moves a few items, as HyperSpy) */
  char original_group[640];
  char original_as[256];
  int ndim, nav_dim, sig_dim;
  int virtual_nav;           /* 1: a single pattern; axis 0 (size 1) is not in the file */
  hsize_t shape[HB_MAXDIM];
  hsize_t chunk[HB_MAXDIM];  /* contiguous datasets: the pieces blocks are made of (hb_input_open) */
  int chunked;
  hb_dtype dtype;            /* as the kernels see the pixels */
  char file_dtype[16];       /* the file's, where it differs: float16 (read as float32), bool (as uint8) */
  hid_t mem_type;            /* what HDF5 reads the pixels as: dtype's type, or the file's bool enum */
  hb_axis axes[HB_MAXDIM];
  char filters[256];         /* "gzip(4)+shuffle", "none" */
  long long file_size;
  long long mtime;           /* seconds since the epoch */
  hid_t file, dset, fspace;  /* open while the job runs */
  struct hb_chunkreader *raw; /* raw chunk reader, NULL: HDF5 reads (chunkread.h) */
} hb_input;

struct hb_job;
/* Collective: open the job's input with an MPI-IO file access property list,
 * detect its format (or take input.format), pick the array, read shape,
 * dtype, chunks, filters and calibration, and apply the job's overrides.
 * Reads no pixels. */
int hb_input_open(MPI_Comm comm, const struct hb_job *job, hb_input *in);
/* Which chunks of a block a read needs: wanted(ctx, off, cnt) is asked for
 * each chunk of the block's navigation grid (its offset and extent on the
 * navigation axes), and the positions of the chunks it refuses are zeros in
 * the block.  The read sets `positions` to the positions it read. */
typedef struct hb_chunk_filter {
  int (*wanted)(void *ctx, const hsize_t *off, const hsize_t *cnt);
  void *ctx;
  size_t positions;
} hb_chunk_filter;
/* Read the navigation rectangle [start, start+count) × whole signal, in the
 * file's own dtype, into buf: all of it, or the chunks `only` wants (NULL:
 * all).  Independent I/O; whole chunks when the rectangle is chunk-aligned.
 * On failure, names the file, dataset, block and the first chunk that fails
 * to read. */
int hb_input_read(hb_input *in, const hsize_t *start, const hsize_t *count,
                  void *buf, size_t block_index, hb_chunk_filter *only);
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
/* Close what describing one array opened (hb_input_describe_candidate:
 * dataset, dataspace, read type, axis points), leaving the file open. */
void hb_input_release_array(hb_input *in);
/* Free the points of in's non-uniform axes (hb_input_close does). */
void hb_input_free_axes(hb_input *in);
/* Open in->dataset of in->file and fill dtype, shape, chunks and filters;
 * `where` names the file in errors. */
int hb_input_describe(hb_input *in, const char *where);
size_t hb_input_sig_size(const hb_input *in);
size_t hb_input_nav_size(const hb_input *in);

/* ---- formats and the arrays a job may pick ------------------------------ */

/* An array a job may pick: `name` is what input.signal (input.dataset for
 * generic HDF5) says, `dataset` the array's path, `group` where its
 * calibration lives ("" if nowhere). */
typedef struct {
  char name[256];
  char dataset[512];
  char group[512];
} hb_candidate;
typedef struct {
  hb_candidate *items;
  int n;
} hb_candidates;
void hb_candidates_free(hb_candidates *c);

/* input.format's choices besides auto, one reader each (src/readers/<format>.c). */
#define HB_INPUT_FORMATS "hspy|emd|nexus|hdf5"
/* The format a file's structure says (hdf5 when no other matches). */
const char *hb_input_detect(hid_t file);
/* Every array of `format` in file order (hdf5: every dataset of 2 or more
 * dimensions).  Errors say what is wrong with the file. */
int hb_input_candidates(hid_t file, const char *format, const char *where, hb_candidates *out);
/* Which candidate a job picks: by `name` when given, else the only one;
 * errors list what there is, or the closest names.  `key` is the job key
 * that names it, for the message. */
int hb_input_choose(const hb_candidates *c, const char *name, const char *format, const char *where, int *pick);
/* Describe candidate c of file in `format` into in (in->file set; opens
 * in->dset and in->fspace): shape, dtype, filters, calibration and the
 * navigation dimension (-1 when the file does not say). */
int hb_input_describe_candidate(hid_t file, const char *format, const hb_candidate *c, hb_input *in,
                                const char *where);

/* Navigation axes of a generic HDF5 array when the job does not say: a 4-D
 * array is a 2-D scan of images, a 2-D one a line of spectra, a 1-D one a
 * single spectrum; otherwise -1 (input.navigation_dimension must say). */
int hb_default_nav_dim(int ndim);
/* Read "axis-i" groups of a HyperSpy signal group (uniform, DataAxis points,
 * FunctionalDataAxis evaluated); *flagged: how many carry `navigate`. */
int hb_hspy_read_axes(hid_t group, int ndim, const hsize_t *shape, hb_axis *axes, int *flagged, const char *where);
/* A signal_type whose HyperSpy 1.7.3 class (one signal axis) makes that
 * axis binned: EELS ("TEM EELS"), EDS_SEM, EDS_TEM. */
int hb_hspy_binned_type(const char *signal_type);

#endif
