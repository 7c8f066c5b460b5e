/* The error record and its collective agreement. */
#include "hb_error.h"
#include "hb_settings.h"

#include <errno.h>
#include <hdf5.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TRACE_MAX 16

static struct {
  int code;
  char where[1024];
  char what[2048];
  char trace[TRACE_MAX][96];
  int ntrace;
  int reporter;
  int raised; /* the error was raised here (not only learnt from hb_agree) */
} err;

int hb_error_raise(int code, const char *file, int line, const char *where, const char *fmt, ...) {
  if (err.code) return hb_error_trace(code, file, line); /* keep the first */
  err.code = code;
  snprintf(err.where, sizeof err.where, "%s", where ? where : "");
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err.what, sizeof err.what, fmt, ap);
  va_end(ap);
  err.ntrace = 0;
  err.reporter = 1;
  err.raised = 1;
  return hb_error_trace(code, file, line);
}

int hb_error_trace(int code, const char *file, int line) {
  if (err.ntrace < TRACE_MAX) {
    const char *base = strrchr(file, '/');
    snprintf(err.trace[err.ntrace++], sizeof err.trace[0], "%s:%d", base ? base + 1 : file, line);
  }
  if (!err.code) { /* a callee returned a code without raising: still say something */
    err.code = code;
    snprintf(err.what, sizeof err.what, "failed without a message");
  }
  return code;
}

static int unclean;
void hb_error_mark_unclean(void) { unclean = 1; }
int hb_error_unclean(void) { return unclean; }

void hb_error_clear(void) { memset(&err, 0, sizeof err); }
int hb_error_code(void) { return err.code; }
const char *hb_error_where(void) { return err.where; }
const char *hb_error_what(void) { return err.what; }
int hb_error_is_reporter(void) { return err.reporter; }

void hb_error_print(void) {
  if (err.where[0])
    fprintf(stderr, "hyperbatch: error: %s: %s\n", err.where, err.what);
  else
    fprintf(stderr, "hyperbatch: error: %s\n", err.what);
  if (hb_settings_get()->trace) {
    fprintf(stderr, "hyperbatch: trace:");
    for (int i = 0; i < err.ntrace; i++) fprintf(stderr, " %s", err.trace[i]);
    fprintf(stderr, "\n");
  }
  fflush(stderr);
}

void hb_mpi_abort(int mpi_code, const char *call, const char *file, int line) {
  char msg[MPI_MAX_ERROR_STRING] = "";
  int len = 0;
  MPI_Error_string(mpi_code, msg, &len);
  hb_error_clear(); /* this is the error to report, whatever came before */
  hb_error_raise(HB_EINTERNAL, file, line, "MPI", "%s failed: %s; stopping every rank", call, msg);
  hb_error_print();
  MPI_Abort(MPI_COMM_WORLD, HB_EINTERNAL);
  _exit(HB_EINTERNAL); /* MPI_Abort does not return; if it did, no rank may wait for this one */
}

int hb_agree(MPI_Comm comm, int rc) {
  int rank, size;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  /* The reporter is the lowest rank that raised an error itself; a rank
   * that only learnt of it at an earlier agreement comes after them all, so
   * that a later agreement does not hand the report to a rank with nothing
   * to say. */
  int mine = !rc ? 2 * size : err.raised ? rank : size + rank, first = 2 * size;
  HB_MPI(MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm));
  if (first == 2 * size) return 0;
  int from = first % size, code = rc;
  HB_MPI(MPI_Bcast(&code, 1, MPI_INT, from, comm));
  err.reporter = (rank == from);
  if (!err.code) err.code = code;
  return code;
}

static herr_t innermost(unsigned n, const H5E_error2_t *e, void *data) {
  /* An upward walk starts where the error was first detected: keep that one. */
  if (n == 0) snprintf(data, 256, "HDF5 %s: %s", e->func_name, e->desc ? e->desc : "");
  return 0;
}

const char *hb_io_error_text(void) {
  int e = errno;
  const char *h5 = hb_h5_error_text();
  return strcmp(h5, "no HDF5 error detail") || !e ? h5 : strerror(e);
}

const char *hb_h5_error_text(void) {
  static char buf[256];
  snprintf(buf, sizeof buf, "no HDF5 error detail");
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost, buf);
  return buf;
}
