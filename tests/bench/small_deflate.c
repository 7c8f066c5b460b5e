/* What libdeflate_zlib_compress costs per call on result-sized chunks.
 *
 *   small_deflate [BYTES] [CALLS]      (default 1680 bytes, 10000 calls)
 *
 * A block's navigation result is one chunk per result (docs/output.md); for
 * 4D-STEM blocks that is ~210 uint64 values, 1.7 KB.  Prints microseconds
 * per call and the compressed size at levels 0-6 on a buffer of smooth
 * integer sums, like those results. */
#include <libdeflate.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
  size_t n = argc > 1 ? (size_t)atol(argv[1]) : 1680, calls = argc > 2 ? (size_t)atol(argv[2]) : 10000;
  size_t nv = n / 8 ? n / 8 : 1;
  uint64_t *in = malloc(nv * 8);
  size_t cap = libdeflate_zlib_compress_bound(NULL, nv * 8);
  unsigned char *out = malloc(cap);
  if (!in || !out) return 1;
  for (size_t i = 0; i < nv; i++) in[i] = 5000000 + 1000 * (i % 42) + (i * 7919) % 97;
  for (int level = 0; level <= 6; level++) {
    struct libdeflate_compressor *c = libdeflate_alloc_compressor(level);
    size_t size = 0;
    double t = now();
    for (size_t k = 0; k < calls; k++) size = libdeflate_zlib_compress(c, in, nv * 8, out, cap);
    t = now() - t;
    printf("level %d: %.2f us per call, %zu -> %zu bytes\n", level, t / (double)calls * 1e6, nv * 8, size);
    libdeflate_free_compressor(c);
  }
  free(in);
  free(out);
  return 0;
}
