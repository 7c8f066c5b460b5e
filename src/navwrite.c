/* Navigation-shaped results: staged as blocks finish, then written at
 * agreements, either by HDF5's collective write or as whole chunks that we
 * encode ourselves (chunkwrite.c).
 *
 * A result chunk spans several blocks (hb_partition_result_chunks), and
 * different ranks may read them, so at a flush every rank sends its staged
 * values to the owner of each chunk; the owner assembles the chunk and
 * encodes it once all its blocks are in, then every rank stores it.  With
 * one chunk per block, ten virtual images of the 540 MB benchmark input were
 * 780 chunks of 1.7 KB, and the fixed cost of each (about 9 us of libdeflate
 * and 7 us of H5Dwrite_chunk on every rank) was most of the write phase.
 *
 * A checkpoint stores the incomplete chunks too, with zeros where blocks are
 * still to do, so that every block it calls done is in the file; a resumed
 * run reads such a chunk back before it adds to it. */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chunkwrite.h"
#include "engine_priv.h"
#include "hb_error.h"

/* Navigation-shaped results wait in memory (up to HB_NAV_STAGE_BYTES per
 * rank) and are written in one collective call per flush: a collective
 * filtered write every block made every rank wait for the slowest at every
 * block. */
int hb_output_stage_nav(hb_engine *e, const hb_block *blk, void *const *bufs) {
  hb_navstage *s = &e->stage;
  if (s->nblocks == s->blocks_cap) {
    size_t cap = s->blocks_cap ? 2 * s->blocks_cap : 64;
    size_t *more = realloc(s->blocks, cap * sizeof *more);
    HB_CHECK(more, HB_EINTERNAL, "memory", "out of memory staging results");
    s->blocks = more;
    s->blocks_cap = cap;
  }
  if (s->npos + blk->npos > s->pos_cap) {
    size_t cap = s->pos_cap ? 2 * s->pos_cap : 4096;
    while (cap < s->npos + blk->npos) cap *= 2;
    for (int i = 0; i < e->nres; i++) {
      if (e->res[i].o->kind != HB_OUT_NAV) continue;
      void *more = realloc(s->values[i], cap * hb_dtype_size(e->res[i].o->dtype));
      HB_CHECK(more, HB_EINTERNAL, "memory", "out of memory staging results");
      s->values[i] = more;
    }
    s->pos_cap = cap;
  }
  for (int i = 0; i < e->nres; i++) {
    if (e->res[i].o->kind != HB_OUT_NAV) continue;
    size_t es = hb_dtype_size(e->res[i].o->dtype);
    memcpy((char *)s->values[i] + s->npos * es, bufs[i], blk->npos * es);
  }
  s->blocks[s->nblocks++] = blk->index;
  s->npos += blk->npos;
  s->bytes += blk->npos * hb_nav_bytes_per_position(e);
  return 0;
}

size_t hb_nav_bytes_per_position(const hb_engine *e) {
  size_t n = 0;
  for (int i = 0; i < e->nres; i++)
    if (e->res[i].o->kind == HB_OUT_NAV) n += hb_dtype_size(e->res[i].o->dtype);
  return n;
}

typedef struct {
  hsize_t global; /* C-order index in the navigation space */
  size_t staged;  /* position in the staged values */
} nav_pos;

static int by_global(const void *a, const void *b) {
  hsize_t x = ((const nav_pos *)a)->global, y = ((const nav_pos *)b)->global;
  return (x > y) - (x < y);
}

/* HDF5 pairs a union of hyperslabs with memory in the union's C order: sort
 * the staged positions that way. */
static nav_pos *file_order(hb_engine *e, hid_t fs) {
  hb_navstage *s = &e->stage;
  nav_pos *order = malloc((s->npos ? s->npos : 1) * sizeof *order);
  if (!order) return NULL;
  int nd = e->in.nav_dim;
  H5Sselect_none(fs);
  for (size_t k = 0, p = 0; k < s->nblocks; k++) {
    hsize_t start[HB_MAXDIM], count[HB_MAXDIM], idx[HB_MAXDIM] = {0};
    hb_partition_block(&e->part, s->blocks[k], start, count);
    H5Sselect_hyperslab(fs, H5S_SELECT_OR, start, NULL, count, NULL);
    for (;;) {
      hsize_t g = 0;
      for (int d = 0; d < nd; d++) g = g * e->in.shape[d] + start[d] + idx[d];
      order[p] = (nav_pos){g, p};
      p++;
      int d = nd - 1;
      while (d >= 0 && ++idx[d] == count[d]) idx[d--] = 0;
      if (d < 0) break;
    }
  }
  qsort(order, s->npos, sizeof *order, by_global);
  return order;
}

/* Collective: HDF5's own write of the staged results, for datasets the
 * whole-chunk path does not take (HB_WRITE=hdf5, or a resumed .partial
 * chunked otherwise). */
static int flush_nav_hdf5(hb_engine *e) {
  hb_navstage *s = &e->stage;
  hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
  H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE);
  nav_pos *order = NULL;
  void *packed = NULL;
  int rc = 0;
  for (int i = 0; i < e->nres; i++) {
    hb_result *r = &e->res[i];
    if (r->o->kind != HB_OUT_NAV) continue;
    size_t es = hb_dtype_size(r->o->dtype);
    hid_t fs = H5Dget_space(r->dset);
    hsize_t n = s->npos;
    hid_t ms = H5Screate_simple(1, n ? &n : (hsize_t[]){1}, NULL);
    if (!n) {
      H5Sselect_none(fs);
      H5Sselect_none(ms);
    } else if (!order) {
      order = file_order(e, fs);
      packed = malloc(n * 8);
      if (!order || !packed) rc = hb_error_raise(HB_EINTERNAL, __FILE__, __LINE__, "memory", "out of memory");
    } else {
      H5Sselect_none(fs);
      for (size_t k = 0; k < s->nblocks; k++) {
        hsize_t start[HB_MAXDIM], count[HB_MAXDIM];
        hb_partition_block(&e->part, s->blocks[k], start, count);
        H5Sselect_hyperslab(fs, H5S_SELECT_OR, start, NULL, count, NULL);
      }
    }
    if (n && !rc)
      for (size_t j = 0; j < n; j++)
        memcpy((char *)packed + j * es, (char *)s->values[i] + order[j].staged * es, es);
    /* a failed rank still takes part, writing nothing, so nobody waits */
    if (rc) H5Sselect_none(fs), H5Sselect_none(ms);
    if (H5Dwrite(r->dset, hb_dtype_h5(r->o->dtype), ms, fs, dxpl, n && !rc ? packed : NULL) < 0 && !rc)
      rc = hb_error_raise(HB_EIO, __FILE__, __LINE__, e->partial, "cannot write result '%s' (%s)", r->o->name,
                          hb_h5_error_text());
    H5Sclose(ms);
    H5Sclose(fs);
    e->tm.bytes[HB_PH_WRITE] += (double)n * (double)es;
  }
  H5Pclose(dxpl);
  free(order);
  free(packed);
  return rc;
}

/* Every rank stores every chunk (parallel HDF5 needs identical calls), so
 * whole-chunk writes repeat the results' bytes once per extra rank: keep that
 * below this, and let HDF5's collective write take large results on many
 * ranks. */
#define CHUNKW_REPEAT_MAX (256.0 * (1 << 20))

/* Collective, once per run: can every navigation result take whole-chunk
 * writes?  Each must be chunked as hb_output_create makes them (a resumed
 * .partial from an older layout is not). */
static int nav_chunks_fit(hb_engine *e) {
  hb_navstage *s = &e->stage;
  double bytes = (double)hb_input_nav_size(&e->in) * (double)hb_nav_bytes_per_position(e);
  int ok = bytes * (e->size - 1) <= CHUNKW_REPEAT_MAX;
  for (int i = 0; i < e->nres && ok; i++) {
    hb_result *r = &e->res[i];
    if (r->o->kind != HB_OUT_NAV) continue;
    hsize_t chunk[HB_MAXDIM];
    ok = hb_chunkw_usable(r->dset, &s->gzip[i], chunk);
    for (int d = 0; d < e->in.nav_dim && ok; d++) ok = chunk[d] == hb_partition_result_extent(&e->part, d);
  }
  HB_MPI(MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, e->comm));
  s->fit = ok;
  s->checked = 1;
  return 0;
}

/* The navigation results, in result order: which[j] is the j-th one's index
 * in e->res. */
static int nav_results(const hb_engine *e, int *which) {
  int n = 0;
  for (int i = 0; i < e->nres; i++)
    if (e->res[i].o->kind == HB_OUT_NAV) which[n++] = i;
  return n;
}

/* Who assembles result j's chunk c (plan_owners). */
static int chunk_owner(const hb_engine *e, size_t c, int j, int nnav) {
  return e->stage.owner[c * (size_t)nnav + (size_t)j];
}

/* Every rank, alike: an owner for each result chunk with blocks to do.
 * Preferably the rank dealt the chunk's first such block (plan.h): blocks
 * are dealt in runs of neighbours, so most values stay where they were
 * computed.  But no rank owns more than its share of the chunks, or it
 * encodes while the others wait; past that, the least loaded rank. */
static int plan_owners(hb_engine *e, int nnav) {
  hb_navstage *s = &e->stage;
  const hb_partition *p = &e->part;
  size_t units = p->nrchunks * (size_t)nnav, left = 0, busy = 0;
  int *dealt = malloc((p->nrchunks ? p->nrchunks : 1) * sizeof *dealt);
  size_t *load = calloc((size_t)e->size, sizeof *load);
  s->owner = malloc((units ? units : 1) * sizeof *s->owner);
  if (!dealt || !load || !s->owner) {
    free(dealt), free(load);
    HB_RAISE(HB_EINTERNAL, "memory", "out of memory for the result chunks");
  }
  for (size_t c = 0; c < p->nrchunks; c++) dealt[c] = -1;
  for (size_t b = 0; b < p->nblocks; b++) left += !e->done[b];
  for (size_t b = 0, k = 0; b < p->nblocks; b++) {
    if (e->done[b]) continue;
    size_t c = hb_partition_result_chunk_of(p, b);
    if (dealt[c] < 0) dealt[c] = hb_deal_owner(k, left, e->size), busy++;
    k++;
  }
  size_t share = (busy * (size_t)nnav + (size_t)e->size - 1) / (size_t)e->size;
  for (size_t u = 0; u < units; u++) {
    int r = dealt[u / (size_t)nnav];
    if (r >= 0 && load[r] >= share)
      for (int q = 0; q < e->size; q++)
        if (load[q] < load[r]) r = q;
    s->owner[u] = r;
    if (r >= 0) load[r]++;
  }
  free(dealt);
  free(load);
  return 0;
}

/* A staged block's values for one result, on their way to the chunk's owner. */
typedef struct {
  uint64_t block, res; /* res: the result's place in nav_results */
} record_head;

static size_t padded(size_t bytes) { return (bytes + 7) & ~(size_t)7; }

/* Collective: every rank's staged values, to the owners of their chunks
 * (other ranks: a rank's own stay in its stage).  *in gets this rank's
 * records, back to back (head, then values padded to 8 bytes); the caller
 * frees it. */
static int route(hb_engine *e, const int *which, int nnav, unsigned char **in, size_t *in_bytes) {
  hb_navstage *s = &e->stage;
  int n = e->size;
  size_t *to = calloc((size_t)n, sizeof *to), *at = calloc((size_t)n, sizeof *at);
  int *cnt = calloc((size_t)n, sizeof *cnt), *disp = calloc((size_t)n, sizeof *disp);
  int *rcnt = calloc((size_t)n, sizeof *rcnt), *rdisp = calloc((size_t)n, sizeof *rdisp);
  unsigned char *out = NULL, *got = NULL;
  hsize_t start[HB_MAXDIM], count[HB_MAXDIM];
  size_t total = 0;
  for (size_t k = 0; k < s->nblocks; k++) {
    size_t npos = hb_partition_block(&e->part, s->blocks[k], start, count);
    size_t c = hb_partition_result_chunk_of(&e->part, s->blocks[k]);
    for (int j = 0; j < nnav && to; j++) {
      int owner = chunk_owner(e, c, j, nnav);
      if (owner == e->rank) continue; /* assemble takes these from the stage */
      size_t bytes = sizeof(record_head) + padded(npos * hb_dtype_size(e->res[which[j]].o->dtype));
      to[owner] += bytes;
      total += bytes;
    }
  }
  int bad = !to || !at || !cnt || !disp || !rcnt || !rdisp || total > INT_MAX || !(out = malloc(total ? total : 1));
  for (int r = 1; r < n && !bad; r++) at[r] = at[r - 1] + to[r - 1];
  for (int r = 0; r < n && !bad; r++) cnt[r] = (int)to[r], disp[r] = (int)at[r];
  for (size_t k = 0, pos = 0; k < s->nblocks && !bad; k++) {
    size_t npos = hb_partition_block(&e->part, s->blocks[k], start, count);
    size_t c = hb_partition_result_chunk_of(&e->part, s->blocks[k]);
    for (int j = 0; j < nnav; j++) {
      int owner = chunk_owner(e, c, j, nnav);
      if (owner == e->rank) continue;
      size_t es = hb_dtype_size(e->res[which[j]].o->dtype);
      unsigned char *rec = out + at[owner];
      record_head h = {s->blocks[k], (uint64_t)j};
      memcpy(rec, &h, sizeof h);
      memcpy(rec + sizeof h, (const char *)s->values[which[j]] + pos * es, npos * es);
      memset(rec + sizeof h + npos * es, 0, padded(npos * es) - npos * es);
      at[owner] += sizeof h + padded(npos * es);
    }
    pos += npos;
  }
  size_t received = 0;
  if (n == 1) {
    got = out, out = NULL;
  } else if (!(bad = hb_agree(e->comm, bad))) {
    HB_MPI(MPI_Alltoall(cnt, 1, MPI_INT, rcnt, 1, MPI_INT, e->comm));
    for (int r = 0; r < n; r++) received += (size_t)rcnt[r];
    bad = received > INT_MAX || !(got = malloc(received ? received : 1));
    for (int r = 1; r < n && !bad; r++) rdisp[r] = rdisp[r - 1] + rcnt[r - 1];
    if (!(bad = hb_agree(e->comm, bad)))
      HB_MPI(MPI_Alltoallv(out, cnt, disp, MPI_BYTE, got, rcnt, rdisp, MPI_BYTE, e->comm));
  }
  free(to), free(at), free(cnt), free(disp), free(rcnt), free(rdisp), free(out);
  if (bad) free(got);
  HB_CHECK(!bad, HB_EINTERNAL, "memory", "out of memory sending results to their chunks");
  *in = got;
  *in_bytes = received;
  return 0;
}

/* Copy a block's values (C order over count) into its chunk (C order over
 * cdim) at offset `off`. */
static void place_block(const void *vals, void *chunk, int nd, const hsize_t *off, const hsize_t *count,
                        const hsize_t *cdim, size_t es) {
  size_t row = count[nd - 1] * es;
  hsize_t idx[HB_MAXDIM] = {0};
  for (const char *src = vals;; src += row) {
    size_t at = 0;
    for (int d = 0; d < nd; d++) at = at * cdim[d] + off[d] + (d < nd - 1 ? idx[d] : 0);
    memcpy((char *)chunk + at * es, src, row);
    int d = nd - 2;
    while (d >= 0 && ++idx[d] == count[d]) idx[d--] = 0;
    if (d < 0) break;
  }
}

/* A resumed run: what an earlier run stored of this chunk (its finished
 * blocks; zeros elsewhere). */
static int read_back(hb_engine *e, const hb_result *r, const hsize_t *cstart, const hsize_t *cdim, void *buf) {
  int nd = e->in.nav_dim;
  hsize_t count[HB_MAXDIM], zero[HB_MAXDIM] = {0};
  for (int d = 0; d < nd; d++)
    count[d] = cstart[d] + cdim[d] > e->in.shape[d] ? e->in.shape[d] - cstart[d] : cdim[d];
  hid_t fs = H5Dget_space(r->dset), ms = H5Screate_simple(nd, cdim, NULL);
  H5Sselect_hyperslab(fs, H5S_SELECT_SET, cstart, NULL, count, NULL);
  H5Sselect_hyperslab(ms, H5S_SELECT_SET, zero, NULL, count, NULL);
  int bad = H5Dread(r->dset, hb_dtype_h5(r->o->dtype), ms, fs, H5P_DEFAULT, buf) < 0;
  H5Sclose(ms);
  H5Sclose(fs);
  HB_CHECK(!bad, HB_EIO, e->partial, "cannot read result '%s' back from the checkpoint (%s)", r->o->name,
           hb_h5_error_text());
  return 0;
}

static int all_done(const hb_engine *e, const size_t *blocks, size_t n) {
  for (size_t k = 0; k < n; k++)
    if (!e->done[blocks[k]]) return 0;
  return 1;
}

/* Local: one block's values of result j into its chunk (whose extent is
 * cdim), which this rank owns.  The block is then done: every rank sends all of a block's values
 * in one flush, and its chunks, whole or partial, are stored before any
 * checkpoint. */
static int place(hb_engine *e, const int *which, int nnav, const hsize_t *cdim, size_t block, int j,
                 const void *vals, size_t *scratch) {
  hb_navstage *s = &e->stage;
  int nd = e->in.nav_dim;
  const hb_result *r = &e->res[which[j]];
  size_t es = hb_dtype_size(r->o->dtype), c = hb_partition_result_chunk_of(&e->part, block);
  hsize_t cstart[HB_MAXDIM], start[HB_MAXDIM], count[HB_MAXDIM], off[HB_MAXDIM];
  void **buf = &s->chunk_buf[c * (size_t)nnav + j];
  size_t nb = hb_partition_result_chunk(&e->part, c, cstart, s->resumed ? scratch : NULL);
  if (!*buf) {
    *buf = calloc(hb_partition_result_positions(&e->part), es);
    HB_CHECK(*buf, HB_EINTERNAL, "memory", "out of memory assembling result chunks");
    s->pending++;
    for (size_t k = 0; s->resumed && k < nb; k++)
      if (s->resumed[scratch[k]]) {
        HB_CALL(read_back(e, r, cstart, cdim, *buf));
        break;
      }
  }
  hb_partition_block(&e->part, block, start, count);
  for (int d = 0; d < nd; d++) off[d] = start[d] - cstart[d];
  place_block(vals, *buf, nd, off, count, cdim, es);
  e->done[block] = 1;
  return 0;
}

/* Local: the staged values whose chunks this rank owns, then the records
 * other ranks sent. */
static int assemble(hb_engine *e, const int *which, int nnav, const unsigned char *in, size_t bytes,
                    size_t *scratch) {
  hb_navstage *s = &e->stage;
  hsize_t start[HB_MAXDIM], count[HB_MAXDIM], cdim[HB_MAXDIM];
  for (int d = 0; d < e->in.nav_dim; d++) cdim[d] = hb_partition_result_extent(&e->part, d);
  for (size_t k = 0, pos = 0; k < s->nblocks; k++) {
    size_t npos = hb_partition_block(&e->part, s->blocks[k], start, count);
    size_t c = hb_partition_result_chunk_of(&e->part, s->blocks[k]);
    for (int j = 0; j < nnav; j++)
      if (chunk_owner(e, c, j, nnav) == e->rank) {
        size_t es = hb_dtype_size(e->res[which[j]].o->dtype);
        HB_CALL(place(e, which, nnav, cdim, s->blocks[k], j, (const char *)s->values[which[j]] + pos * es, scratch));
      }
    pos += npos;
  }
  for (size_t at = 0; at < bytes;) {
    record_head h;
    memcpy(&h, in + at, sizeof h);
    size_t es = hb_dtype_size(e->res[which[h.res]].o->dtype);
    HB_CALL(place(e, which, nnav, cdim, h.block, (int)h.res, in + at + sizeof h, scratch));
    at += sizeof h + padded(hb_partition_block(&e->part, h.block, start, count) * es);
  }
  return 0;
}

/* Local, at the first flush: the chunk table, the owners, and which blocks
 * a resumed run found done (nothing is marked done before the first flush,
 * so what is, a checkpoint holds, in the file). */
static int first_flush(hb_engine *e, int nnav) {
  hb_navstage *s = &e->stage;
  s->chunk_buf = calloc(e->part.nrchunks * (size_t)nnav, sizeof *s->chunk_buf);
  HB_CHECK(s->chunk_buf, HB_EINTERNAL, "memory", "out of memory for the result chunks");
  s->nchunk_buf = e->part.nrchunks * (size_t)nnav;
  HB_CALL(plan_owners(e, nnav));
  size_t held = 0;
  for (size_t b = 0; b < e->part.nblocks; b++) held += e->done[b];
  if (held) {
    s->resumed = malloc(e->part.nblocks);
    HB_CHECK(s->resumed, HB_EINTERNAL, "memory", "out of memory for the result chunks");
    memcpy(s->resumed, e->done, e->part.nblocks);
  }
  return 0;
}

/* Collective: route the staged values to their chunks; encode the chunks
 * that are complete (and, with `partial`, those that are not) and store them
 * on every rank.  Complete chunks are forgotten. */
static int flush_nav_chunks(hb_engine *e, int partial, int last) {
  hb_navstage *s = &e->stage;
  int nd = e->in.nav_dim, which[HB_MAX_RESULTS], nnav = nav_results(e, which);
  hb_chunkw_dset dsets[HB_MAX_RESULTS];
  size_t cpos = hb_partition_result_positions(&e->part), most = 1;
  for (int d = 0; d < nd; d++) most *= e->part.rblocks[d];
  for (int j = 0; j < nnav; j++) {
    size_t es = hb_dtype_size(e->res[which[j]].o->dtype);
    dsets[j] = (hb_chunkw_dset){e->res[which[j]].dset, nd, es, cpos * es, s->gzip[which[j]]};
    e->tm.bytes[HB_PH_WRITE] += (double)s->npos * (double)es;
  }
  int rc = s->chunk_buf ? 0 : first_flush(e, nnav);
  unsigned char *in = NULL;
  size_t in_bytes = 0, *scratch = malloc(most * sizeof *scratch);
  if (!rc && !scratch) rc = hb_error_raise(HB_EINTERNAL, __FILE__, __LINE__, "memory", "out of memory");
  rc = hb_agree(e->comm, rc);
  if (!rc) rc = route(e, which, nnav, &in, &in_bytes);
  if (!rc) rc = assemble(e, which, nnav, in, in_bytes, scratch);
  free(in);
  hb_chunkwriter *w = NULL;
  if (!rc) rc = hb_chunkw_new(dsets, nnav, &w);
  for (size_t c = 0; c < e->part.nrchunks && !rc; c++) {
    hsize_t cstart[HB_MAXDIM];
    size_t nb = hb_partition_result_chunk(&e->part, c, cstart, scratch);
    int complete = all_done(e, scratch, nb);
    for (int j = 0; j < nnav && !rc; j++) {
      void **buf = &s->chunk_buf[c * (size_t)nnav + j];
      if (!*buf || !(complete || partial)) continue;
      rc = hb_chunkw_add(w, j, cstart, *buf);
      if (complete) free(*buf), *buf = NULL, s->pending--;
    }
  }
  if (!rc && last && s->pending)
    rc = hb_error_raise(HB_EINTERNAL, __FILE__, __LINE__, e->partial, "%zu result chunks were left incomplete",
                        s->pending);
  rc = hb_agree(e->comm, rc);
  if (!rc) rc = hb_chunkw_write(w, e->comm, e->partial);
  hb_chunkw_free(w);
  free(scratch);
  return rc;
}

/* Collective: write what every rank has staged, then forget it.  `partial`:
 * a checkpoint follows, so store incomplete chunks too; `last`: every block
 * is done. */
int hb_output_flush_nav(hb_engine *e, int partial, int last) {
  hb_navstage *s = &e->stage;
  double t0 = hb_now();
  int nav = 0, rc = 0;
  for (int i = 0; i < e->nres; i++) nav |= e->res[i].o->kind == HB_OUT_NAV;
  if (nav && !s->checked) rc = nav_chunks_fit(e); /* the same results on every rank */
  if (!rc && nav) rc = s->fit ? flush_nav_chunks(e, partial, last) : flush_nav_hdf5(e);
  if (!rc)
    for (size_t k = 0; k < s->nblocks; k++) e->done[s->blocks[k]] = 1;
  s->nblocks = s->npos = s->bytes = 0;
  e->tm.seconds[HB_PH_WRITE] += hb_now() - t0;
  return rc;
}

void hb_output_free_stage(hb_engine *e) {
  hb_navstage *s = &e->stage;
  for (int i = 0; i < e->nres; i++) free(s->values[i]);
  for (size_t k = 0; k < s->nchunk_buf; k++) free(s->chunk_buf[k]);
  free(s->chunk_buf);
  free(s->resumed);
  free(s->owner);
  free(s->blocks);
  memset(s, 0, sizeof *s);
}
