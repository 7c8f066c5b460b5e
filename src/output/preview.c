/* PNG previews: a grey image scaled to its percentiles and a framed line plot.
 *
 * Both build the whole picture in memory (at most a few MB) and hand it to
 * write_png(), the one place that deals with libpng's longjmp error model. */
#include "hb_preview.h"

#include "hb_error.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* libpng cannot return an error, it longjmps.  Record it here, where the
 * message is, then unwind to the setjmp in write_png().  The error pointer is
 * the output path. */
static void on_png_error(png_structp png, png_const_charp msg) {
  int e = errno;
  const char *path = png_get_error_ptr(png);
  FILE *fp = png_get_io_ptr(png);
  if (fp && ferror(fp)) /* "Write Error" says less than errno does */
    HB_FAIL(HB_EIO, path, "cannot write preview: %s", strerror(e));
  else
    HB_FAIL(HB_EIO, path, "cannot write preview: libpng: %s", msg);
  png_longjmp(png, 1);
}

/* Warnings do not affect the file; keep them off the job's stderr. */
static void on_png_warning(png_structp png, png_const_charp msg) {
  (void)png;
  (void)msg;
}

/* Write h rows of w pixels, 1 (grey) or 3 (RGB) bytes each, 8 bits deep. */
static int write_png(const char *path, const unsigned char *pix, size_t w, size_t h, int channels) {
  /* a link planted at the name is never followed (the engine writes each
   * preview under a fresh temporary name and renames it into place) */
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
  FILE *fp = fd < 0 ? NULL : fdopen(fd, "wb");
  if (!fp && fd >= 0) close(fd);
  HB_CHECK(fp, HB_EIO, path, "cannot write preview: %s", strerror(errno));
  /* A failed write leaves no half-written PNG behind, but never unlink what is
   * not a regular file (say /dev/null or a FIFO). */
  struct stat st;
  int removable = fstat(fileno(fp), &st) == 0 && S_ISREG(st.st_mode);

  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, (png_voidp)path,
                                            on_png_error, on_png_warning);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (!info) {
    png_destroy_write_struct(&png, NULL);
    fclose(fp);
    if (removable) remove(path);
    HB_RAISE(HB_EINTERNAL, "memory", "out of memory starting libpng");
  }
  /* fp, png, info and removable are not modified below, so they survive the
   * longjmp without volatile. */
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    fclose(fp);
    if (removable) remove(path);
    return hb_error_trace(HB_EIO, __FILE__, __LINE__); /* raised in on_png_error */
  }
  png_init_io(png, fp);
  png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8,
               channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (size_t r = 0; r < h; r++) png_write_row(png, pix + r * w * (size_t)channels);
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);
  /* The last buffered bytes only reach the file here: a full disk shows up now. */
  if (fclose(fp) != 0) {
    int e = errno;
    if (removable) remove(path);
    HB_RAISE(HB_EIO, path, "cannot write preview: %s", strerror(e));
  }
  return 0;
}

/* (v - lo) / (hi - lo) for lo <= v <= hi, lo < hi.  A finite range can still
 * have an infinite width (-1e308..1e308); then halve everything first. */
static double unit(double v, double lo, double hi) {
  double d = hi - lo;
  if (isinf(d)) return (v * 0.5 - lo * 0.5) / (hi * 0.5 - lo * 0.5);
  return (v - lo) / d;
}

/* ---- grey image ---------------------------------------------------------- */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Nearest rank: the ceil(p*n/100)-th smallest of n sorted values.  Integer
 * arithmetic, so that p=1, n=100 is exactly rank 1. */
static double percentile(const double *sorted, size_t n, unsigned p) {
  size_t rank = (p * n + 99) / 100;
  return sorted[rank ? rank - 1 : 0];
}

static unsigned char grey(double v, double lo, double hi) {
  if (!isfinite(v)) return 0;
  if (!(hi > lo)) return 128; /* a flat image: mid-grey, not black */
  if (v <= lo) return 0;
  if (v >= hi) return 255;
  return (unsigned char)(unit(v, lo, hi) * 255.0 + 0.5);
}

int hb_preview_image(const char *png_path, const double *data, size_t h, size_t w) {
  HB_CHECK(h > 0 && w > 0, HB_EINVALID, png_path, "cannot preview an empty %zux%zu image", h, w);
  /* Integer nearest-neighbour enlargement keeps pixels square and sharp; a
   * 16x16 detector frame would otherwise be a postage stamp. */
  size_t longer = h > w ? h : w;
  size_t f = longer >= 256 ? 1 : (256 + longer - 1) / longer;
  size_t oh = h * f, ow = w * f;
  HB_CHECK(oh <= PNG_USER_HEIGHT_MAX && ow <= PNG_USER_WIDTH_MAX, HB_EINVALID, png_path,
           "a %zux%zu image is too large for a preview", h, w);

  /* Percentiles of the finite values only: a few percent of NaN or Inf
   * (masked or dead pixels) must not wash out the whole picture. */
  size_t n = h * w, nf = 0;
  double *sorted;
  HB_ALLOC(sorted, n);
  for (size_t i = 0; i < n; i++)
    if (isfinite(data[i])) sorted[nf++] = data[i];
  double lo = 0, hi = 0;
  if (nf) {
    qsort(sorted, nf, sizeof *sorted, cmp_double);
    lo = percentile(sorted, nf, 1);
    hi = percentile(sorted, nf, 99);
    /* Nearly flat: the few outliers are all there is to see. */
    if (!(hi > lo)) {
      lo = sorted[0];
      hi = sorted[nf - 1];
    }
  }
  free(sorted);

  unsigned char *pix;
  HB_ALLOC(pix, ow * oh);
  for (size_t i = 0; i < h; i++) { /* array row 0 is the top PNG row */
    unsigned char *row = pix + i * f * ow;
    for (size_t j = 0; j < w; j++) memset(row + j * f, grey(data[i * w + j], lo, hi), f);
    for (size_t k = 1; k < f; k++) memcpy(row + k * ow, row, ow);
  }
  int rc = write_png(png_path, pix, ow, oh, 1);
  free(pix);
  HB_CALL(rc);
  return 0;
}

/* ---- line plot ----------------------------------------------------------- */

enum {
  LW = 640, LH = 360,
  MARGIN = 8, /* white border outside the frame */
  INSET = 6,  /* white gap inside the frame, so the curve never touches it */
  /* Range of the top-left corner of the 2x2 brush. */
  X0 = MARGIN + 1 + INSET, X1 = LW - 1 - MARGIN - 1 - INSET - 1,
  Y0 = MARGIN + 1 + INSET, Y1 = LH - 1 - MARGIN - 1 - INSET - 1,
};

static const unsigned char frame_rgb[3] = {128, 128, 128};
static const unsigned char curve_rgb[3] = {0, 0, 139}; /* dark blue */

static void put(unsigned char *rgb, int x, int y, const unsigned char *c) {
  if (x < 0 || y < 0 || x >= LW || y >= LH) return;
  memcpy(rgb + 3 * ((size_t)y * LW + (size_t)x), c, 3);
}

/* 2 px wide, so the curve stays visible when the PNG is shown scaled down. */
static void brush(unsigned char *rgb, int x, int y) {
  put(rgb, x, y, curve_rgb);
  put(rgb, x + 1, y, curve_rgb);
  put(rgb, x, y + 1, curve_rgb);
  put(rgb, x + 1, y + 1, curve_rgb);
}

/* Bresenham, all octants. */
static void segment(unsigned char *rgb, int x0, int y0, int x1, int y1) {
  int dx = abs(x1 - x0), sx = x0 < x1 ? 1 : -1;
  int dy = -abs(y1 - y0), sy = y0 < y1 ? 1 : -1;
  int e = dx + dy;
  for (;;) {
    brush(rgb, x0, y0);
    if (x0 == x1 && y0 == y1) break;
    int e2 = 2 * e;
    if (e2 >= dy) e += dy, x0 += sx;
    if (e2 <= dx) e += dx, y0 += sy;
  }
}

/* A point with no finite neighbour would draw nothing as a segment. */
static void dot(unsigned char *rgb, int x, int y) {
  for (int dy = -2; dy <= 2; dy++)
    for (int dx = -2; dx <= 2; dx++) put(rgb, x + dx, y + dy, curve_rgb);
}

int hb_preview_line(const char *png_path, const double *y, size_t n) {
  unsigned char *rgb;
  HB_ALLOC(rgb, (size_t)LW * LH * 3);
  memset(rgb, 255, (size_t)LW * LH * 3);
  for (int x = MARGIN; x < LW - MARGIN; x++) {
    put(rgb, x, MARGIN, frame_rgb);
    put(rgb, x, LH - 1 - MARGIN, frame_rgb);
  }
  for (int v = MARGIN; v < LH - MARGIN; v++) {
    put(rgb, MARGIN, v, frame_rgb);
    put(rgb, LW - 1 - MARGIN, v, frame_rgb);
  }

  double lo = INFINITY, hi = -INFINITY;
  for (size_t i = 0; i < n; i++)
    if (isfinite(y[i])) {
      if (y[i] < lo) lo = y[i];
      if (y[i] > hi) hi = y[i];
    }

  int px = 0, py = 0;
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(y[i])) continue; /* breaks the line */
    int qx = n == 1 ? (X0 + X1) / 2 : X0 + (int)lround((double)i * (X1 - X0) / (double)(n - 1));
    /* 5% padding is applied in unit space, so no padded value can overflow. */
    int qy = hi > lo ? Y1 - (int)lround((0.05 + unit(y[i], lo, hi)) / 1.1 * (Y1 - Y0))
                     : (Y0 + Y1) / 2; /* flat data: a centred line */
    if (i > 0 && isfinite(y[i - 1]))
      segment(rgb, px, py, qx, qy);
    else if (i + 1 == n || !isfinite(y[i + 1]))
      dot(rgb, qx, qy);
    px = qx, py = qy;
  }
  int rc = write_png(png_path, rgb, LW, LH, 3);
  free(rgb);
  HB_CALL(rc);
  return 0;
}
