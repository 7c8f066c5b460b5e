/* libFuzzer target: every input reader, on a file made of the fuzzer's
 * bytes.  Format detection, then for each format (hspy, emd, nexus, hdf5,
 * whatever was detected: each reader must survive any file) the arrays it
 * lists and, for each, hb_input_describe_candidate: dtype, shape, absurd-size
 * checks, chunks, filters, then the reader's calibration (axes, metadata
 * strings, axis vectors), as hb_input_open does.  No pixels are read.
 * Built and run by tests/fuzz/run.sh. */
#include <hdf5.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_mpi.h"
#include "hb_error.h"
#include "hb_input.h"

static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  fuzz_mpi_init(argc, argv);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* corrupt files are the point: keep HDF5 quiet */
  const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  snprintf(path, sizeof path, "%s/hbfuzz-%d.h5", dir, (int)getpid());
  return 0;
}

static void read_candidates(hid_t file, const char *format) {
  hb_candidates c;
  hb_error_clear();
  if (hb_input_candidates(file, format, "fuzz.h5", &c)) return;
  for (int i = 0; i < c.n && i < 8; i++) {
    hb_input in;
    memset(&in, 0, sizeof in);
    in.dset = in.fspace = -1;
    hb_error_clear();
    hb_input_describe_candidate(file, format, &c.items[i], &in, "fuzz.h5");
    hb_input_release_array(&in);
  }
  int pick;
  hb_input_choose(&c, NULL, format, "fuzz.h5", &pick);
  hb_input_choose(&c, "entry1/counter", format, "fuzz.h5", &pick);
  hb_error_clear();
  hb_candidates_free(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  FILE *f = fopen(path, "wb");
  if (!f) return 0;
  fwrite(data, 1, size, f);
  fclose(f);
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG); /* closing the file closes whatever a failure left open */
  hid_t file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
  H5Pclose(fapl);
  if (file >= 0) {
    hb_input_detect(file);
    char formats[] = HB_INPUT_FORMATS, *save = NULL;
    for (char *f = strtok_r(formats, "|", &save); f; f = strtok_r(NULL, "|", &save)) read_candidates(file, f);
    H5Fclose(file);
  }
  unlink(path);
  return 0;
}
