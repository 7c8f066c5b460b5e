/* Environment settings (HB_*), read once on rank 0 and broadcast.
 *
 * Open MPI passes a variable to remote ranks only with `mpirun -x VAR`, and
 * srun passes the submitting shell's environment: a setting seen by some
 * ranks and not others would change their agreements or the file layout.
 * So no code reads HB_* with getenv: rank 0 reads them all here, right
 * after MPI_Init, and every rank uses rank 0's values.  Every variable is
 * documented in docs/operations.md ("Environment"). */
#ifndef HB_SETTINGS_H
#define HB_SETTINGS_H

#include <mpi.h>

typedef struct {
  double checkpoint_seconds; /* HB_CHECKPOINT_SECONDS: between checkpoints (default 30) */
  double result_chunk_bytes; /* HB_RESULT_CHUNK_BYTES: navigation result chunks (default 16384) */
  int write_hdf5;            /* HB_WRITE=hdf5: HDF5's collective writes, not whole-chunk ones, and zlib */
  int read_hdf5;             /* HB_READ=hdf5: HDF5's reads, not raw chunk reads */
  int read_block;            /* HB_READ=block: whole blocks, never chunk streams */
  int overlap;               /* HB_OVERLAP set: a worker thread even on one CPU */
  int trace;                 /* HB_TRACE set and not 0: print the error trace */
  int mpi_nodelay;           /* HB_MPI_NODELAY (default 1): TCP_NODELAY on the launcher's sockets */
  /* fault injection for the tests (docs/checkpoint.md); -1: unset */
  long fault_signal_after;   /* HB_FAULT_SIGNAL_AFTER=N */
  long fault_kill_after;     /* HB_FAULT_KILL_AFTER=N */
  long fault_round_delay_ms; /* HB_FAULT_ROUND_DELAY_MS=MS */
  int fault_slow_rank;       /* HB_FAULT_SLOW_RANK=R:MS */
  long fault_slow_ms;
  char fault_fail[64]; /* HB_FAULT_FAIL=SITE[@RANK]: hb_fault(SITE) fails there */
  int fault_fail_rank; /* -1: every rank */
  /* those of the variables above that were set, "NAME=value" (truncated to
   * fit), for each result's provenance: a run is reproducible from it */
  char env[16][128];
  int nenv;
} hb_settings;

/* Collective: rank 0 reads the environment, every rank gets its values. */
int hb_settings_share(MPI_Comm comm);
/* The settings; before hb_settings_share (unit tests, serial commands),
 * this process's own environment. */
const hb_settings *hb_settings_get(void);
/* Unit tests: read this process's environment again at the next get. */
void hb_settings_reset(void);
/* Fault injection: nonzero when HB_FAULT_FAIL names `site` for this rank
 * (the error paths' tests make one rank fail at one place). */
int hb_fault(const char *site);

#endif
