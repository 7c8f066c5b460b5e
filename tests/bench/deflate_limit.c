/* Single-core encode limits for a result's chunks: what gzip output can cost.
 *
 *   deflate_limit FILE DATASET [MBYTES]     (default: the first 64 MB)
 *
 * Reads the dataset's leading chunks (decoded by HDF5) up to MBYTES, shuffles
 * each chunk as HDF5's shuffle filter does (by the element size), then times
 * on one core, with no I/O: ISA-L's level 1 (output.gzip_effort: fast, the
 * default for full-size results), libdeflate_zlib_compress at levels 1 and 4
 * (whole-chunk navigation writes; gzip_effort: small) and zlib's compress2
 * at level 4 (what HDF5 and h5py use without hyperbatch; called through
 * deflateInit/deflate, as compress2 does).  Prints MB/s
 * (1e6 bytes of uncompressed input per second) and the compressed fraction,
 * and for the whole dataset the seconds each would need on 2 cores. */
#include <hdf5.h>
#include <libdeflate.h>
#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

#include "chunkwrite.h"
#include "hb_hspy.h"
#include "hb_timing.h"

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: deflate_limit FILE DATASET [MBYTES]\n");
    return 2;
  }
  double budget = (argc > 3 ? atof(argv[3]) : 64) * 1e6;
  hid_t f = H5Fopen(argv[1], H5F_ACC_RDONLY, H5P_DEFAULT), d = f < 0 ? -1 : H5Dopen2(f, argv[2], H5P_DEFAULT);
  if (d < 0) return fprintf(stderr, "deflate_limit: cannot open %s:%s\n", argv[1], argv[2]), 1;
  hid_t space = H5Dget_space(d), type = H5Dget_type(d), plist = H5Dget_create_plist(d);
  int nd = H5Sget_simple_extent_ndims(space);
  hsize_t shape[32], chunk[32];
  H5Sget_simple_extent_dims(space, shape, NULL);
  if (H5Pget_chunk(plist, nd, chunk) != nd) return fprintf(stderr, "deflate_limit: not chunked\n"), 1;
  size_t es = H5Tget_size(type), celems = 1;
  double total = (double)es;
  for (int i = 0; i < nd; i++) celems *= chunk[i], total *= (double)shape[i];
  size_t cbytes = celems * es, nchunks = (size_t)(budget / (double)cbytes);
  hsize_t along = (shape[0] + chunk[0] - 1) / chunk[0];
  if (nchunks < 1) nchunks = 1;
  if (nchunks > along) nchunks = along; /* chunks along the first axis, the rest at 0 */
  unsigned char *raw = malloc(nchunks * cbytes), *shuf = malloc(nchunks * cbytes);
  size_t cap = compressBound(cbytes) + 1024;
  unsigned char *out = malloc(cap);
  if (!raw || !shuf || !out) return 1;
  for (size_t c = 0; c < nchunks; c++) { /* one chunk per read: edge chunks read what exists */
    hsize_t start[32] = {0}, count[32];
    for (int i = 0; i < nd; i++) count[i] = chunk[i];
    start[0] = c * chunk[0];
    if (start[0] + count[0] > shape[0]) count[0] = shape[0] - start[0];
    hid_t fs = H5Dget_space(d), ms = H5Screate_simple(nd, count, NULL);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    if (H5Dread(d, type, ms, fs, H5P_DEFAULT, raw + c * cbytes) < 0) return fprintf(stderr, "read failed\n"), 1;
    H5Sclose(ms), H5Sclose(fs);
    hb_shuffle(raw + c * cbytes, shuf + c * cbytes, celems, es);
  }
  double mb = (double)(nchunks * cbytes) / 1e6;
  printf("dataset   %s:%s, %.0f MB, chunks of %zu bytes; timing %zu chunks (%.0f MB), element %zu bytes\n", argv[1],
         argv[2], total / 1e6, cbytes, nchunks, mb, es);
  for (int which = 0; which < 4; which++) {
    int level = which == 0 || which == 3 ? 1 : 4, isal = which == 3;
    struct libdeflate_compressor *c = which < 2 ? libdeflate_alloc_compressor(level) : NULL;
    double t = hb_now(), packed = 0;
    for (size_t k = 0; k < nchunks; k++) {
      if (isal) { /* the engine's own encoder (src/output/hdf5_deflate.c) */
        size_t n = hb_gzip_fast(shuf + k * cbytes, cbytes, out, cap);
        if (!n) return 1;
        packed += (double)n;
      } else if (c) {
        packed += (double)libdeflate_zlib_compress(c, shuf + k * cbytes, cbytes, out, cap);
      } else { /* compress2's own steps: hyperbatch's executable replaces compress2 itself */
        z_stream z = {0};
        if (deflateInit(&z, level) != Z_OK) return 1;
        z.next_in = shuf + k * cbytes, z.avail_in = (uInt)cbytes;
        z.next_out = out, z.avail_out = (uInt)cap;
        if (deflate(&z, Z_FINISH) != Z_STREAM_END) return 1;
        packed += (double)z.total_out;
        deflateEnd(&z);
      }
    }
    double s = hb_now() - t, rate = mb / s;
    printf("%-14s level %d  %7.1f MB/s per core  compressed to %.3f  the dataset on 2 cores: %6.2f s\n",
           isal ? "isa-l" : c ? "libdeflate" : "zlib", level, rate, packed / (mb * 1e6), total / 1e6 / rate / 2);
    if (c) libdeflate_free_compressor(c);
  }
  return 0;
}
