/* Chunk-aligned blocks over the navigation space. */
#include <string.h>

#include "hb_plan.h"

hsize_t hb_gcd(hsize_t a, hsize_t b) {
  while (b) {
    hsize_t t = a % b;
    a = b, b = t;
  }
  return a;
}

size_t hb_partition_auto_target(size_t bytes_per_pattern) {
  size_t t = HB_BLOCK_TARGET_BYTES / (bytes_per_pattern ? bytes_per_pattern : 1);
  return t ? t : 1;
}

void hb_partition_init(hb_partition *p, int nd, const hsize_t *shape, const hsize_t *chunk, size_t target_pos) {
  memset(p, 0, sizeof *p);
  p->nd = nd;
  size_t per_chunk = 1;
  for (int d = 0; d < nd; d++) {
    p->shape[d] = shape[d];
    p->chunk[d] = chunk[d] ? chunk[d] : 1;
    per_chunk *= p->chunk[d];
  }
  /* Whole chunks per block: fill the last axis first, then extend backwards,
   * so blocks stay contiguous runs of the file's chunk order. */
  size_t want = target_pos / per_chunk;
  if (want < 1) want = 1;
  for (int d = nd - 1; d >= 0; d--) {
    hsize_t grid = (p->shape[d] + p->chunk[d] - 1) / p->chunk[d];
    hsize_t take = want < grid ? want : grid;
    if (take < 1) take = 1;
    p->bchunks[d] = take;
    want = take == grid ? want / grid : 1;
    if (want < 1) want = 1;
  }
  p->nblocks = 1;
  p->max_block_pos = 1;
  for (int d = 0; d < nd; d++) {
    hsize_t ext = p->bchunks[d] * p->chunk[d];
    p->bgrid[d] = (p->shape[d] + ext - 1) / ext;
    p->nblocks *= p->bgrid[d];
    p->max_block_pos *= hb_partition_extent(p, d);
  }
  hb_partition_result_chunks(p, 1);
}

void hb_partition_result_chunks(hb_partition *p, size_t target_pos) {
  size_t want = target_pos / p->max_block_pos;
  if (want < 1) want = 1;
  p->nrchunks = 1;
  for (int d = p->nd - 1; d >= 0; d--) {
    hsize_t take = want < p->bgrid[d] ? want : p->bgrid[d];
    p->rblocks[d] = take;
    want = take == p->bgrid[d] ? want / p->bgrid[d] : 1;
    if (want < 1) want = 1;
    p->rgrid[d] = (p->bgrid[d] + take - 1) / take;
    p->nrchunks *= p->rgrid[d];
  }
}

hsize_t hb_partition_result_extent(const hb_partition *p, int d) {
  hsize_t ext = p->rblocks[d] * p->bchunks[d] * p->chunk[d];
  return ext < p->shape[d] ? ext : p->shape[d];
}

size_t hb_partition_result_chunk_of(const hb_partition *p, size_t b) {
  hsize_t at[HB_MAXDIM];
  for (int d = p->nd - 1; d >= 0; d--) {
    at[d] = b % p->bgrid[d] / p->rblocks[d];
    b /= p->bgrid[d];
  }
  size_t c = 0;
  for (int d = 0; d < p->nd; d++) c = c * p->rgrid[d] + at[d];
  return c;
}

size_t hb_partition_result_chunk(const hb_partition *p, size_t c, hsize_t *start, size_t *blocks) {
  hsize_t first[HB_MAXDIM], count[HB_MAXDIM], idx[HB_MAXDIM] = {0};
  size_t n = 1;
  for (int d = p->nd - 1; d >= 0; d--) {
    hsize_t i = c % p->rgrid[d];
    c /= p->rgrid[d];
    first[d] = i * p->rblocks[d];
    count[d] = first[d] + p->rblocks[d] > p->bgrid[d] ? p->bgrid[d] - first[d] : p->rblocks[d];
    start[d] = first[d] * p->bchunks[d] * p->chunk[d];
    n *= count[d];
  }
  for (size_t k = 0; blocks && k < n; k++) {
    size_t b = 0;
    for (int d = 0; d < p->nd; d++) b = b * p->bgrid[d] + first[d] + idx[d];
    blocks[k] = b;
    int d = p->nd - 1;
    while (d >= 0 && ++idx[d] == count[d]) idx[d--] = 0;
  }
  return n;
}

hsize_t hb_partition_extent(const hb_partition *p, int d) {
  hsize_t ext = p->bchunks[d] * p->chunk[d];
  return ext < p->shape[d] ? ext : p->shape[d];
}

size_t hb_partition_block(const hb_partition *p, size_t b, hsize_t *start, hsize_t *count) {
  size_t npos = 1;
  for (int d = p->nd - 1; d >= 0; d--) {
    hsize_t i = b % p->bgrid[d];
    b /= p->bgrid[d];
    hsize_t ext = p->bchunks[d] * p->chunk[d];
    start[d] = i * ext;
    count[d] = start[d] + ext > p->shape[d] ? p->shape[d] - start[d] : ext;
    npos *= count[d];
  }
  return npos;
}

size_t hb_partition_result_positions(const hb_partition *p) {
  size_t n = 1;
  for (int d = 0; d < p->nd; d++) n *= hb_partition_result_extent(p, d);
  return n;
}

void hb_partition_range(size_t nblocks, int rank, int size, size_t *first, size_t *end) {
  *first = nblocks * (size_t)rank / (size_t)size;
  *end = nblocks * (size_t)(rank + 1) / (size_t)size;
}

size_t hb_deal_group(size_t left, int size) {
  size_t g = 1;
  while (g * 8 * (size_t)size < left) g *= 2;
  return g;
}

/* Whole rounds of groups of g first; what is left, less than a round, goes
 * round again with g / 2, down to single blocks. */
size_t hb_deal_count(size_t left, int size, int rank) {
  size_t g = hb_deal_group(left, size), n = 0;
  while (left) {
    size_t full = left / (g * (size_t)size) * (g * (size_t)size);
    n += full / (size_t)size;
    left -= full;
    if (g == 1) return n + ((size_t)rank < left);
    g /= 2;
  }
  return n;
}

int hb_deal_owner(size_t k, size_t left, int size) {
  size_t g = hb_deal_group(left, size), base = 0;
  for (;;) {
    size_t full = (left - base) / (g * (size_t)size) * (g * (size_t)size);
    if (k < base + full || g == 1) return (int)(((k - base) / g) % (size_t)size);
    base += full;
    g /= 2;
  }
}
