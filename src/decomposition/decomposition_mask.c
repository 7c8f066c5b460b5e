/* navigation_mask and signal_mask of the decomposition, as HyperSpy 1.7.3:
 * True (here: a covered or nonzero pixel) EXCLUDES a pattern or a pixel.
 * The fit sees only the unmasked submatrix.  We keep X's shape and set the
 * masked rows and columns to 0 (read_block), which leaves every Gram matrix,
 * sum and NMF update equal to the submatrix's; counts (the mean, S²/N,
 * mean(X)) use the unmasked sizes.  Outputs at masked positions are NaN, as
 * HyperSpy's. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decomposition_priv.h"
#include "hb_detector.h"
#include "hb_error.h"
#include "hb_files.h"

static herr_t find_signal(hid_t g, const char *name, const H5L_info_t *info, void *arg) {
  (void)info;
  char *found = arg, path[512];
  snprintf(path, sizeof path, "%s/data", name);
  if (H5Lexists(g, name, H5P_DEFAULT) <= 0 || H5Lexists(g, path, H5P_DEFAULT) <= 0) return 0;
  if (found[0]) return 1; /* a second signal: ambiguous */
  snprintf(found, 1024, "/Experiments/%s", path);
  return 0;
}

/* The string form names a dataset: "FILE:/DATASET", or "FILE", a .hspy file
 * holding one signal (as HyperSpy's `mask.save()` writes it), whose signal
 * is the dataset. */
static int mask_dataset(const hb_params *par, const char *key, char *dset, size_t cap) {
  const char *given = hb_param_dataset(par, key), *path = hb_param_str(par, key), *file = hb_param_text(par, key);
  if (given) {
    snprintf(dset, cap, "%s", given);
    return 0;
  }
  char where[1200];
  snprintf(where, sizeof where, "%s", hb_param_where(par, key));
  HB_CALL(hb_file_check_read(path, where));
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  HB_CHECK(f >= 0, HB_EINVALID, where, "cannot open mask file '%s' as HDF5", file);
  char found[1024] = ""; /* find_signal writes up to 1024 */
  herr_t more = 0;
  if (H5Lexists(f, "/Experiments", H5P_DEFAULT) > 0) {
    hid_t g = H5Gopen2(f, "/Experiments", H5P_DEFAULT);
    if (g >= 0) {
      more = H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, find_signal, found);
      H5Gclose(g);
    }
  }
  H5Fclose(f);
  HB_CHECK(found[0] && more == 0, HB_EINVALID, where,
           "mask file '%s' does not hold exactly one HyperSpy signal: name the dataset as '%s:/path/to/dataset'", file,
           file);
  snprintf(dset, cap, "%s", found);
  return 0;
}

/* One mask: geometry or dataset over the navigation or signal space. */
static int plan_one(const hb_params *par, const char *key, const hb_stream *in, int nav, unsigned char **mask,
                    size_t *used) {
  int nd = nav ? in->nav_dim : in->sig_dim, first = nav ? 0 : in->nav_dim;
  const char *space = nav ? "navigation" : "signal";
  size_t size = 1;
  for (int a = 0; a < nd; a++) size *= in->shape[first + a];
  *used = size;
  if (!hb_param_given(par, key)) return 0;
  hb_detector det;
  const hb_params *map = hb_param_map(par, key);
  if (map) {
    HB_CALL(hb_detector_plan(map, nd, &in->shape[first], &in->axes[first], space, &det));
  } else {
    /* the string form: {shape: mask, file, dataset} given by its parts */
    char dset[2048];
    HB_CALL(mask_dataset(par, key, dset, sizeof dset));
    char where_key[1200];
    snprintf(where_key, sizeof where_key, "%s", hb_param_where_key(par, key));
    HB_CALL(hb_detector_plan_mask(hb_param_str(par, key), hb_param_text(par, key), dset, hb_param_where(par, key),
                                  where_key, nd, &in->shape[first], space, &det));
  }
  unsigned char *m = calloc(size, 1);
  if (!m) {
    hb_detector_free(&det);
    HB_RAISE(HB_EINTERNAL, "memory", "out of memory");
  }
  for (size_t i = 0; i < det.n; i++)
    if (!m[det.idx[i]]) m[det.idx[i]] = 1, (*used)--;
  hb_detector_free(&det);
  *mask = m;
  return 0;
}

int dec_masks_plan(dec_params *p, const hb_params *par, const hb_stream *in) {
  HB_CALL(plan_one(par, "navigation_mask", in, 1, &p->nav_mask, &p->n_used));
  HB_CALL(plan_one(par, "signal_mask", in, 0, &p->sig_mask, &p->m_used));
  return 0;
}

void dec_masks_free(dec_params *p) {
  free(p->nav_mask);
  free(p->sig_mask);
}

int dec_masks_setup(dec_data *d) {
  if (!d->p->nav_mask) return 0;
  HB_ALLOC(d->rowmask, d->nloc ? d->nloc : 1);
  for (size_t i = 0; i < d->nb; i++)
    for (size_t r = 0; r < d->blk[i].npos; r++) d->rowmask[d->off[i] + r] = d->p->nav_mask[dec_flat_nav(d, &d->blk[i], r)];
  return 0;
}

void dec_masks_apply(const dec_data *d, size_t i, void *x, size_t elem) {
  const unsigned char *sm = d->p->sig_mask;
  size_t M = d->M;
  for (size_t r = 0; r < d->blk[i].npos; r++) {
    char *row = (char *)x + r * M * elem;
    if (d->rowmask && d->rowmask[d->off[i] + r]) memset(row, 0, M * elem);
    else if (sm)
      for (size_t j = 0; j < M; j++)
        if (sm[j]) memset(row + j * elem, 0, elem);
  }
}

void dec_masks_fill(const dec_data *d, size_t K, double *F, double *L) {
  if (d->p->sig_mask)
    for (size_t c = 0; c < K; c++)
      for (size_t j = 0; j < d->M; j++)
        if (d->p->sig_mask[j]) F[c * d->M + j] = NAN;
  if (d->rowmask)
    for (size_t r = 0; r < d->nloc; r++)
      if (d->rowmask[r])
        for (size_t c = 0; c < K; c++) L[r * K + c] = NAN;
}

void dec_masks_zero(const dec_data *d, double *W, double *H) {
  size_t K = d->p->k;
  if (d->p->sig_mask)
    for (size_t c = 0; c < K; c++)
      for (size_t j = 0; j < d->M; j++)
        if (d->p->sig_mask[j]) H[c * d->M + j] = 0;
  if (d->rowmask)
    for (size_t r = 0; r < d->nloc; r++)
      if (d->rowmask[r]) memset(W + r * K, 0, K * sizeof *W);
}
