/* Bitshuffle decoding against Debian's bitshuffle library (the reference):
 * the AVX-512/GFNI transpose (bitunshuffle.c) on blocks the library
 * transposed, and the whole bitshuffle/LZ4 chunk decode (filters.c) on
 * chunks the library compressed, for element sizes 1-8, block sizes that
 * do and do not take the fast path, and chunk lengths with a stored tail
 * (not a multiple of 8 elements).  A corrupt chunk is an error, not a crash. */
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>

#include "filters.h"
#include "testutil.h"

typedef int64_t (*trans_fn)(const void *in, void *out, size_t size, size_t elem_size);
typedef int64_t (*compress_fn)(const void *in, void *out, size_t size, size_t elem_size, size_t block_size);
typedef size_t (*bound_fn)(size_t size, size_t elem_size, size_t block_size);

static void fill(unsigned char *p, size_t n, unsigned seed) {
  /* small values with runs, as detector counts are, and some noise */
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1103515245u + 12345u;
    p[i] = (unsigned char)((i % 7 == 0) ? seed >> 16 : (seed >> 24) & 3);
  }
}

static void put_be(unsigned char *p, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; i--, v >>= 8) p[i] = (unsigned char)v;
}

int main(void) {
  void *lib = dlopen(HB_HDF5_PLUGIN_DIR "/libh5bshuf.so", RTLD_NOW | RTLD_LOCAL);
  CHECK(lib != NULL, "Debian's bitshuffle library (package bitshuffle) at %s: %s", HB_HDF5_PLUGIN_DIR, dlerror());
  if (!lib) return TEST_DONE("test_bitunshuffle");
  trans_fn trans = (trans_fn)dlsym(lib, "bshuf_trans_bit_elem");
  compress_fn compress = (compress_fn)dlsym(lib, "bshuf_compress_lz4");
  bound_fn bound = (bound_fn)dlsym(lib, "bshuf_compress_lz4_bound");
  CHECK(trans && compress && bound, "the library's functions");
  if (!trans || !compress || !bound) return TEST_DONE("test_bitunshuffle");
  hb_filters_init();
  hb_bitunshuffle_init();

  /* the transpose alone */
  int fast_ran = 0;
  const size_t sizes[] = {64, 128, 512, 2048, 4096, 8192};
  for (size_t es = 1; es <= 4; es *= 2)
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
      size_t n = sizes[k], bytes = n * es;
      unsigned char *in = malloc(bytes), *t = malloc(bytes), *out = malloc(bytes);
      fill(in, bytes, (unsigned)(es * 131 + n));
      CHECK(trans(in, t, n, es) >= 0, "library transposes %zu x %zu", n, es);
      memset(out, 0xa5, bytes);
      if (hb_bitunshuffle_fast(t, out, n, es)) {
        fast_ran++;
        CHECK(!memcmp(in, out, bytes), "fast transpose undone: %zu elements of %zu bytes", n, es);
      }
      free(in), free(t), free(out);
    }
  /* the fast path needs AVX-512 VBMI and GFNI; without them the library runs */
  printf("fast transpose ran on %d of 18 blocks (0 on a CPU without AVX-512 VBMI and GFNI)\n", fast_ran);
  CHECK(!hb_bitunshuffle_fast((const unsigned char *)"", NULL, 8, 2), "8 elements go to the library");
  CHECK(!hb_bitunshuffle_fast((const unsigned char *)"", NULL, 64, 8), "8-byte elements go to the library");

  /* whole bitshuffle/LZ4 chunks as the HDF5 filter stores them */
  const size_t elems[] = {4096, 4100, 12345, 64 * 5 * 5, 7};
  const size_t blocks[] = {0, 64, 72, 1000};
  for (size_t es = 1; es <= 8; es *= 2)
    for (size_t a = 0; a < sizeof elems / sizeof *elems; a++)
      for (size_t b = 0; b < sizeof blocks / sizeof *blocks; b++) {
        size_t n = elems[a], blk = blocks[b], bytes = n * es;
        if (blk % 8) continue;
        size_t used_blk = blk ? blk : 8192 / es; /* the library's default for these sizes */
        unsigned char *in = malloc(bytes), *out = malloc(bytes);
        unsigned char *stored = malloc(bound(n, es, used_blk) + 12);
        fill(in, bytes, (unsigned)(n + es + blk));
        int64_t c = compress(in, stored + 12, n, es, used_blk);
        CHECK(c > 0, "library compresses %zu x %zu in blocks of %zu", n, es, used_blk);
        put_be(stored, bytes, 8);
        put_be(stored + 8, used_blk * es, 4);
        unsigned cd[5] = {0, 3, (unsigned)es, (unsigned)blk, 2};
        hb_filter_scratch *scratch = NULL;
        size_t got = 0;
        const char *why = hb_filter_decode(32008, cd, 5, stored, (size_t)c + 12, out, bytes, &got, &scratch);
        CHECK(!why && got == bytes && !memcmp(in, out, bytes), "decode %zu elements of %zu bytes, block %zu: %s", n,
              es, used_blk, why ? why : "values differ");
        /* cut short, and a stored block size that lies: errors, not crashes */
        why = hb_filter_decode(32008, cd, 5, stored, (size_t)c + 12 - 5, out, bytes, &got, &scratch);
        CHECK(why != NULL, "a chunk 5 bytes short is corrupt (%zu x %zu)", n, es);
        if (n >= 8) { /* (fewer are stored as they are) */
          put_be(stored + 12, 0x7fffffff, 4);
          why = hb_filter_decode(32008, cd, 5, stored, (size_t)c + 12, out, bytes, &got, &scratch);
          CHECK(why != NULL, "a block size past the end is corrupt (%zu x %zu)", n, es);
        }
        hb_filter_scratch_free(scratch);
        free(in), free(out), free(stored);
      }
  return TEST_DONE("test_bitunshuffle");
}
