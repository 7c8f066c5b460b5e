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
#include "hb_input.h"
#include "hb_params.h"
#include "hb_plan.h"

#define HB_MAX_OUTPUTS 8

/* The data as a step sees it: the input's navigation axes, and the signal
 * after the preprocess steps before this one (its shape, axes and dtype may
 * differ from the file's). */
typedef struct hb_stream {
  int ndim, nav_dim, sig_dim;
  hsize_t shape[HB_MAXDIM]; /* navigation, then signal */
  hb_axis axes[HB_MAXDIM];
  hb_dtype dtype;
  size_t sig_size;          /* elements per pattern */
  const hb_input *input;    /* the file: path, title, signal type */
  int preprocessed;         /* preprocess steps made these patterns from the file's */
} hb_stream;

/* An axis named in a job, as HyperSpy's axis= takes it: a name, or an
 * index in HyperSpy's natural order (navigation axes x, y, ... first, then
 * signal axes x, y, ...; negative from the end).  Gives the array axis
 * (navigation first, C order), or an HB_EINVALID error at `where`. */
int hb_stream_axis(const hb_stream *s, const char *text, const char *where, int *axis);
/* 1 when the stream is a single pattern whose size-1 navigation axis the
 * reader added (hb_input.virtual_nav): HyperSpy's axes are the signal's. */
int hb_stream_virtual_nav(const hb_stream *s);
/* HyperSpy's UniformDataAxis.value2index with rounding=round: the index of
 * the sample nearest `value` (half towards zero for values >= 0, away from
 * zero below, after a truncation to 12 decimals); not clipped. */
long long hb_axis_value2index(const hb_axis *a, double value);
/* The point of a non-uniform axis (n points) nearest v, which lies within
 * them: the first of two as near, after a nudge of 1e-12 of the smallest
 * step away from zero, as DataAxis.value2index's numba_closest_index_round. */
long long hb_axis_nearest_point(const double *pts, size_t n, double v);
/* HyperSpy's axis.axis into x[0 .. n): a non-uniform axis' points
 * (returned, else NULL), or its line offset + scale * i. */
const double *hb_axis_values(const hb_axis *a, size_t n, double *x);

/* scipy 1.10's simps(y, x) (even='avg') over the samples x[0 .. n) as
 * weights w[0 .. n): sum(w y) is its result up to the order of the
 * additions (kernels/axisops.c); with ends 0, an even n's two end
 * trapezoids are left out. */
void hb_simpson_weights(const double *x, size_t n, int ends, double *w);

/* The stream of the input file as it is. */
void hb_stream_of_input(const hb_input *in, hb_stream *s);
/* Set the signal part of s (its shape, axes, dtype); sig_size follows. */
void hb_stream_set_signal(hb_stream *s, int sig_dim, const hsize_t *shape, const hb_axis *axes, hb_dtype dtype);

/* What a result is.  Every per-pattern result has an item: an array of
 * `shape` (ndim may be 0: one value) for every pattern; the engine owns the
 * buffers, their placement in the file and the writing (docs/architecture.md,
 * "Results"). */
typedef enum {
  HB_OUT_NAV,    /* one item per pattern: navigation shape x item shape */
  HB_OUT_SIGNAL, /* reduced over the navigation axes: one array of `shape` (by default the stream's
                    signal shape), combined over the block tree with the kernel's init/merge/finish */
  HB_OUT_GLOBAL, /* any shape, float64, written by the kernel's `global` function */
  HB_OUT_FULL,   /* a transformed dataset: one item (a new pattern) per pattern, written block by block
                    (a transform's output, or any large per-pattern item) */
  HB_OUT_RAGGED, /* a list of records of item shape per pattern, of any length (find_peaks) */
} hb_out_kind;

/* A FULL result over a changed scan: a cropped or thinned one (crop of a
 * navigation axis, with a step), a binned one (rebin with navigation
 * factors), or one reduced over some navigation axes (sum over 'x').
 * Result position o along navigation axis d takes the input positions
 * first[d] + o * step[d] + [0, factor[d]), for o < shape[d] (a bin: step =
 * factor; a thinned scan: factor 1, step above 1); the dataset's navigation
 * is `shape` with `axes`, less the `dropped` axes (reduced: factor the
 * axis' size, shape 1).  A factor above 1 needs first[d] = 0.  The engine
 * aligns blocks to the steps, so every bin lies in one block and a block
 * edge falls on a result chunk's edge.  `block` gets the block's whole
 * output buffer and places each pattern with hb_nav_map_place; each place
 * holds an item, zeroed when the block starts, or, when `partial_bytes` is
 * set, a partial that the kernel's `init` sets then and its `finish` turns
 * into the item (at its start) when the block ends (hb_output_slot_bytes). */
struct hb_block;
typedef struct {
  int on;
  hsize_t first[HB_MAXDIM], step[HB_MAXDIM], factor[HB_MAXDIM], shape[HB_MAXDIM];
  int dropped[HB_MAXDIM];
  hb_axis axes[HB_MAXDIM];
  size_t partial_bytes;
} hb_nav_map;
/* The block [start, start + count)'s region of the result along navigation
 * axis d: its first result position (*first) and how many (0: none). */
hsize_t hb_nav_map_region(const hb_nav_map *m, int d, hsize_t start, hsize_t count, hsize_t *first);
/* Pattern p of call b: its place among the block's result positions (C
 * order over the block's region), or -1 when it is outside the result. */
long long hb_nav_map_place(const hb_nav_map *m, const struct hb_block *b, size_t p);

typedef struct {
  char name[128];     /* result name: "<kernel>" or "<kernel>_<part>" */
  hb_out_kind kind;
  hb_dtype dtype;     /* stored dtype */
  hb_dtype acc;       /* HB_OUT_SIGNAL: dtype of the partial (accumulator) */
  const char *quantity;
  const char *signal_type; /* metadata Signal/signal_type of the result; NULL: "" */
  const char *title;  /* metadata General/title; NULL: the name (the kernel keeps the text) */
  int pass;           /* 1 (0 too): the kernel's first pass; 2: its next, ... (a histogram's bins need
                         its range first): block fills it in that pass only (b->pass) */
  int hidden;         /* SIGNAL only: for the kernel's later passes (b->earlier), not written */
  int deferred;       /* SIGNAL only, in a later pass: its shape is final only after the earlier
                         passes (a histogram's bin count): `refine` sets it (no larger than
                         declared), and the engine creates its dataset then */
  size_t partial_elems; /* SIGNAL: elements of `acc` in the partial when they are not the result's
                           (std keeps a count, a mean and a sum of squares); finish then leaves the
                           result, in `dtype`, at the partial's start */
  /* GLOBAL: the whole shape and its axes (array order); with `nav_chunks`
   * the last nav_dim axes are the input's navigation axes, chunked like the
   * blocks so that each rank writes whole chunks.  NAV, FULL, RAGGED: the
   * item's shape and axes (the navigation axes come first in the file).
   * SIGNAL: the reduced shape and axes; ndim 0 means the stream's signal
   * shape. */
  int ndim;
  hsize_t shape[HB_MAXDIM];
  hb_axis axes[HB_MAXDIM];
  int nav_chunks;
  hb_nav_map nav_map;  /* FULL only: a cropped or binned scan */
} hb_output;

/* A RAGGED output's buffer in `block` (out[i] is an hb_ragged *): pattern
 * p of the call (0 .. b->npos - 1) gets n records of the output's item
 * shape and dtype, appended; a pattern given none has an empty list. */
typedef struct hb_ragged hb_ragged;
void hb_ragged_add(hb_ragged *r, size_t p, const void *records, size_t n);
/* The kernel could not make the lists: the engine stops with an error. */
void hb_ragged_out_of_memory(hb_ragged *r);

/* Elements in one item (NAV, FULL, RAGGED record), or in the SIGNAL
 * result when its shape is set: the product of the shape, 1 for ndim 0. */
size_t hb_output_elems(const hb_output *o);
/* Bytes of one item of a per-pattern result, in the stored dtype: the one
 * place where a result's size per position is known. */
size_t hb_output_item_bytes(const hb_output *o);
/* Bytes of one position in a block's buffer: the item, or a changed scan's
 * partial when larger (hb_nav_map). */
size_t hb_output_slot_bytes(const hb_output *o);

/* One block of patterns, as the engine hands it to every kernel. */
typedef struct hb_block {
  size_t index;            /* global block number, independent of rank count */
  int nav_dim;
  hsize_t start[HB_MAXDIM];
  hsize_t count[HB_MAXDIM];
  size_t npos;             /* patterns handed over in this call */
  size_t pos0;             /* the call's first pattern's place in the block (C order over
                              count): only for a nav_map result (hb_nav_map), which
                              turns streaming off; in a streamed call the patterns are
                              a chunk, not a run of the rectangle */
  size_t sig_size;         /* pixels per pattern */
  hb_dtype dtype;
  const void *data;        /* npos × sig_size, in the stream's dtype (the file's, unless a
                              preprocess step changed it) */
  const void *const *uses; /* per hb_kernel_use slot: the used result's items for these npos
                              patterns, or its reduced array (the same in every call) */
  int pass;                /* the kernel's pass (1, 2, ...): fill the outputs of this pass only */
  const void *const *earlier; /* per output: the kernel's own reduced output of an earlier pass,
                              finished (NULL for the others) */
} hb_block;

typedef struct hb_kernel hb_kernel;
typedef struct hb_global hb_global;

/* Kernels of one family evaluated together: every kernel of the job whose
 * def has `fuse`, in job order, when there are two or more of them.  The
 * family plans one shared structure over all of them (e.g. one merged pixel
 * list for every virtual detector) so that each pattern is read once. */
typedef struct hb_fused {
  const struct hb_kernel_def *def;
  const hb_stream *in;
  int n;
  hb_kernel **k;            /* the members, planned, in job order */
  void *state;              /* owned by the family; freed by fused_destroy */
} hb_fused;

typedef struct hb_kernel_def {
  const char *op;
  const char *summary;
  const hb_param_spec *params;
  const char *outputs_doc;  /* for `hyperbatch kernels` and docs/kernels.md */
  int (*plan)(hb_kernel *k, const hb_stream *in, const hb_params *p);
  /* Called on successive runs of a block's patterns (cache-sized, so that
   * every kernel finds them in cache), in every pass the kernel has outputs
   * in (b->pass; out[i] is NULL for an output of another pass).  out[i] is
   * the i-th output's buffer: npos items (HB_OUT_NAV, HB_OUT_FULL), or the
   * block's partial (HB_OUT_SIGNAL), which `init` prepared and every call
   * accumulates into.
   * The engine fixes the order of a block's patterns, but where it cuts them
   * into runs depends on the read path and the cache size: a kernel's values
   * may depend on that order, never on the cuts. */
  void (*block)(const hb_kernel *k, const hb_block *b, void *const *out);
  /* HB_OUT_SIGNAL: n is the result's elements (hb_output_elems, or the
   * signal's); the partial holds partial_elems (or n) of acc. */
  void (*merge)(const hb_kernel *k, int iout, void *acc, const void *other, size_t n);
  void (*finish)(const hb_kernel *k, int iout, void *acc, size_t n, uint64_t npatterns);
  void (*destroy)(hb_kernel *k);
  /* Multi-pass kernels (block == NULL): collective on every rank, after the
   * single pass.  Reads its blocks again through hb_global_read, reduces
   * over hb_tree in block order, writes through hb_global_write. */
  int (*global)(hb_kernel *k, hb_global *g);
  /* HB_OUT_SIGNAL: set a partial to the identity of its merge (0, -inf, ...). */
  void (*init)(const hb_kernel *k, int iout, void *acc, size_t n);
  /* Optional, collective (every rank gets the same b->earlier): at the start
   * of each of the kernel's later passes, before its first block, with its
   * earlier passes' reduced outputs (earlier[i], NULL for others): set the
   * final shape of its deferred outputs, precompute what the pass needs. */
  int (*refine)(hb_kernel *k, const void *const *earlier);
  /* Optional fusion (hb_fused): after every kernel is planned, `fuse` plans
   * the family's members together; `fused_block` then replaces their `block`
   * calls, once per run, with out[] holding every member's outputs in member
   * order; `fused_destroy` runs before the members' destroy.  A member's own
   * `block` must give the same values: it is used when a job has only one. */
  int (*fuse)(hb_fused *f);
  void (*fused_block)(const hb_fused *f, const hb_block *b, void *const *out);
  void (*fused_destroy)(hb_fused *f);
  int complex_patterns;     /* plans on complex patterns too; others are refused them (hb_stream_check_real) */
} hb_kernel_def;

#define HB_MAX_USES 4
struct hb_kernel {
  const hb_kernel_def *def;
  const struct hb_transform_def *transform; /* a transform named as a kernel (engine) */
  const char *name;         /* from the job */
  const hb_node *spec;      /* the job's map for this kernel */
  int nout;
  hb_output out[HB_MAX_OUTPUTS];
  void *state;              /* owned by the kernel; freed by destroy */
  int nuses;                /* results of other kernels this one reads (hb_kernel_use) */
  struct {
    char name[128];
    const char *where;      /* the job position that names it */
    const hb_output *o;     /* resolved by the engine after every plan */
  } use[HB_MAX_USES];
};

/* In plan: kernel k reads result `name` of another kernel of the job (a
 * per-pattern origin, say); `where` is the job position that names it.
 * Returns the slot: in `block`, b->uses[slot] holds the used result's items
 * for the same patterns (a NAV result: the kernel runs after its producer,
 * in the same pass), or its reduced array (a SIGNAL result: the kernel runs
 * in a later pass).  The engine checks the name once every kernel is
 * planned, orders the kernels, and refuses a cycle; hb_kernel_used (after
 * planning) gives the resolved output, for its shape and dtype. */
int hb_kernel_use(hb_kernel *k, const char *name, const char *where, int *slot);

extern const hb_kernel_def *const hb_kernel_table[]; /* NULL-terminated */
const hb_kernel_def *hb_kernel_find(const char *op);
/* Convenience for plan functions: a new output; hb_kernel_output(k, i)
 * then gives it to set its shape, axes or signal type. */
int hb_kernel_add_output(hb_kernel *k, const char *part, hb_out_kind kind,
                         hb_dtype dtype, hb_dtype acc, const char *quantity);
hb_output *hb_kernel_output(hb_kernel *k, int i);
/* Set an output's item (or reduced) shape and axes; axes may be NULL
 * (uncalibrated, named nothing). */
void hb_output_set_shape(hb_output *o, int ndim, const hsize_t *shape, const hb_axis *axes);

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

/* ---- transforms ------------------------------------------------------------ */

/* A per-pattern transform: a pattern of one stream to a pattern of another
 * (crop, rebin, change_dtype, fft, ...).  In `preprocess` every kernel sees
 * the stream after it; named as a kernel, its output is written as a FULL
 * result (a transformed dataset).  One row of hb_transform_table, one
 * family file in kernels/. */
typedef struct hb_transform hb_transform;
typedef struct hb_transform_def {
  const char *op;
  const char *summary;
  const hb_param_spec *params;
  /* Check the parameters against the stream before, t->in; set t->out (a
   * copy of t->in on entry) to the stream after, and precompute. */
  int (*plan)(hb_transform *t, const hb_params *p);
  /* b->npos patterns of t->in at `in` to t->out at `out`; out == in for
   * `in_place` transforms, and `in` is left as it is by the others. */
  void (*apply)(const hb_transform *t, const hb_block *b, void *in, void *out);
  void (*destroy)(hb_transform *t);
  int in_place;             /* t->out has t->in's size and apply may work in place */
  int complex_patterns;     /* takes complex patterns too (see hb_kernel_def) */
} hb_transform_def;
struct hb_transform {
  const hb_transform_def *def;
  hb_stream in, out;
  int as_kernel;            /* named as a kernel, not a preprocess step: it may change the scan */
  hb_nav_map nav_map;       /* set by plan when it crops or bins the scan (as_kernel only) */
  void *state;              /* owned by the transform; freed by destroy */
};
extern const hb_transform_def *const hb_transform_table[];
const hb_transform_def *hb_transform_find(const char *op);

/* Complex patterns (a complex input, or an fft in preprocess) reach only
 * ops that take them: any other op is a job error at `where` that says how
 * to make them real (preprocess complex_part). */
int hb_stream_check_real(const hb_stream *s, const char *op, int takes_complex, const char *where);

/* Print the registry (`hyperbatch kernels [OP]`), as text or markdown. */
int hb_kernels_print(const char *op, int markdown);

#endif
