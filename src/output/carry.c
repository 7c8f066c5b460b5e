/* The input's metadata carried into every result, as HyperSpy's own methods
 * keep a signal's metadata: its HyperSpy metadata tree (Acquisition_instrument,
 * Sample, ...; not General's title, Signal or _HyperSpy, which describe the
 * result) and its original_metadata.  Which groups those are is the reader's
 * call (hb_input.meta_group, original_group).  Written once into the first
 * result, then hard-linked into the others, like the provenance; called by
 * every rank with the same arguments (HDF5's rule for metadata in parallel). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_priv.h"
#include "hb_error.h"
#include "hb_h5.h"

/* Datasets up to this size are metadata; larger ones (a NeXus entry's
 * detector arrays) are data, and not carried. */
#define CARRY_MAX_BYTES (1 << 20)
#define CARRY_MAX_DEPTH 16

static int is_skipped(const char *name, const char *const *skip) {
  for (; skip && *skip; skip++)
    if (!strcmp(name, *skip)) return 1;
  return 0;
}

typedef struct {
  hid_t dst;
  const char *const *skip, *const *only;
  int rc;
} attr_copy;

static herr_t copy_one_attr(hid_t src, const char *name, const H5A_info_t *info, void *data) {
  (void)info;
  attr_copy *c = data;
  if (is_skipped(name, c->skip) || (c->only && !is_skipped(name, c->only)) || H5Aexists(c->dst, name) > 0) return 0;
  hid_t a = H5Aopen(src, name, H5P_DEFAULT);
  hid_t t = a >= 0 ? H5Aget_type(a) : -1, sp = a >= 0 ? H5Aget_space(a) : -1;
  hid_t mt = t >= 0 ? H5Tget_native_type(t, H5T_DIR_DEFAULT) : -1;
  hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
  size_t size = mt >= 0 ? H5Tget_size(mt) : 0;
  void *buf = n >= 0 && size ? calloc((size_t)(n ? n : 1), size) : NULL;
  int ok = buf && H5Aread(a, mt, buf) >= 0;
  if (ok) {
    hid_t b = H5Acreate2(c->dst, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    ok = b >= 0 && H5Awrite(b, mt, buf) >= 0;
    if (b >= 0) H5Aclose(b);
    if (H5Tdetect_class(mt, H5T_VLEN) > 0 || H5Tis_variable_str(mt) > 0) H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, buf);
  }
  free(buf);
  if (mt >= 0) H5Tclose(mt);
  if (t >= 0) H5Tclose(t);
  if (sp >= 0) H5Sclose(sp);
  if (a >= 0) H5Aclose(a);
  if (!ok) c->rc = -1;
  return ok ? 0 : -1;
}

/* src's attributes that dst lacks, but those in skip; only those in `only`
 * when it is given. */
static int copy_attrs(hid_t src, hid_t dst, const char *const *skip, const char *const *only) {
  attr_copy c = {dst, skip, only, 0};
  hsize_t idx = 0;
  H5Aiterate2(src, H5_INDEX_NAME, H5_ITER_INC, &idx, copy_one_attr, &c);
  return c.rc;
}

typedef struct {
  hid_t dst;
  const char *const *skip;
  int depth, rc;
  haddr_t data_addr; /* the input's array: never metadata, whatever its size */
} tree_copy;

static int copy_tree(hid_t src, hid_t dst, const char *const *skip, int depth, haddr_t data_addr);

/* Variable-length data anywhere in t, or references (which would point
 * into the input file). */
static int has_heap_data(hid_t t) {
  switch (H5Tget_class(t)) {
  case H5T_VLEN:
  case H5T_REFERENCE: return 1;
  case H5T_STRING: return H5Tis_variable_str(t) > 0;
  case H5T_ARRAY: {
    hid_t b = H5Tget_super(t);
    int r = b < 0 || has_heap_data(b);
    if (b >= 0) H5Tclose(b);
    return r;
  }
  case H5T_COMPOUND: {
    int r = 0, n = H5Tget_nmembers(t);
    for (int i = 0; i < n && !r; i++) {
      hid_t m = H5Tget_member_type(t, (unsigned)i);
      r = m < 0 || has_heap_data(m);
      if (m >= 0) H5Tclose(m);
    }
    return r;
  }
  default: return 0;
  }
}

/* A metadata dataset copied by value into an unfiltered one, written
 * collectively from rank 0's copy; a variable-length string array
 * (HyperSpy 2's lists of str) becomes fixed-length strings, which HyperSpy
 * 1.7.3 writes for such lists and reads back as str.  Not H5Ocopy: in a
 * parallel file it writes a chunked copy's raw data from every rank outside
 * the collective path, and variable-length data through the global heap;
 * one in four CI runs read such a copy back as a corrupt deflate stream.
 * Datasets over CARRY_MAX_BYTES (strings: as fixed-length), other
 * variable-length and reference types, and any that cannot be read are
 * left out. */
static int copy_dataset(hid_t src, const char *name, hid_t dst) {
  hid_t s = H5Dopen2(src, name, H5P_DEFAULT);
  hid_t t = s >= 0 ? H5Dget_type(s) : -1, sp = s >= 0 ? H5Dget_space(s) : -1;
  hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
  int vstr = t >= 0 && H5Tget_class(t) == H5T_STRING && H5Tis_variable_str(t) > 0;
  int rc = 0;
  hid_t ft = -1, mt = -1;
  void *buf = NULL;
  if (t < 0 || n < 0 || (double)n * (double)H5Tget_size(t) > CARRY_MAX_BYTES) {
    /* unreadable, or data rather than metadata: left out */
  } else if (vstr) {
    mt = H5Tcopy(H5T_C_S1);
    char **v = calloc((size_t)(n ? n : 1), sizeof *v);
    rc = mt < 0 || !v || H5Tset_size(mt, H5T_VARIABLE) < 0 || H5Tset_cset(mt, H5Tget_cset(t)) < 0 ||
         (n && H5Dread(s, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0);
    int read = !rc && n;
    size_t width = 1;
    for (hssize_t i = 0; !rc && i < n; i++)
      if (v[i] && strlen(v[i]) > width) width = strlen(v[i]);
    /* as long as the data-sized datasets left out: not metadata */
    int small = (double)n * (double)width <= CARRY_MAX_BYTES;
    ft = rc || !small ? -1 : H5Tcopy(H5T_C_S1);
    rc = rc || (small && (ft < 0 || H5Tset_size(ft, width) < 0 || H5Tset_strpad(ft, H5T_STR_NULLPAD) < 0 ||
                          H5Tset_cset(ft, H5Tget_cset(t)) < 0 || !(buf = calloc((size_t)(n ? n : 1), width))));
    for (hssize_t i = 0; !rc && small && i < n; i++)
      if (v[i]) memcpy((char *)buf + (size_t)i * width, v[i], strlen(v[i]));
    if (read) H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, v);
    free(v);
  } else if (!has_heap_data(t)) {
    ft = H5Tcopy(t);
    buf = calloc((size_t)(n ? n : 1), H5Tget_size(t));
    rc = ft < 0 || !buf || (n && H5Dread(s, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0);
  }
  if (!rc && ft >= 0) {
    /* an array is one unfiltered chunk: HyperSpy's lazy load gives dask a
     * dataset's chunks, and has none to give for a contiguous one */
    int nd = H5Sget_simple_extent_ndims(sp);
    hsize_t dims[H5S_MAX_RANK], maxd[H5S_MAX_RANK], chunk[H5S_MAX_RANK];
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE), dsp = -1;
    rc = nd < 0 || dcpl < 0 || H5Sget_simple_extent_dims(sp, dims, NULL) < 0;
    for (int k = 0; !rc && k < nd; k++) {
      chunk[k] = dims[k] ? dims[k] : 1;
      maxd[k] = dims[k] ? dims[k] : H5S_UNLIMITED;
    }
    if (!rc && nd > 0) rc = H5Pset_chunk(dcpl, nd, chunk) < 0 || (dsp = H5Screate_simple(nd, dims, maxd)) < 0;
    hid_t d = rc ? -1 : H5Dcreate2(dst, name, ft, nd > 0 ? dsp : sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    rc = rc || d < 0 || copy_attrs(s, d, NULL, NULL) || (n && hb_h5_write_whole(d, ft, buf));
    if (d >= 0) H5Dclose(d);
    if (dsp >= 0) H5Sclose(dsp);
    if (dcpl >= 0) H5Pclose(dcpl);
  }
  free(buf);
  if (ft >= 0) H5Tclose(ft);
  if (mt >= 0) H5Tclose(mt);
  if (t >= 0) H5Tclose(t);
  if (sp >= 0) H5Sclose(sp);
  if (s >= 0) H5Dclose(s);
  return rc ? -1 : 0;
}

/* A group is made again (so that a data-sized dataset inside can be left
 * out); a metadata-sized dataset is copied by value. */
static herr_t copy_child(hid_t src, const char *name, const H5L_info_t *info, void *data) {
  tree_copy *c = data;
  if (info->type != H5L_TYPE_HARD || is_skipped(name, c->skip) || H5Lexists(c->dst, name, H5P_DEFAULT) > 0) return 0;
  H5O_info_t oi;
  if (H5Oget_info_by_name(src, name, &oi, H5P_DEFAULT) < 0) return 0;
  if (oi.type == H5O_TYPE_GROUP && c->depth < CARRY_MAX_DEPTH) {
    hid_t s = H5Gopen2(src, name, H5P_DEFAULT);
    hid_t d = s >= 0 ? H5Gcreate2(c->dst, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
    if (s >= 0 && d < 0) c->rc = -1;
    if (d >= 0 && (copy_attrs(s, d, NULL, NULL) || copy_tree(s, d, NULL, c->depth + 1, c->data_addr))) c->rc = -1;
    if (d >= 0) H5Gclose(d);
    if (s >= 0) H5Gclose(s);
  } else if (oi.type == H5O_TYPE_DATASET && oi.addr != c->data_addr && copy_dataset(src, name, c->dst)) {
    c->rc = -1;
  }
  return c->rc;
}

static int copy_tree(hid_t src, hid_t dst, const char *const *skip, int depth, haddr_t data_addr) {
  tree_copy c = {dst, skip, depth, 0, data_addr};
  hsize_t idx = 0;
  H5Literate(src, H5_INDEX_NAME, H5_ITER_INC, &idx, copy_child, &c);
  return c.rc;
}

/* src (a group), its attributes and what copy_tree copies, as dst_path
 * under dst (made with its parents); skip: src's children left out. */
static int copy_group_as(hid_t src, hid_t dst, const char *dst_path, const char *const *skip, haddr_t data_addr) {
  hid_t d = hb_h5_group(dst, dst_path);
  int rc = d < 0 || copy_attrs(src, d, NULL, NULL) || copy_tree(src, d, skip, 1, data_addr);
  if (d >= 0) H5Gclose(d);
  return rc;
}

/* A pre-1.2 file's mapped_parameters into `meta`, rearranged as HyperSpy
 * 1.7.3's reader does (io_plugins/_hierarchical.py): TEM and SEM under
 * Acquisition_instrument, with a TEM's EELS as its Detector and an EDS as
 * Detector/EDS; Variance_estimation as Noise_properties/Variance_linear_model;
 * the rest as it is.  (The title, record_by, signal_type and
 * _internal_parameters describe the result or HyperSpy's own state: not
 * carried; date and time go into General, see carry_into.) */
static int copy_mapped_parameters(hid_t src, hid_t meta, haddr_t data_addr) {
  static const char *const moved[] = {"General", "Signal", "_HyperSpy", "_internal_parameters", "TEM", "SEM",
                                      "Variance_estimation", NULL};
  static const char *const detectors[] = {"EELS", "EDS", NULL};
  int rc = copy_tree(src, meta, moved, 0, data_addr);
  for (int m = 0; !rc && m < 2; m++) {
    const char *microscope = m ? "SEM" : "TEM";
    if (H5Lexists(src, microscope, H5P_DEFAULT) <= 0) continue;
    hid_t s = H5Gopen2(src, microscope, H5P_DEFAULT);
    char to[128];
    snprintf(to, sizeof to, "Acquisition_instrument/%s", microscope);
    rc = s < 0 || copy_group_as(s, meta, to, detectors, data_addr);
    for (int k = 0; !rc && k < 2; k++) {
      if (H5Lexists(s, detectors[k], H5P_DEFAULT) <= 0) continue;
      hid_t det = H5Gopen2(s, detectors[k], H5P_DEFAULT);
      snprintf(to, sizeof to, "Acquisition_instrument/%s/Detector%s", microscope, k ? "/EDS" : "");
      rc = det < 0 || copy_group_as(det, meta, to, NULL, data_addr);
      if (det >= 0) H5Gclose(det);
    }
    if (s >= 0) H5Gclose(s);
  }
  if (!rc && H5Lexists(src, "Variance_estimation", H5P_DEFAULT) > 0) {
    hid_t s = H5Gopen2(src, "Variance_estimation", H5P_DEFAULT);
    rc = s < 0 || copy_group_as(s, meta, "Noise_properties/Variance_linear_model", NULL, data_addr);
    if (s >= 0) H5Gclose(s);
  }
  return rc;
}

/* Attribute `name` of group `from` (under `base`) as `new_name` of group
 * `to` (made with its parents), if there; the copy in the output is ours
 * to rearrange. */
static int move_attr(hid_t base, const char *from, const char *name, const char *to, const char *new_name) {
  if (H5Lexists(base, from, H5P_DEFAULT) <= 0) return 0;
  hid_t f = H5Gopen2(base, from, H5P_DEFAULT);
  if (f < 0) return -1;
  int rc = 0;
  if (H5Aexists(f, name) > 0 && !strcmp(from, to)) { /* a rename in place */
    rc = (H5Aexists(f, new_name) > 0 && H5Adelete(f, new_name) < 0) || H5Arename(f, name, new_name) < 0;
  } else if (H5Aexists(f, name) > 0) {
    hid_t t = hb_h5_group(base, to);
    const char *const only[] = {name, NULL};
    int same = !strcmp(name, new_name);
    rc = t < 0 || (H5Aexists(t, name) > 0 && H5Adelete(t, name) < 0) ||
         (!same && H5Aexists(t, new_name) > 0 && H5Adelete(t, new_name) < 0) || copy_attrs(f, t, NULL, only) ||
         (!same && H5Arename(t, name, new_name) < 0) || H5Adelete(f, name) < 0;
    if (t >= 0) H5Gclose(t);
  }
  H5Gclose(f);
  return rc;
}

/* The smaller moves of HyperSpy 1.7.3's reader (io_plugins/_hierarchical.py)
 * on the carried copy `meta`: before 1.2, a TEM's dwell time and exposure
 * into its EELS detector and Sample's Xray_lines as xray_lines; before 3.0,
 * a tilt_stage as Stage/tilt_alpha and a TEM's exposure (or DigitalMicrograph's
 * exposure_time) as Detector/Camera/exposure. */
static int old_format_moves(hid_t src_meta, int mapped_parameters, int before_3, hid_t meta) {
  static const char *const tem = "Acquisition_instrument/TEM", *const sem = "Acquisition_instrument/SEM";
  int rc = 0;
  if (mapped_parameters && H5Lexists(src_meta, "TEM", H5P_DEFAULT) > 0 &&
      H5Lexists(src_meta, "TEM/EELS", H5P_DEFAULT) > 0) {
    static const char *const eels[] = {"dwell_time", "dwell_time_units", "exposure", "exposure_units", NULL};
    for (int i = 0; eels[i] && !rc; i++) rc = move_attr(meta, tem, eels[i], "Acquisition_instrument/TEM/Detector", eels[i]);
  }
  if (!rc && mapped_parameters) rc = move_attr(meta, "Sample", "Xray_lines", "Sample", "xray_lines");
  if (!rc && mapped_parameters && H5Lexists(meta, "Sample/Xray_lines", H5P_DEFAULT) > 0)
    rc = H5Lmove(meta, "Sample/Xray_lines", meta, "Sample/xray_lines", H5P_DEFAULT, H5P_DEFAULT) < 0;
  for (int m = 0; !rc && before_3 && m < 2; m++) {
    char stage[64];
    snprintf(stage, sizeof stage, "%s/Stage", m ? sem : tem);
    rc = move_attr(meta, m ? sem : tem, "tilt_stage", stage, "tilt_alpha");
  }
  if (!rc && before_3 && H5Lexists(meta, "Acquisition_instrument", H5P_DEFAULT) > 0 &&
      H5Lexists(meta, tem, H5P_DEFAULT) > 0) {
    hid_t t = H5Gopen2(meta, tem, H5P_DEFAULT);
    const char *exposure = t < 0 ? NULL : H5Aexists(t, "exposure_time") > 0 ? "exposure_time"
                                        : H5Aexists(t, "exposure") > 0        ? "exposure"
                                                                                : NULL;
    if (t >= 0) H5Gclose(t);
    if (t < 0) rc = -1;
    else if (exposure) rc = move_attr(meta, tem, exposure, "Acquisition_instrument/TEM/Detector/Camera", "exposure");
  }
  return rc;
}

/* Hard links in `to` to every child of `from` that `to` lacks. */
static herr_t link_child(hid_t from, const char *name, const H5L_info_t *info, void *data) {
  (void)info;
  hid_t to = *(hid_t *)data;
  if (H5Lexists(to, name, H5P_DEFAULT) > 0) return 0;
  return H5Lcreate_hard(from, name, to, name, H5P_DEFAULT, H5P_DEFAULT) < 0 ? -1 : 0;
}

static int link_children(hid_t from, hid_t to) {
  hsize_t idx = 0;
  return H5Literate(from, H5_INDEX_NAME, H5_ITER_INC, &idx, link_child, &to) < 0 ? -1 : 0;
}

/* The result's metadata: the tree's groups and General's other attributes
 * (date, time, authors, ...), never what describes the result itself. */
static const char *const own_groups[] = {"General", "Signal", "_HyperSpy", NULL};
static const char *const own_general[] = {"title", "original_filename", NULL};

static int carry_into(hid_t src_meta, int mapped_parameters, int before_3, hid_t src_orig, const char *orig_as,
                      haddr_t data_addr, hid_t group, hid_t first) {
  int rc = 0;
  hid_t meta = hb_h5_group(group, "metadata"), orig = hb_h5_group(group, "original_metadata");
  if (meta < 0 || orig < 0) rc = -1;
  if (!rc && src_meta >= 0) {
    if (first < 0) {
      rc = mapped_parameters ? copy_mapped_parameters(src_meta, meta, data_addr)
                             : copy_tree(src_meta, meta, own_groups, 0, data_addr);
      if (!rc) rc = old_format_moves(src_meta, mapped_parameters, before_3, meta);
    } else {
      hid_t from = H5Gopen2(first, "metadata", H5P_DEFAULT);
      rc = from < 0 || link_children(from, meta);
      if (from >= 0) H5Gclose(from);
    }
    /* General's other attributes; before 1.2 date and time sat at the root */
    hid_t sg = rc                  ? -1
               : mapped_parameters ? H5Gopen2(src_meta, ".", H5P_DEFAULT)
               : H5Lexists(src_meta, "General", H5P_DEFAULT) > 0 ? H5Gopen2(src_meta, "General", H5P_DEFAULT)
                                                                 : -1;
    hid_t dg = sg >= 0 ? hb_h5_group(meta, "General") : -1;
    static const char *const root_general[] = {"date", "time", NULL};
    if (sg >= 0 && (dg < 0 || copy_attrs(sg, dg, own_general, mapped_parameters ? root_general : NULL))) rc = -1;
    if (dg >= 0) H5Gclose(dg);
    if (sg >= 0) H5Gclose(sg);
  }
  if (!rc && src_orig >= 0) {
    if (orig_as[0] && first >= 0) { /* the whole subgroup is one object: link it */
      char path[300];
      snprintf(path, sizeof path, "original_metadata/%s", orig_as);
      rc = H5Lexists(orig, orig_as, H5P_DEFAULT) <= 0 && H5Lcreate_hard(first, path, group, path, H5P_DEFAULT,
                                                                          H5P_DEFAULT) < 0;
    } else {
      hid_t into = orig_as[0] ? hb_h5_group(orig, orig_as) : orig;
      static const char *const own[] = {"hyperbatch", NULL};
      if (into < 0) {
        rc = -1;
      } else if (first < 0) {
        rc = copy_tree(src_orig, into, own, 0, data_addr) || copy_attrs(src_orig, into, NULL, NULL);
      } else {
        hid_t from = H5Gopen2(first, "original_metadata", H5P_DEFAULT);
        rc = from < 0 || link_children(from, into) || copy_attrs(src_orig, into, NULL, NULL);
        if (from >= 0) H5Gclose(from);
      }
      if (into >= 0 && into != orig) H5Gclose(into);
    }
  }
  if (meta >= 0) H5Gclose(meta);
  if (orig >= 0) H5Gclose(orig);
  return rc;
}

/* Attribute `name` of `g` times f, if it is there (written as float64). */
static int scale_attr(hid_t g, const char *name, double f) {
  double v;
  if (!hb_h5_read_attr_f64(g, name, &v)) return 0;
  return H5Adelete(g, name) < 0 || hb_h5_attr_f64(g, name, v * f);
}

/* HyperSpy's EDS and EELS rebin (_signals/eds.py, eels.py): a bin of f scan
 * positions was acquired f times as long, so EDS's real_time and live_time
 * (SEM's detector, else TEM's) and EELS's dwell_time and exposure grow f
 * times.  The result's Acquisition_instrument is a link to the tree every
 * result shares (carry_into): it gets a copy of its own first. */
static int scale_acquisition_times(hid_t group, const char *signal_type, double f) {
  const int eels = !strcmp(signal_type, "EELS") || !strcmp(signal_type, "TEM EELS");
  static const char *const eds_at[] = {"SEM/Detector/EDS", "TEM/Detector/EDS"}, *const eels_at[] = {"TEM/Detector/EELS"};
  static const char *const eds_attrs[] = {"real_time", "live_time"}, *const eels_attrs[] = {"dwell_time", "exposure"};
  const char *const *at = eels ? eels_at : eds_at;
  const int nat = eels ? 1 : 2;
  if (H5Lexists(group, "metadata/Acquisition_instrument", H5P_DEFAULT) <= 0) return 0;
  hid_t shared = H5Gopen2(group, "metadata/Acquisition_instrument", H5P_DEFAULT);
  int copied = shared >= 0 && !copy_group_as(shared, group, "metadata/Acquisition_instrument_own", NULL, HADDR_UNDEF);
  if (shared >= 0) H5Gclose(shared);
  if (!copied || H5Ldelete(group, "metadata/Acquisition_instrument", H5P_DEFAULT) < 0 ||
      H5Lmove(group, "metadata/Acquisition_instrument_own", group, "metadata/Acquisition_instrument", H5P_DEFAULT,
              H5P_DEFAULT) < 0)
    return -1;
  hid_t ai = H5Gopen2(group, "metadata/Acquisition_instrument", H5P_DEFAULT);
  int rc = ai < 0;
  for (int k = 0; !rc && k < 2; k++) {
    const char *attr = eels ? eels_attrs[k] : eds_attrs[k];
    /* EDS: each time from the first detector that has it, as HyperSpy's elif */
    for (int j = 0; j < nat; j++) {
      hid_t det = hb_h5_open_group(ai, at[j]);
      if (det < 0) continue;
      int has = H5Aexists(det, attr) > 0;
      rc = has && scale_attr(det, attr, f);
      H5Gclose(det);
      if (has || rc) break;
    }
  }
  if (ai >= 0) H5Gclose(ai);
  return rc;
}

int hb_output_scale_times(const hb_result *r) {
  const hb_output *o = r->o;
  const hb_nav_map *m = &o->nav_map;
  if (!m->on || !o->signal_type || !hb_hspy_binned_type(o->signal_type)) return 0;
  double f = 1;
  for (int d = 0; d < HB_MAXDIM; d++)
    if (!m->dropped[d] && m->factor[d] > 1) f *= (double)m->factor[d];
  if (f == 1 || !scale_acquisition_times(r->group, o->signal_type, f)) return 0;
  return HB_FAIL(HB_EIO, o->name, "cannot scale the acquisition times of the binned scan (%s)", hb_h5_error_text());
}

int hb_output_carry_metadata(hb_engine *e, const hid_t *groups, int n) {
  const hb_input *in = &e->in;
  hid_t src_meta = hb_h5_open_group(in->file, in->meta_group),
        src_orig = hb_h5_open_group(in->file, in->original_group);
  H5O_info_t data;
  haddr_t data_addr = H5Oget_info2(in->dset, &data, H5O_INFO_BASIC) >= 0 ? data.addr : HADDR_UNDEF;
  int rc = 0;
  for (int i = 0; i < n && !rc && (src_meta >= 0 || src_orig >= 0); i++)
    if (carry_into(src_meta, in->meta_mapped_parameters, in->meta_before_3, src_orig, in->original_as, data_addr,
                   groups[i], i ? groups[0] : -1))
      rc = HB_FAIL(HB_EIO, e->partial, "cannot carry the input's metadata into the results (%s)", hb_h5_error_text());
  if (src_meta >= 0) H5Gclose(src_meta);
  if (src_orig >= 0) H5Gclose(src_orig);
  return rc;
}
