/* The reader table: which format a file is, the arrays it holds, which one
 * a job picks. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hb_error.h"
#include "reader.h"

/* Detection order: the most specific structure first; hdf5 takes any file. */
static const hb_reader *const readers[] = {&hb_reader_hspy, &hb_reader_emd, &hb_reader_nexus, &hb_reader_hdf5};
#define NREADERS (sizeof readers / sizeof *readers)

const hb_reader *hb_reader_named(const char *format) {
  for (size_t i = 0; i < NREADERS; i++)
    if (!strcmp(readers[i]->format, format)) return readers[i];
  return NULL;
}

const char *hb_input_detect(hid_t file) {
  for (size_t i = 0; i < NREADERS; i++) {
    int yes;
    H5E_BEGIN_TRY { yes = readers[i]->detect(file); }
    H5E_END_TRY;
    if (yes > 0) return readers[i]->format;
  }
  return "hdf5";
}

/* Enough for any real file; a hostile one with millions of arrays stops here. */
#define MAX_CANDIDATES 4096

int hb_candidates_add(hb_candidates *c, const char *name, const char *dataset, const char *group) {
  if (c->n >= MAX_CANDIDATES) return 0;
  if (!(c->n & (c->n - 1)) || !c->items) {
    size_t cap = c->n ? 2 * (size_t)c->n : 8;
    hb_candidate *grown = realloc(c->items, cap * sizeof *grown);
    if (!grown) return -1;
    c->items = grown;
  }
  hb_candidate *x = &c->items[c->n++];
  snprintf(x->name, sizeof x->name, "%s", name);
  snprintf(x->dataset, sizeof x->dataset, "%s", dataset);
  snprintf(x->group, sizeof x->group, "%s", group);
  return 0;
}

void hb_candidates_free(hb_candidates *c) {
  free(c->items);
  c->items = NULL;
  c->n = 0;
}

const double *hb_axis_points(const hb_axis *a, hsize_t size) {
  if (!a->points || a->npoints != size || size < 2 || a->offset != a->points[0]) return NULL;
  return a->scale == (a->points[size - 1] - a->points[0]) / (double)(size - 1) ? a->points : NULL;
}

void hb_axis_from_points(hb_axis *ax, double *pts, hsize_t n) {
  ax->offset = pts[0];
  ax->scale = n > 1 ? (pts[n - 1] - pts[0]) / (double)(n - 1) : 1;
  double span = n > 1 ? fabs(pts[n - 1] - pts[0]) : 0, worst = 0;
  for (hsize_t i = 0; i < n; i++) worst = fmax(worst, fabs(pts[i] - (ax->offset + ax->scale * (double)i)));
  if (n > 2 && worst > 1e-9 * span) {
    ax->points = pts;
    ax->npoints = n;
  } else {
    free(pts);
  }
}

void hb_input_free_axes(hb_input *in) {
  for (int i = 0; i < HB_MAXDIM; i++) {
    free((double *)in->axes[i].points);
    in->axes[i].points = NULL;
  }
}

void hb_axes_plain(hb_input *in) {
  hb_input_free_axes(in);
  for (int i = 0; i < in->ndim; i++) {
    memset(&in->axes[i], 0, sizeof in->axes[i]);
    in->axes[i].scale = 1;
    in->axes[i].size = in->shape[i];
  }
}

int hb_input_candidates(hid_t file, const char *format, const char *where, hb_candidates *out) {
  memset(out, 0, sizeof *out);
  const hb_reader *r = hb_reader_named(format);
  HB_CHECK(r, HB_EINTERNAL, where, "no reader for format '%s'", format);
  int rc = r->list(file, where, out);
  if (rc) hb_candidates_free(out);
  return rc;
}

/* Edit distance, for "did you mean": names are short, so O(n·m) is fine. */
static size_t distance(const char *a, const char *b) {
  size_t n = strlen(a), m = strlen(b), row[257];
  if (m > 256) m = 256;
  for (size_t j = 0; j <= m; j++) row[j] = j;
  for (size_t i = 1; i <= n; i++) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= m; j++) {
      size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
      if (up + 1 < best) best = up + 1;
      if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
      diag = up;
      row[j] = best;
    }
  }
  return row[m];
}

/* "'a', 'b'": the first 8 names, or the 3 nearest to `to`. */
static void names_list(const hb_candidates *c, const char *to, char *buf, size_t n) {
  int shown[3], k = 0, limit = to ? 3 : 8;
  buf[0] = 0;
  for (; k < limit && k < c->n; k++) {
    int best = to ? -1 : k;
    for (int i = 0; to && i < c->n; i++) {
      int taken = 0;
      for (int j = 0; j < k; j++) taken |= shown[j] == i;
      if (!taken && (best < 0 || distance(c->items[i].name, to) < distance(c->items[best].name, to))) best = i;
    }
    if (to) shown[k] = best;
    size_t len = strlen(buf);
    snprintf(buf + len, n - len, "%s'%s'", k ? ", " : "", c->items[best].name);
  }
  if (!to && c->n > limit) {
    size_t len = strlen(buf);
    snprintf(buf + len, n - len, " and %d more", c->n - limit);
  }
}

int hb_input_choose(const hb_candidates *c, const char *name, const char *format, const char *where, int *pick) {
  const hb_reader *r = hb_reader_named(format);
  const char *what = r && !strcmp(r->pick_key, "dataset") ? "array" : "signal";
  char names[2048];
  if (name) {
    for (int i = 0; i < c->n; i++)
      if (!strcmp(c->items[i].name, name)) return *pick = i, 0;
    names_list(c, name, names, sizeof names);
    HB_RAISE(HB_EINVALID, where, "the %s file has no %s '%s'; %s %s", format, what, name,
             c->n ? "the closest are" : "it has none", c->n ? names : "");
  }
  HB_CHECK(c->n > 0, HB_EINVALID, where, "the %s file holds no %s of 2 to %d dimensions", format, what, HB_MAXDIM);
  names_list(c, NULL, names, sizeof names);
  HB_CHECK(c->n == 1, HB_EINVALID, where, "the %s file holds %d %ss (%s); pick one with input.%s", format, c->n, what,
           names, r ? r->pick_key : "signal");
  *pick = 0;
  return 0;
}

int hb_input_describe_candidate(hid_t file, const char *format, const hb_candidate *c, hb_input *in,
                                const char *where) {
  const hb_reader *r = hb_reader_named(format);
  HB_CHECK(r, HB_EINTERNAL, where, "no reader for format '%s'", format);
  in->file = file;
  if (format != in->format) snprintf(in->format, sizeof in->format, "%s", format); /* hb_input_open passes its own */
  snprintf(in->dataset, sizeof in->dataset, "%s", c->dataset);
  snprintf(in->signal, sizeof in->signal, "%s", strcmp(format, "hdf5") ? c->name : "");
  HB_CALL(hb_input_describe(in, where));
  HB_CALL(r->calibrate(file, c, in, where));
  return 0;
}
