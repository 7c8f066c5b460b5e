/* One error type, one macro family.
 *
 * Every function that can fail returns an int: 0 on success, otherwise one of
 * the exit codes of the job contract.  The first failure records "<where>:
 * <what>"; every HB_CALL on the way up adds its file:line to a short trace
 * (printed with HB_TRACE=1).  Outside libraries are wrapped once each:
 * HB_H5 (HDF5, with its error stack), HB_MPI, and the libyaml parser in
 * yamltree.c.  HB_RAISE, HB_CHECK, HB_H5 and HB_MPI return at once: use
 * them where every rank fails alike or no collective call follows before
 * the caller's hb_agree; elsewhere record with HB_FAIL and go on. */
#ifndef HB_ERROR_H
#define HB_ERROR_H

#include <mpi.h>

typedef enum {
  HB_OK = 0,
  HB_EINTERNAL = 1, /* a bug or an unexpected library failure */
  HB_EINVALID = 2,  /* invalid job, input or arguments: the user can fix it */
  HB_EIO = 3,       /* unreadable or corrupt input, unwritable output */
  HB_EINTERRUPTED = 75, /* stopped by SIGTERM/SIGUSR1 with a checkpoint saved (EX_TEMPFAIL) */
  HB_ESTOPPED = 76,     /* stopped by SIGTERM/SIGUSR1 with run.checkpoint false: nothing kept */
} hb_code;

int hb_error_raise(int code, const char *file, int line, const char *where,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
int hb_error_trace(int code, const char *file, int line);
void hb_error_clear(void);
int hb_error_code(void);
const char *hb_error_where(void);
const char *hb_error_what(void);
/* "hyperbatch: error: <where>: <what>" on stderr, plus the trace if HB_TRACE is set. */
void hb_error_print(void);

/* Collective: every rank passes its local result and gets the same verdict.
 * Returns 0 when all ranks succeeded, else the code of the lowest failing
 * rank; that rank is the one that prints (hb_error_is_reporter). */
int hb_agree(MPI_Comm comm, int rc);
/* Open HDF5 files were abandoned after a failure agreed by every rank (see
 * hb_output_abort): main() exits without MPI_Finalize, where HDF5 would
 * flush them collectively. */
void hb_error_mark_unclean(void);
int hb_error_unclean(void);
int hb_error_is_reporter(void);

/* Text of the innermost HDF5 error on the default stack (for messages). */
const char *hb_h5_error_text(void);
/* The same, or what the last system call said when HDF5 has no detail (a
 * write that failed inside MPI-IO leaves HDF5's stack empty). */
const char *hb_io_error_text(void);

#define HB_CALL(expr)                                                     \
  do {                                                                    \
    int hb_rc_ = (expr);                                                  \
    if (hb_rc_) return hb_error_trace(hb_rc_, __FILE__, __LINE__);        \
  } while (0)

/* Record a failure and go on: `rc = HB_FAIL(code, where, fmt, ...)`.  The
 * rule for code between collective calls: a rank that fails still enters
 * every collective call the others make (selecting nothing, sending
 * nothing), and the verdict is taken with hb_agree; returning early would
 * leave the other ranks waiting forever. */
#define HB_FAIL(code, where, ...) hb_error_raise((code), __FILE__, __LINE__, (where), __VA_ARGS__)

#define HB_RAISE(code, where, ...) return HB_FAIL((code), (where), __VA_ARGS__)

#define HB_CHECK(cond, code, where, ...)                 \
  do {                                                   \
    if (!(cond)) HB_RAISE((code), (where), __VA_ARGS__); \
  } while (0)

/* HDF5 calls return negative on failure. */
#define HB_H5(expr, where, ...)                                           \
  do {                                                                    \
    if ((expr) < 0) {                                                     \
      char hb_msg_[1024];                                                  \
      snprintf(hb_msg_, sizeof hb_msg_, __VA_ARGS__);                     \
      HB_RAISE(HB_EIO, (where), "%s (%s)", hb_msg_, hb_h5_error_text());  \
    }                                                                     \
  } while (0)

/* MPI calls return their errors (main sets MPI_ERRORS_RETURN).  A failed
 * MPI call cannot be agreed on, since agreeing is itself communication and
 * the other ranks may be waiting in the call that failed here: the rank
 * that sees it prints it and aborts the whole job, so that none waits. */
#define HB_MPI(expr)                                                              \
  do {                                                                            \
    int hb_mrc_ = (expr);                                                         \
    if (hb_mrc_ != MPI_SUCCESS) hb_mpi_abort(hb_mrc_, #expr, __FILE__, __LINE__); \
  } while (0)
void hb_mpi_abort(int mpi_code, const char *call, const char *file, int line) __attribute__((noreturn));

#define HB_ALLOC(ptr, count)                                                   \
  do {                                                                         \
    size_t hb_n_ = (size_t)(count);                                            \
    (ptr) = calloc(hb_n_ ? hb_n_ : 1, sizeof *(ptr));                          \
    if (!(ptr))                                                                \
      HB_RAISE(HB_EINTERNAL, "memory", "out of memory allocating %zu bytes",   \
               hb_n_ * sizeof *(ptr));                                         \
  } while (0)

#endif
