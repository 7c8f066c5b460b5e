/* Plan, then execute: the job's single pass over the data. */
#ifndef HB_ENGINE_H
#define HB_ENGINE_H

#include <mpi.h>
#include "hb_job.h"

typedef enum { HB_RUN, HB_DRY_RUN, HB_VALIDATE } hb_run_mode;

/* Collective.  Returns 0 or an exit code agreed by every rank. */
int hb_engine_run(MPI_Comm comm, hb_job *job, hb_run_mode mode);

/* `hyperbatch inspect FILE` (serial). */
int hb_inspect(const char *path);
/* `hyperbatch init FILE`: a commented starter job for FILE on stdout. */
int hb_init_job(const char *path);

#endif
