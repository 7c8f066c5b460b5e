/* HDF5 filters beyond gzip and shuffle: their names, where a decoder comes
 * from, and the decoders the raw chunk path runs on its own threads.
 * Private to the readers. */
#ifndef HB_FILTERS_H
#define HB_FILTERS_H

#include <stddef.h>

#include <hdf5.h>

/* Once per process, before the input is opened: Debian's plugin folder for
 * this HDF5 on HDF5's search path (also when HDF5_PLUGIN_PATH names others),
 * and hyperbatch's LZ4, blosc and zstd decoders registered with HDF5
 * (bitshuffle's by hb_filter_available, when a file uses it). */
void hb_filters_init(void);

/* HDF5 can undo this filter (after loading its plugin, if it needs one). */
int hb_filter_available(int id);
/* "lz4", "bitshuffle", ... or NULL for an id hyperbatch does not know. */
const char *hb_filter_name(int id);
/* What to do when HDF5 cannot load the filter: "; on Debian 12: apt install
 * bitshuffle", or why no package helps.  Writes into buf, returns it. */
const char *hb_filter_remedy(int id, char *buf, size_t n);

/* One decoding thread's state (a zstd context, a bitshuffle block buffer). */
typedef struct hb_filter_scratch hb_filter_scratch;
void hb_filter_scratch_free(hb_filter_scratch *s);

/* The raw chunk path can undo this filter with these client values
 * (deflate and shuffle are chunkread.c's own, not listed here). */
int hb_filter_raw_decodes(int id, const unsigned *cd, size_t ncd);
/* Undo the filter on n stored bytes into out (cap bytes); *got is the
 * decoded size.  NULL on success, else why the chunk is bad ("is corrupt
 * (...)").  Thread-safe with one scratch per thread (*scratch starts NULL). */
const char *hb_filter_decode(int id, const unsigned *cd, size_t ncd, const unsigned char *in, size_t n,
                             unsigned char *out, size_t cap, size_t *got, hb_filter_scratch **scratch);

/* Undo bitshuffle's transpose of one block of n elements of es bytes with
 * AVX-512 and GFNI (bitunshuffle.c): 1 if done, 0 if this CPU, n or es
 * needs the library.  hb_bitunshuffle_init first, on one thread. */
void hb_bitunshuffle_init(void);
int hb_bitunshuffle_fast(const unsigned char *in, unsigned char *out, size_t n, size_t es);

#endif
