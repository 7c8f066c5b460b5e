/* The machine's LZ4 decompression limit on a bitshuffle/LZ4 dataset's own
 * chunks: what no reader of the file can beat on these cores.
 *
 *   lz4_limit FILE DATASET [THREADS] [REPS]     (defaults: 2 threads, 5 reps)
 *
 * Reads every stored chunk (H5Dread_chunk, no decoding) into memory, then
 * times on THREADS threads, with no I/O:
 *   lz4     LZ4_decompress_safe of every block of every chunk, nothing else;
 *   decode  hyperbatch's whole bitshuffle decode (the same blocks, then the
 *           bit transpose from Debian's bitshuffle library: filters.c).
 * Prints the median of REPS runs of each as GB/s of decoded bytes (1e9 per
 * second), with the fastest and slowest.  Then, on one thread, the bit
 * transpose alone on one block of the file's element size (4096 elements,
 * in cache): Debian's bitshuffle library against bitunshuffle.c. */
#include <dlfcn.h>
#include <hdf5.h>
#include <lz4.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters.h"
#include "hb_timing.h"

typedef struct {
  unsigned char *raw;
  size_t size;
} stored_chunk;

static stored_chunk *chunks;
static size_t nchunks, chunk_bytes, esize;
static unsigned cd[8];
static size_t ncd = 8;

typedef struct {
  int t, nthreads, full;
  const char *why;
} share;

static uint32_t be32(const unsigned char *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

/* LZ4 only: walk the bitshuffle layout (12-byte header, blocks with a 4-byte
 * size each) and decompress every block into one reused buffer. */
static const char *lz4_only(const stored_chunk *c, unsigned char *out) {
  size_t block = be32(c->raw + 8), pos = 12, left = chunk_bytes / esize * esize;
  size_t elems = left / esize, bel = block / esize, done = 0;
  while (elems - done >= 8) {
    size_t count = elems - done >= bel ? bel : (elems - done) / 8 * 8, bytes = count * esize;
    uint32_t stored = be32(c->raw + pos);
    pos += 4;
    if (LZ4_decompress_safe((const char *)c->raw + pos, (char *)out, (int)stored, (int)bytes) != (int)bytes)
      return "LZ4 block does not decode";
    pos += stored;
    done += count;
  }
  return NULL;
}

static void *run_share(void *arg) {
  share *s = arg;
  unsigned char *out = malloc(chunk_bytes);
  hb_filter_scratch *scratch = NULL;
  for (size_t i = (size_t)s->t; i < nchunks && !s->why; i += (size_t)s->nthreads) {
    size_t got = 0;
    s->why = s->full ? hb_filter_decode(32008, cd, ncd, chunks[i].raw, chunks[i].size, out, chunk_bytes, &got, &scratch)
                     : lz4_only(&chunks[i], out);
  }
  hb_filter_scratch_free(scratch);
  free(out);
  return NULL;
}

static double timed(int nthreads, int full) {
  pthread_t tid[64];
  share sh[64];
  double t0 = hb_now();
  for (int t = 0; t < nthreads; t++) {
    sh[t] = (share){t, nthreads, full, NULL};
    pthread_create(&tid[t], NULL, run_share, &sh[t]);
  }
  for (int t = 0; t < nthreads; t++) pthread_join(tid[t], NULL);
  double dt = hb_now() - t0;
  for (int t = 0; t < nthreads; t++)
    if (sh[t].why) fprintf(stderr, "lz4_limit: %s\n", sh[t].why), exit(1);
  return dt;
}

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  if (argc < 3) return fprintf(stderr, "usage: lz4_limit FILE DATASET [THREADS] [REPS]\n"), 2;
  int nthreads = argc > 3 ? atoi(argv[3]) : 2, reps = argc > 4 ? atoi(argv[4]) : 5;
  if (nthreads < 1 || nthreads > 64 || reps < 1 || reps > 99) return fprintf(stderr, "lz4_limit: bad count\n"), 2;
  hb_filters_init();
  hid_t f = H5Fopen(argv[1], H5F_ACC_RDONLY, H5P_DEFAULT), d = f < 0 ? -1 : H5Dopen2(f, argv[2], H5P_DEFAULT);
  if (d < 0) return fprintf(stderr, "lz4_limit: cannot open %s:%s\n", argv[1], argv[2]), 1;
  hid_t space = H5Dget_space(d), type = H5Dget_type(d), plist = H5Dget_create_plist(d);
  int nd = H5Sget_simple_extent_ndims(space);
  hsize_t shape[32], chunk[32];
  H5Sget_simple_extent_dims(space, shape, NULL);
  unsigned flags;
  if (H5Pget_chunk(plist, nd, chunk) != nd || H5Pget_nfilters(plist) != 1 ||
      H5Pget_filter2(plist, 0, &flags, &ncd, cd, 0, NULL, NULL) != 32008 || ncd < 5 || cd[4] != 2)
    return fprintf(stderr, "lz4_limit: %s is not chunked with bitshuffle/LZ4 alone\n", argv[2]), 1;
  if (!hb_filter_raw_decodes(32008, cd, ncd)) return fprintf(stderr, "lz4_limit: no bitshuffle library\n"), 1;
  esize = H5Tget_size(type);
  chunk_bytes = esize;
  for (int i = 0; i < nd; i++) chunk_bytes *= chunk[i];
  hsize_t n = 0;
  H5Dget_num_chunks(d, space, &n);
  nchunks = (size_t)n;
  chunks = calloc(nchunks, sizeof *chunks);
  double stored_total = 0;
  for (size_t i = 0; i < nchunks; i++) {
    hsize_t off[32], size = 0;
    unsigned mask = 0;
    haddr_t addr;
    H5Dget_chunk_info(d, space, i, off, &mask, &addr, &size);
    chunks[i].raw = malloc(size);
    chunks[i].size = size;
    if (!chunks[i].raw || H5Dread_chunk(d, H5P_DEFAULT, off, &mask, chunks[i].raw) < 0)
      return fprintf(stderr, "lz4_limit: chunk %zu unreadable\n", i), 1;
    stored_total += (double)size;
  }
  double decoded = (double)nchunks * (double)chunk_bytes;
  printf("dataset   %s:%s: %zu chunks of %zu bytes, %.2f GB decoded from %.2f GB stored; %d threads, %d reps\n",
         argv[1], argv[2], nchunks, chunk_bytes, decoded / 1e9, stored_total / 1e9, nthreads, reps);
  const char *names[2] = {"lz4", "decode"};
  typedef int64_t (*untrans_fn)(const void *, void *, size_t, size_t);
  void *lib = dlopen(HB_HDF5_PLUGIN_DIR "/libh5bshuf.so", RTLD_NOW | RTLD_LOCAL);
  untrans_fn untrans = lib ? (untrans_fn)dlsym(lib, "bshuf_untrans_bit_elem") : NULL;
  for (int full = 0; full < 2; full++) {
    double t[99];
    for (int r = 0; r < reps; r++) t[r] = timed(nthreads, full);
    qsort(t, (size_t)reps, sizeof *t, by_value);
    printf("%-7s %.2f GB/s (median of %d; %.2f-%.2f)\n", names[full], decoded / t[reps / 2] / 1e9, reps,
           decoded / t[reps - 1] / 1e9, decoded / t[0] / 1e9);
  }
  size_t block_n = 4096, bytes = block_n * esize, calls = (size_t)(2e9 / (double)bytes);
  unsigned char *in = malloc(bytes), *out = malloc(bytes);
  for (size_t i = 0; in && i < bytes; i++) in[i] = (unsigned char)(i * 2654435761u >> 13);
  hb_bitunshuffle_init();
  for (int which = 0; in && out && which < 2; which++) {
    if (which == 0 && !untrans) continue;
    if (which == 1 && !hb_bitunshuffle_fast(in, out, block_n, esize)) {
      printf("untrans bitunshuffle.c: not on this CPU or element size\n");
      continue;
    }
    double t0 = hb_now();
    for (size_t c = 0; c < calls; c++)
      which ? hb_bitunshuffle_fast(in, out, block_n, esize) : untrans(in, out, block_n, esize);
    printf("untrans %s: %.2f GB/s (1 thread, %zu-element blocks in cache)\n",
           which ? "bitunshuffle.c (AVX-512, GFNI)" : "Debian's bitshuffle library",
           (double)(calls * bytes) / (hb_now() - t0) / 1e9, block_n);
  }
  free(in), free(out);
  return 0;
}
