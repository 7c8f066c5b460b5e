/* hb_partition_*: chunk-aligned blocks over the navigation space, and the
 * balanced contiguous ranges of blocks per rank.
 *
 * For many (shape, chunk, target) cases: every navigation position is in
 * exactly one block; blocks start on chunk boundaries and are whole chunks
 * except at the far edge; nblocks is the product of bgrid; max_block_pos is
 * the largest block; numbering is C order over the block grid and depends on
 * (shape, chunk, target) only. */
#include <hdf5.h>
#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hb_plan.h"
#include "testutil.h"

typedef struct {
  int nd;
  hsize_t shape[3];
  hsize_t chunk[3];
} pcase;

static const char *dims_str(int nd, const hsize_t *v) {
  static char ring[4][96];
  static int k;
  char *b = ring[k++ & 3];
  size_t len = 0;
  b[0] = 0;
  for (int d = 0; d < nd; d++)
    len += (size_t)snprintf(b + len, sizeof ring[0] - len, "%s%llu", d ? "," : "(", (unsigned long long)v[d]);
  snprintf(b + len, sizeof ring[0] - len, "%s)", nd == 1 ? "," : "");
  return b;
}

/* One case: every invariant, counted as one check each so a broken case
 * reports the first thing that went wrong (and does not flood stderr). */
static void check_case(const pcase *c, size_t target) {
  hb_partition p, q;
  const char *sh = dims_str(c->nd, c->shape), *ch = dims_str(c->nd, c->chunk);
  /* garbage first: init must not depend on what was in the struct */
  memset(&p, 0xA5, sizeof p);
  memset(&q, 0x11, sizeof q);
  hb_partition_init(&p, c->nd, c->shape, c->chunk, target);
  hb_partition_init(&q, c->nd, c->shape, c->chunk, target);
  CHECK(p.nd == c->nd, "shape %s chunk %s target %zu: nd %d, want %d", sh, ch, target, p.nd, c->nd);

  size_t npos = 1, prod = 1;
  for (int d = 0; d < c->nd; d++) npos *= c->shape[d], prod *= p.bgrid[d];
  CHECK(p.nblocks == prod, "shape %s chunk %s target %zu: nblocks %zu != product of bgrid %zu", sh, ch, target,
        p.nblocks, prod);
  CHECK(p.nblocks >= 1 && p.nblocks <= npos, "shape %s chunk %s target %zu: nblocks %zu out of [1, %zu]", sh, ch,
        target, p.nblocks, npos);

  /* bchunks: at least one chunk, never more chunks than the axis has */
  int bch_ok = 1;
  for (int d = 0; d < c->nd; d++) {
    hsize_t grid = (c->shape[d] + c->chunk[d] - 1) / c->chunk[d];
    if (p.chunk[d] != c->chunk[d] || p.bchunks[d] < 1 || p.bchunks[d] > grid) bch_ok = 0;
  }
  CHECK(bch_ok, "shape %s chunk %s target %zu: chunk %s / bchunks %s inconsistent", sh, ch, target,
        dims_str(c->nd, p.chunk), dims_str(c->nd, p.bchunks));

  unsigned char *seen = calloc(npos, 1);
  size_t largest = 0, covered = 0;
  int aligned = 1, whole = 1, inside = 1, order = 1, same = 1;
  char bad[256] = "";
  for (size_t b = 0; b < p.nblocks; b++) {
    hsize_t start[HB_MAXDIM], count[HB_MAXDIM], s2[HB_MAXDIM], c2[HB_MAXDIM];
    hb_partition_block(&p, b, start, count);
    hb_partition_block(&q, b, s2, c2);
    size_t bpos = 1, cidx = 0;
    for (int d = 0; d < c->nd; d++) {
      hsize_t ext = p.bchunks[d] * p.chunk[d];
      if (start[d] != s2[d] || count[d] != c2[d]) same = 0;
      if (start[d] % c->chunk[d]) {
        if (aligned) snprintf(bad, sizeof bad, "block %zu axis %d start %llu", b, d, (unsigned long long)start[d]);
        aligned = 0;
      }
      if (count[d] < 1 || start[d] + count[d] > c->shape[d]) inside = 0;
      /* whole chunks, except where the block reaches the far edge */
      if (start[d] + count[d] != c->shape[d] && count[d] % c->chunk[d]) whole = 0;
      /* C-order numbering over the block grid */
      if (ext == 0 || start[d] % ext) order = 0;
      cidx = cidx * p.bgrid[d] + (ext ? start[d] / ext : 0);
      bpos *= count[d];
    }
    if (cidx != b) order = 0;
    if (!inside) break;
    if (bpos > largest) largest = bpos;
    covered += bpos;
    /* mark every position of the rectangle */
    hsize_t idx[HB_MAXDIM] = {0};
    for (size_t k = 0; k < bpos; k++) {
      size_t lin = 0;
      for (int d = 0; d < c->nd; d++) lin = lin * c->shape[d] + start[d] + idx[d];
      if (seen[lin] < 255) seen[lin]++;
      for (int d = c->nd - 1; d >= 0; d--) {
        if (++idx[d] < count[d]) break;
        idx[d] = 0;
      }
    }
  }
  CHECK(inside, "shape %s chunk %s target %zu: a block is empty or leaves the array", sh, ch, target);
  CHECK(aligned, "shape %s chunk %s target %zu: block start not a multiple of the chunk: %s", sh, ch, target, bad);
  CHECK(whole, "shape %s chunk %s target %zu: a block extent is not whole chunks away from the far edge", sh, ch,
        target);
  CHECK(order, "shape %s chunk %s target %zu: blocks are not numbered in C order over bgrid %s", sh, ch, target,
        dims_str(c->nd, p.bgrid));
  CHECK(same, "shape %s chunk %s target %zu: two inits with the same arguments number blocks differently", sh, ch,
        target);
  size_t once = 0, first_bad = npos;
  for (size_t i = 0; i < npos; i++) {
    if (seen[i] == 1) once++;
    else if (first_bad == npos) first_bad = i;
  }
  CHECK(inside && once == npos && covered == npos,
        "shape %s chunk %s target %zu: %zu of %zu positions covered exactly once (sum of block sizes %zu; first bad "
        "position %zu, seen %d times)",
        sh, ch, target, once, npos, covered, first_bad, first_bad < npos ? seen[first_bad] : -1);
  CHECK(p.max_block_pos == largest, "shape %s chunk %s target %zu: max_block_pos %zu, largest block %zu", sh, ch,
        target, p.max_block_pos, largest);

  /* target honoured: one chunk at least, and never a block over
   * max(target, one chunk) positions */
  size_t per_chunk = 1;
  for (int d = 0; d < c->nd; d++) per_chunk *= c->chunk[d];
  size_t cap = target > per_chunk ? target : per_chunk;
  CHECK(largest <= cap, "shape %s chunk %s target %zu: largest block %zu exceeds max(target, chunk) = %zu", sh, ch,
        target, largest, cap);
  free(seen);
}

/* Result chunks for a partition: every block in exactly one of them, which
 * lists it; each a rectangle of whole blocks starting on a block boundary,
 * whose extent is rblocks blocks (clipped at the far edge); no more than
 * max(target, one block) positions. */
static void check_result_chunks(const pcase *c, size_t target, size_t rtarget) {
  hb_partition p;
  hb_partition_init(&p, c->nd, c->shape, c->chunk, target);
  const char *sh = dims_str(c->nd, c->shape), *ch = dims_str(c->nd, c->chunk);
  CHECK(p.nrchunks == p.nblocks, "shape %s chunk %s target %zu: init must leave one block per result chunk", sh, ch,
        target);
  hb_partition_result_chunks(&p, rtarget);
  size_t prod = 1, most = 1, rpos = 1;
  for (int d = 0; d < c->nd; d++) {
    prod *= p.rgrid[d], most *= p.rblocks[d];
    rpos *= hb_partition_result_extent(&p, d);
  }
  CHECK(p.nrchunks == prod, "shape %s chunk %s target %zu/%zu: nrchunks %zu != product of rgrid", sh, ch, target,
        rtarget, p.nrchunks);
  size_t cap = rtarget > p.max_block_pos ? rtarget : p.max_block_pos;
  CHECK(rpos <= cap, "shape %s chunk %s target %zu/%zu: result chunk of %zu positions over %zu", sh, ch, target,
        rtarget, rpos, cap);
  size_t *blocks = malloc(most * sizeof *blocks), listed = 0;
  unsigned char *seen = calloc(p.nblocks, 1);
  int ok = 1;
  for (size_t r = 0; r < p.nrchunks && ok; r++) {
    hsize_t cstart[HB_MAXDIM];
    size_t n = hb_partition_result_chunk(&p, r, cstart, blocks);
    listed += n;
    for (size_t k = 0; k < n && ok; k++) {
      hsize_t start[HB_MAXDIM], count[HB_MAXDIM];
      hb_partition_block(&p, blocks[k], start, count);
      ok = blocks[k] < p.nblocks && !seen[blocks[k]]++ && hb_partition_result_chunk_of(&p, blocks[k]) == r;
      for (int d = 0; d < c->nd && ok; d++) {
        hsize_t ext = hb_partition_result_extent(&p, d);
        ok = cstart[d] % hb_partition_extent(&p, d) == 0 && start[d] >= cstart[d] &&
             start[d] + count[d] <= cstart[d] + ext &&
             (ext % hb_partition_extent(&p, d) == 0 || ext == c->shape[d]);
      }
      if (!ok)
        fprintf(stderr, "shape %s chunk %s target %zu/%zu: result chunk %zu block %zu misplaced\n", sh, ch, target,
                rtarget, r, blocks[k]);
    }
  }
  CHECK(ok && listed == p.nblocks, "shape %s chunk %s target %zu/%zu: result chunks list %zu of %zu blocks", sh, ch,
        target, rtarget, listed, p.nblocks);
  free(blocks);
  free(seen);
}

static void cases(void) {
  static const pcase list[] = {
      {2, {13, 11}, {4, 3}},   /* chunks do not divide */
      {2, {13, 11}, {1, 1}},   /* one position per chunk */
      {2, {13, 11}, {13, 11}}, /* one chunk */
      {2, {13, 11}, {20, 20}}, /* chunk bigger than the array */
      {2, {13, 11}, {5, 11}},  /* whole rows */
      {2, {64, 64}, {8, 8}},   /* chunks divide */
      {2, {64, 64}, {16, 64}}, {2, {64, 64}, {1, 64}}, {2, {64, 64}, {64, 1}}, {2, {64, 64}, {7, 9}},
      {1, {7}, {1}},           {1, {7}, {2}},          {1, {7}, {7}},          {1, {7}, {3}},
      {1, {1}, {1}},           {3, {5, 4, 3}, {1, 1, 1}}, {3, {5, 4, 3}, {2, 3, 2}},
      {3, {5, 4, 3}, {5, 4, 3}}, {3, {5, 4, 3}, {3, 1, 3}}, {3, {5, 4, 3}, {2, 4, 1}},
      {2, {1, 100}, {1, 7}},   {2, {100, 1}, {9, 1}},
  };
  static const size_t targets[] = {1, 2, 3, 5, 7, 12, 30, 64, 100, 1000, 4096, (size_t)1 << 40, SIZE_MAX / 4};
  for (size_t i = 0; i < sizeof list / sizeof list[0]; i++)
    for (size_t t = 0; t < sizeof targets / sizeof targets[0]; t++) {
      check_case(&list[i], targets[t]);
      for (size_t r = 0; r < 8; r++) check_result_chunks(&list[i], targets[t], targets[r]);
    }
}

/* A few exact expectations, so the invariants above are not all trivially
 * satisfied by a degenerate partition. */
static void exact(void) {
  hb_partition p;
  hsize_t start[HB_MAXDIM], count[HB_MAXDIM];

  /* target 1: one chunk per block */
  hsize_t s1[] = {13, 11}, c1[] = {4, 3};
  hb_partition_init(&p, 2, s1, c1, 1);
  CHECK_UINT(p.bgrid[0], 4);
  CHECK_UINT(p.bgrid[1], 4);
  CHECK_UINT(p.nblocks, 16);
  CHECK_UINT(p.max_block_pos, 12);
  hb_partition_block(&p, 15, start, count); /* the far corner */
  CHECK_UINT(start[0], 12);
  CHECK_UINT(start[1], 9);
  CHECK_UINT(count[0], 1);
  CHECK_UINT(count[1], 2);
  hb_partition_block(&p, 5, start, count); /* block grid (1, 1) */
  CHECK_UINT(start[0], 4);
  CHECK_UINT(start[1], 3);
  CHECK_UINT(count[0], 4);
  CHECK_UINT(count[1], 3);

  /* huge target: the whole array is one block */
  hb_partition_init(&p, 2, s1, c1, SIZE_MAX / 4);
  CHECK_UINT(p.nblocks, 1);
  CHECK_UINT(p.max_block_pos, 13 * 11);
  hb_partition_block(&p, 0, start, count);
  CHECK(start[0] == 0 && start[1] == 0 && count[0] == 13 && count[1] == 11,
        "whole-array block: start (%llu,%llu) count (%llu,%llu)", (unsigned long long)start[0],
        (unsigned long long)start[1], (unsigned long long)count[0], (unsigned long long)count[1]);

  /* (64, 64) in 8x8 chunks, target 256 = 4 chunks: filled along the last axis */
  hsize_t s2[] = {64, 64}, c2[] = {8, 8};
  hb_partition_init(&p, 2, s2, c2, 256);
  CHECK_UINT(p.bchunks[0], 1);
  CHECK_UINT(p.bchunks[1], 4);
  CHECK_UINT(p.nblocks, 16);
  CHECK_UINT(p.max_block_pos, 256);
  /* target 1024 = 16 chunks: a whole row of chunks, then two rows */
  hb_partition_init(&p, 2, s2, c2, 1024);
  CHECK_UINT(p.bchunks[0], 2);
  CHECK_UINT(p.bchunks[1], 8);
  CHECK_UINT(p.nblocks, 4);
  CHECK_UINT(p.max_block_pos, 1024);

  /* 1-D (7,) chunk 2 target 4: blocks [0,4) [4,7) */
  hsize_t s3[] = {7}, c3[] = {2};
  hb_partition_init(&p, 1, s3, c3, 4);
  CHECK_UINT(p.nblocks, 2);
  hb_partition_block(&p, 1, start, count);
  CHECK_UINT(start[0], 4);
  CHECK_UINT(count[0], 3);

  /* chunk 0 is treated as 1 (a contiguous dataset reports its shape, but be safe) */
  hsize_t c4[] = {0};
  hb_partition_init(&p, 1, s3, c4, 1);
  CHECK_UINT(p.nblocks, 7);

  /* no navigation axes (a single pattern): one block of one position */
  memset(&p, 0x77, sizeof p);
  hb_partition_init(&p, 0, s3, c3, 100);
  CHECK_UINT(p.nblocks, 1);
  CHECK_UINT(p.max_block_pos, 1);

  /* result chunks: (13, 11) in blocks of one (4, 3) chunk; 96 positions is
   * 8 blocks: the 4 of a block row, then 2 rows */
  hb_partition_init(&p, 2, s1, c1, 1);
  hb_partition_result_chunks(&p, 96);
  CHECK_UINT(p.rblocks[0], 2);
  CHECK_UINT(p.rblocks[1], 4);
  CHECK_UINT(hb_partition_result_extent(&p, 0), 8);
  CHECK_UINT(hb_partition_result_extent(&p, 1), 11);
  CHECK_UINT(p.nrchunks, 2);
  size_t listed[8];
  CHECK_UINT(hb_partition_result_chunk(&p, 1, start, listed), 8); /* block rows 2 and 3 */
  CHECK(start[0] == 8 && start[1] == 0 && listed[0] == 8 && listed[7] == 15,
        "result chunk 1: start (%llu,%llu), blocks %zu..%zu", (unsigned long long)start[0],
        (unsigned long long)start[1], listed[0], listed[7]);
  CHECK_UINT(hb_partition_result_chunk_of(&p, 7), 0);
  CHECK_UINT(hb_partition_result_chunk_of(&p, 8), 1);
  /* the benchmark's 128 x 128 scan in (5, 5) chunks, 256-pattern blocks of
   * (5, 50): a 1 MiB float64 result chunk is the whole image */
  hsize_t sb[] = {128, 128}, cb[] = {5, 5};
  hb_partition_init(&p, 2, sb, cb, 256);
  CHECK_UINT(p.nblocks, 78);
  hb_partition_result_chunks(&p, (1 << 20) / 8);
  CHECK_UINT(p.nrchunks, 1);
  CHECK_UINT(hb_partition_result_extent(&p, 0), 128);
  CHECK_UINT(hb_partition_result_extent(&p, 1), 128);

  /* auto target: about HB_BLOCK_TARGET_BYTES of data, at least one pattern */
  CHECK_UINT(hb_partition_auto_target(1), HB_BLOCK_TARGET_BYTES);
  CHECK_UINT(hb_partition_auto_target(0), HB_BLOCK_TARGET_BYTES);
  CHECK_UINT(hb_partition_auto_target(1024), HB_BLOCK_TARGET_BYTES / 1024);
  CHECK_UINT(hb_partition_auto_target(256 * 256 * 2), HB_BLOCK_TARGET_BYTES / (256 * 256 * 2));
  CHECK_UINT(hb_partition_auto_target(HB_BLOCK_TARGET_BYTES), 1);
  CHECK_UINT(hb_partition_auto_target(HB_BLOCK_TARGET_BYTES * 3), 1);
  CHECK_UINT(hb_partition_auto_target(SIZE_MAX), 1);
  size_t prev = SIZE_MAX;
  int mono = 1;
  for (size_t b = 1; b < ((size_t)1 << 26); b = b * 3 + 1) {
    size_t t = hb_partition_auto_target(b);
    if (t > prev || t < 1 || (t > 1 && t * b > HB_BLOCK_TARGET_BYTES)) mono = 0;
    prev = t;
  }
  CHECK(mono, "auto target must be >= 1, non-increasing in pattern size, and within HB_BLOCK_TARGET_BYTES");
}

static void ranges(void) {
  for (int size = 1; size <= 5; size++)
    for (size_t nb = 0; nb <= 40; nb++) {
      size_t expect_first = 0, lo = SIZE_MAX, hi = 0;
      int contiguous = 1, ordered = 1;
      for (int r = 0; r < size; r++) {
        size_t f = 12345, e = 54321;
        hb_partition_range(nb, r, size, &f, &e);
        if (f != expect_first) contiguous = 0;
        if (e < f) {
          ordered = 0;
          e = f;
        }
        size_t n = e - f;
        if (n < lo) lo = n;
        if (n > hi) hi = n;
        expect_first = e;
      }
      CHECK(contiguous && ordered, "range nblocks %zu size %d: ranges are not contiguous from 0", nb, size);
      CHECK(expect_first == nb, "range nblocks %zu size %d: ranges end at %zu", nb, size, expect_first);
      CHECK(hi - lo <= 1, "range nblocks %zu size %d: sizes from %zu to %zu (differ by more than 1)", nb, size, lo,
            hi);
    }
  /* a fixed example: 10 blocks on 3 ranks */
  size_t f, e;
  hb_partition_range(10, 0, 3, &f, &e);
  CHECK(f == 0 && e - f >= 3 && e - f <= 4, "10 over 3, rank 0: [%zu, %zu)", f, e);
  hb_partition_range(10, 2, 3, &f, &e);
  CHECK(e == 10 && e - f >= 3 && e - f <= 4, "10 over 3, rank 2: [%zu, %zu)", f, e);
}

/* hb_deal_*: the owners agree with the counts, every block has one owner,
 * and no rank gets more than one block more than another. */
static void deal(void) {
  int bad = 0;
  for (int size = 1; size <= 9 && !bad; size++)
    for (size_t left = 0; left < 2000 && !bad; left++) {
      size_t got[9] = {0}, most = 0, least = SIZE_MAX, total = 0;
      for (size_t k = 0; k < left; k++) {
        int r = hb_deal_owner(k, left, size);
        if (r < 0 || r >= size) bad = 1;
        else got[r]++;
      }
      for (int r = 0; r < size; r++) {
        size_t n = hb_deal_count(left, size, r);
        bad |= n != got[r];
        total += n;
        most = n > most ? n : most;
        least = n < least ? n : least;
      }
      bad |= total != left || (left && most - least > 1);
      if (bad) fprintf(stderr, "deal: size %d, %zu blocks\n", size, left);
    }
  CHECK(!bad, "hb_deal_*: owners match counts, every block dealt once, within one block of even, 1-9 ranks, 0-1999 blocks");
  /* groups of G first: 312 blocks on 2 ranks start with 32 blocks of rank 0 */
  CHECK(hb_deal_group(312, 2) == 32 && hb_deal_owner(31, 312, 2) == 0 && hb_deal_owner(32, 312, 2) == 1,
        "hb_deal_owner: whole groups of G first");
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  cases();
  exact();
  ranges();
  deal();
  int rc = TEST_DONE("test_partition");
  MPI_Finalize();
  return rc;
}
