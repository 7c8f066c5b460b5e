/* Checkpoints inside <output>.partial, for `run --resume`.
 *
 * /hyperbatch_checkpoint holds the job's identity (a hash of the job text,
 * its --set overrides and the input's size and mtime), a `done` byte per
 * block, and the reduction tree's nodes: every rank's stack, gathered on
 * rank 0.  Tree nodes are canonical (aligned dyadic ranges of blocks), so a
 * resumed run, with any number of ranks, finishes the reduction with exactly
 * the merges an uninterrupted run makes.  A flush is collective and ends
 * with H5Fflush, so the file on disk always describes a consistent state. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine_priv.h"
#include "hb_error.h"

#define GROUP "/hyperbatch_checkpoint"

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

static void fnv(unsigned long long *h, const void *p, size_t n) {
  const unsigned char *c = p;
  for (size_t i = 0; i < n; i++) *h = (*h ^ c[i]) * 1099511628211ULL;
}

/* What must not change between a run and its resumption. */
static void identity(const hb_engine *e, char *out, size_t n) {
  unsigned long long h = 1469598103934665603ULL;
  fnv(&h, e->job->text, e->job->len + 1);
  for (int i = 0; i < e->job->nsets; i++)
    if (strncmp(e->job->sets[i], "--set run.profile=", 18)) fnv(&h, e->job->sets[i], strlen(e->job->sets[i]) + 1);
  long long v[4] = {e->in.file_size, e->in.mtime, (long long)e->part.nblocks, (long long)e->sig_bytes};
  fnv(&h, v, sizeof v);
  snprintf(out, n, "%016llx", h);
}

static hid_t make_dataset(hid_t g, const char *name, hid_t type, hsize_t rows, hsize_t cols) {
  /* about 1 MiB chunks: node rows can be large (every signal-shaped partial) */
  hsize_t rows_per_chunk = cols > 1 ? ((hsize_t)1 << 20) / cols : 4096;
  hsize_t dims[2] = {rows, cols}, maxd[2] = {H5S_UNLIMITED, cols},
          chunk[2] = {rows_per_chunk ? rows_per_chunk : 1, cols ? cols : 1};
  hid_t sp = H5Screate_simple(cols ? 2 : 1, dims, maxd);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(dcpl, cols ? 2 : 1, chunk);
  hid_t d = H5Dcreate2(g, name, type, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  H5Pclose(dcpl);
  H5Sclose(sp);
  return d;
}

int hb_ckpt_create(hb_engine *e) {
  char id[32];
  identity(e, id, sizeof id);
  hid_t g = H5Gcreate2(e->ofile, GROUP, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  HB_H5(g, e->partial, "cannot create the checkpoint group");
  e->ckpt = g;
  HB_CALL(hb_h5_attr_str(g, "identity", id));
  HB_CALL(hb_h5_attr_i64(g, "blocks", (long long)e->part.nblocks));
  hid_t d = make_dataset(g, "done", H5T_NATIVE_UCHAR, e->part.nblocks, 0);
  hid_t ids = make_dataset(g, "node_ids", H5T_NATIVE_LLONG, 0, 2);
  hid_t nodes = make_dataset(g, "nodes", H5T_NATIVE_UCHAR, 0, e->sig_bytes ? e->sig_bytes : 1);
  int bad = d < 0 || ids < 0 || nodes < 0;
  if (d >= 0) H5Dclose(d);
  if (ids >= 0) H5Dclose(ids);
  if (nodes >= 0) H5Dclose(nodes);
  HB_CHECK(!bad, HB_EIO, e->partial, "cannot create the checkpoint datasets (%s)", hb_h5_error_text());
  return 0;
}

/* Collective write: this rank's `count` rows at row `first` of a 1-D or 2-D
 * dataset now `rows` long.  The dataset only grows (parallel HDF5 1.10 loses
 * a write into a chunk that a shrink cut), and its `rows` attribute says how
 * many rows are current. */
static int write_rows(hb_engine *e, const char *name, hid_t type, hsize_t rows, hsize_t cols, hsize_t first,
                      hsize_t count, const void *buf) {
  hid_t d = H5Dopen2(e->ckpt, name, H5P_DEFAULT);
  HB_H5(d, e->partial, "cannot open checkpoint dataset %s", name);
  hsize_t dims[2] = {rows, cols}, have[2] = {0, 0};
  hid_t fs = H5Dget_space(d);
  H5Sget_simple_extent_dims(fs, have, NULL);
  H5Sclose(fs);
  int rc = rows > have[0] && H5Dset_extent(d, dims) < 0;
  rc = rc || hb_h5_attr_i64(d, "rows", (long long)rows);
  fs = H5Dget_space(d);
  hsize_t start[2] = {first, 0}, mine[2] = {count, cols};
  hid_t ms = H5Screate_simple(cols ? 2 : 1, count ? mine : dims, NULL);
  if (!count) H5Sselect_none(fs), H5Sselect_none(ms);
  else H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, mine, NULL);
  hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
  H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE);
  if (!rc) rc = H5Dwrite(d, type, ms, fs, dxpl, buf) < 0;
  H5Pclose(dxpl);
  H5Sclose(ms);
  H5Sclose(fs);
  H5Dclose(d);
  HB_CHECK(!rc, HB_EIO, e->partial, "cannot write the checkpoint (%s) (%s)", name, hb_h5_error_text());
  return 0;
}

int hb_ckpt_flush(hb_engine *e) {
  /* every rank knows its own finished blocks: combine */
  HB_MPI(MPI_Allreduce(MPI_IN_PLACE, e->done, (int)e->part.nblocks, MPI_UNSIGNED_CHAR, MPI_MAX, e->comm));
  /* every rank writes its own tree nodes, one after the other in rank order:
   * nothing is gathered, so no rank's memory grows with the rank count */
  long long n = e->tree.depth, first = 0, total = 0;
  HB_MPI(MPI_Exscan(&n, &first, 1, MPI_LONG_LONG, MPI_SUM, e->comm));
  if (e->rank == 0) first = 0; /* MPI_Exscan leaves rank 0's result undefined */
  HB_MPI(MPI_Allreduce(&n, &total, 1, MPI_LONG_LONG, MPI_SUM, e->comm));
  size_t nb = e->sig_bytes ? e->sig_bytes : 1;
  long long *ids = malloc(sizeof(long long) * 2 * (size_t)(n ? n : 1));
  unsigned char *bufs = malloc(nb * (size_t)(n ? n : 1));
  int rc = !ids || !bufs;
  rc = hb_agree(e->comm, rc ? hb_error_raise(HB_EINTERNAL, __FILE__, __LINE__, "memory", "out of memory") : 0);
  if (!rc) {
    for (long long i = 0; i < n; i++) {
      ids[2 * i] = e->tree.stack[i].level;
      ids[2 * i + 1] = (long long)e->tree.stack[i].index;
      if (e->sig_bytes) memcpy(bufs + (size_t)i * nb, e->tree.stack[i].buf, nb);
    }
    rc = write_rows(e, "node_ids", H5T_NATIVE_LLONG, (hsize_t)total, 2, (hsize_t)first, (hsize_t)n, ids);
    if (!rc) rc = write_rows(e, "nodes", H5T_NATIVE_UCHAR, (hsize_t)total, nb, (hsize_t)first, (hsize_t)n, bufs);
    if (!rc)
      rc = write_rows(e, "done", H5T_NATIVE_UCHAR, e->part.nblocks, 0, 0, e->rank == 0 ? e->part.nblocks : 0,
                      e->done);
    if (!rc && H5Fflush(e->ofile, H5F_SCOPE_GLOBAL) < 0)
      rc = hb_error_raise(HB_EIO, __FILE__, __LINE__, e->partial, "cannot flush the checkpoint (%s)",
                          hb_h5_error_text());
  }
  free(ids);
  free(bufs);
  if (!rc) e->ckpt_saved = 1;
  return rc;
}

/* Rows [first, first + count) of a 1-D or 2-D dataset, independently. */
static int read_rows(hid_t d, hid_t type, hsize_t first, hsize_t count, hsize_t cols, void *buf) {
  hsize_t start[2] = {first, 0}, dims[2] = {count, cols};
  hid_t fs = H5Dget_space(d), ms = H5Screate_simple(2, dims, NULL);
  H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, dims, NULL);
  int bad = H5Dread(d, type, ms, fs, H5P_DEFAULT, buf) < 0;
  H5Sclose(ms);
  H5Sclose(fs);
  return bad;
}

int hb_ckpt_resume(hb_engine *e) {
  const char *out = e->partial;
  int exists = 0;
  if (e->rank == 0) exists = access(out, F_OK) == 0;
  HB_MPI(MPI_Bcast(&exists, 1, MPI_INT, 0, e->comm));
  HB_CHECK(exists, HB_EINVALID, out, "nothing to resume: there is no checkpoint (run without --resume)");
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_fapl_mpio(fapl, e->comm, e->job->mpiio_info);
  H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
  e->ofile = H5Fopen(out, H5F_ACC_RDWR, fapl);
  int rc = e->ofile < 0 ? hb_error_raise(HB_EIO, __FILE__, __LINE__, out,
                                         "the checkpoint file cannot be opened (%s); run without --resume to start over",
                                         hb_h5_error_text())
                        : 0;
  H5Pclose(fapl);
  HB_CALL(rc);
  HB_CHECK(H5Lexists(e->ofile, GROUP, H5P_DEFAULT) > 0, HB_EINVALID, out,
           "holds no checkpoint (was run.checkpoint false?); run without --resume to start over");
  e->ckpt = H5Gopen2(e->ofile, GROUP, H5P_DEFAULT);
  HB_H5(e->ckpt, out, "cannot open the checkpoint");
  char want[32], have[64];
  identity(e, want, sizeof want);
  hb_h5_read_attr_str(e->ckpt, "identity", have, sizeof have);
  HB_CHECK(!strcmp(want, have), HB_EINVALID, out,
           "the job, its --set overrides or the input (size or modification time) changed since this checkpoint; "
           "resume with the same job and input, or run without --resume to start over");
  hid_t d = H5Dopen2(e->ckpt, "done", H5P_DEFAULT);
  HB_H5(d, out, "cannot open the checkpoint's block list");
  rc = H5Dread(d, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, e->done) < 0;
  H5Dclose(d);
  HB_CHECK(!rc, HB_EIO, out, "cannot read the checkpoint's block list (%s)", hb_h5_error_text());
  /* each rank seeds its tree with a share of the saved nodes; hb_tree_reduce
   * sorts them in wherever they are */
  hid_t ds_ids = H5Dopen2(e->ckpt, "node_ids", H5P_DEFAULT), ds_nodes = H5Dopen2(e->ckpt, "nodes", H5P_DEFAULT);
  HB_CHECK(ds_ids >= 0 && ds_nodes >= 0, HB_EIO, out, "cannot open the checkpoint's reduction nodes");
  long long nrows = 0;
  hid_t a = H5Aexists(ds_ids, "rows") > 0 ? H5Aopen(ds_ids, "rows", H5P_DEFAULT) : -1;
  if (a >= 0) H5Aread(a, H5T_NATIVE_LLONG, &nrows), H5Aclose(a);
  size_t first = 0, end = 0;
  hb_partition_range((size_t)(nrows > 0 ? nrows : 0), e->rank, e->size, &first, &end);
  hsize_t count = end - first;
  size_t nb = e->sig_bytes ? e->sig_bytes : 1;
  long long *ids = malloc(sizeof(long long) * 2 * (count ? count : 1));
  unsigned char *bufs = malloc(nb * (count ? count : 1));
  rc = !ids || !bufs || (count && (read_rows(ds_ids, H5T_NATIVE_LLONG, first, count, 2, ids) ||
                                   read_rows(ds_nodes, H5T_NATIVE_UCHAR, first, count, nb, bufs)));
  H5Dclose(ds_ids);
  H5Dclose(ds_nodes);
  for (hsize_t i = 0; !rc && e->sig_bytes && i < count; i++) {
    void *buf = hb_tree_buffer(&e->tree);
    if (!buf) {
      rc = 1;
      break;
    }
    memcpy(buf, bufs + i * nb, nb);
    hb_tree_push(&e->tree, (int)ids[2 * i], (size_t)ids[2 * i + 1], buf);
  }
  free(ids);
  free(bufs);
  HB_CHECK(!rc, HB_EIO, out, "cannot read the checkpoint's reduction nodes (%s)", hb_h5_error_text());
  e->ckpt_saved = 1;
  if (e->rank == 0) {
    size_t done = 0;
    for (size_t b = 0; b < e->part.nblocks; b++) done += e->done[b];
    printf("hyperbatch: resuming %s: %zu of %zu blocks were done, %zu to go on %d rank%s\n", out, done,
           e->part.nblocks, e->part.nblocks - done, e->size, e->size == 1 ? "" : "s");
    fflush(stdout);
  }
  return 0;
}

int hb_ckpt_remove(hb_engine *e) {
  if (e->ckpt < 0) return 0;
  H5Gclose(e->ckpt);
  e->ckpt = -1;
  HB_H5(H5Ldelete(e->ofile, GROUP, H5P_DEFAULT), e->partial, "cannot remove the checkpoint from the finished file");
  return 0;
}
