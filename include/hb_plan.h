/* Partition of the navigation space into chunk-aligned blocks, and the
 * rank-count-independent reduction tree over block numbers. */
#ifndef HB_PLAN_H
#define HB_PLAN_H

#include <mpi.h>
#include <stddef.h>
#include "hb_input.h"

typedef struct {
  int nd;                     /* navigation dimensions */
  hsize_t shape[HB_MAXDIM];   /* navigation shape */
  hsize_t chunk[HB_MAXDIM];   /* chunk extent along each navigation axis */
  hsize_t bchunks[HB_MAXDIM]; /* chunks per block along each axis */
  hsize_t bgrid[HB_MAXDIM];   /* blocks along each axis */
  size_t nblocks;
  size_t max_block_pos;       /* patterns in the largest block */
  hsize_t rblocks[HB_MAXDIM]; /* blocks per chunk of a navigation-shaped result, along each axis */
  hsize_t rgrid[HB_MAXDIM];   /* result chunks along each axis */
  size_t nrchunks;
} hb_partition;

/* Blocks are rectangles of whole chunks, filled from the last navigation axis
 * backwards until a block holds about `target_pos` patterns (at least one
 * chunk).  Numbered in C order over the block grid: nothing depends on the
 * number of ranks. */
void hb_partition_init(hb_partition *p, int nd, const hsize_t *shape,
                       const hsize_t *chunk, size_t target_pos);
/* Patterns per block for run.block = auto: about HB_BLOCK_TARGET_BYTES of data. */
#define HB_BLOCK_TARGET_BYTES ((size_t)8 << 20)
size_t hb_partition_auto_target(size_t bytes_per_pattern);
/* Block b's first position and extent; returns its number of positions. */
size_t hb_partition_block(const hb_partition *p, size_t b, hsize_t *start, hsize_t *count);
/* A whole block's extent along navigation axis d, at most the axis. */
hsize_t hb_partition_extent(const hb_partition *p, int d);

/* Chunks of the navigation-shaped results: rectangles of whole blocks, filled
 * like blocks (last axis first) until a chunk holds about `target_pos`
 * positions; the whole result when it is smaller, as HyperSpy's own chunk
 * rule would store an image.  hb_partition_init sets one block per chunk.
 * Result chunks are numbered in C order over rgrid. */
void hb_partition_result_chunks(hb_partition *p, size_t target_pos);
hsize_t hb_partition_result_extent(const hb_partition *p, int d);
size_t hb_partition_result_positions(const hb_partition *p); /* in one whole result chunk */
size_t hb_partition_result_chunk_of(const hb_partition *p, size_t block);
/* Result chunk c's first position; its blocks go to `blocks` (if not NULL,
 * room for the product of rblocks) in C order.  Returns how many it has. */
size_t hb_partition_result_chunk(const hb_partition *p, size_t c, hsize_t *start, size_t *blocks);
/* Greatest common divisor (gcd(a, 0) = a): block and chunk alignment. */
hsize_t hb_gcd(hsize_t a, hsize_t b);
/* Contiguous, balanced ranges: rank r gets [first, end). */
void hb_partition_range(size_t nblocks, int rank, int size, size_t *first, size_t *end);

/* The single pass's work: every block not already done (by a checkpoint),
 * dealt round robin in groups of G consecutive blocks of the remaining list.
 * Neighbouring blocks cost alike (how well chunks compress follows the
 * specimen: 10 KB against 100 KB per chunk across the benchmark's scan), so
 * every rank gets a similar mix; one contiguous range each left one rank with
 * the cheap half.  G is a power of two (groups are whole subtrees of the
 * reduction tree, so each merges locally) and large enough that a rank holds
 * about 8 groups, whatever the input size: the tree stack, and memory, stay
 * flat.  The blocks left over after whole rounds of groups are dealt again
 * with groups half as large, and so on down to single blocks, so that no
 * rank gets more than one block more than another (with whole groups only,
 * 312 blocks in groups of 32 split 160/152); that leaves at most log2(G)
 * more tree nodes per rank.  Every rank computes the same split from the
 * same `done` bytes. */
size_t hb_deal_group(size_t left, int size);            /* G */
size_t hb_deal_count(size_t left, int size, int rank);  /* blocks rank gets */
int hb_deal_owner(size_t k, size_t left, int size);     /* who gets the k-th of `left` */

/* Pairwise tree over block numbers.  Leaves are pushed in block order; two
 * siblings are merged as soon as both exist; the leftover stack (the binary
 * digits of the block count) is folded right to left.  Each rank feeds its
 * contiguous range, then rank 0 receives the ranks' stacks in rank order, so
 * the sequence of merges — and every floating-point result — is the same for
 * any number of ranks. */
typedef void (*hb_merge_fn)(void *ctx, void *acc, const void *other);

typedef struct {
  int level;
  size_t index;
  void *buf;
} hb_tree_node;

typedef struct {
  size_t bytes;
  hb_merge_fn merge;
  void *ctx;
  hb_tree_node *stack; /* grows: blocks with gaps between them (a resumed run) keep more nodes */
  int depth, cap;
  int failed;          /* out of memory while pushing; reported by hb_tree_reduce */
  void *spare[72];     /* released buffers, reused by hb_tree_buffer */
  int nspare;
} hb_tree;

void hb_tree_init(hb_tree *t, size_t bytes, hb_merge_fn merge, void *ctx);
/* A buffer to fill for the next leaf (reused; NULL if out of memory). */
void *hb_tree_buffer(hb_tree *t);
void hb_tree_push(hb_tree *t, int level, size_t index, void *buf);
/* Give back a buffer from hb_tree_buffer that will not be pushed. */
void hb_tree_release(hb_tree *t, void *buf);
/* Collective: combine every rank's stack on rank 0 over a binomial tree of
 * ranks.  Each receiver sorts the nodes by the first block they cover and
 * pushes them again, so any split of the blocks among ranks (contiguous or
 * not, plus nodes seeded from a checkpoint anywhere) gives the same merges.
 * On rank 0 *result is the root buffer (owned by the tree), or NULL if there
 * were no blocks. */
int hb_tree_reduce(hb_tree *t, MPI_Comm comm, void **result);
void hb_tree_free(hb_tree *t);

#endif
