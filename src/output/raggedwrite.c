/* Ragged results: a list of records per pattern, of any length (find_peaks'
 * peaks).  HyperSpy stores them as variable-length datasets, which parallel
 * HDF5 cannot write, and a file holding one cannot be loaded lazily by
 * HyperSpy 1.7.3 (docs/hyperspy-semantics.md, section 1).  So:
 *
 * - while running, each rank appends its finished blocks' lists to a side
 *   file, <output>.partial.ragged, with MPI-IO at offsets the ranks agree
 *   on (an exclusive scan); a record is a block's lists of one result:
 *   a header (block, result, positions, records), a count per position and
 *   the records.  Appended once, never changed: a checkpoint keeps the
 *   records' places and the committed length (checkpoint.c);
 * - at the end rank 0 turns them into HyperSpy's ragged layout (a
 *   variable-length `data` of the flattened lists and `ragged_shapes`, the
 *   navigation axes only, `attributes/ragged`), in a file of their own,
 *   <output stem>.ragged.hspy, so that the main output keeps loading lazily.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine_priv.h"
#include "hb_error.h"

typedef struct {
  uint64_t block, result, npos, nrec;
} record_head;

static size_t pad8(size_t n) { return (n + 7) & ~(size_t)7; }

void hb_ragged_add(hb_ragged *r, size_t p, const void *records, size_t n) {
  if (r->failed) return;
  if (r->n == r->cap) {
    size_t cap = r->cap ? 2 * r->cap : 256;
    uint64_t *pos = realloc(r->pos, cap * sizeof *pos);
    if (pos) r->pos = pos;
    uint32_t *count = pos ? realloc(r->count, cap * sizeof *count) : NULL;
    if (!count) {
      r->failed = 1;
      return;
    }
    r->count = count;
    r->cap = cap;
  }
  size_t bytes = n * r->rec_bytes;
  if (r->bytes + bytes > r->recs_cap) {
    size_t cap = r->recs_cap ? 2 * r->recs_cap : 4096;
    while (cap < r->bytes + bytes) cap *= 2;
    unsigned char *more = realloc(r->recs, cap);
    if (!more) {
      r->failed = 1;
      return;
    }
    r->recs = more;
    r->recs_cap = cap;
  }
  r->pos[r->n] = r->runpos ? r->runpos[p] : r->pos0 + p;
  r->count[r->n++] = (uint32_t)n;
  if (bytes) memcpy(r->recs + r->bytes, records, bytes);
  r->bytes += bytes;
}

void hb_ragged_out_of_memory(hb_ragged *r) { r->failed = 1; }

int hb_ragged_alloc(hb_engine *e, hb_ragged **slots) {
  *slots = NULL;
  if (!e->nragged) return 0;
  HB_ALLOC(*slots, e->nres);
  for (int i = 0; i < e->nres; i++) (*slots)[i].rec_bytes = e->res[i].item;
  return 0;
}

void hb_ragged_free(hb_engine *e, hb_ragged *slots) {
  for (int i = 0; slots && i < e->nres; i++) free(slots[i].pos), free(slots[i].count), free(slots[i].recs);
  free(slots);
}

static int grow(void **p, size_t *cap, size_t need, size_t unit) {
  if (need <= *cap) return 0;
  size_t c = *cap ? *cap : 64;
  while (c < need) c *= 2;
  void *more = realloc(*p, c * unit);
  HB_CHECK(more, HB_EINTERNAL, "memory", "out of memory staging ragged results");
  *p = more;
  *cap = c;
  return 0;
}

/* A block's lists of result i, in position order, as one side-file record. */
static int stage_one(hb_engine *e, const hb_block *blk, int i, hb_ragged *r) {
  hb_raggedstage *s = &e->ragged;
  HB_CHECK(!r->failed, HB_EINTERNAL, "memory", "out of memory for the lists of result '%s'", e->res[i].o->name);
  size_t npos = blk->npos, nrec = r->bytes / (r->rec_bytes ? r->rec_bytes : 1);
  size_t need = sizeof(record_head) + pad8(npos * sizeof(uint32_t)) + pad8(r->bytes);
  HB_CALL(grow((void **)&s->buf, &s->cap, s->bytes + need, 1));
  unsigned char *at = s->buf + s->bytes;
  record_head h = {blk->index, (uint64_t)i, npos, nrec};
  memcpy(at, &h, sizeof h);
  uint32_t *counts = (uint32_t *)(at + sizeof h);
  memset(counts, 0, pad8(npos * sizeof(uint32_t)));
  for (size_t k = 0; k < r->n; k++) counts[r->pos[k]] += r->count[k];
  /* the records in position order: a position's entries keep their order */
  unsigned char *out = at + sizeof h + pad8(npos * sizeof(uint32_t));
  size_t *first = malloc((npos + 1) * sizeof *first);
  HB_CHECK(first, HB_EINTERNAL, "memory", "out of memory staging ragged results");
  first[0] = 0;
  for (size_t p = 0; p < npos; p++) first[p + 1] = first[p] + counts[p];
  const unsigned char *src = r->recs;
  for (size_t k = 0; k < r->n; k++) {
    size_t bytes = r->count[k] * r->rec_bytes;
    memcpy(out + first[r->pos[k]] * r->rec_bytes, src, bytes);
    first[r->pos[k]] += r->count[k];
    src += bytes;
  }
  free(first);
  memset(out + r->bytes, 0, pad8(r->bytes) - r->bytes);
  s->bytes += need;
  r->n = r->bytes = 0;
  return 0;
}

int hb_ragged_stage(hb_engine *e, const hb_block *blk, hb_ragged *slots) {
  for (int i = 0; i < e->nres; i++)
    if (e->res[i].path == HB_PATH_RAGGED && e->res[i].pass == e->pass) HB_CALL(stage_one(e, blk, i, &slots[i]));
  return 0;
}

int hb_ragged_full(const hb_engine *e) { return e->nragged && e->ragged.bytes >= HB_NAV_STAGE_BYTES; }

int hb_ragged_open(hb_engine *e) {
  hb_raggedstage *s = &e->ragged;
  if (!e->nragged) return 0;
  int rc = 0;
  /* a resumed run goes on after the committed records; anything past them
   * was never committed */
  if (e->rank == 0) {
    struct stat st;
    if (e->resumed.found) {
      if (lstat(e->ragged_side, &st) || !S_ISREG(st.st_mode) || (uint64_t)st.st_size < e->resumed.ragged_end)
        rc = HB_FAIL(HB_EIO, e->ragged_side,
                     "the checkpoint's lists are gone or cut short, so the run cannot resume; run with "
                     "output.overwrite: true to start over");
      else if (truncate(e->ragged_side, (off_t)e->resumed.ragged_end))
        rc = HB_FAIL(HB_EIO, e->ragged_side, "cannot go back to the checkpoint's records: %s", strerror(errno));
      /* the checkpoint's records are rank 0's now: the next checkpoint keeps them */
      else if (!(rc = grow((void **)&s->dir, &s->dir_cap, 4 * e->resumed.nragged_dir, sizeof *s->dir))) {
        memcpy(s->dir, e->resumed.ragged_dir, 4 * e->resumed.nragged_dir * sizeof *s->dir);
        s->ndir = e->resumed.nragged_dir;
      }
    } else if (unlink(e->ragged_side) && errno != ENOENT) {
      rc = HB_FAIL(HB_EIO, e->ragged_side, "cannot remove a stale file: %s", strerror(errno));
    } else {
      int fd = open(e->ragged_side, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
      if (fd < 0) rc = HB_FAIL(HB_EIO, e->ragged_side, "cannot create it: %s", strerror(errno));
      else close(fd);
    }
  }
  HB_CALL(hb_agree(e->comm, rc));
  s->end = e->resumed.found ? e->resumed.ragged_end : 0;
  rc = MPI_File_open(e->comm, e->ragged_side, MPI_MODE_WRONLY, e->job->mpiio_info, &s->fh);
  rc = rc == MPI_SUCCESS ? 0 : HB_FAIL(HB_EIO, e->ragged_side, "cannot open it with MPI-IO");
  s->open = !rc;
  return hb_agree(e->comm, rc);
}

int hb_ragged_flush(hb_engine *e) {
  hb_raggedstage *s = &e->ragged;
  if (!e->nragged) return 0;
  double t0 = hb_now();
  unsigned long long mine = s->bytes, first = 0, total = 0;
  HB_MPI(MPI_Exscan(&mine, &first, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, e->comm));
  if (e->rank == 0) first = 0;
  HB_MPI(MPI_Allreduce(&mine, &total, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, e->comm));
  if (!total) return 0;
  int rc = 0;
  /* where each of this rank's records lands, for the checkpoint */
  for (size_t at = 0; at < s->bytes && !rc;) {
    record_head h;
    memcpy(&h, s->buf + at, sizeof h);
    size_t bytes = sizeof h + pad8(h.npos * sizeof(uint32_t)) + pad8(h.nrec * e->res[h.result].item);
    rc = grow((void **)&s->dir, &s->dir_cap, 4 * (s->ndir + 1), sizeof *s->dir);
    if (!rc) {
      uint64_t *row = s->dir + 4 * s->ndir++;
      row[0] = h.block, row[1] = h.result, row[2] = s->end + first + at, row[3] = bytes;
    }
    at += bytes;
  }
  /* collective, every rank its own bytes, in pieces MPI's int counts take */
  MPI_Offset off = (MPI_Offset)(s->end + first);
  unsigned long long most = 0;
  HB_MPI(MPI_Allreduce(&mine, &most, 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, e->comm));
  const size_t piece = (size_t)1 << 30;
  for (size_t done = 0; done < most; done += piece) {
    size_t n = !rc && done < s->bytes ? (s->bytes - done < piece ? s->bytes - done : piece) : 0;
    MPI_Status st;
    if (MPI_File_write_at_all(s->fh, off + (MPI_Offset)done, s->buf + (n ? done : 0), (int)n, MPI_BYTE, &st) !=
            MPI_SUCCESS &&
        !rc)
      rc = HB_FAIL(HB_EIO, e->ragged_side, "cannot write the lists (%s)", strerror(errno ? errno : EIO));
  }
  s->end += total;
  s->bytes = 0;
  e->tm.bytes[HB_PH_WRITE] += (double)mine;
  e->tm.seconds[HB_PH_WRITE] += hb_now() - t0;
  return hb_agree(e->comm, rc);
}

int hb_ragged_sync(hb_engine *e) {
  if (!e->nragged || !e->ragged.open) return 0;
  int rc = MPI_File_sync(e->ragged.fh) == MPI_SUCCESS
               ? 0
               : HB_FAIL(HB_EIO, e->ragged_side, "cannot sync the lists before a checkpoint");
  return hb_agree(e->comm, rc);
}

void hb_ragged_close(hb_engine *e) {
  if (e->ragged.open) MPI_File_close(&e->ragged.fh);
  e->ragged.open = 0;
  free(e->ragged.buf);
  free(e->ragged.dir);
  memset(&e->ragged, 0, sizeof e->ragged);
}

/* ---- the end: HyperSpy's ragged layout, rank 0 ---------------------------- */

static int by_result_then_block(const void *a, const void *b) {
  const uint64_t *x = a, *y = b;
  if (x[1] != y[1]) return (x[1] > y[1]) - (x[1] < y[1]);
  return (x[0] > y[0]) - (x[0] < y[0]);
}

/* Collective: every rank's rows of the side file (a resumed run's are
 * rank 0's) on rank 0, sorted by result then block. */
static int gather_dir(hb_engine *e, uint64_t **rows, size_t *n) {
  hb_raggedstage *s = &e->ragged;
  int size = e->size, mine = (int)(4 * s->ndir);
  int *cnt = calloc((size_t)size, sizeof *cnt), *disp = calloc((size_t)size, sizeof *disp);
  int rc = cnt && disp ? 0 : HB_FAIL(HB_EINTERNAL, "memory", "out of memory");
  HB_CALL(hb_agree(e->comm, rc));
  HB_MPI(MPI_Gather(&mine, 1, MPI_INT, cnt, 1, MPI_INT, 0, e->comm));
  size_t total = 0;
  for (int r = 0; r < size && e->rank == 0; r++) disp[r] = (int)total, total += (size_t)cnt[r];
  *rows = e->rank == 0 ? malloc((total + 4) * sizeof **rows) : NULL;
  rc = e->rank == 0 && !*rows ? HB_FAIL(HB_EINTERNAL, "memory", "out of memory") : 0;
  HB_CALL(hb_agree(e->comm, rc));
  static uint64_t none;
  HB_MPI(MPI_Gatherv(s->ndir ? s->dir : &none, mine, MPI_UINT64_T, *rows, cnt, disp, MPI_UINT64_T, 0, e->comm));
  free(cnt);
  free(disp);
  if (e->rank == 0) {
    *n = total / 4;
    qsort(*rows, *n, 4 * sizeof **rows, by_result_then_block);
  }
  return 0;
}

/* Rank 0: result ri's lists, block by block, into `data` and
 * `ragged_shapes` (a list's shape is (records, item...)). */
static int write_lists(hb_engine *e, int ri, const uint64_t *rows, size_t n, int fd, hid_t data, hid_t shapes) {
  const hb_result *r = &e->res[ri];
  const hb_output *o = r->o;
  int nd = e->in.nav_dim, rc = 0;
  size_t elems = hb_output_elems(o), bytes_max = 0;
  for (size_t k = 0; k < n; k++) bytes_max = rows[4 * k + 3] > bytes_max ? rows[4 * k + 3] : bytes_max;
  unsigned char *buf = malloc(bytes_max ? bytes_max : 1);
  hvl_t *vl = malloc(e->part.max_block_pos * sizeof *vl), *vs = malloc(e->part.max_block_pos * sizeof *vs);
  int64_t *shape = malloc(e->part.max_block_pos * (1 + (size_t)o->ndim) * sizeof *shape);
  hid_t vtype = H5Tvlen_create(hb_dtype_h5(o->dtype)), stype = H5Tvlen_create(H5T_NATIVE_INT64);
  HB_CHECK(buf && vl && vs && shape && vtype >= 0 && stype >= 0, HB_EINTERNAL, "memory", "out of memory");
  for (size_t k = 0; k < n && !rc; k++) {
    const uint64_t *row = rows + 4 * k;
    size_t got = 0;
    while (got < row[3] && !rc) {
      ssize_t m = pread(fd, buf + got, row[3] - got, (off_t)(row[2] + got));
      if (m <= 0) rc = HB_FAIL(HB_EIO, e->ragged_side, "cannot read the lists back: %s", m ? strerror(errno) : "end of file");
      else got += (size_t)m;
    }
    if (rc) break;
    record_head h;
    memcpy(&h, buf, sizeof h);
    const uint32_t *counts = (const uint32_t *)(buf + sizeof h);
    unsigned char *recs = buf + sizeof h + pad8(h.npos * sizeof(uint32_t));
    hsize_t start[HB_MAXDIM], count[HB_MAXDIM];
    size_t npos = hb_partition_block(&e->part, h.block, start, count);
    HB_CHECK(npos == h.npos && h.result == (uint64_t)ri, HB_EIO, e->ragged_side, "a record does not fit its block");
    for (size_t p = 0, at = 0; p < npos; p++) {
      vl[p].len = counts[p] * elems;
      vl[p].p = recs + at * r->item;
      at += counts[p];
      int64_t *sh = shape + p * (1 + (size_t)o->ndim);
      sh[0] = counts[p];
      for (int d = 0; d < o->ndim; d++) sh[1 + d] = (int64_t)o->shape[d];
      vs[p].len = 1 + (size_t)o->ndim;
      vs[p].p = sh;
    }
    hid_t fs = H5Dget_space(data), ms = H5Screate_simple(nd, count, NULL);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    if (H5Dwrite(data, vtype, ms, fs, H5P_DEFAULT, vl) < 0 || H5Dwrite(shapes, stype, ms, fs, H5P_DEFAULT, vs) < 0)
      rc = HB_FAIL(HB_EIO, e->ragged_tmp, "cannot write result '%s' (%s)", o->name, hb_io_error_text());
    H5Sclose(ms);
    H5Sclose(fs);
  }
  H5Tclose(vtype);
  H5Tclose(stype);
  free(buf), free(vl), free(vs), free(shape);
  return rc;
}

int hb_ragged_finish(hb_engine *e) {
  if (!e->nragged) return 0;
  uint64_t *rows = NULL;
  size_t n = 0;
  HB_CALL(gather_dir(e, &rows, &n));
  if (e->rank != 0) return 0;
  int rc = 0, fd = open(e->ragged_side, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  hid_t f = -1;
  if (fd < 0) rc = HB_FAIL(HB_EIO, e->ragged_side, "cannot read the lists back: %s", strerror(errno));
  if (!rc && unlink(e->ragged_tmp) && errno != ENOENT)
    rc = HB_FAIL(HB_EIO, e->ragged_tmp, "cannot remove a stale file: %s", strerror(errno));
  if (!rc) rc = hb_hspy_create(e->ragged_tmp, MPI_COMM_NULL, MPI_INFO_NULL, &f);
  char *tmp = strdup(e->in.path);
  const char *base = tmp ? basename(tmp) : e->in.path;
  for (int i = 0, at = 0; i < e->nres && !rc; i++) {
    if (e->res[i].path != HB_PATH_RAGGED) continue;
    size_t first = (size_t)at, k = first;
    while (k < n && rows[4 * k + 1] == (uint64_t)i) k++;
    at = (int)k;
    if (k - first != e->part.nblocks) {
      rc = HB_FAIL(HB_EINTERNAL, e->res[i].o->name, "%zu of %zu blocks have lists", k - first, e->part.nblocks);
      break;
    }
    hb_axis axes[HB_MAXDIM];
    for (int d = 0; d < e->in.nav_dim; d++) axes[d] = e->in.axes[d], axes[d].navigate = 1;
    hb_signal_desc desc = {e->res[i].o->name, e->res[i].o->name, base, "", e->res[i].o->quantity, e->res[i].o->dtype,
                           e->in.nav_dim, e->in.shape, e->res[i].chunk, axes, e->job->gzip, NULL, NULL};
    hid_t g = -1, data = -1, shapes = -1;
    rc = hb_hspy_ragged_create(f, &desc, &g, &data, &shapes);
    if (!rc) rc = write_lists(e, i, rows + 4 * first, k - first, fd, data, shapes);
    if (!rc) rc = hb_output_write_provenance(e, g);
    if (!rc) rc = hb_output_carry_metadata(e, &g, 1);
    if (shapes >= 0) H5Dclose(shapes);
    if (data >= 0) H5Dclose(data);
    if (g >= 0) H5Gclose(g);
  }
  free(tmp);
  free(rows);
  if (f >= 0 && H5Fclose(f) < 0 && !rc)
    rc = HB_FAIL(HB_EIO, e->ragged_tmp, "cannot close it (%s)", hb_io_error_text());
  if (fd >= 0) close(fd);
  if (!rc) {
    int sfd = open(e->ragged_tmp, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (sfd < 0 || fsync(sfd)) rc = HB_FAIL(HB_EIO, e->ragged_tmp, "cannot sync it: %s", strerror(errno));
    if (sfd >= 0) close(sfd);
  }
  return rc;
}
