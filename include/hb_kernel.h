/* The kernel registry.  A kernel is one row of hb_kernel_table (kernels/
 * registry.c) and one file per family under src/kernels/.  A row gives the op
 * name, its parameter schema, what it outputs, and four functions:
 *
 *   plan    read parameters, check them against the input, declare outputs,
 *           precompute everything the hot path needs (index lists, weights)
 *   block   per-block function: no validation, no allocation
 *   merge   combine two partial results of a signal-shaped output
 *   finish  turn the final partial into the result (e.g. divide by count)
 *
 * Outputs are navigation-shaped (one value per pattern, written by the rank
 * that read the pattern) or signal-shaped (a reduction over the navigation
 * axes, combined over a tree fixed by the block numbering).  New output kinds
 * (per-pattern vectors, ragged lists, full-size data) and multi-pass kernels
 * are additions to hb_out_kind and hb_kernel_def; see docs/architecture.md. */
#ifndef HB_KERNEL_H
#define HB_KERNEL_H

#include <stddef.h>
#include <stdint.h>
#include "hb_dtype.h"
#include "hb_hspy.h"
#include "hb_params.h"
#include "hb_plan.h"

#define HB_MAX_OUTPUTS 8

typedef enum {
  HB_OUT_NAV,    /* navigation-shaped: one value per pattern */
  HB_OUT_SIGNAL, /* signal-shaped: reduced over the navigation axes */
  HB_OUT_GLOBAL, /* any shape, float64, written by the kernel's `global` function */
} hb_out_kind;

typedef struct {
  char name[128];     /* result name: "<kernel>" or "<kernel>_<part>" */
  hb_out_kind kind;
  hb_dtype dtype;     /* stored dtype */
  hb_dtype acc;       /* HB_OUT_SIGNAL: dtype of the partial (accumulator) */
  const char *quantity;
  /* HB_OUT_GLOBAL only: shape and axes (array order).  With `nav_chunks`
   * the last nav_dim axes are the input's navigation axes, chunked like the
   * blocks so that each rank writes whole chunks. */
  int ndim;
  hsize_t shape[HB_MAXDIM];
  hb_axis axes[HB_MAXDIM];
  int nav_chunks;
} hb_output;

/* One block of patterns, as the engine hands it to every kernel. */
typedef struct hb_block {
  size_t index;            /* global block number, independent of rank count */
  int nav_dim;
  hsize_t start[HB_MAXDIM];
  hsize_t count[HB_MAXDIM];
  size_t npos;             /* patterns handed over in this call */
  size_t pos0;             /* for the engine: where the call's navigation values go;
                              kernels must not use it (a streamed call's patterns
                              are a chunk, not a run of the rectangle) */
  size_t sig_size;         /* pixels per pattern */
  hb_dtype dtype;
  const void *data;        /* npos × sig_size, in the file's dtype */
} hb_block;

typedef struct hb_kernel hb_kernel;
typedef struct hb_global hb_global;

/* Kernels of one family evaluated together: every kernel of the job whose
 * def has `fuse`, in job order, when there are two or more of them.  The
 * family plans one shared structure over all of them (e.g. one merged pixel
 * list for every virtual detector) so that each pattern is read once. */
typedef struct hb_fused {
  const struct hb_kernel_def *def;
  const hb_input *in;
  int n;
  hb_kernel **k;            /* the members, planned, in job order */
  void *state;              /* owned by the family; freed by fused_destroy */
} hb_fused;

typedef struct hb_kernel_def {
  const char *op;
  const char *summary;
  const hb_param_spec *params;
  const char *outputs_doc;  /* for `hyperbatch kernels` and docs/kernels.md */
  int (*plan)(hb_kernel *k, const hb_input *in, const hb_node *spec);
  /* Called on successive runs of a block's patterns (cache-sized, so that
   * every kernel finds them in cache).  out[i] is the i-th output's buffer:
   * npos values (HB_OUT_NAV), or the block's sig_size partial values
   * (HB_OUT_SIGNAL), which `init` prepared and every call accumulates into.
   * The engine fixes the order of a block's patterns, but where it cuts them
   * into runs depends on the read path and the cache size: a kernel's values
   * may depend on that order, never on the cuts. */
  void (*block)(const hb_kernel *k, const hb_block *b, void *const *out);
  void (*merge)(const hb_kernel *k, int iout, void *acc, const void *other, size_t n);
  void (*finish)(const hb_kernel *k, int iout, void *acc, size_t n, uint64_t npatterns);
  void (*destroy)(hb_kernel *k);
  /* Multi-pass kernels (block == NULL): collective on every rank, after the
   * single pass.  Reads its blocks again through hb_global_read, reduces
   * over hb_tree in block order, writes through hb_global_write. */
  int (*global)(hb_kernel *k, hb_global *g);
  /* HB_OUT_SIGNAL: set a partial to the identity of its merge (0, -inf, ...). */
  void (*init)(const hb_kernel *k, int iout, void *acc, size_t n);
  /* Optional fusion (hb_fused): after every kernel is planned, `fuse` plans
   * the family's members together; `fused_block` then replaces their `block`
   * calls, once per run, with out[] holding every member's outputs in member
   * order; `fused_destroy` runs before the members' destroy.  A member's own
   * `block` must give the same values: it is used when a job has only one. */
  int (*fuse)(hb_fused *f);
  void (*fused_block)(const hb_fused *f, const hb_block *b, void *const *out);
  void (*fused_destroy)(hb_fused *f);
} hb_kernel_def;

struct hb_kernel {
  const hb_kernel_def *def;
  const char *name;         /* from the job */
  const hb_node *spec;      /* the job's map for this kernel */
  int nout;
  hb_output out[HB_MAX_OUTPUTS];
  void *state;              /* owned by the kernel; freed by destroy */
};

extern const hb_kernel_def *const hb_kernel_table[]; /* NULL-terminated */
const hb_kernel_def *hb_kernel_find(const char *op);
/* Convenience for plan functions. */
int hb_kernel_add_output(hb_kernel *k, const char *part, hb_out_kind kind,
                         hb_dtype dtype, hb_dtype acc, const char *quantity);

/* What a global kernel is given.  Blocks [first, end) are this rank's; the
 * engine owns everything here. */
struct hb_global {
  MPI_Comm comm;
  int rank, size;
  int threads;                    /* run.threads */
  const hb_input *in;
  const hb_partition *part;
  size_t first, end;
  size_t sig_size;
  void *engine;                   /* private to the engine */
};
/* Read block b (any block, usually one of [first, end)) with the job's
 * preprocess steps applied.  buf holds part->max_block_pos × sig_size values
 * of in->dtype; blk describes it.  Independent I/O. */
int hb_global_read(hb_global *g, size_t b, hb_block *blk, void *buf);
/* Collective: write [start, start+count) of output iout of k from buf (C
 * order, float64).  Every rank calls it; start == NULL selects nothing. */
int hb_global_write(hb_global *g, const hb_kernel *k, int iout, const hsize_t *start, const hsize_t *count,
                    const double *buf);
/* The HDF5 group of output iout, for metadata (collective: identical values
 * on every rank). */
hid_t hb_global_group(hb_global *g, const hb_kernel *k, int iout);

/* Preprocessing: per-pattern in-place transforms applied before every kernel.
 * A smaller table of the same shape (preprocess/registry in kernels/). */
typedef struct hb_prep hb_prep;
typedef struct hb_prep_def {
  const char *op;
  const char *summary;
  const hb_param_spec *params;
  int (*plan)(hb_prep *p, const hb_input *in, const hb_node *spec);
  void (*apply)(const hb_prep *p, hb_block *b, void *data);
  void (*destroy)(hb_prep *p);
} hb_prep_def;
struct hb_prep {
  const hb_prep_def *def;
  void *state;
};
extern const hb_prep_def *const hb_prep_table[];
const hb_prep_def *hb_prep_find(const char *op);

/* Print the registry (`hyperbatch kernels [OP]`), as text or markdown. */
int hb_kernels_print(const char *op, int markdown);

#endif
