/* Raw chunk reads: H5Dread_chunk, then our own inflate (libdeflate) and
 * unshuffle, bypassing HDF5's filter pipeline and chunk cache.  Private to
 * the readers (input.c). */
#ifndef HB_CHUNKREAD_H
#define HB_CHUNKREAD_H

#include "hb_input.h"

typedef struct hb_chunkreader hb_chunkreader;

/* *out is NULL when the raw path does not apply (other filters, byte order
 * other than native, contiguous layout, or HB_READ=hdf5 in the environment).
 * Chunks are read on the calling thread and decoded on `nthreads` threads. */
int hb_chunkreader_open(const hb_input *in, int nthreads, hb_chunkreader **out);
int hb_chunkreader_read(hb_chunkreader *r, const hb_input *in, const hsize_t *start, const hsize_t *count, void *buf,
                        size_t block_index, const hb_chunk_filter *only);
void hb_chunkreader_close(hb_chunkreader *r);
/* The dataset has filters for hb_chunkreader_read to undo.  Unfiltered
 * blocks read faster through HDF5, which places chunks straight into the
 * block (6.0 against 4.6 GB/s on 2 ranks), so only the stream reads them. */
int hb_chunkreader_decodes(const hb_chunkreader *r);
/* Chunk by chunk, for chunks that hold whole patterns (hb_input_stream). */
int hb_chunkreader_stream(hb_chunkreader *r, const hb_input *in, const hsize_t *start, const hsize_t *count,
                          size_t block_index, hb_chunk_fn fn, void *ctx);
/* The blocks this reader handles are whole chunks (or end at the dataset's
 * edge); anything else goes through HDF5. */
int hb_chunkreader_fits(const hb_input *in, const hsize_t *start, const hsize_t *count);
/* The chunks a navigation rectangle (whole signal) covers, one at a time
 * in C order over the chunk grid:
 *   hb_chunk_walk w; hb_chunk_walk_start(&w, in, start, count);
 *   do { ... w.off is the chunk's offset (all axes) ... } while (hb_chunk_walk_next(&w)); */
typedef struct {
  const hb_input *in;
  hsize_t first[HB_MAXDIM], last[HB_MAXDIM], idx[HB_MAXDIM];
  hsize_t off[HB_MAXDIM];
} hb_chunk_walk;
void hb_chunk_walk_start(hb_chunk_walk *w, const hb_input *in, const hsize_t *start, const hsize_t *count);
int hb_chunk_walk_next(hb_chunk_walk *w); /* 0 after the last chunk */
/* The chunk at off (all axes) is one `only` refuses (hb_chunk_filter; NULL
 * refuses none). */
int hb_chunk_refused(const hb_input *in, const hsize_t *off, const hb_chunk_filter *only);
/* "block 3 (navigation [5:10, 0:50], 250 patterns)", for messages. */
void hb_block_desc(const hb_input *in, const hsize_t *start, const hsize_t *count, size_t block_index, char *buf,
                   size_t n);
/* HDF5's shuffle filter, inverted: all nelem elements, or elements
 * [first, first + count) of a shuffled buffer of n into out. */
void hb_unshuffle(const unsigned char *in, unsigned char *out, size_t nelem, size_t esize);
void hb_unshuffle_range(const unsigned char *in, size_t n, size_t es, size_t first, size_t count,
                        unsigned char *out);

#endif
