/* Writing HyperSpy .hspy files (format 3.1): the results.  See
 * docs/hspy-format.md.  Reading is hb_input.h, attributes hb_h5.h. */
#ifndef HB_HSPY_H
#define HB_HSPY_H

#include <hdf5.h>
#include <mpi.h>
#include <stdint.h>
#include "hb_dtype.h"
#include "hb_input.h"

/* Who encodes HDF5's deflate filter in this process (this executable's
 * compress2, src/output/hdf5_deflate.c): "isal level 1" (output.gzip_effort
 * fast, the default), "libdeflate" (small) or "zlib" (HB_WRITE=hdf5). */
const char *hb_hdf5_deflate_encoder(void);
void hb_hdf5_deflate_set_effort(int small);
/* gzip_effort fast's encoder: src as one zlib stream (ISA-L level 1) into
 * dest; its length, or 0 where it does not fit in cap. */
size_t hb_gzip_fast(const void *src, size_t src_len, void *dest, size_t cap);

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
  const char *link_file;       /* set: `data` is an HDF5 external link to */
  const char *link_dataset;    /* this dataset of that file, written by no one */
} hb_signal_desc;

/* Create /Experiments/<name> with data (chunked, allocated early, never
 * filled; or an external link, *dset then -1), axis-i groups, metadata
 * (General, Signal, _HyperSpy/Folding) and an empty original_metadata.
 * Returns the open group and dataset. */
int hb_hspy_signal_create(hid_t file, const hb_signal_desc *d, hid_t *group, hid_t *dset);

/* A ragged signal (HyperSpy's layout, docs/hyperspy-semantics.md): d's
 * shape and axes are the navigation's; `data` holds a variable-length list
 * of d->dtype per position (the flattened records), `ragged_shapes` each
 * list's int64 shape.  Serial files only (parallel HDF5 writes no vlen). */
int hb_hspy_ragged_create(hid_t file, const hb_signal_desc *d, hid_t *group, hid_t *data, hid_t *shapes);

/* HyperSpy's default chunk rule (target 1e6 bytes), hspy-notes "Chunks". */
void hb_hspy_default_chunks(int ndim, const hsize_t *shape, int nav_dim,
                            size_t elem_size, hsize_t *chunk);

#endif
