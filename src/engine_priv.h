/* State shared by engine.c (plan and block loop), output.c (the results
 * file, provenance and previews) and navwrite.c.  Private to the engine. */
#ifndef HB_ENGINE_PRIV_H
#define HB_ENGINE_PRIV_H

#include <limits.h>
#include <mpi.h>

#include "hb_engine.h"
#include "hb_hspy.h"
#include "hb_job.h"
#include "hb_kernel.h"
#include "hb_plan.h"
#include "hb_timing.h"
#include "balance.h"

#define HB_MAX_RESULTS 256
#define HB_MAX_FUSED 16      /* kernel families planned together (hb_fused) */

/* One result of one kernel. */
typedef struct {
  hb_kernel *k;
  int iout;
  const hb_output *o;
  size_t offset;  /* HB_OUT_SIGNAL: byte offset in the tree's node buffer */
  hid_t group, dset;
} hb_result;

/* Navigation-shaped results of finished blocks, waiting to be written. */
#define HB_NAV_STAGE_BYTES ((size_t)16 << 20)
typedef struct {
  void *values[HB_MAX_RESULTS]; /* per navigation-shaped result, in staging order */
  size_t npos, pos_cap;
  size_t *blocks, nblocks, blocks_cap;
  size_t bytes;
  int checked, fit;             /* whole-chunk writes: decided at the first flush */
  int gzip[HB_MAX_RESULTS];     /* per result: shuffle + deflate */
  void **chunk_buf;             /* [chunk * results + j]: chunks this rank assembles (navwrite.c) */
  size_t nchunk_buf;
  size_t pending;               /* chunks in chunk_buf */
  unsigned char *resumed;       /* per block: done by the run a resume continues, NULL if none */
  int *owner;                   /* [chunk * results + j]: the rank that assembles it (navwrite.c) */
} hb_navstage;

typedef struct {
  MPI_Comm comm;
  int rank, size;
  hb_job *job;
  double t_start;

  hb_input in;
  hb_partition part;
  size_t first, end;       /* this rank's blocks [first, end) */
  size_t sig_size;         /* pixels per pattern */
  size_t sub_pos;          /* patterns per cache-sized run inside a block */
  int serial;              /* one CPU: kernels inline, no worker thread */
  int chunk_order;         /* kernels take a block chunk by chunk (run_region in engine.c) */
  int stream;              /* ...and read it so, one chunk at a time (serial ranks) */

  int nk, np;
  int nblock_kernels;      /* kernels with a per-block function */
  hb_kernel *kernels;
  int *kres;               /* per kernel: its first result's index in res */
  int *kfused;             /* per kernel: its family's index in fused, or -1 */
  int nfused;
  hb_fused fused[HB_MAX_FUSED];
  hb_prep *preps;
  int nres;
  hb_result res[HB_MAX_RESULTS];
  size_t sig_bytes;        /* all signal-shaped partials, one tree node */
  hb_tree tree;

  /* the single pass's blocks: all of them, less those a checkpoint holds */
  unsigned char *done;     /* per block: finished (this run or the checkpoint) */
  hb_worklists work;       /* every rank's blocks still to do (balance.h) */
  size_t remaining;        /* blocks still to do at the start, all ranks */
  hid_t ckpt;              /* checkpoint group in the .partial, -1 if none */
  int ckpt_saved;          /* the .partial holds a usable checkpoint */
  int partial_ours;        /* this run created the .partial (so a failure may remove it) */
  double last_flush;
  hb_navstage stage;

  char partial[PATH_MAX + 16];
  hid_t ofile;
  hb_timers tm;
  double bytes_read;       /* this rank */
} hb_engine;

/* checkpoint.c */
void hb_ckpt_install_signals(void);
int hb_ckpt_interrupted(void);            /* the signal that asked us to stop, or 0 */
int hb_ckpt_create(hb_engine *e);         /* collective, in a new .partial */
int hb_ckpt_flush(hb_engine *e);          /* collective: done blocks + tree nodes, then H5Fflush */
int hb_ckpt_resume(hb_engine *e);         /* collective: open the .partial, check it, load it */
int hb_ckpt_remove(hb_engine *e);         /* collective, before the finished file is closed */

/* output.c */
/* Collective: overwrite and folder checks; create == 1 makes missing folders. */
int hb_output_check(hb_engine *e, int create);
int hb_output_create(hb_engine *e);       /* collective: <file>.partial and every dataset */
int hb_output_write_signal(hb_engine *e, void *root);
/* hb_global_write and hb_global_group (hb_kernel.h) are in output.c too. */
int hb_output_finish(hb_engine *e);       /* provenance, close, previews, rename */
void hb_output_abort(hb_engine *e);       /* after an agreed failure: close and remove the .partial */
void hb_preview_path(const hb_engine *e, const char *result, char *buf, size_t n);
double hb_output_free_space(const hb_engine *e);   /* bytes free where the .partial is */
double hb_output_space_needed(const hb_engine *e); /* bytes to keep free while running */

/* navwrite.c */
int hb_output_stage_nav(hb_engine *e, const hb_block *blk, void *const *bufs); /* local */
size_t hb_nav_bytes_per_position(const hb_engine *e); /* of all navigation-shaped results together */
/* Collective: write the staged results; `partial`: a checkpoint follows,
 * store incomplete result chunks too; `last`: no block is left to do. */
int hb_output_flush_nav(hb_engine *e, int partial, int last);
void hb_output_free_stage(hb_engine *e);

#endif
