/* Exact PCA when the M × M Gram matrix should not live on one rank: XᵀX is
 * formed in column panels, each panel's lower triangle is scattered straight
 * into a ScaLAPACK block-cyclic matrix over a BLACS grid of all ranks, and
 * pdsyevr finds the top k eigenpairs there.  No rank holds more than its
 * share of the Gram matrix, one panel (M × PANEL) and its send and receive
 * buffers.  The owners sum the ranks' contributions in rank order, so a run
 * is reproducible bit for bit. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "decomposition_priv.h"
#include "hb_error.h"

void Cblacs_pinfo(int *mypnum, int *nprocs);
int Csys2blacs_handle(MPI_Comm comm);
void Cfree_blacs_system_handle(int handle);
void Cblacs_gridinit(int *ctxt, const char *order, int nprow, int npcol);
void Cblacs_gridinfo(int ctxt, int *nprow, int *npcol, int *myrow, int *mycol);
void Cblacs_gridexit(int ctxt);
int numroc_(const int *n, const int *nb, const int *iproc, const int *isrc, const int *nprocs);
void descinit_(int *desc, const int *m, const int *n, const int *mb, const int *nb, const int *irsrc, const int *icsrc,
               const int *ictxt, const int *lld, int *info);
void pdsyevr_(const char *jobz, const char *range, const char *uplo, const int *n, double *a, const int *ia,
              const int *ja, const int *desca, const double *vl, const double *vu, const int *il, const int *iu, int *m,
              int *nz, double *w, double *z, const int *iz, const int *jz, const int *descz, double *work,
              const int *lwork, int *iwork, const int *liwork, int *info, size_t, size_t, size_t);

enum { NB = 64, PANEL = 256 }; /* block-cyclic block; Gram columns formed per pass (a multiple of NB) */

typedef struct {
  int nprow, npcol, *prow, *pcol; /* grid shape; every rank's grid coordinates */
  int *rows, *cols;               /* every rank's local matrix size */
  int mloc, nloc;                 /* this rank's local matrix */
} grid;

/* Global index of local index l on grid coordinate p of np (block NB, source 0). */
static size_t global_of(int l, int p, int np) { return ((size_t)(l / NB) * (size_t)np + (size_t)p) * NB + (size_t)(l % NB); }
static int owner_of(size_t g, int np) { return (int)((g / NB) % (size_t)np); }
/* First local index whose global index is >= g, on coordinate p. */
static int local_from(size_t g, int p, int np) {
  size_t blk = g / NB, cyc = blk / (size_t)np;
  int q = owner_of(g, np);
  if (q == p) return (int)(cyc * NB + g % NB);
  return (int)((cyc + (q > p ? 1 : 0)) * NB);
}

typedef struct {
  size_t c0, w; /* panel columns [c0, c0 + w) */
  double *C;    /* (M - c0) × w row-major: C[r][c] = G(c0 + r, c0 + c) */
} panel_arg;

static void panel_partial(dec_data *d, size_t i, const double *x, double *out, void *arg) {
  panel_arg *a = arg;
  size_t M = d->M;
  out[0] = 0;
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)(M - a->c0), (int)a->w, (int)d->blk[i].npos, 1.0,
              x + a->c0, (int)M, x + a->c0, (int)M, 1.0, a->C, (int)a->w);
}

/* Walk the lower-triangle entries of panel [c0, c0 + w) that rank t owns, in
 * t's local column-major order: pack (send) or accumulate into A (receive). */
#define PANEL_ENTRIES(gr, t, c0, w, BODY)                                                                 \
  for (int lj = local_from(c0, (gr)->pcol[t], (gr)->npcol); lj < (gr)->cols[t]; lj++) {                       \
    size_t j = global_of(lj, (gr)->pcol[t], (gr)->npcol);                                                    \
    if (j >= (c0) + (w)) break;                                                                              \
    for (int li = local_from(j, (gr)->prow[t], (gr)->nprow); li < (gr)->rows[t]; li++) {                       \
      size_t i = global_of(li, (gr)->prow[t], (gr)->nprow);                                                  \
      BODY                                                                                                   \
    }                                                                                                        \
  }

static int numroc_c(size_t n, int p, int np) {
  int n_ = (int)n, nb = NB, src = 0;
  return numroc_(&n_, &nb, &p, &src, &np);
}

/* Count of panel entries rank t owns. */
static size_t panel_count(const grid *gr, int t, size_t c0, size_t w) {
  size_t n = 0;
  PANEL_ENTRIES(gr, t, c0, w, { (void)i; n++; })
  return n;
}

/* Form the lower triangle of XᵀX into the local block-cyclic A (column-major,
 * leading dimension mloc), panel by panel. */
static int scatter_gram(dec_data *d, const grid *gr, double *A) {
  MPI_Comm comm = d->g->comm;
  int P = d->g->size, me = d->g->rank;
  size_t M = d->M;
  int *scnt = calloc((size_t)P, sizeof *scnt), *sdsp = calloc((size_t)P, sizeof *sdsp);
  int *rcnt = calloc((size_t)P, sizeof *rcnt), *rdsp = calloc((size_t)P, sizeof *rdsp);
  double *C = malloc(M * PANEL * sizeof *C);
  size_t most = 0; /* largest send or receive total over panels */
  for (size_t c0 = 0; c0 < M; c0 += PANEL) {
    size_t w = M - c0 < PANEL ? M - c0 : PANEL, s = 0;
    for (int t = 0; t < P; t++) s += panel_count(gr, t, c0, w);
    size_t r = (size_t)P * panel_count(gr, me, c0, w);
    if (s > most) most = s;
    if (r > most) most = r;
  }
  double *sbuf = malloc((most ? most : 1) * sizeof *sbuf), *rbuf = malloc((most ? most : 1) * sizeof *rbuf);
  int rc = !scnt || !sdsp || !rcnt || !rdsp || !C || !sbuf || !rbuf
               ? HB_FAIL(HB_EINTERNAL, "memory", "out of memory for the Gram panels")
               : 0;
  rc = hb_agree(comm, rc);
  for (size_t c0 = 0; c0 < M && !rc; c0 += PANEL) {
    size_t w = M - c0 < PANEL ? M - c0 : PANEL;
    memset(C, 0, (M - c0) * w * sizeof *C);
    panel_arg a = {c0, w, C};
    double dummy;
    rc = dec_reduce(d, 1, 1, panel_partial, &a, NULL, 0, &dummy);
    if (rc) break;
    size_t n = 0;
    for (int t = 0; t < P; t++) {
      sdsp[t] = (int)n;
      PANEL_ENTRIES(gr, t, c0, w, { sbuf[n++] = C[(i - c0) * w + (j - c0)]; })
      scnt[t] = (int)(n - (size_t)sdsp[t]);
    }
    int mine = (int)panel_count(gr, me, c0, w);
    for (int t = 0; t < P; t++) rcnt[t] = mine, rdsp[t] = t * mine;
    if (MPI_Alltoallv(sbuf, scnt, sdsp, MPI_DOUBLE, rbuf, rcnt, rdsp, MPI_DOUBLE, comm) != MPI_SUCCESS) {
      rc = HB_FAIL(HB_EINTERNAL, "MPI", "scattering a Gram panel failed");
      break;
    }
    for (int t = 0; t < P; t++) { /* rank order: the same sum on every run */
      const double *v = rbuf + (size_t)t * (size_t)mine;
      size_t e = 0;
      PANEL_ENTRIES(gr, me, c0, w, {
        (void)i;
        A[(size_t)lj * (size_t)gr->mloc + (size_t)li] += v[e++];
      })
    }
  }
  free(scnt);
  free(sdsp);
  free(rcnt);
  free(rdsp);
  free(C);
  free(sbuf);
  free(rbuf);
  return rc;
}

/* The most nearly square grid of all P ranks (nprow <= npcol). */
static int make_grid(MPI_Comm comm, int P, size_t M, grid *gr, int *handle, int *ctxt) {
  gr->nprow = 1;
  for (int r = 1; r * r <= P; r++)
    if (P % r == 0) gr->nprow = r;
  gr->npcol = P / gr->nprow;
  int pnum, nprocs;
  Cblacs_pinfo(&pnum, &nprocs); /* initialises BLACS once per process */
  *handle = Csys2blacs_handle(comm);
  *ctxt = *handle;
  Cblacs_gridinit(ctxt, "Row", gr->nprow, gr->npcol);
  int nr, nc, me[2];
  Cblacs_gridinfo(*ctxt, &nr, &nc, &me[0], &me[1]);
  HB_CHECK(nr == gr->nprow && nc == gr->npcol, HB_EINTERNAL, "BLACS", "could not set up a %d x %d process grid",
           gr->nprow, gr->npcol);
  int *all;
  HB_ALLOC(all, 2 * (size_t)P);
  HB_ALLOC(gr->prow, (size_t)P);
  HB_ALLOC(gr->pcol, (size_t)P);
  HB_MPI(MPI_Allgather(me, 2, MPI_INT, all, 2, MPI_INT, comm));
  HB_ALLOC(gr->rows, (size_t)P);
  HB_ALLOC(gr->cols, (size_t)P);
  for (int t = 0; t < P; t++) {
    gr->prow[t] = all[2 * t], gr->pcol[t] = all[2 * t + 1];
    gr->rows[t] = numroc_c(M, gr->prow[t], gr->nprow);
    gr->cols[t] = numroc_c(M, gr->pcol[t], gr->npcol);
  }
  free(all);
  return 0;
}

int dec_gram_eigen_scalapack(dec_data *d, size_t K, double *Vt, double *lam) {
  MPI_Comm comm = d->g->comm;
  int P = d->g->size, me = d->g->rank, handle = -1, ctxt = -1;
  size_t M = d->M;
  grid gr = {0};
  int rc = hb_agree(comm, make_grid(comm, P, M, &gr, &handle, &ctxt));
  double *A = NULL, *Z = NULL, *work = NULL, *w = NULL;
  int *iwork = NULL;
  if (!rc) {
    gr.mloc = numroc_c(M, gr.prow[me], gr.nprow);
    gr.nloc = numroc_c(M, gr.pcol[me], gr.npcol);
    size_t loc = (size_t)(gr.mloc ? gr.mloc : 1) * (size_t)(gr.nloc ? gr.nloc : 1);
    A = calloc(loc, sizeof *A);
    Z = malloc(loc * sizeof *Z);
    w = malloc(M * sizeof *w);
    rc = hb_agree(comm, !A || !Z || !w
                            ? HB_FAIL(HB_EINTERNAL, "memory", "out of memory for this rank's share of the Gram matrix")
                            : 0);
  }
  if (!rc) rc = scatter_gram(d, &gr, A);
  /* at least NB eigenpairs: pdsyevr sizes pdormtr's workspace from their
   * count, too small for fewer than one block of them */
  int info = 0, m = 0, nz = 0, nev = (int)(K > NB ? K : M < NB ? M : NB);
  if (!rc) { /* ‖X‖²_F = trace: the local diagonal sums, added in rank order */
    double part = 0, *parts = malloc((size_t)P * sizeof *parts);
    for (int lj = 0; lj < gr.nloc; lj++) {
      size_t j = global_of(lj, gr.pcol[me], gr.npcol);
      if (owner_of(j, gr.nprow) == gr.prow[me]) part += A[(size_t)lj * gr.mloc + (size_t)local_from(j, gr.prow[me], gr.nprow)];
    }
    rc = hb_agree(comm, parts ? 0 : HB_FAIL(HB_EINTERNAL, "memory", "out of memory"));
    if (!rc) {
      HB_MPI(MPI_Allgather(&part, 1, MPI_DOUBLE, parts, 1, MPI_DOUBLE, comm));
      d->sumsq = 0;
      for (int t = 0; t < P; t++) d->sumsq += parts[t];
    }
    free(parts);
  }
  if (!rc) {
    int n = (int)M, one = 1, zero = 0, nb = NB, lld = gr.mloc > 1 ? gr.mloc : 1, desc[9], il = (int)M - nev + 1,
        iu = (int)M, lwork = -1, liwork = -1, iwq;
    double vl = 0, vu = 0, wq;
    descinit_(desc, &n, &n, &nb, &nb, &zero, &zero, &ctxt, &lld, &info);
    if (!info)
      pdsyevr_("V", "I", "L", &n, A, &one, &one, desc, &vl, &vu, &il, &iu, &m, &nz, w, Z, &one, &one, desc, &wq,
               &lwork, &iwq, &liwork, &info, 1, 1, 1);
    if (!info) { /* the query's answer can fall short of the documented minimum (pdormtr then refuses it) */
      int nn = n > NB ? n : NB, np0 = numroc_c((size_t)nn, 0, gr.nprow), kk = nev > NB ? nev : NB,
          mq0 = numroc_c((size_t)kk, 0, gr.npcol), neig = (nev + P - 1) / P;
      double need = 2.0 + 5.0 * n + fmax(18.0 * nn, (double)np0 * mq0 + 2.0 * NB * NB) + (2.0 + neig) * nn;
      lwork = (int)fmax(wq, need);
      liwork = iwq;
      work = malloc((size_t)lwork * sizeof *work);
      iwork = malloc((size_t)liwork * sizeof *iwork);
      info = work && iwork ? 0 : -1000;
    }
    if (!info)
      pdsyevr_("V", "I", "L", &n, A, &one, &one, desc, &vl, &vu, &il, &iu, &m, &nz, w, Z, &one, &one, desc, work,
               &lwork, iwork, &liwork, &info, 1, 1, 1);
    rc = hb_agree(comm, info || nz != nev ? HB_FAIL(HB_EINTERNAL, "ScaLAPACK",
                                                    "pdsyevr failed (info %d, %d of %d eigenvectors)", info, nz, nev)
                                          : 0);
  }
  if (!rc) { /* the last K of Z's nev columns (ascending): gather them by a sum with zeros (exact) */
    double *V = calloc(K * M, sizeof *V);
    rc = hb_agree(comm, V ? 0 : HB_FAIL(HB_EINTERNAL, "memory", "out of memory"));
    if (!rc) {
      for (int lj = 0; lj < gr.nloc; lj++) {
        size_t j = global_of(lj, gr.pcol[me], gr.npcol);
        if (j >= (size_t)nev) break;
        if (j + K < (size_t)nev) continue; /* not among the top K */
        for (int li = 0; li < gr.mloc; li++)
          V[((size_t)nev - 1 - j) * M + global_of(li, gr.prow[me], gr.nprow)] = Z[(size_t)lj * gr.mloc + (size_t)li];
      }
      if (MPI_Allreduce(V, Vt, (int)(K * M), MPI_DOUBLE, MPI_SUM, comm) != MPI_SUCCESS)
        rc = HB_FAIL(HB_EINTERNAL, "MPI", "gathering the eigenvectors failed");
      for (size_t c = 0; !rc && c < K; c++) lam[c] = fmax(w[nev - 1 - c], 0);
    }
    free(V);
  }
  free(A);
  free(Z);
  free(w);
  free(work);
  free(iwork);
  free(gr.prow);
  free(gr.pcol);
  free(gr.rows);
  free(gr.cols);
  if (ctxt >= 0) Cblacs_gridexit(ctxt);
  if (handle >= 0) Cfree_blacs_system_handle(handle);
  return rc;
}
