/* Open MPI 4.1's PMIx client reaches mpirun's PMIx server over loopback TCP
 * with Nagle's algorithm on.  MPI_Finalize sends several small requests back
 * to back; the last is held until the server ACKs the one before, and the
 * server delays that ACK by 40 ms because it has nothing to send yet.  That
 * was 40 ms of every run on the benchmark machine, 15% of the 2.1 GB
 * benchmark (docs/performance.md, "The launcher's 40 ms").  TCP_NODELAY only
 * changes when segments leave, never what arrives, so it is safe on any
 * stream socket; the MPI library's own TCP transport already sets it. */
#include "hb_launch.h"
#include "hb_error.h"
#include "hb_settings.h"

#include <dirent.h>
#include <ftw.h>
#include <malloc.h>
#include <mpi.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static int is_tcp(int fd) {
  int type = 0, domain = 0;
  socklen_t len = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) || type != SOCK_STREAM) return 0;
  len = sizeof domain;
  return !getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) && (domain == AF_INET || domain == AF_INET6);
}

int hb_launch_sockets_nodelay(void) {
  if (!hb_settings_get()->mpi_nodelay) return 0;
  DIR *fds = opendir("/proc/self/fd");
  if (!fds) return 0;
  int changed = 0;
  for (struct dirent *e; (e = readdir(fds));) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    int fd = atoi(e->d_name), on = 0, one = 1;
    socklen_t len = sizeof on;
    if (fd == dirfd(fds) || !is_tcp(fd) || getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &len) || on) continue;
    if (!setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one)) changed++;
  }
  closedir(fds);
  return changed;
}

/* Open MPI 4.1's OMPIO, at every MPI_File_open, asks each shared-file-pointer
 * ("sharedfp") component whether it can serve the file and opens the best
 * one, although hyperbatch (and HDF5) never use a shared file pointer:
 *  - lockedfile's query writes "<file>.locktest.<rank>" into a 256-byte
 *    stack buffer (sharedfp_lockedfile.c, mca_sharedfp_lockedfile_component_
 *    file_query): a path of 245 characters or more (an output path of 237,
 *    with ".partial") aborts with "buffer overflow detected".  Every 4.1
 *    release has it; fixed in 5.0.10 (open-mpi/ompi#13565, PR #13571).
 *  - when the ranks span hosts, sm declines and lockedfile wins: it creates
 *    "<file>-<jobid>-<pid>.lock" next to the input and the output, left behind
 *    by a killed run; individual (the next choice for files opened for
 *    writing) creates "<file>.data.<rank>" and "<file>.metadata.<rank>".
 * Excluding both leaves sm, which keeps all its files in Open MPI's session
 * folder and is what a one-host run selects anyway.  sm must stay: with no
 * sharedfp component at all, OMPIO fails every open (io_base_file_select.c,
 * after mca_sharedfp_base_find_available).  A value the user set (in the
 * environment or with mpirun --mca, which arrives as the same variable) is
 * kept. */
static char singleton_dir[4096]; /* the private session folder of an isolated singleton, "" if none */

int hb_launch_is_singleton(void) {
  static const char *const launcher_vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_FD"};
  for (size_t i = 0; i < sizeof launcher_vars / sizeof launcher_vars[0]; i++)
    if (getenv(launcher_vars[i])) return 0;
  return 1;
}

/* An Open MPI 4.1.4 singleton (a process no launcher started: validate,
 * inspect, a one-rank run by hand) forks a daemon and talks to it from a
 * progress thread.  MPI_Finalize unloads components before it stops that
 * thread, and a late event then calls code no longer mapped: SIGSEGV after
 * the work is done (1 in 400 to 900 runs of four at once on 2 busy cores
 * here; twice in CI; docs/operations.md).  An isolated singleton starts no
 * daemon and has no such thread.  Isolated singletons all take job id 0, so
 * concurrent ones would share (and remove) one session folder: each gets a
 * folder of its own, removed by hb_launch_finish. */
static int isolate_singleton(void) {
  if (!hb_launch_is_singleton() || getenv("OMPI_MCA_ess_singleton_isolated") || getenv("OMPI_MCA_orte_tmpdir_base"))
    return 0;
  const char *tmp = getenv("TMPDIR");
  snprintf(singleton_dir, sizeof singleton_dir, "%s/hyperbatch-mpi.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
  if (!mkdtemp(singleton_dir)) {
    singleton_dir[0] = 0; /* Open MPI's own folder and its daemon, as before */
    return 0;
  }
  return setenv("OMPI_MCA_ess_singleton_isolated", "1", 0) == 0 &&
         setenv("OMPI_MCA_orte_tmpdir_base", singleton_dir, 0) == 0;
}

int hb_launch_mpi_settings(void) {
  int set = 0;
#ifdef OPEN_MPI
  if (!getenv("OMPI_MCA_sharedfp")) set |= setenv("OMPI_MCA_sharedfp", HB_SHAREDFP_DEFAULT, 0) == 0;
  set |= isolate_singleton();
#endif
  return set;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  remove(path);
  return 0;
}

void hb_launch_finish(void) {
  if (singleton_dir[0]) nftw(singleton_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  singleton_dir[0] = 0;
}

/* HDF5's filter pipeline allocates and frees a buffer or two per chunk it
 * writes (a 256 KiB chunk of a 128 x 128 complex128 pattern and its deflate
 * output).  With glibc's defaults those come from mmap, or from the top of
 * the heap that free then trims, so every chunk faulted its pages in again:
 * 20% of the write phase of a 1 GB gzip FFT output (9.3-9.5 s against
 * 7.4-7.5 s, docs/performance.md).  The peak stays what the run needs at
 * once; what is freed below it is kept for reuse rather than returned.
 * Buffers of 32 MiB and more still come from mmap and go back at once. */
int hb_launch_memory_settings(void) {
  return mallopt(M_MMAP_THRESHOLD, 32 << 20) && mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

static long env_count(const char *name) {
  const char *v = getenv(name);
  return v ? strtol(v, NULL, 10) : 0;
}

int hb_launch_check_world(MPI_Comm comm) {
  int size;
  MPI_Comm_size(comm, &size);
  if (size != 1 || getenv("OMPI_COMM_WORLD_SIZE")) return 0; /* mpirun's ranks carry it */
  const long step_tasks = env_count("SLURM_STEP_NUM_TASKS"), job_tasks = env_count("SLURM_NTASKS");
  if (getenv("SLURM_STEP_ID") && step_tasks > 1)
    HB_RAISE(HB_EINVALID, "launch",
             "srun started %ld tasks, but MPI did not connect them, so each would run the whole job alone and "
             "write the same output; give srun the MPI plugin Open MPI needs (srun --mpi=pmix; `srun --mpi=list` "
             "lists them), use mpirun inside the allocation, or submit with jobs/run.sbatch, which finds one that "
             "works",
             step_tasks);
  if (!getenv("SLURM_STEP_ID") && job_tasks > 1)
    fprintf(stderr,
            "hyperbatch: note: this Slurm job has %ld tasks, but hyperbatch was started without a launcher and "
            "runs as one process; start it with srun or mpirun (jobs/run.sbatch does) to use them all\n",
            job_tasks);
  return 0;
}
