/* Built-in synthetic datasets with their ground truth in metadata/Synthetic:
 * a 4D-STEM scan (vacuum, thickness, a strained grain, beam shift, hot
 * pixels) and an EELS spectrum image (known spectra and abundance maps).
 * Every pattern has its own random stream seeded from (seed, position), so
 * the data do not depend on chunking or generation order. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hb_error.h"
#include "hb_h5.h"
#include "hb_hspy.h"
#include "hb_rng.h"
#include "hb_synth.h"

#define WHERE "synth"

/* ---- random numbers: hb_rng.h, one stream per pattern ------------------- */

typedef hb_rng rng;
#define rng_seed hb_rng_seed
#define rng_unif hb_rng_unif

/* Exact Poisson deviates.  Small lam: inversion, skipping exp() when
 * u <= 1 - lam <= exp(-lam) already means k = 0 (most diffuse pixels).
 * lam >= 10: Hormann's PTRS transformed rejection (as numpy uses), exact and
 * constant time, so large lam needs no normal approximation. */
static double poisson_ptrs(rng *r, double lam) {
  double slam = sqrt(lam), b = 0.931 + 2.53 * slam, a = -0.059 + 0.02483 * b;
  double inv_alpha = 1.1239 + 1.1328 / (b - 3.4), vr = 0.9277 - 3.6224 / (b - 2);
  for (;;) {
    double u = rng_unif(r) - 0.5, v = rng_unif(r), us = 0.5 - fabs(u);
    double k = floor((2 * a / us + b) * u + lam + 0.43);
    if (us >= 0.07 && v <= vr) return k;
    if (k < 0 || (us < 0.013 && v > us)) continue;
    if (log(v) + log(inv_alpha) - log(a / (us * us) + b) <= -lam + k * log(lam) - lgamma(k + 1)) return k;
  }
}

static double poisson(rng *r, double lam) {
  if (lam <= 0) return 0;
  if (lam >= 10) return poisson_ptrs(r, lam);
  double u = rng_unif(r);
  if (u <= 1 - lam) return 0;
  double p = exp(-lam), c = p;
  int k = 0; /* the cap guards against rounding leaving c just below u */
  while (u > c && k < 100) {
    k++;
    p *= lam / k;
    c += p;
  }
  return k;
}

/* ---- the generator state -------------------------------------------------- */

typedef struct synth synth;
/* Fill one signal (sig_size doubles) for navigation position L. */
typedef void (*gen_fn)(const synth *s, size_t L, rng *r, double *out);

typedef struct {
  double *v, q, r2max; /* profile sampled on rho^2 with step 1/q */
  size_t n;
} lut;

struct synth {
  int is_stem, ndim, nav;
  hsize_t shape[HB_MAXDIM], chunk[HB_MAXDIM];
  hb_dtype dtype;
  uint64_t seed;
  int gzip;
  size_t nav_size, sig_size;
  gen_fn gen;
  /* 4D-STEM */
  double R, g, cx, cy, s_disk, s_diff, diff_peak, diff_width;
  lut disk, diff;
  int nhot, hot_x[8], hot_y[8];
  double *thick, *vac, *crys, *strain, *shx, *shy; /* navigation-shaped truth */
  /* EELS */
  int k;
  double *spectra, *maps; /* k x channels, k x nav */
};

/* 4D-STEM model, in pixels unless noted; all of it is in the metadata. */
#define N0 20000.0       /* expected counts per pattern, hot pixels aside */
#define DISK_FRAC 0.08   /* disk radius / smaller detector side */
#define LATTICE_FRAC 0.25 /* square-lattice spacing / smaller detector side */
#define BRAGG_FRAC 0.7   /* share of the scattered counts in Bragg disks (crystal) */
#define STRAIN_AMP 0.02  /* peak fractional change of Bragg-disk distances */
#define VACUUM_FRAC 0.2  /* leading rows of the scan that are vacuum */
#define GRAIN_R 0.28     /* grain radius, scan-normalised, centred at (0.6, 0.6) */
#define HOT_N 5
#define HOT_LAMBDA 5000.0
#define DIFF_PEAK 3.5    /* diffuse ring radius / disk radius */
#define DIFF_WIDTH 1.5   /* diffuse ring 1/e half width / disk radius */
static const double bragg_h[8] = {1, -1, 0, 0, 1, 1, -1, -1}, bragg_k[8] = {0, 0, 1, -1, 1, -1, 1, -1};
static const double bragg_w[8] = {1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5}; /* sum 6 */

/* ---- option resolution and checks ---------------------------------------- */

typedef struct {
  int is_stem, ndim, nav;
  hsize_t shape[HB_MAXDIM], chunk[HB_MAXDIM];
  hb_dtype dtype;
} resolved;

static int resolve(const hb_synth_opts *o, resolved *r) {
  HB_CHECK(o->kind && (!strcmp(o->kind, "4dstem") || !strcmp(o->kind, "eels")), HB_EINVALID, WHERE,
           "unknown kind '%s' (expected 4dstem or eels)", o->kind ? o->kind : "");
  r->is_stem = !strcmp(o->kind, "4dstem");
  static const hsize_t def_stem[] = {64, 64, 128, 128}, def_eels[] = {32, 32, 512};
  int nsig = r->is_stem ? 2 : 1;
  r->ndim = o->ndim ? o->ndim : r->is_stem ? 4 : 3;
  HB_CHECK(r->ndim > nsig && r->ndim <= HB_MAXDIM, HB_EINVALID, WHERE,
           "--shape for %s needs 1 to %d navigation axes followed by %s, got %d axes", o->kind,
           HB_MAXDIM - nsig, r->is_stem ? "2 signal axes (ky, kx)" : "1 channel axis", r->ndim);
  memcpy(r->shape, o->ndim ? o->shape : r->is_stem ? def_stem : def_eels, r->ndim * sizeof(hsize_t));
  r->nav = r->ndim - nsig;
  r->dtype = o->has_dtype ? o->dtype : r->is_stem ? HB_U16 : HB_F32;
  HB_CHECK(r->dtype < HB_DTYPE_COUNT, HB_EINVALID, WHERE, "invalid dtype");
  for (int i = 0; i < r->ndim; i++)
    HB_CHECK(r->shape[i] >= 1, HB_EINVALID, WHERE, "--shape: axis %d has length 0", i);
  if (o->has_chunks) memcpy(r->chunk, o->chunk, r->ndim * sizeof(hsize_t));
  else hb_hspy_default_chunks(r->ndim, r->shape, r->nav, hb_dtype_size(r->dtype), r->chunk);
  double bytes = (double)hb_dtype_size(r->dtype);
  for (int i = 0; i < r->ndim; i++) {
    HB_CHECK(r->chunk[i] >= 1 && r->chunk[i] <= r->shape[i], HB_EINVALID, WHERE,
             "--chunks: axis %d chunk %llu must be between 1 and the axis length %llu", i,
             (unsigned long long)r->chunk[i], (unsigned long long)r->shape[i]);
    bytes *= (double)r->chunk[i];
  }
  HB_CHECK(bytes < 4294967296.0, HB_EINVALID, WHERE, "--chunks: a chunk of %.0f bytes exceeds HDF5's 4 GiB limit",
           bytes);
  return 0;
}

/* ---- helpers --------------------------------------------------------------- */

static void unravel(size_t L, int n, const hsize_t *shape, hsize_t *idx) {
  for (int i = n - 1; i >= 0; i--) {
    idx[i] = L % shape[i];
    L /= shape[i];
  }
}

/* Normalised scan coordinates (u along x, v along y) in (0, 1): the last two
 * navigation axes; a single navigation axis runs along the diagonal. */
static void nav_uv(const synth *s, size_t L, double *u, double *v) {
  hsize_t idx[HB_MAXDIM] = {0};
  unravel(L, s->nav, s->shape, idx);
  int n = s->nav;
  *u = (idx[n - 1] + 0.5) / (double)s->shape[n - 1];
  *v = n >= 2 ? (idx[n - 2] + 0.5) / (double)s->shape[n - 2] : *u;
}

static double gauss2(double u, double v, double u0, double v0, double sigma) {
  return exp(-((u - u0) * (u - u0) + (v - v0) * (v - v0)) / (2 * sigma * sigma));
}

static int lut_make(lut *l, double rmax, double q, double (*f)(const synth *, double), const synth *s) {
  l->q = q;
  l->r2max = rmax * rmax;
  l->n = (size_t)(l->r2max * q) + 2;
  HB_ALLOC(l->v, l->n);
  for (size_t i = 0; i < l->n; i++) l->v[i] = f(s, sqrt(i / q));
  return 0;
}

static inline double lut_at(const lut *l, double r2) {
  if (r2 >= l->r2max) return 0;
  double x = r2 * l->q;
  size_t i = (size_t)x;
  return l->v[i] + (x - i) * (l->v[i + 1] - l->v[i]);
}

/* lam += amp * profile(|p - (x0, y0)|), visiting only the profile's support. */
static void add_profile(const synth *s, double *lam, const lut *l, double amp, double x0, double y0) {
  int ky = (int)s->shape[s->ndim - 2], kx = (int)s->shape[s->ndim - 1];
  double rc = sqrt(l->r2max);
  int ylo = (int)fmax(0, ceil(y0 - rc)), yhi = (int)fmin(ky - 1, floor(y0 + rc));
  for (int y = ylo; y <= yhi; y++) {
    double dy2 = (y - y0) * (y - y0), half = sqrt(fmax(0, l->r2max - dy2));
    int xlo = (int)fmax(0, ceil(x0 - half)), xhi = (int)fmin(kx - 1, floor(x0 + half));
    double *row = lam + (size_t)y * kx;
    for (int x = xlo; x <= xhi; x++) row[x] += amp * lut_at(l, (x - x0) * (x - x0) + dy2);
  }
}

/* ---- 4D-STEM ---------------------------------------------------------------- */

/* Anti-aliased disk: linear coverage across the one-pixel edge. */
static double disk_profile(const synth *s, double rho) { return fmin(1, fmax(0, s->R + 0.5 - rho)); }

static double diff_profile(const synth *s, double rho) {
  double z = (rho - s->diff_peak) / s->diff_width;
  return exp(-z * z);
}

/* Scan fields: vacuum band, thickness (t/lambda), grain, strain, beam shift. */
static void stem_fields(synth *s) {
  for (size_t L = 0; L < s->nav_size; L++) {
    double u, v;
    nav_uv(s, L, &u, &v);
    double w = (v - VACUUM_FRAC) / (1 - VACUUM_FRAC);
    s->vac[L] = v < VACUUM_FRAC;
    s->thick[L] = s->vac[L] ? 0 : 0.15 + 0.9 * w + 0.15 * w * sin(2 * M_PI * u);
    s->crys[L] = (u - 0.6) * (u - 0.6) + (v - 0.6) * (v - 0.6) < GRAIN_R * GRAIN_R;
    s->strain[L] = s->crys[L] * STRAIN_AMP * gauss2(u, v, 0.6, 0.6, 0.1);
    s->shx[L] = 2.0 * sin(2 * M_PI * (0.5 * u + 0.25 * v));
    s->shy[L] = 1.5 * cos(2 * M_PI * (0.3 * u + 0.45 * v));
  }
}

/* Hot pixels: fixed per seed, away from the direct disk and the edges. */
static void stem_hot_pixels(synth *s) {
  int ky = (int)s->shape[s->ndim - 2], kx = (int)s->shape[s->ndim - 1];
  s->nhot = kx >= 8 && ky >= 8 ? HOT_N : 0;
  rng r;
  rng_seed(&r, s->seed, UINT64_MAX); /* a stream no pattern uses */
  for (int n = 0, tries = 0; n < s->nhot && tries < 100000; tries++) {
    int x = 2 + (int)(rng_unif(&r) * (kx - 4)), y = 2 + (int)(rng_unif(&r) * (ky - 4));
    int ok = tries > 50000 || hypot(x - s->cx, y - s->cy) > s->R + 4;
    for (int m = 0; m < n; m++) ok &= x != s->hot_x[m] || y != s->hot_y[m];
    if (ok) {
      s->hot_x[n] = x;
      s->hot_y[n++] = y;
    }
  }
}

static void stem_gen(const synth *s, size_t L, rng *r, double *out) {
  int kx = (int)s->shape[s->ndim - 1];
  memset(out, 0, s->sig_size * sizeof *out);
  double t = s->thick[L], scat = 1 - exp(-t), x0 = s->cx + s->shx[L], y0 = s->cy + s->shy[L];
  add_profile(s, out, &s->disk, N0 * exp(-t) / s->s_disk, x0, y0);
  double bragg = s->crys[L] ? BRAGG_FRAC : 0;
  if (scat > 0 && s->s_diff > 0) add_profile(s, out, &s->diff, N0 * scat * (1 - bragg) / s->s_diff, x0, y0);
  for (int m = 0; m < 8 && bragg > 0; m++) {
    double a = N0 * scat * bragg * bragg_w[m] / 6 / s->s_disk, sc = s->g * (1 + s->strain[L]);
    add_profile(s, out, &s->disk, a, x0 + bragg_h[m] * sc, y0 + bragg_k[m] * sc);
  }
  for (size_t i = 0; i < s->sig_size; i++)
    if (out[i] > 0) out[i] = poisson(r, out[i]);
  for (int h = 0; h < s->nhot; h++) out[(size_t)s->hot_y[h] * kx + s->hot_x[h]] += poisson(r, HOT_LAMBDA);
}

static int stem_setup(synth *s) {
  double ky = (double)s->shape[s->ndim - 2], kx = (double)s->shape[s->ndim - 1], kmin = fmin(kx, ky);
  s->R = fmax(1, round(DISK_FRAC * kmin));
  s->g = fmax(1, round(LATTICE_FRAC * kmin));
  s->cx = floor(kx / 2);
  s->cy = floor(ky / 2);
  s->diff_peak = DIFF_PEAK * s->R;
  s->diff_width = DIFF_WIDTH * s->R;
  HB_CALL(lut_make(&s->disk, s->R + 1, 8, disk_profile, s));
  /* beyond peak + 4 widths the ring is below 1e-7 of its peak: call it 0 */
  HB_CALL(lut_make(&s->diff, s->diff_peak + 4 * s->diff_width, 4, diff_profile, s));
  /* Normalise the disk on its own support and the ring over the detector, so
   * a centred pattern expects N0 counts on the detector; but at least half
   * the ring's full sum, or tiny detectors would blow the ring up. */
  double full = 0, det = 0;
  s->s_disk = 0;
  int rd = (int)s->R + 2, rr = (int)sqrt(s->diff.r2max) + 1;
  for (int y = -rd; y <= rd; y++)
    for (int x = -rd; x <= rd; x++) s->s_disk += lut_at(&s->disk, x * x + y * y);
  for (int y = -rr; y <= rr; y++)
    for (int x = -rr; x <= rr; x++) full += lut_at(&s->diff, x * x + y * y);
  for (int y = 0; y < (int)ky; y++)
    for (int x = 0; x < (int)kx; x++) det += lut_at(&s->diff, (x - s->cx) * (x - s->cx) + (y - s->cy) * (y - s->cy));
  s->s_diff = fmax(det, 0.5 * full);
  double **f[] = {&s->thick, &s->vac, &s->crys, &s->strain, &s->shx, &s->shy};
  for (int i = 0; i < 6; i++) HB_ALLOC(*f[i], s->nav_size);
  stem_fields(s);
  stem_hot_pixels(s);
  s->gen = stem_gen;
  return 0;
}

/* ---- EELS ------------------------------------------------------------------- */

/* Edge: logistic onset (1.5 eV) times a power-law decay. */
static double edge(double e, double onset, double height, double r) {
  return height * pow(e / onset, -r) / (1 + exp(-(e - onset) / 1.5));
}

#define EELS_K 3
static const char *eels_names[EELS_K] = {"background", "C K edge", "O K edge"};
static const double eels_onsets[EELS_K] = {0, 284, 532};

static void eels_gen(const synth *s, size_t L, rng *r, double *out) {
  size_t c = s->sig_size;
  for (size_t i = 0; i < c; i++) {
    double lam = 0;
    for (int k = 0; k < s->k; k++) lam += s->maps[k * s->nav_size + L] * s->spectra[k * c + i];
    out[i] = poisson(r, lam);
  }
}

static int eels_setup(synth *s) {
  size_t c = s->sig_size;
  s->k = EELS_K;
  HB_ALLOC(s->spectra, s->k * c);
  HB_ALLOC(s->maps, s->k * s->nav_size);
  for (size_t i = 0; i < c; i++) { /* offset 250 eV, 1 eV per channel */
    double e = 250.0 + (double)i;
    s->spectra[i] = 1000 * pow(e / 250, -3);
    s->spectra[c + i] = edge(e, 284, 300, 2.5);
    s->spectra[2 * c + i] = edge(e, 532, 200, 2.5);
  }
  for (size_t L = 0; L < s->nav_size; L++) {
    double u, v;
    nav_uv(s, L, &u, &v);
    s->maps[L] = 0.6 + 0.8 * v;                                 /* thickness-like ramp */
    s->maps[s->nav_size + L] = gauss2(u, v, 0.3, 0.35, 0.18);    /* carbon blob */
    s->maps[2 * s->nav_size + L] = gauss2(u, v, 0.7, 0.7, 0.2);  /* oxide blob */
  }
  s->gen = eels_gen;
  return 0;
}

/* ---- writing ---------------------------------------------------------------- */

static void dtype_range(hb_dtype t, double *lo, double *hi) {
  static const double r[HB_DTYPE_COUNT][2] = {
      [HB_U8] = {0, 255}, [HB_U16] = {0, 65535}, [HB_U32] = {0, 4294967295.0},
      [HB_U64] = {0, 18446744073709549568.0}, [HB_I8] = {-128, 127}, [HB_I16] = {-32768, 32767},
      [HB_I32] = {-2147483648.0, 2147483647.0}, [HB_I64] = {-9223372036854775808.0, 9223372036854774784.0},
      [HB_F32] = {-3.4e38, 3.4e38}, [HB_F64] = {-1.7e308, 1.7e308}};
  *lo = r[t][0];
  *hi = r[t][1];
}

/* Convert n doubles into element `off` onward of a typed buffer, clamped. */
static void store(hb_dtype t, void *buf, size_t off, const double *v, size_t n) {
  double lo, hi;
  dtype_range(t, &lo, &hi);
  switch (t) {
#define X(E, T)                                                                   \
  case E:                                                                         \
    for (size_t i = 0; i < n; i++) ((T *)buf)[off + i] = (T)(v[i] < lo ? lo : v[i] > hi ? hi : v[i]); \
    break;
    HB_FOREACH_DTYPE(X)
#undef X
    default: break;
  }
}

static size_t L_first(const synth *s, const hsize_t *start) {
  size_t L = 0;
  for (int i = 0; i < s->nav; i++) L = L * s->shape[i] + start[i];
  return L;
}

/* Write one slab: `count` positions from `start` (navigation axes). */
static int write_slab(const synth *s, hid_t dset, const hsize_t *start, const hsize_t *count, void *buf,
                      double *sig) {
  size_t npat = 1;
  for (int i = 0; i < s->nav; i++) npat *= count[i];
  hsize_t loc[HB_MAXDIM];
  for (size_t p = 0; p < npat; p++) {
    unravel(p, s->nav, count, loc);
    size_t L = 0;
    for (int i = 0; i < s->nav; i++) L = L * s->shape[i] + start[i] + loc[i];
    rng r;
    rng_seed(&r, s->seed, L);
    s->gen(s, L, &r, sig);
    store(s->dtype, buf, p * s->sig_size, sig, s->sig_size);
  }
  hid_t fs = H5Dget_space(dset), ms = H5Screate_simple(s->ndim, count, NULL);
  herr_t rc = fs < 0 || ms < 0 ? -1 : H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
  if (rc >= 0) rc = H5Dwrite(dset, hb_dtype_h5(s->dtype), ms, fs, H5P_DEFAULT, buf);
  char msg[300], path[1024] = "the output";
  snprintf(msg, sizeof msg, "%s", rc < 0 ? hb_h5_error_text() : ""); /* before HDF5 clears it */
  if (ms >= 0) H5Sclose(ms);
  if (fs >= 0) H5Sclose(fs);
  if (rc < 0) H5Fget_name(dset, path, sizeof path);
  HB_CHECK(rc >= 0, HB_EIO, WHERE, "cannot write %s: block at navigation index %llu (%s)", path,
           (unsigned long long)L_first(s, start), msg);
  return 0;
}

/* Slabs are the chunk grid's blocks along the navigation axes, spanning the
 * signal axes: every chunk is written whole and once, and memory stays at
 * one block of chunks. */
static int write_data(const synth *s, hid_t dset) {
  int nb = s->nav;
  hsize_t start[HB_MAXDIM] = {0}, count[HB_MAXDIM];
  size_t slab = s->sig_size * hb_dtype_size(s->dtype);
  for (int i = 0; i < nb; i++) slab *= s->chunk[i];
  unsigned char *buf;
  double *sig;
  HB_ALLOC(buf, slab);
  sig = calloc(s->sig_size, sizeof *sig);
  int rc = sig ? 0 : HB_FAIL(HB_EINTERNAL, "memory", "out of memory");
  for (int more = 1; more && !rc;) {
    for (int i = 0; i < s->ndim; i++)
      count[i] = i < nb ? (s->chunk[i] < s->shape[i] - start[i] ? s->chunk[i] : s->shape[i] - start[i]) : s->shape[i];
    rc = write_slab(s, dset, start, count, buf, sig);
    more = 0; /* odometer over the navigation chunk grid, the last axis fastest */
    for (int i = nb - 1; i >= 0 && !more; i--) {
      start[i] += s->chunk[i];
      if (start[i] < s->shape[i]) more = 1;
      else start[i] = 0;
    }
  }
  free(sig);
  free(buf);
  return rc;
}

/* ---- metadata ------------------------------------------------------------- */

static int put_nav_array(const synth *s, hid_t g, const char *key, const double *v) {
  return hb_h5_array_f64(g, key, s->nav, s->shape, v);
}

static int put_vec(hid_t g, const char *key, const double *v, size_t n) {
  hsize_t sh[1] = {n};
  return hb_h5_array_f64(g, key, 1, sh, v);
}

static int stem_truth(const synth *s, hid_t g) {
  HB_CALL(hb_h5_attr_f64(g, "disk_radius_px", s->R));
  HB_CALL(hb_h5_attr_f64(g, "centre_x_px", s->cx));
  HB_CALL(hb_h5_attr_f64(g, "centre_y_px", s->cy));
  HB_CALL(hb_h5_attr_i64(g, "counts_per_pattern", (long long)N0));
  HB_CALL(hb_h5_attr_str(g, "lattice", "square"));
  HB_CALL(hb_h5_attr_f64(g, "lattice_spacing_px", s->g));
  HB_CALL(hb_h5_attr_i64(g, "n_bragg_disks", 8));
  HB_CALL(hb_h5_attr_f64(g, "bragg_fraction", BRAGG_FRAC));
  HB_CALL(hb_h5_attr_f64(g, "strain_amplitude", STRAIN_AMP));
  HB_CALL(hb_h5_attr_f64(g, "vacuum_fraction", VACUUM_FRAC));
  HB_CALL(hb_h5_attr_f64(g, "diffuse_ring_radius_px", s->diff_peak));
  HB_CALL(hb_h5_attr_f64(g, "diffuse_ring_width_px", s->diff_width));
  HB_CALL(hb_h5_attr_f64(g, "bf_radius_px", s->R));
  HB_CALL(hb_h5_attr_f64(g, "adf_inner_px", 1.5 * s->R));
  HB_CALL(hb_h5_attr_f64(g, "adf_outer_px", floor(0.48 * fmin((double)s->shape[s->ndim - 2], (double)s->shape[s->ndim - 1]))));
  HB_CALL(hb_h5_attr_f64(g, "hot_pixel_counts", HOT_LAMBDA));
  HB_CALL(hb_h5_attr_str(g, "thickness_units", "t/lambda"));
  HB_CALL(hb_h5_attr_str(g, "model",
                         "direct disk N*exp(-t); scattered N*(1-exp(-t)) into a diffuse ring, and in the crystal "
                         "bragg_fraction of it into 8 disks at lattice_spacing_px*(1+strain)*(h,k), weight 1 for "
                         "(1,0)-type and 0.5 for (1,1)-type; everything shifted by (beam_shift_x, beam_shift_y); "
                         "Poisson noise; hot pixels add Poisson(hot_pixel_counts)"));
  double bx[8], by[8], hx[8], hy[8];
  char items[8][32], *ptr[8];
  for (int m = 0; m < 8; m++) bx[m] = bragg_h[m] * s->g, by[m] = bragg_k[m] * s->g;
  for (int h = 0; h < s->nhot; h++) {
    hx[h] = s->hot_x[h], hy[h] = s->hot_y[h];
    snprintf(items[h], sizeof items[h], "[%d, %d]", s->hot_x[h], s->hot_y[h]);
    ptr[h] = items[h];
  }
  HB_CALL(put_vec(g, "bragg_disks_x_px", bx, 8));
  HB_CALL(put_vec(g, "bragg_disks_y_px", by, 8));
  HB_CALL(put_vec(g, "bragg_disks_weight", bragg_w, 8));
  HB_CALL(hb_h5_str_list(g, "hot_pixels", ptr, s->nhot));
  if (s->nhot) HB_CALL(put_vec(g, "hot_pixels_x", hx, s->nhot));
  if (s->nhot) HB_CALL(put_vec(g, "hot_pixels_y", hy, s->nhot));
  const char *keys[] = {"beam_shift_x", "beam_shift_y", "thickness", "strain", "vacuum_mask", "crystal_mask"};
  const double *vals[] = {s->shx, s->shy, s->thick, s->strain, s->vac, s->crys};
  for (int i = 0; i < 6; i++) HB_CALL(put_nav_array(s, g, keys[i], vals[i]));
  return 0;
}

static int eels_truth(const synth *s, hid_t g) {
  hsize_t sh[HB_MAXDIM + 1] = {(hsize_t)s->k, s->sig_size};
  HB_CALL(hb_h5_attr_i64(g, "n_components", s->k));
  HB_CALL(hb_h5_str_list(g, "component_names", (char *const *)eels_names, s->k));
  HB_CALL(put_vec(g, "edge_onsets_eV", eels_onsets, s->k));
  HB_CALL(hb_h5_array_f64(g, "component_spectra", 2, sh, s->spectra));
  memcpy(sh + 1, s->shape, s->nav * sizeof(hsize_t));
  HB_CALL(hb_h5_array_f64(g, "component_maps", s->nav + 1, sh, s->maps));
  return 0;
}

static int write_truth(const synth *s, hid_t group) {
  hid_t g = hb_h5_group(group, "metadata/Synthetic");
  if (g < 0) return hb_error_trace(HB_EIO, __FILE__, __LINE__);
  int rc = hb_h5_attr_str(g, "kind", s->is_stem ? "4dstem" : "eels");
  if (!rc) rc = hb_h5_attr_i64(g, "seed", (long long)s->seed); /* int64: seeds >= 2^63 wrap */
  if (!rc) rc = s->is_stem ? stem_truth(s, g) : eels_truth(s, g);
  H5Gclose(g);
  return rc;
}

/* Axes: navigation "y", "x" in nm (extra leading ones unnamed); signal
 * "ky", "kx" in 1/nm centred on the pattern, or the EELS energy axis. */
static void make_axes(const synth *s, hb_axis *ax) {
  memset(ax, 0, s->ndim * sizeof *ax);
  for (int i = 0; i < s->ndim; i++) {
    ax[i].size = s->shape[i];
    ax[i].scale = 1;
    ax[i].navigate = i < s->nav;
  }
  for (int i = s->nav - 1, n = 0; i >= 0 && n < 2; i--, n++) {
    snprintf(ax[i].name, sizeof ax[i].name, "%s", n ? "y" : "x");
    snprintf(ax[i].units, sizeof ax[i].units, "nm");
    ax[i].scale = 0.5;
  }
  if (s->is_stem) {
    for (int i = s->ndim - 2; i < s->ndim; i++) {
      snprintf(ax[i].name, sizeof ax[i].name, "%s", i == s->ndim - 1 ? "kx" : "ky");
      snprintf(ax[i].units, sizeof ax[i].units, "1/nm");
      ax[i].scale = 0.02;
      ax[i].offset = -floor((double)s->shape[i] / 2) * 0.02; /* pixel k/2 is k = 0 */
    }
  } else {
    hb_axis *e = &ax[s->ndim - 1];
    snprintf(e->name, sizeof e->name, "Energy loss");
    snprintf(e->units, sizeof e->units, "eV");
    e->offset = 250;
  }
}

static int write_file(const synth *s, hid_t file, const char *out) {
  hb_axis ax[HB_MAXDIM];
  make_axes(s, ax);
  const char *base = strrchr(out, '/');
  const char *title = s->is_stem ? "synthetic 4D-STEM" : "synthetic EELS";
  hb_signal_desc d = {.name = title, .title = title, .original_filename = base ? base + 1 : out,
                      .signal_type = s->is_stem ? "" : "EELS", .quantity = "Counts", .dtype = s->dtype,
                      .ndim = s->ndim, .shape = s->shape, .chunk = s->chunk, .axes = ax, .gzip = s->gzip};
  hid_t g, dset;
  HB_CALL(hb_hspy_signal_create(file, &d, &g, &dset));
  /* Reopen without a chunk cache: whole chunks go straight to disk, so a full
   * disk fails H5Dwrite (recoverable) rather than the final flush (not). */
  hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS); /* (an open dataset keeps its cache) */
  H5Dclose(dset);
  dset = dapl < 0 || H5Pset_chunk_cache(dapl, 1, 0, 1.0) < 0 ? -1 : H5Dopen2(g, "data", dapl);
  int rc = dset < 0 ? HB_FAIL(HB_EIO, WHERE, "cannot reopen the data (%s)", hb_h5_error_text()) : 0;
  if (dapl >= 0) H5Pclose(dapl);
  if (!rc) rc = write_data(s, dset);
  if (!rc) rc = write_truth(s, g);
  if (dset >= 0) H5Dclose(dset);
  H5Gclose(g);
  return rc;
}

static void synth_free(synth *s) {
  double *p[] = {s->disk.v, s->diff.v, s->thick, s->vac, s->crys, s->strain, s->shx, s->shy, s->spectra, s->maps};
  for (size_t i = 0; i < sizeof p / sizeof *p; i++) free(p[i]);
}

static int synth_init(synth *s, const hb_synth_opts *o, const resolved *r) {
  memset(s, 0, sizeof *s);
  s->is_stem = r->is_stem;
  s->ndim = r->ndim;
  s->nav = r->nav;
  memcpy(s->shape, r->shape, sizeof s->shape);
  memcpy(s->chunk, r->chunk, sizeof s->chunk);
  s->dtype = r->dtype;
  s->seed = o->seed;
  s->gzip = o->gzip;
  s->nav_size = s->sig_size = 1;
  for (int i = 0; i < s->ndim; i++) *(i < s->nav ? &s->nav_size : &s->sig_size) *= s->shape[i];
  return s->is_stem ? stem_setup(s) : eels_setup(s);
}

/* Empty a failed output before closing it: after ENOSPC, HDF5 1.10.8's
 * H5Fclose cannot flush, and library shutdown then crashes. */
static void discard(const char *partial) {
  if (truncate(partial, 0) != 0) return; /* best effort: it is removed anyway */
}

int hb_synth(const hb_synth_opts *o) {
  resolved r;
  HB_CALL(resolve(o, &r));
  HB_CHECK(o->out && o->out[0], HB_EINVALID, WHERE, "no output file");
  char partial[4200];
  HB_CHECK(snprintf(partial, sizeof partial, "%s.partial", o->out) < (int)sizeof partial, HB_EINVALID, WHERE,
           "output path too long");
  synth s;
  int rc = synth_init(&s, o, &r);
  hid_t file = -1;
  if (!rc && unlink(partial) && errno != ENOENT)
    rc = HB_FAIL(HB_EIO, partial, "cannot remove a stale file: %s", strerror(errno));
  if (!rc) rc = hb_hspy_create(partial, MPI_COMM_NULL, MPI_INFO_NULL, &file);
  if (!rc) rc = write_file(&s, file, o->out);
  if (rc && file >= 0) discard(partial);
  if (file >= 0) { /* closes anything left open too (H5F_CLOSE_STRONG) */
    int crc = hb_hspy_close(file);
    if (!rc) rc = crc;
  }
  if (!rc && rename(partial, o->out) != 0)
    rc = HB_FAIL(HB_EIO, WHERE, "cannot rename %s to %s: %s", partial, o->out, strerror(errno));
  if (rc) remove(partial); /* never leave a half-written file */
  synth_free(&s);
  return rc ? hb_error_trace(rc, __FILE__, __LINE__) : 0;
}

/* ---- command line ------------------------------------------------------------ */

static int parse_dims(const char *opt, const char *text, int *ndim, hsize_t *dims) {
  const char *p = text;
  *ndim = 0;
  for (;;) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(p, &end, 10);
    HB_CHECK(end != p && *p != '-' && *p != '+' && !errno && v >= 1 && *ndim < HB_MAXDIM, HB_EINVALID, WHERE,
             "%s '%s': expected up to %d positive integers separated by commas", opt, text, HB_MAXDIM);
    dims[(*ndim)++] = v;
    if (*end == '\0') return 0;
    HB_CHECK(*end == ',', HB_EINVALID, WHERE, "%s '%s': expected positive integers separated by commas", opt, text);
    p = end + 1;
  }
}

static int parse_option(hb_synth_opts *o, const char *name, const char *val, int *chunk_ndim) {
  if (!strcmp(name, "--shape")) return parse_dims(name, val, &o->ndim, o->shape);
  if (!strcmp(name, "--chunks")) {
    o->has_chunks = 1;
    return parse_dims(name, val, chunk_ndim, o->chunk);
  }
  if (!strcmp(name, "--seed")) {
    char *end;
    errno = 0;
    o->seed = strtoull(val, &end, 10);
    HB_CHECK(*val >= '0' && *val <= '9' && !*end && !errno, HB_EINVALID, WHERE,
             "--seed '%s': expected a non-negative integer", val);
    return 0;
  }
  if (!strcmp(name, "--compression")) {
    HB_CHECK(!strcmp(val, "gzip") || !strcmp(val, "none"), HB_EINVALID, WHERE,
             "--compression '%s': expected gzip or none", val);
    o->gzip = !strcmp(val, "gzip");
    return 0;
  }
  if (!strcmp(name, "--dtype")) {
    HB_CHECK(hb_dtype_parse(val, &o->dtype) == 0, HB_EINVALID, WHERE,
             "--dtype '%s': expected uint8, uint16, uint32, uint64, int8, int16, int32, int64, float32 or float64",
             val);
    o->has_dtype = 1;
    return 0;
  }
  HB_RAISE(HB_EINVALID, WHERE, "unknown option '%s' (expected --shape, --chunks, --seed, --compression or --dtype)",
           name);
}

static void print_dims(char *buf, size_t n, int ndim, const hsize_t *d) {
  size_t len = snprintf(buf, n, "(");
  for (int i = 0; i < ndim && len < n; i++)
    len += snprintf(buf + len, n - len, "%llu%s", (unsigned long long)d[i], i + 1 < ndim ? ", " : "");
  if (len < n) snprintf(buf + len, n - len, "%s", ndim == 1 ? ",)" : ")");
}

int hb_synth_cli(int argc, char **argv) {
  HB_CHECK(argc >= 3 && argv[1][0] != '-' && argv[2][0] != '-', HB_EINVALID, WHERE,
           "usage: hyperbatch synth KIND OUT.hspy [--shape a,b,...] [--chunks a,b,...] [--seed N] "
           "[--compression gzip|none] [--dtype TYPE]");
  hb_synth_opts o = {.kind = argv[1], .out = argv[2], .seed = 1, .gzip = 1};
  int chunk_ndim = 0;
  for (int i = 3; i < argc; i++) {
    const char *eq = strchr(argv[i], '=');
    char name[64];
    snprintf(name, sizeof name, "%.*s", eq ? (int)(eq - argv[i]) : (int)strlen(argv[i]), argv[i]);
    const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
    HB_CHECK(val, HB_EINVALID, WHERE, "option '%s' needs a value", name);
    HB_CALL(parse_option(&o, name, val, &chunk_ndim));
  }
  resolved r;
  hb_synth_opts plain = o; /* the shape first, to check --chunks against it */
  plain.has_chunks = 0;
  HB_CALL(resolve(&plain, &r));
  HB_CHECK(!o.has_chunks || chunk_ndim == r.ndim, HB_EINVALID, WHERE,
           "--chunks has %d axes but the shape has %d", chunk_ndim, r.ndim);
  HB_CALL(resolve(&o, &r));
  HB_CALL(hb_synth(&o));
  char sh[200], ch[200];
  print_dims(sh, sizeof sh, r.ndim, r.shape);
  print_dims(ch, sizeof ch, r.ndim, r.chunk);
  printf("hyperbatch: wrote %s (shape %s, %s, chunks %s)\n", o.out, sh, hb_dtype_name(r.dtype), ch);
  fflush(stdout);
  return 0;
}
