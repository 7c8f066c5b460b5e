/* Job file: read on rank 0, broadcast, parsed and checked on every rank. */
#include "hb_job.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hb_error.h"
#include "hb_files.h"
#include "hb_input.h"
#include "hb_kernel.h"
#include "hb_params.h"

static const hb_param_spec axis_spec[] = {
    {"name", HB_P_STRING, .help = "axis name"},
    {"units", HB_P_STRING, .help = "axis units"},
    {"scale", HB_P_FLOAT, .help = "step between samples"},
    {"offset", HB_P_FLOAT, .help = "position of the first sample"},
    HB_PARAM_END,
};

static const hb_param_spec input_spec[] = {
    {"file", HB_P_PATH, HB_REQUIRED, .help = ".hspy or HDF5 file"},
    {"format", HB_P_ENUM, HB_DEFAULT_STR("auto"), .choices = "auto|" HB_INPUT_FORMATS,
     .help = "how to read the file; auto: from its structure (hyperbatch inspect shows it)"},
    {"signal", HB_P_STRING,
     .help = "which signal: an .hspy file's /Experiments/<signal>, an EMD array's path, a NeXus NXdata group's path"},
    {"dataset", HB_P_STRING, .help = "generic HDF5: path of the array"},
    {"navigation_dimension", HB_P_INT,
     .help = "leading axes that are navigation: generic HDF5, or overriding an .hspy file's navigate flags"},
    {"axes", HB_P_LIST, .sub = axis_spec, .help = "calibration overrides in array-axis order"},
    HB_PARAM_END,
};

static const hb_param_spec output_spec[] = {
    {"file", HB_P_PATH, HB_REQUIRED, .help = "the .hspy to write"},
    {"overwrite", HB_P_BOOL, HB_DEFAULT_BOOL(0), .help = "replace an existing output"},
    {"compression", HB_P_ENUM, HB_DEFAULT_STR("gzip"), .choices = "gzip|none", .help = "gzip level 4 + shuffle, or none"},
    {"gzip_effort", HB_P_ENUM, HB_DEFAULT_STR("fast"), .choices = "fast|small",
     .help = "full-size results' gzip encoder: fast (ISA-L; about 5% larger than HyperSpy's files) or small "
             "(libdeflate level 4; smaller than HyperSpy's)"},
    {"direct_io", HB_P_BOOL, HB_DEFAULT_BOOL(1),
     .help = "write the output's large pieces with O_DIRECT, past the page cache (the same bytes; buffered where "
             "the file system refuses it)"},
    {"previews", HB_P_BOOL, HB_DEFAULT_BOOL(1), .help = "a PNG beside the output for every image or line"},
    HB_PARAM_END,
};

static const hb_param_spec run_spec[] = {
    {"block", HB_P_INT, HB_DEFAULT_STR("auto"), .choices = "auto", .help = "navigation positions per block, or auto"},
    {"threads", HB_P_INT, HB_DEFAULT_INT(1), .help = "threads per rank"},
    {"checkpoint", HB_P_BOOL, HB_DEFAULT_BOOL(1), .help = "record finished blocks"},
    {"progress", HB_P_ENUM, HB_DEFAULT_STR("auto"), .choices = "auto|bar|lines|off|false", .help = "progress display"},
    {"profile", HB_P_PATH, .help = "write per-rank phase timings as JSON to this file"},
    {"mpiio_hints", HB_P_MAP, .help = "MPI-IO hints, e.g. {romio_cb_read: enable, cb_buffer_size: 16777216}"},
    HB_PARAM_END,
};

static const hb_param_spec job_spec[] = {
    {"version", HB_P_INT, HB_REQUIRED, .help = "job format version: 1"},
    {"input", HB_P_MAP, HB_REQUIRED, .sub = input_spec, .help = "the data"},
    {"output", HB_P_MAP, HB_REQUIRED, .sub = output_spec, .help = "the results file"},
    {"preprocess", HB_P_LIST, .help = "per-pattern transforms"},
    {"kernels", HB_P_LIST, HB_REQUIRED, .help = "what to compute"},
    {"run", HB_P_MAP, .sub = run_spec, .help = "execution settings"},
    HB_PARAM_END,
};

static char *dup_path(const char *s) { return s ? strdup(s) : NULL; }

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
      /* a kernel, or a transform whose output is written */
      const hb_kernel_def *def = hb_kernel_find(op);
      const hb_transform_def *tdef = def ? NULL : hb_transform_find(op);
      if (!def && !tdef) {
        const char *best = NULL;
        size_t bestd = 4;
        for (const hb_kernel_def *const *d = hb_kernel_table; *d; d++) {
          size_t dd = hb_edit_distance(op, (*d)->op);
          if (dd < bestd) bestd = dd, best = (*d)->op;
        }
        for (const hb_transform_def *const *d = hb_transform_table; *d; d++) {
          size_t dd = hb_edit_distance(op, (*d)->op);
          if (dd < bestd) bestd = dd, best = (*d)->op;
        }
        HB_RAISE(HB_EINVALID, hb_node_where(opn, 0), "unknown op '%s'%s%s%s; `hyperbatch kernels` lists them", op,
                 best ? " (did you mean '" : "", best ? best : "", best ? "'?)" : "");
      }
      params = def ? def->params : tdef->params;
      snprintf(label, sizeof label, "kernel '%s'", name);
    } else {
      const hb_transform_def *def = hb_transform_find(op);
      HB_CHECK(def, HB_EINVALID, hb_node_where(opn, 0),
               "unknown preprocess op '%s'; `hyperbatch kernels` lists the transforms", op);
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
  const hb_params *P, *in, *out, *run;
  HB_CALL(hb_params_bind(root, job_spec, &P));
  job->params = P;
  long long version = hb_param_int(P, "version");
  HB_CHECK(version == 1, HB_EINVALID, hb_param_where(P, "version"),
           "job version %lld is not supported (this is version 1)", version);

  job->input = in = hb_param_map(P, "input");
  job->input_file_as_written = hb_param_text(in, "file");
  job->input_file = dup_path(hb_param_str(in, "file"));
  HB_CHECK(job->input_file, HB_EINTERNAL, "memory", "out of memory");
  job->input_signal = hb_param_str(in, "signal");
  job->input_dataset = hb_param_str(in, "dataset");
  job->nav_dim = -1;
  if (hb_param_given(in, "navigation_dimension")) {
    long long v = hb_param_int(in, "navigation_dimension");
    HB_CHECK(v >= 1 && v < 8, HB_EINVALID, hb_param_where(in, "navigation_dimension"),
             "navigation_dimension must be 1 to 7, got %lld", v);
    job->nav_dim = (int)v;
  }
  job->input_axes = hb_param_node(in, "axes");

  job->output = out = hb_param_map(P, "output");
  job->output_file = dup_path(hb_param_str(out, "file"));
  HB_CHECK(job->output_file, HB_EINTERNAL, "memory", "out of memory");
  job->overwrite = hb_param_bool(out, "overwrite");
  job->previews = hb_param_bool(out, "previews");
  job->gzip = !strcmp(hb_param_str(out, "compression"), "gzip");
  job->gzip_small = !strcmp(hb_param_str(out, "gzip_effort"), "small");
  job->direct_io = hb_param_bool(out, "direct_io");

  job->preprocess = hb_param_node(P, "preprocess");
  if (job->preprocess) HB_CALL(check_op_list(job->preprocess, 0));
  job->kernels = hb_param_node(P, "kernels");
  HB_CALL(check_op_list(job->kernels, 1));

  job->run = run = hb_param_map(P, "run"); /* every default when the job has no run: */
  if (!hb_param_word(run, "block")) {
    job->block = hb_param_int(run, "block");
    HB_CHECK(job->block >= 1, HB_EINVALID, hb_param_where(run, "block"),
             "run.block must be 'auto' or a positive integer");
  }
  long long threads = hb_param_int(run, "threads");
  HB_CHECK(threads >= 1 && threads <= 256, HB_EINVALID, hb_param_where(run, "threads"),
           "run.threads must be 1 to 256, got %lld", threads);
  job->threads = (int)threads;
  job->checkpoint = hb_param_bool(run, "checkpoint");
  if (hb_param_given(run, "profile")) {
    job->profile = dup_path(hb_param_str(run, "profile"));
    HB_CHECK(job->profile, HB_EINTERNAL, "memory", "out of memory");
  }
  const hb_node *hints = hb_param_node(run, "mpiio_hints");
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
  /* `off` unquoted is a YAML 1.1 boolean: off, "off" and false all mean off */
  const char *progress = hb_param_str(run, "progress");
  job->progress = !strcmp(progress, "bar")                              ? HB_PROGRESS_BAR
                  : !strcmp(progress, "lines")                          ? HB_PROGRESS_LINES
                  : !strcmp(progress, "off") || !strcmp(progress, "false") ? HB_PROGRESS_OFF
                                                                          : HB_PROGRESS_AUTO;
  return hb_params_misused(P);
}

int hb_job_parse(const char *path, const char *text, size_t len, char **sets, int nsets, hb_job *job) {
  memset(job, 0, sizeof *job);
  job->mpiio_info = MPI_INFO_NULL;
  job->path = strdup(path);
  HB_CHECK(job->path, HB_EINTERNAL, "memory", "out of memory");
  /* the job's folder, as hb_path_resolve resolves the job's paths against it */
  job->dir = hb_path_job_folder(path);
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
