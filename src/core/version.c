/* `hyperbatch --version`: our version and every library we link, which also
 * proves at run time that FFTW (with MPI) and ScaLAPACK are linked. */
#include <fftw3-mpi.h>
#include <hdf5.h>
#include <mpi.h>
#include <isa-l.h>
#include <libdeflate.h>
#include <png.h>
#include <stdio.h>
#include <yaml.h>

#include "hb_hspy.h"
#include "version.h"

char *openblas_get_config(void);
/* ScaLAPACK's BLACS entry point; resolving it here makes the link real. */
void blacs_pinfo_(int *mypnum, int *nprocs);

void hb_print_version(void) {
  unsigned maj, min, rel;
  H5get_libversion(&maj, &min, &rel);
  char mpi[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(mpi, &len);
  for (int i = 0; i < len; i++)
    if (mpi[i] == ',' || mpi[i] == '\n') {
      mpi[i] = 0;
      break;
    }
  int me = -1, np = -1;
  blacs_pinfo_(&me, &np);
  printf("hyperbatch %s (git %s)\n", PROJECT_VERSION, HB_GIT_REVISION);
  printf("  MPI       %s\n", mpi);
  printf("  HDF5      %u.%u.%u (parallel)\n", maj, min, rel);
  printf("  FFTW      %s (with MPI)\n", fftw_version);
  printf("  ScaLAPACK BLACS process %d of %d\n", me, np);
  printf("  OpenBLAS  %s\n", openblas_get_config());
  printf("  libyaml   %s\n", yaml_get_version_string());
  printf("  libpng    %s\n", png_get_libpng_ver(NULL));
  printf("  libdeflate %s, ISA-L %d.%d.%d (HDF5's deflate filter: %s)\n", LIBDEFLATE_VERSION_STRING, /* no version calls */
         ISAL_MAJOR_VERSION, ISAL_MINOR_VERSION, ISAL_PATCH_VERSION, hb_hdf5_deflate_encoder());
}
