/* PNG previews: write them, read them back with libpng, check the pixels.
 *
 * Plain C, no MPI_Init needed.  Exit status 0 on success; every failed check
 * is printed.  The files go to a fresh temporary directory, removed on
 * success (kept, and named, on failure or with HB_KEEP_PREVIEWS=1). */
#include "hb_error.h"
#include "hb_preview.h"

#include <math.h>
#include <png.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static int failures;

#define CHECK(cond, ...)                                       \
  do {                                                         \
    if (!(cond)) {                                             \
      failures++;                                              \
      fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                            \
      fprintf(stderr, "\n");                                   \
    }                                                          \
  } while (0)

static char dir[64];

static const char *path(const char *name) {
  static char buf[4][256];
  static int k;
  char *p = buf[k++ % 4];
  snprintf(p, sizeof buf[0], "%s/%s", dir, name);
  return p;
}

/* Read a PNG as 8-bit pixels of `format`; *orig is the file's own format, so
 * callers can check it really is grey or RGB. */
static unsigned char *read_png(const char *file, png_uint_32 format, unsigned *w, unsigned *h,
                               png_uint_32 *orig) {
  png_image img;
  memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&img, file)) {
    fprintf(stderr, "cannot read %s: %s\n", file, img.message);
    return NULL;
  }
  *orig = img.format;
  img.format = format;
  unsigned char *buf = malloc(PNG_IMAGE_SIZE(img));
  if (!buf || !png_image_finish_read(&img, NULL, buf, 0, NULL)) {
    fprintf(stderr, "cannot decode %s: %s\n", file, img.message);
    free(buf);
    png_image_free(&img);
    return NULL;
  }
  *w = img.width;
  *h = img.height;
  return buf;
}

static int exists(const char *file) {
  struct stat st;
  return stat(file, &st) == 0;
}

/* 10x20 gradient of distinct values 0..199, row-major.  Nearest rank over 200
 * values: p1 is the 2nd smallest (1), p99 the 198th (197); one grey level is
 * 255/196, so an off-by-one rank is visible in the pixels. */
static void test_gradient(void) {
  enum { H = 10, W = 20 };
  double d[H * W];
  for (int i = 0; i < H * W; i++) d[i] = i;
  hb_error_clear();
  CHECK(hb_preview_image(path("gradient.png"), d, H, W) == 0, "%s", hb_error_what());

  unsigned w, h;
  png_uint_32 orig;
  unsigned char *g = read_png(path("gradient.png"), PNG_FORMAT_GRAY, &w, &h, &orig);
  CHECK(g, "gradient.png unreadable");
  if (!g) return;
  CHECK(orig == PNG_FORMAT_GRAY, "format %u, want 8-bit grey", (unsigned)orig);
  /* Longer side 20 < 256: factor ceil(256/20) = 13. */
  CHECK(w == 20 * 13 && h == 10 * 13, "%ux%u, want 260x130", w, h);
  if (w != 260 || h != 130) { free(g); return; }
  const unsigned f = 13;

  /* Every enlarged block is one uniform value. */
  int uniform = 1;
  for (unsigned y = 0; y < h; y++)
    for (unsigned x = 0; x < w; x++)
      if (g[y * w + x] != g[(y / f * f) * w + x / f * f]) uniform = 0;
  CHECK(uniform, "enlarged blocks are not uniform");

#define PX(v) g[((v) / W) * f * w + ((v) % W) * f]
  CHECK(PX(0) == 0, "value 0 -> %d", PX(0));
  CHECK(PX(1) == 0, "p1 (value 1) -> %d, want 0", PX(1));
  CHECK(PX(2) > 0, "value 2 -> %d, want > 0 (p1 must be the 2nd value)", PX(2));
  CHECK(PX(197) == 255, "p99 (value 197) -> %d, want 255", PX(197));
  CHECK(PX(196) < 255, "value 196 -> %d, want < 255 (p99 must be the 198th value)", PX(196));
  CHECK(PX(199) == 255, "value 199 -> %d, want 255 (clamped)", PX(199));
  int mid = PX(99); /* (99-1)/196*255 = 127.5 */
  CHECK(mid == 127 || mid == 128, "value 99 -> %d, want ~127.5", mid);
  int mono = 1;
  for (int v = 1; v < H * W; v++)
    if (PX(v) < PX(v - 1)) mono = 0;
  CHECK(mono, "grey is not monotonic along the gradient");
  /* Row 0 of the array is the top of the image. */
  CHECK(g[0] < g[(h - 1) * w], "top row %d is not darker than bottom row %d", g[0],
        g[(h - 1) * w]);
#undef PX
  free(g);
}

/* NaN and ±Inf are black and do not take part in the percentiles: with 4 of
 * 256 values infinite (more than 1%), counting them would put p99 at +Inf (and
 * p1 at -Inf), and no finite pixel would be white. */
static void test_nonfinite(void) {
  enum { N = 16 };
  double d[N * N];
  for (int i = 0; i < N * N; i++) d[i] = 1000 + i;
  static const int nan_at[] = {3, 40, 41, 90}, pinf_at[] = {100, 101, 150, 151},
                   ninf_at[] = {200, 201, 210, 211};
  for (int k = 0; k < 4; k++) d[nan_at[k]] = NAN, d[pinf_at[k]] = INFINITY, d[ninf_at[k]] = -INFINITY;
  hb_error_clear();
  CHECK(hb_preview_image(path("nan.png"), d, N, N) == 0, "%s", hb_error_what());
  unsigned w, h;
  png_uint_32 orig;
  unsigned char *g = read_png(path("nan.png"), PNG_FORMAT_GRAY, &w, &h, &orig);
  CHECK(g, "nan.png unreadable");
  if (!g) return;
  CHECK(w == 256 && h == 256, "%ux%u, want 256x256 (factor 16)", w, h);
  if (w == 256 && h == 256) {
#define PX(v) g[((v) / N) * 16 * w + ((v) % N) * 16]
    for (int k = 0; k < 4; k++) {
      CHECK(PX(nan_at[k]) == 0, "NaN -> %d, want 0", PX(nan_at[k]));
      CHECK(PX(pinf_at[k]) == 0, "+Inf -> %d, want 0", PX(pinf_at[k]));
      CHECK(PX(ninf_at[k]) == 0, "-Inf -> %d, want 0", PX(ninf_at[k]));
    }
    CHECK(PX(255) == 255, "largest finite value -> %d, want 255", PX(255));
    CHECK(PX(0) == 0 && PX(1) < 10, "smallest finite values -> %d, %d, want ~0", PX(0), PX(1));
    CHECK(PX(128) > 100 && PX(128) < 155, "middle value -> %d, want mid-grey", PX(128));
#undef PX
  }
  free(g);
}

/* Flat images: mid-grey.  A flat percentile range with outliers falls back to
 * min/max.  No enlargement once the longer side is 256 or more. */
static void test_flat(void) {
  double d[300 * 2];
  for (int i = 0; i < 600; i++) d[i] = 3.5;
  hb_error_clear();
  CHECK(hb_preview_image(path("flat.png"), d, 300, 2) == 0, "%s", hb_error_what());
  unsigned w, h;
  png_uint_32 orig;
  unsigned char *g = read_png(path("flat.png"), PNG_FORMAT_GRAY, &w, &h, &orig);
  CHECK(g, "flat.png unreadable");
  if (g) {
    CHECK(w == 2 && h == 300, "%ux%u, want 2x300 (no enlargement)", w, h);
    int grey = 1;
    for (unsigned i = 0; i < w * h; i++)
      if (g[i] != 128) grey = 0;
    CHECK(grey, "flat image is not uniformly 128 (first pixel %d)", g[0]);
    free(g);
  }

  /* 200 values of 5 with one 0 and one 10: p1 = p99 = 5, so min/max it is. */
  double e[200];
  for (int i = 0; i < 200; i++) e[i] = 5;
  e[0] = 0;
  e[199] = 10;
  hb_error_clear();
  CHECK(hb_preview_image(path("outliers.png"), e, 1, 200) == 0, "%s", hb_error_what());
  g = read_png(path("outliers.png"), PNG_FORMAT_GRAY, &w, &h, &orig);
  CHECK(g, "outliers.png unreadable");
  if (g) {
    CHECK(w == 400 && h == 2, "%ux%u, want 400x2 (factor 2)", w, h);
    if (w == 400 && h == 2) {
      CHECK(g[0] == 0, "min -> %d, want 0", g[0]);
      CHECK(g[2 * 100] == 128, "5 of 0..10 -> %d, want 128", g[200]);
      CHECK(g[2 * 199] == 255, "max -> %d, want 255", g[398]);
    }
    free(g);
  }

  /* Long side exactly 256: factor 1.  A single pixel: factor 256. */
  double one = 7;
  hb_error_clear();
  CHECK(hb_preview_image(path("one.png"), &one, 1, 1) == 0, "%s", hb_error_what());
  g = read_png(path("one.png"), PNG_FORMAT_GRAY, &w, &h, &orig);
  CHECK(g && w == 256 && h == 256 && g[0] == 128, "1x1 image: %ux%u", g ? w : 0, g ? h : 0);
  free(g);
  double *big = calloc(256 * 3, sizeof *big);
  hb_error_clear();
  CHECK(big && hb_preview_image(path("edge.png"), big, 3, 256) == 0, "%s", hb_error_what());
  free(big);
  g = read_png(path("edge.png"), PNG_FORMAT_GRAY, &w, &h, &orig);
  CHECK(g && w == 256 && h == 3, "3x256 image: %ux%u, want 256x3", g ? w : 0, g ? h : 0);
  free(g);
}

static int is_blue(const unsigned char *p) { return p[2] >= 100 && p[0] < 80 && p[1] < 80; }
static int is_white(const unsigned char *p) { return p[0] == 255 && p[1] == 255 && p[2] == 255; }

/* Blue pixels of an RGB plot: count, and the range of their rows and columns. */
static int blue_extent(const unsigned char *rgb, unsigned w, unsigned h, unsigned x0, unsigned x1,
                       int *ymin, int *ymax, int *xmin, int *xmax) {
  int count = 0;
  *ymin = *xmin = 1 << 30;
  *ymax = *xmax = -1;
  for (unsigned y = 0; y < h; y++)
    for (unsigned x = x0; x <= x1 && x < w; x++)
      if (is_blue(rgb + 3 * (y * w + x))) {
        count++;
        if ((int)y < *ymin) *ymin = y;
        if ((int)y > *ymax) *ymax = y;
        if ((int)x < *xmin) *xmin = x;
        if ((int)x > *xmax) *xmax = x;
      }
  return count;
}

static unsigned char *plot(const char *name, const double *y, size_t n, unsigned *w, unsigned *h) {
  hb_error_clear();
  int rc = hb_preview_line(path(name), y, n);
  CHECK(rc == 0, "%s: %s", name, hb_error_what());
  if (rc) return NULL;
  png_uint_32 orig;
  unsigned char *rgb = read_png(path(name), PNG_FORMAT_RGB, w, h, &orig);
  CHECK(rgb, "%s unreadable", name);
  if (rgb) {
    CHECK(orig == PNG_FORMAT_RGB, "%s: format %u, want 8-bit RGB", name, (unsigned)orig);
    CHECK(*w == 640 && *h == 360, "%s: %ux%u, want 640x360", name, *w, *h);
  }
  return rgb;
}

static void test_line(void) {
  enum { N = 500 };
  double y[N];
  for (int i = 0; i < N; i++) y[i] = sin(i * 2 * M_PI / (N - 1));
  unsigned w, h;
  unsigned char *rgb = plot("sine.png", y, N, &w, &h);
  if (rgb && w == 640 && h == 360) {
    CHECK(is_white(rgb), "corner is not white");
    CHECK(is_white(rgb + 3 * (180 * w + 320 - 100)), "background inside the frame is not white");
    int white = 0;
    for (unsigned i = 0; i < w * h; i++) white += is_white(rgb + 3 * i);
    CHECK(white > (int)(w * h) * 8 / 10, "only %d of %u pixels are white", white, w * h);
    /* A grey frame with a white margin outside it. */
    unsigned char *fr = rgb + 3 * (180 * w + 8);
    CHECK(fr[0] == fr[1] && fr[1] == fr[2] && fr[0] > 60 && fr[0] < 220,
          "no grey frame at x=8 (%d,%d,%d)", fr[0], fr[1], fr[2]);
    int ymin, ymax, xmin, xmax;
    int nb = blue_extent(rgb, w, h, 0, w - 1, &ymin, &ymax, &xmin, &xmax);
    CHECK(nb > 1000, "only %d dark-blue pixels", nb);
    /* The curve spans the width and most of the height, but the 5% padding
     * keeps its extremes off the frame. */
    CHECK(xmin < 40 && xmax > 600, "curve spans x %d..%d", xmin, xmax);
    CHECK(ymin > 10 && ymax < 350 && ymax - ymin > 250, "curve spans y %d..%d", ymin, ymax);
    /* Sine starts at 0 and goes up: the first columns are mid-height, the
     * maximum (a quarter in) is near the top. */
    int a, b, c, d;
    blue_extent(rgb, w, h, xmin, xmin + 1, &a, &b, &c, &d);
    CHECK(a > 150 && b < 210, "start of the curve at y %d..%d, want mid-height", a, b);
    blue_extent(rgb, w, h, 0, w / 2, &a, &b, &c, &d);
    CHECK(a == ymin, "the maximum is not in the left half");
    /* Connected: every column between the ends has some blue. */
    int gaps = 0;
    for (int x = xmin; x <= xmax; x++) gaps += blue_extent(rgb, w, h, x, x, &a, &b, &c, &d) == 0;
    CHECK(gaps == 0, "%d columns without curve", gaps);
  }
  free(rgb);

  /* A NaN breaks the line: nothing between the neighbours of the gap. */
  double z[5] = {0, 1, NAN, 3, 4};
  rgb = plot("gap.png", z, 5, &w, &h);
  if (rgb && w == 640 && h == 360) {
    int ymin, ymax, xmin, xmax;
    int nb = blue_extent(rgb, w, h, 0, w - 1, &ymin, &ymax, &xmin, &xmax);
    int span = xmax - xmin; /* four steps of span/4 */
    int inside = blue_extent(rgb, w, h, xmin + span / 4 + 4, xmin + 3 * span / 4 - 4, &ymin,
                             &ymax, &xmin, &xmax);
    CHECK(nb > 0 && inside == 0, "%d blue pixels across the NaN gap (of %d)", inside, nb);
  }
  free(rgb);

  /* One value: a single small dot.  Flat data: a centred horizontal line. */
  double one = 42;
  rgb = plot("dot.png", &one, 1, &w, &h);
  if (rgb && w == 640 && h == 360) {
    int ymin, ymax, xmin, xmax;
    int nb = blue_extent(rgb, w, h, 0, w - 1, &ymin, &ymax, &xmin, &xmax);
    CHECK(nb > 0 && nb <= 49 && xmax - xmin < 8 && ymax - ymin < 8, "dot: %d pixels, %dx%d", nb,
          xmax - xmin + 1, ymax - ymin + 1);
  }
  free(rgb);
  double flat[50];
  for (int i = 0; i < 50; i++) flat[i] = -2.5;
  rgb = plot("flatline.png", flat, 50, &w, &h);
  if (rgb && w == 640 && h == 360) {
    int ymin, ymax, xmin, xmax;
    blue_extent(rgb, w, h, 0, w - 1, &ymin, &ymax, &xmin, &xmax);
    CHECK(ymax - ymin <= 2 && abs((ymin + ymax) / 2 - 180) < 6 && xmax - xmin > 550,
          "flat line at y %d..%d, x %d..%d", ymin, ymax, xmin, xmax);
  }
  free(rgb);
}

static void test_errors(void) {
  double d[4] = {1, 2, 3, 4};
  const char *bad = path("no/such/dir/x.png");
  hb_error_clear();
  CHECK(hb_preview_image(bad, d, 2, 2) == HB_EIO, "image into a missing directory");
  CHECK(!strcmp(hb_error_where(), bad), "where is '%s', want the path", hb_error_where());
  CHECK(strstr(hb_error_what(), "cannot write preview"), "what is '%s'", hb_error_what());
  hb_error_clear();
  CHECK(hb_preview_line(bad, d, 4) == HB_EIO, "line into a missing directory");
  CHECK(!strcmp(hb_error_where(), bad), "where is '%s', want the path", hb_error_where());
  hb_error_clear();
  CHECK(hb_preview_image(path("empty.png"), d, 0, 4) == HB_EINVALID, "empty image accepted");
  CHECK(!exists(path("empty.png")), "empty image left a file");

  /* Incompressible noise: its PNG is far larger than stdio's buffer, so a
   * failing write is seen by libpng itself, not only at fclose. */
  enum { NZ = 300 };
  double *noise = malloc(NZ * NZ * sizeof *noise);
  if (!noise) { CHECK(0, "out of memory"); return; }
  unsigned x = 12345;
  for (int i = 0; i < NZ * NZ; i++) x = x * 1103515245u + 12345u, noise[i] = (x >> 16) & 0xff;

  /* A link at the name is never followed: the write fails (ELOOP) and what
   * the link points to is untouched.  The target is a full device, so that a
   * preview.c that followed it would fail with ENOSPC instead. */
  if (access("/dev/full", W_OK) == 0 && symlink("/dev/full", path("full.png")) == 0) {
    hb_error_clear();
    CHECK(hb_preview_image(path("full.png"), noise, NZ, NZ) == HB_EIO, "noise through a link");
    CHECK(strstr(hb_error_what(), "symbolic links"), "noise through a link: '%s'", hb_error_what());
    struct stat st;
    CHECK(lstat(path("full.png"), &st) == 0 && S_ISLNK(st.st_mode), "the link was removed");
  }

  /* A full device: the open succeeds, the writes fail. */
  if (access("/dev/full", W_OK) == 0) {
    hb_error_clear();
    CHECK(hb_preview_image("/dev/full", noise, NZ, NZ) == HB_EIO, "noise to /dev/full");
    CHECK(strstr(hb_error_what(), "No space"), "noise to /dev/full: '%s'", hb_error_what());
    hb_error_clear();
    double one = 1; /* a ~100-byte PNG: fails at fclose */
    CHECK(hb_preview_image("/dev/full", &one, 1, 1) == HB_EIO, "1x1 to /dev/full");
    CHECK(strstr(hb_error_what(), "No space"), "1x1 to /dev/full: '%s'", hb_error_what());
    hb_error_clear();
    CHECK(hb_preview_line("/dev/full", d, 4) == HB_EIO, "line to /dev/full");
    CHECK(!strcmp(hb_error_where(), "/dev/full"), "where is '%s'", hb_error_where());
    struct stat st;
    CHECK(stat("/dev/full", &st) == 0 && S_ISCHR(st.st_mode), "a non-regular output file was removed");
  }

  /* A regular file that cannot grow past 1000 bytes: the noise PNG fails
   * half-written (EFBIG), and the partial file must be gone. */
  struct rlimit old;
  if (getrlimit(RLIMIT_FSIZE, &old) == 0) {
    struct rlimit small = old;
    small.rlim_cur = 1000;
    signal(SIGXFSZ, SIG_IGN); /* get EFBIG instead of being killed */
    if (setrlimit(RLIMIT_FSIZE, &small) == 0) {
      hb_error_clear();
      int rc = hb_preview_image(path("big.png"), noise, NZ, NZ);
      setrlimit(RLIMIT_FSIZE, &old);
      CHECK(rc == HB_EIO, "image beyond RLIMIT_FSIZE returned %d (%s)", rc, hb_error_what());
      CHECK(!exists(path("big.png")), "a partial big.png was left behind");
    }
    signal(SIGXFSZ, SIG_DFL);
  }
  free(noise);
  hb_error_clear();
}

static void cleanup(void) {
  static const char *files[] = {"gradient.png", "nan.png",  "flat.png", "outliers.png",
                                "one.png",      "edge.png", "sine.png", "gap.png",
                                "dot.png",      "flatline.png", "full.png", "big.png"};
  for (size_t i = 0; i < sizeof files / sizeof *files; i++) remove(path(files[i]));
  rmdir(dir);
}

int main(void) {
  snprintf(dir, sizeof dir, "%s", "/tmp/hb_preview_XXXXXX");
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 2;
  }
  test_gradient();
  test_nonfinite();
  test_flat();
  test_line();
  test_errors();
  const char *keep = getenv("HB_KEEP_PREVIEWS");
  if (failures || (keep && *keep && strcmp(keep, "0"))) {
    fprintf(stderr, "test_preview: %d failure(s); previews kept in %s\n", failures, dir);
  } else {
    cleanup();
    printf("test_preview: all checks passed\n");
  }
  return failures ? 1 : 0;
}
