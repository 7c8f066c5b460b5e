/* Plan, then execute.  Planning validates the job against the input, plans
 * every kernel (index lists, weights), partitions the navigation space and
 * creates the output; only then are pixels read.  The block loop reads block
 * i+1 on the main thread while a worker thread runs the kernels on block i.
 * A rank with a single CPU has nothing to overlap with: it streams each block
 * chunk by chunk instead, running the kernels on every chunk as soon as it is
 * read (and decoded), while it is still in cache.  The ranks agree about
 * every 0.1 s, and then pass blocks from late ranks to early ones
 * (balance.h). */
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine_priv.h"
#include "hb_error.h"
#include "hb_progress.h"
#include "hb_settings.h"

/* ---- planning ----------------------------------------------------------- */

static void merge_partials(void *ctx, void *acc, const void *other) {
  hb_engine *e = ctx;
  for (int i = 0; i < e->nres; i++) {
    hb_result *r = &e->res[i];
    if (r->o->kind == HB_OUT_SIGNAL)
      r->k->def->merge(r->k, r->iout, (char *)acc + r->offset, (const char *)other + r->offset, e->sig_size);
  }
}

static int plan_kernels(hb_engine *e) {
  const hb_node *list = e->job->kernels;
  e->nk = (int)list->n;
  HB_ALLOC(e->kernels, e->nk);
  HB_ALLOC(e->kres, e->nk);
  for (int i = 0; i < e->nk; i++) {
    hb_kernel *k = &e->kernels[i];
    e->kres[i] = e->nres;
    k->spec = list->kids[i];
    k->name = hb_node_child(k->spec, "name")->text;
    k->def = hb_kernel_find(hb_node_child(k->spec, "op")->text);
    HB_CALL(k->def->plan(k, &e->in, k->spec));
    e->nblock_kernels += k->def->block != NULL;
    for (int j = 0; j < k->nout; j++) {
      HB_CHECK(e->nres < HB_MAX_RESULTS, HB_EINVALID, hb_node_where(k->spec, 0), "more than %d results",
               HB_MAX_RESULTS);
      hb_result *r = &e->res[e->nres++];
      *r = (hb_result){k, j, &k->out[j], 0, -1, -1};
      for (int q = 0; q < e->nres - 1; q++)
        HB_CHECK(strcmp(e->res[q].o->name, r->o->name), HB_EINVALID, hb_node_where(k->spec, 0),
                 "result name '%s' is produced twice (kernel '%s' and kernel '%s')", r->o->name, e->res[q].k->name,
                 k->name);
      if (r->o->kind == HB_OUT_SIGNAL) {
        HB_CHECK(k->def->merge && k->def->init && r->o->dtype == r->o->acc, HB_EINTERNAL, k->name,
                 "signal-shaped output without init and merge functions");
        r->offset = e->sig_bytes;
        e->sig_bytes += (e->sig_size * hb_dtype_size(r->o->acc) + 7) & ~(size_t)7;
      }
    }
  }
  const hb_node *pre = e->job->preprocess;
  e->np = pre ? (int)pre->n : 0;
  HB_ALLOC(e->preps, e->np);
  for (int i = 0; i < e->np; i++) {
    e->preps[i].def = hb_prep_find(hb_node_child(pre->kids[i], "op")->text);
    HB_CALL(e->preps[i].def->plan(&e->preps[i], &e->in, pre->kids[i]));
  }
  return 0;
}

/* Families with a `fuse` hook and two or more kernels in the job are planned
 * together; run_sub then calls the family once per run, at its first
 * member's place, instead of each member. */
static int fuse_kernels(hb_engine *e) {
  HB_ALLOC(e->kfused, e->nk);
  for (int i = 0; i < e->nk; i++) e->kfused[i] = -1;
  for (const hb_kernel_def *const *d = hb_kernel_table; *d; d++) {
    if (!(*d)->fuse || !(*d)->fused_block) continue;
    int n = 0;
    for (int i = 0; i < e->nk; i++) n += e->kernels[i].def == *d;
    if (n < 2) continue;
    HB_CHECK(e->nfused < HB_MAX_FUSED, HB_EINTERNAL, "engine", "more than %d fused kernel families", HB_MAX_FUSED);
    hb_fused *f = &e->fused[e->nfused++];
    *f = (hb_fused){*d, &e->in, 0, NULL, NULL};
    HB_ALLOC(f->k, n);
    for (int i = 0; i < e->nk; i++)
      if (e->kernels[i].def == *d) {
        f->k[f->n++] = &e->kernels[i];
        e->kfused[i] = (int)(f - e->fused);
      }
    HB_CALL((*d)->fuse(f));
  }
  return 0;
}

/* Positions per chunk of the navigation-shaped results: about
 * HB_RESULT_CHUNK_BYTES (default 16 KiB) of the widest of them.  Larger
 * chunks cost more when the file is made: parallel HDF5 allocates a
 * filtered dataset's chunks at creation, and sizes them by running zlib over
 * a chunk of fill values (0.45 ms for 128 KiB).  Smaller ones cost more per
 * chunk written (docs/performance.md).  The default is in settings.c. */
static size_t result_chunk_target(const hb_engine *e) {
  double bytes = hb_settings_get()->result_chunk_bytes;
  size_t widest = 1;
  for (int i = 0; i < e->nres; i++)
    if (e->res[i].o->kind == HB_OUT_NAV && hb_dtype_size(e->res[i].o->dtype) > widest)
      widest = hb_dtype_size(e->res[i].o->dtype);
  return bytes > 1 ? (size_t)(bytes / (double)widest) : 1;
}

static int plan(hb_engine *e) {
  HB_CALL(plan_kernels(e));
  HB_CALL(fuse_kernels(e));
  size_t pattern_bytes = e->sig_size * hb_dtype_size(e->in.dtype);
  size_t target = e->job->block > 0 ? (size_t)e->job->block : hb_partition_auto_target(pattern_bytes);
  hb_partition_init(&e->part, e->in.nav_dim, e->in.shape, e->in.chunk, target);
  hb_partition_result_chunks(&e->part, result_chunk_target(e));
  hb_partition_range(e->part.nblocks, e->rank, e->size, &e->first, &e->end);
  HB_ALLOC(e->done, e->part.nblocks);
  double block_bytes = (double)e->part.max_block_pos * (double)pattern_bytes;
  HB_CHECK(block_bytes < 4e9, HB_EINVALID, hb_node_where(hb_node_child(e->job->root, "run"), 1),
           "a block would hold %.3g GB (chunks too large for run.block); use a smaller run.block", block_bytes / 1e9);
  hb_tree_init(&e->tree, e->sig_bytes, merge_partials, e);
  /* kernels share each run of patterns while it sits in L2 (half of it:
   * the other half holds partials and outputs) */
  long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
  size_t cache = l2 > 0 ? (size_t)l2 : (size_t)1 << 20;
  e->sub_pos = cache / 2 / (pattern_bytes ? pattern_bytes : 1);
  if (e->sub_pos < 1) e->sub_pos = 1;
  e->chunk_order = hb_input_whole_pattern_chunks(&e->in);
  return 0;
}

static int assign_blocks(hb_engine *e) {
  HB_CHECK(!hb_work_init(&e->work, e->size, e->done, e->part.nblocks), HB_EINTERNAL, "memory",
           "out of memory for the block lists");
  e->remaining = hb_work_remaining(&e->work);
  return 0;
}

static void print_plan(const hb_engine *e, int dry) {
  const hb_input *in = &e->in;
  printf("input   %s%s%s\n", in->path, in->signal[0] ? " signal " : "", in->signal);
  printf("        %s, array shape (", hb_dtype_name(in->dtype));
  for (int d = 0; d < in->ndim; d++) printf("%s%llu", d ? ", " : "", (unsigned long long)in->shape[d]);
  printf("), chunks (");
  for (int d = 0; d < in->ndim; d++) printf("%s%llu", d ? ", " : "", (unsigned long long)in->chunk[d]);
  printf("), %s, %d navigation + %d signal axes\n", in->filters, in->nav_dim, in->sig_dim);
  printf("blocks  %zu of up to %zu patterns (", e->part.nblocks, e->part.max_block_pos);
  for (int d = 0; d < e->part.nd; d++)
    printf("%s%llu", d ? " x " : "", (unsigned long long)(e->part.bchunks[d] * e->part.chunk[d]));
  printf(" positions) over %d rank%s\n", e->size, e->size > 1 ? "s" : "");
  printf("        navigation results in chunks of (");
  for (int d = 0; d < e->part.nd; d++)
    printf("%s%llu", d ? " x " : "", (unsigned long long)hb_partition_result_extent(&e->part, d));
  printf(") positions, %zu per result\n", e->part.nrchunks);
  if (dry) {
    size_t g = hb_deal_group(e->part.nblocks, e->size);
    for (int r = 0; r < e->size; r++)
      printf("        rank %d: %zu blocks, groups of %zu from block %zu, every %zu (smaller groups at the end)\n", r,
             hb_deal_count(e->part.nblocks, e->size, r), g, (size_t)r * g, (size_t)e->size * g);
  }
  static const char *const kinds[] = {"navigation", "signal", "global"};
  for (int i = 0; i < e->nres; i++)
    printf("result  %-24s %-10s %s\n", e->res[i].o->name, kinds[e->res[i].o->kind], hb_dtype_name(e->res[i].o->dtype));
  printf("output  %s\n", e->job->output_file);
  fflush(stdout);
}

/* ---- the block loop ------------------------------------------------------ */

typedef struct {
  hb_engine *e;
  hb_block blk;
  void *data;        /* writable: preprocessing works in place */
  void *navbuf[HB_MAX_RESULTS];
  void *navrun[HB_MAX_RESULTS]; /* streaming: one run's navigation values, scattered to navbuf */
  void *partial;     /* NULL when there are no signal-shaped results */
  double seconds;
} work;

/* Where result ri of this run goes: navigation values into the block's
 * buffer at the run's position, or (scattered) into navrun. */
static void *out_buf(const hb_engine *e, const work *w, const hb_block *sub, int ri, int scattered) {
  const hb_output *o = e->res[ri].o;
  if (o->kind != HB_OUT_NAV) return (char *)w->partial + e->res[ri].offset;
  return scattered ? w->navrun[ri] : (char *)w->navbuf[ri] + sub->pos0 * hb_dtype_size(o->dtype);
}

/* Every preprocess step and kernel on one run of patterns; the run fits in
 * the L2 cache, so only the first kernel pays for memory traffic. */
static void run_sub(hb_engine *e, work *w, hb_block *sub, void *data, int scattered) {
  for (int i = 0; i < e->np; i++) e->preps[i].def->apply(&e->preps[i], sub, data);
  void *outs[HB_MAX_RESULTS];
  for (int ki = 0; ki < e->nk; ki++) {
    hb_kernel *k = &e->kernels[ki];
    if (!k->def->block) continue; /* a global kernel: its turn comes after the pass */
    if (e->kfused[ki] >= 0) { /* the family runs once, at its first member */
      const hb_fused *f = &e->fused[e->kfused[ki]];
      if (f->k[0] != k) continue;
      int n = 0;
      for (int m = 0; m < f->n; m++)
        for (int j = 0; j < f->k[m]->nout; j++)
          outs[n++] = out_buf(e, w, sub, e->kres[f->k[m] - e->kernels] + j, scattered);
      f->def->fused_block(f, sub, outs);
      continue;
    }
    for (int j = 0; j < k->nout; j++) outs[j] = out_buf(e, w, sub, e->kres[ki] + j, scattered);
    k->def->block(k, sub, outs);
  }
}

/* Kernels see a block's patterns in one order that depends only on the
 * block: with chunks of whole patterns, chunk by chunk (C order), then row by
 * row inside a chunk; otherwise in C order over the block.  Reading a whole
 * block or streaming its chunks (run_chunk) gives the same order, so results
 * are bit-identical either way; only where runs are cut differs, which no
 * kernel's values depend on (hb_kernel.h).  Runs are at most sub_pos long.
 *
 * run_region: the patterns off + [0, valid) (navigation axes), stored at
 * origin + [0, valid) of a C-order array of extents ext that starts at base. */
static void run_region(hb_engine *e, work *w, const hsize_t *off, const hsize_t *valid, unsigned char *base,
                       const hsize_t *ext, const hsize_t *origin) {
  int nd = e->part.nd;
  size_t pattern_bytes = e->sig_size * hb_dtype_size(e->in.dtype), row = valid[nd - 1];
  hb_block sub = w->blk;
  hsize_t idx[HB_MAXDIM] = {0};
  for (;;) {
    size_t pos = 0, at = 0;
    for (int d = 0; d < nd; d++) {
      pos = pos * w->blk.count[d] + (off[d] - w->blk.start[d] + idx[d]);
      at = at * ext[d] + origin[d] + idx[d];
    }
    for (size_t p = 0; p < row; p += e->sub_pos) {
      sub.pos0 = pos + p;
      sub.npos = row - p < e->sub_pos ? row - p : e->sub_pos;
      sub.data = base + (at + p) * pattern_bytes;
      run_sub(e, w, &sub, base + (at + p) * pattern_bytes, 0);
    }
    int d = nd - 2;
    while (d >= 0 && ++idx[d] == valid[d]) idx[d--] = 0;
    if (d < 0) break;
  }
}

static void init_partials(hb_engine *e, work *w) {
  for (int i = 0; i < e->nres; i++) {
    const hb_result *r = &e->res[i];
    if (r->o->kind == HB_OUT_SIGNAL) r->k->def->init(r->k, r->iout, (char *)w->partial + r->offset, e->sig_size);
  }
}

/* Every kernel on the block in w->data, in the order run_region describes. */
static void *run_kernels(void *arg) {
  work *w = arg;
  hb_engine *e = w->e;
  double t0 = hb_now();
  init_partials(e, w);
  int nd = e->part.nd;
  hsize_t off[HB_MAXDIM] = {0}, valid[HB_MAXDIM] = {0}, origin[HB_MAXDIM] = {0}, ext[HB_MAXDIM] = {0};
  if (!e->chunk_order) { /* the whole block as one region */
    run_region(e, w, w->blk.start, w->blk.count, w->data, w->blk.count, origin);
  } else {
    hsize_t idx[HB_MAXDIM] = {0};
    for (int d = 0; d < nd; d++) ext[d] = (w->blk.count[d] + e->in.chunk[d] - 1) / e->in.chunk[d];
    for (;;) {
      for (int d = 0; d < nd; d++) {
        origin[d] = idx[d] * e->in.chunk[d];
        off[d] = w->blk.start[d] + origin[d];
        valid[d] = w->blk.count[d] - origin[d] < e->in.chunk[d] ? w->blk.count[d] - origin[d] : e->in.chunk[d];
      }
      run_region(e, w, off, valid, w->data, w->blk.count, origin);
      int d = nd - 1;
      while (d >= 0 && ++idx[d] == ext[d]) idx[d--] = 0;
      if (d < 0) break;
    }
  }
  w->seconds = hb_now() - t0;
  return NULL;
}

/* hb_input_stream's callback: every kernel on one chunk while it is in
 * cache.  The chunk's patterns go in the order run_region gives them, but
 * in runs as long as the chunk's layout allows (a whole chunk, unless it is
 * cut by the block's edge), since kernels pay per call; their navigation
 * values are scattered to the block's positions afterwards. */
static int run_chunk(void *arg, const hsize_t *off, void *chunk) {
  work *w = arg;
  hb_engine *e = w->e;
  double t0 = hb_now();
  int nd = e->part.nd;
  const hsize_t *ext = e->in.chunk;
  hsize_t valid[HB_MAXDIM] = {0}, idx[HB_MAXDIM] = {0};
  for (int d = 0; d < nd; d++) {
    hsize_t end = w->blk.start[d] + w->blk.count[d];
    valid[d] = end - off[d] < ext[d] ? end - off[d] : ext[d];
  }
  /* slabs contiguous in the chunk: axes after k are whole */
  int k = nd - 1;
  size_t slab = valid[k];
  while (k > 0 && valid[k] == ext[k]) slab *= valid[--k];
  size_t pattern_bytes = e->sig_size * hb_dtype_size(e->in.dtype);
  hb_block sub = w->blk;
  for (;;) {
    size_t at = 0; /* the slab's first pattern in the chunk */
    for (int d = 0; d < nd; d++) at = at * ext[d] + (d < k ? idx[d] : 0);
    for (size_t p = 0; p < slab; p += e->sub_pos) {
      sub.npos = slab - p < e->sub_pos ? slab - p : e->sub_pos;
      sub.data = (unsigned char *)chunk + (at + p) * pattern_bytes;
      sub.pos0 = 0;
      run_sub(e, w, &sub, (unsigned char *)chunk + (at + p) * pattern_bytes, 1);
      for (size_t j = 0; j < sub.npos; j++) { /* the pattern's position in the block */
        size_t q = at + p + j, pos = 0, stride = 1;
        for (int d = nd - 1; d >= 0; d--) {
          pos += (off[d] - w->blk.start[d] + q % ext[d]) * stride;
          q /= ext[d];
          stride *= w->blk.count[d];
        }
        for (int i = 0; i < e->nres; i++) {
          if (e->res[i].o->kind != HB_OUT_NAV) continue;
          size_t es = hb_dtype_size(e->res[i].o->dtype);
          memcpy((char *)w->navbuf[i] + pos * es, (char *)w->navrun[i] + j * es, es);
        }
      }
    }
    int d = k - 1;
    while (d >= 0 && ++idx[d] == valid[d]) idx[d--] = 0;
    if (d < 0) break;
  }
  w->seconds += hb_now() - t0;
  return 0;
}

static void setup_block(hb_engine *e, size_t b, work *w) {
  w->blk.index = b;
  w->blk.nav_dim = e->part.nd;
  w->blk.npos = hb_partition_block(&e->part, b, w->blk.start, w->blk.count);
  w->blk.sig_size = e->sig_size;
  w->blk.dtype = e->in.dtype;
  w->blk.data = w->data;
}

static void count_read(hb_engine *e, const work *w, double seconds) {
  e->tm.seconds[HB_PH_READ] += seconds;
  e->tm.bytes[HB_PH_READ] += (double)w->blk.npos * (double)e->sig_size * (double)hb_dtype_size(e->in.dtype);
}

static int read_block(hb_engine *e, size_t b, work *w) {
  setup_block(e, b, w);
  double t0 = hb_now();
  HB_CALL(hb_input_read(&e->in, w->blk.start, w->blk.count, w->data, b));
  count_read(e, w, hb_now() - t0);
  return 0;
}

/* Read and run block b chunk by chunk (e->stream): the kernels find each
 * chunk in cache, where a whole block would have gone out to memory and come
 * back.  Its time less the kernels' counts as reading. */
static int stream_block(hb_engine *e, size_t b, work *w) {
  setup_block(e, b, w);
  init_partials(e, w);
  w->seconds = 0;
  double t0 = hb_now();
  HB_CALL(hb_input_stream(&e->in, w->blk.start, w->blk.count, b, run_chunk, w));
  count_read(e, w, hb_now() - t0 - w->seconds);
  return 0;
}

/* Fault injection for the tests (docs/operations.md): after `round` rounds,
 * HB_FAULT_SIGNAL_AFTER acts as if SIGUSR1 had arrived, and
 * HB_FAULT_KILL_AFTER kills the last rank outright, as a dying node would.
 * HB_FAULT_ROUND_DELAY_MS stretches every round, so that a real scheduler's
 * signal (scancel, a time limit) lands in the middle of a small test run; a
 * signal cuts the sleep short. */
static int injected_signal(const hb_engine *e, size_t round) {
  const hb_settings *s = hb_settings_get();
  if (s->fault_kill_after >= 0 && round >= (size_t)s->fault_kill_after && e->rank == e->size - 1) raise(SIGKILL);
  if (s->fault_round_delay_ms >= 0) {
    long ms = s->fault_round_delay_ms;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
  }
  return s->fault_signal_after >= 0 && round >= (size_t)s->fault_signal_after ? SIGUSR1 : 0;
}

/* Windows, not rounds: each rank reads its blocks for about `window`
 * seconds of work, then all agree.  Agreeing after every block made each
 * round cost the slower rank's time (how well chunks compress varies from
 * block to block, and a shared machine slows one core or the other), which
 * summed to 0.1 s of the 2 GB benchmark's 0.6 s.  At each agreement the
 * ranks also rebalance what is left (balance.h), and the window shrinks
 * towards the end so that the last ranks to finish finish together. */
#define HB_WINDOW_MAX 0.1
#define HB_WINDOW_MIN 0.002
#define HB_WINDOW_FIRST 0.02

/* The fault injections (injected_signal) act after a given round: under
 * them every window is one block per rank, as rounds were, and nothing is
 * rebalanced, so that they land where the tests put them. */
static int faults_injected(void) {
  const hb_settings *s = hb_settings_get();
  return s->fault_signal_after >= 0 || s->fault_round_delay_ms >= 0 || s->fault_kill_after >= 0;
}

/* At an agreement, collectively: write the staged results when they fill
 * their buffer (or after the last window), stop on a signal, checkpoint
 * every HB_CHECKPOINT_SECONDS (default 30).  Rank 0's clock decides, so
 * every rank flushes together. */
static int after_window(hb_engine *e, size_t window, int last) {
  int sig = injected_signal(e, window);
  if (!sig) sig = hb_ckpt_interrupted();
  double free_bytes = e->rank == 0 ? hb_output_free_space(e) : 0;
  int ckpt = e->job->checkpoint;
  int flags[4] = {sig, e->rank == 0 && ckpt && hb_now() - e->last_flush >= hb_settings_get()->checkpoint_seconds,
                  e->rank == 0 && free_bytes < hb_output_space_needed(e), last || e->stage.bytes >= HB_NAV_STAGE_BYTES};
  HB_MPI(MPI_Allreduce(MPI_IN_PLACE, flags, 4, MPI_INT, MPI_MAX, e->comm));
  /* Parallel HDF5 cannot back out of a collective write that runs out of
   * space on one rank (the others wait in it forever): stop before that. */
  HB_CHECK(!flags[2], HB_EIO, e->partial, "the disk is (nearly) full: %.1f MB free, %.1f MB needed to go on safely%s",
           free_bytes / 1e6, hb_output_space_needed(e) / 1e6,
           e->committed ? "; the finished blocks are kept for --resume" : "");
  int commit = (flags[0] || flags[1]) && ckpt;
  /* staged results reach the file before a checkpoint says their blocks are done */
  if (flags[0] || flags[1] || flags[3]) HB_CALL(hb_output_flush_nav(e, last));
  if (commit) {
    HB_CALL(hb_ckpt_commit(e));
    e->last_flush = hb_now();
  }
  if (!flags[0]) return 0;
  size_t done = 0;
  for (size_t b = 0; b < e->part.nblocks; b++) done += e->done[b];
  if (ckpt)
    HB_RAISE(HB_EINTERRUPTED, e->job->output_file,
             "stopped by signal %d after %zu of %zu blocks; they are saved in %s: run again with --resume to finish",
             flags[0], done, e->part.nblocks, e->record);
  HB_RAISE(HB_EINTERRUPTED, e->job->output_file,
           "stopped by signal %d after %zu of %zu blocks; run.checkpoint is false, so nothing was kept", flags[0],
           done, e->part.nblocks);
}

static int alloc_work(hb_engine *e, work w[2]) {
  size_t npos = e->part.max_block_pos;
  for (int s = 0; s < 2; s++) {
    w[s].e = e;
    if (!e->stream) { /* a streamed block lives in the reader's chunk buffers */
      w[s].data = malloc(npos * e->sig_size * hb_dtype_size(e->in.dtype));
      HB_CHECK(w[s].data, HB_EINTERNAL, "memory", "cannot allocate a %zu-pattern block", npos);
    }
    for (int i = 0; i < e->nres; i++)
      if (e->res[i].o->kind == HB_OUT_NAV) {
        w[s].navbuf[i] = malloc(npos * hb_dtype_size(e->res[i].o->dtype));
        HB_CHECK(w[s].navbuf[i], HB_EINTERNAL, "memory", "out of memory");
        if (e->stream) {
          w[s].navrun[i] = malloc(e->sub_pos * hb_dtype_size(e->res[i].o->dtype));
          HB_CHECK(w[s].navrun[i], HB_EINTERNAL, "memory", "out of memory");
        }
      }
  }
  return 0;
}

static void free_work(hb_engine *e, work w[2]) {
  for (int s = 0; s < 2; s++) {
    free(w[s].data);
    for (int i = 0; i < e->nres; i++) free(w[s].navbuf[i]), free(w[s].navrun[i]);
    free(w[s].partial);
  }
}

/* HB_FAULT_SLOW_RANK=R:MS makes rank R take MS ms longer per block, as on a
 * slower or busier node: the balancing tests' straggler.  Unlike the other
 * injections it leaves windows and rebalancing as they are. */
static long straggle_ms(const hb_engine *e) {
  const hb_settings *s = hb_settings_get();
  return s->fault_slow_rank == e->rank ? s->fault_slow_ms : 0;
}

/* One block: read (or stream) it and run every kernel on it; in the block
 * path the next block is read meanwhile (*ahead says it is in hand). */
static int one_block(hb_engine *e, work w[2], size_t c, int *ahead, long slow_ms) {
  const hb_worklists *wl = &e->work;
  const size_t *mine = wl->list[e->rank], n = wl->len[e->rank];
  work *cur = &w[c % 2];
  int rc = 0;
  if (!e->stream && !*ahead) HB_CALL(read_block(e, mine[c], cur));
  *ahead = 0;
  if (e->sig_bytes) {
    cur->partial = hb_tree_buffer(&e->tree);
    HB_CHECK(cur->partial, HB_EINTERNAL, "memory", "out of memory");
  }
  int ok = 1;
  if (e->stream) ok = !(rc = stream_block(e, mine[c], cur));
  else {
    pthread_t worker;
    int started = !e->serial && !pthread_create(&worker, NULL, run_kernels, cur);
    if (!started) run_kernels(cur); /* no thread: still correct, just serial */
    if (c + 1 < n) *ahead = !(rc = read_block(e, mine[c + 1], &w[(c + 1) % 2]));
    if (started) pthread_join(worker, NULL);
  }
  e->tm.seconds[HB_PH_KERNELS] += cur->seconds;
  if (ok && cur->partial) hb_tree_push(&e->tree, 0, cur->blk.index, cur->partial);
  else if (cur->partial) hb_tree_release(&e->tree, cur->partial);
  cur->partial = NULL;
  if (ok && !rc) rc = hb_output_stage_nav(e, &cur->blk, cur->navbuf);
  if (slow_ms) nanosleep(&(struct timespec){slow_ms / 1000, (slow_ms % 1000) * 1000000L}, NULL);
  return rc;
}

/* Collective, after each window: share every rank's progress, rebalance,
 * pick the next window, then after_window.  *last: no blocks are left. */
static int agree_window(hb_engine *e, size_t window, int lockstep, double *next_window, int *last) {
  hb_worklists *wl = &e->work;
  double mine[2] = {(double)wl->done[e->rank], wl->busy[e->rank]}, all[2 * wl->size];
  HB_MPI(MPI_Allgather(mine, 2, MPI_DOUBLE, all, 2, MPI_DOUBLE, e->comm));
  for (int r = 0; r < wl->size; r++) wl->done[r] = (size_t)all[2 * r], wl->busy[r] = all[2 * r + 1];
  *last = hb_work_remaining(wl) == 0;
  if (!*last && !lockstep) {
    double eta = hb_work_eta(wl), per_block = 0;
    for (int r = 0; r < wl->size; r++)
      if (wl->done[r]) per_block = fmax(per_block, wl->busy[r] / (double)wl->done[r]);
    *next_window = fmin(HB_WINDOW_MAX, fmax(HB_WINDOW_MIN, eta / 4));
    /* moves pay only beyond a window and a block's time */
    HB_CHECK(hb_work_rebalance(wl, fmax(*next_window, 2 * per_block)) >= 0, HB_EINTERNAL, "memory",
             "out of memory rebalancing the blocks");
  }
  return after_window(e, window, *last);
}

static int block_loop(hb_engine *e) {
  cpu_set_t cpus;
  e->serial = !sched_getaffinity(0, sizeof cpus, &cpus) && CPU_COUNT(&cpus) == 1 && !hb_settings_get()->overlap;
  /* One CPU has nothing to overlap reads with: stream instead. */
  e->stream = e->serial && hb_input_streams(&e->in);
  work w[2];
  memset(w, 0, sizeof w);
  int rc = alloc_work(e, w);
  rc = hb_agree(e->comm, rc);
  hb_progress prog;
  double total_bytes = (double)hb_input_nav_size(&e->in) * (double)e->sig_size * hb_dtype_size(e->in.dtype);
  total_bytes *= (double)e->remaining / (double)e->part.nblocks;
  if (e->rank == 0) hb_progress_start(&prog, e->job->progress, e->remaining, total_bytes);
  e->last_flush = hb_now();
  hb_worklists *wl = &e->work;
  const int lockstep = faults_injected();
  const long slow_ms = straggle_ms(e);
  double window = HB_WINDOW_FIRST;
  int ahead = 0, last = 0;
  /* Every rank enters every agreement, even after a local failure (it
   * stops working at once), so everyone learns of it before any collective
   * write and no rank is left waiting. */
  for (size_t win = 0;; win++) {
    double t0 = hb_now();
    while (!rc && wl->done[e->rank] < wl->len[e->rank]) {
      rc = one_block(e, w, wl->done[e->rank], &ahead, slow_ms);
      if (!rc) wl->done[e->rank]++;
      if (lockstep || hb_now() - t0 >= window) break;
    }
    wl->busy[e->rank] += hb_now() - t0;
    double t_wait = hb_now(), io0 = e->tm.seconds[HB_PH_WRITE];
    rc = hb_agree(e->comm, rc);
    if (!rc) rc = hb_agree(e->comm, agree_window(e, win + 1, lockstep, &window, &last));
    e->tm.seconds[HB_PH_WAIT] += hb_now() - t_wait - (e->tm.seconds[HB_PH_WRITE] - io0);
    if (rc || last) break;
    if (e->rank == 0) {
      size_t done = e->remaining - hb_work_remaining(wl);
      hb_progress_update(&prog, done, total_bytes * (double)done / (double)e->remaining);
    }
  }
  if (e->rank == 0 && !rc) hb_progress_end(&prog, e->remaining, total_bytes);
  free_work(e, w);
  return rc;
}

static int reduce(hb_engine *e) {
  double t0 = hb_now();
  void *root = NULL;
  int rc = e->sig_bytes ? hb_tree_reduce(&e->tree, e->comm, &root) : 0;
  if (!rc && root)
    for (int i = 0; i < e->nres; i++) {
      hb_result *r = &e->res[i];
      if (r->o->kind == HB_OUT_SIGNAL && r->k->def->finish)
        r->k->def->finish(r->k, r->iout, (char *)root + r->offset, e->sig_size, hb_input_nav_size(&e->in));
    }
  e->tm.seconds[HB_PH_REDUCE] += hb_now() - t0;
  HB_CALL(hb_agree(e->comm, rc));
  t0 = hb_now();
  rc = e->sig_bytes ? hb_output_write_signal(e, root) : 0;
  e->tm.seconds[HB_PH_WRITE] += hb_now() - t0;
  return hb_agree(e->comm, rc);
}

/* ---- global (multi-pass) kernels ---------------------------------------- */

int hb_global_read(hb_global *g, size_t b, hb_block *blk, void *buf) {
  hb_engine *e = g->engine;
  work w = {.e = e, .data = buf};
  HB_CALL(read_block(e, b, &w));
  for (int i = 0; i < e->np; i++) e->preps[i].def->apply(&e->preps[i], &w.blk, buf);
  *blk = w.blk;
  return 0;
}

/* Each global kernel in job order, every rank together; its time less its
 * reads and writes counts as kernel time. */
static int global_pass(hb_engine *e) {
  hb_global g = {e->comm, e->rank, e->size, e->job->threads, &e->in, &e->part, e->first, e->end, e->sig_size, e};
  for (int i = 0; i < e->nk; i++) {
    hb_kernel *k = &e->kernels[i];
    if (!k->def->global) continue;
    double t0 = hb_now(), io0 = e->tm.seconds[HB_PH_READ] + e->tm.seconds[HB_PH_WRITE];
    int rc = k->def->global(k, &g);
    double io = e->tm.seconds[HB_PH_READ] + e->tm.seconds[HB_PH_WRITE] - io0;
    e->tm.seconds[HB_PH_KERNELS] += hb_now() - t0 - io;
    HB_CALL(hb_agree(e->comm, rc));
  }
  return 0;
}

static void teardown(hb_engine *e) {
  for (int i = 0; i < e->nfused; i++) {
    if (e->fused[i].def->fused_destroy) e->fused[i].def->fused_destroy(&e->fused[i]);
    free(e->fused[i].k);
  }
  for (int i = 0; i < e->nk; i++)
    if (e->kernels[i].def && e->kernels[i].def->destroy) e->kernels[i].def->destroy(&e->kernels[i]);
  for (int i = 0; i < e->np; i++)
    if (e->preps[i].def && e->preps[i].def->destroy) e->preps[i].def->destroy(&e->preps[i]);
  free(e->kernels);
  free(e->kres);
  free(e->kfused);
  free(e->preps);
  free(e->done);
  hb_work_free(&e->work);
  hb_output_free_stage(e);
  hb_chunk_table_free(&e->stored);
  hb_tree_free(&e->tree);
  hb_input_close(&e->in);
}

/* A resumed run, before its first block: the checkpoint's incomplete and
 * stored result chunks go into the fresh .partial, and a checkpoint of the
 * new file is committed before the old one is removed. */
static int restore(hb_engine *e) {
  HB_CALL(hb_ckpt_restore(e));
  HB_CALL(hb_ckpt_commit(e));
  if (e->rank == 0) unlink(e->old_store);
  return 0;
}

int hb_engine_run(MPI_Comm comm, hb_job *job, hb_run_mode mode) {
  hb_engine *e = calloc(1, sizeof *e);
  if (!e) return hb_agree(comm, HB_EINTERNAL);
  e->comm = comm;
  e->job = job;
  e->ofile = -1;
  e->store_fd = e->lock_fd = -1;
  e->in.file = e->in.dset = e->in.fspace = -1;
  e->t_start = hb_now();
  MPI_Comm_rank(comm, &e->rank);
  MPI_Comm_size(comm, &e->size);

  double t0 = hb_now();
  int rc = hb_input_open(comm, job, &e->in);
  rc = hb_agree(comm, rc);
  if (!rc) {
    e->sig_size = hb_input_sig_size(&e->in);
    rc = hb_agree(comm, plan(e));
  }
  if (!rc) rc = hb_output_check(e, mode == HB_RUN);
  if (!rc && mode != HB_RUN) {
    if (e->rank == 0) {
      print_plan(e, mode == HB_DRY_RUN);
      printf("hyperbatch: %s: the job is valid; no pixels were read\n", job->path);
    }
    teardown(e);
    free(e);
    return 0;
  }
  if (!rc) rc = hb_output_lock(e);
  if (!rc && job->resume) rc = hb_ckpt_load(e);
  if (!rc && e->resumed.finished) { /* stopped between publishing and cleaning up */
    if (e->rank == 0) unlink(e->record), unlink(e->old_store);
    hb_output_unlock(e);
    teardown(e);
    free(e);
    return 0;
  }
  if (!rc) rc = hb_agree(comm, assign_blocks(e));
  if (!rc) rc = hb_output_create(e);
  if (!rc) rc = hb_nav_prepare(e);
  if (!rc && e->resumed.found) rc = restore(e);
  hb_ckpt_free_resumed(e);
  e->tm.seconds[HB_PH_OPEN] = hb_now() - t0;
  if (!rc && e->nblock_kernels) rc = block_loop(e);
  /* a long global pass (decomposition) should not lose the single pass */
  if (!rc && e->nblock_kernels && job->checkpoint && e->nk > e->nblock_kernels) rc = hb_ckpt_commit(e);
  if (!rc) rc = reduce(e);
  if (!rc) rc = global_pass(e);
  if (!rc) rc = hb_output_finish(e);
  if (rc) hb_output_abort(e);
  teardown(e);
  free(e);
  return rc;
}
