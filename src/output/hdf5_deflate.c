/* HDF5's deflate filter, encoded by libdeflate.
 *
 * Full-size results are written by HDF5's collective filtered write
 * (directwrite.c): each rank compresses the chunks it computed and HDF5
 * places them, with no chunk sent to another rank.  The deflate filter
 * (H5Zdeflate.c) compresses every chunk with zlib's compress2, which was
 * nearly all of the write phase of a large FFT (docs/performance.md).
 * HDF5 1.10 refuses to register another encoder under the deflate filter's
 * id, so this executable defines compress2 itself: the dynamic linker binds
 * libhdf5's call to the executable's definition first.  The stream is a
 * zlib stream as compress2's is, at the level HDF5 asks for, and the same
 * for every run and rank count (libdeflate is deterministic).  Where
 * libdeflate's output does not fit the buffer HDF5 gave, zlib's own
 * compress2 (the next definition) decides, so that case stays as HDF5
 * would have it.  HB_WRITE=hdf5 hands every call to zlib. */
#include <dlfcn.h> /* RTLD_NEXT: _GNU_SOURCE comes from the build */
#include <libdeflate.h>
#include <zlib.h>

#include "hb_hspy.h"
#include "hb_settings.h"

typedef int (*compress2_fn)(Bytef *, uLongf *, const Bytef *, uLong, int);

static int zlib_compress2(Bytef *dest, uLongf *dest_len, const Bytef *src, uLong src_len, int level) {
  static __thread compress2_fn next;
  if (!next) next = (compress2_fn)dlsym(RTLD_NEXT, "compress2");
  return next ? next(dest, dest_len, src, src_len, level) : Z_STREAM_ERROR;
}

int compress2(Bytef *dest, uLongf *dest_len, const Bytef *src, uLong src_len, int level) {
  /* one compressor per thread and level: allocating one costs more than a small chunk */
  static __thread struct libdeflate_compressor *cached;
  static __thread int cached_level = -1;
  if (level == Z_DEFAULT_COMPRESSION) level = 6;
  if (hb_settings_get()->write_hdf5 || level < 0 || level > 9)
    return zlib_compress2(dest, dest_len, src, src_len, level);
  if (level != cached_level) {
    if (cached) libdeflate_free_compressor(cached);
    cached = libdeflate_alloc_compressor(level);
    cached_level = cached ? level : -1;
    if (!cached) return Z_MEM_ERROR;
  }
  size_t n = libdeflate_zlib_compress(cached, src, src_len, dest, *dest_len);
  if (!n) return zlib_compress2(dest, dest_len, src, src_len, level);
  *dest_len = (uLongf)n;
  return Z_OK;
}

const char *hb_hdf5_deflate_encoder(void) { return hb_settings_get()->write_hdf5 ? "zlib" : "libdeflate"; }
