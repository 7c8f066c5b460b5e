/* hyperbatch command line (contract: docs/contract.md). */
#include <hdf5.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hb_engine.h"
#include "hb_error.h"
#include "hb_job.h"
#include "hb_kernel.h"
#include "hb_launch.h"
#include "hb_settings.h"
#include "hb_synth.h"
#include "hb_timing.h"

void hb_print_version(void);
void hb_ckpt_install_signals(void);

static const char usage[] =
    "usage:\n"
    "  hyperbatch run JOB.yaml [--resume] [--set KEY=VALUE]... [--dry-run] [--profile OUT.json]\n"
    "  hyperbatch validate JOB.yaml [--set KEY=VALUE]...\n"
    "  hyperbatch inspect FILE\n"
    "  hyperbatch init FILE > job.yaml\n"
    "  hyperbatch synth KIND OUT.hspy [--shape ...] [--chunks ...] [--seed N] [--compression gzip|none] [--dtype T]\n"
    "  hyperbatch kernels [OP] [--markdown]\n"
    "  hyperbatch --version\n"
    "Run under MPI: mpirun -n N hyperbatch run job.yaml (or srun inside a Slurm allocation).\n";

static int usage_error(const char *fmt, const char *arg) {
  char what[512];
  snprintf(what, sizeof what, fmt, arg);
  return HB_FAIL(HB_EINVALID, "arguments", "%s\n%s", what, usage);
}

static int cmd_job(int argc, char **argv, hb_run_mode mode) {
  const char *path = NULL;
  char **sets = calloc((size_t)argc, sizeof *sets), *owned[2];
  int nsets = 0, nowned = 0, rc = 0, resume = 0, dry_run = 0;
  const int is_run = mode == HB_RUN; /* run's options, in any order; validate has none */
  if (!sets) return HB_EINTERNAL;
  for (int i = 2; i < argc && !rc; i++) {
    if (!strcmp(argv[i], "--set") && i + 1 < argc) sets[nsets++] = argv[++i];
    else if (!strncmp(argv[i], "--set=", 6)) sets[nsets++] = argv[i] + 6;
    else if (!strcmp(argv[i], "--dry-run") && is_run) dry_run = 1;
    else if (!strcmp(argv[i], "--profile") && i + 1 < argc && is_run && nowned < 2) {
      /* the same as --set run.profile=PATH, and recorded like one */
      size_t n = strlen(argv[i + 1]) + 13;
      char *s = malloc(n);
      if (!s) rc = HB_EINTERNAL;
      else snprintf(s, n, "run.profile=%s", argv[++i]), sets[nsets++] = s, owned[nowned++] = s;
    }
    else if (!strcmp(argv[i], "--resume") && is_run) resume = 1;
    else if (argv[i][0] == '-' || path) rc = usage_error("unexpected argument '%s'", argv[i]);
    else path = argv[i];
  }
  if (!rc && !path) rc = usage_error("%s needs a job file", argv[1]);
  if (!rc && is_run && !dry_run) rc = hb_launch_check_world(MPI_COMM_WORLD); /* a plan writes nothing */
  if (dry_run) mode = HB_DRY_RUN;
  if (rc) {
    while (nowned) free(owned[--nowned]);
    free(sets);
    return hb_agree(MPI_COMM_WORLD, rc);
  }
  hb_job job;
  rc = hb_agree(MPI_COMM_WORLD, hb_job_load(MPI_COMM_WORLD, path, sets, nsets, &job));
  job.resume = resume;
  /* the profile is written last: a bad path must fail before the run, not after */
  if (!rc) rc = hb_profile_check(MPI_COMM_WORLD, &job, mode == HB_RUN);
  if (!rc) rc = hb_engine_run(MPI_COMM_WORLD, &job, mode);
  hb_job_free(&job);
  while (nowned) free(owned[--nowned]);
  free(sets);
  return rc;
}

static int dispatch(int argc, char **argv, int rank) {
  const char *cmd = argv[1];
  if (!strcmp(cmd, "run")) return cmd_job(argc, argv, HB_RUN);
  if (!strcmp(cmd, "validate")) return cmd_job(argc, argv, HB_VALIDATE);
  /* the rest are serial: rank 0 works, the verdict is shared */
  int rc = 0;
  if (rank == 0) {
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
      hb_print_version();
    } else if (!strcmp(cmd, "--help") || !strcmp(cmd, "help") || !strcmp(cmd, "-h")) {
      fputs(usage, stdout);
    } else if (!strcmp(cmd, "inspect")) {
      rc = argc == 3 ? hb_inspect(argv[2]) : usage_error("%s needs exactly one FILE", "inspect");
    } else if (!strcmp(cmd, "init")) {
      rc = argc == 3 ? hb_init_job(argv[2]) : usage_error("%s needs exactly one FILE", "init");
    } else if (!strcmp(cmd, "synth")) {
      rc = hb_synth_cli(argc - 1, argv + 1);
    } else if (!strcmp(cmd, "kernels")) {
      const char *op = NULL;
      int md = 0;
      for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--markdown")) md = 1;
        else op = argv[i];
      }
      rc = hb_kernels_print(op, md);
    } else {
      rc = usage_error("unknown command '%s'", cmd);
    }
  }
  return hb_agree(MPI_COMM_WORLD, rc);
}

int main(int argc, char **argv) {
  /* first: a stop request that comes while MPI starts is kept, not fatal */
  if (argc > 1 && !strcmp(argv[1], "run")) hb_ckpt_install_signals();
  hb_launch_mpi_settings(); /* no lockedfile/individual sharedfp: long names, stray .lock files */
  hb_launch_memory_settings(); /* HDF5's per-chunk buffers stop faulting pages in */
  MPI_Init(&argc, &argv);
  /* errors come back to HB_MPI instead of aborting the job */
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  int rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  hb_settings_share(MPI_COMM_WORLD);     /* rank 0's HB_* environment, on every rank */
  hb_launch_sockets_nodelay();           /* saves 40 ms in MPI_Finalize under mpirun */
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* errors are reported through hb_error */
  int rc;
  if (argc < 2) {
    if (rank == 0) fputs(usage, stderr);
    rc = HB_EINVALID;
  } else {
    rc = dispatch(argc, argv, rank);
    if (rc && hb_error_is_reporter()) hb_error_print();
  }
  if (hb_error_unclean()) { /* see hb_error_mark_unclean */
    fflush(NULL);
    /* the reporter's message is out before any rank's exit makes mpirun kill the rest */
    MPI_Barrier(MPI_COMM_WORLD);
    hb_launch_finish();
    _exit(rc);
  }
  MPI_Finalize();
  hb_launch_finish();
  return rc;
}
