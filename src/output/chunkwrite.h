/* Whole-chunk result writes: our own shuffle and libdeflate zlib streams
 * (what HDF5's shuffle + deflate filters write, so every reader decodes them
 * alike), stored with H5Dwrite_chunk instead of HDF5's filter pipeline.
 * Private to output.c. */
#ifndef HB_CHUNKWRITE_H
#define HB_CHUNKWRITE_H

#include <mpi.h>
#include <stdint.h>

#include "hb_hspy.h"

typedef struct hb_chunkwriter hb_chunkwriter;

/* Where stored chunks are in the file, for checkpoints (checkpoint.c):
 * `dset` indexes the writer's dataset table, `chunk` is the caller's tag. */
typedef struct {
  uint64_t dset, chunk, addr, size;
} hb_chunk_row;
typedef struct {
  hb_chunk_row *rows;
  size_t n, cap;
} hb_chunk_table;
int hb_chunk_table_add(hb_chunk_table *t, uint64_t dset, uint64_t chunk, uint64_t addr, uint64_t size);
void hb_chunk_table_free(hb_chunk_table *t);

/* A dataset the writer may store chunks of: the same table, in the same
 * order, on every rank. */
typedef struct {
  hid_t id;
  int ndim;
  size_t esize;       /* bytes per element (native type, no conversion) */
  size_t chunk_bytes; /* bytes of one whole chunk */
  int gzip;           /* the dataset has shuffle + deflate, in that order */
} hb_chunkw_dset;

/* Nonzero when dset can take whole-chunk writes: chunked, filtered by
 * exactly shuffle then deflate (*gzip = 1) or by nothing (*gzip = 0), and
 * HB_WRITE=hdf5 is not in the environment.  chunk gets the chunk extent. */
int hb_chunkw_usable(hid_t dset, int *gzip, hsize_t *chunk);
int hb_chunkw_new(const hb_chunkw_dset *dsets, int ndsets, hb_chunkwriter **out);
/* Local: encode one whole chunk (C order over the full chunk extent, edges
 * padded) of dsets[dset] starting at element `offset`; `tag` is the caller's
 * name for it in the table hb_chunkw_write fills. */
int hb_chunkw_add(hb_chunkwriter *w, int dset, uint64_t tag, const hsize_t *offset, const void *chunk);
/* Local: a chunk already in its stored form (a copy from an earlier file). */
int hb_chunkw_add_stored(hb_chunkwriter *w, int dset, uint64_t tag, const hsize_t *offset, const void *bytes,
                         size_t size);
size_t hb_chunkw_pending_bytes(const hb_chunkwriter *w); /* encoded, not yet written */
/* Collective over the file's communicator: store every rank's chunks, then
 * forget them.  With `stored`, each rank appends where its own chunks went. */
int hb_chunkw_write(hb_chunkwriter *w, MPI_Comm comm, const char *where, hb_chunk_table *stored);
void hb_chunkw_free(hb_chunkwriter *w);
/* Exposed for tests: HDF5's shuffle filter (byte j of element i to j * n + i). */
void hb_shuffle(const unsigned char *in, unsigned char *out, size_t nelem, size_t esize);

#endif
