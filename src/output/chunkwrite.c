/* Whole-chunk result writes (see chunkwrite.h).
 *
 * HDF5's collective filtered write of ten small navigation results spent
 * most of the write phase in zlib (a deflateInit for every chunk) and in
 * per-element selection iterators; libdeflate encodes the same chunks about
 * eight times faster, and H5Dwrite_chunk stores them as they are.
 *
 * Parallel HDF5 needs every rank to make the same metadata changes, and
 * storing a filtered chunk allocates file space and updates the chunk index.
 * So each rank encodes its own chunks, every rank receives all of them (in
 * batches of at most BATCH_BYTES) and stores every one, in the same order:
 * the raw bytes are written once per rank, identically.  Results are small
 * next to the input, so this costs little. */
#include "chunkwrite.h"

#include <libdeflate.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hb_error.h"
#include "hb_settings.h"

/* The datasets' deflate filter records level 4 (what HDF5 would use if the
 * file were modified later); a reader never needs the level.  On these small
 * chunks libdeflate's level 1 takes a third fewer instructions than its
 * level 4, and its output is as small as HDF5's zlib at level 4 (ten
 * virtual images of the benchmark input: 197,600 against 197,702 bytes). */
#define LEVEL 1
#define BATCH_BYTES ((size_t)16 << 20)  /* encoded chunks gathered at once */
#define META (HB_MAXDIM + 3)            /* per chunk: dataset, tag, offset[HB_MAXDIM], size */

struct hb_chunkwriter {
  hb_chunkw_dset *dsets;
  int ndsets;
  struct libdeflate_compressor *deflater;
  unsigned char *shuffled; /* one chunk */
  unsigned char *enc;      /* this rank's encoded chunks, back to back */
  size_t enc_size, enc_cap;
  uint64_t *meta;          /* META per chunk */
  size_t n, meta_cap;
};

int hb_chunkw_usable(hid_t dset, int *gzip, hsize_t *chunk) {
  if (hb_settings_get()->write_hdf5) return 0;
  hid_t p = H5Dget_create_plist(dset);
  int ok = p >= 0 && H5Pget_layout(p) == H5D_CHUNKED && H5Pget_chunk(p, HB_MAXDIM, chunk) > 0;
  int nf = ok ? H5Pget_nfilters(p) : -1;
  H5Z_filter_t f[2] = {-1, -1};
  for (int i = 0; i < nf && i < 2; i++) {
    unsigned flags, cd[8];
    size_t ncd = 8;
    f[i] = H5Pget_filter2(p, (unsigned)i, &flags, &ncd, cd, 0, NULL, NULL);
  }
  *gzip = nf == 2 && f[0] == H5Z_FILTER_SHUFFLE && f[1] == H5Z_FILTER_DEFLATE;
  if (p >= 0) H5Pclose(p);
  return ok && (nf == 0 || *gzip);
}

void hb_shuffle(const unsigned char *in, unsigned char *out, size_t n, size_t es) {
  /* constant element sizes let the compiler unroll the byte loop */
#define SHUFFLE(ES)                                                    \
  for (size_t i = 0; i < n; i++)                                       \
    for (size_t j = 0; j < (ES); j++) out[j * n + i] = in[i * (ES) + j]
  switch (es) {
  case 2: SHUFFLE(2); break;
  case 4: SHUFFLE(4); break;
  case 8: SHUFFLE(8); break;
  default: SHUFFLE(es); break;
  }
#undef SHUFFLE
}

int hb_chunkw_new(const hb_chunkw_dset *dsets, int ndsets, hb_chunkwriter **out) {
  *out = NULL;
  hb_chunkwriter *w;
  HB_ALLOC(w, 1);
  size_t most = 0;
  for (int i = 0; i < ndsets; i++) most = dsets[i].chunk_bytes > most ? dsets[i].chunk_bytes : most;
  w->dsets = malloc((ndsets ? ndsets : 1) * sizeof *w->dsets);
  w->shuffled = malloc(most ? most : 1);
  w->deflater = libdeflate_alloc_compressor(LEVEL);
  if (!w->dsets || !w->shuffled || !w->deflater) {
    hb_chunkw_free(w);
    HB_RAISE(HB_EINTERNAL, "memory", "out of memory for the result writer");
  }
  memcpy(w->dsets, dsets, ndsets * sizeof *dsets);
  w->ndsets = ndsets;
  *out = w;
  return 0;
}

static int grow(void **p, size_t *cap, size_t need, size_t unit) {
  if (need <= *cap) return 0;
  size_t c = *cap ? *cap : 64;
  while (c < need) c *= 2;
  void *more = realloc(*p, c * unit);
  HB_CHECK(more, HB_EINTERNAL, "memory", "out of memory encoding results");
  *p = more;
  *cap = c;
  return 0;
}

/* Append one stored-form chunk (encoded already) to this rank's list. */
static int append(hb_chunkwriter *w, int di, uint64_t tag, const hsize_t *offset, size_t size) {
  const hb_chunkw_dset *d = &w->dsets[di];
  HB_CALL(grow((void **)&w->meta, &w->meta_cap, (w->n + 1) * META, sizeof *w->meta));
  uint64_t *m = w->meta + w->n * META;
  m[0] = (uint64_t)di;
  m[1] = tag;
  for (int i = 0; i < HB_MAXDIM; i++) m[2 + i] = i < d->ndim ? offset[i] : 0;
  m[META - 1] = size;
  w->enc_size += size;
  w->n++;
  return 0;
}

int hb_chunkw_add(hb_chunkwriter *w, int di, uint64_t tag, const hsize_t *offset, const void *chunk) {
  const hb_chunkw_dset *d = &w->dsets[di];
  size_t bound = d->gzip ? libdeflate_zlib_compress_bound(w->deflater, d->chunk_bytes) : d->chunk_bytes;
  HB_CALL(grow((void **)&w->enc, &w->enc_cap, w->enc_size + bound, 1));
  size_t size = d->chunk_bytes;
  if (d->gzip) {
    const void *src = chunk;
    if (d->esize > 1) {
      hb_shuffle(chunk, w->shuffled, d->chunk_bytes / d->esize, d->esize);
      src = w->shuffled;
    }
    size = libdeflate_zlib_compress(w->deflater, src, d->chunk_bytes, w->enc + w->enc_size, bound);
    HB_CHECK(size > 0, HB_EINTERNAL, "libdeflate", "cannot compress a %zu-byte chunk", d->chunk_bytes);
  } else {
    memcpy(w->enc + w->enc_size, chunk, size);
  }
  return append(w, di, tag, offset, size);
}

int hb_chunkw_add_stored(hb_chunkwriter *w, int di, uint64_t tag, const hsize_t *offset, const void *bytes,
                         size_t size) {
  HB_CALL(grow((void **)&w->enc, &w->enc_cap, w->enc_size + size, 1));
  memcpy(w->enc + w->enc_size, bytes, size);
  return append(w, di, tag, offset, size);
}

size_t hb_chunkw_pending_bytes(const hb_chunkwriter *w) { return w->enc_size; }

/* Chunks [g, end) in batches: the first chunk, then as many as fit in
 * BATCH_BYTES.  Returns the batch's end; *bytes its size. */
static size_t batch_end(const uint64_t *all, size_t g, size_t end, size_t *bytes) {
  size_t g1 = g;
  *bytes = 0;
  while (g1 < end && (g1 == g || *bytes + all[g1 * META + META - 1] <= BATCH_BYTES))
    *bytes += all[g1++ * META + META - 1];
  return g1;
}

/* Where this rank's chunks landed, for the checkpoint (checkpoint.c): the
 * rank that encoded a chunk records it. */
static int record_stored(hb_chunkwriter *w, const uint64_t *mine, size_t n, hb_chunk_table *table) {
  for (size_t k = 0; k < n; k++) {
    const uint64_t *m = mine + k * META;
    hsize_t off[HB_MAXDIM];
    for (int i = 0; i < HB_MAXDIM; i++) off[i] = m[2 + i];
    unsigned mask = 0;
    haddr_t addr = HADDR_UNDEF;
    hsize_t size = 0;
    HB_H5(H5Dget_chunk_info_by_coord(w->dsets[m[0]].id, off, &mask, &addr, &size), "output",
          "cannot locate a stored result chunk");
    HB_CHECK(addr != HADDR_UNDEF && size == m[META - 1] && !mask, HB_EINTERNAL, "output",
             "a stored result chunk is not where HDF5 was asked to put it");
    HB_CALL(hb_chunk_table_add(table, m[0], m[1], (uint64_t)addr, (uint64_t)size));
  }
  return 0;
}

/* Every rank's chunk list, then the encoded bytes batch by batch, on every
 * rank; then every rank stores every chunk.  A rank that fails goes on
 * taking part (storing nothing more) so that no rank waits forever. */
int hb_chunkw_write(hb_chunkwriter *w, MPI_Comm comm, const char *where, hb_chunk_table *stored) {
  int nranks, rank;
  HB_MPI(MPI_Comm_size(comm, &nranks));
  HB_MPI(MPI_Comm_rank(comm, &rank));
  int *cnt = calloc(nranks, sizeof *cnt), *disp = calloc(nranks + 1, sizeof *disp);
  int *rcnt = calloc(nranks, sizeof *rcnt), *rdisp = calloc(nranks, sizeof *rdisp);
  int mine = w->n < INT_MAX / META ? (int)w->n : -1;
  int rc = !cnt || !disp || !rcnt || !rdisp || mine < 0 || hb_fault("chunk_write")
               ? HB_FAIL(HB_EINTERNAL, where, "out of memory (or too many chunks) writing results")
               : 0;
  if ((rc = hb_agree(comm, rc))) {
    free(cnt), free(disp), free(rcnt), free(rdisp);
    return rc;
  }
  HB_MPI(MPI_Allgather(&mine, 1, MPI_INT, cnt, 1, MPI_INT, comm));
  size_t total = 0;
  for (int r = 0; r < nranks; r++) {
    disp[r] = (int)total;
    total += (size_t)cnt[r];
  }
  disp[nranks] = (int)total;
  uint64_t *all = total < INT_MAX / META ? malloc((total ? total : 1) * META * sizeof *all) : NULL;
  unsigned char *batch = NULL;
  rc = hb_agree(comm, all ? 0 : HB_FAIL(HB_EINTERNAL, where, "out of memory gathering result chunks"));
  if (!rc) {
    for (int r = 0; r < nranks; r++) rcnt[r] = cnt[r] * META, rdisp[r] = disp[r] * META;
    static uint64_t none;
    HB_MPI(MPI_Allgatherv(w->n ? w->meta : &none, mine * META, MPI_UINT64_T, all, rcnt, rdisp, MPI_UINT64_T, comm));
    size_t most = 1, bytes;
    for (size_t g = 0; g < total;) {
      g = batch_end(all, g, total, &bytes);
      if (bytes > most) most = bytes;
    }
    batch = most <= INT_MAX ? malloc(most) : NULL;
    rc = hb_agree(comm, batch ? 0 : HB_FAIL(HB_EINTERNAL, where, "out of memory gathering result chunks"));
  }
  size_t sent = 0; /* bytes of this rank's buffer gathered so far */
  int failed = 0;
  for (size_t g = 0, g1, bytes; g < total && !rc; g = g1) {
    g1 = batch_end(all, g, total, &bytes);
    for (int r = 0, at = 0; r < nranks; r++) { /* each rank's chunks in [g, g1) */
      size_t lo = g > (size_t)disp[r] ? g : (size_t)disp[r];
      size_t hi = g1 < (size_t)disp[r + 1] ? g1 : (size_t)disp[r + 1];
      size_t b = 0;
      for (size_t k = lo; k < hi; k++) b += all[k * META + META - 1];
      rcnt[r] = (int)b;
      rdisp[r] = at;
      at += (int)b;
    }
    HB_MPI(MPI_Allgatherv(w->enc_size ? w->enc + sent : batch, rcnt[rank], MPI_BYTE, batch, rcnt, rdisp, MPI_BYTE,
                          comm));
    sent += (size_t)rcnt[rank];
    for (size_t k = g, at = 0; k < g1 && !failed; k++) {
      const uint64_t *m = all + k * META;
      hsize_t off[HB_MAXDIM];
      for (int i = 0; i < HB_MAXDIM; i++) off[i] = m[2 + i];
      failed = H5Dwrite_chunk(w->dsets[m[0]].id, H5P_DEFAULT, 0, off, m[META - 1], batch + at) < 0;
      at += m[META - 1];
    }
  }
  /* this rank's file metadata is now behind the others': the run must stop */
  if (!rc && failed) rc = HB_FAIL(HB_EIO, where, "cannot write a result chunk (%s)", hb_io_error_text());
  if (!rc && stored) rc = record_stored(w, all + (size_t)disp[rank] * META, (size_t)cnt[rank], stored);
  free(batch), free(all), free(cnt), free(disp), free(rcnt), free(rdisp);
  w->n = w->enc_size = 0;
  return hb_agree(comm, rc);
}

/* ---- the table of stored chunks ------------------------------------------ */

int hb_chunk_table_add(hb_chunk_table *t, uint64_t dset, uint64_t chunk, uint64_t addr, uint64_t size) {
  HB_CALL(grow((void **)&t->rows, &t->cap, t->n + 1, sizeof *t->rows));
  t->rows[t->n++] = (hb_chunk_row){dset, chunk, addr, size};
  return 0;
}

void hb_chunk_table_free(hb_chunk_table *t) {
  free(t->rows);
  memset(t, 0, sizeof *t);
}

void hb_chunkw_free(hb_chunkwriter *w) {
  if (!w) return;
  if (w->deflater) libdeflate_free_compressor(w->deflater);
  free(w->dsets);
  free(w->shuffled);
  free(w->enc);
  free(w->meta);
  free(w);
}
