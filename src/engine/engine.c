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
      r->k->def->merge(r->k, r->iout, (char *)acc + r->offset, (const char *)other + r->offset, r->elems);
  }
}

static int plan_kernels(hb_engine *e) {
  HB_CALL(hb_pipeline_plan(e));
  const hb_node *list = e->job->kernels;
  e->nk = (int)list->n;
  HB_ALLOC(e->kernels, e->nk);
  HB_ALLOC(e->kres, e->nk);
  for (int i = 0; i < e->nk; i++) {
    hb_kernel *k = &e->kernels[i];
    e->kres[i] = e->nres;
    k->spec = list->kids[i];
    k->name = hb_node_child(k->spec, "name")->text;
    const char *op = hb_node_child(k->spec, "op")->text;
    k->def = hb_kernel_find(op);
    if (!k->def) k->transform = hb_transform_find(op), k->def = &hb_transform_kernel;
    const hb_params *p;
    HB_CALL(hb_params_bind(k->spec, k->transform ? k->transform->params : k->def->params, &p));
    HB_CALL(hb_stream_check_real(&e->stream, op, k->transform ? k->transform->complex_patterns : k->def->complex_patterns,
                                 hb_node_where(k->spec, 0)));
    HB_CALL(k->def->plan(k, &e->stream, p));
    HB_CALL(hb_params_misused(p)); /* a wrong parameter name in a plan: a bug, caught by any test */
    e->nblock_kernels += k->def->block != NULL;
    for (int j = 0; j < k->nout; j++) {
      HB_CHECK(e->nres < HB_MAX_RESULTS, HB_EINVALID, hb_node_where(k->spec, 0), "more than %d results",
               HB_MAX_RESULTS);
      hb_result *r = &e->res[e->nres++];
      *r = (hb_result){.k = k, .iout = j, .o = &k->out[j], .group = -1, .dset = -1};
      for (int q = 0; q < e->nres - 1; q++)
        HB_CHECK(strcmp(e->res[q].o->name, r->o->name), HB_EINVALID, hb_node_where(k->spec, 0),
                 "result name '%s' is produced twice (kernel '%s' and kernel '%s')", r->o->name, e->res[q].k->name,
                 k->name);
      if (r->o->kind == HB_OUT_SIGNAL) {
        size_t partial = r->o->partial_elems;
        r->elems = r->o->ndim ? hb_output_elems(r->o) : e->stream.sig_size;
        HB_CHECK(k->def->merge && k->def->init && (k->def->finish || (r->o->dtype == r->o->acc && !partial)),
                 HB_EINTERNAL, k->name, "a reduced output needs init and merge, and finish unless it is its partial");
        HB_CHECK(!partial || partial * hb_dtype_size(r->o->acc) >= r->elems * hb_dtype_size(r->o->dtype),
                 HB_EINTERNAL, k->name, "a partial smaller than its result");
        r->offset = e->sig_bytes;
        e->sig_bytes += ((partial ? partial : r->elems) * hb_dtype_size(r->o->acc) + 7) & ~(size_t)7;
      } else {
        HB_CHECK(!r->o->hidden, HB_EINTERNAL, k->name, "only reduced outputs can be hidden");
        r->item = hb_output_item_bytes(r->o);
        r->slot = hb_output_slot_bytes(r->o);
        HB_CHECK(!r->o->nav_map.partial_bytes || (k->def->init && k->def->finish), HB_EINTERNAL, k->name,
                 "a changed scan's partial needs init and finish");
      }
    }
  }
  HB_CHECK(!(hb_pipeline_changes_data(e) && e->nblock_kernels < e->nk), HB_EINVALID,
           hb_node_where(e->job->preprocess, 0),
           "decomposition reads the file's data as it is: a preprocess step that changes the patterns' shape or "
           "type cannot come before it (yet); run the transform as a kernel, or in a job of its own");
  return 0;
}

static int find_result(const hb_engine *e, const char *name) {
  for (int i = 0; i < e->nres; i++)
    if (!strcmp(e->res[i].o->name, name)) return i;
  return -1;
}

/* Every hb_kernel_use names a result of another kernel: the kernels are
 * ordered so that each runs after what it reads, in job order otherwise; a
 * per-pattern result is read in the same pass, a reduced one in the next.
 * Global kernels (decomposition) come after every pass. */
static int order_kernels(hb_engine *e) {
  HB_ALLOC(e->order, e->nk);
  HB_ALLOC(e->kpass, e->nk);
  HB_ALLOC(e->kuse, e->nk);
  unsigned char *placed;
  HB_ALLOC(placed, e->nk);
  int rc = 0;
  for (int i = 0; i < e->nk && !rc; i++) {
    hb_kernel *k = &e->kernels[i];
    for (int u = 0; u < k->nuses && !rc; u++) {
      int ri = find_result(e, k->use[u].name);
      const char *where = k->use[u].where;
      if (ri < 0)
        rc = HB_FAIL(HB_EINVALID, where, "kernel '%s' reads '%s', which no kernel of this job produces", k->name,
                     k->use[u].name);
      else if (e->res[ri].k == k)
        rc = HB_FAIL(HB_EINVALID, where, "kernel '%s' cannot read its own result '%s'", k->name, k->use[u].name);
      else if (e->res[ri].o->kind != HB_OUT_NAV && e->res[ri].o->kind != HB_OUT_SIGNAL)
        rc = HB_FAIL(HB_EINVALID, where,
                     "kernel '%s' reads '%s': only a per-pattern result (one item per pattern) or a reduced one "
                     "can be read by another kernel",
                     k->name, k->use[u].name);
      else
        e->kuse[i][u] = ri, k->use[u].o = e->res[ri].o;
    }
  }
  for (int n = 0; n < e->nk && !rc; n++) {
    int next = -1;
    for (int i = 0; i < e->nk && next < 0; i++) {
      if (placed[i]) continue;
      int ready = 1;
      for (int u = 0; u < e->kernels[i].nuses && ready; u++) ready = placed[e->res[e->kuse[i][u]].k - e->kernels];
      if (ready) next = i;
    }
    if (next < 0) { /* a cycle: name the first kernel still waiting */
      for (int i = 0; i < e->nk && !rc; i++)
        if (!placed[i])
          rc = HB_FAIL(HB_EINVALID, e->kernels[i].use[0].where,
                       "kernel '%s' reads a result that depends, through other kernels, on its own",
                       e->kernels[i].name);
      break;
    }
    const hb_kernel *k = &e->kernels[next];
    int pass = k->def->block ? 1 : 0;
    for (int u = 0; u < k->nuses; u++) {
      const hb_result *r = &e->res[e->kuse[next][u]];
      int after = r->pass + (r->o->kind == HB_OUT_SIGNAL);
      if (!k->def->block || !r->k->def->block)
        rc = HB_FAIL(HB_EINVALID, k->use[u].where,
                     "decomposition neither reads nor is read by other kernels (kernel '%s', result '%s')", k->name,
                     r->o->name);
      if (after > pass) pass = after;
    }
    e->kpass[next] = pass;
    /* a kernel's outputs may come in its later passes too (hb_output.pass) */
    for (int j = 0; pass && j < k->nout; j++) {
      hb_result *r = &e->res[e->kres[next] + j];
      r->pass = pass + (k->out[j].pass > 1 ? k->out[j].pass - 1 : 0);
      if (r->pass > e->npasses) e->npasses = r->pass;
    }
    if (pass > e->npasses) e->npasses = pass;
    e->order[n] = next;
    placed[next] = 1;
  }
  free(placed);
  return rc;
}

static int single_pass(const hb_engine *e, int ki) {
  for (int j = 0; j < e->kernels[ki].nout; j++)
    if (e->res[e->kres[ki] + j].pass != e->kpass[ki]) return 0;
  return 1;
}

/* Families with a `fuse` hook and two or more kernels in the job are planned
 * together; run_sub then calls the family once per run, at its first
 * member's place, instead of each member. */
static int fuse_kernels(hb_engine *e) {
  HB_ALLOC(e->kfused, e->nk);
  for (int i = 0; i < e->nk; i++) e->kfused[i] = -1;
  for (const hb_kernel_def *const *d = hb_kernel_table; *d; d++) {
    if (!(*d)->fuse || !(*d)->fused_block) continue;
    /* members run at the first one's place: kernels that read others' results,
     * or run in a later pass, keep their own place */
#define FUSIBLE(i) (e->kernels[i].def == *d && !e->kernels[i].nuses && e->kpass[i] == 1 && single_pass(e, i))
    int n = 0;
    for (int i = 0; i < e->nk; i++) n += FUSIBLE(i);
    if (n < 2) continue;
    HB_CHECK(e->nfused < HB_MAX_FUSED, HB_EINTERNAL, "engine", "more than %d fused kernel families", HB_MAX_FUSED);
    hb_fused *f = &e->fused[e->nfused++];
    *f = (hb_fused){*d, &e->stream, 0, NULL, NULL};
    HB_ALLOC(f->k, n);
    for (int i = 0; i < e->nk; i++)
      if (FUSIBLE(i)) {
        f->k[f->n++] = &e->kernels[i];
        e->kfused[i] = (int)(f - e->fused);
      }
#undef FUSIBLE
    HB_CALL((*d)->fuse(f));
  }
  return 0;
}

static int plan(hb_engine *e) {
  HB_CALL(plan_kernels(e));
  HB_CALL(order_kernels(e));
  HB_CALL(fuse_kernels(e));
  size_t pattern_bytes = e->sig_size * hb_dtype_size(e->in.dtype);
  size_t target = e->job->block > 0 ? (size_t)e->job->block : hb_partition_auto_target(pattern_bytes);
  /* blocks of whole chunks and whole steps of every changed scan, so that a
   * bin never spans blocks (or ranks) and a block edge is a result chunk's
   * edge: the least common multiple of the two */
  hsize_t align[HB_MAXDIM];
  for (int d = 0; d < e->in.nav_dim; d++) align[d] = e->in.chunk[d] ? e->in.chunk[d] : 1;
  for (int i = 0; i < e->nres; i++) {
    const hb_nav_map *m = &e->res[i].o->nav_map;
    if (!m->on) continue;
    e->nav_mapped = 1;
    for (int d = 0; d < e->in.nav_dim; d++) align[d] = align[d] / hb_gcd(align[d], m->step[d]) * m->step[d];
  }
  hb_partition_init(&e->part, e->in.nav_dim, e->in.shape, align, target);
  HB_CALL(hb_output_plan_results(e)); /* each result's path, dataset shape and chunks */
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
  size_t widest = e->step_bytes > pattern_bytes ? e->step_bytes : pattern_bytes;
  e->sub_pos = cache / 2 / (widest ? widest : 1);
  if (e->sub_pos < 1) e->sub_pos = 1;
  e->chunk_order = hb_input_whole_pattern_chunks(&e->in);
  return 0;
}

/* ---- reading only what a changed scan needs ------------------------------ */

static int kernel_in_pass(const hb_engine *e, int ki);

/* Some position in [a, b) of navigation axis d goes into m's result. */
static int axis_range_used(const hb_nav_map *m, int d, hsize_t a, hsize_t b) {
  hsize_t first = m->first[d], step = m->step[d];
  if (a < first) a = first;
  if (a >= b) return 0;
  hsize_t o = (a - first) / step;
  if ((a - first) % step >= m->factor[d]) o++; /* thinned out: the next kept position */
  return o < m->shape[d] && first + o * step < b;
}

/* Every kernel of this pass crops, thins or bins the scan: reads may leave
 * out what none of their results takes (a crop's outside, a thinned scan's
 * chunks between the kept positions). */
static int pass_reads_part(const hb_engine *e) {
  if (!e->nav_mapped) return 0;
  for (int ki = 0; ki < e->nk; ki++)
    for (int j = 0; kernel_in_pass(e, ki) && j < e->kernels[ki].nout; j++)
      if (!e->res[e->kres[ki] + j].o->nav_map.on) return 0;
  return 1;
}

/* Some result of this pass takes a position of the navigation rectangle
 * [start, start + count). */
static int rect_used(const hb_engine *e, const hsize_t *start, const hsize_t *count) {
  for (int ki = 0; ki < e->nk; ki++)
    for (int j = 0; kernel_in_pass(e, ki) && j < e->kernels[ki].nout; j++) {
      const hb_nav_map *m = &e->res[e->kres[ki] + j].o->nav_map;
      int d = 0;
      while (d < e->in.nav_dim && axis_range_used(m, d, start[d], start[d] + count[d])) d++;
      if (d == e->in.nav_dim) return 1;
    }
  return 0;
}

static int chunk_used(void *ctx, const hsize_t *off, const hsize_t *cnt) { return rect_used(ctx, off, cnt); }

static int block_used(const hb_engine *e, size_t b) {
  hsize_t start[HB_MAXDIM], count[HB_MAXDIM];
  hb_partition_block(&e->part, b, start, count);
  return rect_used(e, start, count);
}

size_t hb_blocks_to_read(const hb_engine *e) {
  if (!pass_reads_part(e)) return e->part.nblocks;
  size_t n = 0;
  for (size_t b = 0; b < e->part.nblocks; b++) n += block_used(e, b);
  return n;
}

/* This pass's blocks: those not done, less those no result takes anything
 * of (pass_reads_part), dealt to the ranks. */
static int assign_blocks(hb_engine *e) {
  e->reads_part = pass_reads_part(e);
  e->blocks_read = hb_blocks_to_read(e);
  unsigned char *skip = e->done;
  if (e->reads_part) {
    HB_ALLOC(skip, e->part.nblocks);
    for (size_t b = 0; b < e->part.nblocks; b++) skip[b] = e->done[b] || !block_used(e, b);
  }
  int rc = hb_work_init(&e->work, e->size, skip, e->part.nblocks);
  if (skip != e->done) free(skip);
  HB_CHECK(!rc, HB_EINTERNAL, "memory", "out of memory for the block lists");
  e->remaining = hb_work_remaining(&e->work);
  return 0;
}

/* The preprocess steps, then each pass: what it reads and the kernels it
 * runs, in their order, with what they read of others. */
static void print_steps(const hb_engine *e) {
  for (int i = 0; i < e->nsteps; i++) {
    const hb_transform *t = &e->steps[i];
    printf("step    %-24s %s (", t->def->op, hb_dtype_name(t->out.dtype));
    for (int d = 0; d < t->out.sig_dim; d++)
      printf("%s%llu", d ? " x " : "", (unsigned long long)t->out.shape[t->out.nav_dim + d]);
    printf(") per pattern\n");
  }
  for (int p = 1; p <= e->npasses; p++) {
    printf("pass %d  reads %s%s, runs", p, e->in.path, e->nsteps ? " through the steps" : "");
    for (int n = 0; n < e->nk; n++) {
      int ki = e->order[n];
      const hb_kernel *k = &e->kernels[ki];
      int last = e->kpass[ki];
      for (int j = 0; j < k->nout; j++)
        if (e->res[e->kres[ki] + j].pass > last) last = e->res[e->kres[ki] + j].pass;
      if (e->kpass[ki] && e->kpass[ki] < p && p <= last) printf(" %s (its pass %d)", k->name, p - e->kpass[ki] + 1);
      if (e->kpass[ki] != p) continue;
      printf(" %s", k->name);
      for (int u = 0; u < k->nuses; u++) printf("%s%s", u ? "," : " (reads ", k->use[u].name);
      if (k->nuses) printf(")");
    }
    printf("\n");
  }
  for (int ki = 0; ki < e->nk; ki++)
    if (!e->kpass[ki]) printf("global  %s, after the passes\n", e->kernels[ki].name);
}

static void print_plan(const hb_engine *e, int dry) {
  const hb_input *in = &e->in;
  printf("input   %s%s%s\n", in->path, in->signal[0] ? " signal " : "", in->signal);
  printf("        %s, array shape (", hb_dtype_name(in->dtype));
  for (int d = 0; d < in->ndim; d++) printf("%s%llu", d ? ", " : "", (unsigned long long)in->shape[d]);
  printf("), %s (", in->chunked ? "chunks" : "contiguous, read in pieces of");
  for (int d = 0; d < in->ndim; d++) printf("%s%llu", d ? ", " : "", (unsigned long long)in->chunk[d]);
  printf("), %s, %d navigation + %d signal axes\n", in->filters, in->nav_dim, in->sig_dim);
  printf("blocks  %zu of up to %zu patterns (", e->part.nblocks, e->part.max_block_pos);
  for (int d = 0; d < e->part.nd; d++) { /* aligned to a changed scan's steps, a block may pass the edge */
    hsize_t extent = e->part.bchunks[d] * e->part.chunk[d];
    printf("%s%llu", d ? " x " : "", (unsigned long long)(extent < in->shape[d] ? extent : in->shape[d]));
  }
  printf(" positions) over %d rank%s\n", e->size, e->size > 1 ? "s" : "");
  printf("        navigation results in chunks of (");
  for (int d = 0; d < e->part.nd; d++)
    printf("%s%llu", d ? " x " : "", (unsigned long long)hb_partition_result_extent(&e->part, d));
  printf(") positions, %zu per result\n", e->part.nrchunks);
  size_t nread = hb_blocks_to_read(e);
  if (pass_reads_part(e))
    printf("        the results crop or thin the scan: %zu of the blocks are read, and of each only the chunks a "
           "result takes\n",
           nread);
  if (dry) {
    size_t g = hb_deal_group(nread, e->size);
    /* when some are not read, the groups count among those that are */
    const char *of = nread < e->part.nblocks ? " of those read" : "";
    for (int r = 0; r < e->size; r++)
      printf("        rank %d: %zu blocks, groups of %zu from block %zu%s, every %zu (smaller groups at the end)\n", r,
             hb_deal_count(nread, e->size, r), g, (size_t)r * g, of, (size_t)e->size * g);
  }
  print_steps(e);
  static const char *const kinds[] = {"navigation", "signal", "global", "full", "ragged"};
  /* indexed by hb_result_path */
  static const char *const paths[] = {"", ", chunks of several blocks", ", written block by block",
                                      ", lists in the .ragged.hspy file"};
  for (int i = 0; i < e->nres; i++) {
    const hb_result *r = &e->res[i];
    char shape[160] = "";
    for (int d = 0, at = 0; d < r->ndim && at < (int)sizeof shape - 24; d++)
      at += snprintf(shape + at, sizeof shape - (size_t)at, "%s%llu", d ? " x " : "(", (unsigned long long)r->shape[d]);
    char scan[200] = ""; /* a changed scan: ", the scan's [0:12, 0:10] in bins of 2 x 2" */
    const hb_nav_map *m = &r->o->nav_map;
    int at = 0, binned = 0, dropped = 0; /* dropped: axes reduced, not an index's (inav) */
    for (int d = 0; m->on && m->partial_bytes && d < e->part.nd; d++) dropped += m->dropped[d];
    for (int d = 0; dropped && d < e->part.nd && at < (int)sizeof scan - 80; d++)
      if (m->dropped[d])
        at += snprintf(scan + at, sizeof scan - (size_t)at, "%s%d%s%s%s", at ? ", " : ", reduced over navigation axis ",
                       e->part.nd - 1 - d, /* HyperSpy's order, as jobs name them */
                       e->in.axes[d].name[0] ? " '" : "", e->in.axes[d].name, e->in.axes[d].name[0] ? "'" : "");
    for (int d = 0; m->on && !dropped && d < e->part.nd && at < (int)sizeof scan / 2; d++) {
      if (m->dropped[d]) { /* one position: Python's index */
        at += snprintf(scan + at, sizeof scan - (size_t)at, "%s%llu", d ? ", " : ", the scan's [",
                       (unsigned long long)m->first[d]);
        continue;
      }
      hsize_t end = m->first[d] + (m->shape[d] - 1) * m->step[d] + m->factor[d];
      at += snprintf(scan + at, sizeof scan - (size_t)at, "%s%llu:%llu", d ? ", " : ", the scan's [",
                     (unsigned long long)m->first[d], (unsigned long long)(end < e->in.shape[d] ? end : e->in.shape[d]));
      if (m->step[d] > m->factor[d]) /* thinned: Python's slice */
        at += snprintf(scan + at, sizeof scan - (size_t)at, ":%llu", (unsigned long long)m->step[d]);
      binned |= m->factor[d] > 1;
    }
    if (m->on && !dropped) at += snprintf(scan + at, sizeof scan - (size_t)at, "]%s", binned ? " in bins of " : "");
    for (int d = 0; binned && d < e->part.nd && at < (int)sizeof scan - 24; d++)
      at += snprintf(scan + at, sizeof scan - (size_t)at, "%s%llu", d ? " x " : "", (unsigned long long)m->factor[d]);
    printf("result  %-24s %-10s %-10s %s)%s%s\n", r->o->name, kinds[r->o->kind], hb_dtype_name(r->o->dtype), shape,
           paths[r->path], scan);
  }
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
  void *scratch[2];  /* the pipeline's, a run of its largest pattern each (pipeline.c) */
  size_t *runpos;    /* streaming: each pattern of the run's position in the block */
  hb_ragged *ragged; /* per result (RAGGED ones): this block's lists (raggedwrite.c) */
  double seconds;
} work;

/* A result with an item per pattern in a block buffer (NAV, FULL). */
static int per_pattern(const hb_result *r) { return r->path == HB_PATH_GATHERED || r->path == HB_PATH_DIRECT; }

/* Where result ri of this run goes: navigation values into the block's
 * buffer at the run's position, or (scattered) into navrun. */
static void *out_buf(const hb_engine *e, const work *w, const hb_block *sub, int ri, int scattered) {
  const hb_output *o = e->res[ri].o;
  if (o->kind == HB_OUT_SIGNAL) return (char *)w->partial + e->res[ri].offset;
  if (o->kind == HB_OUT_RAGGED) {
    hb_ragged *rg = &w->ragged[ri];
    rg->runpos = scattered ? w->runpos : NULL;
    rg->pos0 = sub->pos0;
    return rg;
  }
  if (o->nav_map.on) return w->navbuf[ri]; /* the block's region: the kernel places patterns (hb_nav_map) */
  return scattered ? w->navrun[ri] : (char *)w->navbuf[ri] + sub->pos0 * e->res[ri].item;
}

/* Kernel ki has an output in the current pass, or is between two passes
 * it has outputs in. */
static int kernel_in_pass(const hb_engine *e, int ki) {
  int last = 0;
  for (int j = 0; j < e->kernels[ki].nout; j++)
    if (e->res[e->kres[ki] + j].pass > last) last = e->res[e->kres[ki] + j].pass;
  return e->kpass[ki] && e->kpass[ki] <= e->pass && e->pass <= last;
}

/* What kernel ki reads of other kernels in this run (hb_kernel_use). */
static void bind_uses(const hb_engine *e, const work *w, const hb_block *sub, int ki, int scattered,
                      const void **uses) {
  for (int u = 0; u < e->kernels[ki].nuses; u++) {
    int ri = e->kuse[ki][u];
    uses[u] = e->res[ri].o->kind == HB_OUT_SIGNAL ? e->reduced[ri] : out_buf(e, w, sub, ri, scattered);
  }
}

/* Every preprocess step and every kernel of this pass on one run of
 * patterns, in the kernels' order; the run fits in the L2 cache, so only
 * the first step pays for memory traffic. */
static void run_sub(hb_engine *e, work *w, hb_block *sub, void *data, int scattered) {
  hb_pipeline_run(e, w->scratch, sub, data);
  void *outs[HB_MAX_RESULTS];
  const void *uses[HB_MAX_USES];
  const void *earlier[HB_MAX_OUTPUTS];
  for (int n = 0; n < e->nk; n++) {
    int ki = e->order[n];
    hb_kernel *k = &e->kernels[ki];
    if (!kernel_in_pass(e, ki)) continue; /* a global kernel, or another pass's */
    bind_uses(e, w, sub, ki, scattered, uses);
    sub->uses = uses;
    sub->pass = e->pass - e->kpass[ki] + 1;
    for (int j = 0; j < k->nout; j++) earlier[j] = e->reduced[e->kres[ki] + j];
    sub->earlier = earlier;
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
    for (int j = 0; j < k->nout; j++) {
      int ri = e->kres[ki] + j;
      outs[j] = e->res[ri].pass == e->pass ? out_buf(e, w, sub, ri, scattered) : NULL;
    }
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
    if (r->o->kind == HB_OUT_SIGNAL) r->k->def->init(r->k, r->iout, (char *)w->partial + r->offset, r->elems);
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
      for (size_t j = 0; j < sub.npos; j++) { /* each pattern's position in the block */
        size_t q = at + p + j, pos = 0, stride = 1;
        for (int d = nd - 1; d >= 0; d--) {
          pos += (off[d] - w->blk.start[d] + q % ext[d]) * stride;
          q /= ext[d];
          stride *= w->blk.count[d];
        }
        w->runpos[j] = pos;
      }
      run_sub(e, w, &sub, (unsigned char *)chunk + (at + p) * pattern_bytes, 1);
      for (size_t j = 0; j < sub.npos; j++)
        for (int i = 0; i < e->nres; i++) {
          size_t item = per_pattern(&e->res[i]) ? e->res[i].item : 0;
          if (item) memcpy((char *)w->navbuf[i] + w->runpos[j] * item, (char *)w->navrun[i] + j * item, item);
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
  for (int i = 0; e->nav_mapped && i < e->nres; i++) { /* bins add up their patterns: from zero, or partials */
    const hb_result *r = &e->res[i];
    if (!r->o->nav_map.on || r->pass != e->pass) continue;
    size_t n = hb_direct_block_positions(e, r, w->blk.start, w->blk.count);
    if (!r->o->nav_map.partial_bytes) memset(w->navbuf[i], 0, n * r->slot);
    for (size_t p = 0; r->o->nav_map.partial_bytes && p < n; p++)
      r->k->def->init(r->k, r->iout, (char *)w->navbuf[i] + p * r->slot, hb_output_elems(r->o));
  }
}

/* A block's changed scans with partials: each position's finished (at its
 * slot's start), then the items packed for the write. */
static void finish_block_partials(hb_engine *e, work *w) {
  for (int i = 0; e->nav_mapped && i < e->nres; i++) {
    const hb_result *r = &e->res[i];
    const hb_nav_map *m = &r->o->nav_map;
    if (!m->on || !m->partial_bytes || r->pass != e->pass) continue;
    uint64_t npatterns = 1; /* in each position: every bin is whole */
    for (int d = 0; d < e->in.nav_dim; d++) npatterns *= m->factor[d];
    size_t n = hb_direct_block_positions(e, r, w->blk.start, w->blk.count);
    for (size_t p = 0; p < n; p++) {
      char *slot = (char *)w->navbuf[i] + p * r->slot;
      r->k->def->finish(r->k, r->iout, slot, hb_output_elems(r->o), npatterns);
      memmove((char *)w->navbuf[i] + p * r->item, slot, r->item);
    }
  }
}

static void count_read(hb_engine *e, size_t positions, double seconds) {
  e->tm.seconds[HB_PH_READ] += seconds;
  e->tm.bytes[HB_PH_READ] += (double)positions * (double)e->sig_size * (double)hb_dtype_size(e->in.dtype);
}

/* Block b, or with `part` (e->reads_part) the chunks of it that some result
 * takes: the other positions are zeros, and no kernel places them. */
static int read_block(hb_engine *e, size_t b, work *w, int part) {
  setup_block(e, b, w);
  hb_chunk_filter only = {chunk_used, e, 0};
  double t0 = hb_now();
  HB_CALL(hb_input_read(&e->in, w->blk.start, w->blk.count, w->data, b, part ? &only : NULL));
  count_read(e, part ? only.positions : w->blk.npos, hb_now() - t0);
  return 0;
}

/* Read and run block b chunk by chunk (e->streaming): the kernels find each
 * chunk in cache, where a whole block would have gone out to memory and come
 * back.  Its time less the kernels' counts as reading. */
static int stream_block(hb_engine *e, size_t b, work *w) {
  setup_block(e, b, w);
  init_partials(e, w);
  w->seconds = 0;
  double t0 = hb_now();
  HB_CALL(hb_input_stream(&e->in, w->blk.start, w->blk.count, b, run_chunk, w));
  count_read(e, w->blk.npos, hb_now() - t0 - w->seconds);
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
                  e->rank == 0 && free_bytes < hb_output_space_needed(e),
                  last || e->stage.bytes >= HB_NAV_STAGE_BYTES || hb_ragged_full(e) || hb_direct_full(e)};
  HB_MPI(MPI_Allreduce(MPI_IN_PLACE, flags, 4, MPI_INT, MPI_MAX, e->comm));
  /* Parallel HDF5 cannot back out of a collective write that runs out of
   * space on one rank (the others wait in it forever): stop before that. */
  HB_CHECK(!flags[2], HB_EIO, e->partial, "the disk is (nearly) full: %.1f MB free, %.1f MB needed to go on safely%s",
           free_bytes / 1e6, hb_output_space_needed(e) / 1e6,
           e->committed ? "; the finished blocks are kept for --resume" : "");
  int commit = (flags[0] || flags[1]) && ckpt;
  /* staged results reach the file before a checkpoint says their blocks are done */
  if (flags[0] || flags[1] || flags[3]) {
    HB_CALL(hb_direct_flush(e));
    HB_CALL(hb_ragged_flush(e));
    HB_CALL(hb_output_flush_nav(e, last));
  }
  if (commit) {
    HB_CALL(hb_ckpt_commit(e));
    e->last_flush = hb_now();
  }
  if (!flags[0]) return 0;
  size_t done = 0, total = e->blocks_read;
  for (size_t b = 0; b < e->part.nblocks; b++) done += e->done[b];
  if (ckpt)
    HB_RAISE(HB_EINTERRUPTED, e->job->output_file,
             "stopped by signal %d after %zu of %zu blocks; they are saved in %s: run again with --resume to finish",
             flags[0], done, total, e->record);
  HB_RAISE(HB_ESTOPPED, e->job->output_file,
           "stopped by signal %d after %zu of %zu blocks; run.checkpoint is false, so nothing was kept", flags[0],
           done, total);
}

static int alloc_work(hb_engine *e, work w[2]) {
  size_t npos = e->part.max_block_pos;
  for (int s = 0; s < 2; s++) {
    w[s].e = e;
    if (!e->streaming) { /* a streamed block lives in the reader's chunk buffers */
      w[s].data = malloc(npos * e->sig_size * hb_dtype_size(e->in.dtype));
      HB_CHECK(w[s].data, HB_EINTERNAL, "memory", "cannot allocate a %zu-pattern block", npos);
    }
    for (int k = 0; k < 2 && e->nsteps; k++) {
      w[s].scratch[k] = malloc(e->sub_pos * e->step_bytes);
      HB_CHECK(w[s].scratch[k], HB_EINTERNAL, "memory", "out of memory for the preprocess steps");
    }
    if (e->streaming) {
      w[s].runpos = malloc(e->sub_pos * sizeof *w[s].runpos);
      HB_CHECK(w[s].runpos, HB_EINTERNAL, "memory", "out of memory");
    }
    HB_CALL(hb_ragged_alloc(e, &w[s].ragged));
    for (int i = 0; i < e->nres; i++)
      if (per_pattern(&e->res[i])) {
        w[s].navbuf[i] = malloc(npos * e->res[i].slot);
        HB_CHECK(w[s].navbuf[i], HB_EINTERNAL, "memory", "out of memory for a block of result '%s'",
                 e->res[i].o->name);
        if (e->streaming) {
          w[s].navrun[i] = malloc(e->sub_pos * e->res[i].item);
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
    free(w[s].scratch[0]), free(w[s].scratch[1]);
    free(w[s].runpos);
    hb_ragged_free(e, w[s].ragged);
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
  if (!e->streaming && !*ahead) HB_CALL(read_block(e, mine[c], cur, e->reads_part));
  *ahead = 0;
  if (e->sig_bytes) {
    cur->partial = hb_tree_buffer(&e->tree);
    HB_CHECK(cur->partial, HB_EINTERNAL, "memory", "out of memory");
  }
  int ok = 1;
  if (e->streaming) ok = !(rc = stream_block(e, mine[c], cur));
  else {
    pthread_t worker;
    int started = !e->serial && !pthread_create(&worker, NULL, run_kernels, cur);
    if (!started) run_kernels(cur); /* no thread: still correct, just serial */
    if (c + 1 < n) *ahead = !(rc = read_block(e, mine[c + 1], &w[(c + 1) % 2], e->reads_part));
    if (started) pthread_join(worker, NULL);
  }
  if (ok && !rc) finish_block_partials(e, cur);
  e->tm.seconds[HB_PH_KERNELS] += cur->seconds;
  if (ok && cur->partial) hb_tree_push(&e->tree, 0, cur->blk.index, cur->partial);
  else if (cur->partial) hb_tree_release(&e->tree, cur->partial);
  cur->partial = NULL;
  if (ok && !rc) rc = hb_direct_stage(e, &cur->blk, cur->navbuf);
  if (ok && !rc) rc = hb_ragged_stage(e, &cur->blk, cur->ragged);
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
  e->streaming = e->serial && hb_input_streams(&e->in) && !e->nav_mapped;
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
      /* a rank whose block-by-block results fill their budget writes them now */
      if (lockstep || hb_now() - t0 >= window || hb_direct_full(e) || hb_ragged_full(e)) break;
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

/* The end of a pass: the tree's root on rank 0, `finish`ed, and this
 * pass's reduced results written.  Kernels of a later pass that read one
 * get it on every rank (e->reduced). */
static int reduce(hb_engine *e) {
  double t0 = hb_now();
  void *root = NULL;
  int rc = e->sig_bytes ? hb_tree_reduce(&e->tree, e->comm, &root) : 0;
  if (!rc && root)
    for (int i = 0; i < e->nres; i++) {
      hb_result *r = &e->res[i];
      if (r->o->kind == HB_OUT_SIGNAL && r->pass == e->pass && r->k->def->finish)
        r->k->def->finish(r->k, r->iout, (char *)root + r->offset, r->elems, hb_input_nav_size(&e->in));
    }
  e->tm.seconds[HB_PH_REDUCE] += hb_now() - t0;
  HB_CALL(hb_agree(e->comm, rc));
  t0 = hb_now();
  rc = e->sig_bytes ? hb_output_write_signal(e, root) : 0;
  e->tm.seconds[HB_PH_WRITE] += hb_now() - t0;
  HB_CALL(hb_agree(e->comm, rc));
  for (int i = 0; i < e->nres && e->pass < e->npasses; i++) {
    hb_result *r = &e->res[i];
    if (r->o->kind != HB_OUT_SIGNAL || r->pass != e->pass) continue;
    size_t bytes = r->elems * hb_dtype_size(r->o->dtype);
    e->reduced[i] = malloc(bytes ? bytes : 1);
    rc = e->reduced[i] ? 0 : HB_FAIL(HB_EINTERNAL, "memory", "out of memory");
    if (!rc && e->rank == 0) memcpy(e->reduced[i], (char *)root + r->offset, bytes);
    HB_CALL(hb_agree(e->comm, rc));
    HB_MPI(MPI_Bcast(e->reduced[i], (int)bytes, MPI_BYTE, 0, e->comm));
  }
  return 0;
}

/* The start of a pass after the first: each kernel with outputs in it and
 * an earlier pass of its own refines them (a histogram's bins), and the
 * deferred results' datasets are made. */
static int start_pass(hb_engine *e) {
  int rc = 0;
  for (int ki = 0; ki < e->nk && !rc; ki++) {
    hb_kernel *k = &e->kernels[ki];
    if (!k->def->refine || !kernel_in_pass(e, ki) || e->kpass[ki] == e->pass) continue;
    const void *earlier[HB_MAX_OUTPUTS];
    for (int j = 0; j < k->nout; j++) earlier[j] = e->reduced[e->kres[ki] + j];
    rc = k->def->refine(k, earlier);
  }
  HB_CALL(hb_agree(e->comm, rc));
  return hb_output_create_deferred(e, e->pass);
}

/* A resume in a later pass: the deferred results of the passes before are
 * in the checkpoint, but their shape comes from `refine`, which runs again
 * on the hidden results the checkpoint kept, before the stored chunks are
 * copied into their datasets. */
static int refine_done_passes(hb_engine *e) {
  int rc = 0;
  for (int ki = 0; ki < e->nk && !rc; ki++) {
    hb_kernel *k = &e->kernels[ki];
    int done = 0;
    for (int j = 0; j < k->nout; j++) done |= k->out[j].deferred && e->res[e->kres[ki] + j].pass < e->pass;
    if (!k->def->refine || !done) continue;
    const void *earlier[HB_MAX_OUTPUTS];
    for (int j = 0; j < k->nout; j++) earlier[j] = e->reduced[e->kres[ki] + j];
    rc = k->def->refine(k, earlier);
  }
  HB_CALL(hb_agree(e->comm, rc));
  return hb_output_create_deferred(e, e->pass - 1);
}

/* Between passes: every block is to do again, with a fresh tree. */
static int next_pass(hb_engine *e) {
  memset(e->done, 0, e->part.nblocks);
  hb_work_free(&e->work);
  hb_tree_free(&e->tree);
  hb_tree_init(&e->tree, e->sig_bytes, merge_partials, e);
  return hb_agree(e->comm, assign_blocks(e));
}

/* ---- global (multi-pass) kernels ---------------------------------------- */

int hb_global_read(hb_global *g, size_t b, hb_block *blk, void *buf) {
  hb_engine *e = g->engine;
  work w = {.e = e, .data = buf};
  HB_CALL(read_block(e, b, &w, 0)); /* a global kernel reads every pattern */
  /* the pipeline changes nothing's size here (plan_kernels): in place */
  void *none[2] = {NULL, NULL};
  for (size_t p = 0; p < w.blk.npos && e->nsteps; p++) {
    hb_block one = w.blk;
    one.npos = 1;
    hb_pipeline_run(e, none, &one, (char *)buf + p * e->sig_size * hb_dtype_size(e->in.dtype));
  }
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
  hb_pipeline_free(e);
  free(e->kernels);
  free(e->kres);
  free(e->kfused);
  free(e->order);
  free(e->kpass);
  free(e->kuse);
  for (int i = 0; i < HB_MAX_RESULTS; i++) free(e->reduced[i]);
  free(e->done);
  hb_work_free(&e->work);
  hb_output_free_stage(e);
  hb_direct_free(e);
  hb_chunk_table_free(&e->stored);
  hb_tree_free(&e->tree);
  hb_input_close(&e->in);
}

/* A resumed run, before its first block: the checkpoint's incomplete and
 * stored result chunks go into the fresh .partial, and a checkpoint of the
 * new file is committed before the old one is removed. */
static int restore(hb_engine *e) {
  HB_CALL(hb_ckpt_restore(e));
  HB_CALL(hb_output_read_reduced(e)); /* for the kernels of this pass that read an earlier pass's */
  HB_CALL(hb_ckpt_commit(e));
  if (e->rank == 0) unlink(e->old_store);
  return 0;
}

int hb_engine_run(MPI_Comm comm, hb_job *job, hb_run_mode mode) {
  hb_engine *e = calloc(1, sizeof *e);
  if (!e) return hb_agree(comm, HB_EINTERNAL);
  e->comm = comm;
  e->job = job;
  hb_hdf5_deflate_set_effort(job->gzip_small);
  e->ofile = -1;
  e->store_fd = e->lock_fd = -1;
  e->pass = 1;
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
  if (!rc && e->resumed.found && e->pass > 1) rc = refine_done_passes(e);
  if (!rc) rc = hb_nav_prepare(e);
  if (!rc && e->resumed.found) rc = restore(e);
  hb_ckpt_free_resumed(e);
  e->tm.seconds[HB_PH_OPEN] = hb_now() - t0;
  for (int first = e->pass; !rc && e->nblock_kernels && e->pass <= e->npasses; e->pass++) {
    if (e->pass > first) {
      rc = next_pass(e);
      /* the earlier passes' results are in the file: a checkpoint keeps them */
      if (!rc && job->checkpoint) rc = hb_ckpt_commit(e);
    }
    if (!rc && e->pass > 1) rc = start_pass(e);
    if (!rc) rc = block_loop(e);
    /* a long global pass (decomposition) should not lose the last pass */
    if (!rc && e->pass == e->npasses && job->checkpoint && e->nk > e->nblock_kernels) rc = hb_ckpt_commit(e);
    if (!rc) rc = reduce(e);
  }
  if (!rc) rc = global_pass(e);
  if (!rc) rc = hb_output_finish(e);
  if (rc) hb_output_abort(e);
  teardown(e);
  free(e);
  return rc;
}
