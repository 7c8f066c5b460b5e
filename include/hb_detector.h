/* Detector geometry (kernels/virtual.c): the pixels a `point`, `circle`,
 * `annulus`, `rectangle` or `mask` map covers.  Shared by virtual_image and
 * by the decomposition's navigation/signal masks. */
#ifndef HB_DETECTOR_H
#define HB_DETECTOR_H

#include <stddef.h>
#include <stdint.h>

#include "hb_input.h"
#include "hb_params.h"

typedef struct {
  size_t n;
  uint32_t *idx; /* C-order offsets into the space */
  double *w;     /* NULL: every weight is 1 (shape: mask has weights) */
} hb_detector;

extern const hb_param_spec hb_detector_params[];

/* Plan `det` (parameters bound to hb_detector_params) over a space of nd
 * axes (array order: dims, axes).  Geometric shapes need nd == 2 (y, x);
 * `shape: mask` takes a dataset of exactly dims.  `space` names the space in
 * messages ("signal", "navigation").  Errors point at the job; an empty
 * detector is an error. */
int hb_detector_plan(const hb_params *det, int nd, const hsize_t *dims, const hb_axis *axes, const char *space,
                     hb_detector *d);
/* The same for {shape: mask} given by its parts: dataset `dset` of the file
 * at `path` (resolved; `file` as written, for messages).  Errors about the
 * file and the dataset point at where_file, the others at `where`. */
int hb_detector_plan_mask(const char *path, const char *file, const char *dset, const char *where_file,
                          const char *where, int nd, const hsize_t *dims, const char *space, hb_detector *d);
void hb_detector_free(hb_detector *d);

#endif
