/* Named phases, timed on every rank and summarised across ranks. */
#ifndef HB_TIMING_H
#define HB_TIMING_H

#include <mpi.h>

/* wait: the block loop's agreements between windows, where a rank that
 * finished its window sooner waits for the others, and checkpoint saves. */
typedef enum { HB_PH_OPEN, HB_PH_READ, HB_PH_KERNELS, HB_PH_REDUCE, HB_PH_WRITE, HB_PH_WAIT, HB_PH_COUNT } hb_phase;
extern const char *const hb_phase_names[HB_PH_COUNT];

typedef struct {
  double seconds[HB_PH_COUNT];
  double bytes[HB_PH_COUNT];  /* bytes read (READ) or written (WRITE) */
  double direct_bytes;        /* of the output's, written past the page cache (output.direct_io) */
} hb_timers;

typedef struct {
  double min, median, max;
} hb_stat3;

double hb_now(void); /* monotonic seconds */
/* Collective: min/median/max of each phase's seconds across ranks, and the
 * total bytes; identical on every rank. */
int hb_timers_summary(MPI_Comm comm, const hb_timers *local, hb_stat3 *sec, double *total_bytes);

/* Collective: can run.profile be written?  Called before any pixel is read,
 * since the profile is written last, after the output.  With create (run),
 * rank 0 makes its folders and opens it; without (validate), it writes
 * nothing.  Errors are at run.profile's line:col (or its --set). */
struct hb_job;
int hb_profile_check(MPI_Comm comm, const struct hb_job *job, int create);

/* Collective: write every rank's seconds and bytes per phase as JSON (rank 0
 * writes `path`). */
int hb_profile_write(MPI_Comm comm, const char *path, const hb_timers *local, size_t blocks_here, double wall,
                     size_t nblocks);

#endif
