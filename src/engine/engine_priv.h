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
#include "chunkwrite.h"

#define HB_MAX_RESULTS 256
#define HB_MAX_FUSED 16      /* kernel families planned together (hb_fused) */

/* How a per-pattern result reaches the file (docs/architecture.md, "Results"). */
typedef enum {
  HB_PATH_NONE,     /* not per-pattern: SIGNAL (rank 0 after the reduction), GLOBAL (the kernel) */
  HB_PATH_GATHERED, /* small items: chunks of several blocks, assembled by an owner rank (navwrite.c) */
  HB_PATH_DIRECT,   /* large items: chunks inside blocks, written by the rank that computed them (directwrite.c) */
  HB_PATH_RAGGED,   /* lists: a side file while running, HyperSpy's ragged layout at the end (raggedwrite.c) */
} hb_result_path;

/* One result of one kernel. */
typedef struct {
  hb_kernel *k;
  int iout;
  const hb_output *o;
  hb_result_path path;
  size_t item;    /* per-pattern kinds: bytes of one item (hb_output_item_bytes) */
  size_t slot;    /* ...and of one position in a block's buffer (hb_output_slot_bytes) */
  int nav;        /* per-pattern kinds: navigation axes in the file (fewer: hb_nav_map's dropped) */
  int pass;       /* the pass that fills it (its kernel's first, plus the output's pass - 1) */
  size_t elems;   /* HB_OUT_SIGNAL: elements of the partial */
  size_t offset;  /* HB_OUT_SIGNAL: byte offset in the tree's node buffer */
  int ndim;       /* the dataset: navigation axes, then the item's (per-pattern kinds) */
  hsize_t shape[HB_MAXDIM], chunk[HB_MAXDIM];
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
  void **chunk_buf;             /* [chunk * results + j]: incomplete chunks this rank assembles (navwrite.c) */
  size_t nchunk_buf;
  size_t pending;               /* chunks in chunk_buf */
  int *owner;                   /* [chunk * results + j]: the rank that assembles it (navwrite.c) */
} hb_navstage;

/* Per-pattern results written block by block (directwrite.c): the blocks
 * finished since the last write, and their buffers, taken from the work
 * slots (which get others from the pool). */
typedef struct {
  size_t *blocks, nblocks, cap;
  void **bufs;                  /* [k * HB_MAX_RESULTS + i]: result i's buffer of staged block k */
  void **pool[HB_MAX_RESULTS];  /* per result: free block buffers */
  size_t npool[HB_MAX_RESULTS];
  size_t bytes;                 /* staged */
  size_t budget;                /* a rank ends its window when its staged bytes reach this */
} hb_directstage;

/* One RAGGED result's lists of the block a work slot holds: entries in the
 * order the kernel gave them, put in position order when staged. */
struct hb_ragged {
  size_t rec_bytes;
  const size_t *runpos;         /* a streamed run's patterns' positions in the block, or NULL: */
  size_t pos0;                  /* ...the run starts at this position */
  uint64_t *pos;                /* per entry: the pattern's position in the block */
  uint32_t *count;              /* per entry: its records */
  size_t n, cap;
  unsigned char *recs;
  size_t bytes, recs_cap;
  int failed;                   /* out of memory in hb_ragged_add */
};

/* Ragged results on their way to <output>.partial.ragged, a side file every
 * rank appends to (raggedwrite.c). */
typedef struct {
  unsigned char *buf;           /* this rank's staged records since the last flush */
  size_t bytes, cap;
  uint64_t *dir;                /* (block, result, offset, bytes) of every record this rank wrote */
  size_t ndir, dir_cap;
  MPI_File fh;
  int open;
  uint64_t end;                 /* the side file's length: the same on every rank */
} hb_raggedstage;

/* What a committed checkpoint held, from hb_ckpt_load until
 * hb_ckpt_restore has put it back (checkpoint.c). */
typedef struct {
  int found;                    /* a checkpoint was read */
  int finished;                 /* ...and the output it describes is complete */
  long long store_dev, store_ino; /* the .partial it describes */
  hb_chunk_row *chunks;         /* every stored result chunk */
  uint64_t *ragged_dir;         /* the ragged side file's records (4 per row), rank 0 only */
  size_t nragged_dir;
  uint64_t ragged_end;          /* its committed length */
  size_t nchunks;
  long long *pending_ids;       /* (result, chunk, byte offset) per incomplete chunk */
  unsigned char *pending;
  size_t npending, pending_bytes;
} hb_resumed;

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
  int streaming;           /* ...and read it so, one chunk at a time (serial ranks) */
  int nav_mapped;          /* a result crops or bins the scan (hb_nav_map): blocks align to its bins, no
                              streaming */
  int reads_part;          /* this pass only crops, thins or bins the scan: blocks and chunks that no
                              result takes are not read (assign_blocks in engine.c) */
  size_t blocks_read;      /* ...so this pass reads these of the part's blocks */

  int nk;
  int nblock_kernels;      /* kernels with a per-block function */
  hb_kernel *kernels;
  int *kres;               /* per kernel: its first result's index in res */
  int *kfused;             /* per kernel: its family's index in fused, or -1 */
  int *order;              /* kernels in the order they run: each after what it reads */
  int *kpass;              /* per kernel: its pass (1, 2, ...; 0: a global kernel) */
  int (*kuse)[HB_MAX_USES];/* per kernel and use slot: the used result's index in res */
  int npasses, pass;       /* passes over the data, and the current one */
  void *reduced[HB_MAX_RESULTS]; /* SIGNAL results of finished passes, for the kernels that read them */

  /* the preprocess pipeline (pipeline.c) */
  int nsteps;
  hb_transform *steps;
  hb_stream stream;        /* what the kernels see */
  size_t step_bytes;       /* the largest pattern along the chain, in bytes */
  int nfused;
  hb_fused fused[HB_MAX_FUSED];
  int nres;
  hb_result res[HB_MAX_RESULTS];
  size_t sig_bytes;        /* all signal-shaped partials, one tree node */
  hb_tree tree;

  /* the single pass's blocks: all of them, less those a checkpoint holds */
  unsigned char *done;     /* per block: finished (this run or the checkpoint) */
  hb_worklists work;       /* every rank's blocks still to do (balance.h) */
  size_t remaining;        /* blocks still to do at the start, all ranks */
  int committed;           /* <output>.checkpoint describes work of this run or the one it resumed */
  int ncommits;            /* checkpoints this run committed (provenance) */
  int partial_ours;        /* this run created the .partial (so a failure may remove it) */
  double last_flush;
  hb_navstage stage;
  hb_directstage direct;
  int ndirect;             /* results on HB_PATH_DIRECT */
  hb_raggedstage ragged;
  int nragged;             /* results on HB_PATH_RAGGED */
  hb_chunk_table stored;   /* navigation result chunks this rank stored, and where */
  hb_resumed resumed;
  long long store_dev, store_ino; /* the .partial's identity, for the checkpoint */
  int store_fd;            /* the .partial, read-only: fsync before a commit */
  int lock_fd;             /* rank 0: <output>.lock, held for the run */

  char partial[PATH_MAX + 16];     /* <output>.partial: the output being written */
  char old_store[PATH_MAX + 16];   /* <output>.partial.old: the one a resume copies from */
  char record[PATH_MAX + 16];      /* <output>.checkpoint */
  char record_tmp[PATH_MAX + 16];  /* <output>.checkpoint.tmp: the next one, until committed */
  char lockpath[PATH_MAX + 16];    /* <output>.lock */
  char ragged_side[PATH_MAX + 16]; /* <output>.partial.ragged: the ragged results' records while running */
  char ragged_out[PATH_MAX + 32];  /* <output stem>.ragged.hspy: where they end up */
  char ragged_tmp[PATH_MAX + 48];  /* ...written under this name first */
  hid_t ofile;
  hb_timers tm;
  double bytes_read;       /* this rank */
  struct {                 /* the run as the provenance tells it, the same on every rank (hb_output_finish) */
    hb_stat3 sec[HB_PH_COUNT];
    double bytes[HB_PH_COUNT];
    double wall;
    char slurm_job[64];
    int streamed_ranks;
  } summary;
} hb_engine;

/* engine.c */
/* The blocks this pass reads: all, or those some result takes positions of
 * when every result of the pass crops, thins or bins the scan. */
size_t hb_blocks_to_read(const hb_engine *e);

/* pipeline.c */
int hb_pipeline_plan(hb_engine *e);       /* local: every preprocess step; e->stream */
int hb_pipeline_changes_data(const hb_engine *e); /* the kernels' stream is not the file's */
/* The chain on one run: returns where the kernels' data is (data itself, or
 * one of the two scratch buffers of step_bytes * run length). */
void *hb_pipeline_run(const hb_engine *e, void *const scratch[2], hb_block *sub, void *data);
void hb_pipeline_free(hb_engine *e);
extern const hb_kernel_def hb_transform_kernel; /* a transform named as a kernel */

/* checkpoint.c */
void hb_ckpt_install_signals(void);
int hb_ckpt_interrupted(void);            /* the signal that asked us to stop, or 0 */
void hb_ckpt_paths(hb_engine *e);         /* partial, old_store, record, record_tmp */
/* A hash of the job text, its --set overrides (but run.profile) and the
 * input's size and modification time: what a resume must find unchanged. */
void hb_ckpt_identity(const hb_engine *e, char *out, size_t n);
/* Collective: sync the .partial, write the checkpoint, rename it into place. */
int hb_ckpt_commit(hb_engine *e);
/* Collective (--resume): read <output>.checkpoint if there is one: done
 * blocks, tree nodes, and into e->resumed what hb_ckpt_restore needs.  No
 * checkpoint: start over, saying so.  A checkpoint of another job: refused. */
int hb_ckpt_load(hb_engine *e);
int hb_ckpt_set_aside(hb_engine *e);      /* rank 0: the checkpoint's .partial to <output>.partial.old */
/* Collective, in the new .partial: the checkpoint's incomplete chunks to
 * their owners, its stored chunks copied from <output>.partial.old. */
int hb_ckpt_restore(hb_engine *e);
void hb_ckpt_free_resumed(hb_engine *e);
int hb_sync_dir_of(const char *path);     /* fsync the folder holding path */

/* output.c */
/* Collective: overwrite, folder and same-file checks; create == 1 makes
 * missing folders. */
int hb_output_check(hb_engine *e, int create);
/* Collective: rank 0 takes <output>.lock for the run, or refuses (another
 * run writes the same output). */
int hb_output_lock(hb_engine *e);
void hb_output_unlock(hb_engine *e);
int hb_output_plan_results(hb_engine *e); /* local: each result's path, dataset shape and chunks */
/* collective: the datasets of the deferred results of passes up to `upto` not made yet */
int hb_output_create_deferred(hb_engine *e, int upto);
int hb_output_create(hb_engine *e);       /* collective: a fresh <file>.partial and every dataset */
int hb_output_write_signal(hb_engine *e, void *root); /* collective: this pass's reduced results */
int hb_output_read_reduced(hb_engine *e);  /* collective: earlier passes' reduced results, read back */
/* hb_global_write and hb_global_group (hb_kernel.h) are in output.c too. */
int hb_output_finish(hb_engine *e);       /* provenance, close, previews, rename */
void hb_output_abort(hb_engine *e);       /* after an agreed failure: close and remove the .partial */
void hb_preview_path(const hb_engine *e, const char *result, char *buf, size_t n);
double hb_output_free_space(const hb_engine *e);   /* bytes free where the .partial is */
double hb_output_space_needed(const hb_engine *e); /* bytes to keep free while running */

/* directwrite.c */
/* The chunk of a direct result: HyperSpy's rule, with the navigation
 * extents cut to divisors of the block's, so that no chunk spans blocks. */
void hb_direct_chunk(const hb_engine *e, const hb_result *r, hsize_t *chunk);
/* A block's region of result r's navigation (the block's own, or its part
 * of a cropped or binned scan, hb_nav_map); returns its positions (0: it holds no whole bin). */
size_t hb_direct_block_region(const hb_engine *e, const hb_result *r, hsize_t *start, hsize_t *count);
size_t hb_direct_block_positions(const hb_engine *e, const hb_result *r, const hsize_t *start, const hsize_t *count);
/* Result r's dataset has input navigation axis d: not when a changed scan
 * reduces it (hb_nav_map), nor the size-1 axis of a single pattern under
 * an item of its own (an FFT of one image is an image, as in HyperSpy). */
int hb_result_has_nav_axis(const hb_engine *e, const hb_result *r, int d);
/* Local: stage block blk's direct results; bufs[i] (result i's block
 * buffer) is taken and replaced by a free one. */
int hb_direct_stage(hb_engine *e, const hb_block *blk, void **bufs);
int hb_direct_full(const hb_engine *e);   /* staged bytes reached the budget: end the window */
int hb_direct_flush(hb_engine *e);        /* collective: write every staged block */
void hb_direct_free(hb_engine *e);

/* output.c: original_metadata/hyperbatch in `group`, from e->summary */
int hb_output_write_provenance(hb_engine *e, hid_t group);
/* The input's metadata into each of n result groups (src/output/carry.c). */
int hb_output_carry_metadata(hb_engine *e, const hid_t *groups, int n);
/* A binned scan of EDS or EELS data: its acquisition times times the bin size, as HyperSpy's rebin. */
int hb_output_scale_times(const hb_result *r);

/* raggedwrite.c */
int hb_ragged_alloc(hb_engine *e, hb_ragged **slots);   /* a work slot's lists, per result */
void hb_ragged_free(hb_engine *e, hb_ragged *slots);
int hb_ragged_stage(hb_engine *e, const hb_block *blk, hb_ragged *slots); /* local: a finished block's lists */
int hb_ragged_full(const hb_engine *e);                 /* staged records reached HB_NAV_STAGE_BYTES */
int hb_ragged_open(hb_engine *e);                       /* collective: the side file (a resume: cut to the checkpoint) */
int hb_ragged_flush(hb_engine *e);                      /* collective: append every rank's staged records */
int hb_ragged_sync(hb_engine *e);                       /* collective: on disk, before a commit */
int hb_ragged_finish(hb_engine *e);                     /* rank 0: the ragged layout, in ragged_tmp */
void hb_ragged_close(hb_engine *e);

/* navwrite.c */
int hb_output_stage_nav(hb_engine *e, const hb_block *blk, void *const *bufs); /* local */
size_t hb_nav_bytes_per_position(const hb_engine *e); /* of all navigation-shaped results together */
/* Collective: write the staged results (the chunks they complete); `last`:
 * no block is left to do. */
int hb_output_flush_nav(hb_engine *e, int last);
void hb_output_free_stage(hb_engine *e);
/* The navigation results: which[j] is the j-th one's index in e->res. */
int hb_nav_results(const hb_engine *e, int *which);
/* Collective, before the first block: write path and chunk owners. */
int hb_nav_prepare(hb_engine *e);
int hb_nav_owner(const hb_engine *e, size_t chunk, int ri); /* result ri's chunk; -1: nothing left to do in it */
/* Local: take an incomplete chunk of result j from a checkpoint. */
int hb_nav_hold(hb_engine *e, int ri, size_t chunk, const void *bytes);
/* Collective: store chunks copied from an earlier .partial (checkpoint.c). */
int hb_nav_copy_chunks(hb_engine *e, const hb_chunk_row *rows, size_t n,
                       int (*fetch)(void *ctx, size_t k, void *buf), void *ctx);

#endif
