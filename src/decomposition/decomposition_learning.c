/* HyperSpy's own layout of a decomposition: a signal whose data is the
 * input (an HDF5 external link to it) with `learning_results` as
 * HyperSpy 1.7.3 saves them (with learning_results: true), so that
 * hs.load(out, lazy=True) gives a signal
 * on which get_decomposition_factors(), get_decomposition_model(k),
 * plot_explained_variance_ratio() and get_bss_factors() work as after
 * s.decomposition().  HyperSpy's orientation: factors (M × K), loadings
 * (N × K), N in C order over the navigation axes. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decomposition_priv.h"
#include "hb_error.h"
#include "hb_h5.h"
#include "hb_hspy.h"

/* The group of the linked signal, /Experiments/<kernel name>. */
static hid_t signal_group(dec_data *d, const hb_kernel *k) {
  hid_t file = H5Iget_file_id(hb_global_group(d->g, k, 0));
  char path[300];
  snprintf(path, sizeof path, "/Experiments/%s/learning_results", k->name);
  hid_t g = file >= 0 && H5Lexists(file, "/Experiments", H5P_DEFAULT) > 0 &&
                    H5Lexists(file, path, H5P_DEFAULT) > 0
                ? H5Gopen2(file, path, H5P_DEFAULT)
                : -1;
  if (file >= 0) H5Fclose(file);
  return g;
}

int dec_learning_applies(const dec_data *d) { return d->p->learning_results; }

/* (N × K) from the local rows L (nloc × K), each rank its blocks' rows, in
 * rounds of one block per rank (collective writes). */
static int write_rows(dec_data *d, hid_t loc, const char *name, size_t K, const double *L) {
  hb_global *g = d->g;
  size_t rounds = dec_write_rounds(d);
  hsize_t shape[2] = {d->N, K}, chunk[2] = {d->N, K};
  while (chunk[0] > 1 && chunk[0] * K * sizeof(double) > (1 << 20)) chunk[0] = (chunk[0] + 1) / 2;
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE), sp = H5Screate_simple(2, shape, NULL);
  H5Pset_chunk(dcpl, 2, chunk);
  H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY);
  H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
  hid_t ds = H5Dcreate2(loc, name, H5T_NATIVE_DOUBLE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  H5Pclose(dcpl);
  hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
  H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE);
  int rc = ds < 0 ? HB_FAIL(HB_EIO, name, "cannot create the dataset (%s)", hb_h5_error_text()) : 0;
  rc = hb_agree(g->comm, rc);
  for (size_t r = 0; r < rounds && !rc; r++) {
    hid_t fs = H5Scopy(sp), ms;
    const double *buf = L;
    static const double none = 0;
    if (r < d->nb) {
      const hb_block *b = &d->blk[r];
      /* the block's rows in C order: runs of consecutive global rows */
      H5Sselect_none(fs);
      for (size_t p = 0; p < b->npos;) {
        size_t row = dec_flat_nav(d, b, p), n = 1;
        while (p + n < b->npos && dec_flat_nav(d, b, p + n) == row + n) n++;
        hsize_t start[2] = {row, 0}, count[2] = {n, K};
        H5Sselect_hyperslab(fs, H5S_SELECT_OR, start, NULL, count, NULL);
        p += n;
      }
      hsize_t mshape[2] = {b->npos, K};
      ms = H5Screate_simple(2, mshape, NULL);
      buf = L + d->off[r] * K;
    } else {
      H5Sselect_none(fs);
      hsize_t one[2] = {1, 1};
      ms = H5Screate_simple(2, one, NULL);
      H5Sselect_none(ms);
      buf = &none;
    }
    rc = H5Dwrite(ds, H5T_NATIVE_DOUBLE, ms, fs, dxpl, buf) < 0 ? -1 : 0;
    H5Sclose(ms);
    H5Sclose(fs);
    rc = hb_agree(g->comm, rc ? HB_FAIL(HB_EIO, name, "cannot write (%s)", hb_h5_error_text()) : 0);
  }
  H5Pclose(dxpl);
  H5Sclose(sp);
  if (ds >= 0) H5Dclose(ds);
  return rc;
}

/* F (K × M) as HyperSpy's (M × K), written by rank 0. */
static int write_columns(hid_t loc, const char *name, size_t K, size_t M, const double *F) {
  double *T = malloc(K * M * sizeof *T);
  HB_CHECK(T, HB_EINTERNAL, "memory", "out of memory");
  for (size_t c = 0; c < K; c++)
    for (size_t j = 0; j < M; j++) T[j * K + c] = F[c * M + j];
  hsize_t shape[2] = {M, K};
  int rc = hb_h5_array_f64(loc, name, 2, shape, T);
  free(T);
  return rc;
}

int dec_learning_write(dec_data *d, const hb_kernel *k, const char *algorithm, const double *F, const double *L,
                       const double *ev) {
  const hb_input *in = d->g->in;
  size_t K = d->p->k;
  hid_t file = H5Iget_file_id(hb_global_group(d->g, k, 0));
  char *abs = realpath(in->path, NULL);
  /* the file's own axes: a single pattern's leading axis is not in it */
  int v = in->virtual_nav;
  hb_signal_desc desc = {k->name, k->name,         "",       in->signal_type, NULL, in->dtype, in->ndim - v,
                         in->shape + v, NULL, in->axes + v, 0, abs ? abs : in->path, in->dataset};
  hid_t g = -1, unused = -1;
  char path[300];
  snprintf(path, sizeof path, "/Experiments/%s", k->name);
  int rc = file >= 0 && H5Lexists(file, path, H5P_DEFAULT) > 0
               ? HB_FAIL(HB_EINVALID, k->name, "another result is named '%s', the name of this decomposition's "
                                                "signal with learning_results: rename one of them", k->name)
               : hb_hspy_signal_create(file, &desc, &g, &unused);
  free(abs);
  if (file >= 0) H5Fclose(file);
  HB_CALL(hb_agree(d->g->comm, rc));
  hid_t lr = hb_h5_group(g, "learning_results");
  rc = lr < 0 ? HB_FAIL(HB_EIO, k->name, "cannot create learning_results (%s)", hb_h5_error_text()) : 0;
  static const char *const centre[] = {"_None_", "navigation", "signal"};
  int centred = d->p->centre == CENTRE_NAVIGATION && !d->p->poisson;
  if (!rc) rc = hb_h5_attr_str(lr, "decomposition_algorithm", algorithm);
  if (!rc) rc = hb_h5_attr_bool(lr, "poissonian_noise_normalized", d->p->poisson);
  if (!rc) rc = hb_h5_attr_i64(lr, "output_dimension", (long long)K);
  if (!rc) rc = hb_h5_attr_str(lr, "centre", centred ? centre[d->p->centre] : "_None_");
  if (!rc) rc = hb_h5_attr_bool(lr, "unfolded", 0);
  for (const char *const *none = (const char *const[]){"number_significant_components", "navigation_mask",
                                                        "signal_mask", "unmixing_matrix", "bss_algorithm", NULL};
       *none && !rc; none++)
    rc = hb_h5_attr_str(lr, *none, "_None_");
  hsize_t nk = K, mean_shape[2] = {1, d->M};
  if (!rc) rc = write_columns(lr, "factors", K, d->M, F);
  if (!rc && ev) rc = hb_h5_array_f64(lr, "explained_variance", 1, &nk, ev);
  /* HyperSpy's ratio is of the computed components' variance (the output's
   * _explained_variance_ratio is of the total: docs/decomposition.md) */
  double *evr = ev ? malloc(K * sizeof *evr) : NULL, sum = 0;
  for (size_t c = 0; evr && c < K; c++) sum += ev[c];
  for (size_t c = 0; evr && c < K; c++) evr[c] = sum > 0 ? ev[c] / sum : 0;
  if (!rc && ev && !evr) rc = HB_FAIL(HB_EINTERNAL, "memory", "out of memory");
  if (!rc && evr) rc = hb_h5_array_f64(lr, "explained_variance_ratio", 1, &nk, evr);
  free(evr);
  if (!rc && centred) rc = hb_h5_array_f64(lr, "mean", 2, mean_shape, d->mean);
  if (!rc && !centred) rc = hb_h5_attr_str(lr, "mean", "_None_");
  rc = hb_agree(d->g->comm, rc);
  if (!rc) rc = write_rows(d, lr, "loadings", K, L);
  if (lr >= 0) H5Gclose(lr);
  if (g >= 0) H5Gclose(g);
  return rc;
}

int dec_learning_write_bss(dec_data *d, const hb_kernel *k, const double *BF, const double *BL, const double *w) {
  hid_t lr = signal_group(d, k);
  size_t K = d->p->k;
  int rc = lr < 0 ? HB_FAIL(HB_EINTERNAL, k->name, "no learning_results to add the BSS to") : 0;
  hsize_t kk[2] = {K, K};
  if (!rc && (H5Adelete(lr, "unmixing_matrix") < 0 || H5Adelete(lr, "bss_algorithm") < 0))
    rc = HB_FAIL(HB_EIO, k->name, "cannot update learning_results (%s)", hb_h5_error_text());
  if (!rc) rc = hb_h5_attr_str(lr, "bss_algorithm", "sklearn_fastica");
  if (!rc) rc = hb_h5_array_f64(lr, "unmixing_matrix", 2, kk, w);
  if (!rc) rc = write_columns(lr, "bss_factors", K, d->M, BF);
  rc = hb_agree(d->g->comm, rc);
  if (!rc) rc = write_rows(d, lr, "bss_loadings", K, BL);
  if (lr >= 0) H5Gclose(lr);
  return rc;
}
