/* The results file: <output>.partial, written collectively, renamed when
 * complete; provenance in every result; PNG previews beside it. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "chunkwrite.h"
#include "directio.h"
#include "engine_priv.h"
#include "hb_error.h"
#include "hb_h5.h"
#include "hb_files.h"
#include "hb_settings.h"
#include "hb_preview.h"
#include "hb_progress.h"
#include "version.h"

void hb_preview_path(const hb_engine *e, const char *result, char *buf, size_t n) {
  const char *out = e->job->output_file;
  size_t len = strlen(out);
  if (len > 5 && !strcmp(out + len - 5, ".hspy")) len -= 5;
  snprintf(buf, n, "%.*s.%s.png", (int)len, out, result);
}

/* An image or a line: one value per pattern, a reduced result, a global
 * one of up to three axes (a montage); not a stack (an item per pattern). */
static int wants_preview(const hb_engine *e, const hb_result *r) {
  const hb_output *o = r->o;
  int flat = (o->kind == HB_OUT_NAV && o->ndim == 0) || o->kind == HB_OUT_SIGNAL || o->kind == HB_OUT_GLOBAL;
  return e->job->previews && !o->hidden && flat &&
         (r->ndim == 1 || r->ndim == 2 || (o->kind == HB_OUT_GLOBAL && r->ndim == 3));
}

/* A result with a dataset in the output (hidden ones have none; ragged
 * ones are in a file of their own, raggedwrite.c). */
static int in_output(const hb_result *r) { return !r->o->hidden && r->path != HB_PATH_RAGGED; }

/* The output's signals that are no result: those a global op wrote beside
 * the results (a decomposition's signal with learning_results, linked to
 * the input).  They are the job's output too, so they get the provenance
 * and the input's metadata.  Appends their groups (open) to groups[n], up
 * to cap. */
typedef struct {
  const hb_engine *e;
  hid_t *groups;
  int n, cap;
} extra_signals;

static herr_t collect_extra(hid_t experiments, const char *name, const H5L_info_t *info, void *data) {
  (void)info;
  extra_signals *x = data;
  for (int i = 0; i < x->e->nres; i++)
    if (in_output(&x->e->res[i]) && !strcmp(x->e->res[i].o->name, name)) return 0;
  if (x->n == x->cap) return -1;
  hid_t g = H5Gopen2(experiments, name, H5P_DEFAULT);
  if (g < 0) return -1;
  x->groups[x->n++] = g;
  return 0;
}

/* Create dir and its parents. */
static int mkdirs(char *dir) {
  struct stat st;
  if (!stat(dir, &st)) return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
  char *slash = strrchr(dir, '/');
  if (slash && slash != dir) {
    *slash = 0;
    int rc = mkdirs(dir);
    *slash = '/';
    if (rc) return rc;
  }
  return mkdir(dir, 0777) && errno != EEXIST ? errno : 0;
}

/* validate: the folder exists, or its first missing level can be made. It
 * is made and removed again: permissions do not say it (root passes every
 * access() check, and still cannot make a folder in /proc). */
static int can_make_dirs(char *dir) {
  struct stat st;
  if (!stat(dir, &st)) return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
  char *slash = strrchr(dir, '/');
  if (slash && slash != dir) {
    *slash = 0;
    int parent = !stat(dir, &st);
    int rc = !parent ? can_make_dirs(dir) : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
    *slash = '/';
    if (rc || !parent) return rc; /* a missing parent is the first missing level, probed above */
  }
  if (mkdir(dir, 0777)) return errno;
  rmdir(dir);
  return 0;
}

static int exists(const char *path) {
  struct stat st;
  return !lstat(path, &st);
}

/* Paths this run may create or replace, besides previews. */
enum { N_RUN_FILES = 9 };
static void run_files(const hb_engine *e, const char *paths[N_RUN_FILES]) {
  paths[0] = e->job->output_file, paths[1] = e->partial, paths[2] = e->old_store;
  paths[3] = e->record, paths[4] = e->record_tmp, paths[5] = e->lockpath;
  paths[6] = e->ragged_out, paths[7] = e->ragged_side, paths[8] = e->ragged_tmp;
}

/* Refuse when `path` (if it exists, followed through links) is the input or
 * any other file the job reads: replacing the raw scan with the results
 * loses the scan. */
static int not_read_by_job(const hb_engine *e, const char *path, const char *where) {
  struct stat out, in;
  if (stat(path, &out)) return 0;
  const char *reads[1 + HB_MAX_READ_FILES];
  int n = 0;
  reads[n++] = e->in.path;
  for (int i = 0; i < hb_files_read_count() && n < 1 + HB_MAX_READ_FILES; i++) reads[n++] = hb_files_read_path(i);
  for (int i = 0; i < n; i++)
    HB_CHECK(stat(reads[i], &in) || in.st_dev != out.st_dev || in.st_ino != out.st_ino, HB_EINVALID, where,
             "'%s' is the same file as %s '%s', which the job reads: refusing to replace it; choose another "
             "output.file",
             path, i ? "the file" : "the input", reads[i]);
  return 0;
}

int hb_output_check(hb_engine *e, int create) {
  int rc = 0;
  hb_ckpt_paths(e);
  snprintf(e->lockpath, sizeof e->lockpath, "%s.lock", e->job->output_file);
  if (e->rank == 0) {
    const hb_job *job = e->job;
    const char *where = hb_node_where(hb_node_child(hb_node_child(job->root, "output"), "file"), 0);
    char *tmp = strdup(job->output_file);
    char *dir = tmp ? dirname(tmp) : NULL;
    int err = !dir ? ENOMEM : create ? mkdirs(dir) : can_make_dirs(dir);
    const char *paths[N_RUN_FILES];
    run_files(e, paths);
    for (int i = 0; i < N_RUN_FILES && !rc; i++) rc = not_read_by_job(e, paths[i], where);
    for (int i = 0; i < e->nres && !rc; i++) {
      char png[PATH_MAX + 256];
      hb_preview_path(e, e->res[i].o->name, png, sizeof png);
      if (wants_preview(e, &e->res[i])) rc = not_read_by_job(e, png, where);
    }
    if (rc)
      ;
    else if (err)
      rc =
          HB_FAIL(HB_EIO, job->output_file, "cannot create the output folder '%s': %s", dir ? dir : "?", strerror(err));
    else if (create && access(dir, W_OK | X_OK))
      rc = HB_FAIL(HB_EIO, job->output_file, "the output folder '%s' is not writable: %s", dir, strerror(errno));
    else if (!job->overwrite && !job->resume && (exists(e->record) || exists(e->partial) || exists(e->old_store)))
      rc = HB_FAIL(HB_EINVALID, where,
                   "%s is left from an unfinished run: add --resume to continue it, or set output.overwrite: true "
                   "(or remove it) to start over",
                   exists(e->record)    ? e->record
                   : exists(e->partial) ? e->partial
                                        : e->old_store);
    /* --resume: decided once the checkpoint is read (a finished job, or not) */
    else if (!job->overwrite && exists(job->output_file) && !job->resume)
      rc = HB_FAIL(HB_EINVALID, where, "output '%s' already exists; set output.overwrite: true or choose another file",
                   job->output_file);
    else if (!job->overwrite && !job->resume && e->nragged && exists(e->ragged_out))
      rc = HB_FAIL(HB_EINVALID, where,
                   "'%s' (where this job's ragged results go) already exists; set output.overwrite: true or choose "
                   "another file",
                   e->ragged_out);
    /* a resumed run owns its previews: an earlier attempt may have written them */
    for (int i = 0; !rc && !job->overwrite && !job->resume && i < e->nres; i++) {
      char png[PATH_MAX + 256];
      hb_preview_path(e, e->res[i].o->name, png, sizeof png);
      if (wants_preview(e, &e->res[i]) && exists(png))
        rc = HB_FAIL(HB_EINVALID, where,
                     "preview '%s' already exists; set output.overwrite: true, remove it, or set output.previews: "
                     "false",
                     png);
    }
    free(tmp);
  }
  return hb_agree(e->comm, rc);
}

/* ---- the output lock ------------------------------------------------------ */

/* Two runs writing one output would mix their results in one file.  Rank 0
 * holds an flock on <output>.lock for the whole run; a second run finds it
 * taken and stops before it touches anything.  The lock file is removed,
 * still locked, at the end: a run that opened it just before then finds,
 * once it holds the lock, that the path no longer names that file, and
 * tries again. */
int hb_output_lock(hb_engine *e) {
  int rc = 0;
  e->lock_fd = -1;
  for (int tries = 0; e->rank == 0 && !rc && e->lock_fd < 0 && tries < 100; tries++) {
    int fd = open(e->lockpath, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
      rc = HB_FAIL(HB_EIO, e->lockpath, "cannot create the output's lock file: %s", strerror(errno));
      break;
    }
    struct stat held, named;
    if (flock(fd, LOCK_EX | LOCK_NB)) {
      int err = errno;
      char who[256] = "";
      ssize_t n = pread(fd, who, sizeof who - 1, 0);
      who[n > 0 ? n : 0] = 0; /* "pid N on HOST", for the message */
      who[strcspn(who, "\n")] = 0;
      close(fd);
      if (err == EWOULDBLOCK)
        rc = HB_FAIL(HB_EINVALID, e->job->output_file,
                     "another hyperbatch run is writing this output (%s); wait for it to finish, or choose another "
                     "output.file",
                     who[0] ? who : "it holds the lock file");
      else if (err == ENOLCK || err == EOPNOTSUPP || err == ENOSYS) {
        /* a file system without locks: go on, unprotected, and say so */
        fprintf(stderr,
                "hyperbatch: warning: %s: cannot lock (%s): a second run on the same output would not be "
                "detected\n",
                e->lockpath, strerror(err));
        e->lock_fd = open(e->lockpath, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (e->lock_fd < 0) e->lock_fd = INT_MAX; /* "held", nothing to close */
      } else
        rc = HB_FAIL(HB_EIO, e->lockpath, "cannot lock: %s", strerror(err));
    } else if (fstat(fd, &held) || lstat(e->lockpath, &named) || held.st_ino != named.st_ino ||
               held.st_dev != named.st_dev) {
      close(fd); /* removed by the run that held it: take the new one */
    } else {
      char host[128] = "?", who[256];
      gethostname(host, sizeof host);
      host[sizeof host - 1] = 0;
      int n = snprintf(who, sizeof who, "pid %ld on %s\n", (long)getpid(), host);
      /* only for the other run's message: a failure here changes nothing */
      if (!ftruncate(fd, 0)) (void)!pwrite(fd, who, (size_t)n, 0);
      e->lock_fd = fd;
    }
  }
  if (e->rank == 0 && !rc && e->lock_fd < 0) rc = HB_FAIL(HB_EIO, e->lockpath, "cannot take the output's lock");
  return hb_agree(e->comm, rc);
}

void hb_output_unlock(hb_engine *e) {
  if (e->rank != 0 || e->lock_fd < 0) return;
  unlink(e->lockpath); /* while still held: see hb_output_lock */
  if (e->lock_fd != INT_MAX) close(e->lock_fd);
  e->lock_fd = -1;
}

/* A global result has its own shape and axes; with nav_chunks its trailing
 * navigation axes are chunked like the blocks, one chunk along the others. */
static void global_desc(const hb_engine *e, const hb_output *o, hb_signal_desc *d, hsize_t *chunk) {
  d->ndim = o->ndim;
  d->shape = o->shape;
  d->axes = o->axes;
  d->chunk = NULL;
  if (!o->nav_chunks) return;
  int lead = o->ndim - e->in.nav_dim;
  for (int i = 0; i < o->ndim; i++) chunk[i] = i < lead ? 1 : hb_partition_extent(&e->part, i - lead);
  d->chunk = chunk;
}

/* Each result's path to the file, its dataset's shape and its chunks.  A
 * per-pattern result goes block by block (HB_PATH_DIRECT) when a block's
 * worth of it is at least HB_RESULT_CHUNK_BYTES (then its chunks fit in a
 * block), else its chunks span several blocks (HB_PATH_GATHERED, navwrite.c):
 * about HB_RESULT_CHUNK_BYTES (16 KiB) of the widest of them.  Larger
 * chunks cost more when the file is made (parallel HDF5 allocates a filtered
 * dataset's chunks at creation and sizes them by compressing a chunk of fill
 * values: 0.45 ms for 128 KiB); smaller ones cost more per chunk written
 * (docs/performance.md). */
int hb_output_plan_results(hb_engine *e) {
  const hb_input *in = &e->in;
  int nd = in->nav_dim;
  double target = hb_settings_get()->result_chunk_bytes;
  size_t widest = 1, direct_bytes = 0;
  for (int i = 0; i < e->nres; i++) {
    hb_result *r = &e->res[i];
    const hb_output *o = r->o;
    if (o->kind == HB_OUT_SIGNAL) {
      r->ndim = o->ndim ? o->ndim : e->stream.sig_dim;
      for (int d = 0; d < r->ndim; d++) r->shape[d] = o->ndim ? o->shape[d] : e->stream.shape[nd + d];
      hb_hspy_default_chunks(r->ndim, r->shape, 0, hb_dtype_size(o->dtype), r->chunk);
      continue;
    }
    if (o->kind == HB_OUT_GLOBAL) {
      r->ndim = o->ndim;
      memcpy(r->shape, o->shape, sizeof r->shape);
      continue;
    }
    if (o->kind == HB_OUT_RAGGED) { /* a list per position: navigation-shaped (raggedwrite.c) */
      r->path = HB_PATH_RAGGED;
      r->ndim = r->nav = nd;
      memcpy(r->shape, in->shape, sizeof r->shape);
      hb_hspy_default_chunks(nd, r->shape, nd, sizeof(hvl_t), r->chunk);
      e->nragged++;
      continue;
    }
    HB_CHECK(nd + o->ndim <= HB_MAXDIM, HB_EINVALID, hb_node_where(r->k->spec, 0),
             "result '%s' would have %d axes; at most %d", o->name, nd + o->ndim, HB_MAXDIM);
    r->nav = 0; /* a changed scan drops its reduced axes, one pattern its axis (hb_result_has_nav_axis) */
    for (int d = 0; d < nd; d++)
      if (hb_result_has_nav_axis(e, r, d)) r->shape[r->nav++] = o->nav_map.on ? o->nav_map.shape[d] : in->shape[d];
    r->ndim = r->nav + o->ndim;
    for (int d = 0; d < o->ndim; d++) r->shape[r->nav + d] = o->shape[d];
    double block = (double)e->part.max_block_pos * (double)r->item;
    /* (the gathered path assembles navigation-shaped chunks: a single
     * pattern's array has none, so it is written as a block) */
    r->path = o->kind == HB_OUT_FULL || block >= target || r->nav < nd ? HB_PATH_DIRECT : HB_PATH_GATHERED;
    if (r->path == HB_PATH_GATHERED && r->item > widest) widest = r->item;
    if (r->path == HB_PATH_DIRECT) e->ndirect++, direct_bytes += e->part.max_block_pos * r->item;
  }
  hb_partition_result_chunks(&e->part, target > 1 ? (size_t)(target / (double)widest) : 1);
  for (int i = 0; i < e->nres; i++) {
    hb_result *r = &e->res[i];
    if (r->path == HB_PATH_DIRECT) hb_direct_chunk(e, r, r->chunk);
    if (r->path != HB_PATH_GATHERED) continue;
    for (int d = 0; d < r->ndim; d++) r->chunk[d] = d < nd ? hb_partition_result_extent(&e->part, d) : r->shape[d];
  }
  /* two blocks of them, and at least 64 MiB, before a rank stops to write */
  e->direct.budget = 2 * direct_bytes > ((size_t)64 << 20) ? 2 * direct_bytes : (size_t)64 << 20;
  return 0;
}

double hb_output_free_space(const hb_engine *e) {
  struct statvfs st;
  char *tmp = strdup(e->partial);
  int bad = !tmp || statvfs(dirname(tmp), &st);
  free(tmp);
  return bad ? 1e300 : (double)st.f_bavail * (double)st.f_frsize;
}

/* What the next rounds and a checkpoint flush may add to the .partial, with
 * room to spare for HDF5's metadata; a flush of full-size results writes up
 * to a budget and a block per rank (gzip may add a little to
 * incompressible data). */
double hb_output_space_needed(const hb_engine *e) {
  double nodes = (double)e->size * 2 * (log2((double)e->part.nblocks + 1) + 2);
  /* a checkpoint stores incomplete result chunks again: about two per rank */
  double nav_bytes = (double)hb_partition_result_positions(&e->part) * (double)hb_nav_bytes_per_position(e);
  double direct_bytes = e->ndirect ? 2.0 * e->size * (double)e->direct.budget : 0;
  return 4e6 + 2 * nodes * (double)e->sig_bytes + (double)e->part.nblocks + 2.0 * e->size * nav_bytes + direct_bytes;
}

/* Rank 0, before the .partial is created: set the resumed checkpoint's
 * file aside, and remove what is left of runs that committed nothing
 * (they are ours: the lock is held and --resume or overwrite was given). */
static int clear_the_way(hb_engine *e) {
  const char *out = e->job->output_file;
  HB_CHECK(e->job->overwrite || !exists(out), HB_EINVALID, out,
           "output already exists; set output.overwrite: true or choose another file");
  if (e->resumed.found) return hb_ckpt_set_aside(e);
  const char *stale[] = {e->partial, e->old_store, e->record, e->record_tmp, e->ragged_side, e->ragged_tmp};
  for (size_t i = 0; i < sizeof stale / sizeof *stale; i++)
    HB_CHECK(!unlink(stale[i]) || errno == ENOENT, HB_EIO, stale[i], "cannot remove it to start over: %s",
             strerror(errno));
  return 0;
}

int hb_output_create(hb_engine *e) {
  int rc = e->rank == 0 ? clear_the_way(e) : 0;
  HB_CALL(hb_agree(e->comm, rc));
  /* exclusive: a link planted at the name fails the create, never followed */
  rc = hb_hspy_create(e->partial, e->comm, e->job->mpiio_info, &e->ofile);
  HB_CALL(hb_agree(e->comm, rc));
  e->partial_ours = 1;
  /* every rank syncs what it wrote before a checkpoint (checkpoint.c) */
  struct stat st;
  e->store_fd = hb_fault("store_open") ? -1 : open(e->partial, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (e->store_fd < 0 || fstat(e->store_fd, &st))
    rc = HB_FAIL(HB_EIO, e->partial, "cannot open it to sync: %s", strerror(errno));
  else
    e->store_dev = (long long)st.st_dev, e->store_ino = (long long)st.st_ino;
  /* large writes past the page cache; a file system that refuses it keeps
   * them buffered */
  if (!rc && e->job->direct_io) (void)hb_directio_watch(e->partial);
  HB_CALL(hb_agree(e->comm, rc));
  long long id[2] = {e->store_dev, e->store_ino};
  HB_MPI(MPI_Bcast(id, 2, MPI_LONG_LONG, 0, e->comm)); /* rank 0's view names it in the checkpoint */
  e->store_dev = id[0], e->store_ino = id[1];
  const hb_input *in = &e->in;
  char *tmp = strdup(in->path);
  const char *base = tmp ? basename(tmp) : in->path;
  for (int i = 0; i < e->nres && !rc; i++) {
    hb_result *r = &e->res[i];
    const hb_output *o = r->o;
    /* the kernel's own; created when its shape is known; in a file of their own */
    if (o->hidden || o->deferred || r->path == HB_PATH_RAGGED) continue;
    int nd = in->nav_dim;
    hb_axis axes[HB_MAXDIM];
    hsize_t chunk[HB_MAXDIM];
    if (o->kind == HB_OUT_SIGNAL) {
      for (int d = 0; d < r->ndim; d++)
        axes[d] = o->ndim ? o->axes[d] : e->stream.axes[nd + d], axes[d].navigate = 0;
    } else {
      /* one value per pattern is an image or a line, not a stack; an array
       * per pattern is a signal over the scan, as HyperSpy's own results */
      const hb_nav_map *m = &o->nav_map;
      for (int d = 0, j = 0; d < nd; d++)
        if (hb_result_has_nav_axis(e, r, d)) axes[j] = m->on ? m->axes[d] : in->axes[d], axes[j++].navigate = o->ndim > 0;
      if (in->virtual_nav && o->ndim == 0 && r->nav == 1) /* one value of a single pattern: HyperSpy's axis */
        snprintf(axes[0].name, sizeof axes[0].name, "Scalar");
      for (int d = 0; d < o->ndim; d++) axes[r->nav + d] = o->axes[d], axes[r->nav + d].navigate = 0;
    }
    hb_signal_desc desc = {o->name, o->title ? o->title : o->name, base, o->signal_type ? o->signal_type : "",
                           o->quantity, o->dtype, r->ndim, r->shape, o->kind == HB_OUT_GLOBAL ? NULL : r->chunk, axes,
                           e->job->gzip, NULL, NULL};
    if (o->kind == HB_OUT_GLOBAL) global_desc(e, o, &desc, chunk);
    rc = hb_hspy_signal_create(e->ofile, &desc, &r->group, &r->dset);
  }
  free(tmp);
  HB_CALL(hb_agree(e->comm, rc));
  return hb_ragged_open(e);
}

/* Collective, at the start of a pass: the datasets of this pass's deferred
 * results, now that `refine` has set their shape (a resume: also those of
 * the passes before, refined again). */
int hb_output_create_deferred(hb_engine *e, int upto) {
  int rc = 0;
  char *tmp = strdup(e->in.path);
  const char *base = tmp ? basename(tmp) : e->in.path;
  for (int i = 0; i < e->nres && !rc; i++) {
    hb_result *r = &e->res[i];
    const hb_output *o = r->o;
    if (!o->deferred || r->pass > upto || r->dset >= 0) continue;
    HB_CHECK(o->kind == HB_OUT_SIGNAL && o->ndim > 0 && hb_output_elems(o) <= r->elems, HB_EINTERNAL, o->name,
             "a deferred output must be reduced and no larger than declared");
    r->ndim = o->ndim;
    memcpy(r->shape, o->shape, sizeof r->shape);
    r->elems = hb_output_elems(o);
    hb_hspy_default_chunks(r->ndim, r->shape, 0, hb_dtype_size(o->dtype), r->chunk);
    hb_axis axes[HB_MAXDIM];
    for (int d = 0; d < r->ndim; d++) axes[d] = o->axes[d], axes[d].navigate = 0;
    hb_signal_desc desc = {o->name, o->title ? o->title : o->name, base, o->signal_type ? o->signal_type : "",
                           o->quantity, o->dtype, r->ndim, r->shape, r->chunk, axes, e->job->gzip, NULL, NULL};
    rc = hb_hspy_signal_create(e->ofile, &desc, &r->group, &r->dset);
  }
  free(tmp);
  return hb_agree(e->comm, rc);
}

/* Where each chunk of a reduced result went (rank 0), for a checkpoint
 * taken before the job ends: a later pass reads it. */
static int record_signal_chunks(hb_engine *e, int ri) {
  const hb_result *r = &e->res[ri];
  hsize_t grid[HB_MAXDIM], idx[HB_MAXDIM] = {0}, off[HB_MAXDIM];
  for (int d = 0; d < r->ndim; d++) grid[d] = (r->shape[d] + r->chunk[d] - 1) / r->chunk[d];
  for (size_t linear = 0;; linear++) {
    for (int d = 0; d < r->ndim; d++) off[d] = idx[d] * r->chunk[d];
    unsigned mask = 0;
    haddr_t addr = HADDR_UNDEF;
    hsize_t size = 0;
    HB_CHECK(H5Dget_chunk_info_by_coord(r->dset, off, &mask, &addr, &size) >= 0 && addr != HADDR_UNDEF && !mask,
             HB_EIO, e->partial, "cannot locate a stored chunk of result '%s' (%s)", r->o->name, hb_h5_error_text());
    HB_CALL(hb_chunk_table_add(&e->stored, (uint64_t)ri, linear, (uint64_t)addr, (uint64_t)size));
    int d = r->ndim - 1;
    while (d >= 0 && ++idx[d] == grid[d]) idx[d--] = 0;
    if (d < 0) break;
  }
  return 0;
}

/* Collective: this pass's reduced results; rank 0 holds them, the others
 * write nothing. */
int hb_output_write_signal(hb_engine *e, void *root) {
  hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
  H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE);
  int rc = 0;
  for (int i = 0; i < e->nres; i++) {
    hb_result *r = &e->res[i];
    if (r->o->kind != HB_OUT_SIGNAL || r->pass != e->pass || r->o->hidden) continue;
    hid_t fs = H5Dget_space(r->dset), ms = H5Scopy(fs);
    if (!root) H5Sselect_none(fs), H5Sselect_none(ms);
    /* a failed rank has taken part all the same */
    if (H5Dwrite(r->dset, hb_dtype_h5(r->o->dtype), ms, fs, dxpl, root ? (char *)root + r->offset : NULL) < 0 ||
        hb_fault("signal_write"))
      rc = HB_FAIL(HB_EIO, e->partial, "cannot write result '%s' (%s)", r->o->name, hb_h5_error_text());
    H5Sclose(ms);
    H5Sclose(fs);
    if (!rc && e->rank == 0 && e->job->checkpoint && e->pass < e->npasses) rc = record_signal_chunks(e, i);
  }
  H5Pclose(dxpl);
  return rc;
}

/* Collective (a resume in a later pass): the earlier passes' reduced
 * results, read back from the new .partial, for the kernels that read them. */
int hb_output_read_reduced(hb_engine *e) {
  int rc = 0;
  for (int i = 0; i < e->nres && !rc; i++) {
    hb_result *r = &e->res[i];
    if (r->o->kind != HB_OUT_SIGNAL || r->pass >= e->pass || r->o->hidden) continue;
    e->reduced[i] = malloc(r->elems * hb_dtype_size(r->o->dtype) + 1);
    if (!e->reduced[i] || H5Dread(r->dset, hb_dtype_h5(r->o->dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, e->reduced[i]) < 0)
      rc = HB_FAIL(HB_EIO, e->partial, "cannot read result '%s' back (%s)", r->o->name, hb_h5_error_text());
  }
  return hb_agree(e->comm, rc);
}

static hb_result *find_result(hb_engine *e, const hb_kernel *k, int iout) {
  for (int i = 0; i < e->nres; i++)
    if (e->res[i].k == k && e->res[i].iout == iout) return &e->res[i];
  return NULL;
}

int hb_global_write(hb_global *g, const hb_kernel *k, int iout, const hsize_t *start, const hsize_t *count,
                    const double *buf) {
  hb_engine *e = g->engine;
  hb_result *r = find_result(e, k, iout);
  HB_CHECK(r && r->o->kind == HB_OUT_GLOBAL, HB_EINTERNAL, k->name, "no global output %d", iout);
  double t0 = hb_now();
  hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
  H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE);
  hid_t fs = H5Dget_space(r->dset), ms;
  hsize_t n = 1;
  if (start) {
    for (int d = 0; d < r->o->ndim; d++) n *= count[d];
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    ms = H5Screate_simple(1, &n, NULL);
  } else {
    H5Sselect_none(fs);
    ms = H5Screate_simple(1, &n, NULL);
    H5Sselect_none(ms);
  }
  static const double none = 0;
  int rc = 0;
  if (H5Dwrite(r->dset, H5T_NATIVE_DOUBLE, ms, fs, dxpl, start ? buf : &none) < 0)
    rc = HB_FAIL(HB_EIO, e->partial, "cannot write result '%s' (%s)", r->o->name, hb_h5_error_text());
  H5Sclose(ms);
  H5Sclose(fs);
  H5Pclose(dxpl);
  e->tm.bytes[HB_PH_WRITE] += start ? (double)n * sizeof(double) : 0;
  e->tm.seconds[HB_PH_WRITE] += hb_now() - t0;
  return rc;
}

hid_t hb_global_group(hb_global *g, const hb_kernel *k, int iout) {
  hb_result *r = find_result(g->engine, k, iout);
  return r ? r->group : -1;
}

/* Identical on every rank, as parallel HDF5 requires for metadata. */
int hb_output_write_provenance(hb_engine *e, hid_t group) {
  const hb_stat3 *sec = e->summary.sec;
  const double *bytes = e->summary.bytes;
  hid_t g = hb_h5_group(group, "original_metadata/hyperbatch");
  HB_CHECK(g >= 0, HB_EIO, e->partial, "cannot create original_metadata/hyperbatch");
  const hb_input *in = &e->in;
  char when[64];
  time_t mt = (time_t)in->mtime;
  struct tm tm;
  gmtime_r(&mt, &tm);
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
  int rc = 0;
  rc |= hb_h5_attr_str(g, "job", e->job->text);
  rc |= hb_h5_attr_str(g, "job_file", e->job->path);
  rc |= hb_h5_str_list(g, "sets", e->job->sets, e->job->nsets);
  const hb_settings *set = hb_settings_get(); /* rank 0's, on every rank */
  char *env[sizeof set->env / sizeof *set->env];
  for (int i = 0; i < set->nenv; i++) env[i] = (char *)set->env[i];
  rc |= hb_h5_str_list(g, "environment", env, set->nenv);
  rc |= hb_h5_attr_str(g, "version", PROJECT_VERSION);
  char id[32];
  hb_ckpt_identity(e, id, sizeof id);
  rc |= hb_h5_attr_str(g, "job_identity", id); /* --resume recognises a finished output by it */
  rc |= hb_h5_attr_str(g, "git_revision", HB_GIT_REVISION);
  rc |= hb_h5_attr_str(g, "gzip_encoder", e->job->gzip ? hb_hdf5_deflate_encoder() : "none");
  char *abs = realpath(in->path, NULL);
  rc |= hb_h5_attr_str(g, "input_file", abs ? abs : in->path);
  free(abs);
  rc |= hb_h5_attr_str(g, "input_dataset", in->dataset);
  rc |= hb_h5_attr_i64(g, "input_size", in->file_size);
  rc |= hb_h5_attr_str(g, "input_mtime", when);
  rc |= hb_h5_attr_i64(g, "ranks", e->size);
  rc |= hb_h5_attr_i64(g, "blocks", (long long)e->part.nblocks);
  rc |= hb_h5_attr_f64(g, "wall_time_s", e->summary.wall);
  rc |= hb_h5_attr_i64(g, "bytes_read", (long long)bytes[HB_PH_READ]);
  rc |= hb_h5_attr_str(g, "slurm_job_id", e->summary.slurm_job);
  rc |= hb_h5_attr_i64(g, "streamed_ranks", e->summary.streamed_ranks);
  rc |= hb_h5_attr_i64(g, "blocks_moved", (long long)e->work.moved); /* by rebalancing; the same on every rank */
  rc |= hb_h5_attr_i64(g, "checkpoints", e->ncommits);              /* committed by this run */
  for (int p = 0; p < HB_PH_COUNT && !rc; p++) {
    char path[64];
    snprintf(path, sizeof path, "timing/%s", hb_phase_names[p]);
    hid_t t = hb_h5_group(g, path);
    rc |= t < 0;
    if (t >= 0) {
      rc |= hb_h5_attr_f64(t, "min_s", sec[p].min);
      rc |= hb_h5_attr_f64(t, "median_s", sec[p].median);
      rc |= hb_h5_attr_f64(t, "max_s", sec[p].max);
      rc |= hb_h5_attr_i64(t, "bytes", (long long)bytes[p]);
      H5Gclose(t);
    }
  }
  H5Gclose(g);
  HB_CHECK(!rc, HB_EIO, e->partial, "cannot write the provenance (%s)", hb_h5_error_text());
  return 0;
}

static int close_all(hb_engine *e) {
  int bad = 0;
  for (int i = 0; i < e->nres; i++) {
    if (e->res[i].dset >= 0) bad |= H5Dclose(e->res[i].dset) < 0;
    if (e->res[i].group >= 0) bad |= H5Gclose(e->res[i].group) < 0;
    e->res[i].dset = e->res[i].group = -1;
  }
  /* a file HDF5 failed to close is still open in it, and closing it again
   * at MPI_Finalize crashed (a disk full at 3 ranks): exit without that */
  if (e->ofile >= 0 && H5Fclose(e->ofile) < 0) bad = 1, hb_error_mark_unclean();
  e->ofile = -1;
  HB_CHECK(!bad, HB_EIO, e->partial, "cannot close the output (%s)", hb_io_error_text());
  return 0;
}

/* Each of k rows of n values scaled to max |value| = 1, so that weak
 * components show as well as strong ones. */
static void scale_rows(double *v, size_t k, size_t n) {
  for (size_t c = 0; c < k; c++) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(v[c * n + i]));
    for (size_t i = 0; m > 0 && i < n; i++) v[c * n + i] /= m;
  }
}

/* k images of h×w as one montage, ceil(sqrt(k)) per row, NaN (black) gaps. */
static double *montage(const double *v, size_t k, size_t h, size_t w, size_t *mh, size_t *mw) {
  size_t cols = 1;
  while (cols * cols < k) cols++;
  size_t rows = (k + cols - 1) / cols;
  *mh = rows * (h + 1) - 1;
  *mw = cols * (w + 1) - 1;
  double *m = malloc(*mh * *mw * sizeof *m);
  if (!m) return NULL;
  for (size_t i = 0; i < *mh * *mw; i++) m[i] = NAN;
  for (size_t c = 0; c < k; c++)
    for (size_t y = 0; y < h; y++)
      memcpy(m + ((c / cols) * (h + 1) + y) * *mw + (c % cols) * (w + 1), v + (c * h + y) * w, w * sizeof *m);
  return m;
}

/* Read a result back (strided to at most 1024 per axis, 256 per montage
 * tile) and write its PNG.  Global results: a 3-D (k, h, w) result is a
 * montage of its k images, a 2-D one an image of k rows each scaled to
 * itself, a 1-D one (explained variance ratios) a line of log10 values. */
static int write_preview(hb_engine *e, hid_t file, const hb_result *r, const char *png) {
  char path[256];
  snprintf(path, sizeof path, "/Experiments/%s/data", r->o->name);
  hid_t d = H5Dopen2(file, path, H5P_DEFAULT);
  HB_H5(d, e->partial, "cannot reopen %s for its preview", path);
  hid_t fs = H5Dget_space(d);
  int nd = H5Sget_simple_extent_ndims(fs), global = r->o->kind == HB_OUT_GLOBAL;
  hsize_t dims[3] = {1, 1, 1}, step[3] = {1, 1, 1}, cnt[3] = {1, 1, 1}, zero[3] = {0, 0, 0};
  H5Sget_simple_extent_dims(fs, dims, NULL);
  for (int i = 0; i < nd; i++) {
    hsize_t most = nd == 3 && i > 0 ? 256 : global && nd == 2 && i == 0 ? dims[0] : 1024;
    step[i] = (dims[i] + most - 1) / most;
    cnt[i] = (dims[i] + step[i] - 1) / step[i];
  }
  H5Sselect_hyperslab(fs, H5S_SELECT_SET, zero, step, cnt, NULL);
  hid_t ms = H5Screate_simple(nd, cnt, NULL);
  size_t n = cnt[0] * cnt[1] * cnt[2];
  double *v = malloc(n * sizeof *v), *m = NULL;
  int rc = 0;
  if (!v || H5Dread(d, H5T_NATIVE_DOUBLE, ms, fs, H5P_DEFAULT, v) < 0) {
    rc = HB_FAIL(HB_EIO, e->partial, "cannot read %s for its preview", path);
  } else if (nd == 3) {
    size_t mh, mw;
    scale_rows(v, cnt[0], cnt[1] * cnt[2]);
    m = montage(v, cnt[0], cnt[1], cnt[2], &mh, &mw);
    rc = m ? hb_preview_image(png, m, mh, mw) : HB_FAIL(HB_EINTERNAL, "memory", "out of memory for a preview");
  } else if (nd == 2) {
    if (global) scale_rows(v, cnt[0], cnt[1]);
    rc = hb_preview_image(png, v, cnt[0], cnt[1]);
  } else {
    for (size_t i = 0; global && i < n; i++) v[i] = v[i] > 0 ? log10(v[i]) : NAN;
    rc = hb_preview_line(png, v, cnt[0]);
  }
  free(m);
  free(v);
  H5Sclose(ms);
  H5Sclose(fs);
  H5Dclose(d);
  return rc;
}

/* Rank 0: every preview under a temporary name (created exclusively, so a
 * link planted there is never followed), read from the closed .partial. */
static int write_previews(hb_engine *e) {
  hid_t f = H5Fopen(e->partial, H5F_ACC_RDONLY, H5P_DEFAULT);
  HB_H5(f, e->partial, "cannot reopen the output for previews");
  int rc = 0;
  for (int i = 0; i < e->nres && !rc; i++) {
    char png[PATH_MAX + 256], tmp[PATH_MAX + 300];
    hb_preview_path(e, e->res[i].o->name, png, sizeof png);
    snprintf(tmp, sizeof tmp, "%s.tmp", png);
    if (!wants_preview(e, &e->res[i])) continue;
    if (unlink(tmp) && errno != ENOENT) rc = HB_FAIL(HB_EIO, tmp, "cannot remove a stale file: %s", strerror(errno));
    if (!rc) rc = write_preview(e, f, &e->res[i], tmp);
  }
  H5Fclose(f);
  return rc;
}

/* Rank 0: the output, then its previews, take their names.  A rename
 * replaces a link at the name itself, never the file it points to. */
static int publish(hb_engine *e) {
  const char *out = e->job->output_file;
  /* before the output: its name is what says the job is finished; a resumed
   * run replaces the one it wrote itself before it stopped */
  if (e->nragged && (e->job->overwrite || e->job->resume)) {
    HB_CHECK(!rename(e->ragged_tmp, e->ragged_out), HB_EIO, e->ragged_out, "cannot rename %s: %s", e->ragged_tmp,
             strerror(errno));
  } else if (e->nragged && renameat2(AT_FDCWD, e->ragged_tmp, AT_FDCWD, e->ragged_out, RENAME_NOREPLACE)) {
    HB_CHECK(errno != EEXIST, HB_EINVALID, e->ragged_out, "it appeared while the job ran; it was left untouched");
    HB_RAISE(HB_EIO, e->ragged_out, "cannot rename %s: %s", e->ragged_tmp, strerror(errno));
  }
  if (e->job->overwrite) {
    HB_CHECK(!rename(e->partial, out), HB_EIO, out, "cannot rename %s: %s", e->partial, strerror(errno));
  } else if (renameat2(AT_FDCWD, e->partial, AT_FDCWD, out, RENAME_NOREPLACE)) {
    HB_CHECK(errno != EEXIST, HB_EINVALID, out, "the output appeared while the job ran; it was left untouched");
    HB_RAISE(HB_EIO, out, "cannot rename %s: %s", e->partial, strerror(errno));
  }
  e->partial_ours = 0;
  for (int i = 0; i < e->nres && e->job->previews; i++) {
    char png[PATH_MAX + 256], tmp[PATH_MAX + 300];
    hb_preview_path(e, e->res[i].o->name, png, sizeof png);
    snprintf(tmp, sizeof tmp, "%s.tmp", png);
    if (wants_preview(e, &e->res[i]))
      HB_CHECK(!rename(tmp, png), HB_EIO, png, "cannot rename %s: %s", tmp, strerror(errno));
  }
  HB_CHECK(!hb_sync_dir_of(out), HB_EIO, out, "cannot sync the output's folder: %s", strerror(errno));
  /* only now is the checkpoint not needed: a kill before this line leaves
   * it, and --resume then finds the output finished (checkpoint.c) */
  unlink(e->record);
  unlink(e->record_tmp);
  unlink(e->old_store);
  if (e->nragged) unlink(e->ragged_side);
  return 0;
}

static void print_summary(hb_engine *e, const hb_stat3 *sec, const double *bytes, double wall) {
  int n = 0;
  for (int i = 0; i < e->nres; i++) n += !e->res[i].o->hidden;
  n -= e->nragged;
  printf("hyperbatch: wrote %s (%d result%s)\n", e->job->output_file, n, n == 1 ? "" : "s");
  if (e->nragged)
    printf("hyperbatch: wrote %s (%d ragged result%s)\n", e->ragged_out, e->nragged, e->nragged == 1 ? "" : "s");
  for (int i = 0; i < e->nres && e->job->previews; i++)
    if (wants_preview(e, &e->res[i])) {
      char png[PATH_MAX + 256];
      hb_preview_path(e, e->res[i].o->name, png, sizeof png);
      printf("hyperbatch: preview %s\n", png);
    }
  char part[64] = ""; /* the results crop or thin the scan */
  if (e->blocks_read < e->part.nblocks) snprintf(part, sizeof part, " (%zu of them read)", e->blocks_read);
  printf("hyperbatch: %zu blocks%s, %.3f GB read in %.4f s (%.2f GB/s) on %d rank%s\n", e->part.nblocks, part,
         bytes[HB_PH_READ] / 1e9, wall, wall > 0 ? bytes[HB_PH_READ] / 1e9 / wall : 0, e->size,
         e->size > 1 ? "s" : "");
  printf("hyperbatch: phase      min s   median s      max s\n");
  for (int p = 0; p < HB_PH_COUNT; p++)
    printf("hyperbatch: %-8s %8.3f  %9.3f  %9.3f\n", hb_phase_names[p], sec[p].min, sec[p].median, sec[p].max);
  fflush(stdout);
}

int hb_output_finish(hb_engine *e) {
  double t0 = hb_now();
  HB_CALL(hb_timers_summary(e->comm, &e->tm, e->summary.sec, e->summary.bytes));
  e->summary.wall = hb_now() - e->t_start;
  HB_MPI(MPI_Bcast(&e->summary.wall, 1, MPI_DOUBLE, 0, e->comm));
  char *slurm = e->summary.slurm_job;
  const char *sj = getenv("SLURM_JOB_ID");
  if (e->rank == 0 && sj) snprintf(slurm, sizeof e->summary.slurm_job, "%s", sj);
  HB_MPI(MPI_Bcast(slurm, sizeof e->summary.slurm_job, MPI_CHAR, 0, e->comm));
  /* how the single pass read: chunk stream or whole blocks (engine.c) */
  e->summary.streamed_ranks = e->streaming;
  HB_MPI(MPI_Allreduce(MPI_IN_PLACE, &e->summary.streamed_ranks, 1, MPI_INT, MPI_SUM, e->comm));
  /* every signal of the output: the results, then any others */
  enum { MAX_EXTRA = 64 };
  hid_t *groups = malloc((size_t)(e->nres + MAX_EXTRA) * sizeof *groups);
  int ngroups = 0;
  for (int i = 0; groups && i < e->nres; i++)
    if (in_output(&e->res[i])) groups[ngroups++] = e->res[i].group;
  extra_signals extra = {e, groups ? groups + ngroups : NULL, 0, MAX_EXTRA};
  hid_t experiments = groups && ngroups ? H5Gopen2(e->ofile, "/Experiments", H5P_DEFAULT) : -1;
  int rc = !groups ? HB_FAIL(HB_EINTERNAL, "memory", "out of memory")
           : experiments >= 0 && H5Literate(experiments, H5_INDEX_NAME, H5_ITER_INC, NULL, collect_extra, &extra) < 0
               ? HB_FAIL(HB_EIO, e->partial, "cannot list the output's signals (%s)", hb_h5_error_text())
               : 0;
  if (experiments >= 0) H5Gclose(experiments);
  ngroups += extra.n;
  /* The provenance is the same for every signal: written once, then
   * hard-linked into the others (one HDF5 object, found under every signal;
   * ten copies cost ten times the attributes to create and flush). */
  if (!rc && ngroups) rc = hb_output_write_provenance(e, groups[0]);
  for (int i = 1; !rc && i < ngroups; i++)
    if (H5Lcreate_hard(groups[0], "original_metadata/hyperbatch", groups[i], "original_metadata/hyperbatch",
                       H5P_DEFAULT, H5P_DEFAULT) < 0) {
      char why[256], name[256] = "";
      snprintf(why, sizeof why, "%s", hb_h5_error_text()); /* before H5Iget_name clears it */
      H5Iget_name(groups[i], name, sizeof name);
      rc = HB_FAIL(HB_EIO, e->partial, "cannot link the provenance into %s (%s)", name, why);
    }
  if (!rc) rc = hb_output_carry_metadata(e, groups, ngroups);
  for (int i = 0; !rc && i < e->nres; i++)
    if (in_output(&e->res[i])) rc = hb_output_scale_times(&e->res[i]);
  for (int i = 0; i < extra.n; i++) H5Gclose(extra.groups[i]);
  free(groups);
  HB_CALL(hb_agree(e->comm, rc));
  HB_CALL(hb_agree(e->comm, close_all(e)));
  e->tm.direct_bytes = (double)hb_directio_unwatch();
  /* on disk before it takes the output's name (and the checkpoint goes) */
  if (hb_fault("output_sync") || fsync(e->store_fd))
    rc = HB_FAIL(HB_EIO, e->partial, "cannot sync the output: %s", strerror(errno));
  close(e->store_fd);
  e->store_fd = -1;
  HB_CALL(hb_agree(e->comm, rc));
  HB_CALL(hb_agree(e->comm, hb_ragged_finish(e)));
  hb_ragged_close(e);
  rc = e->rank == 0 && e->job->previews ? write_previews(e) : 0;
  if (!rc && e->rank == 0) rc = publish(e);
  HB_CALL(hb_agree(e->comm, rc));
  hb_output_unlock(e);
  e->tm.seconds[HB_PH_WRITE] += hb_now() - t0;
  if (e->job->profile)
    HB_CALL(hb_profile_write(e->comm, e->job->profile, &e->tm,
                             e->nblock_kernels ? e->work.done[e->rank] : e->end - e->first, hb_now() - e->t_start,
                             e->part.nblocks));
  if (e->rank == 0) print_summary(e, e->summary.sec, e->summary.bytes, hb_now() - e->t_start);
  return 0;
}

/* Collective, after an agreed failure.  A committed checkpoint (with the
 * .partial, or the .partial.old, it describes) is what --resume continues
 * from: kept.  Anything else this run made is removed.
 *
 * No HDF5 call touches the open output again: a flush that fails on one rank
 * only (a disk filling up under us) skips a barrier the others then wait in
 * for ever.  Nothing unflushed is needed: a checkpoint points at chunks that
 * were synced before it and are read back with pread.  HDF5 would flush at
 * MPI_Finalize, so main() exits without it. */
void hb_output_abort(hb_engine *e) {
  int ours = e->rank == 0 && e->lock_fd >= 0; /* never touch another run's files */
  if (e->ofile >= 0) hb_error_mark_unclean();
  for (int i = 0; i < e->nres; i++) e->res[i].dset = e->res[i].group = -1;
  e->ofile = -1;
  if (e->store_fd >= 0) close(e->store_fd);
  e->store_fd = -1;
  (void)hb_directio_unwatch();
  if (e->ragged.open) hb_error_mark_unclean(); /* its MPI_File_close is collective too */
  e->ragged.open = 0;
  hb_ragged_close(e);
  if (ours) {
    if (e->partial_ours && !e->committed) unlink(e->partial);
    /* only a side file this run began: before the .partial is made (a
     * refused --resume) it is still the committed checkpoint's */
    if (e->partial_ours && !e->committed && !e->resumed.found) unlink(e->ragged_side);
    unlink(e->record_tmp);
    unlink(e->ragged_tmp);
  }
  hb_output_unlock(e);
}
