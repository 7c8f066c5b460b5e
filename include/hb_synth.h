/* Built-in synthetic datasets with their ground truth in the metadata. */
#ifndef HB_SYNTH_H
#define HB_SYNTH_H

#include <stdint.h>
#include "hb_input.h"

typedef struct {
  const char *kind;     /* "4dstem" or "eels" */
  const char *out;
  int ndim;             /* 0: the kind's default shape */
  hsize_t shape[HB_MAXDIM];
  int has_chunks;
  hsize_t chunk[HB_MAXDIM];
  uint64_t seed;
  int gzip;
  int has_dtype;
  hb_dtype dtype;       /* default uint16 (4dstem), float32 (eels) */
} hb_synth_opts;

int hb_synth(const hb_synth_opts *o);



/* `hyperbatch synth KIND OUT.hspy [--shape a,b,..] [--chunks a,b,..]
 *  [--seed N] [--compression gzip|none] [--dtype uint16|...]`; returns an exit code. */
int hb_synth_cli(int argc, char **argv);
#endif
