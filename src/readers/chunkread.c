/* Raw chunk reads (see chunkread.h).  HDF5's deflate filter writes zlib
 * streams, which libdeflate inflates about three times faster than zlib; the
 * shuffle filter is undone with SSE2 for 2-byte data; LZ4, bitshuffle,
 * blosc and zstd are undone by filters.c. */
#include "chunkread.h"
#include "filters.h"

#include <libdeflate.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "hb_error.h"
#include "hb_settings.h"

#define MAX_FILTERS 8

/* One decoding thread's scratch. */
typedef struct {
  unsigned char *a, *b;
  struct libdeflate_decompressor *inflater;
  hb_filter_scratch *scratch;
} decoder;

/* A block's chunks as read from the file, before decoding. */
typedef struct {
  hsize_t off[HB_MAXDIM];
  unsigned char *raw;
  size_t cap, size;
  uint32_t mask;
} staged;

struct hb_chunkreader {
  int nfilters;      /* 0: nothing to decode, only hb_chunkreader_stream uses the reader */
  H5Z_filter_t filters[MAX_FILTERS]; /* pipeline order, as written */
  unsigned cd[MAX_FILTERS][8];       /* their client values */
  size_t ncd[MAX_FILTERS];
  size_t esize, chunk_bytes, chunk_elems;
  int nthreads;
  decoder *dec;
  staged *chunks;
  size_t nchunks, chunks_cap;
};

/* Elements [first, first + count) of a shuffled buffer of n elements (byte
 * plane j holds byte j of every element), unshuffled into out.  2-, 4- and
 * 8-byte elements interleave 16 elements at a time; the byte-at-a-time loop
 * ran at a third of the inflate's speed on float32 chunks, and its strided
 * stores made a block's read time swing with where the buffers fell. */
void hb_unshuffle_range(const unsigned char *in, size_t n, size_t es, size_t first, size_t count,
                        unsigned char *out) {
  size_t i = 0;
#ifdef __SSE2__
#define PLANE(j) _mm_loadu_si128((const __m128i *)(in + (j) * n + first + i))
#define STORE(k, v) _mm_storeu_si128((__m128i *)(out + es * i + 16 * (k)), (v))
  if (es == 2) {
    for (; i + 16 <= count; i += 16) {
      __m128i b0 = PLANE(0), b1 = PLANE(1);
      STORE(0, _mm_unpacklo_epi8(b0, b1)), STORE(1, _mm_unpackhi_epi8(b0, b1));
    }
  } else if (es == 4) {
    for (; i + 16 <= count; i += 16) {
      __m128i b0 = PLANE(0), b1 = PLANE(1), b2 = PLANE(2), b3 = PLANE(3);
      __m128i lo01 = _mm_unpacklo_epi8(b0, b1), hi01 = _mm_unpackhi_epi8(b0, b1); /* bytes 0-1 of elements 0-7, 8-15 */
      __m128i lo23 = _mm_unpacklo_epi8(b2, b3), hi23 = _mm_unpackhi_epi8(b2, b3);
      STORE(0, _mm_unpacklo_epi16(lo01, lo23)), STORE(1, _mm_unpackhi_epi16(lo01, lo23));
      STORE(2, _mm_unpacklo_epi16(hi01, hi23)), STORE(3, _mm_unpackhi_epi16(hi01, hi23));
    }
  } else if (es == 8) {
    for (; i + 16 <= count; i += 16) {
      __m128i pair[4][2], quad[2][4]; /* bytes 2p..2p+1, then 4q..4q+3, of elements 0-3, 4-7, 8-11, 12-15 */
      for (int p = 0; p < 4; p++) {
        __m128i a = PLANE(2 * p), b = PLANE(2 * p + 1);
        pair[p][0] = _mm_unpacklo_epi8(a, b), pair[p][1] = _mm_unpackhi_epi8(a, b);
      }
      for (int q = 0; q < 2; q++)
        for (int h = 0; h < 2; h++) {
          quad[q][2 * h] = _mm_unpacklo_epi16(pair[2 * q][h], pair[2 * q + 1][h]);
          quad[q][2 * h + 1] = _mm_unpackhi_epi16(pair[2 * q][h], pair[2 * q + 1][h]);
        }
      for (int g = 0; g < 4; g++) { /* elements 4g..4g+3: bytes 0-3 from quad[0], 4-7 from quad[1] */
        STORE(2 * g, _mm_unpacklo_epi32(quad[0][g], quad[1][g]));
        STORE(2 * g + 1, _mm_unpackhi_epi32(quad[0][g], quad[1][g]));
      }
    }
  }
#undef PLANE
#undef STORE
#endif
  for (size_t j = 0; j < es; j++)
    for (size_t k = i; k < count; k++) out[k * es + j] = in[j * n + first + k];
}

void hb_unshuffle(const unsigned char *in, unsigned char *out, size_t n, size_t es) {
  hb_unshuffle_range(in, n, es, 0, n, out);
}

/* Decoders 0..n-1 allocated: two chunk buffers and an inflater each.  The
 * stream uses only the first; block reads on run.threads threads, all. */
static int decoders_ready(hb_chunkreader *r, int n) {
  for (int t = 0; t < n; t++) {
    decoder *d = &r->dec[t];
    if (!d->a) d->a = malloc(r->chunk_bytes);
    if (!d->b) d->b = malloc(r->chunk_bytes);
    if (!d->inflater) d->inflater = libdeflate_alloc_decompressor();
    HB_CHECK(d->a && d->b && d->inflater, HB_EINTERNAL, "memory", "out of memory for chunk buffers (%zu bytes each)",
             r->chunk_bytes);
  }
  return 0;
}

int hb_chunkreader_open(const hb_input *in, int nthreads, hb_chunkreader **out) {
  *out = NULL;
  /* a single pattern (in->virtual_nav) is one read through HDF5 */
  if (hb_settings_get()->read_hdf5 || !in->chunked || in->virtual_nav) return 0;
  hid_t ft = H5Dget_type(in->dset);
  /* the file's bytes are the pixels' (float16 is converted by HDF5; a
   * complex compound must be r, i as this machine's doubles or floats) */
  int native = hb_dtype_is_complex(in->dtype)
                   ? H5Tequal(ft, hb_dtype_h5(in->dtype)) > 0
                   : H5Tget_order(ft) == H5Tget_order(hb_dtype_h5(in->dtype)) && H5Tget_size(ft) == hb_dtype_size(in->dtype);
  H5Tclose(ft);
  if (!native) return 0;
  hb_chunkreader r = {0};
  hid_t dcpl = H5Dget_create_plist(in->dset);
  r.nfilters = H5Pget_nfilters(dcpl);
  int ok = r.nfilters >= 0 && r.nfilters <= MAX_FILTERS;
  for (int i = 0; ok && i < r.nfilters; i++) {
    unsigned flags;
    r.ncd[i] = 8;
    r.filters[i] = H5Pget_filter2(dcpl, (unsigned)i, &flags, &r.ncd[i], r.cd[i], 0, NULL, NULL);
    if (r.ncd[i] > 8) r.ncd[i] = 8;
    ok = r.filters[i] == H5Z_FILTER_DEFLATE || r.filters[i] == H5Z_FILTER_SHUFFLE ||
         hb_filter_raw_decodes((int)r.filters[i], r.cd[i], r.ncd[i]);
  }
  H5Pclose(dcpl);
  if (!ok) return 0; /* HDF5's own pipeline decodes what we don't */
  r.esize = hb_dtype_size(in->dtype);
  r.chunk_elems = 1;
  for (int d = 0; d < in->ndim; d++) r.chunk_elems *= in->chunk[d];
  r.chunk_bytes = r.chunk_elems * r.esize;
  r.nthreads = nthreads < 1 ? 1 : nthreads;
  hb_chunkreader *p = malloc(sizeof *p);
  HB_CHECK(p, HB_EINTERNAL, "memory", "out of memory");
  *p = r;
  p->dec = calloc((size_t)p->nthreads, sizeof *p->dec);
  /* the other threads' decoders when a block read first needs them */
  int rc = p->dec ? decoders_ready(p, 1) : HB_FAIL(HB_EINTERNAL, "memory", "out of memory");
  if (rc) {
    hb_chunkreader_close(p);
    return rc;
  }
  *out = p;
  return 0;
}

void hb_chunkreader_close(hb_chunkreader *r) {
  if (!r) return;
  for (int t = 0; r->dec && t < r->nthreads; t++) {
    free(r->dec[t].a);
    free(r->dec[t].b);
    if (r->dec[t].inflater) libdeflate_free_decompressor(r->dec[t].inflater);
    hb_filter_scratch_free(r->dec[t].scratch);
  }
  free(r->dec);
  for (size_t i = 0; i < r->chunks_cap; i++) free(r->chunks[i].raw);
  free(r->chunks);
  free(r);
}

void hb_block_desc(const hb_input *in, const hsize_t *start, const hsize_t *count, size_t block_index, char *buf,
                   size_t n) {
  int len = snprintf(buf, n, "block %zu (navigation [", block_index);
  hsize_t npos = 1;
  for (int d = 0; d < in->nav_dim && len < (int)n; d++) {
    len += snprintf(buf + len, n - (size_t)len, "%s%llu:%llu", d ? ", " : "", (unsigned long long)start[d],
                    (unsigned long long)(start[d] + count[d]));
    npos *= count[d];
  }
  if (len < (int)n) snprintf(buf + len, n - (size_t)len, "], %llu patterns)", (unsigned long long)npos);
}

static const char *chunk_name(const hb_input *in, const hsize_t *off) {
  static char buf[256];
  int len = snprintf(buf, sizeof buf, "chunk at (");
  for (int d = 0; d < in->ndim && len < (int)sizeof buf; d++)
    len += snprintf(buf + len, sizeof buf - (size_t)len, "%s%llu", d ? ", " : "", (unsigned long long)off[d]);
  if (len < (int)sizeof buf) snprintf(buf + len, sizeof buf - (size_t)len, ")");
  return buf;
}

/* Read one chunk's stored bytes (HDF5 calls stay on the calling thread:
 * this HDF5 is not thread-safe).  H5Dget_chunk_info_by_coord + pread was
 * measured slower: in HDF5 1.10.8 that lookup takes ~16 us per chunk, where
 * this pair takes 17 us with the read. */
static int stage_chunk(const hb_input *in, staged *c, const char *block) {
  hsize_t stored = 0;
  if (H5Dget_chunk_storage_size(in->dset, c->off, &stored) < 0 || stored == 0)
    HB_RAISE(HB_EIO, in->path, "dataset %s: %s: %s is missing or unreadable (%s)", in->dataset, block,
             chunk_name(in, c->off), hb_h5_error_text());
  if (stored > c->cap) {
    unsigned char *bigger = realloc(c->raw, stored);
    HB_CHECK(bigger, HB_EINTERNAL, "memory", "out of memory for a %llu-byte chunk", (unsigned long long)stored);
    c->raw = bigger;
    c->cap = stored;
  }
  c->size = stored;
  c->mask = 0;
  if (H5Dread_chunk(in->dset, H5P_DEFAULT, c->off, &c->mask, c->raw) < 0)
    HB_RAISE(HB_EIO, in->path, "dataset %s: %s: %s cannot be read (%s)", in->dataset, block, chunk_name(in, c->off),
             hb_h5_error_text());
  return 0;
}

/* Undo the filters of a staged chunk; *data points at chunk_bytes of values,
 * still shuffled when *shuffled is set: a shuffle that is the last step is
 * left to place_chunk, which unshuffles straight into the block (one pass
 * over the chunk instead of two).  Thread-safe: touches only the decoder
 * given.  Returns a reason on failure. */
static const char *decode_chunk(const hb_chunkreader *r, decoder *dec, const staged *c, const unsigned char **data,
                                int *shuffled) {
  const unsigned char *cur = c->raw;
  size_t cur_size = c->size;
  *shuffled = 0;
  for (int i = r->nfilters - 1; i >= 0; i--) {
    if (c->mask & (1u << i)) continue; /* this filter was skipped when the chunk was written */
    int last = 1;
    for (int j = 0; j < i; j++) last &= (c->mask >> j) & 1;
    if (last && r->filters[i] == H5Z_FILTER_SHUFFLE) {
      if (cur_size != r->chunk_bytes) return "has the wrong size for its shuffle filter";
      *shuffled = 1;
      break;
    }
    unsigned char *dst = cur == dec->a ? dec->b : dec->a;
    if (r->filters[i] == H5Z_FILTER_DEFLATE) {
      size_t got = 0;
      enum libdeflate_result res = libdeflate_zlib_decompress(dec->inflater, cur, cur_size, dst, r->chunk_bytes, &got);
      if (res == LIBDEFLATE_BAD_DATA) return "is corrupt (inflate failed: bad compressed data)";
      if (res != LIBDEFLATE_SUCCESS || got != r->chunk_bytes) return "is corrupt (inflate failed: wrong size)";
    } else if (r->filters[i] == H5Z_FILTER_SHUFFLE) {
      if (cur_size != r->chunk_bytes) return "has the wrong size for its shuffle filter";
      hb_unshuffle(cur, dst, r->chunk_elems, r->esize);
    } else {
      size_t got = 0;
      const char *why = hb_filter_decode((int)r->filters[i], r->cd[i], r->ncd[i], cur, cur_size, dst, r->chunk_bytes,
                                         &got, &dec->scratch);
      if (why) return why;
      if (got != r->chunk_bytes) return "is corrupt (decodes to the wrong size)";
    }
    cur = dst;
    cur_size = r->chunk_bytes;
  }
  if (cur_size != r->chunk_bytes) return "has the wrong size";
  *data = cur;
  return NULL;
}

/* Copy the valid part of a chunk into the block buffer, in runs as long as
 * the two layouts allow; unshuffling on the way when src is shuffled, zeros
 * when src is NULL. */
static void place_chunk(const hb_input *in, const unsigned char *src, int shuffled, size_t chunk_elems,
                        const hsize_t *off, const hsize_t *bstart, const hsize_t *bdims, unsigned char *dst,
                        size_t es) {
  int nd = in->ndim;
  hsize_t valid[HB_MAXDIM] = {0}, pos[HB_MAXDIM], sstride[HB_MAXDIM], dstride[HB_MAXDIM];
  for (int d = 0; d < nd; d++) {
    valid[d] = off[d] + in->chunk[d] > in->shape[d] ? in->shape[d] - off[d] : in->chunk[d];
    pos[d] = off[d] - bstart[d];
  }
  sstride[nd - 1] = dstride[nd - 1] = 1;
  for (int d = nd - 2; d >= 0; d--) {
    sstride[d] = sstride[d + 1] * in->chunk[d + 1];
    dstride[d] = dstride[d + 1] * bdims[d + 1];
  }
  /* dims after k are whole in both layouts, so a run along k is contiguous */
  int k = nd - 1;
  size_t run = valid[nd - 1];
  while (k > 0 && valid[k] == in->chunk[k] && valid[k] == bdims[k]) run *= valid[--k];
  size_t doff0 = 0;
  for (int d = 0; d < nd; d++) doff0 += pos[d] * dstride[d];
  hsize_t idx[HB_MAXDIM] = {0};
  for (;;) {
    size_t so = 0, dof = doff0;
    for (int d = 0; d < k; d++) so += idx[d] * sstride[d], dof += idx[d] * dstride[d];
    if (!src) memset(dst + dof * es, 0, run * es); /* a chunk the read leaves out */
    else if (shuffled) hb_unshuffle_range(src, chunk_elems, es, so, run, dst + dof * es);
    else memcpy(dst + dof * es, src + so * es, run * es);
    int d = k - 1;
    while (d >= 0 && ++idx[d] == valid[d]) idx[d--] = 0;
    if (d < 0) break;
  }
}

static void walk_offset(hb_chunk_walk *w) {
  for (int d = 0; d < w->in->ndim; d++) w->off[d] = w->idx[d] * w->in->chunk[d];
}

void hb_chunk_walk_start(hb_chunk_walk *w, const hb_input *in, const hsize_t *start, const hsize_t *count) {
  w->in = in;
  for (int d = 0; d < in->ndim; d++) {
    hsize_t s = d < in->nav_dim ? start[d] : 0, n = d < in->nav_dim ? count[d] : in->shape[d];
    w->first[d] = w->idx[d] = s / in->chunk[d];
    w->last[d] = (s + n - 1) / in->chunk[d];
  }
  walk_offset(w);
}

int hb_chunk_walk_next(hb_chunk_walk *w) {
  int d = w->in->ndim - 1;
  while (d >= 0 && ++w->idx[d] > w->last[d]) w->idx[d] = w->first[d], d--;
  if (d < 0) return 0;
  walk_offset(w);
  return 1;
}

int hb_chunk_refused(const hb_input *in, const hsize_t *off, const hb_chunk_filter *only) {
  if (!only) return 0;
  hsize_t cnt[HB_MAXDIM];
  for (int d = 0; d < in->nav_dim; d++)
    cnt[d] = off[d] + in->chunk[d] > in->shape[d] ? in->shape[d] - off[d] : in->chunk[d];
  return !only->wanted(only->ctx, off, cnt);
}

int hb_chunkreader_fits(const hb_input *in, const hsize_t *start, const hsize_t *count) {
  for (int d = 0; d < in->nav_dim; d++)
    if (start[d] % in->chunk[d] || (start[d] + count[d] != in->shape[d] && (start[d] + count[d]) % in->chunk[d]))
      return 0;
  return 1;
}

typedef struct {
  hb_chunkreader *r;
  const hb_input *in;
  const hsize_t *bstart, *bdims;
  unsigned char *buf;
  int t;
  size_t failed;      /* index of the first chunk that failed, or nchunks */
  const char *why;
} decode_job;

static void *decode_share(void *arg) {
  decode_job *j = arg;
  hb_chunkreader *r = j->r;
  j->failed = r->nchunks;
  for (size_t i = (size_t)j->t; i < r->nchunks; i += (size_t)r->nthreads) {
    const unsigned char *data = NULL;
    int shuffled = 0;
    const char *why = decode_chunk(r, &r->dec[j->t], &r->chunks[i], &data, &shuffled);
    if (why) {
      j->failed = i, j->why = why;
      break;
    }
    place_chunk(j->in, data, shuffled, r->chunk_elems, r->chunks[i].off, j->bstart, j->bdims, j->buf, r->esize);
  }
  return NULL;
}

int hb_chunkreader_read(hb_chunkreader *r, const hb_input *in, const hsize_t *start, const hsize_t *count, void *buf,
                        size_t block_index, const hb_chunk_filter *only) {
  hsize_t bstart[HB_MAXDIM], bdims[HB_MAXDIM];
  for (int d = 0; d < in->ndim; d++) {
    bstart[d] = d < in->nav_dim ? start[d] : 0;
    bdims[d] = d < in->nav_dim ? count[d] : in->shape[d];
  }
  char block[300];
  hb_block_desc(in, start, count, block_index, block, sizeof block);
  /* read every chunk of the block first, serially */
  r->nchunks = 0;
  hb_chunk_walk cw;
  hb_chunk_walk_start(&cw, in, start, count);
  do {
    if (hb_chunk_refused(in, cw.off, only)) {
      place_chunk(in, NULL, 0, r->chunk_elems, cw.off, bstart, bdims, buf, r->esize);
      continue;
    }
    if (r->nchunks == r->chunks_cap) {
      size_t cap = r->chunks_cap ? 2 * r->chunks_cap : 64;
      staged *more = realloc(r->chunks, cap * sizeof *more);
      HB_CHECK(more, HB_EINTERNAL, "memory", "out of memory staging chunks");
      memset(more + r->chunks_cap, 0, (cap - r->chunks_cap) * sizeof *more);
      r->chunks = more;
      r->chunks_cap = cap;
    }
    staged *c = &r->chunks[r->nchunks++];
    memcpy(c->off, cw.off, sizeof c->off);
    HB_CALL(stage_chunk(in, c, block));
  } while (hb_chunk_walk_next(&cw));
  /* then inflate, unshuffle and place them on run.threads threads */
  HB_CALL(decoders_ready(r, r->nthreads));
  decode_job jobs[r->nthreads];
  pthread_t tid[r->nthreads];
  int started[r->nthreads];
  for (int t = 0; t < r->nthreads; t++) {
    jobs[t] = (decode_job){r, in, bstart, bdims, buf, t, 0, NULL};
    started[t] = t > 0 && r->nchunks > (size_t)t && !pthread_create(&tid[t], NULL, decode_share, &jobs[t]);
  }
  decode_share(&jobs[0]);
  for (int t = 1; t < r->nthreads; t++) {
    if (started[t]) pthread_join(tid[t], NULL);
    else if (r->nchunks > (size_t)t) decode_share(&jobs[t]); /* no thread: do its share here */
  }
  size_t bad = r->nchunks;
  const char *why = NULL;
  for (int t = 0; t < r->nthreads; t++)
    if (jobs[t].failed < bad) bad = jobs[t].failed, why = jobs[t].why;
  if (why)
    HB_RAISE(HB_EIO, in->path, "dataset %s: %s: %s %s", in->dataset, block, chunk_name(in, r->chunks[bad].off), why);
  return 0;
}

int hb_chunkreader_decodes(const hb_chunkreader *r) { return r && r->nfilters > 0; }

int hb_chunkreader_stream(hb_chunkreader *r, const hb_input *in, const hsize_t *start, const hsize_t *count,
                          size_t block_index, hb_chunk_fn fn, void *ctx) {
  char block[300];
  hb_block_desc(in, start, count, block_index, block, sizeof block);
  if (!r->chunks_cap) {
    r->chunks = calloc(1, sizeof *r->chunks);
    HB_CHECK(r->chunks, HB_EINTERNAL, "memory", "out of memory staging chunks");
    r->chunks_cap = 1;
  }
  staged *c = &r->chunks[0];
  decoder *dec = &r->dec[0];
  hb_chunk_walk cw;
  hb_chunk_walk_start(&cw, in, start, count);
  do {
    memcpy(c->off, cw.off, sizeof c->off);
    HB_CALL(stage_chunk(in, c, block));
    unsigned char *data = c->raw;
    const char *why = r->nfilters ? NULL : c->size == r->chunk_bytes ? NULL : "has the wrong size";
    if (r->nfilters) {
      const unsigned char *out = NULL;
      int shuffled = 0;
      why = decode_chunk(r, dec, c, &out, &shuffled);
      data = (unsigned char *)out;
      if (!why && shuffled) {
        unsigned char *dst = out == dec->a ? dec->b : dec->a;
        hb_unshuffle(out, dst, r->chunk_elems, r->esize);
        data = dst;
      }
    }
    if (why) HB_RAISE(HB_EIO, in->path, "dataset %s: %s: %s %s", in->dataset, block, chunk_name(in, c->off), why);
    HB_CALL(fn(ctx, c->off, data));
  } while (hb_chunk_walk_next(&cw));
  return 0;
}
