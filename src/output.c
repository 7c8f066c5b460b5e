/* The results file: <output>.partial, written collectively, renamed when
 * complete; provenance in every result; PNG previews beside it. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "chunkwrite.h"
#include "engine_priv.h"
#include "hb_error.h"
#include "hb_preview.h"
#include "hb_progress.h"
#include "version.h"

void hb_preview_path(const hb_engine *e, const char *result, char *buf, size_t n) {
  const char *out = e->job->output_file;
  size_t len = strlen(out);
  if (len > 5 && !strcmp(out + len - 5, ".hspy")) len -= 5;
  snprintf(buf, n, "%.*s.%s.png", (int)len, out, result);
}

static int result_ndim(const hb_engine *e, const hb_result *r) {
  if (r->o->kind == HB_OUT_GLOBAL) return r->o->ndim;
  return r->o->kind == HB_OUT_NAV ? e->in.nav_dim : e->in.sig_dim;
}

static int wants_preview(const hb_engine *e, const hb_result *r) {
  int nd = result_ndim(e, r);
  return e->job->previews && (nd == 1 || nd == 2 || (r->o->kind == HB_OUT_GLOBAL && nd == 3));
}

/* Create dir and its parents; with create == 0 only check that it could be. */
static int mkdirs(char *dir, int create) {
  struct stat st;
  if (!stat(dir, &st)) return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
  char *slash = strrchr(dir, '/');
  if (slash && slash != dir) {
    *slash = 0;
    int rc = mkdirs(dir, create);
    *slash = '/';
    if (rc) return rc;
  }
  if (!create) return 0;
  return mkdir(dir, 0777) && errno != EEXIST ? errno : 0;
}

static const char *partial_of(const hb_job *job, char *buf, size_t n) {
  snprintf(buf, n, "%s.partial", job->output_file);
  return buf;
}

int hb_output_check(hb_engine *e, int create) {
  char tmp_partial[PATH_MAX + 16];
  int rc = 0;
  if (e->rank == 0) {
    const hb_job *job = e->job;
    const char *where = hb_node_where(hb_node_child(hb_node_child(job->root, "output"), "file"), 0);
    char *tmp = strdup(job->output_file);
    char *dir = tmp ? dirname(tmp) : NULL;
    int err = dir ? mkdirs(dir, create) : ENOMEM;
    if (err)
      rc = hb_error_raise(HB_EIO, __FILE__, __LINE__, job->output_file, "cannot create the output folder '%s': %s",
                          dir ? dir : "?", strerror(err));
    else if (create && access(dir, W_OK | X_OK))
      rc = hb_error_raise(HB_EIO, __FILE__, __LINE__, job->output_file, "the output folder '%s' is not writable: %s",
                          dir, strerror(errno));
    else if (!job->overwrite && !job->resume && !access(partial_of(job, tmp_partial, sizeof tmp_partial), F_OK))
      rc = hb_error_raise(HB_EINVALID, __FILE__, __LINE__, where,
                          "%s is left from an unfinished run: add --resume to continue it, or set "
                          "output.overwrite: true (or remove it) to start over",
                          tmp_partial);
    else if (!job->overwrite && !access(job->output_file, F_OK))
      rc = hb_error_raise(HB_EINVALID, __FILE__, __LINE__, where,
                          "output '%s' already exists; set output.overwrite: true or choose another file",
                          job->output_file);
    for (int i = 0; !rc && !job->overwrite && i < e->nres; i++) {
      char png[PATH_MAX + 256];
      hb_preview_path(e, e->res[i].o->name, png, sizeof png);
      if (wants_preview(e, &e->res[i]) && !access(png, F_OK))
        rc = hb_error_raise(HB_EINVALID, __FILE__, __LINE__, where,
                            "preview '%s' already exists; set output.overwrite: true, remove it, or set "
                            "output.previews: false",
                            png);
    }
    free(tmp);
  }
  return hb_agree(e->comm, rc);
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

double hb_output_free_space(const hb_engine *e) {
  struct statvfs st;
  char *tmp = strdup(e->partial);
  int bad = !tmp || statvfs(dirname(tmp), &st);
  free(tmp);
  return bad ? 1e300 : (double)st.f_bavail * (double)st.f_frsize;
}

/* What the next rounds and a checkpoint flush may add to the .partial, with
 * room to spare for HDF5's metadata. */
double hb_output_space_needed(const hb_engine *e) {
  double nodes = (double)e->size * 2 * (log2((double)e->part.nblocks + 1) + 2);
  return 4e6 + 2 * nodes * (double)e->sig_bytes + (double)e->part.nblocks;
}

/* Reopen a result of a resumed .partial (its datasets exist already). */
static int reopen_result(hb_engine *e, hb_result *r) {
  char path[300];
  snprintf(path, sizeof path, "/Experiments/%s", r->o->name);
  r->group = H5Lexists(e->ofile, path, H5P_DEFAULT) > 0 ? H5Gopen2(e->ofile, path, H5P_DEFAULT) : -1;
  r->dset = r->group >= 0 ? H5Dopen2(r->group, "data", H5P_DEFAULT) : -1;
  HB_CHECK(r->dset >= 0, HB_EIO, e->partial, "the checkpoint has no result '%s'; run without --resume to start over",
           r->o->name);
  return 0;
}

int hb_output_create(hb_engine *e) {
  int rc = 0;
  if (e->ofile < 0) { /* a resumed run has its .partial open already */
    rc = hb_hspy_create(e->partial, e->comm, e->job->mpiio_info, &e->ofile);
    HB_CALL(hb_agree(e->comm, rc));
    e->partial_ours = 1;
  }
  const hb_input *in = &e->in;
  char *tmp = strdup(in->path);
  const char *base = tmp ? basename(tmp) : in->path;
  for (int i = 0; i < e->nres && !rc; i++) {
    hb_result *r = &e->res[i];
    int nav = r->o->kind == HB_OUT_NAV;
    int lo = nav ? 0 : in->nav_dim, nd = nav ? in->nav_dim : in->sig_dim;
    hb_axis axes[HB_MAXDIM];
    hsize_t shape[HB_MAXDIM], chunk[HB_MAXDIM];
    for (int d = 0; d < nd; d++) {
      axes[d] = in->axes[lo + d];
      axes[d].navigate = 0; /* a result is an image or a line, not a stack */
      shape[d] = in->shape[lo + d];
      /* one chunk per block: each rank writes whole chunks, none shared */
      chunk[d] = hb_partition_extent(&e->part, d);
    }
    hb_signal_desc desc = {r->o->name, r->o->name, base, "", r->o->quantity, r->o->dtype, nd, shape,
                           nav ? chunk : NULL, axes, e->job->gzip};
    if (r->o->kind == HB_OUT_GLOBAL) global_desc(e, r->o, &desc, chunk);
    rc = e->job->resume ? reopen_result(e, r) : hb_hspy_signal_create(e->ofile, &desc, &r->group, &r->dset);
  }
  free(tmp);
  return hb_agree(e->comm, rc);
}

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
  for (int i = 0; i < e->nres; i++)
    if (e->res[i].o->kind == HB_OUT_NAV) s->bytes += blk->npos * hb_dtype_size(e->res[i].o->dtype);
  return 0;
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

/* Collective: can every navigation result take whole-chunk writes?  Each
 * block must be exactly one chunk, as hb_output_create makes them. */
static int nav_chunks_fit(hb_engine *e, int *gzip, int *fit) {
  int ok = 1;
  double bytes = 0;
  for (int i = 0; i < e->nres; i++)
    if (e->res[i].o->kind == HB_OUT_NAV)
      bytes += (double)hb_input_nav_size(&e->in) * (double)hb_dtype_size(e->res[i].o->dtype);
  ok = bytes * (e->size - 1) <= CHUNKW_REPEAT_MAX;
  for (int i = 0; i < e->nres && ok; i++) {
    hb_result *r = &e->res[i];
    if (r->o->kind != HB_OUT_NAV) continue;
    hsize_t chunk[HB_MAXDIM];
    ok = hb_chunkw_usable(r->dset, &gzip[i], chunk);
    for (int d = 0; d < e->in.nav_dim && ok; d++) ok = chunk[d] == hb_partition_extent(&e->part, d);
  }
  HB_MPI(MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, e->comm));
  *fit = ok;
  return 0;
}

/* Copy a block's values (C order over count) into its chunk (C order over
 * chunk), zero beyond the block: edge blocks are smaller than their chunk. */
static void place_block(const void *vals, void *chunk, int nd, const hsize_t *count, const hsize_t *cdim, size_t es) {
  size_t total = es, row = count[nd - 1] * es;
  for (int d = 0; d < nd; d++) total *= cdim[d];
  memset(chunk, 0, total);
  hsize_t idx[HB_MAXDIM] = {0};
  for (const char *src = vals;; src += row) {
    size_t at = 0;
    for (int d = 0; d < nd - 1; d++) at = (at + idx[d]) * cdim[d + 1];
    memcpy((char *)chunk + at * es, src, row);
    int d = nd - 2;
    while (d >= 0 && ++idx[d] == count[d]) idx[d--] = 0;
    if (d < 0) break;
  }
}

/* Collective: every staged block is one chunk of each navigation result;
 * encode them here and store them whole (chunkwrite.c). */
static int flush_nav_chunks(hb_engine *e, const int *gzip) {
  hb_navstage *s = &e->stage;
  int nd = e->in.nav_dim, nds = 0, which[HB_MAX_RESULTS];
  hb_chunkw_dset dsets[HB_MAX_RESULTS];
  hsize_t cdim[HB_MAXDIM];
  size_t most = 0;
  for (int d = 0; d < nd; d++) cdim[d] = hb_partition_extent(&e->part, d);
  for (int i = 0; i < e->nres; i++) {
    if (e->res[i].o->kind != HB_OUT_NAV) continue;
    size_t es = hb_dtype_size(e->res[i].o->dtype), bytes = es;
    for (int d = 0; d < nd; d++) bytes *= cdim[d];
    dsets[nds] = (hb_chunkw_dset){e->res[i].dset, nd, es, bytes, gzip[i]};
    which[nds++] = i;
    most = bytes > most ? bytes : most;
  }
  hb_chunkwriter *w = NULL;
  void *chunk = malloc(most ? most : 1);
  int rc = chunk ? hb_chunkw_new(dsets, nds, &w)
                 : hb_error_raise(HB_EINTERNAL, __FILE__, __LINE__, "memory", "out of memory writing results");
  for (size_t k = 0, pos = 0; k < s->nblocks && !rc; k++) {
    hsize_t start[HB_MAXDIM], count[HB_MAXDIM];
    hb_partition_block(&e->part, s->blocks[k], start, count);
    size_t npos = 1;
    int whole = 1;
    for (int d = 0; d < nd; d++) npos *= count[d], whole &= count[d] == cdim[d];
    for (int j = 0; j < nds && !rc; j++) {
      const char *vals = (const char *)s->values[which[j]] + pos * dsets[j].esize;
      if (!whole) place_block(vals, chunk, nd, count, cdim, dsets[j].esize);
      rc = hb_chunkw_add(w, j, start, whole ? vals : chunk);
      e->tm.bytes[HB_PH_WRITE] += (double)npos * (double)dsets[j].esize;
    }
    pos += npos;
  }
  rc = hb_agree(e->comm, rc);
  if (!rc) rc = hb_chunkw_write(w, e->comm, e->partial);
  hb_chunkw_free(w);
  free(chunk);
  return rc;
}

/* Collective: write what every rank has staged, then forget it. */
int hb_output_flush_nav(hb_engine *e) {
  hb_navstage *s = &e->stage;
  double t0 = hb_now();
  int gzip[HB_MAX_RESULTS] = {0}, fit = 0, nav = 0;
  for (int i = 0; i < e->nres; i++) nav |= e->res[i].o->kind == HB_OUT_NAV;
  int rc = nav ? nav_chunks_fit(e, gzip, &fit) : 0; /* the same results on every rank */
  if (!rc && nav) rc = fit ? flush_nav_chunks(e, gzip) : flush_nav_hdf5(e);
  if (!rc)
    for (size_t k = 0; k < s->nblocks; k++) e->done[s->blocks[k]] = 1;
  s->nblocks = s->npos = s->bytes = 0;
  e->tm.seconds[HB_PH_WRITE] += hb_now() - t0;
  return rc;
}

void hb_output_free_stage(hb_engine *e) {
  for (int i = 0; i < e->nres; i++) free(e->stage.values[i]);
  free(e->stage.blocks);
  memset(&e->stage, 0, sizeof e->stage);
}

/* Collective: rank 0 holds the reduced partials, the others write nothing. */
int hb_output_write_signal(hb_engine *e, void *root) {
  hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
  H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE);
  int rc = 0;
  for (int i = 0; i < e->nres && !rc; i++) {
    hb_result *r = &e->res[i];
    if (r->o->kind != HB_OUT_SIGNAL) continue;
    hid_t fs = H5Dget_space(r->dset), ms = H5Scopy(fs);
    if (!root) H5Sselect_none(fs), H5Sselect_none(ms);
    if (H5Dwrite(r->dset, hb_dtype_h5(r->o->dtype), ms, fs, dxpl, root ? (char *)root + r->offset : NULL) < 0)
      rc = hb_error_raise(HB_EIO, __FILE__, __LINE__, e->partial, "cannot write result '%s' (%s)", r->o->name,
                          hb_h5_error_text());
    H5Sclose(ms);
    H5Sclose(fs);
  }
  H5Pclose(dxpl);
  return rc;
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
    rc = hb_error_raise(HB_EIO, __FILE__, __LINE__, e->partial, "cannot write result '%s' (%s)", r->o->name,
                        hb_h5_error_text());
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
static int write_provenance(hb_engine *e, hid_t group, const hb_stat3 *sec, const double *bytes, double wall,
                            const char *slurm) {
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
  rc |= hb_h5_attr_str(g, "version", PROJECT_VERSION);
  rc |= hb_h5_attr_str(g, "git_revision", HB_GIT_REVISION);
  char *abs = realpath(in->path, NULL);
  rc |= hb_h5_attr_str(g, "input_file", abs ? abs : in->path);
  free(abs);
  rc |= hb_h5_attr_str(g, "input_dataset", in->dataset);
  rc |= hb_h5_attr_i64(g, "input_size", in->file_size);
  rc |= hb_h5_attr_str(g, "input_mtime", when);
  rc |= hb_h5_attr_i64(g, "ranks", e->size);
  rc |= hb_h5_attr_i64(g, "blocks", (long long)e->part.nblocks);
  rc |= hb_h5_attr_f64(g, "wall_time_s", wall);
  rc |= hb_h5_attr_i64(g, "bytes_read", (long long)bytes[HB_PH_READ]);
  rc |= hb_h5_attr_str(g, "slurm_job_id", slurm);
  int streamed = e->stream; /* how the single pass read: chunk stream or whole blocks (engine.c) */
  HB_MPI(MPI_Allreduce(MPI_IN_PLACE, &streamed, 1, MPI_INT, MPI_SUM, e->comm));
  rc |= hb_h5_attr_i64(g, "streamed_ranks", streamed);
  rc |= hb_h5_attr_i64(g, "blocks_moved", (long long)e->work.moved); /* by rebalancing; the same on every rank */
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
  if (e->ofile >= 0) bad |= H5Fclose(e->ofile) < 0;
  e->ofile = -1;
  HB_CHECK(!bad, HB_EIO, e->partial, "cannot close the output (disk full?) (%s)", hb_h5_error_text());
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
    rc = hb_error_raise(HB_EIO, __FILE__, __LINE__, e->partial, "cannot read %s for its preview", path);
  } else if (nd == 3) {
    size_t mh, mw;
    scale_rows(v, cnt[0], cnt[1] * cnt[2]);
    m = montage(v, cnt[0], cnt[1], cnt[2], &mh, &mw);
    rc = m ? hb_preview_image(png, m, mh, mw)
           : hb_error_raise(HB_EINTERNAL, __FILE__, __LINE__, "memory", "out of memory for a preview");
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

static int previews_and_rename(hb_engine *e) {
  if (e->job->previews) {
    hid_t f = H5Fopen(e->partial, H5F_ACC_RDONLY, H5P_DEFAULT);
    HB_H5(f, e->partial, "cannot reopen the output for previews");
    int rc = 0;
    for (int i = 0; i < e->nres && !rc; i++) {
      char png[PATH_MAX + 256];
      hb_preview_path(e, e->res[i].o->name, png, sizeof png);
      if (wants_preview(e, &e->res[i])) rc = write_preview(e, f, &e->res[i], png);
    }
    H5Fclose(f);
    HB_CALL(rc);
  }
  const char *out = e->job->output_file;
  if (e->job->overwrite) {
    HB_CHECK(!rename(e->partial, out), HB_EIO, out, "cannot rename %s: %s", e->partial, strerror(errno));
  } else if (renameat2(AT_FDCWD, e->partial, AT_FDCWD, out, RENAME_NOREPLACE)) {
    HB_CHECK(errno != EEXIST, HB_EINVALID, out, "the output appeared while the job ran; it was left untouched");
    HB_RAISE(HB_EIO, out, "cannot rename %s: %s", e->partial, strerror(errno));
  }
  return 0;
}

static void print_summary(hb_engine *e, const hb_stat3 *sec, const double *bytes, double wall) {
  printf("hyperbatch: wrote %s (%d result%s)\n", e->job->output_file, e->nres, e->nres == 1 ? "" : "s");
  for (int i = 0; i < e->nres && e->job->previews; i++)
    if (wants_preview(e, &e->res[i])) {
      char png[PATH_MAX + 256];
      hb_preview_path(e, e->res[i].o->name, png, sizeof png);
      printf("hyperbatch: preview %s\n", png);
    }
  printf("hyperbatch: %zu blocks, %.3f GB read in %.3f s (%.2f GB/s) on %d rank%s\n", e->part.nblocks,
         bytes[HB_PH_READ] / 1e9, wall, wall > 0 ? bytes[HB_PH_READ] / 1e9 / wall : 0, e->size,
         e->size > 1 ? "s" : "");
  printf("hyperbatch: phase      min s   median s      max s\n");
  for (int p = 0; p < HB_PH_COUNT; p++)
    printf("hyperbatch: %-8s %8.3f  %9.3f  %9.3f\n", hb_phase_names[p], sec[p].min, sec[p].median, sec[p].max);
  fflush(stdout);
}

int hb_output_finish(hb_engine *e) {
  double t0 = hb_now();
  hb_stat3 sec[HB_PH_COUNT];
  double bytes[HB_PH_COUNT];
  HB_CHECK(!hb_timers_summary(e->comm, &e->tm, sec, bytes), HB_EINTERNAL, "timing", "out of memory");
  double wall = hb_now() - e->t_start;
  HB_MPI(MPI_Bcast(&wall, 1, MPI_DOUBLE, 0, e->comm));
  char slurm[64] = "";
  const char *sj = getenv("SLURM_JOB_ID");
  if (e->rank == 0 && sj) snprintf(slurm, sizeof slurm, "%s", sj);
  HB_MPI(MPI_Bcast(slurm, sizeof slurm, MPI_CHAR, 0, e->comm));
  /* The provenance is the same for every result: written once, then
   * hard-linked into the others (one HDF5 object, found under every result;
   * ten copies cost ten times the attributes to create and flush). */
  int rc = e->nres ? write_provenance(e, e->res[0].group, sec, bytes, wall, slurm) : 0;
  for (int i = 1; i < e->nres && !rc; i++)
    if (H5Lcreate_hard(e->res[0].group, "original_metadata/hyperbatch", e->res[i].group,
                       "original_metadata/hyperbatch", H5P_DEFAULT, H5P_DEFAULT) < 0)
      rc = hb_error_raise(HB_EIO, __FILE__, __LINE__, e->partial, "cannot link the provenance into '%s' (%s)",
                          e->res[i].o->name, hb_h5_error_text());
  HB_CALL(hb_agree(e->comm, rc));
  HB_CALL(hb_agree(e->comm, hb_ckpt_remove(e)));
  HB_CALL(hb_agree(e->comm, close_all(e)));
  rc = e->rank == 0 ? previews_and_rename(e) : 0;
  HB_CALL(hb_agree(e->comm, rc));
  e->tm.seconds[HB_PH_WRITE] += hb_now() - t0;
  if (e->job->profile)
    HB_CALL(hb_profile_write(e->comm, e->job->profile, &e->tm,
                             e->nblock_kernels ? e->work.done[e->rank] : e->end - e->first, hb_now() - e->t_start,
                             e->part.nblocks));
  if (e->rank == 0) print_summary(e, sec, bytes, hb_now() - e->t_start);
  return 0;
}

void hb_output_abort(hb_engine *e) {
  H5E_BEGIN_TRY {
    if (e->ckpt >= 0) H5Gclose(e->ckpt);
    e->ckpt = -1;
    close_all(e);
  }
  H5E_END_TRY;
  /* a saved checkpoint is what --resume continues from: keep it */
  if (e->rank == 0 && e->partial_ours && !e->ckpt_saved) unlink(e->partial);
}
