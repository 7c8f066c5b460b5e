/* The reduction tree of reduce.c, at any number of ranks (run it at 1, 2, 3):
 *
 *   mpirun -n 3 test_tree
 *
 * For every block count B, each rank pushes the leaves of its own range
 * (hb_partition_range) and hb_tree_reduce combines them over MPI_COMM_WORLD.
 * Rank 0 then builds the same tree over all B leaves alone (MPI_COMM_SELF)
 * and checks that both results are bit-identical, and that they equal an
 * independent recursive implementation of the pairwise tree of hb_plan.h:
 * node (level, j) covers [j*2^level, (j+1)*2^level) ∩ [0, B); a node whose
 * two children are complete is their merge; the leftover maximal complete
 * nodes (the binary digits of B) are folded right to left.
 *
 * Two merges are used:
 *   - elementwise add of 5 doubles of wildly different magnitudes, so any
 *     change in the order of the additions changes the bits;
 *   - a non-commutative, non-associative hash of 64-bit words, so the exact
 *     grouping and the left/right order of every merge is checked.
 *
 * The failure count is summed over the ranks, so every rank (and mpirun)
 * exits non-zero if any check failed anywhere. */
#include <hdf5.h>
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/testutil.h"
#include "hb_error.h"
#include "hb_plan.h"

#define NV 5

static int rank, nranks;

/* ---- leaves and merges --------------------------------------------------- */

static void leaf_f64(size_t b, double *v) {
  double i = (double)b;
  v[0] = 1e16 * sin(i + 1);
  v[1] = 1.0 + 1e-3 * sin(3 * i);
  v[2] = 1e8 * cos(i) + 0.1 * (double)(b % 7);
  v[3] = exp(30 * sin(0.7 * i));
  v[4] = 1.0 / (i + 1) - 1e10 * (double)((int)(b % 3) - 1);
}

static void add_f64(void *ctx, void *acc, const void *other) {
  (void)ctx;
  double *a = acc;
  const double *o = other;
  for (int k = 0; k < NV; k++) a[k] += o[k];
}

static void leaf_hash(size_t b, uint64_t *v) {
  for (int k = 0; k < NV; k++) v[k] = (uint64_t)b * 0x9E3779B97F4A7C15ull + (uint64_t)k + 1;
}

static uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

/* mix(a, b) != mix(b, a) and mix(mix(a, b), c) != mix(a, mix(b, c)) */
static void mix_hash(void *ctx, void *acc, const void *other) {
  (void)ctx;
  uint64_t *a = acc;
  const uint64_t *o = other;
  for (int k = 0; k < NV; k++) a[k] = (a[k] * 0xBF58476D1CE4E5B9ull) ^ (rotl(o[k], 23) + 0x94D049BB133111EBull);
}

typedef struct {
  const char *name;
  void (*leaf)(size_t b, void *v);
  hb_merge_fn merge;
} flavour;

static void leaf_f64_v(size_t b, void *v) { leaf_f64(b, v); }
static void leaf_hash_v(size_t b, void *v) { leaf_hash(b, v); }

static const flavour flavours[] = {
    {"add-f64", leaf_f64_v, add_f64},
    {"hash-u64", leaf_hash_v, mix_hash},
};

#define VBYTES (NV * 8)

/* ---- the reference: written from the definition, not from reduce.c ------ */

/* Value of the complete node (level, j) over leaves [j*2^level, (j+1)*2^level). */
static void ref_node(const flavour *f, int level, size_t j, unsigned char *out) {
  if (level == 0) {
    f->leaf(j, out);
    return;
  }
  unsigned char right[VBYTES];
  ref_node(f, level - 1, 2 * j, out);
  ref_node(f, level - 1, 2 * j + 1, right);
  f->merge(NULL, out, right);
}

/* The maximal complete nodes that tile [0, B), left to right, then folded
 * right to left: n0 ∘ (n1 ∘ (... ∘ nk)). */
static int ref_tree(const flavour *f, size_t B, unsigned char *out) {
  if (B == 0) return 0;
  unsigned char nodes[64][VBYTES];
  int n = 0;
  size_t pos = 0;
  for (int level = 63; level >= 0; level--) {
    size_t width = (size_t)1 << level;
    if (level < (int)(8 * sizeof(size_t)) && (B & width)) {
      ref_node(f, level, pos / width, nodes[n++]);
      pos += width;
    }
  }
  for (int i = n - 2; i >= 0; i--) f->merge(NULL, nodes[i], nodes[i + 1]);
  memcpy(out, nodes[0], VBYTES);
  return 1;
}

/* The naive left-to-right fold: used only to show the data is sensitive to
 * the order of the merges. */
static void naive(const flavour *f, size_t B, unsigned char *out) {
  unsigned char v[VBYTES];
  f->leaf(0, out);
  for (size_t b = 1; b < B; b++) {
    f->leaf(b, v);
    f->merge(NULL, out, v);
  }
}

/* ---- the tree under test ------------------------------------------------- */

/* Push leaves [first, end) and reduce over comm; returns hb_tree_reduce's
 * code.  On success *result is copied into out (if non-NULL) and
 * *have says whether there was a result. */
static int run_tree(const flavour *f, MPI_Comm comm, size_t first, size_t end, unsigned char *out, int *have) {
  hb_tree t;
  hb_tree_init(&t, VBYTES, f->merge, NULL);
  for (size_t b = first; b < end; b++) {
    void *buf = hb_tree_buffer(&t);
    if (!buf) {
      hb_tree_free(&t);
      return -1;
    }
    f->leaf(b, buf);
    hb_tree_push(&t, 0, b, buf);
  }
  void *res = (void *)1;
  int rc = hb_tree_reduce(&t, comm, &res);
  *have = res != NULL;
  if (!rc && res) memcpy(out, res, VBYTES);
  hb_tree_free(&t);
  return rc;
}

/* Leaves dealt round-robin (every nranks-th block), as a resumed run may
 * hold scattered blocks; rank 0 also holds nodes "from a checkpoint": the
 * merged nodes of blocks [0, B/3), pushed whole.  Same result required. */
static int run_scattered(const flavour *f, size_t B, unsigned char *out, int *have) {
  hb_tree t;
  hb_tree_init(&t, VBYTES, f->merge, NULL);
  size_t stored = B / 3;
  if (rank == 0 && stored) {
    hb_tree pre; /* the checkpoint's nodes: a tree over [0, stored) left unfolded */
    hb_tree_init(&pre, VBYTES, f->merge, NULL);
    for (size_t b = 0; b < stored; b++) {
      void *buf = hb_tree_buffer(&pre);
      f->leaf(b, buf);
      hb_tree_push(&pre, 0, b, buf);
    }
    for (int i = 0; i < pre.depth; i++) hb_tree_push(&t, pre.stack[i].level, pre.stack[i].index, pre.stack[i].buf);
    pre.depth = 0;
    hb_tree_free(&pre);
  }
  for (size_t b = stored + (size_t)rank; b < B; b += (size_t)nranks) {
    void *buf = hb_tree_buffer(&t);
    f->leaf(b, buf);
    hb_tree_push(&t, 0, b, buf);
  }
  void *res = NULL;
  int rc = hb_tree_reduce(&t, MPI_COMM_WORLD, &res);
  *have = res != NULL;
  if (!rc && res) memcpy(out, res, VBYTES);
  hb_tree_free(&t);
  return rc;
}

static void hexdump(const char *what, const unsigned char *v) {
  fprintf(stderr, "  %-10s", what);
  for (int i = 0; i < VBYTES; i++) fprintf(stderr, "%02x%s", v[i], i % 8 == 7 ? " " : "");
  fprintf(stderr, "\n");
}

static void check_count(const flavour *f, size_t B) {
  size_t first, end;
  hb_partition_range(B, rank, nranks, &first, &end);
  unsigned char par[VBYTES] = {0}, ser[VBYTES] = {0}, ref[VBYTES] = {0};
  int have_par = 0, have_ser = 0;
  int rc = run_tree(f, MPI_COMM_WORLD, first, end, par, &have_par);
  CHECK(rc == 0, "%s B=%zu rank %d: hb_tree_reduce over %d ranks returned %d (%s)", f->name, B, rank, nranks, rc,
        hb_error_what());
  hb_error_clear();
  unsigned char sc[VBYTES] = {0};
  int have_sc = 0;
  int rc_sc = run_scattered(f, B, sc, &have_sc);
  CHECK(rc_sc == 0, "%s B=%zu rank %d: scattered reduce returned %d", f->name, B, rank, rc_sc);
  if (rank == 0 && have_par && have_sc)
    CHECK(!memcmp(par, sc, VBYTES), "%s B=%zu: scattered blocks plus checkpoint nodes differ from contiguous ranges",
          f->name, B);
  if (rank != 0) {
    CHECK(!have_par, "%s B=%zu rank %d: a non-root rank got a result", f->name, B, rank);
    return;
  }
  CHECK(have_par == (B > 0), "%s B=%zu: root result %s, want %s", f->name, B, have_par ? "present" : "NULL",
        B ? "present" : "NULL");
  rc = run_tree(f, MPI_COMM_SELF, 0, B, ser, &have_ser);
  CHECK(rc == 0, "%s B=%zu: serial hb_tree_reduce returned %d (%s)", f->name, B, rc, hb_error_what());
  hb_error_clear();
  CHECK(have_ser == (B > 0), "%s B=%zu: serial result %s", f->name, B, have_ser ? "present" : "NULL");
  int have_ref = ref_tree(f, B, ref);
  if (!B || !have_par || !have_ser || !have_ref) return;
  int same_ser = !memcmp(par, ser, VBYTES), same_ref = !memcmp(par, ref, VBYTES);
  CHECK(same_ser, "%s B=%zu: %d-rank result differs from the 1-rank (MPI_COMM_SELF) result", f->name, B, nranks);
  CHECK(same_ref, "%s B=%zu: %d-rank result differs from the reference pairwise tree", f->name, B, nranks);
  CHECK(!memcmp(ser, ref, VBYTES), "%s B=%zu: 1-rank result differs from the reference pairwise tree", f->name, B);
  if (!same_ser || !same_ref) {
    hexdump("ranks", par);
    hexdump("serial", ser);
    hexdump("reference", ref);
  }
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nranks);

  static const size_t counts[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 16, 17, 31, 33, 64, 100, 127, 255};
  for (size_t fi = 0; fi < sizeof flavours / sizeof flavours[0]; fi++)
    for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++) check_count(&flavours[fi], counts[ci]);

  if (rank == 0) {
    /* The data really is order-sensitive: for some B the tree and the naive
     * left fold differ in their bits (else the checks above prove little). */
    int sensitive_f64 = 0, sensitive_hash = 0;
    for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++) {
      size_t B = counts[ci];
      if (B < 3) continue;
      unsigned char a[VBYTES], b[VBYTES];
      ref_tree(&flavours[0], B, a);
      naive(&flavours[0], B, b);
      sensitive_f64 += memcmp(a, b, VBYTES) != 0;
      ref_tree(&flavours[1], B, a);
      naive(&flavours[1], B, b);
      sensitive_hash += memcmp(a, b, VBYTES) != 0;
    }
    CHECK(sensitive_f64 > 0, "the float data gives the same bits in any order: the test cannot see an order change");
    CHECK(sensitive_hash > 0, "the hash merge is order-insensitive: the test cannot see an order change");

    /* The reference itself, on a case worked by hand: B = 3 is (0∘1)∘2 for
     * the tree (nodes (1,0) and (0,2)), whatever the fold direction. */
    unsigned char r3[VBYTES], l0[VBYTES], l1[VBYTES], l2[VBYTES];
    ref_tree(&flavours[1], 3, r3);
    flavours[1].leaf(0, l0), flavours[1].leaf(1, l1), flavours[1].leaf(2, l2);
    mix_hash(NULL, l0, l1);
    mix_hash(NULL, l0, l2);
    CHECK(!memcmp(r3, l0, VBYTES), "reference tree for B=3 is not (0.1).2");
    /* B = 7: nodes (2,0) (1,2) (0,6), folded right to left: n0.(n1.n2) */
    unsigned char r7[VBYTES], n0[VBYTES], n1[VBYTES], n2[VBYTES], x[VBYTES];
    ref_tree(&flavours[1], 7, r7);
    flavours[1].leaf(0, n0), flavours[1].leaf(1, x), mix_hash(NULL, n0, x);
    flavours[1].leaf(2, l2), flavours[1].leaf(3, x), mix_hash(NULL, l2, x);
    mix_hash(NULL, n0, l2);
    flavours[1].leaf(4, n1), flavours[1].leaf(5, x), mix_hash(NULL, n1, x);
    flavours[1].leaf(6, n2);
    mix_hash(NULL, n1, n2);
    mix_hash(NULL, n0, n1);
    CHECK(!memcmp(r7, n0, VBYTES), "reference tree for B=7 is not ((0.1).(2.3)).((4.5).6)");
  }

  /* every rank learns the total, so every rank exits with the same status */
  int mine[2] = {tu_checks, tu_failed}, all[2] = {0, 0};
  MPI_Allreduce(mine, all, 2, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0) {
    printf("test_tree: %d checks, %d failed (%d rank%s)\n", all[0], all[1], nranks, nranks > 1 ? "s" : "");
    fflush(stdout);
  }
  MPI_Finalize();
  return all[1] ? 1 : 0;
}
