/* Per-pattern results written block by block: every FULL result (a
 * transformed dataset) and every NAV result whose items make a block's
 * worth a chunk or more (docs/architecture.md, "Results").
 *
 * Their chunks lie inside blocks (hb_direct_chunk), so the rank that
 * computed a block holds every chunk of it: at an agreement each rank hands
 * its finished blocks to one collective H5Dwrite per block and result, and
 * HDF5 1.10's collective filtered write compresses each chunk on that rank.
 * Nothing is sent to other ranks, so the cost does not grow with the rank
 * count, and memory stays a few blocks per rank: a rank whose staged
 * output reaches its budget ends its window early.
 *
 * Each chunk is written once, complete, and never rewritten; its address
 * goes into the checkpoint's chunk table (checkpoint.c). */
#include <errno.h>
#include <fcntl.h> /* sync_file_range: _GNU_SOURCE comes from the build */
#include <stdlib.h>
#include <string.h>

#include "engine_priv.h"
#include "hb_error.h"
#include "hb_settings.h"

/* Largest divisor of n that is at most `most` (at least 1). */
static hsize_t divisor_at_most(hsize_t n, hsize_t most) {
  for (hsize_t d = most < n ? most : n; d > 1; d--)
    if (n % d == 0) return d;
  return 1;
}

int hb_result_has_nav_axis(const hb_engine *e, const hb_result *r, int d) {
  const hb_output *o = r->o;
  if (o->nav_map.on && o->nav_map.dropped[d]) return 0;
  return !(e->in.virtual_nav && o->ndim > 0 && o->kind != HB_OUT_RAGGED);
}

void hb_direct_chunk(const hb_engine *e, const hb_result *r, hsize_t *chunk) {
  const hb_nav_map *m = &r->o->nav_map;
  hb_hspy_default_chunks(r->ndim, r->shape, r->nav, hb_dtype_size(r->o->dtype), chunk);
  for (int d = 0, j = 0; d < e->in.nav_dim; d++) {
    if (!hb_result_has_nav_axis(e, r, d)) continue;
    /* a changed scan's blocks start at k * extent / step - first / step in it
     * (the partition aligns blocks to the steps): chunks divide both */
    hsize_t ext = hb_partition_extent(&e->part, d);
    if (m->on) ext = hb_gcd(ext / m->step[d], m->first[d] / m->step[d]);
    chunk[j] = divisor_at_most(ext, chunk[j]);
    j++;
  }
}

size_t hb_direct_block_region(const hb_engine *e, const hb_result *r, hsize_t *start, hsize_t *count) {
  const hb_nav_map *m = &r->o->nav_map;
  size_t n = 1;
  for (int d = 0, j = 0; d < e->in.nav_dim; d++) {
    hsize_t first = start[d], c = count[d];
    if (m->on) c = hb_nav_map_region(m, d, start[d], count[d], &first);
    n *= c;
    if (!hb_result_has_nav_axis(e, r, d)) continue; /* a reduced axis: not in the file */
    start[j] = first, count[j] = c, j++;
  }
  return n;
}

size_t hb_direct_block_positions(const hb_engine *e, const hb_result *r, const hsize_t *start, const hsize_t *count) {
  hsize_t s[HB_MAXDIM], c[HB_MAXDIM];
  memcpy(s, start, sizeof s);
  memcpy(c, count, sizeof c);
  return hb_direct_block_region(e, r, s, c);
}

static void *pool_get(hb_engine *e, int i) {
  hb_directstage *s = &e->direct;
  if (s->npool[i]) return s->pool[i][--s->npool[i]];
  return malloc(e->part.max_block_pos * e->res[i].slot);
}

static int pool_put(hb_engine *e, int i, void *buf) {
  hb_directstage *s = &e->direct;
  void **more = realloc(s->pool[i], (s->npool[i] + 1) * sizeof *more);
  if (!more) {
    free(buf);
    return HB_FAIL(HB_EINTERNAL, "memory", "out of memory");
  }
  s->pool[i] = more;
  s->pool[i][s->npool[i]++] = buf;
  return 0;
}

/* Result i is written block by block and filled in this pass. */
static int direct_here(const hb_engine *e, int i) {
  return e->res[i].path == HB_PATH_DIRECT && e->res[i].pass == e->pass;
}

int hb_direct_stage(hb_engine *e, const hb_block *blk, void **bufs) {
  hb_directstage *s = &e->direct;
  if (!e->ndirect) return 0;
  if (s->nblocks == s->cap) {
    size_t cap = s->cap ? 2 * s->cap : 8;
    size_t *b = realloc(s->blocks, cap * sizeof *b);
    if (b) s->blocks = b;
    void **v = b ? realloc(s->bufs, cap * HB_MAX_RESULTS * sizeof *v) : NULL;
    HB_CHECK(b && v, HB_EINTERNAL, "memory", "out of memory staging results");
    s->bufs = v;
    s->cap = cap;
  }
  size_t k = s->nblocks;
  for (int i = 0; i < e->nres; i++) s->bufs[k * HB_MAX_RESULTS + i] = NULL;
  for (int i = 0; i < e->nres; i++) {
    if (!direct_here(e, i)) continue;
    void *fresh = pool_get(e, i);
    HB_CHECK(fresh, HB_EINTERNAL, "memory", "out of memory for a block of result '%s'", e->res[i].o->name);
    s->bufs[k * HB_MAX_RESULTS + i] = bufs[i];
    bufs[i] = fresh;
    s->bytes += hb_direct_block_positions(e, &e->res[i], blk->start, blk->count) * e->res[i].item;
  }
  s->blocks[s->nblocks++] = blk->index;
  return 0;
}

int hb_direct_full(const hb_engine *e) { return e->ndirect && e->direct.bytes >= e->direct.budget; }

/* Where each chunk of a written block went, for the checkpoint. */
static int record_block(hb_engine *e, const hb_result *r, int ri, size_t block) {
  int nd = r->nav;
  hsize_t start[HB_MAXDIM], count[HB_MAXDIM], grid[HB_MAXDIM], idx[HB_MAXDIM] = {0}, off[HB_MAXDIM] = {0};
  hb_partition_block(&e->part, block, start, count);
  if (!hb_direct_block_region(e, r, start, count)) return 0; /* no whole bin: nothing written */
  for (int d = 0; d < nd; d++) grid[d] = (r->shape[d] + r->chunk[d] - 1) / r->chunk[d];
  for (;;) {
    size_t linear = 0;
    for (int d = 0; d < nd; d++) {
      off[d] = start[d] + idx[d] * r->chunk[d];
      linear = linear * grid[d] + off[d] / r->chunk[d];
    }
    unsigned mask = 0;
    haddr_t addr = HADDR_UNDEF;
    hsize_t size = 0;
    HB_CHECK(H5Dget_chunk_info_by_coord(r->dset, off, &mask, &addr, &size) >= 0 && addr != HADDR_UNDEF && !mask,
             HB_EIO, e->partial, "cannot locate a stored chunk of result '%s' (%s)", r->o->name, hb_h5_error_text());
    HB_CALL(hb_chunk_table_add(&e->stored, (uint64_t)ri, linear, (uint64_t)addr, (uint64_t)size));
    int d = nd - 1;
    while (d >= 0 && ++idx[d] * r->chunk[d] >= count[d]) idx[d--] = 0;
    if (d < 0) break;
  }
  return 0;
}

int hb_direct_flush(hb_engine *e) {
  hb_directstage *s = &e->direct;
  if (!e->ndirect) return 0;
  double t0 = hb_now();
  unsigned long most = s->nblocks;
  HB_MPI(MPI_Allreduce(MPI_IN_PLACE, &most, 1, MPI_UNSIGNED_LONG, MPI_MAX, e->comm));
  hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
  H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE);
  int rc = hb_fault("direct_write") ? HB_FAIL(HB_EIO, e->partial, "cannot write a block of results (%s)",
                                              strerror(EIO))
                                    : 0;
  /* one collective write per block and result; a rank with fewer blocks, or
   * that has failed, takes part selecting nothing */
  for (size_t k = 0; k < most; k++)
    for (int i = 0; i < e->nres; i++) {
      hb_result *r = &e->res[i];
      if (!direct_here(e, i)) continue;
      hsize_t start[HB_MAXDIM] = {0}, count[HB_MAXDIM];
      int mine = k < s->nblocks && !rc;
      size_t npos = 0;
      if (mine) hb_partition_block(&e->part, s->blocks[k], start, count), npos = hb_direct_block_region(e, r, start, count);
      mine &= npos > 0;
      for (int d = r->nav; d < r->ndim; d++) start[d] = 0, count[d] = r->shape[d];
      hid_t fs = H5Dget_space(r->dset), ms = H5Screate_simple(r->ndim, mine ? count : r->shape, NULL);
      if (mine) H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
      else H5Sselect_none(fs), H5Sselect_none(ms);
      if (H5Dwrite(r->dset, hb_dtype_h5(r->o->dtype), ms, fs, dxpl, mine ? s->bufs[k * HB_MAX_RESULTS + i] : NULL) <
              0 &&
          !rc)
        rc = HB_FAIL(HB_EIO, e->partial, "cannot write result '%s' (%s)", r->o->name, hb_io_error_text());
      H5Sclose(ms);
      H5Sclose(fs);
      if (mine) e->tm.bytes[HB_PH_WRITE] += (double)npos * r->item;
    }
  H5Pclose(dxpl);
  /* start the disk writes of what this window wrote without waiting for
   * them: the output is synced before it is published anyway, and what is
   * still dirty then is written while every rank waits (a 4.3 GB FFT ran
   * about 5% faster from an idle disk; docs/performance.md).  A hint:
   * failures are ignored. */
  if (e->store_fd >= 0) (void)sync_file_range(e->store_fd, 0, 0, SYNC_FILE_RANGE_WRITE);
  for (size_t k = 0; k < s->nblocks && !rc && e->job->checkpoint; k++)
    for (int i = 0; i < e->nres && !rc; i++)
      if (direct_here(e, i)) rc = record_block(e, &e->res[i], i, s->blocks[k]);
  for (size_t k = 0; k < s->nblocks; k++)
    for (int i = 0; i < e->nres; i++)
      if (direct_here(e, i)) {
        int prc = pool_put(e, i, s->bufs[k * HB_MAX_RESULTS + i]);
        if (!rc) rc = prc;
      }
  s->nblocks = s->bytes = 0;
  e->tm.seconds[HB_PH_WRITE] += hb_now() - t0;
  return hb_agree(e->comm, rc);
}

void hb_direct_free(hb_engine *e) {
  hb_directstage *s = &e->direct;
  for (size_t k = 0; k < s->nblocks; k++) /* a failed run's (every pass's) */
    for (int i = 0; i < e->nres; i++)
      if (e->res[i].path == HB_PATH_DIRECT) free(s->bufs[k * HB_MAX_RESULTS + i]);
  for (int i = 0; i < HB_MAX_RESULTS; i++) {
    while (s->npool[i]) free(s->pool[i][--s->npool[i]]);
    free(s->pool[i]);
  }
  free(s->blocks);
  free(s->bufs);
  memset(s, 0, sizeof *s);
}
