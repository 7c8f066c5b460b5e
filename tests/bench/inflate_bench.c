/* Single-core decode limits of an HDF5 file's own chunks.
 *
 *   inflate_bench FILE [DATASET] [--reps N] [--libdeflate-only]
 *
 * Reads every chunk of DATASET (default: the largest chunked dataset in the
 * file) raw with H5Dread_chunk into memory, then times, on one core and with
 * no I/O:
 *   - zlib:       uncompress() of every deflate stream
 *   - libdeflate: libdeflate_zlib_decompress() of the same streams
 *   - unshuffle_naive: a scalar byte-loop unshuffle (any element size)
 *   - unshuffle_sse2:  the engine's own unshuffle (hb_unshuffle, SSE2 for
 *                      2-, 4- and 8-byte data)
 *   - decode:     libdeflate + SSE2 unshuffle of every chunk, the whole
 *                 single-core decode a reader does per chunk
 *   - memcpy:     a plain copy of each chunk, for scale
 * Unshuffle and memcpy are timed per chunk right after inflating it, so the
 * data come from cache as they do in a decoder.
 * Each pass is repeated N times (default 3) and the best is kept.  Speeds are
 * GB/s (1e9 bytes) of *uncompressed output*.  Results go to stdout as
 * "key value" lines so that bench.sh can parse them.
 *
 * The decoded chunks are checked: zlib and libdeflate must agree byte for
 * byte, and the first chunk, fully decoded, must equal what HDF5's own
 * pipeline returns for it. */
#include <hdf5.h>
#include <libdeflate.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "chunkread.h"

#define MAXDIM 32
#define MAXF 8

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void die(const char *msg) {
  fprintf(stderr, "inflate_bench: %s\n", msg);
  exit(1);
}

/* ---- pick the dataset ---------------------------------------------------- */

static char best_name[4096];
static hsize_t best_bytes;

static herr_t visit(hid_t obj, const char *name, const H5O_info_t *info, void *op) {
  (void)op;
  if (info->type != H5O_TYPE_DATASET) return 0;
  hid_t d = H5Dopen2(obj, name, H5P_DEFAULT);
  if (d < 0) return 0;
  hid_t dcpl = H5Dget_create_plist(d), sp = H5Dget_space(d), t = H5Dget_type(d);
  if (H5Pget_layout(dcpl) == H5D_CHUNKED) {
    hsize_t bytes = (hsize_t)H5Sget_simple_extent_npoints(sp) * H5Tget_size(t);
    if (bytes > best_bytes) {
      best_bytes = bytes;
      snprintf(best_name, sizeof best_name, "/%s", name);
    }
  }
  H5Tclose(t);
  H5Sclose(sp);
  H5Pclose(dcpl);
  H5Dclose(d);
  return 0;
}

/* ---- the decoders under test ------------------------------------------- */

/* Naive unshuffle: the obvious byte loop, kept scalar (GCC would otherwise
 * vectorise it at -O3), as the "naive 2-byte unshuffle" limit. */
__attribute__((optimize("no-tree-vectorize"))) static void unshuffle_naive(const unsigned char *in, unsigned char *out, size_t n, size_t es) {
  if (es == 2) {
    for (size_t i = 0; i < n; i++) {
      out[2 * i] = in[i];
      out[2 * i + 1] = in[n + i];
    }
    return;
  }
  for (size_t j = 0; j < es; j++)
    for (size_t i = 0; i < n; i++) out[i * es + j] = in[j * n + i];
}


typedef struct {
  unsigned char *raw; /* as stored */
  size_t size;
  uint32_t mask;
} chunk;

/* A chunk's shuffled bytes: inflated into buf, or as stored if its deflate
 * was skipped; NULL if stored unfiltered but short (not a whole chunk). */
static const unsigned char *shuffled_bytes(struct libdeflate_decompressor *dec, const chunk *c, int deflate_pos,
                                           unsigned char *buf, size_t cbytes) {
  if (deflate_pos >= 0 && !(c->mask & (1u << deflate_pos))) {
    size_t got = 0;
    libdeflate_zlib_decompress(dec, c->raw, c->size, buf, cbytes, &got);
    return buf;
  }
  return c->size < cbytes ? NULL : c->raw;
}

int main(int argc, char **argv) {
  const char *file = NULL, *dname = NULL;
  int reps = 3, only_libdeflate = 0; /* --libdeflate-only: just that pass, for bench.sh's per-round limit */
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--libdeflate-only")) only_libdeflate = 1;
    else if (!file) file = argv[i];
    else if (!dname) dname = argv[i];
    else die("usage: inflate_bench FILE [DATASET] [--reps N] [--libdeflate-only]");
  }
  if (!file || reps < 1) die("usage: inflate_bench FILE [DATASET] [--reps N] [--libdeflate-only]");

  hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) die("cannot open the file");
  if (!dname) {
    if (H5Ovisit(f, H5_INDEX_NAME, H5_ITER_NATIVE, visit, NULL) < 0 || !best_bytes)
      die("no chunked dataset in the file");
    dname = best_name;
  }
  hid_t d = H5Dopen2(f, dname, H5P_DEFAULT);
  if (d < 0) die("cannot open the dataset");
  hid_t dcpl = H5Dget_create_plist(d), sp = H5Dget_space(d), ft = H5Dget_type(d);
  if (H5Pget_layout(dcpl) != H5D_CHUNKED) die("the dataset is not chunked");
  int nd = H5Sget_simple_extent_ndims(sp);
  hsize_t shape[MAXDIM], cdims[MAXDIM];
  H5Sget_simple_extent_dims(sp, shape, NULL);
  H5Pget_chunk(dcpl, nd, cdims);
  size_t es = H5Tget_size(ft);
  int nf = H5Pget_nfilters(dcpl);
  if (nf > MAXF) die("too many filters");
  H5Z_filter_t filt[MAXF];
  int has_deflate = 0, has_shuffle = 0;
  for (int i = 0; i < nf; i++) {
    unsigned flags, cd[8];
    size_t ncd = 8;
    filt[i] = H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, cd, 0, NULL, NULL);
    if (filt[i] == H5Z_FILTER_DEFLATE) has_deflate = 1;
    else if (filt[i] == H5Z_FILTER_SHUFFLE) has_shuffle = 1;
    else die("a filter other than deflate and shuffle: not measured here");
  }
  size_t celems = 1;
  for (int k = 0; k < nd; k++) celems *= cdims[k];
  size_t cbytes = celems * es;

  /* Read every chunk raw (edge chunks are stored whole). */
  size_t nchunks = 1;
  hsize_t nper[MAXDIM];
  for (int k = 0; k < nd; k++) nper[k] = (shape[k] + cdims[k] - 1) / cdims[k], nchunks *= nper[k];
  chunk *ch = calloc(nchunks, sizeof *ch);
  if (!ch) die("out of memory");
  size_t stored_total = 0;
  hsize_t idx[MAXDIM] = {0};
  double t_read = now();
  for (size_t c = 0; c < nchunks; c++) {
    hsize_t off[MAXDIM];
    for (int k = 0; k < nd; k++) off[k] = idx[k] * cdims[k];
    hsize_t st = 0;
    if (H5Dget_chunk_storage_size(d, off, &st) < 0 || !st) die("a chunk is missing (fill values are not measured)");
    ch[c].raw = malloc(st);
    ch[c].size = st;
    if (!ch[c].raw) die("out of memory for the raw chunks");
    if (H5Dread_chunk(d, H5P_DEFAULT, off, &ch[c].mask, ch[c].raw) < 0) die("H5Dread_chunk failed");
    stored_total += st;
    for (int k = nd - 1; k >= 0 && ++idx[k] == nper[k]; k--) idx[k] = 0;
  }
  t_read = now() - t_read;
  double out_total = (double)nchunks * (double)cbytes;

  printf("file %s\n", file);
  printf("dataset %s\n", dname);
  printf("chunks %zu\n", nchunks);
  printf("chunk_bytes %zu\n", cbytes);
  printf("element_size %zu\n", es);
  printf("filters %s%s%s\n", has_shuffle ? "shuffle" : "", has_shuffle && has_deflate ? "+" : "",
         has_deflate ? "deflate" : (has_shuffle ? "" : "none"));
  printf("stored_bytes %zu\n", stored_total);
  printf("uncompressed_bytes %.0f\n", out_total);
  printf("ratio %.3f\n", out_total / (double)stored_total);
  printf("raw_read_s %.4f\n", t_read);
  printf("raw_read_gbps %.3f\n", (double)stored_total / t_read / 1e9);

  unsigned char *a = malloc(cbytes), *b = malloc(cbytes), *z = malloc(cbytes);
  if (!a || !b || !z) die("out of memory");
  volatile unsigned sink = 0;

  /* A chunk is "deflated" unless its mask says the deflate filter was skipped. */
  int deflate_pos = -1;
  for (int i = 0; i < nf; i++)
    if (filt[i] == H5Z_FILTER_DEFLATE) deflate_pos = i;

  if (has_deflate) {
    struct libdeflate_decompressor *dec = libdeflate_alloc_decompressor();
    if (!dec) die("libdeflate_alloc_decompressor failed");
    double best_z = 1e30, best_l = 1e30;
    /* check once, outside the timed passes */
    for (size_t c = 0; c < nchunks && !only_libdeflate; c++) {
      if (ch[c].mask & (1u << deflate_pos)) continue;
      uLongf zl = cbytes;
      size_t got = 0;
      if (uncompress(z, &zl, ch[c].raw, ch[c].size) != Z_OK || zl != cbytes) die("zlib: bad chunk");
      if (libdeflate_zlib_decompress(dec, ch[c].raw, ch[c].size, a, cbytes, &got) != LIBDEFLATE_SUCCESS ||
          got != cbytes)
        die("libdeflate: bad chunk");
      if (memcmp(a, z, cbytes)) die("zlib and libdeflate disagree");
    }
    for (int r = 0; r < reps; r++) {
      double t = now();
      for (size_t c = 0; c < nchunks && !only_libdeflate; c++) {
        if (ch[c].mask & (1u << deflate_pos)) continue;
        uLongf zl = cbytes;
        uncompress(z, &zl, ch[c].raw, ch[c].size);
        sink += z[zl - 1];
      }
      t = now() - t;
      if (t < best_z) best_z = t;
      t = now();
      for (size_t c = 0; c < nchunks; c++) {
        if (ch[c].mask & (1u << deflate_pos)) continue;
        size_t got = 0;
        libdeflate_zlib_decompress(dec, ch[c].raw, ch[c].size, a, cbytes, &got);
        sink += a[got - 1];
      }
      t = now() - t;
      if (t < best_l) best_l = t;
    }
    libdeflate_free_decompressor(dec);
    if (!only_libdeflate) {
      printf("zlib_s %.4f\n", best_z);
      printf("zlib_gbps %.3f\n", out_total / best_z / 1e9);
    }
    printf("libdeflate_s %.4f\n", best_l);
    printf("libdeflate_gbps %.3f\n", out_total / best_l / 1e9);
  }

  if (only_libdeflate) return 0;

  /* Unshuffle as a decoder does it: right after inflating each chunk (so the
   * data come warm from cache), timing only the unshuffle of that chunk.
   * Then the whole per-core decode (libdeflate + SSE2 unshuffle), and a plain
   * memcpy of the same bytes for scale. */
  {
    struct libdeflate_decompressor *dec = libdeflate_alloc_decompressor();
    if (!dec) die("libdeflate_alloc_decompressor failed");
    double best_n = 1e30, best_s = 1e30, best_m = 1e30, best_d = 1e30;
    for (int r = 0; r < reps; r++) {
      double tn = 0, ts = 0, tm = 0, td = now();
      for (size_t c = 0; c < nchunks; c++) {
        const unsigned char *src = shuffled_bytes(dec, &ch[c], deflate_pos, a, cbytes);
        if (!src) continue;
        if (es == 2 || es == 4 || es == 8) {
          double t = now();
          hb_unshuffle(src, b, celems, es);
          ts += now() - t;
        } else {
          unshuffle_naive(src, b, celems, es);
        }
        sink += b[c % cbytes];
      }
      td = now() - td;
      if (td < best_d) best_d = td;
      for (size_t c = 0; c < nchunks; c++) {
        const unsigned char *src = shuffled_bytes(dec, &ch[c], deflate_pos, a, cbytes);
        if (!src) continue;
        double t = now();
        unshuffle_naive(src, b, celems, es);
        tn += now() - t;
        sink += b[c % cbytes];
        t = now();
        memcpy(z, src, cbytes);
        tm += now() - t;
        sink += z[c % cbytes];
      }
      if (tn < best_n) best_n = tn;
      if (ts > 0 && ts < best_s) best_s = ts;
      if (tm < best_m) best_m = tm;
    }
    libdeflate_free_decompressor(dec);
    printf("unshuffle_naive_s %.4f\n", best_n);
    printf("unshuffle_naive_gbps %.3f\n", out_total / best_n / 1e9);
    if (best_s < 1e30) {
      printf("unshuffle_sse2_s %.4f\n", best_s);
      printf("unshuffle_sse2_gbps %.3f\n", out_total / best_s / 1e9);
    }
    printf("memcpy_gbps %.3f\n", out_total / best_m / 1e9);
    if (has_deflate) {
      printf("decode_s %.4f\n", best_d);
      printf("decode_gbps %.3f\n", out_total / best_d / 1e9);
    }
  }

  /* The first chunk, decoded here in full, must equal HDF5's own read. */
  {
    const unsigned char *cur = ch[0].raw;
    size_t cur_size = ch[0].size;
    struct libdeflate_decompressor *dec = libdeflate_alloc_decompressor();
    for (int i = nf - 1; i >= 0; i--) {
      if (ch[0].mask & (1u << i)) continue;
      unsigned char *dst = cur == a ? b : a;
      if (filt[i] == H5Z_FILTER_DEFLATE) {
        size_t got = 0;
        if (libdeflate_zlib_decompress(dec, cur, cur_size, dst, cbytes, &got) != LIBDEFLATE_SUCCESS) die("check");
        cur_size = got;
      } else {
        unshuffle_naive(cur, dst, celems, es);
        cur_size = cbytes;
      }
      cur = dst;
    }
    libdeflate_free_decompressor(dec);
    hsize_t start[MAXDIM] = {0}, cnt[MAXDIM];
    for (int k = 0; k < nd; k++) cnt[k] = cdims[k] < shape[k] ? cdims[k] : shape[k];
    int whole = 1;
    for (int k = 0; k < nd; k++) whole &= cnt[k] == cdims[k];
    if (whole && cur_size == cbytes) {
      hid_t ms = H5Screate_simple(nd, cnt, NULL);
      H5Sselect_hyperslab(sp, H5S_SELECT_SET, start, NULL, cnt, NULL);
      hid_t mt = H5Tget_native_type(ft, H5T_DIR_ASCEND);
      if (H5Dread(d, mt, ms, sp, H5P_DEFAULT, z) < 0) die("H5Dread failed");
      printf("check_first_chunk %s\n", memcmp(z, cur, cbytes) ? "MISMATCH" : "ok");
      H5Tclose(mt);
      H5Sclose(ms);
    } else {
      printf("check_first_chunk skipped\n");
    }
  }
  printf("sink %u\n", sink & 1);

  for (size_t c = 0; c < nchunks; c++) free(ch[c].raw);
  free(ch);
  free(a);
  free(b);
  free(z);
  H5Tclose(ft);
  H5Sclose(sp);
  H5Pclose(dcpl);
  H5Dclose(d);
  H5Fclose(f);
  return 0;
}
