/* Shared by the fuzz targets: MPI for a libFuzzer process. */
#ifndef HB_FUZZ_MPI_H
#define HB_FUZZ_MPI_H

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static void fuzz_mpi_error_is_a_crash(MPI_Comm *comm, int *code, ...) {
  (void)comm;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(*code, msg, &len);
  fprintf(stderr, "MPI error that would abort hyperbatch (MPI_ERRORS_ARE_FATAL): %s\n", msg);
  abort();
}

/* MPI_Init, never finalized (libFuzzer exits).  hyperbatch keeps MPI's
 * default handler, MPI_ERRORS_ARE_FATAL, which ends every rank with
 * exit(errorcode): make that a crash libFuzzer can keep. */
static void fuzz_mpi_init(int *argc, char ***argv) {
  MPI_Init(argc, argv);
  MPI_Errhandler eh;
  MPI_Comm_create_errhandler(fuzz_mpi_error_is_a_crash, &eh);
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, eh);
  MPI_Comm_set_errhandler(MPI_COMM_SELF, eh);
}

#endif
