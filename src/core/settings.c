/* HB_* settings: read on rank 0, broadcast (hb_settings.h). */
#include "hb_settings.h"

#include "hb_error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static hb_settings settings;
static int loaded, my_rank;

static long env_long(const char *name) {
  const char *v = getenv(name);
  return v && *v ? atol(v) : -1;
}

/* Every variable read_env reads. */
static const char *const names[] = {"HB_CHECKPOINT_SECONDS", "HB_RESULT_CHUNK_BYTES", "HB_WRITE",
                                    "HB_READ", "HB_OVERLAP", "HB_TRACE", "HB_MPI_NODELAY",
                                    "HB_FAULT_SIGNAL_AFTER", "HB_FAULT_KILL_AFTER", "HB_FAULT_ROUND_DELAY_MS",
                                    "HB_FAULT_SLOW_RANK", "HB_FAULT_FAIL"};

static void read_env(hb_settings *s) {
  memset(s, 0, sizeof *s);
  _Static_assert(sizeof names / sizeof *names <= sizeof s->env / sizeof *s->env, "room for every variable");
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    const char *v = getenv(names[i]);
    if (v) snprintf(s->env[s->nenv++], sizeof s->env[0], "%s=%s", names[i], v);
  }
  const char *v = getenv("HB_CHECKPOINT_SECONDS");
  s->checkpoint_seconds = v && *v ? atof(v) : 30;
  v = getenv("HB_RESULT_CHUNK_BYTES");
  s->result_chunk_bytes = v && *v ? atof(v) : 16384;
  v = getenv("HB_WRITE");
  s->write_hdf5 = v && !strcmp(v, "hdf5");
  v = getenv("HB_READ");
  s->read_hdf5 = v && !strcmp(v, "hdf5");
  s->read_block = v && !strcmp(v, "block");
  s->overlap = getenv("HB_OVERLAP") != NULL;
  v = getenv("HB_TRACE");
  s->trace = v && *v && strcmp(v, "0");
  v = getenv("HB_MPI_NODELAY");
  s->mpi_nodelay = !(v && !strcmp(v, "0"));
  s->fault_signal_after = env_long("HB_FAULT_SIGNAL_AFTER");
  s->fault_kill_after = env_long("HB_FAULT_KILL_AFTER");
  s->fault_round_delay_ms = env_long("HB_FAULT_ROUND_DELAY_MS");
  s->fault_slow_rank = -1;
  v = getenv("HB_FAULT_SLOW_RANK");
  const char *colon = v ? strchr(v, ':') : NULL;
  if (colon) s->fault_slow_rank = atoi(v), s->fault_slow_ms = atol(colon + 1);
  s->fault_fail_rank = -1;
  v = getenv("HB_FAULT_FAIL");
  if (v && *v) {
    snprintf(s->fault_fail, sizeof s->fault_fail, "%s", v);
    char *at = strchr(s->fault_fail, '@');
    if (at) *at = 0, s->fault_fail_rank = atoi(at + 1);
  }
}

int hb_settings_share(MPI_Comm comm) {
  MPI_Comm_rank(comm, &my_rank);
  if (my_rank == 0) read_env(&settings);
  loaded = 1;
  /* plain bytes: the struct holds no pointers */
  HB_MPI(MPI_Bcast(&settings, sizeof settings, MPI_BYTE, 0, comm));
  return 0;
}

const hb_settings *hb_settings_get(void) {
  if (!loaded) read_env(&settings), loaded = 1;
  return &settings;
}

void hb_settings_reset(void) { loaded = 0; }

int hb_fault(const char *site) {
  const hb_settings *s = hb_settings_get();
  int hit =
      s->fault_fail[0] && !strcmp(s->fault_fail, site) && (s->fault_fail_rank < 0 || s->fault_fail_rank == my_rank);
  if (hit) errno = EIO; /* what a failed system call would leave */
  return hit;
}
