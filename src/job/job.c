/* Job file: read on rank 0, broadcast, parsed and checked on every rank. */
#include "hb_job.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hb_error.h"
#include "hb_kernel.h"
#include "hb_params.h"

static const hb_param_spec axis_spec[] = {
    {"name", HB_P_STRING, 0, NULL, NULL, 0, NULL, "axis name"},
    {"units", HB_P_STRING, 0, NULL, NULL, 0, NULL, "axis units"},
    {"scale", HB_P_FLOAT, 0, NULL, NULL, 0, NULL, "step between samples"},
    {"offset", HB_P_FLOAT, 0, NULL, NULL, 0, NULL, "position of the first sample"},
    HB_PARAM_END,
};

static const hb_param_spec input_spec[] = {
    {"file", HB_P_STRING, 1, NULL, NULL, 0, NULL, ".hspy or HDF5 file; relative to the job file's folder"},
    {"signal", HB_P_STRING, 0, NULL, NULL, 0, NULL, "which /Experiments/<signal> of an .hspy file"},
    {"dataset", HB_P_STRING, 0, NULL, NULL, 0, NULL, "generic HDF5: path of the array"},
    {"navigation_dimension", HB_P_INT, 0, NULL, NULL, 0, NULL, "generic HDF5: leading axes that are navigation"},
    {"axes", HB_P_LIST, 0, NULL, NULL, 0, NULL, "calibration overrides in array-axis order"},
    HB_PARAM_END,
};

static const hb_param_spec output_spec[] = {
    {"file", HB_P_STRING, 1, NULL, NULL, 0, NULL, "the .hspy to write"},
    {"overwrite", HB_P_BOOL, 0, "false", NULL, 0, NULL, "replace an existing output"},
    {"compression", HB_P_ENUM, 0, "gzip", "gzip|none", 0, NULL, "gzip level 4 + shuffle, or none"},
    {"previews", HB_P_BOOL, 0, "true", NULL, 0, NULL, "a PNG beside the output for every image or line"},
    HB_PARAM_END,
};

static const hb_param_spec run_spec[] = {
    {"block", HB_P_STRING, 0, "auto", NULL, 0, NULL, "navigation positions per block, or auto"},
    {"threads", HB_P_INT, 0, "1", NULL, 0, NULL, "threads per rank"},
    {"checkpoint", HB_P_BOOL, 0, "true", NULL, 0, NULL, "record finished blocks"},
    {"progress", HB_P_ENUM, 0, "auto", "auto|bar|lines|off|false", 0, NULL, "progress display"},
    {"profile", HB_P_STRING, 0, NULL, NULL, 0, NULL, "write per-rank phase timings as JSON to this file"},
    {"mpiio_hints", HB_P_MAP, 0, NULL, NULL, 0, NULL, "MPI-IO hints, e.g. {romio_cb_read: enable, cb_buffer_size: 16777216}"},
    HB_PARAM_END,
};

static const hb_param_spec job_spec[] = {
    {"version", HB_P_INT, 1, NULL, NULL, 0, NULL, "job format version: 1"},
    {"input", HB_P_MAP, 1, NULL, NULL, 0, input_spec, "the data"},
    {"output", HB_P_MAP, 1, NULL, NULL, 0, output_spec, "the results file"},
    {"preprocess", HB_P_LIST, 0, NULL, NULL, 0, NULL, "per-pattern transforms"},
    {"kernels", HB_P_LIST, 1, NULL, NULL, 0, NULL, "what to compute"},
    {"run", HB_P_MAP, 0, NULL, NULL, 0, run_spec, "execution settings"},
    HB_PARAM_END,
};

char *hb_job_resolve(const hb_job *job, const char *path) {
  if (path[0] == '/' || !job->dir || !strcmp(job->dir, ".")) return strdup(path);
  size_t n = strlen(job->dir) + strlen(path) + 2;
  char *out = malloc(n);
  if (!out) return NULL;
  snprintf(out, n, "%s/%s", job->dir, path);
  /* "configs/../data/x.hspy" names the file as the user thinks of it when its
   * folder exists; realpath (not a lexical cleanup) keeps symlinks right */
  char *copy = strdup(out), *slash = copy ? strrchr(copy, '/') : NULL;
  if (slash && slash != copy && strcmp(slash + 1, "..") && strcmp(slash + 1, ".")) {
    *slash = 0;
    char *folder = realpath(copy, NULL);
    size_t m = folder ? strlen(folder) + strlen(slash + 1) + 2 : 0;
    char *clean = folder ? malloc(m) : NULL;
    if (clean) {
      snprintf(clean, m, "%s/%s", strcmp(folder, "/") ? folder : "", slash + 1);
      free(out);
      out = clean;
    }
    free(folder);
  }
  free(copy);
  return out;
}

static int get_str(const hb_node *map, const char *key, const char **out) {
  const hb_node *n = hb_node_child(map, key);
  *out = NULL;
  if (n) HB_CALL(hb_node_string(n, out));
  return 0;
}

static int get_bool(const hb_node *map, const char *key, int dflt, int *out) {
  const hb_node *n = hb_node_child(map, key);
  *out = dflt;
  if (n) HB_CALL(hb_node_bool(n, out));
  return 0;
}

static int valid_name(const char *s) {
  if (!s[0] || strlen(s) > 100 || s[0] == '.') return 0;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ||
          *s == '-'))
      return 0;
  return 1;
}

static int check_op_list(const hb_node *list, int kernels) {
  const char *what = kernels ? "kernel" : "preprocess step";
  if (kernels) HB_CHECK(list->n > 0, HB_EINVALID, hb_node_where(list, 1), "'kernels' needs at least one kernel");
  for (size_t i = 0; i < list->n; i++) {
    const hb_node *k = list->kids[i];
    HB_CHECK(k->kind == HB_NODE_MAP, HB_EINVALID, hb_node_where(k, 0), "each %s is a map with 'op'%s", what,
             kernels ? " and 'name'" : "");
    const char *op = NULL, *name = NULL;
    const hb_node *opn = hb_node_child(k, "op"), *namen = hb_node_child(k, "name");
    HB_CHECK(opn, HB_EINVALID, hb_node_where(k, 0), "%s %zu has no 'op'", what, i + 1);
    HB_CALL(hb_node_string(opn, &op));
    const hb_param_spec *params = NULL;
    char label[256];
    if (kernels) {
      HB_CHECK(namen, HB_EINVALID, hb_node_where(k, 0), "kernel %zu has no 'name'", i + 1);
      HB_CALL(hb_node_string(namen, &name));
      HB_CHECK(valid_name(name), HB_EINVALID, hb_node_where(namen, 0),
               "kernel name '%s' must be 1-100 letters, digits, '_' or '-'", name);
      for (size_t j = 0; j < i; j++) {
        const hb_node *other = hb_node_child(list->kids[j], "name");
        HB_CHECK(strcmp(other->text, name), HB_EINVALID, hb_node_where(namen, 0),
                 "duplicate kernel name '%s' (first at line %d)", name, other->line);
      }
      const hb_kernel_def *def = hb_kernel_find(op);
      if (!def) {
        const char *best = NULL;
        size_t bestd = 4;
        for (const hb_kernel_def *const *d = hb_kernel_table; *d; d++) {
          size_t dd = hb_edit_distance(op, (*d)->op);
          if (dd < bestd) bestd = dd, best = (*d)->op;
        }
        HB_RAISE(HB_EINVALID, hb_node_where(opn, 0), "unknown op '%s'%s%s%s; `hyperbatch kernels` lists them", op,
                 best ? " (did you mean '" : "", best ? best : "", best ? "'?)" : "");
      }
      params = def->params;
      snprintf(label, sizeof label, "kernel '%s'", name);
    } else {
      const hb_prep_def *def = hb_prep_find(op);
      HB_CHECK(def, HB_EINVALID, hb_node_where(opn, 0), "unknown preprocess op '%s'; `hyperbatch kernels` lists them",
               op);
      params = def->params;
      snprintf(label, sizeof label, "preprocess step '%s'", op);
    }
    HB_CALL(hb_params_check(k, params, label, kernels ? "name|op" : "op"));
  }
  return 0;
}

static int interpret(hb_job *job) {
  const hb_node *root = job->root;
  HB_CALL(hb_params_check(root, job_spec, "the job", NULL));
  long long version;
  const hb_node *vn = hb_node_child(root, "version");
  HB_CALL(hb_node_int(vn, &version));
  HB_CHECK(version == 1, HB_EINVALID, hb_node_where(vn, 0), "job version %lld is not supported (this is version 1)",
           version);

  const hb_node *in = hb_node_child(root, "input");
  HB_CALL(get_str(in, "file", &job->input_file_as_written));
  HB_CHECK(job->input_file_as_written[0], HB_EINVALID, hb_node_where(hb_node_child(in, "file"), 0),
           "input.file is empty");
  job->input_file = hb_job_resolve(job, job->input_file_as_written);
  HB_CALL(get_str(in, "signal", &job->input_signal));
  HB_CALL(get_str(in, "dataset", &job->input_dataset));
  job->nav_dim = -1;
  const hb_node *nd = hb_node_child(in, "navigation_dimension");
  if (nd) {
    long long v;
    HB_CALL(hb_node_int(nd, &v));
    HB_CHECK(v >= 1 && v < 8, HB_EINVALID, hb_node_where(nd, 0), "navigation_dimension must be 1 to 7, got %lld", v);
    job->nav_dim = (int)v;
  }
  job->input_axes = hb_node_child(in, "axes");
  if (job->input_axes)
    for (size_t i = 0; i < job->input_axes->n; i++)
      HB_CALL(hb_params_check(job->input_axes->kids[i], axis_spec, "an input axis", NULL));

  const hb_node *out = hb_node_child(root, "output");
  const char *of, *comp = "gzip";
  HB_CALL(get_str(out, "file", &of));
  HB_CHECK(of[0], HB_EINVALID, hb_node_where(hb_node_child(out, "file"), 0), "output.file is empty");
  job->output_file = hb_job_resolve(job, of);
  HB_CALL(get_bool(out, "overwrite", 0, &job->overwrite));
  HB_CALL(get_bool(out, "previews", 1, &job->previews));
  if (hb_node_child(out, "compression")) HB_CALL(get_str(out, "compression", &comp));
  job->gzip = !strcmp(comp, "gzip");

  job->preprocess = hb_node_child(root, "preprocess");
  if (job->preprocess) HB_CALL(check_op_list(job->preprocess, 0));
  job->kernels = hb_node_child(root, "kernels");
  HB_CALL(check_op_list(job->kernels, 1));

  const hb_node *run = hb_node_child(root, "run");
  job->threads = 1;
  job->checkpoint = 1;
  job->progress = HB_PROGRESS_AUTO;
  if (run) {
    const hb_node *b = hb_node_child(run, "block");
    if (b && strcmp(b->text, "auto")) {
      HB_CALL(hb_node_int(b, &job->block));
      HB_CHECK(job->block >= 1, HB_EINVALID, hb_node_where(b, 0), "run.block must be 'auto' or a positive integer");
    }
    const hb_node *t = hb_node_child(run, "threads");
    if (t) {
      long long v;
      HB_CALL(hb_node_int(t, &v));
      HB_CHECK(v >= 1 && v <= 256, HB_EINVALID, hb_node_where(t, 0), "run.threads must be 1 to 256, got %lld", v);
      job->threads = (int)v;
    }
    HB_CALL(get_bool(run, "checkpoint", 1, &job->checkpoint));
    const char *prof = NULL;
    HB_CALL(get_str(run, "profile", &prof));
    if (prof) job->profile = hb_job_resolve(job, prof);
    const hb_node *hints = hb_node_child(run, "mpiio_hints");
    for (size_t i = 0; hints && i < hints->n; i++) {
      const hb_node *h = hints->kids[i];
      HB_CHECK(h->kind == HB_NODE_SCALAR, HB_EINVALID, hb_node_where(h, 0), "MPI-IO hint '%s' must be a single value",
               h->key);
      HB_CHECK(h->key[0] && h->text[0], HB_EINVALID, hb_node_where(h, 1), "an MPI-IO hint needs a name and a value");
      HB_CHECK(strlen(h->key) < MPI_MAX_INFO_KEY && strlen(h->text) < MPI_MAX_INFO_VAL, HB_EINVALID,
               hb_node_where(h, 1), "MPI-IO hint '%s' is too long", h->key);
      if (job->mpiio_info == MPI_INFO_NULL) HB_MPI(MPI_Info_create(&job->mpiio_info));
      HB_MPI(MPI_Info_set(job->mpiio_info, h->key, h->text));
    }
    const hb_node *p = hb_node_child(run, "progress");
    if (p) {
      /* `off` unquoted is a YAML 1.1 boolean: off, "off" and false all mean off */
      if (!strcmp(p->text, "bar")) job->progress = HB_PROGRESS_BAR;
      else if (!strcmp(p->text, "lines")) job->progress = HB_PROGRESS_LINES;
      else if (!strcmp(p->text, "off") || !strcmp(p->text, "false")) job->progress = HB_PROGRESS_OFF;
    }
  }
  return 0;
}

int hb_job_parse(const char *path, const char *text, size_t len, char **sets, int nsets, hb_job *job) {
  memset(job, 0, sizeof *job);
  job->mpiio_info = MPI_INFO_NULL;
  job->path = strdup(path);
  char *tmp = strdup(path);
  HB_CHECK(job->path && tmp, HB_EINTERNAL, "memory", "out of memory");
  /* resolve the job's folder once, so results name clean absolute paths */
  char *folder = dirname(tmp);
  char *real = realpath(folder, NULL);
  job->dir = real ? real : strdup(folder); /* a folder that does not exist (yet) is still the folder */
  free(tmp);
  job->text = malloc(len + 1);
  HB_CHECK(job->text && job->dir, HB_EINTERNAL, "memory", "out of memory");
  memcpy(job->text, text, len);
  job->text[len] = 0;
  job->len = len;
  HB_CHECK(strlen(job->text) == len, HB_EINVALID, path, "the job file contains a NUL byte");
  HB_CALL(hb_yaml_parse(job->path, job->text, len, &job->root));
  HB_CHECK(job->root->kind == HB_NODE_MAP, HB_EINVALID, hb_node_where(job->root, 0),
           "a job is a map of keys (version, input, output, kernels, ...)");
  HB_ALLOC(job->sets, nsets);
  for (int i = 0; i < nsets; i++) {
    size_t n = strlen(sets[i]) + 7;
    job->sets[i] = malloc(n);
    HB_CHECK(job->sets[i], HB_EINTERNAL, "memory", "out of memory");
    snprintf(job->sets[i], n, "--set %s", sets[i]);
    job->nsets = i + 1;
    HB_CALL(hb_node_set_path(job->root, job->sets[i]));
  }
  return interpret(job);
}

int hb_job_load(MPI_Comm comm, const char *path, char **sets, int nsets, hb_job *job) {
  int rank;
  MPI_Comm_rank(comm, &rank);
  long long len = 0;
  char *text = NULL;
  int rc = 0;
  if (rank == 0) {
    FILE *f = fopen(path, "rb");
    if (!f) {
      rc = HB_FAIL(HB_EINVALID, path, "cannot read the job file: %s", strerror(errno));
    } else {
      text = malloc(HB_YAML_MAX_BYTES + 1);
      len = text ? (long long)fread(text, 1, HB_YAML_MAX_BYTES + 1, f) : 0;
      if (!text)
        rc = HB_FAIL(HB_EINTERNAL, "memory", "out of memory");
      else if (ferror(f))
        rc = HB_FAIL(HB_EIO, path, "read error: %s", strerror(errno));
      else if (len > HB_YAML_MAX_BYTES)
        rc = HB_FAIL(HB_EINVALID, path, "the job file is larger than %d bytes", HB_YAML_MAX_BYTES);
      fclose(f);
    }
  }
  rc = hb_agree(comm, rc);
  if (rc) {
    free(text);
    memset(job, 0, sizeof *job);
    job->mpiio_info = MPI_INFO_NULL;
    return rc;
  }
  HB_MPI(MPI_Bcast(&len, 1, MPI_LONG_LONG, 0, comm));
  if (rank) text = malloc((size_t)len + 1);
  rc = hb_agree(comm, text ? 0 : HB_FAIL(HB_EINTERNAL, "memory", "out of memory"));
  if (rc) {
    free(text);
    return rc;
  }
  HB_MPI(MPI_Bcast(text, (int)len, MPI_CHAR, 0, comm));
  /* every rank parses the same bytes, so they agree without talking */
  rc = hb_job_parse(path, text, (size_t)len, sets, nsets, job);
  free(text);
  return rc;
}

void hb_job_free(hb_job *job) {
  if (job->mpiio_info != MPI_INFO_NULL) MPI_Info_free(&job->mpiio_info);
  hb_node_free(job->root);
  for (int i = 0; i < job->nsets; i++) free(job->sets[i]);
  free(job->sets);
  free(job->path);
  free(job->dir);
  free(job->text);
  free(job->input_file);
  free(job->output_file);
  free(job->profile);
  memset(job, 0, sizeof *job);
  job->mpiio_info = MPI_INFO_NULL;
}
