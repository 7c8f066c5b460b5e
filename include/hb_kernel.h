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

#define HB_MAX_OUTPUTS 8

typedef enum {
  HB_OUT_NAV,    /* navigation-shaped: one value per pattern */
  HB_OUT_SIGNAL, /* signal-shaped: reduced over the navigation axes */
} hb_out_kind;

typedef struct {
  char name[128];     /* result name: "<kernel>" or "<kernel>_<part>" */
  hb_out_kind kind;
  hb_dtype dtype;     /* stored dtype */
  hb_dtype acc;       /* HB_OUT_SIGNAL: dtype of the partial (accumulator) */
  const char *quantity;
} hb_output;

/* One block of patterns, as the engine hands it to every kernel. */
typedef struct hb_block {
  size_t index;            /* global block number, independent of rank count */
  int nav_dim;
  hsize_t start[HB_MAXDIM];
  hsize_t count[HB_MAXDIM];
  size_t npos;             /* patterns in this block, C order of the rectangle */
  size_t sig_size;         /* pixels per pattern */
  hb_dtype dtype;
  const void *data;        /* npos × sig_size, in the file's dtype */
} hb_block;

typedef struct hb_kernel hb_kernel;

typedef struct hb_kernel_def {
  const char *op;
  const char *summary;
  const hb_param_spec *params;
  const char *outputs_doc;  /* for `hyperbatch kernels` and docs/kernels.md */
  int (*plan)(hb_kernel *k, const hb_input *in, const hb_node *spec);
  /* out[i] is the i-th output's buffer: npos values (HB_OUT_NAV) or sig_size
   * partial values (HB_OUT_SIGNAL, to be fully overwritten). */
  void (*block)(const hb_kernel *k, const hb_block *b, void *const *out);
  void (*merge)(const hb_kernel *k, int iout, void *acc, const void *other, size_t n);
  void (*finish)(const hb_kernel *k, int iout, void *acc, size_t n, uint64_t npatterns);
  void (*destroy)(hb_kernel *k);
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
