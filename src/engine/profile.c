/* run.profile / --profile: every rank's phase timings and bytes as JSON, for
 * scaling studies (tests/bench/scaling.sh reads the same numbers from the
 * provenance; this is the form other tools read). */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hb_error.h"
#include "hb_job.h"
#include "hb_timing.h"

/* mkdir -p; 0 or the errno of the first folder that cannot be made. */
static int make_folders(char *dir) {
  for (char *p = dir + 1;; p++) {
    if (*p && *p != '/') continue;
    char c = *p;
    *p = 0;
    int err = mkdir(dir, 0777) && errno != EEXIST ? errno : 0;
    *p = c;
    if (err || !c) return err;
  }
}

static int check_path(const hb_job *job, int create) {
  const char *path = job->profile;
  const char *where = hb_node_where(hb_node_child(hb_node_child(job->root, "run"), "profile"), 0);
  struct stat st;
  HB_CHECK(stat(path, &st) || !S_ISDIR(st.st_mode), HB_EINVALID, where,
           "run.profile '%s' is a folder; name a JSON file to write", path);
  char dir[PATH_MAX], up[PATH_MAX];
  HB_CHECK(strlen(path) < sizeof dir, HB_EINVALID, where, "run.profile is too long");
  snprintf(up, sizeof up, "%s", path);
  snprintf(dir, sizeof dir, "%s", dirname(up));
  /* the folder, or the nearest folder above it that exists: the rest is made */
  snprintf(up, sizeof up, "%s", dir);
  int err;
  while ((err = stat(up, &st) ? errno : 0) == ENOENT && strcmp(up, ".") && strcmp(up, "/")) {
    const char *parent = dirname(up);
    memmove(up, parent, strlen(parent) + 1);
  }
  if (!err && !S_ISDIR(st.st_mode)) err = ENOTDIR;
  HB_CHECK(!err, HB_EIO, where, "cannot create the profile's folder '%s': %s", dir, strerror(err));
  HB_CHECK(!access(up, W_OK | X_OK), HB_EIO, where, "the profile's folder '%s' is not writable: %s", up,
           strerror(errno));
  HB_CHECK(access(path, F_OK) || !access(path, W_OK), HB_EIO, where, "the profile '%s' is not writable: %s", path,
           strerror(errno));
  if (!create) return 0;
  /* run: make the folders and open the file, which also finds what access()
   * does not show root (a read-only mount, /proc); an existing profile is
   * kept until it is rewritten */
  err = make_folders(dir);
  HB_CHECK(!err, HB_EIO, where, "cannot create the profile's folder '%s': %s", dir, strerror(err));
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0666), made = fd >= 0;
  if (fd < 0 && errno == EEXIST) fd = open(path, O_WRONLY);
  HB_CHECK(fd >= 0, HB_EIO, where, "cannot write the profile '%s': %s", path, strerror(errno));
  close(fd);
  if (made) unlink(path);
  return 0;
}

int hb_profile_check(MPI_Comm comm, const hb_job *job, int create) {
  int rank;
  MPI_Comm_rank(comm, &rank);
  return hb_agree(comm, rank == 0 && job->profile ? check_path(job, create) : 0);
}

int hb_profile_write(MPI_Comm comm, const char *path, const hb_timers *local, size_t blocks_here, double wall,
                     size_t nblocks) {
  int rank, size;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  enum { W = 2 * HB_PH_COUNT + 2 };
  double mine[W], *all = rank == 0 ? malloc(sizeof(double) * W * (size_t)size) : NULL;
  for (int p = 0; p < HB_PH_COUNT; p++) mine[p] = local->seconds[p], mine[HB_PH_COUNT + p] = local->bytes[p];
  mine[W - 2] = local->direct_bytes;
  mine[W - 1] = (double)blocks_here;
  int rc = rank == 0 && !all ? HB_FAIL(HB_EINTERNAL, "memory", "out of memory") : 0;
  HB_CALL(hb_agree(comm, rc));
  HB_MPI(MPI_Gather(mine, W, MPI_DOUBLE, all, W, MPI_DOUBLE, 0, comm));
  if (rank == 0) {
    FILE *f = fopen(path, "w");
    if (!f) {
      rc = HB_FAIL(HB_EIO, path, "cannot write the profile");
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
        fprintf(f, "}, \"direct_write_bytes\": %.0f}%s\n", v[W - 2], r + 1 < size ? "," : "");
      }
      fprintf(f, "  ]\n}\n");
      if (fclose(f)) rc = HB_FAIL(HB_EIO, path, "cannot write the profile (disk full?)");
    }
  }
  free(all);
  return hb_agree(comm, rc);
}
