/* Checkpoints and resuming (docs/checkpoint.md has the protocol and why).
 *
 * The output being written, <out>.partial, is an HDF5 file, and HDF5 1.10
 * updates its metadata (chunk indexes, object headers, the superblock) in
 * place and without a journal: a kill during a flush can leave a chunk
 * index pointing at old bytes or at nothing.  So a checkpoint never relies
 * on the .partial's metadata.  It is a small file of its own,
 * <out>.checkpoint, written whole under a temporary name, synced, and
 * renamed over the previous one: the rename is the commit, and a kill at
 * any moment leaves either the old checkpoint or the new one.
 *
 * It holds the job's identity, a `done` byte per block, every rank's
 * reduction-tree nodes, the result chunks that are still incomplete, and
 * the address and size in the .partial of every result chunk stored so far.
 * Result chunks are stored once, complete, and never rewritten (navwrite.c),
 * and every rank syncs the .partial before the commit, so the bytes a
 * checkpoint points to are on disk and stay as they are.  A resumed run
 * moves that .partial aside, creates a fresh one, copies those chunks into
 * it byte for byte, and commits a checkpoint of the new file before it
 * removes the old. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chunkwrite.h"
#include "engine_priv.h"
#include "hb_error.h"
#include "hb_h5.h"
#include "hb_settings.h"

#define FORMAT "hyperbatch checkpoint 3" /* 3: the identity covers the results' chunks */

static volatile sig_atomic_t interrupted_by;

static void on_signal(int sig) { interrupted_by = sig; }

void hb_ckpt_install_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGUSR1, &sa, NULL);
  /* a file-size limit should fail a write (EFBIG), not kill the rank */
  signal(SIGXFSZ, SIG_IGN);
}

int hb_ckpt_interrupted(void) { return interrupted_by; }

void hb_ckpt_paths(hb_engine *e) {
  const char *out = e->job->output_file;
  snprintf(e->partial, sizeof e->partial, "%s.partial", out);
  snprintf(e->old_store, sizeof e->old_store, "%s.partial.old", out);
  snprintf(e->record, sizeof e->record, "%s.checkpoint", out);
  snprintf(e->record_tmp, sizeof e->record_tmp, "%s.checkpoint.tmp", out);
  snprintf(e->ragged_side, sizeof e->ragged_side, "%s.partial.ragged", out);
  size_t len = strlen(out);
  if (len > 5 && !strcmp(out + len - 5, ".hspy")) len -= 5;
  snprintf(e->ragged_out, sizeof e->ragged_out, "%.*s.ragged.hspy", (int)len, out);
  snprintf(e->ragged_tmp, sizeof e->ragged_tmp, "%s.partial", e->ragged_out);
}

static void fnv(unsigned long long *h, const void *p, size_t n) {
  const unsigned char *c = p;
  for (size_t i = 0; i < n; i++) *h = (*h ^ c[i]) * 1099511628211ULL;
}

/* What must not change between a run and its resumption. */
void hb_ckpt_identity(const hb_engine *e, char *out, size_t n) {
  unsigned long long h = 1469598103934665603ULL;
  fnv(&h, e->job->text, e->job->len + 1);
  for (int i = 0; i < e->job->nsets; i++)
    if (strncmp(e->job->sets[i], "--set run.profile=", 18)) fnv(&h, e->job->sets[i], strlen(e->job->sets[i]) + 1);
  long long v[4] = {e->in.file_size, e->in.mtime, (long long)e->part.nblocks, (long long)e->sig_bytes};
  fnv(&h, v, sizeof v);
  /* the per-pattern results' layout: the checkpoint's chunk numbers mean
   * nothing in another grid (HB_RESULT_CHUNK_BYTES changes it) */
  for (int i = 0; i < e->nres; i++) {
    const hb_result *r = &e->res[i];
    if (r->path == HB_PATH_NONE) continue;
    long long l[2 + 2 * HB_MAXDIM] = {r->path, r->ndim};
    for (int d = 0; d < r->ndim && d < HB_MAXDIM; d++)
      l[2 + d] = (long long)r->shape[d], l[2 + HB_MAXDIM + d] = (long long)r->chunk[d];
    fnv(&h, l, sizeof l);
  }
  snprintf(out, n, "%016llx", h);
}

/* fsync(path), opened read-only: flushes what this node wrote to it. */
static int sync_file(const char *path) {
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  int bad = fd < 0 || fsync(fd);
  int err = errno;
  if (fd >= 0) close(fd);
  errno = err;
  return bad;
}

/* Rank 0: the blocks a new file will fill, taken now, so that a disk filling
 * up under us fails here, for every rank at once, and not inside HDF5's
 * collective flush, where one rank failing alone leaves the others waiting.
 * A file system without fallocate keeps that smaller risk. */
static int reserve_space(const char *path, long long bytes) {
  int fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
  int bad = fd < 0 || (fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)bytes) && errno != EOPNOTSUPP && errno != ENOSYS);
  int err = errno;
  if (fd >= 0) close(fd);
  errno = err;
  return bad;
}

/* The folder's entry for a rename or unlink reaches the disk. */
int hb_sync_dir_of(const char *path) {
  char *tmp = strdup(path);
  int fd = tmp ? open(dirname(tmp), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
  int bad = fd < 0 || fsync(fd);
  if (fd >= 0) close(fd);
  free(tmp);
  return bad;
}

/* ---- writing: the commit -------------------------------------------------- */

/* Collective: create dataset `name` of rows × cols (cols 0: 1-D; at least
 * one row, the `rows` attribute says how many are real), then this rank
 * writes its `count` rows at `first`, independently. */
static int put(const hb_engine *e, hid_t f, const char *name, hid_t type, hsize_t rows, hsize_t cols, hsize_t first,
               hsize_t count, const void *buf, int rc) {
  hsize_t dims[2] = {rows ? rows : 1, cols}, start[2] = {first, 0}, mine[2] = {count, cols};
  hid_t sp = H5Screate_simple(cols ? 2 : 1, dims, NULL);
  hid_t d = H5Dcreate2(f, name, type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  int bad = d < 0 || hb_h5_attr_i64(d, "rows", (long long)rows);
  if (!bad && count && !rc) {
    hid_t ms = H5Screate_simple(cols ? 2 : 1, mine, NULL);
    H5Sselect_hyperslab(sp, H5S_SELECT_SET, start, NULL, mine, NULL);
    bad = H5Dwrite(d, type, ms, sp, H5P_DEFAULT, buf) < 0;
    H5Sclose(ms);
  }
  if (!rc && bad)
    rc = HB_FAIL(HB_EIO, e->record_tmp, "cannot write the checkpoint's %s (%s)", name, hb_io_error_text());
  if (d >= 0) H5Dclose(d);
  H5Sclose(sp);
  return rc;
}

/* This rank's part of a checkpoint, in the layouts `put` writes. */
typedef struct {
  long long *node_ids;  /* (level, index) per tree node */
  unsigned char *nodes; /* sig_bytes per node */
  long long n_nodes;
  long long *chunk_rows;  /* (result, chunk, address, size) per stored chunk */
  long long *pending_ids; /* (result, chunk, byte offset in pending) per incomplete chunk */
  unsigned char *pending;
  long long n_pending, pending_bytes;
} part;

static void free_part(part *p) {
  free(p->node_ids), free(p->nodes), free(p->chunk_rows), free(p->pending_ids), free(p->pending);
}

static int gather_part(hb_engine *e, part *p) {
  memset(p, 0, sizeof *p);
  size_t nb = e->sig_bytes ? e->sig_bytes : 1, n = (size_t)e->tree.depth;
  int which[HB_MAX_RESULTS], nnav = hb_nav_results(e, which);
  const hb_navstage *s = &e->stage;
  for (size_t k = 0; k < s->nchunk_buf; k++)
    if (s->chunk_buf[k]) {
      p->n_pending++;
      p->pending_bytes += (long long)(hb_partition_result_positions(&e->part) * e->res[which[k % (size_t)nnav]].item);
    }
  p->node_ids = malloc(sizeof(long long) * 2 * (n ? n : 1));
  p->nodes = malloc(nb * (n ? n : 1));
  p->chunk_rows = malloc(sizeof(long long) * 4 * (e->stored.n ? e->stored.n : 1));
  p->pending_ids = malloc(sizeof(long long) * 3 * (size_t)(p->n_pending ? p->n_pending : 1));
  p->pending = malloc((size_t)(p->pending_bytes ? p->pending_bytes : 1));
  HB_CHECK(p->node_ids && p->nodes && p->chunk_rows && p->pending_ids && p->pending, HB_EINTERNAL, "memory",
           "out of memory writing a checkpoint");
  p->n_nodes = (long long)n;
  for (size_t i = 0; i < n; i++) {
    p->node_ids[2 * i] = e->tree.stack[i].level;
    p->node_ids[2 * i + 1] = (long long)e->tree.stack[i].index;
    if (e->sig_bytes) memcpy(p->nodes + i * nb, e->tree.stack[i].buf, nb);
  }
  for (size_t i = 0; i < e->stored.n; i++) {
    const hb_chunk_row *r = &e->stored.rows[i];
    long long *row = p->chunk_rows + 4 * i;
    row[0] = (long long)r->dset, row[1] = (long long)r->chunk, row[2] = (long long)r->addr, row[3] = (long long)r->size;
  }
  long long at = 0, i = 0;
  for (size_t k = 0; k < s->nchunk_buf; k++) {
    if (!s->chunk_buf[k]) continue;
    size_t bytes = hb_partition_result_positions(&e->part) * e->res[which[k % (size_t)nnav]].item;
    p->pending_ids[3 * i] = which[k % (size_t)nnav]; /* the result's index */
    p->pending_ids[3 * i + 1] = (long long)(k / (size_t)nnav);
    p->pending_ids[3 * i + 2] = at;
    memcpy(p->pending + at, s->chunk_buf[k], bytes);
    at += (long long)bytes;
    i++;
  }
  return 0;
}

static long long hidden_bytes(const hb_engine *e, long long *n) {
  long long bytes = 0;
  *n = 0;
  for (int i = 0; i < e->nres; i++)
    if (e->res[i].o->hidden && e->reduced[i])
      ++*n, bytes += (long long)(e->res[i].elems * hb_dtype_size(e->res[i].o->dtype));
  return bytes;
}

/* Collective: hidden reduced results of finished passes (a kernel's own,
 * for its later passes: nowhere else on disk), written by rank 0; every
 * rank has them. */
static int put_hidden(hb_engine *e, hid_t f, int rc) {
  long long n, bytes = hidden_bytes(e, &n);
  long long *ids = malloc(sizeof(long long) * 3 * (size_t)(n ? n : 1));
  unsigned char *all = malloc((size_t)(bytes ? bytes : 1));
  if (!rc && (!ids || !all)) rc = HB_FAIL(HB_EINTERNAL, "memory", "out of memory writing a checkpoint");
  long long at = 0;
  for (int i = 0, k = 0; i < e->nres && !rc; i++) {
    if (!e->res[i].o->hidden || !e->reduced[i]) continue;
    long long b = (long long)(e->res[i].elems * hb_dtype_size(e->res[i].o->dtype));
    ids[3 * k] = i, ids[3 * k + 1] = at, ids[3 * k + 2] = b;
    memcpy(all + at, e->reduced[i], (size_t)b);
    at += b, k++;
  }
  int mine = e->rank == 0;
  rc = put(e, f, "reduced_ids", H5T_NATIVE_LLONG, (hsize_t)n, 3, 0, mine ? (hsize_t)n : 0, ids, rc);
  rc = put(e, f, "reduced", H5T_NATIVE_UCHAR, (hsize_t)bytes, 0, 0, mine ? (hsize_t)bytes : 0, all, rc);
  free(ids);
  free(all);
  return rc;
}

/* Collective: the checkpoint file under its temporary name, each rank
 * writing its own rows (nothing is gathered, so no rank's memory grows with
 * the rank count). */
static int write_record(hb_engine *e, const part *p, int rc) {
  enum { NODES, CHUNKS, PENDING, PENDING_BYTES, RAGGED, N };
  long long mine[N] = {p->n_nodes, (long long)e->stored.n, p->n_pending, p->pending_bytes, (long long)e->ragged.ndir},
            first[N] = {0}, total[N] = {0};
  HB_MPI(MPI_Exscan(mine, first, N, MPI_LONG_LONG, MPI_SUM, e->comm));
  if (e->rank == 0) memset(first, 0, sizeof first); /* MPI_Exscan leaves rank 0's undefined */
  HB_MPI(MPI_Allreduce(mine, total, N, MPI_LONG_LONG, MPI_SUM, e->comm));
  /* offsets into the whole pending byte array */
  for (long long i = 0; i < p->n_pending; i++) p->pending_ids[3 * i + 2] += first[PENDING_BYTES];
  if (e->rank == 0 && unlink(e->record_tmp) && errno != ENOENT && !rc)
    rc = HB_FAIL(HB_EIO, e->record_tmp, "cannot remove a stale checkpoint: %s", strerror(errno));
  if ((rc = hb_agree(e->comm, rc))) return rc;
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_fapl_mpio(fapl, e->comm, e->job->mpiio_info);
  H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
  /* EXCL: never through a link planted at the temporary name */
  hid_t f = H5Fcreate(e->record_tmp, H5F_ACC_EXCL, H5P_DEFAULT, fapl);
  H5Pclose(fapl);
  if (f < 0)
    return hb_agree(e->comm, HB_FAIL(HB_EIO, e->record_tmp, "cannot create the checkpoint (%s)", hb_h5_error_text()));
  long long nhidden, size = (long long)e->part.nblocks + 32 * total[CHUNKS] + (16 + (long long)(e->sig_bytes ? e->sig_bytes : 1)) * total[NODES] +
                            24 * total[PENDING] + total[PENDING_BYTES] + 32 * total[RAGGED] + hidden_bytes(e, &nhidden) +
                            24 * nhidden + (1 << 20) /* HDF5's own metadata, generously */;
  if (e->rank == 0 && !rc && (hb_fault("checkpoint_reserve") || reserve_space(e->record_tmp, size)))
    rc = HB_FAIL(HB_EIO, e->record_tmp, "cannot write the checkpoint: %s", strerror(errno));
  if ((rc = hb_agree(e->comm, rc))) {
    hb_error_mark_unclean(); /* never flushed: see hb_output_abort */
    return rc;
  }
  char id[32], when[32];
  hb_ckpt_identity(e, id, sizeof id);
  time_t now = time(NULL);
  struct tm tm;
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
  int bad = hb_h5_attr_str(f, "format", FORMAT) || hb_h5_attr_str(f, "identity", id) ||
            hb_h5_attr_i64(f, "blocks", (long long)e->part.nblocks) || hb_h5_attr_i64(f, "store_dev", e->store_dev) ||
            hb_h5_attr_i64(f, "store_ino", e->store_ino) || hb_h5_attr_i64(f, "ranks", e->size) ||
            hb_h5_attr_str(f, "written", when) || hb_h5_attr_i64(f, "pass", e->pass) ||
            hb_h5_attr_i64(f, "ragged_end", (long long)e->ragged.end);
  if (bad && !rc) rc = HB_FAIL(HB_EIO, e->record_tmp, "cannot write the checkpoint (%s)", hb_io_error_text());
  hsize_t nb = e->sig_bytes ? e->sig_bytes : 1;
  rc = put(e, f, "done", H5T_NATIVE_UCHAR, e->part.nblocks, 0, 0, e->rank == 0 ? e->part.nblocks : 0, e->done, rc);
  rc = put(e, f, "chunks", H5T_NATIVE_LLONG, (hsize_t)total[CHUNKS], 4, (hsize_t)first[CHUNKS], (hsize_t)mine[CHUNKS],
           p->chunk_rows, rc);
  rc = put(e, f, "node_ids", H5T_NATIVE_LLONG, (hsize_t)total[NODES], 2, (hsize_t)first[NODES], (hsize_t)mine[NODES],
           p->node_ids, rc);
  rc = put(e, f, "nodes", H5T_NATIVE_UCHAR, (hsize_t)total[NODES], nb, (hsize_t)first[NODES], (hsize_t)mine[NODES],
           p->nodes, rc);
  rc = put(e, f, "pending_ids", H5T_NATIVE_LLONG, (hsize_t)total[PENDING], 3, (hsize_t)first[PENDING],
           (hsize_t)mine[PENDING], p->pending_ids, rc);
  rc = put(e, f, "pending", H5T_NATIVE_UCHAR, (hsize_t)total[PENDING_BYTES], 0, (hsize_t)first[PENDING_BYTES],
           (hsize_t)mine[PENDING_BYTES], p->pending, rc);
  /* the ragged side file's records (raggedwrite.c), each rank its own */
  rc = put(e, f, "ragged_dir", H5T_NATIVE_UINT64, (hsize_t)total[RAGGED], 4, (hsize_t)first[RAGGED],
           (hsize_t)mine[RAGGED], e->ragged.dir, rc);
  rc = put_hidden(e, f, rc);
  if ((rc = hb_agree(e->comm, rc))) {
    hb_error_mark_unclean();
    return rc;
  }
  if (H5Fclose(f) < 0 && !rc)
    rc = HB_FAIL(HB_EIO, e->record_tmp, "cannot write the checkpoint (%s)", hb_io_error_text());
  /* what this node wrote of it is on disk before the rename */
  if (!rc && sync_file(e->record_tmp))
    rc = HB_FAIL(HB_EIO, e->record_tmp, "cannot sync the checkpoint: %s", strerror(errno));
  return hb_agree(e->comm, rc);
}

int hb_ckpt_commit(hb_engine *e) {
  double t0 = hb_now();
  /* every rank knows its own finished blocks: combine */
  HB_MPI(MPI_Allreduce(MPI_IN_PLACE, e->done, (int)e->part.nblocks, MPI_UNSIGNED_CHAR, MPI_MAX, e->comm));
  /* 1. the result chunks and lists the checkpoint will point to are on disk */
  int rc = 0;
  if (hb_fault("checkpoint_sync") || fsync(e->store_fd))
    rc = HB_FAIL(HB_EIO, e->partial, "cannot sync the output before a checkpoint: %s", strerror(errno));
  rc = hb_agree(e->comm, rc);
  if (!rc) rc = hb_ragged_sync(e);
  /* 2. the new checkpoint, whole, under its temporary name */
  part p;
  if (!rc)
    rc = gather_part(e, &p);
  else
    memset(&p, 0, sizeof p);
  rc = write_record(e, &p, rc);
  free_part(&p);
  /* 3. the commit */
  if (!rc && e->rank == 0) {
    if (hb_fault("checkpoint_rename") || rename(e->record_tmp, e->record))
      rc = HB_FAIL(HB_EIO, e->record, "cannot commit the checkpoint: %s", strerror(errno));
    else if (hb_sync_dir_of(e->record))
      rc = HB_FAIL(HB_EIO, e->record, "cannot sync the checkpoint's folder: %s", strerror(errno));
  }
  HB_CALL(hb_agree(e->comm, rc));
  e->committed = 1;
  e->ncommits++;
  e->tm.seconds[HB_PH_WRITE] += hb_now() - t0;
  return 0;
}

/* ---- reading: resume ------------------------------------------------------ */

/* Independent read of rows [first, first + count) of a 1-D or 2-D dataset. */
static int get(hid_t f, const char *name, hid_t type, hsize_t first, hsize_t count, hsize_t cols, void *buf,
               long long *rows) {
  hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
  hid_t a = d < 0 ? -1 : H5Aopen(d, "rows", H5P_DEFAULT);
  int bad = a < 0 || H5Aread(a, H5T_NATIVE_LLONG, rows) < 0;
  if (a >= 0) H5Aclose(a);
  if (!bad && buf && count) {
    hsize_t start[2] = {first, 0}, dims[2] = {count, cols};
    hid_t fs = H5Dget_space(d), ms = H5Screate_simple(cols ? 2 : 1, dims, NULL);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, dims, NULL);
    bad = H5Dread(d, type, ms, fs, H5P_DEFAULT, buf) < 0;
    H5Sclose(ms);
    H5Sclose(fs);
  }
  if (d >= 0) H5Dclose(d);
  return bad;
}

static int read_record(hb_engine *e, hid_t f) {
  hb_resumed *r = &e->resumed;
  char want[32], have[64] = "", format[64] = "";
  hb_ckpt_identity(e, want, sizeof want);
  hb_h5_read_attr_str(f, "format", format, sizeof format);
  hb_h5_read_attr_str(f, "identity", have, sizeof have);
  HB_CHECK(!strcmp(format, FORMAT), HB_EINVALID, e->record,
           "is not a checkpoint this version can resume (format '%s'); run with output.overwrite: true to start over",
           format);
  HB_CHECK(!strcmp(want, have), HB_EINVALID, e->record,
           "the job, its --set overrides, the input (size or modification time) or the results' chunks "
           "(HB_RESULT_CHUNK_BYTES) changed since this checkpoint; resume with the same job, input and settings, or "
           "run with output.overwrite: true to start over");
  hid_t a = H5Aopen(f, "store_dev", H5P_DEFAULT), b = H5Aopen(f, "store_ino", H5P_DEFAULT),
        c = H5Aopen(f, "pass", H5P_DEFAULT), d = H5Aopen(f, "ragged_end", H5P_DEFAULT);
  long long pass = 0, ragged_end = 0;
  int bad = a < 0 || b < 0 || c < 0 || d < 0 || H5Aread(a, H5T_NATIVE_LLONG, &r->store_dev) < 0 ||
            H5Aread(b, H5T_NATIVE_LLONG, &r->store_ino) < 0 || H5Aread(c, H5T_NATIVE_LLONG, &pass) < 0 ||
            H5Aread(d, H5T_NATIVE_LLONG, &ragged_end) < 0;
  if (a >= 0) H5Aclose(a);
  if (b >= 0) H5Aclose(b);
  if (c >= 0) H5Aclose(c);
  if (d >= 0) H5Aclose(d);
  r->ragged_end = (uint64_t)ragged_end;
  HB_CHECK(bad || (pass >= 1 && pass <= e->npasses), HB_EIO, e->record, "the checkpoint's pass %lld is not one of this job's", pass);
  e->pass = (int)pass;
  /* the hidden reduced results of the passes before */
  long long nhid = 0, hbytes = 0;
  bad = bad || get(f, "reduced_ids", H5T_NATIVE_LLONG, 0, 0, 3, NULL, &nhid) ||
        get(f, "reduced", H5T_NATIVE_UCHAR, 0, 0, 0, NULL, &hbytes);
  long long *hid_ids = bad ? NULL : malloc(sizeof(long long) * 3 * (size_t)(nhid ? nhid : 1));
  unsigned char *hid_all = bad ? NULL : malloc((size_t)(hbytes ? hbytes : 1));
  bad = bad || !hid_ids || !hid_all || get(f, "reduced_ids", H5T_NATIVE_LLONG, 0, (hsize_t)nhid, 3, hid_ids, &nhid) ||
        get(f, "reduced", H5T_NATIVE_UCHAR, 0, (hsize_t)hbytes, 0, hid_all, &hbytes);
  for (long long k = 0; k < nhid && !bad; k++) {
    long long ri = hid_ids[3 * k], at = hid_ids[3 * k + 1], b = hid_ids[3 * k + 2];
    bad = ri < 0 || ri >= e->nres || !e->res[ri].o->hidden || at + b > hbytes ||
          b != (long long)(e->res[ri].elems * hb_dtype_size(e->res[ri].o->dtype)) || e->reduced[ri];
    if (!bad && (e->reduced[ri] = malloc((size_t)b + 1))) memcpy(e->reduced[ri], hid_all + at, (size_t)b);
  }
  free(hid_ids);
  free(hid_all);
  /* the ragged side file's records: rank 0 turns them into the ragged file */
  long long nrag = 0;
  bad = bad || get(f, "ragged_dir", H5T_NATIVE_UINT64, 0, 0, 4, NULL, &nrag) || nrag < 0;
  if (!bad && e->rank == 0) {
    r->ragged_dir = malloc(sizeof *r->ragged_dir * 4 * (size_t)(nrag ? nrag : 1));
    bad = !r->ragged_dir || get(f, "ragged_dir", H5T_NATIVE_UINT64, 0, (hsize_t)nrag, 4, r->ragged_dir, &nrag);
    for (long long k = 0; k < nrag && !bad; k++) /* (block, result, offset, bytes) within the committed length */
      bad = r->ragged_dir[4 * k] >= e->part.nblocks || r->ragged_dir[4 * k + 1] >= (uint64_t)e->nres ||
            e->res[r->ragged_dir[4 * k + 1]].path != HB_PATH_RAGGED ||
            r->ragged_dir[4 * k + 2] + r->ragged_dir[4 * k + 3] > r->ragged_end;
    r->nragged_dir = (size_t)nrag;
  }
  long long rows = 0;
  bad = bad || get(f, "done", H5T_NATIVE_UCHAR, 0, e->part.nblocks, 0, e->done, &rows) ||
        rows != (long long)e->part.nblocks;
  HB_CHECK(!bad, HB_EIO, e->record, "cannot read the checkpoint (%s)", hb_h5_error_text());
  /* stored chunks and incomplete ones: every rank reads them all (small) */
  long long nchunks = 0, npending = 0, pbytes = 0;
  bad = get(f, "chunks", H5T_NATIVE_LLONG, 0, 0, 4, NULL, &nchunks) ||
        get(f, "pending_ids", H5T_NATIVE_LLONG, 0, 0, 3, NULL, &npending) ||
        get(f, "pending", H5T_NATIVE_UCHAR, 0, 0, 0, NULL, &pbytes) || nchunks < 0 || npending < 0 || pbytes < 0;
  HB_CHECK(!bad, HB_EIO, e->record, "cannot read the checkpoint (%s)", hb_h5_error_text());
  long long *rowbuf = malloc(sizeof(long long) * 4 * (size_t)(nchunks ? nchunks : 1));
  r->chunks = malloc(sizeof *r->chunks * (size_t)(nchunks ? nchunks : 1));
  r->pending_ids = malloc(sizeof(long long) * 3 * (size_t)(npending ? npending : 1));
  r->pending = malloc((size_t)(pbytes ? pbytes : 1));
  bad = !rowbuf || !r->chunks || !r->pending_ids || !r->pending;
  if (bad) free(rowbuf);
  HB_CHECK(!bad, HB_EINTERNAL, "memory", "out of memory reading the checkpoint");
  bad = get(f, "chunks", H5T_NATIVE_LLONG, 0, (hsize_t)nchunks, 4, rowbuf, &nchunks) ||
        get(f, "pending_ids", H5T_NATIVE_LLONG, 0, (hsize_t)npending, 3, r->pending_ids, &npending) ||
        get(f, "pending", H5T_NATIVE_UCHAR, 0, (hsize_t)pbytes, 0, r->pending, &pbytes);
  for (long long i = 0; i < nchunks; i++)
    r->chunks[i] = (hb_chunk_row){(uint64_t)rowbuf[4 * i], (uint64_t)rowbuf[4 * i + 1], (uint64_t)rowbuf[4 * i + 2],
                                  (uint64_t)rowbuf[4 * i + 3]};
  free(rowbuf);
  r->nchunks = (size_t)nchunks;
  r->npending = (size_t)npending;
  r->pending_bytes = (size_t)pbytes;
  HB_CHECK(!bad, HB_EIO, e->record, "cannot read the checkpoint (%s)", hb_h5_error_text());
  /* each rank seeds its tree with a share of the saved nodes; hb_tree_reduce
   * sorts them in wherever they are */
  long long nodes = 0;
  HB_CHECK(!get(f, "node_ids", H5T_NATIVE_LLONG, 0, 0, 2, NULL, &nodes) && nodes >= 0, HB_EIO, e->record,
           "cannot read the checkpoint's reduction nodes (%s)", hb_h5_error_text());
  size_t first = 0, end = 0, nb = e->sig_bytes ? e->sig_bytes : 1;
  hb_partition_range((size_t)nodes, e->rank, e->size, &first, &end);
  hsize_t count = end - first;
  long long *ids = malloc(sizeof(long long) * 2 * (count ? count : 1)), ignore;
  unsigned char *bufs = malloc(nb * (count ? count : 1));
  bad = !ids || !bufs || get(f, "node_ids", H5T_NATIVE_LLONG, first, count, 2, ids, &ignore) ||
        get(f, "nodes", H5T_NATIVE_UCHAR, first, count, nb, bufs, &ignore);
  for (hsize_t i = 0; !bad && e->sig_bytes && i < count; i++) {
    void *buf = hb_tree_buffer(&e->tree);
    if (!(bad = !buf)) {
      memcpy(buf, bufs + i * nb, nb);
      hb_tree_push(&e->tree, (int)ids[2 * i], (size_t)ids[2 * i + 1], buf);
    }
  }
  free(ids);
  free(bufs);
  HB_CHECK(!bad, HB_EIO, e->record, "cannot read the checkpoint's reduction nodes (%s)", hb_h5_error_text());
  return 0;
}

/* Is the file at `path` the one the checkpoint describes? */
static int is_store(const char *path, const hb_resumed *r) {
  struct stat st;
  return !lstat(path, &st) && S_ISREG(st.st_mode) && (long long)st.st_dev == r->store_dev &&
         (long long)st.st_ino == r->store_ino;
}

/* Rank 0: the output exists and was written by this very job (the
 * identity is in its provenance, output.c). */
static int output_is_this_job(const hb_engine *e) {
  struct stat st;
  if (e->nres < 1 || lstat(e->job->output_file, &st) || !S_ISREG(st.st_mode)) return 0;
  char want[32], have[64] = "", path[300];
  hb_ckpt_identity(e, want, sizeof want);
  int w = 0;
  while (w < e->nres - 1 && (e->res[w].o->hidden || e->res[w].path == HB_PATH_RAGGED)) w++;
  snprintf(path, sizeof path, "/Experiments/%s/original_metadata/hyperbatch", e->res[w].o->name);
  hid_t f, g = -1;
  H5E_BEGIN_TRY {
    f = H5Fopen(e->job->output_file, H5F_ACC_RDONLY, H5P_DEFAULT);
    g = f < 0 ? -1 : H5Gopen2(f, path, H5P_DEFAULT);
    if (g >= 0) hb_h5_read_attr_str(g, "job_identity", have, sizeof have);
    if (g >= 0) H5Gclose(g);
    if (f >= 0) H5Fclose(f);
  }
  H5E_END_TRY;
  return !strcmp(want, have);
}

int hb_ckpt_load(hb_engine *e) {
  hb_resumed *r = &e->resumed;
  struct stat st;
  int exists = 0;
  if (e->rank == 0) exists = !lstat(e->record, &st);
  HB_MPI(MPI_Bcast(&exists, 1, MPI_INT, 0, e->comm));
  if (!exists) {
    /* a run killed after it removed its checkpoint has nothing left to do */
    if (e->rank == 0) r->finished = output_is_this_job(e);
    HB_MPI(MPI_Bcast(&r->finished, 1, MPI_INT, 0, e->comm));
    if (e->rank == 0) {
      if (r->finished)
        printf("hyperbatch: %s was finished already by this job: nothing to do\n", e->job->output_file);
      else
        printf(
            "hyperbatch: %s: no checkpoint was committed (the run stopped before its first one, or never "
            "started): starting over\n",
            e->record);
      fflush(stdout);
    }
    return 0;
  }
  int rc = 0;
  if (e->rank == 0 && !S_ISREG(st.st_mode))
    rc = HB_FAIL(HB_EINVALID, e->record, "is not a regular file; remove it to start over");
  HB_CALL(hb_agree(e->comm, rc));
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_fapl_mpio(fapl, e->comm, e->job->mpiio_info);
  H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
  hid_t f = H5Fopen(e->record, H5F_ACC_RDONLY, fapl);
  H5Pclose(fapl);
  if (f < 0)
    return hb_agree(e->comm, HB_FAIL(HB_EIO, e->record,
                                     "the checkpoint cannot be read (%s); remove it, or run with output.overwrite: "
                                     "true, to start over",
                                     hb_h5_error_text()));
  rc = read_record(e, f);
  if (H5Fclose(f) < 0 && !rc) rc = HB_FAIL(HB_EIO, e->record, "cannot close the checkpoint (%s)", hb_h5_error_text());
  HB_CALL(hb_agree(e->comm, rc));
  r->found = 1;
  /* a run that finished was stopped after renaming its output and before
   * removing this checkpoint: nothing is left to do */
  if (e->rank == 0) r->finished = is_store(e->job->output_file, r);
  HB_MPI(MPI_Bcast(&r->finished, 1, MPI_INT, 0, e->comm));
  if (e->rank == 0) {
    size_t done = 0, total = hb_blocks_to_read(e);
    for (size_t b = 0; b < e->part.nblocks; b++) done += e->done[b];
    if (r->finished)
      printf("hyperbatch: %s was finished already (its checkpoint was still there): nothing to do\n",
             e->job->output_file);
    else
      printf("hyperbatch: resuming %s: %zu of %zu blocks were done, %zu to go on %d rank%s\n", e->record, done,
             total, total - done, e->size, e->size == 1 ? "" : "s");
    fflush(stdout);
  }
  return 0;
}

/* Rank 0, before the new .partial is created: the checkpoint's file moves
 * to <out>.partial.old (or is there already, from a resume that stopped
 * before its first commit); anything else under those names is stale. */
int hb_ckpt_set_aside(hb_engine *e) {
  const hb_resumed *r = &e->resumed;
  if (is_store(e->partial, r)) {
    HB_CHECK(!rename(e->partial, e->old_store), HB_EIO, e->partial, "cannot move it aside to resume: %s",
             strerror(errno));
    HB_CHECK(!hb_sync_dir_of(e->old_store), HB_EIO, e->old_store, "cannot sync its folder: %s", strerror(errno));
    return 0;
  }
  HB_CHECK(is_store(e->old_store, r), HB_EIO, e->partial,
           "the output the checkpoint describes is gone or was replaced, so the run cannot resume; run with "
           "output.overwrite: true to start over");
  HB_CHECK(!unlink(e->partial) || errno == ENOENT, HB_EIO, e->partial, "cannot remove a stale file: %s",
           strerror(errno));
  return 0;
}

typedef struct {
  int fd;
  off_t size;
  const hb_chunk_row *rows;
  const char *path;
} old_store;

static int fetch_chunk(void *ctx, size_t k, void *buf) {
  const old_store *o = ctx;
  const hb_chunk_row *r = &o->rows[k];
  HB_CHECK(r->addr + r->size <= (uint64_t)o->size && r->size > 0, HB_EIO, o->path,
           "the checkpoint names bytes %llu-%llu, past the end of the file (%lld bytes): it was truncated or replaced",
           (unsigned long long)r->addr, (unsigned long long)(r->addr + r->size), (long long)o->size);
  for (size_t got = 0; got < r->size;) {
    ssize_t n = pread(o->fd, (char *)buf + got, r->size - got, (off_t)(r->addr + got));
    HB_CHECK(n > 0, HB_EIO, o->path, "cannot read a result chunk back: %s", n < 0 ? strerror(errno) : "end of file");
    got += (size_t)n;
  }
  return 0;
}

int hb_ckpt_restore(hb_engine *e) {
  hb_resumed *r = &e->resumed;
  int rc = 0;
  /* incomplete chunks go to the ranks that now own them */
  for (size_t i = 0; i < r->npending && !rc; i++) {
    long long ri = r->pending_ids[3 * i];
    size_t c = (size_t)r->pending_ids[3 * i + 1], at = (size_t)r->pending_ids[3 * i + 2];
    int owner = ri >= 0 && ri < e->nres ? hb_nav_owner(e, c, (int)ri) : -1;
    size_t bytes = owner >= 0 ? hb_partition_result_positions(&e->part) * e->res[ri].item : 0;
    if (owner < 0 || at + bytes > r->pending_bytes)
      rc = HB_FAIL(HB_EIO, e->record, "the checkpoint's incomplete result chunk %zu does not fit this job", c);
    else if (owner == e->rank)
      rc = hb_nav_hold(e, (int)ri, c, r->pending + at);
  }
  rc = hb_agree(e->comm, rc);
  /* stored chunks, byte for byte, from the file set aside */
  old_store o = {-1, 0, r->chunks, e->old_store};
  if (!rc && r->nchunks) {
    struct stat st;
    o.fd = open(e->old_store, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (o.fd < 0 || fstat(o.fd, &st))
      rc = HB_FAIL(HB_EIO, e->old_store, "cannot read the earlier output back: %s", strerror(errno));
    else
      o.size = st.st_size;
  }
  rc = hb_agree(e->comm, rc);
  if (!rc) rc = hb_nav_copy_chunks(e, r->chunks, r->nchunks, fetch_chunk, &o);
  if (o.fd >= 0) close(o.fd);
  return rc;
}

void hb_ckpt_free_resumed(hb_engine *e) {
  hb_resumed *r = &e->resumed;
  free(r->chunks), free(r->pending_ids), free(r->pending), free(r->ragged_dir);
  r->chunks = NULL, r->pending_ids = NULL, r->pending = NULL, r->ragged_dir = NULL;
  r->nragged_dir = 0;
  r->nchunks = r->npending = r->pending_bytes = 0;
}

/* Rank 0: every file of an unfinished run under the output's name. */
void hb_ckpt_remove_files(hb_engine *e, int keep_committed) {
  unlink(e->record_tmp);
  unlink(e->old_store);
  if (!keep_committed) unlink(e->record);
}
