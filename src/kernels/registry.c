/* The one table of kernels (and the one table of preprocess steps).  Adding a
 * kernel is a file in this folder and a row here; `hyperbatch kernels` and
 * docs/kernels.md are generated from these rows. */
#include <stdio.h>
#include <string.h>

#include "hb_error.h"
#include "hb_kernel.h"

extern const hb_kernel_def hb_kernel_sum, hb_kernel_mean, hb_kernel_max, hb_kernel_min;
extern const hb_kernel_def hb_kernel_std, hb_kernel_var, hb_kernel_nansum, hb_kernel_nanmean, hb_kernel_nanmax,
    hb_kernel_nanmin, hb_kernel_nanstd, hb_kernel_nanvar;
extern const hb_kernel_def hb_kernel_virtual_image;
extern const hb_kernel_def hb_kernel_find_peaks;
extern const hb_kernel_def hb_kernel_remove_background;
extern const hb_kernel_def hb_kernel_decomposition;
extern const hb_kernel_def hb_kernel_histogram, hb_kernel_estimate_poissonian_noise_variance;
extern const hb_kernel_def hb_kernel_indexmax, hb_kernel_indexmin, hb_kernel_valuemax, hb_kernel_valuemin,
    hb_kernel_integrate1D, hb_kernel_integrate_simpson, hb_kernel_derivative, hb_kernel_diff;
extern const hb_transform_def hb_transform_filter_hot_pixels, hb_transform_crop, hb_transform_inav, hb_transform_isig,
    hb_transform_rebin, hb_transform_change_dtype, hb_transform_complex_part;
extern const hb_transform_def hb_transform_fft, hb_transform_ifft;

const hb_kernel_def *const hb_kernel_table[] = {
    &hb_kernel_sum, &hb_kernel_mean, &hb_kernel_max, &hb_kernel_min,
    &hb_kernel_std, &hb_kernel_var, &hb_kernel_nansum, &hb_kernel_nanmean, &hb_kernel_nanmax, &hb_kernel_nanmin,
    &hb_kernel_nanstd, &hb_kernel_nanvar,
    &hb_kernel_virtual_image,
    &hb_kernel_find_peaks,
    &hb_kernel_remove_background,
    &hb_kernel_indexmax, &hb_kernel_indexmin, &hb_kernel_valuemax, &hb_kernel_valuemin,
    &hb_kernel_integrate1D, &hb_kernel_integrate_simpson, &hb_kernel_derivative, &hb_kernel_diff,
    &hb_kernel_histogram,
    &hb_kernel_estimate_poissonian_noise_variance,
    &hb_kernel_decomposition,
    NULL,
};

/* Transforms: in `preprocess`, or named as a kernel (their output is then a
 * dataset of its own). */
const hb_transform_def *const hb_transform_table[] = {
    &hb_transform_filter_hot_pixels,
    &hb_transform_crop,
    &hb_transform_inav,
    &hb_transform_isig,
    &hb_transform_rebin,
    &hb_transform_change_dtype,
    &hb_transform_complex_part,
    &hb_transform_fft,
    &hb_transform_ifft,
    NULL,
};

const hb_transform_def *hb_transform_find(const char *op) {
  for (const hb_transform_def *const *d = hb_transform_table; *d; d++)
    if (!strcmp((*d)->op, op)) return *d;
  return NULL;
}


const hb_kernel_def *hb_kernel_find(const char *op) {
  for (const hb_kernel_def *const *d = hb_kernel_table; *d; d++)
    if (!strcmp((*d)->op, op)) return *d;
  return NULL;
}


int hb_kernel_add_output(hb_kernel *k, const char *part, hb_out_kind kind, hb_dtype dtype, hb_dtype acc,
                         const char *quantity) {
  HB_CHECK(k->nout < HB_MAX_OUTPUTS, HB_EINTERNAL, k->name, "too many outputs");
  hb_output *o = &k->out[k->nout++];
  if (part) snprintf(o->name, sizeof o->name, "%s_%s", k->name, part);
  else snprintf(o->name, sizeof o->name, "%s", k->name);
  o->kind = kind;
  o->dtype = dtype;
  o->acc = acc;
  o->quantity = quantity;
  return 0;
}

hb_output *hb_kernel_output(hb_kernel *k, int i) { return i >= 0 && i < k->nout ? &k->out[i] : NULL; }

size_t hb_output_elems(const hb_output *o) {
  size_t n = 1;
  for (int d = 0; d < o->ndim; d++) n *= o->shape[d];
  return n;
}

size_t hb_output_item_bytes(const hb_output *o) { return hb_output_elems(o) * hb_dtype_size(o->dtype); }

size_t hb_output_slot_bytes(const hb_output *o) {
  size_t item = hb_output_item_bytes(o);
  return o->nav_map.partial_bytes > item ? o->nav_map.partial_bytes : item;
}

hsize_t hb_nav_map_region(const hb_nav_map *m, int d, hsize_t start, hsize_t count, hsize_t *first) {
  hsize_t s = m->step[d], at = m->first[d], end = start + count;
  /* the first result position starting in the block (a bin starts in the
   * block that holds it whole), to the last */
  hsize_t lo = start > at ? (start - at + s - 1) / s : 0, hi = end > at ? (end - at + s - 1) / s : 0;
  if (hi > m->shape[d]) hi = m->shape[d]; /* cropped, or whole bins only */
  *first = lo;
  return hi > lo ? hi - lo : 0;
}

long long hb_nav_map_place(const hb_nav_map *m, const hb_block *b, size_t p) {
  size_t pos = b->pos0 + p;
  long long place = 0, stride = 1;
  for (int d = b->nav_dim - 1; d >= 0; d--) {
    hsize_t c = b->start[d] + pos % b->count[d], lo, n = hb_nav_map_region(m, d, b->start[d], b->count[d], &lo);
    pos /= b->count[d];
    if (c < m->first[d] || (c - m->first[d]) % m->step[d] >= m->factor[d]) return -1; /* cropped, or thinned out */
    hsize_t o = (c - m->first[d]) / m->step[d];
    if (o >= lo + n) return -1;
    place += (long long)(o - lo) * stride;
    stride *= (long long)n;
  }
  return place;
}

void hb_output_set_shape(hb_output *o, int ndim, const hsize_t *shape, const hb_axis *axes) {
  o->ndim = ndim;
  for (int d = 0; d < ndim; d++) {
    o->shape[d] = shape[d];
    if (axes) o->axes[d] = axes[d];
    else o->axes[d] = (hb_axis){.scale = 1, .size = shape[d]};
    o->axes[d].size = shape[d];
    o->axes[d].navigate = 0;
  }
}

static void print_params(const hb_param_spec *p, int depth, int md) {
  for (; p->name; p++) {
    const char *type = hb_ptype_name(p);
    char buf[256];
    const char *dflt = hb_param_default_text(p, buf, sizeof buf);
    if (md)
      printf("%*s- `%s` (%s%s%s%s): %s\n", depth * 2, "", p->name, type, p->required ? ", required" : "",
             dflt ? ", default " : "", dflt ? dflt : "", p->help);
    else
      printf("  %*s%-12s %-28s %s%s%s%s%s\n", depth * 2, "", p->name, type, p->help,
             p->required ? " [required]" : "", dflt ? " [default " : "", dflt ? dflt : "", dflt ? "]" : "");
    if ((p->type == HB_P_MAP || p->type == HB_P_MAP_OR_PATH || p->type == HB_P_LIST) && p->sub)
      print_params(p->sub, depth + 1, md);
  }
}

int hb_kernels_print(const char *op, int md) {
  int found = 0;
  if (md) printf("# Kernels\n\nGenerated by `hyperbatch kernels --markdown` from the registry in "
                 "`src/kernels/registry.c`; do not edit by hand.\n\n"
                 "A `path` written in the job resolves against the job file's folder, one typed on the command "
                 "line (`--set`) against the current folder ([job-format.md](job-format.md#paths)).\n\n");
  for (const hb_kernel_def *const *d = hb_kernel_table; *d; d++) {
    if (op && strcmp(op, (*d)->op)) continue;
    found = 1;
    if (md) {
      printf("## `%s`\n\n%s\n\nOutputs: %s\n\nParameters:\n\n", (*d)->op, (*d)->summary, (*d)->outputs_doc);
      print_params((*d)->params, 0, 1);
      printf("\n");
    } else {
      printf("%s — %s\n  outputs: %s\n", (*d)->op, (*d)->summary, (*d)->outputs_doc);
      print_params((*d)->params, 0, 0);
    }
  }
  if (md && !op)
    printf("# Transforms\n\nA transform changes each pattern. Listed under `preprocess`, every kernel sees its "
           "output; named as a kernel (`{name: x, op: crop, ...}`), its output is written as a dataset of its own, "
           "with the scan's navigation axes and the new signal axes.\n\n");
  for (const hb_transform_def *const *d = hb_transform_table; *d; d++) {
    if (op && strcmp(op, (*d)->op)) continue;
    found = 1;
    if (md) {
      printf("## transform `%s`\n\n%s\n\nParameters:\n\n", (*d)->op, (*d)->summary);
      print_params((*d)->params, 0, 1);
      printf("\n");
    } else {
      printf("%s (transform: preprocess, or a kernel) — %s\n", (*d)->op, (*d)->summary);
      print_params((*d)->params, 0, 0);
    }
  }
  HB_CHECK(found, HB_EINVALID, "kernels", "unknown op '%s'", op ? op : "");
  return 0;
}
