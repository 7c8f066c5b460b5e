/* HDF5 filters beyond gzip and shuffle (docs/job-format.md, "Compressed
 * inputs").  Debian 12 packages a bitshuffle plugin built for Open MPI's
 * HDF5 (package bitshuffle), but LZ4 and blosc plugins for the serial HDF5
 * only and none for zstd.  So hyperbatch registers decoders for those three
 * with HDF5 itself, on Debian's liblz4, libblosc1 and libzstd1: the same
 * code then serves HDF5's read path and the raw chunk path's threads.
 * Bitshuffle's bit transpose is taken from Debian's plugin library, and
 * its LZ4 blocks are decoded here with LZ4's bounds-checked call: the
 * plugin's filter uses the unchecked one, and a corrupt chunk must be an
 * error, not a crash.  So the plugin's filter is replaced by ours too. */
#include "filters.h"

#include <blosc.h>
#include <dlfcn.h>
#include <lz4.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

enum { F_BZIP2 = 307, F_LZF = 32000, F_BLOSC = 32001, F_LZ4 = 32004, F_BITSHUFFLE = 32008, F_ZFP = 32013, F_ZSTD = 32015 };

/* Registered filters that detector and HyperSpy files use.  `package`: the
 * Debian 12 package whose plugin Open MPI's HDF5 loads; `serial_only`: the
 * package that has one for the serial HDF5 only. */
static const struct {
  int id;
  const char *name, *package, *serial_only;
} known[] = {
    {F_BZIP2, "bzip2", NULL, "hdf5-filter-plugin"},
    {F_LZF, "lzf", "hdf5-plugin-lzf liblzf1", NULL},
    {F_BLOSC, "blosc", NULL, NULL},
    {F_LZ4, "lz4", NULL, NULL},
    {F_BITSHUFFLE, "bitshuffle", "bitshuffle", NULL},
    {F_ZFP, "zfp", NULL, "hdf5-filter-plugin-zfp-serial"},
    {F_ZSTD, "zstd", NULL, NULL},
};
#define NKNOWN (sizeof known / sizeof *known)

const char *hb_filter_name(int id) {
  for (size_t i = 0; i < NKNOWN; i++)
    if (known[i].id == id) return known[i].name;
  return NULL;
}

const char *hb_filter_remedy(int id, char *buf, size_t n) {
  buf[0] = 0;
  for (size_t i = 0; i < NKNOWN; i++) {
    if (known[i].id != id) continue;
    if (known[i].package) snprintf(buf, n, "; on Debian 12: apt install %s", known[i].package);
    else if (known[i].serial_only)
      snprintf(buf, n, "; Debian 12's plugin for it (%s) is built for the serial HDF5 only", known[i].serial_only);
  }
  return buf;
}

static int bitshuffle_found(void);
static const H5Z_class2_t bitshuffle_decoder;

/* Debian 12's LZF plugin (hdf5-plugin-lzf) calls lzf_decompress but is not
 * linked to liblzf, so HDF5 fails to dlopen it ("undefined symbol:
 * lzf_decompress").  liblzf loaded into the global scope first supplies the
 * symbol; where it is missing, the filter stays unavailable and says so.
 * Bitshuffle's decoder needs Debian's library, looked for (and registered
 * in place of the plugin's) when a file first uses it, not at every start. */
int hb_filter_available(int id) {
  static int lzf_tried, bitshuffle_tried;
  if (id == F_LZF && !lzf_tried) lzf_tried = 1, dlopen("liblzf.so.1", RTLD_NOW | RTLD_GLOBAL);
  if (id == F_BITSHUFFLE && !bitshuffle_tried) {
    bitshuffle_tried = 1;
    if (bitshuffle_found()) H5Zregister(&bitshuffle_decoder);
  }
  return H5Zfilter_avail((H5Z_filter_t)id) > 0;
}

static uint64_t be64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | p[i];
  return v;
}

static uint32_t be32(const unsigned char *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

struct hb_filter_scratch {
  ZSTD_DCtx *zstd;
  unsigned char *block; /* one bitshuffle block, LZ4-decoded but still transposed */
  size_t block_cap;
};

void hb_filter_scratch_free(hb_filter_scratch *s) {
  if (!s) return;
  ZSTD_freeDCtx(s->zstd);
  free(s->block);
  free(s);
}

/* ---- the decoders: each checks every length it reads against n ---- */

/* HDF5's LZ4 filter (32004): a big-endian 8-byte decoded size and 4-byte
 * block size, then per block a 4-byte stored size and the block, stored
 * as is when LZ4 did not shrink it. */
static const char *decode_lz4(const unsigned char *in, size_t n, unsigned char *out, size_t cap, size_t *got) {
  if (n < 12) return "is corrupt (too short for its LZ4 header)";
  uint64_t size = be64(in);
  uint32_t block = be32(in + 8);
  if (size > cap) return "is corrupt (its LZ4 header gives a size larger than the chunk)";
  if (!block && size) return "is corrupt (its LZ4 header gives a block size of 0)";
  size_t pos = 12, done = 0;
  while (done < size) {
    size_t want = size - done < block ? size - done : block;
    if (n - pos < 4) return "is corrupt (LZ4 data ends early)";
    uint32_t stored = be32(in + pos);
    pos += 4;
    if (stored > n - pos) return "is corrupt (LZ4 data ends early)";
    if (stored == want) memcpy(out + done, in + pos, want);
    else if (LZ4_decompress_safe((const char *)in + pos, (char *)out + done, (int)stored, (int)want) != (int)want)
      return "is corrupt (an LZ4 block does not decode)";
    pos += stored;
    done += want;
  }
  *got = (size_t)size;
  return NULL;
}

static const char *decode_blosc(const unsigned char *in, size_t n, unsigned char *out, size_t cap, size_t *got) {
  size_t size = 0;
  if (blosc_cbuffer_validate(in, n, &size) < 0) return "is corrupt (not a valid blosc buffer)";
  if (size > cap) return "is corrupt (its blosc header gives a size larger than the chunk)";
  int r = blosc_decompress_ctx(in, out, cap, 1);
  if (r < 0 || (size_t)r != size) return "is corrupt (blosc cannot decompress it)";
  *got = size;
  return NULL;
}

static const char *decode_zstd(hb_filter_scratch *s, const unsigned char *in, size_t n, unsigned char *out, size_t cap,
                               size_t *got) {
  unsigned long long size = ZSTD_getFrameContentSize(in, n);
  if (size == ZSTD_CONTENTSIZE_ERROR) return "is corrupt (not a zstd frame)";
  if (size == ZSTD_CONTENTSIZE_UNKNOWN) return "is not decodable (its zstd frame does not say its size)";
  if (size > cap) return "is corrupt (its zstd frame gives a size larger than the chunk)";
  if (!s->zstd && !(s->zstd = ZSTD_createDCtx())) return "cannot be decoded (out of memory for zstd)";
  size_t r = ZSTD_decompressDCtx(s->zstd, out, cap, in, n);
  if (ZSTD_isError(r) || r != size) return "is corrupt (zstd cannot decompress it)";
  *got = (size_t)size;
  return NULL;
}

/* ---- bitshuffle, through Debian's plugin library ---- */

typedef int64_t (*bshuf_untrans_fn)(const void *in, void *out, size_t size, size_t elem_size);
typedef int64_t (*bshuf_unshuffle_fn)(const void *in, void *out, size_t size, size_t elem_size, size_t block_size);
typedef size_t (*bshuf_block_size_fn)(size_t elem_size);
static struct {
  int tried;
  bshuf_untrans_fn untrans;
  bshuf_unshuffle_fn unshuffle;
  bshuf_block_size_fn default_block;
} bshuf;

/* The plugin on HDF5's search path (the one HDF5 itself loads); resolved
 * once, on the reading thread, before any decoding thread starts. */
static int bitshuffle_found(void) {
  if (bshuf.tried) return bshuf.untrans != NULL;
  bshuf.tried = 1;
  hb_bitunshuffle_init();
  unsigned npaths = 0;
  if (H5PLsize(&npaths) < 0) return 0;
  for (unsigned i = 0; i < npaths && !bshuf.untrans; i++) {
    char dir[4096], lib[4200];
    if (H5PLget(i, dir, sizeof dir) <= 0) continue;
    snprintf(lib, sizeof lib, "%s/libh5bshuf.so", dir);
    void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!h) continue;
    bshuf.untrans = (bshuf_untrans_fn)dlsym(h, "bshuf_untrans_bit_elem");
    bshuf.unshuffle = (bshuf_unshuffle_fn)dlsym(h, "bshuf_bitunshuffle");
    bshuf.default_block = (bshuf_block_size_fn)dlsym(h, "bshuf_default_block_size");
    if (!bshuf.untrans || !bshuf.unshuffle || !bshuf.default_block) {
      bshuf.untrans = NULL;
      dlclose(h);
    }
  }
  return bshuf.untrans != NULL;
}

/* Bitshuffle (32008), client values (version, version, element size, block
 * size, compression 0 = none or 2 = LZ4).  Blocks of block_size elements,
 * then one of the rest rounded down to a multiple of 8, each transposed on
 * its own (and with LZ4: a big-endian 8-byte decoded size and 4-byte block
 * size in bytes first, each block preceded by its 4-byte stored size); the
 * last (elements % 8) elements are stored as they are. */
static const char *decode_bitshuffle(hb_filter_scratch *s, const unsigned *cd, size_t ncd, const unsigned char *in,
                                     size_t n, unsigned char *out, size_t cap, size_t *got) {
  if (ncd < 3 || !cd[2]) return "cannot be decoded (its bitshuffle filter has no element size)";
  size_t es = cd[2], block = ncd > 3 && cd[3] ? cd[3] : bshuf.default_block(es);
  unsigned compression = ncd > 4 ? cd[4] : 0;
  if (compression == 0) {
    if (n > cap || n % es) return "is corrupt (not a whole number of bitshuffled elements)";
    if (bshuf.unshuffle(in, out, n / es, es, block) < 0) return "is corrupt (bitshuffle cannot undo it)";
    *got = n;
    return NULL;
  }
  if (compression != 2) return "cannot be decoded (bitshuffle compression other than LZ4)";
  if (n < 12) return "is corrupt (too short for its bitshuffle header)";
  uint64_t size = be64(in);
  if (size > cap || size % es) return "is corrupt (its bitshuffle header gives a wrong size)";
  block = be32(in + 8) / es;
  if (!block || block % 8) return "is corrupt (its bitshuffle header gives a wrong block size)";
  size_t elems = (size_t)size / es, pos = 12, done = 0;
  size_t scratch_bytes = (block < elems ? block : elems) * es; /* a stored block size may exceed the chunk */
  if (s->block_cap < scratch_bytes) {
    free(s->block);
    s->block_cap = 0;
    if (!(s->block = malloc(scratch_bytes))) return "cannot be decoded (out of memory for a bitshuffle block)";
    s->block_cap = scratch_bytes;
  }
  while (elems - done >= 8) {
    size_t count = elems - done >= block ? block : (elems - done) / 8 * 8, bytes = count * es;
    if (n - pos < 4) return "is corrupt (bitshuffle data ends early)";
    uint32_t stored = be32(in + pos);
    pos += 4;
    if (stored > n - pos) return "is corrupt (bitshuffle data ends early)";
    if (LZ4_decompress_safe((const char *)in + pos, (char *)s->block, (int)stored, (int)bytes) != (int)bytes)
      return "is corrupt (a bitshuffle LZ4 block does not decode)";
    if (!hb_bitunshuffle_fast(s->block, out + done * es, count, es) &&
        bshuf.untrans(s->block, out + done * es, count, es) < 0)
      return "is corrupt (bitshuffle cannot undo it)";
    pos += stored;
    done += count;
  }
  size_t rest = (elems - done) * es;
  if (n - pos < rest) return "is corrupt (bitshuffle data ends early)";
  memcpy(out + done * es, in + pos, rest);
  *got = (size_t)size;
  return NULL;
}

int hb_filter_raw_decodes(int id, const unsigned *cd, size_t ncd) {
  if (id == F_LZ4 || id == F_BLOSC || id == F_ZSTD) return 1;
  if (id == F_BITSHUFFLE) return bitshuffle_found() && ncd >= 3 && (ncd < 5 || cd[4] == 0 || cd[4] == 2);
  return 0;
}

const char *hb_filter_decode(int id, const unsigned *cd, size_t ncd, const unsigned char *in, size_t n,
                             unsigned char *out, size_t cap, size_t *got, hb_filter_scratch **scratch) {
  if (!*scratch && !(*scratch = calloc(1, sizeof **scratch))) return "cannot be decoded (out of memory)";
  switch (id) {
  case F_LZ4: return decode_lz4(in, n, out, cap, got);
  case F_BLOSC: return decode_blosc(in, n, out, cap, got);
  case F_ZSTD: return decode_zstd(*scratch, in, n, out, cap, got);
  case F_BITSHUFFLE:
    if (!bitshuffle_found()) return "cannot be decoded (no bitshuffle library)";
    return decode_bitshuffle(*scratch, cd, ncd, in, n, out, cap, got);
  default: return "cannot be decoded (filter unknown to the raw chunk path)";
  }
}

/* ---- the same decoders registered with HDF5 ---- */

/* The size a stored chunk decodes to, from its own header. */
static size_t decoded_size(int id, const unsigned *cd, size_t ncd, const unsigned char *in, size_t n) {
  size_t size = 0;
  if (id == F_BITSHUFFLE && !(ncd > 4 && cd[4])) return n;
  if (id == F_LZ4 || id == F_BITSHUFFLE) return n >= 12 ? (size_t)be64(in) : 0;
  if (id == F_BLOSC) return blosc_cbuffer_validate(in, n, &size) < 0 ? 0 : size;
  unsigned long long z = ZSTD_getFrameContentSize(in, n);
  return z == ZSTD_CONTENTSIZE_ERROR || z == ZSTD_CONTENTSIZE_UNKNOWN ? 0 : (size_t)z;
}

/* HDF5 calls filters on the one thread that reads (this HDF5 is not
 * thread-safe), so one scratch serves them. */
static hb_filter_scratch *h5z_scratch;

static size_t h5z_decode(int id, unsigned flags, size_t ncd, const unsigned cd[], size_t nbytes, size_t *buf_size,
                         void **buf) {
  const char *why = "cannot be written by hyperbatch's decoder-only filter";
  size_t size = 0, got = 0;
  unsigned char *out = NULL;
  if (flags & H5Z_FLAG_REVERSE) {
    size = decoded_size(id, cd, ncd, *buf, nbytes);
    out = size ? malloc(size) : NULL;
    why = !size ? "is corrupt (its header does not give a size)"
          : !out ? "cannot be decoded (out of memory)"
                 : hb_filter_decode(id, cd, ncd, *buf, nbytes, out, size, &got, &h5z_scratch);
  }
  if (why) {
    free(out);
    H5Epush2(H5E_DEFAULT, __FILE__, "hb_filter", __LINE__, H5E_ERR_CLS, H5E_PLINE, H5E_READERROR, "%s chunk %s",
             hb_filter_name(id), why);
    return 0;
  }
  free(*buf);
  *buf = out;
  *buf_size = size;
  return got;
}

static size_t h5z_lz4(unsigned flags, size_t ncd, const unsigned cd[], size_t nbytes, size_t *buf_size, void **buf) {
  return h5z_decode(F_LZ4, flags, ncd, cd, nbytes, buf_size, buf);
}
static size_t h5z_blosc(unsigned flags, size_t ncd, const unsigned cd[], size_t nbytes, size_t *buf_size, void **buf) {
  return h5z_decode(F_BLOSC, flags, ncd, cd, nbytes, buf_size, buf);
}
static size_t h5z_zstd(unsigned flags, size_t ncd, const unsigned cd[], size_t nbytes, size_t *buf_size, void **buf) {
  return h5z_decode(F_ZSTD, flags, ncd, cd, nbytes, buf_size, buf);
}
static size_t h5z_bitshuffle(unsigned flags, size_t ncd, const unsigned cd[], size_t nbytes, size_t *buf_size,
                             void **buf) {
  return h5z_decode(F_BITSHUFFLE, flags, ncd, cd, nbytes, buf_size, buf);
}

static const H5Z_class2_t decoders[] = {
    {H5Z_CLASS_T_VERS, F_LZ4, 0, 1, "lz4 (hyperbatch, liblz4)", NULL, NULL, h5z_lz4},
    {H5Z_CLASS_T_VERS, F_BLOSC, 0, 1, "blosc (hyperbatch, libblosc)", NULL, NULL, h5z_blosc},
    {H5Z_CLASS_T_VERS, F_ZSTD, 0, 1, "zstd (hyperbatch, libzstd)", NULL, NULL, h5z_zstd},
};
/* in place of the plugin's own filter, which trusts the stored sizes */
static const H5Z_class2_t bitshuffle_decoder = {
    H5Z_CLASS_T_VERS, F_BITSHUFFLE, 0, 1, "bitshuffle (hyperbatch, Debian's bitshuffle)", NULL, NULL, h5z_bitshuffle};

static int on_plugin_path(const char *dir) {
  unsigned npaths = 0;
  if (H5PLsize(&npaths) < 0) return 0;
  for (unsigned i = 0; i < npaths; i++) {
    char have[4096];
    if (H5PLget(i, have, sizeof have) > 0 && !strcmp(have, dir)) return 1;
  }
  return 0;
}

void hb_filters_init(void) {
  static int done;
  if (done) return;
  done = 1;
  /* HDF5_PLUGIN_PATH replaces HDF5's own folder.  Debian's folder for this
   * HDF5 goes first: HDF5 1.10 ends its search at a folder it cannot open,
   * so one stale entry in the variable would hide every folder after it. */
  if (HB_HDF5_PLUGIN_DIR[0] && !on_plugin_path(HB_HDF5_PLUGIN_DIR)) H5PLprepend(HB_HDF5_PLUGIN_DIR);
  for (size_t i = 0; i < sizeof decoders / sizeof *decoders; i++) H5Zregister(&decoders[i]);
}
