#include "hb_timing.h"
#include "hb_error.h"
#include "hb_settings.h"

#include <stdlib.h>
#include <time.h>

const char *const hb_phase_names[HB_PH_COUNT] = {"open", "read", "kernels", "reduce", "write", "wait"};

double hb_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int hb_timers_summary(MPI_Comm comm, const hb_timers *local, hb_stat3 *sec, double *total_bytes) {
  int size;
  MPI_Comm_size(comm, &size);
  double *all = hb_fault("timing") ? NULL : malloc(sizeof(double) * HB_PH_COUNT * (size_t)size), col[size];
  /* every rank learns of a failed allocation before the gather */
  int rc = hb_agree(comm, all ? 0 : HB_FAIL(HB_EINTERNAL, "timing", "out of memory gathering the timings"));
  if (rc) {
    free(all);
    return rc;
  }
  HB_MPI(MPI_Allgather(local->seconds, HB_PH_COUNT, MPI_DOUBLE, all, HB_PH_COUNT, MPI_DOUBLE, comm));
  for (int p = 0; p < HB_PH_COUNT; p++) {
    for (int r = 0; r < size; r++) col[r] = all[r * HB_PH_COUNT + p];
    qsort(col, (size_t)size, sizeof col[0], cmp_double);
    sec[p].min = col[0];
    sec[p].max = col[size - 1];
    sec[p].median = size % 2 ? col[size / 2] : 0.5 * (col[size / 2 - 1] + col[size / 2]);
  }
  free(all);
  HB_MPI(MPI_Allreduce(local->bytes, total_bytes, HB_PH_COUNT, MPI_DOUBLE, MPI_SUM, comm));
  return 0;
}
