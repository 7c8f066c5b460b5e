/* libFuzzer target: the chunk decoders of src/readers/filters.c (LZ4,
 * blosc, zstd, bitshuffle with and without LZ4) on any stored bytes, as a
 * corrupt or hostile file hands them to the raw chunk path and to HDF5.
 * Byte 0 picks the filter and bitshuffle's block size, byte 1 the element
 * size and the chunk's decoded size; the rest is the stored chunk.  Built
 * and run by tests/fuzz/run.sh. */
#include <stdint.h>
#include <stdlib.h>

#include "filters.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
  static int ready;
  if (!ready) ready = 1, hb_filters_init();
  if (n < 2) return 0;
  static const int ids[] = {32004, 32001, 32015, 32008, 32008};
  int which = data[0] % 5;
  size_t es = (size_t)1 << (data[1] & 3), cap = (size_t)((data[1] >> 2) + 1) * 1024;
  unsigned cd[5] = {0, 3, (unsigned)es, (unsigned)(data[0] / 5 % 4) * 64, which == 4 ? 0 : 2};
  unsigned char *out = malloc(cap);
  hb_filter_scratch *scratch = NULL;
  size_t got = 0;
  if (out) hb_filter_decode(ids[which], cd, 5, data + 2, n - 2, out, cap, &got, &scratch);
  hb_filter_scratch_free(scratch);
  free(out);
  return 0;
}
