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
 * A chunk is stored once, complete, and never rewritten: a checkpoint
 * records where each stored chunk is and keeps the incomplete ones itself
 * (checkpoint.c), so nothing it relies on is ever changed in place. */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chunkwrite.h"
#include "engine_priv.h"
#include "hb_error.h"
#include "hb_settings.h"

/* Result i is gathered and filled in this pass. */
static int staged_here(const hb_engine *e, int i) {
  return e->res[i].path == HB_PATH_GATHERED && e->res[i].pass == e->pass;
}

/* Gathered results wait in memory (up to HB_NAV_STAGE_BYTES per
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
      if (!staged_here(e, i)) continue;
      void *more = realloc(s->values[i], cap * e->res[i].item);
      HB_CHECK(more, HB_EINTERNAL, "memory", "out of memory staging results");
      s->values[i] = more;
    }
    s->pos_cap = cap;
  }
  for (int i = 0; i < e->nres; i++)
    if (staged_here(e, i))
      memcpy((char *)s->values[i] + s->npos * e->res[i].item, bufs[i], blk->npos * e->res[i].item);
  s->blocks[s->nblocks++] = blk->index;
  s->npos += blk->npos;
  s->bytes += blk->npos * hb_nav_bytes_per_position(e);
  return 0;
}

size_t hb_nav_bytes_per_position(const hb_engine *e) {
  size_t n = 0;
  for (int i = 0; i < e->nres; i++)
    if (e->res[i].path == HB_PATH_GATHERED) n += e->res[i].item;
  return n;
}

/* Every rank stores every chunk (parallel HDF5 needs identical calls), so
 * whole-chunk writes repeat the results' bytes once per extra rank: keep that
 * below this, and let HDF5's collective write take large results on many
 * ranks. */
#define CHUNKW_REPEAT_MAX (256.0 * (1 << 20))

/* Collective, once per run: can every navigation result take whole-chunk
 * writes?  Each must be chunked as hb_output_create makes them. */
static int nav_chunks_fit(hb_engine *e) {
  hb_navstage *s = &e->stage;
  double bytes = (double)hb_input_nav_size(&e->in) * (double)hb_nav_bytes_per_position(e);
  int ok = bytes * (e->size - 1) <= CHUNKW_REPEAT_MAX;
  for (int i = 0; i < e->nres && ok; i++) {
    hb_result *r = &e->res[i];
    if (r->path != HB_PATH_GATHERED) continue;
    hsize_t chunk[HB_MAXDIM];
    ok = hb_chunkw_usable(r->dset, &s->gzip[i], chunk);
    for (int d = 0; d < r->ndim && ok; d++) ok = chunk[d] == r->chunk[d];
  }
  HB_MPI(MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, e->comm));
  s->fit = ok;
  s->checked = 1;
  return 0;
}

int hb_nav_results(const hb_engine *e, int *which) {
  int n = 0;
  for (int i = 0; i < e->nres; i++)
    if (e->res[i].path == HB_PATH_GATHERED) which[n++] = i;
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
      if (owner == e->rank || !staged_here(e, which[j])) continue; /* assemble takes these from the stage */
      size_t bytes = sizeof(record_head) + padded(npos * e->res[which[j]].item);
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
      if (owner == e->rank || !staged_here(e, which[j])) continue;
      size_t es = e->res[which[j]].item;
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

static int all_done(const hb_engine *e, const size_t *blocks, size_t n) {
  for (size_t k = 0; k < n; k++)
    if (!e->done[blocks[k]]) return 0;
  return 1;
}

/* Local: one block's values of result j into its chunk (whose extent is
 * cdim), which this rank owns.  The block is then done: every rank sends all
 * of a block's values in one flush, and a checkpoint keeps the chunks still
 * incomplete. */
static int place(hb_engine *e, const int *which, int nnav, const hsize_t *cdim, size_t block, int j, const void *vals) {
  hb_navstage *s = &e->stage;
  int nd = e->in.nav_dim;
  const hb_result *r = &e->res[which[j]];
  size_t es = r->item, c = hb_partition_result_chunk_of(&e->part, block);
  hsize_t cstart[HB_MAXDIM], start[HB_MAXDIM], count[HB_MAXDIM], off[HB_MAXDIM];
  void **buf = &s->chunk_buf[c * (size_t)nnav + j];
  hb_partition_result_chunk(&e->part, c, cstart, NULL);
  if (!*buf) {
    *buf = calloc(hb_partition_result_positions(&e->part), es);
    HB_CHECK(*buf, HB_EINTERNAL, "memory", "out of memory assembling result chunks");
    s->pending++;
  }
  hb_partition_block(&e->part, block, start, count);
  for (int d = 0; d < nd; d++) off[d] = start[d] - cstart[d];
  place_block(vals, *buf, nd, off, count, cdim, es);
  e->done[block] = 1;
  return 0;
}

/* Local: the staged values whose chunks this rank owns, then the records
 * other ranks sent. */
static int assemble(hb_engine *e, const int *which, int nnav, const unsigned char *in, size_t bytes) {
  hb_navstage *s = &e->stage;
  hsize_t start[HB_MAXDIM], count[HB_MAXDIM], cdim[HB_MAXDIM];
  for (int d = 0; d < e->in.nav_dim; d++) cdim[d] = hb_partition_result_extent(&e->part, d);
  for (size_t k = 0, pos = 0; k < s->nblocks; k++) {
    size_t npos = hb_partition_block(&e->part, s->blocks[k], start, count);
    size_t c = hb_partition_result_chunk_of(&e->part, s->blocks[k]);
    for (int j = 0; j < nnav; j++)
      if (chunk_owner(e, c, j, nnav) == e->rank && staged_here(e, which[j])) {
        size_t es = e->res[which[j]].item;
        HB_CALL(place(e, which, nnav, cdim, s->blocks[k], j, (const char *)s->values[which[j]] + pos * es));
      }
    pos += npos;
  }
  for (size_t at = 0; at < bytes;) {
    record_head h;
    memcpy(&h, in + at, sizeof h);
    size_t es = e->res[which[h.res]].item;
    HB_CALL(place(e, which, nnav, cdim, h.block, (int)h.res, in + at + sizeof h));
    at += sizeof h + padded(hb_partition_block(&e->part, h.block, start, count) * es);
  }
  return 0;
}

/* The chunk writer's table: every result at its index in e->res (results
 * not written per pattern have none), so that the writer's dataset numbers
 * are the results' in the checkpoint's chunk table too. */
static int results_writer(hb_engine *e, hb_chunkwriter **w) {
  hb_chunkw_dset dsets[HB_MAX_RESULTS];
  for (int i = 0; i < e->nres; i++) {
    const hb_result *r = &e->res[i];
    int none = r->o->kind == HB_OUT_GLOBAL;
    size_t chunk = hb_dtype_size(r->o->dtype);
    for (int d = 0; d < r->ndim; d++) chunk *= r->chunk[d];
    dsets[i] = (hb_chunkw_dset){none ? -1 : r->dset, r->ndim, hb_dtype_size(r->o->dtype), none ? 0 : chunk,
                                r->path == HB_PATH_GATHERED && e->stage.gzip[i]};
  }
  return hb_chunkw_new(dsets, e->nres, w);
}

/* One complete chunk of result j, held by this rank, to store. */
typedef struct {
  int j;
  size_t c;
} held_chunk;

/* C-order index in the navigation space, and where the value is held. */
typedef struct {
  hsize_t global;
  const char *from;
} nav_pos;

static int by_global(const void *a, const void *b) {
  hsize_t x = ((const nav_pos *)a)->global, y = ((const nav_pos *)b)->global;
  return (x > y) - (x < y);
}

/* Collective: HDF5's own write of the complete chunks (HB_WRITE=hdf5, or
 * results too large to send to every rank), each from the rank that holds
 * it, in one collective call per result.  HDF5 pairs a union of hyperslabs
 * with memory in the union's C order over the whole dataset, so the held
 * values are sorted that way first.  A failed rank still takes part,
 * selecting nothing. */
static int store_hdf5(hb_engine *e, const int *which, int nnav, const held_chunk *held, size_t nheld, int rc) {
  int nd = e->in.nav_dim;
  size_t cpos = hb_partition_result_positions(&e->part), widest = 1;
  for (int j = 0; j < nnav; j++) widest = e->res[which[j]].item > widest ? e->res[which[j]].item : widest;
  hsize_t cdim[HB_MAXDIM];
  for (int d = 0; d < nd; d++) cdim[d] = hb_partition_result_extent(&e->part, d);
  hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
  H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE);
  size_t most = nheld * cpos > 0 ? nheld * cpos : 1;
  nav_pos *order = malloc(most * sizeof *order);
  void *packed = malloc(most * widest);
  if (!rc && (!order || !packed)) rc = HB_FAIL(HB_EINTERNAL, "memory", "out of memory writing results");
  for (int j = 0; j < nnav; j++) {
    const hb_result *r = &e->res[which[j]];
    size_t es = r->item, n = 0;
    hid_t fs = H5Dget_space(r->dset);
    H5Sselect_none(fs);
    for (size_t k = 0; k < nheld && !rc; k++) {
      if (held[k].j != j) continue;
      hsize_t cstart[HB_MAXDIM] = {0}, count[HB_MAXDIM], idx[HB_MAXDIM] = {0};
      hb_partition_result_chunk(&e->part, held[k].c, cstart, NULL);
      for (int d = 0; d < r->ndim; d++)
        count[d] = d >= nd ? r->shape[d] : cstart[d] + cdim[d] > e->in.shape[d] ? e->in.shape[d] - cstart[d] : cdim[d];
      H5Sselect_hyperslab(fs, H5S_SELECT_OR, cstart, NULL, count, NULL);
      const char *buf = e->stage.chunk_buf[held[k].c * (size_t)nnav + j];
      for (;;) { /* each position's item is contiguous, last in C order */
        hsize_t g = 0, at = 0;
        for (int d = 0; d < nd; d++) g = g * e->in.shape[d] + cstart[d] + idx[d], at = at * cdim[d] + idx[d];
        order[n++] = (nav_pos){g, buf + at * es};
        int d = nd - 1;
        while (d >= 0 && ++idx[d] == count[d]) idx[d--] = 0;
        if (d < 0) break;
      }
    }
    if (rc) H5Sselect_none(fs), n = 0;
    qsort(order, n, sizeof *order, by_global);
    for (size_t q = 0; q < n; q++) memcpy((char *)packed + q * es, order[q].from, es);
    hsize_t mn = n ? n * hb_output_elems(r->o) : 1;
    hid_t ms = H5Screate_simple(1, &mn, NULL);
    if (!n) H5Sselect_none(ms);
    if (H5Dwrite(r->dset, hb_dtype_h5(r->o->dtype), ms, fs, dxpl, n ? packed : NULL) < 0 && !rc)
      rc = HB_FAIL(HB_EIO, e->partial, "cannot write result '%s' (%s)", r->o->name, hb_io_error_text());
    H5Sclose(ms);
    H5Sclose(fs);
  }
  H5Pclose(dxpl);
  free(order);
  free(packed);
  /* where the chunks went, recorded by the rank that held them */
  for (size_t k = 0; k < nheld && !rc && e->job->checkpoint; k++) {
    const hb_result *r = &e->res[which[held[k].j]];
    hsize_t cstart[HB_MAXDIM] = {0};
    unsigned mask = 0;
    haddr_t addr = HADDR_UNDEF;
    hsize_t size = 0;
    hb_partition_result_chunk(&e->part, held[k].c, cstart, NULL);
    if (H5Dget_chunk_info_by_coord(r->dset, cstart, &mask, &addr, &size) < 0 || addr == HADDR_UNDEF || mask)
      rc = HB_FAIL(HB_EIO, e->partial, "cannot locate a stored chunk of result '%s' (%s)", r->o->name,
                   hb_h5_error_text());
    else
      rc = hb_chunk_table_add(&e->stored, (uint64_t)which[held[k].j], held[k].c, (uint64_t)addr, (uint64_t)size);
  }
  return hb_agree(e->comm, rc);
}

/* Collective, before the first block: whether whole-chunk writes apply,
 * the chunk table, and who owns each chunk still to finish.  Every rank
 * computes the same owners from the same `done` bytes. */
int hb_nav_prepare(hb_engine *e) {
  hb_navstage *s = &e->stage;
  int which[HB_MAX_RESULTS], nnav = hb_nav_results(e, which);
  if (!nnav) return 0;
  HB_CALL(nav_chunks_fit(e));
  s->chunk_buf = calloc(e->part.nrchunks * (size_t)nnav, sizeof *s->chunk_buf);
  int rc = s->chunk_buf ? 0 : HB_FAIL(HB_EINTERNAL, "memory", "out of memory for the result chunks");
  s->nchunk_buf = s->chunk_buf ? e->part.nrchunks * (size_t)nnav : 0;
  if (!rc) rc = plan_owners(e, nnav);
  return hb_agree(e->comm, rc);
}

/* Result index ri's place among the gathered results, or -1. */
static int gathered_index(const hb_engine *e, int ri) {
  int which[HB_MAX_RESULTS], nnav = hb_nav_results(e, which);
  for (int j = 0; j < nnav; j++)
    if (which[j] == ri) return j;
  return -1;
}

int hb_nav_owner(const hb_engine *e, size_t c, int ri) {
  int which[HB_MAX_RESULTS], nnav = hb_nav_results(e, which), j = gathered_index(e, ri);
  return e->stage.owner && j >= 0 && c < e->part.nrchunks ? chunk_owner(e, c, j, nnav) : -1;
}

int hb_nav_hold(hb_engine *e, int ri, size_t c, const void *bytes) {
  hb_navstage *s = &e->stage;
  int which[HB_MAX_RESULTS], nnav = hb_nav_results(e, which), j = gathered_index(e, ri);
  HB_CHECK(j >= 0, HB_EINTERNAL, "checkpoint", "result %d is not gathered", ri);
  size_t n = hb_partition_result_positions(&e->part) * e->res[ri].item;
  void **buf = &s->chunk_buf[c * (size_t)nnav + (size_t)j];
  HB_CHECK(!*buf, HB_EINTERNAL, "checkpoint", "result chunk %zu is held twice", c);
  *buf = malloc(n);
  HB_CHECK(*buf, HB_EINTERNAL, "memory", "out of memory for the result chunks");
  memcpy(*buf, bytes, n);
  s->pending++;
  return 0;
}

/* Collective: route the staged values to their chunks, then store the
 * chunks that are complete and forget them.  Incomplete ones stay with
 * their owners until they are (a checkpoint keeps them meanwhile). */
static int flush_nav_chunks(hb_engine *e, int last) {
  hb_navstage *s = &e->stage;
  int which[HB_MAX_RESULTS], nnav = hb_nav_results(e, which);
  size_t most = 1;
  for (int d = 0; d < e->in.nav_dim; d++) most *= e->part.rblocks[d];
  for (int j = 0; j < nnav; j++) e->tm.bytes[HB_PH_WRITE] += (double)s->npos * (double)e->res[which[j]].item;
  unsigned char *in = NULL;
  size_t in_bytes = 0, nheld = 0, *scratch = malloc(most * sizeof *scratch);
  held_chunk *held = malloc((s->pending ? s->pending : 1) * sizeof *held);
  int rc = scratch && held && !hb_fault("nav_flush") ? 0 : HB_FAIL(HB_EINTERNAL, "memory", "out of memory");
  rc = hb_agree(e->comm, rc);
  if (!rc) rc = route(e, which, nnav, &in, &in_bytes);
  if (!rc) rc = assemble(e, which, nnav, in, in_bytes);
  free(in);
  if (!rc && s->pending) { /* assembling may have added chunks */
    held_chunk *more = realloc(held, s->pending * sizeof *held);
    if (more)
      held = more;
    else
      rc = HB_FAIL(HB_EINTERNAL, "memory", "out of memory");
  }
  for (size_t c = 0; c < e->part.nrchunks && !rc; c++) {
    hsize_t cstart[HB_MAXDIM];
    size_t nb = hb_partition_result_chunk(&e->part, c, cstart, scratch);
    if (!all_done(e, scratch, nb)) continue;
    for (int j = 0; j < nnav; j++)
      if (s->chunk_buf[c * (size_t)nnav + j]) held[nheld++] = (held_chunk){j, c};
  }
  if (!rc && last && s->pending != nheld)
    rc = HB_FAIL(HB_EINTERNAL, e->partial, "%zu result chunks were left incomplete", s->pending - nheld);
  hb_chunk_table *table = e->job->checkpoint ? &e->stored : NULL;
  if (s->fit) {
    hb_chunkwriter *w = NULL;
    if (!rc) rc = results_writer(e, &w);
    for (size_t k = 0; k < nheld && !rc; k++) {
      hsize_t cstart[HB_MAXDIM] = {0};
      hb_partition_result_chunk(&e->part, held[k].c, cstart, NULL);
      rc = hb_chunkw_add(w, which[held[k].j], held[k].c, cstart,
                         s->chunk_buf[held[k].c * (size_t)nnav + held[k].j]);
    }
    rc = hb_agree(e->comm, rc);
    if (!rc) rc = hb_chunkw_write(w, e->comm, e->partial, table);
    hb_chunkw_free(w);
  } else {
    rc = store_hdf5(e, which, nnav, held, rc ? 0 : nheld, rc);
  }
  for (size_t k = 0; k < nheld && !rc; k++) {
    void **buf = &s->chunk_buf[held[k].c * (size_t)nnav + held[k].j];
    free(*buf), *buf = NULL, s->pending--;
  }
  free(held);
  free(scratch);
  return rc;
}

/* Collective: write what every rank has staged, then forget it.  `last`:
 * every block is done. */
int hb_output_flush_nav(hb_engine *e, int last) {
  hb_navstage *s = &e->stage;
  double t0 = hb_now();
  int rc = e->stage.chunk_buf ? flush_nav_chunks(e, last) : 0;
  if (!rc)
    for (size_t k = 0; k < s->nblocks; k++) e->done[s->blocks[k]] = 1;
  s->nblocks = s->npos = s->bytes = 0;
  e->tm.seconds[HB_PH_WRITE] += hb_now() - t0;
  return rc;
}

/* The first element of chunk number c of result r (C order over its
 * chunk grid; a per-pattern result's items are never cut, so its grid is
 * the navigation axes'); nonzero if it has no such chunk. */
static int chunk_start(const hb_result *r, size_t c, hsize_t *start) {
  for (int d = r->ndim - 1; d >= 0; d--) {
    hsize_t grid = (r->shape[d] + r->chunk[d] - 1) / r->chunk[d];
    start[d] = c % grid * r->chunk[d];
    c /= grid;
  }
  return c != 0;
}

/* Collective (resume): store chunks copied byte for byte from an earlier
 * .partial.  fetch(ctx, k, buf) reads the k-th of `n` table rows into buf
 * (room for rows[k].size); this rank copies rows k with k % size == rank,
 * in rounds of at most COPY_ROUND_BYTES each. */
#define COPY_ROUND_BYTES ((size_t)64 << 20)
int hb_nav_copy_chunks(hb_engine *e, const hb_chunk_row *rows, size_t n, int (*fetch)(void *ctx, size_t k, void *buf),
                       void *ctx) {
  hb_chunkwriter *w = NULL;
  size_t most = 1;
  for (size_t k = 0; k < n; k++) most = rows[k].size > most ? rows[k].size : most;
  void *buf = malloc(most);
  int rc = buf ? 0 : HB_FAIL(HB_EINTERNAL, "memory", "out of memory copying result chunks");
  if (!rc && n) rc = results_writer(e, &w);
  rc = hb_agree(e->comm, rc);
  for (size_t k = (size_t)e->rank, more = n > 0; !rc && more;) {
    for (; k < n && !rc && hb_chunkw_pending_bytes(w) < COPY_ROUND_BYTES; k += (size_t)e->size) {
      hsize_t cstart[HB_MAXDIM] = {0};
      const hb_result *r = rows[k].dset < (uint64_t)e->nres ? &e->res[rows[k].dset] : NULL;
      if (!r || r->o->kind == HB_OUT_GLOBAL || chunk_start(r, rows[k].chunk, cstart))
        rc = HB_FAIL(HB_EIO, e->partial,
                     "the checkpoint names result chunk %llu of result %llu, which this job does not have",
                     (unsigned long long)rows[k].chunk, (unsigned long long)rows[k].dset);
      else if (!(rc = fetch(ctx, k, buf)))
        rc = hb_chunkw_add_stored(w, (int)rows[k].dset, rows[k].chunk, cstart, buf, rows[k].size);
    }
    rc = hb_agree(e->comm, rc);
    if (!rc) rc = hb_chunkw_write(w, e->comm, e->partial, &e->stored);
    more = k < n;
    if (!rc) HB_MPI(MPI_Allreduce(MPI_IN_PLACE, &more, 1, MPI_UNSIGNED_LONG, MPI_MAX, e->comm));
  }
  hb_chunkw_free(w);
  free(buf);
  return rc;
}

void hb_output_free_stage(hb_engine *e) {
  hb_navstage *s = &e->stage;
  for (int i = 0; i < e->nres; i++) free(s->values[i]);
  for (size_t k = 0; k < s->nchunk_buf; k++) free(s->chunk_buf[k]);
  free(s->chunk_buf);
  free(s->owner);
  free(s->blocks);
  memset(s, 0, sizeof *s);
}
