/* libFuzzer target: the .hspy metadata and axes reader, on a file made of the
 * fuzzer's bytes.  For every /Experiments/<signal> with a `data` link (the
 * signals hb_input_open would offer), and for a root-level /data (generic
 * HDF5): hb_input_describe (dtype, shape, absurd-size checks, chunks,
 * filters), then hb_hspy_read_axes and the metadata strings read with
 * hb_h5_read_attr_str, as hb_input_open does.  No pixels are read.
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
#include "hb_hspy.h"

static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  fuzz_mpi_init(argc, argv);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* corrupt files are the point: keep HDF5 quiet */
  const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  snprintf(path, sizeof path, "%s/hbfuzz-%d.h5", dir, (int)getpid());
  return 0;
}

static void read_signal(hid_t file, const char *dataset, const char *group) {
  hb_input in;
  memset(&in, 0, sizeof in);
  in.file = file;
  in.dset = in.fspace = -1;
  snprintf(in.dataset, sizeof in.dataset, "%s", dataset);
  hb_error_clear();
  if (hb_input_describe(&in, "fuzz.hspy") == 0 && group) {
    hid_t g = H5Gopen2(file, group, H5P_DEFAULT);
    if (g >= 0) {
      hb_axis axes[HB_MAXDIM];
      hb_hspy_read_axes(g, in.ndim, in.shape, axes);
      char buf[256];
      hid_t m = H5Lexists(g, "metadata/General", H5P_DEFAULT) > 0 ? H5Gopen2(g, "metadata/General", H5P_DEFAULT) : -1;
      if (m >= 0) hb_h5_read_attr_str(m, "title", buf, sizeof buf), H5Gclose(m);
      m = H5Lexists(g, "metadata/Signal", H5P_DEFAULT) > 0 ? H5Gopen2(g, "metadata/Signal", H5P_DEFAULT) : -1;
      if (m >= 0) hb_h5_read_attr_str(m, "signal_type", buf, sizeof buf), H5Gclose(m);
      H5Gclose(g);
    }
  }
  if (in.fspace >= 0) H5Sclose(in.fspace);
  if (in.dset >= 0) H5Dclose(in.dset);
}

typedef struct {
  char names[8][256];
  int n;
} names;

static herr_t collect(hid_t g, const char *name, const H5L_info_t *info, void *data) {
  (void)g, (void)info;
  names *l = data;
  if (l->n < 8) snprintf(l->names[l->n++], sizeof l->names[0], "%s", name);
  return 0;
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
    char fmt[64], ver[64];
    hb_h5_read_attr_str(file, "file_format", fmt, sizeof fmt);
    hb_h5_read_attr_str(file, "file_format_version", ver, sizeof ver);
    if (H5Lexists(file, "/Experiments", H5P_DEFAULT) > 0) {
      hid_t ex = H5Gopen2(file, "/Experiments", H5P_DEFAULT);
      names l = {0};
      if (ex >= 0) {
        H5Literate(ex, H5_INDEX_NAME, H5_ITER_INC, NULL, collect, &l);
        H5Gclose(ex);
      }
      for (int i = 0; i < l.n; i++) {
        char group[300], ds[320];
        snprintf(group, sizeof group, "/Experiments/%s", l.names[i]);
        snprintf(ds, sizeof ds, "%s/data", group);
        if (H5Lexists(file, group, H5P_DEFAULT) > 0 && H5Lexists(file, ds, H5P_DEFAULT) > 0)
          read_signal(file, ds, group);
      }
    }
    if (H5Lexists(file, "/data", H5P_DEFAULT) > 0) read_signal(file, "/data", NULL);
    H5Fclose(file);
  }
  unlink(path);
  return 0;
}
