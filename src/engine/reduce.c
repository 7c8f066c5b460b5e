/* The pairwise reduction tree over block numbers (see hb_plan.h). */
#include <stdlib.h>
#include <string.h>

#include "hb_error.h"
#include "hb_plan.h"

void hb_tree_init(hb_tree *t, size_t bytes, hb_merge_fn merge, void *ctx) {
  memset(t, 0, sizeof *t);
  t->bytes = bytes;
  t->merge = merge;
  t->ctx = ctx;
}

void *hb_tree_buffer(hb_tree *t) {
  if (t->nspare) return t->spare[--t->nspare];
  return malloc(t->bytes ? t->bytes : 1);
}

void hb_tree_release(hb_tree *t, void *buf) {
  if (t->nspare < (int)(sizeof t->spare / sizeof t->spare[0])) t->spare[t->nspare++] = buf;
  else free(buf);
}

static int grow(hb_tree *t) {
  if (t->depth < t->cap) return 0;
  int cap = t->cap ? 2 * t->cap : 64;
  hb_tree_node *more = realloc(t->stack, (size_t)cap * sizeof *more);
  if (!more) return -1;
  t->stack = more;
  t->cap = cap;
  return 0;
}

void hb_tree_push(hb_tree *t, int level, size_t index, void *buf) {
  if (grow(t)) {
    t->failed = 1;
    free(buf);
    return;
  }
  t->stack[t->depth++] = (hb_tree_node){level, index, buf};
  /* merge while the two top nodes are left and right children of one parent */
  while (t->depth >= 2) {
    hb_tree_node *l = &t->stack[t->depth - 2], *r = &t->stack[t->depth - 1];
    if (l->level != r->level || (l->index & 1) || r->index != l->index + 1) break;
    t->merge(t->ctx, l->buf, r->buf);
    hb_tree_release(t, r->buf);
    l->level++;
    l->index >>= 1;
    t->depth--;
  }
}

static size_t first_block(const hb_tree_node *n) { return n->index << n->level; }

static int by_first_block(const void *a, const void *b) {
  size_t x = first_block(a), y = first_block(b);
  return (x > y) - (x < y);
}

/* Push the stack's nodes again in block order, merging every sibling pair
 * that is now complete.  A node's value depends only on its interval (always
 * merge(left half, right half)), so whichever rank merges it, and in which
 * round, the bits are the same. */
static int replay_in_block_order(hb_tree *t) {
  int n = t->depth;
  if (n < 2) return 0;
  hb_tree_node *all = malloc((size_t)n * sizeof *all);
  HB_CHECK(all, HB_EINTERNAL, "memory", "out of memory in the reduction");
  memcpy(all, t->stack, (size_t)n * sizeof *all);
  qsort(all, (size_t)n, sizeof *all, by_first_block);
  t->depth = 0;
  for (int i = 0; i < n; i++) hb_tree_push(t, all[i].level, all[i].index, all[i].buf);
  free(all);
  HB_CHECK(!t->failed, HB_EINTERNAL, "memory", "out of memory in the reduction tree");
  return 0;
}

/* A binomial tree over ranks: in the round of distance d, rank r + d sends
 * all its nodes to rank r (r a multiple of 2d), which merges what completes.
 * log2(ranks) rounds, and no rank ever holds more than its own nodes plus
 * those of the ranks below it in the binomial tree. */
int hb_tree_reduce(hb_tree *t, MPI_Comm comm, void **result) {
  int rank, size;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  *result = NULL;
  HB_CHECK(!t->failed, HB_EINTERNAL, "memory", "out of memory in the reduction tree");
  enum { TAG = 7301 };
  for (int d = 1; d < size; d *= 2) {
    if (rank % (2 * d) == d) {
      long long head[1] = {t->depth};
      HB_MPI(MPI_Send(head, 1, MPI_LONG_LONG, rank - d, TAG, comm));
      for (int i = 0; i < t->depth; i++) {
        long long id[2] = {t->stack[i].level, (long long)t->stack[i].index};
        HB_MPI(MPI_Send(id, 2, MPI_LONG_LONG, rank - d, TAG, comm));
        HB_MPI(MPI_Send(t->stack[i].buf, (int)t->bytes, MPI_BYTE, rank - d, TAG, comm));
        hb_tree_release(t, t->stack[i].buf);
      }
      t->depth = 0;
      return 0;
    }
    if (rank % (2 * d) || rank + d >= size) continue;
    long long head[1];
    HB_MPI(MPI_Recv(head, 1, MPI_LONG_LONG, rank + d, TAG, comm, MPI_STATUS_IGNORE));
    for (long long i = 0; i < head[0]; i++) {
      long long id[2];
      HB_MPI(MPI_Recv(id, 2, MPI_LONG_LONG, rank + d, TAG, comm, MPI_STATUS_IGNORE));
      void *buf = hb_tree_buffer(t);
      HB_CHECK(buf && !grow(t), HB_EINTERNAL, "memory", "out of memory in the reduction");
      HB_MPI(MPI_Recv(buf, (int)t->bytes, MPI_BYTE, rank + d, TAG, comm, MPI_STATUS_IGNORE));
      t->stack[t->depth++] = (hb_tree_node){(int)id[0], (size_t)id[1], buf};
    }
    HB_CALL(replay_in_block_order(t));
  }
  /* rank 0 holds every node; the rank-0-only run above may not have replayed */
  HB_CALL(replay_in_block_order(t));
  if (!t->depth) return 0;
  /* fold the leftover stack right to left: a fixed order for a given count */
  while (t->depth >= 2) {
    hb_tree_node *l = &t->stack[t->depth - 2], *r = &t->stack[t->depth - 1];
    t->merge(t->ctx, l->buf, r->buf);
    hb_tree_release(t, r->buf);
    t->depth--;
  }
  *result = t->stack[0].buf;
  return 0;
}

void hb_tree_free(hb_tree *t) {
  for (int i = 0; i < t->depth; i++) free(t->stack[i].buf);
  for (int i = 0; i < t->nspare; i++) free(t->spare[i]);
  free(t->stack);
  t->stack = NULL;
  t->depth = t->cap = t->nspare = 0;
}
