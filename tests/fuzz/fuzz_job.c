/* libFuzzer target: the job parser (hb_job_parse: libyaml -> node tree ->
 * schema and every kernel's parameter table), and --set.
 *
 * Input: the job text.  Lines that start with "#SET " (YAML comments, so the
 * parser ignores them) are also applied as --set KEY=VALUE, at most 4, so the
 * fuzzer reaches hb_node_set_path too.  Built and run by tests/fuzz/run.sh. */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_mpi.h"
#include "hb_error.h"
#include "hb_files.h"
#include "hb_job.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  fuzz_mpi_init(argc, argv); /* MPI_Info for run.mpiio_hints */
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *sets[4];
  int nsets = 0;
  /* copies of the "#SET " lines, NUL-terminated */
  for (size_t i = 0; i + 5 <= size && nsets < 4; i++) {
    if ((i == 0 || data[i - 1] == '\n') && !memcmp(data + i, "#SET ", 5)) {
      size_t j = i + 5;
      while (j < size && data[j] != '\n') j++;
      char *s = malloc(j - i - 5 + 1);
      if (!s) break;
      memcpy(s, data + i + 5, j - i - 5);
      s[j - i - 5] = 0;
      if (strlen(s) != j - i - 5) { /* a NUL inside: not a command-line argument */
        free(s);
        continue;
      }
      sets[nsets++] = s;
    }
  }
  hb_error_clear();
  hb_job job;
  int rc = hb_job_parse("fuzz/job.yaml", (const char *)data, size, sets, nsets, &job);
  if (!rc) {
    /* what run/validate do next with a parsed job, short of opening files */
    char *p = hb_path_resolve(job.root, "x/../y.hspy");
    free(p);
  } else {
    /* the message must be a proper string */
    if (strlen(hb_error_where()) + strlen(hb_error_what()) == (size_t)-1) abort();
  }
  hb_job_free(&job);
  for (int i = 0; i < nsets; i++) free(sets[i]);
  return 0;
}
