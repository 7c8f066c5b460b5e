/* HDF5's deflate filter, encoded by Intel ISA-L or libdeflate.
 *
 * Full-size results are written by HDF5's collective filtered write
 * (directwrite.c): each rank compresses the chunks it computed and HDF5
 * places them, with no chunk sent to another rank.  The deflate filter
 * (H5Zdeflate.c) compresses every chunk with zlib's compress2, which was
 * nearly all of the write phase of a large FFT (docs/performance.md).
 * HDF5 1.10 refuses to register another encoder under the deflate filter's
 * id, so this executable defines compress2 itself: the dynamic linker binds
 * libhdf5's call to the executable's definition first.
 *
 * The stream is a zlib stream as compress2's is, so any reader decodes it;
 * the level HDF5 passes (HyperSpy's 4, recorded in the file) picks zlib's
 * effort, not ours.  output.gzip_effort picks ours:
 *   fast   ISA-L level 1: 6 to 8.5 times libdeflate level 4's speed, files
 *          about 5% larger than HyperSpy's zlib level 4 (docs/output.md)
 *   small  libdeflate at HDF5's level: smaller than HyperSpy's
 * Both are deterministic: a chunk's bytes do not depend on the run or the
 * rank count.  Where the encoder's output does not fit the buffer HDF5
 * gave, zlib's own compress2 (the next definition) decides, so that case
 * stays as HDF5 would have it.  HB_WRITE=hdf5 hands every call to zlib. */
#include <dlfcn.h> /* RTLD_NEXT: _GNU_SOURCE comes from the build */
#include <isa-l/igzip_lib.h>
#include <libdeflate.h>
#include <stdlib.h>
#include <zlib.h>

#include "hb_hspy.h"
#include "hb_settings.h"

typedef int (*compress2_fn)(Bytef *, uLongf *, const Bytef *, uLong, int);

static int small_effort; /* output.gzip_effort: set once per job, before any write */

void hb_hdf5_deflate_set_effort(int small) { small_effort = small; }

static int zlib_compress2(Bytef *dest, uLongf *dest_len, const Bytef *src, uLong src_len, int level) {
  static __thread compress2_fn next;
  if (!next) next = (compress2_fn)dlsym(RTLD_NEXT, "compress2");
  return next ? next(dest, dest_len, src, src_len, level) : Z_STREAM_ERROR;
}

size_t hb_gzip_fast(const void *src, size_t src_len, void *dest, size_t cap) {
  static __thread unsigned char *level_buf; /* ISA-L's hash and token space: reused */
  if (!level_buf) level_buf = malloc(ISAL_DEF_LVL1_DEFAULT);
  if (!level_buf || src_len > UINT32_MAX || cap > UINT32_MAX) return 0;
  struct isal_zstream z;
  isal_deflate_stateless_init(&z);
  z.level = 1, z.level_buf = level_buf, z.level_buf_size = ISAL_DEF_LVL1_DEFAULT;
  z.gzip_flag = IGZIP_ZLIB, z.end_of_stream = 1, z.flush = NO_FLUSH;
  z.next_in = (uint8_t *)(uintptr_t)src, z.avail_in = (uint32_t)src_len;
  z.next_out = dest, z.avail_out = (uint32_t)cap;
  return isal_deflate_stateless(&z) == COMP_OK ? z.total_out : 0;
}

static uLongf libdeflate_compress(Bytef *dest, uLongf cap, const Bytef *src, uLong src_len, int level) {
  /* one compressor per thread and level: allocating one costs more than a small chunk */
  static __thread struct libdeflate_compressor *cached;
  static __thread int cached_level = -1;
  if (level != cached_level) {
    if (cached) libdeflate_free_compressor(cached);
    cached = libdeflate_alloc_compressor(level);
    cached_level = cached ? level : -1;
    if (!cached) return 0;
  }
  return libdeflate_zlib_compress(cached, src, src_len, dest, cap);
}

int compress2(Bytef *dest, uLongf *dest_len, const Bytef *src, uLong src_len, int level) {
  if (level == Z_DEFAULT_COMPRESSION) level = 6;
  if (hb_settings_get()->write_hdf5 || level < 0 || level > 9)
    return zlib_compress2(dest, dest_len, src, src_len, level);
  uLongf n = small_effort || level == 0 ? libdeflate_compress(dest, *dest_len, src, src_len, level)
                                        : hb_gzip_fast(src, src_len, dest, *dest_len);
  if (!n) return zlib_compress2(dest, dest_len, src, src_len, level);
  *dest_len = n;
  return Z_OK;
}

const char *hb_hdf5_deflate_encoder(void) {
  return hb_settings_get()->write_hdf5 ? "zlib" : small_effort ? "libdeflate" : "isal level 1";
}
