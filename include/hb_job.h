/* The job file (contract: docs/contract.md).  Rank 0 reads the bytes and
 * broadcasts them; every rank parses and checks them, so every rank holds the
 * same job and the same verdict. */
#ifndef HB_JOB_H
#define HB_JOB_H

#include <mpi.h>
#include "hb_params.h"
#include "hb_yaml.h"

typedef enum { HB_PROGRESS_AUTO, HB_PROGRESS_BAR, HB_PROGRESS_LINES, HB_PROGRESS_OFF } hb_progress_mode;

typedef struct hb_job {
  char *path;     /* as given on the command line; used in messages */
  char *dir;      /* folder of the job file: relative paths written in the job resolve here (hb_path_resolve) */
  char *text;     /* the job text exactly as read */
  size_t len;
  char **sets;    /* every --set KEY=VALUE, in order */
  int nsets;
  hb_node *root;
  /* The typed parameters (hb_params.h), bound to the job's tables: the job,
   * and its input, output and run maps (run: every default when absent).
   * The fields below are read from them. */
  const hb_params *params, *input, *output, *run;

  /* input */
  char *input_file;    /* resolved path (hb_path_resolve) */
  const char *input_file_as_written;
  const char *input_signal;   /* NULL: the only signal */
  const char *input_dataset;  /* generic HDF5: path of the array */
  int nav_dim;                /* -1: from the file */
  const hb_node *input_axes;  /* optional overrides, NULL if absent */

  /* output */
  char *output_file;   /* resolved path (hb_path_resolve) */
  int overwrite;
  int gzip;
  int gzip_small;      /* output.gzip_effort: small */
  int direct_io;       /* output.direct_io: large writes past the page cache */
  int previews;

  const hb_node *preprocess; /* sequence or NULL */
  const hb_node *kernels;    /* sequence, at least one item */

  /* run */
  long long block;  /* navigation positions per block; 0 = auto */
  int threads;
  int checkpoint;
  hb_progress_mode progress;
  /* run.mpiio_hints as an MPI_Info (MPI_INFO_NULL if none): passed to every
   * MPI-IO file access, input and output alike */
  MPI_Info mpiio_info;
  char *profile;     /* run.profile (or --profile), resolved: JSON timings, NULL if unset */
  int resume;        /* run --resume: continue from <output>.partial's checkpoint */
} hb_job;

/* Collective over comm: read (rank 0), broadcast, parse, apply --set, check
 * the schema (including each kernel's parameter table).  Errors are
 * HB_EINVALID at "job.yaml:LINE:COL" (exit 2), HB_EIO if unreadable. */
int hb_job_load(MPI_Comm comm, const char *path, char **sets, int nsets, hb_job *job);
/* Same, from text in memory (unit tests and fuzzing). */
int hb_job_parse(const char *path, const char *text, size_t len, char **sets, int nsets, hb_job *job);
void hb_job_free(hb_job *job);

#endif
