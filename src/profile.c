/* run.profile / --profile: every rank's phase timings and bytes as JSON, for
 * scaling studies (tests/bench/scaling.sh reads the same numbers from the
 * provenance; this is the form other tools read). */
#include <stdio.h>
#include <stdlib.h>

#include "hb_error.h"
#include "hb_timing.h"

int hb_profile_write(MPI_Comm comm, const char *path, const hb_timers *local, size_t blocks_here, double wall,
                     size_t nblocks) {
  int rank, size;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  enum { W = 2 * HB_PH_COUNT + 1 };
  double mine[W], *all = rank == 0 ? malloc(sizeof(double) * W * (size_t)size) : NULL;
  for (int p = 0; p < HB_PH_COUNT; p++) mine[p] = local->seconds[p], mine[HB_PH_COUNT + p] = local->bytes[p];
  mine[W - 1] = (double)blocks_here;
  int rc = rank == 0 && !all ? hb_error_raise(HB_EINTERNAL, __FILE__, __LINE__, "memory", "out of memory") : 0;
  HB_CALL(hb_agree(comm, rc));
  HB_MPI(MPI_Gather(mine, W, MPI_DOUBLE, all, W, MPI_DOUBLE, 0, comm));
  if (rank == 0) {
    FILE *f = fopen(path, "w");
    if (!f) {
      rc = hb_error_raise(HB_EIO, __FILE__, __LINE__, path, "cannot write the profile");
    } else {
      fprintf(f, "{\n  \"ranks\": %d,\n  \"blocks\": %zu,\n  \"wall_s\": %.9g,\n  \"phases\": [", size, nblocks, wall);
      for (int p = 0; p < HB_PH_COUNT; p++) fprintf(f, "%s\"%s\"", p ? ", " : "", hb_phase_names[p]);
      fprintf(f, "],\n  \"per_rank\": [\n");
      for (int r = 0; r < size; r++) {
        const double *v = all + (size_t)r * W;
        fprintf(f, "    {\"rank\": %d, \"blocks\": %.0f, \"seconds\": {", r, v[W - 1]);
        for (int p = 0; p < HB_PH_COUNT; p++) fprintf(f, "%s\"%s\": %.9g", p ? ", " : "", hb_phase_names[p], v[p]);
        fprintf(f, "}, \"bytes\": {");
        for (int p = 0; p < HB_PH_COUNT; p++)
          fprintf(f, "%s\"%s\": %.0f", p ? ", " : "", hb_phase_names[p], v[HB_PH_COUNT + p]);
        fprintf(f, "}}%s\n", r + 1 < size ? "," : "");
      }
      fprintf(f, "  ]\n}\n");
      if (fclose(f)) rc = hb_error_raise(HB_EIO, __FILE__, __LINE__, path, "cannot write the profile (disk full?)");
    }
  }
  free(all);
  return hb_agree(comm, rc);
}
