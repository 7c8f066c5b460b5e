/* hb_job_parse (from text, path "job.yaml") and --set (hb_node_set_path via
 * the sets argument).
 *
 *  - a job with every section parses and every field is right;
 *  - every kind of job error is HB_EINVALID at exactly "job.yaml:LINE:COL" of
 *    the offending key or value, with a useful message;
 *  - --set by key path, by kernel name and by index; errors name the --set;
 *  - a bare YAML null (~, null, nothing) is no file name; quoted, it is one;
 *  - hostile input (billion laughs, huge text, deep nesting) is refused fast,
 *    and aliases are bounded by the nodes and the text they expand to;
 *  - typed parameters (hb_params.h): typed defaults applied (and printed from
 *    the same row), values at their positions (a default at its map's), a
 *    wrong name or type is HB_EINTERNAL, and every path resolved by the one
 *    rule: job-relative when written in the job, cwd-relative from --set. */
#include <hdf5.h>
#include <mpi.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hb_error.h"
#include "hb_files.h"
#include "hb_job.h"
#include "hb_kernel.h"
#include "hb_params.h"
#include "hb_yaml.h"
#include "testutil.h"

/* "job.yaml:L:C" of the nth (0-based) occurrence of `needle` in `text`,
 * computed from the text itself so the expected positions are exact. */
static const char *pos_of(const char *text, const char *needle, int nth) {
  static char ring[4][64];
  static int k;
  char *out = ring[k++ & 3];
  const char *p = text;
  for (int i = 0; p; i++) {
    p = strstr(p, needle);
    if (!p || i == nth) break;
    p++;
  }
  if (!p) {
    snprintf(out, sizeof ring[0], "(\"%s\" #%d not in the text)", needle, nth);
    return out;
  }
  int line = 1, col = 1;
  for (const char *c = text; c < p; c++) {
    if (*c == '\n') line++, col = 1;
    else col++;
  }
  snprintf(out, sizeof ring[0], "job.yaml:%d:%d", line, col);
  return out;
}

/* Is `got` the path `rel` resolved against the folder `dir`?  Spelled as
 * given ("dir/rel", or "rel" / "./rel" for "."), or made absolute through
 * realpath(dir): both name the same file. */
static int resolved_ok(const char *got, const char *dir, const char *rel) {
  char want[PATH_MAX + 512];
  if (!got) return 0;
  if (!strcmp(dir, ".")) {
    snprintf(want, sizeof want, "./%s", rel);
    if (!strcmp(got, rel) || !strcmp(got, want)) return 1;
  } else {
    snprintf(want, sizeof want, "%s/%s", dir, rel);
    if (!strcmp(got, want)) return 1;
  }
  char *real = realpath(dir, NULL);
  int ok = 0;
  if (real) {
    snprintf(want, sizeof want, "%s/%s", real, rel);
    ok = !strcmp(got, want);
    free(real);
  }
  return ok;
}
#define CHECK_RESOLVED(got, dir, rel)                                                         \
  do {                                                                                        \
    const char *g_ = (got);                                                                   \
    CHECK(resolved_ok(g_, (dir), (rel)), "%s: expected \"%s\" resolved against \"%s\", got \"%s\"", \
          #got, (rel), (dir), g_ ? g_ : "(null)");                                            \
  } while (0)

static char tmpdir[64];

static double seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int parse(const char *text, char **sets, int nsets, hb_job *job) {
  hb_error_clear();
  return hb_job_parse("job.yaml", text, strlen(text), sets, nsets, job);
}

/* Parse `text`; expect HB_EINVALID at `where` with `msg` in the message.
 * `line` is the caller's line, to find the case. */
static void expect_error_at(int line, const char *text, char **sets, int nsets, const char *where, const char *msg) {
  hb_job job;
  int rc = parse(text, sets, nsets, &job);
  CHECK(rc == HB_EINVALID, "case at line %d: expected HB_EINVALID (2), got %d (where \"%s\", what \"%s\")", line, rc,
        hb_error_where(), hb_error_what());
  CHECK(hb_error_code() == HB_EINVALID, "case at line %d: hb_error_code() %d, expected 2", line, hb_error_code());
  if (where)
    CHECK(!strcmp(hb_error_where(), where), "case at line %d: expected where \"%s\", got \"%s\" (what: %s)", line,
          where, hb_error_where(), hb_error_what());
  if (msg)
    CHECK(strstr(hb_error_what(), msg) != NULL, "case at line %d: expected the message to contain \"%s\", got \"%s\"",
          line, msg, hb_error_what());
  hb_job_free(&job);
  hb_error_clear();
}
#define EXPECT_ERROR(text, where, msg) expect_error_at(__LINE__, (text), NULL, 0, (where), (msg))
#define EXPECT_SET_ERROR(text, set, where, msg)                   \
  do {                                                           \
    char *s_[] = {(char *)(set)};                                \
    expect_error_at(__LINE__, (text), s_, 1, (where), (msg));    \
  } while (0)

static const char full_job[] =
    "version: 1\n"
    "input:\n"
    "  file: data/scan.hspy\n"
    "  signal: scan\n"
    "  dataset: /entry/data/data\n"
    "  navigation_dimension: 2\n"
    "  axes:\n"
    "    - {name: y, units: nm, scale: 0.5, offset: 0}\n"
    "    - {name: x, units: nm, scale: 0.25, offset: 1.5}\n"
    "output:\n"
    "  file: results/scan.hspy\n"
    "  overwrite: true\n"
    "  compression: none\n"
    "  previews: false\n"
    "preprocess:\n"
    "  - op: filter_hot_pixels\n"
    "    threshold: 8\n"
    "kernels:\n"
    "  - name: mean_dp\n"
    "    op: mean\n"
    "    axes: navigation\n"
    "  - name: bf\n"
    "    op: virtual_image\n"
    "    detector: {shape: circle, center: [64, 64], radius: 8}\n"
    "  - name: total\n"
    "    op: sum\n"
    "    axes: signal\n"
    "  - {name: brightest, op: max, axes: signal}\n"
    "  - {name: darkest, op: min, axes: navigation}\n"
    "run:\n"
    "  block: 16\n"
    "  threads: 4\n"
    "  checkpoint: false\n"
    "  progress: lines\n";

/* The smallest valid job; error cases are variations of it. */
#define MIN_HEAD "version: 1\ninput: {file: in.hspy}\noutput: {file: out.hspy}\n"
#define MIN_KERNELS                                                                 \
  "kernels:\n"                                                                      \
  "  - name: bf\n"                                                                  \
  "    op: virtual_image\n"                                                         \
  "    detector: {shape: circle, center: [5, 5], radius: 2}\n"
static const char min_job[] = MIN_HEAD MIN_KERNELS;

static const hb_node *kernel_named(const hb_job *job, const char *name) {
  if (!job->kernels) return NULL;
  for (size_t i = 0; i < job->kernels->n; i++) {
    const hb_node *n = hb_node_child(job->kernels->kids[i], "name");
    if (n && n->text && !strcmp(n->text, name)) return job->kernels->kids[i];
  }
  return NULL;
}

static const char *text_at(const hb_node *map, const char *k1, const char *k2) {
  const hb_node *n = hb_node_child(map, k1);
  if (n && k2) n = hb_node_child(n, k2);
  return n && n->kind == HB_NODE_SCALAR ? n->text : NULL;
}

static void test_valid(void) {
  hb_job job;
  int rc = parse(full_job, NULL, 0, &job);
  CHECK(rc == 0, "full job: rc %d, %s: %s", rc, hb_error_where(), hb_error_what());
  if (rc) {
    hb_job_free(&job);
    return;
  }
  CHECK_STR(job.path, "job.yaml");
  CHECK_UINT(job.len, strlen(full_job));
  CHECK(job.text && !strcmp(job.text, full_job), "the job text must be kept exactly as read");
  CHECK_RESOLVED(job.input_file, ".", "data/scan.hspy");
  CHECK_STR(job.input_file_as_written, "data/scan.hspy");
  CHECK_STR(job.input_signal, "scan");
  CHECK_STR(job.input_dataset, "/entry/data/data");
  CHECK_INT(job.nav_dim, 2);
  CHECK(job.input_axes && job.input_axes->kind == HB_NODE_SEQ && job.input_axes->n == 2, "input.axes: two items");
  if (job.input_axes && job.input_axes->n == 2) CHECK_STR(text_at(job.input_axes->kids[1], "scale", NULL), "0.25");
  CHECK_RESOLVED(job.output_file, ".", "results/scan.hspy");
  CHECK_INT(job.overwrite, 1);
  CHECK_INT(job.gzip, 0);
  CHECK_INT(job.previews, 0);
  CHECK(job.preprocess && job.preprocess->n == 1, "preprocess: one step");
  if (job.preprocess && job.preprocess->n == 1)
    CHECK_STR(text_at(job.preprocess->kids[0], "op", NULL), "filter_hot_pixels");
  CHECK(job.kernels && job.kernels->n == 5, "kernels: five, got %zu", job.kernels ? job.kernels->n : 0);
  const hb_node *bf = kernel_named(&job, "bf");
  CHECK(bf != NULL, "kernel bf present");
  CHECK_STR(text_at(bf, "detector", "radius"), "8");
  CHECK_INT(job.block, 16);
  CHECK_INT(job.threads, 4);
  CHECK_INT(job.checkpoint, 0);
  CHECK_INT(job.progress, HB_PROGRESS_LINES);
  CHECK_INT(job.nsets, 0);
  hb_job_free(&job);

  /* defaults */
  rc = parse(min_job, NULL, 0, &job);
  CHECK(rc == 0, "minimal job: rc %d, %s: %s", rc, hb_error_where(), hb_error_what());
  if (!rc) {
    CHECK_INT(job.overwrite, 0);
    CHECK_INT(job.gzip, 1);
    CHECK_INT(job.previews, 1);
    CHECK_INT(job.block, 0);
    CHECK_INT(job.threads, 1);
    CHECK_INT(job.checkpoint, 1);
    CHECK_INT(job.progress, HB_PROGRESS_AUTO);
    CHECK_INT(job.nav_dim, -1);
    CHECK(job.input_signal == NULL && job.input_dataset == NULL && job.input_axes == NULL && job.preprocess == NULL,
          "absent optional input keys and preprocess must be NULL");
  }
  hb_job_free(&job);

  /* relative paths resolve against the job's folder; absolute ones stay */
  char jdir[128], jpath[160], cwd[PATH_MAX];
  snprintf(jdir, sizeof jdir, "%s/jobs/a", tmpdir);
  snprintf(jpath, sizeof jpath, "%s/job.yaml", jdir);
  rc = hb_job_parse(jpath, full_job, strlen(full_job), NULL, 0, &job);
  CHECK(rc == 0, "%s: rc %d: %s", jpath, rc, hb_error_what());
  if (!rc) {
    CHECK_RESOLVED(job.input_file, jdir, "data/scan.hspy");
    CHECK_RESOLVED(job.output_file, jdir, "results/scan.hspy");
  }
  hb_job_free(&job);
  hb_error_clear();
  /* a relative job path: from inside tmpdir, jobs/a/job.yaml */
  if (getcwd(cwd, sizeof cwd) && chdir(tmpdir) == 0) {
    rc = hb_job_parse("jobs/a/job.yaml", full_job, strlen(full_job), NULL, 0, &job);
    CHECK(rc == 0, "jobs/a/job.yaml: rc %d: %s", rc, hb_error_what());
    if (!rc) {
      CHECK_RESOLVED(job.input_file, "jobs/a", "data/scan.hspy");
      CHECK_RESOLVED(job.output_file, "jobs/a", "results/scan.hspy");
    }
    hb_job_free(&job);
    hb_error_clear();
    CHECK(chdir(cwd) == 0, "cannot return to %s", cwd);
  } else {
    CHECK(0, "cannot enter %s", tmpdir);
  }
  /* "../x" through a folder that exists names the file without the detour */
  static const char up_job[] = "version: 1\ninput: {file: ../in.hspy}\noutput: {file: ../../out.hspy}\n" MIN_KERNELS;
  rc = hb_job_parse(jpath, up_job, strlen(up_job), NULL, 0, &job);
  CHECK(rc == 0, "../ paths: rc %d: %s", rc, hb_error_what());
  if (!rc) {
    char *want_in = realpath(tmpdir, NULL);
    char want[PATH_MAX + 32];
    snprintf(want, sizeof want, "%s/jobs/in.hspy", want_in ? want_in : "?");
    CHECK_STR(job.input_file, want);
    snprintf(want, sizeof want, "%s/out.hspy", want_in ? want_in : "?");
    CHECK_STR(job.output_file, want);
    free(want_in);
  }
  hb_job_free(&job);
  hb_error_clear();
  static const char abs_job[] = "version: 1\ninput: {file: /abs/in.hspy}\noutput: {file: /abs/out.hspy}\n" MIN_KERNELS;
  rc = hb_job_parse(jpath, abs_job, strlen(abs_job), NULL, 0, &job);
  CHECK(rc == 0, "absolute paths: rc %d: %s", rc, hb_error_what());
  if (!rc) {
    CHECK_STR(job.input_file, "/abs/in.hspy");
    CHECK_STR(job.output_file, "/abs/out.hspy");
  }
  hb_job_free(&job);
  hb_error_clear();
  /* hb_job_parse works from text: the job's folder need not exist (yet); a
   * relative input still resolves against it, not against the cwd */
  rc = hb_job_parse("/nonexistent-hb-test/jobs/job.yaml", full_job, strlen(full_job), NULL, 0, &job);
  if (!rc) CHECK_RESOLVED(job.input_file, "/nonexistent-hb-test/jobs", "data/scan.hspy");
  else CHECK(0, "/nonexistent-hb-test/jobs/job.yaml: rc %d: %s", rc, hb_error_what());
  hb_job_free(&job);
  hb_error_clear();

  /* progress: a bare `off` is a YAML 1.1 boolean; off, "off", 'off' and false all mean off */
  static const struct {
    const char *value;
    hb_progress_mode want;
  } prog[] = {
      {"off", HB_PROGRESS_OFF}, {"\"off\"", HB_PROGRESS_OFF}, {"'off'", HB_PROGRESS_OFF},
      {"false", HB_PROGRESS_OFF}, {"bar", HB_PROGRESS_BAR},   {"lines", HB_PROGRESS_LINES},
      {"auto", HB_PROGRESS_AUTO},
  };
  for (size_t i = 0; i < sizeof prog / sizeof prog[0]; i++) {
    char text[512];
    snprintf(text, sizeof text, "%srun:\n  progress: %s\n", min_job, prog[i].value);
    rc = parse(text, NULL, 0, &job);
    CHECK(rc == 0, "progress: %s: rc %d: %s: %s", prog[i].value, rc, hb_error_where(), hb_error_what());
    if (!rc)
      CHECK(job.progress == prog[i].want, "progress: %s gives mode %d, expected %d", prog[i].value, (int)job.progress,
            (int)prog[i].want);
    hb_job_free(&job);
  }

  /* block: auto is 0; compression gzip; a comment and a document marker are fine */
  rc = parse("--- # a job\nversion: 1\ninput: {file: in.hspy}\noutput: {file: out.hspy, compression: gzip}\n" MIN_KERNELS
             "run: {block: auto, threads: 256}\n",
             NULL, 0, &job);
  CHECK(rc == 0, "block: auto: rc %d: %s: %s", rc, hb_error_where(), hb_error_what());
  if (!rc) {
    CHECK_INT(job.block, 0);
    CHECK_INT(job.gzip, 1);
    CHECK_INT(job.threads, 256);
  }
  hb_job_free(&job);
  hb_error_clear();
}

static void test_errors(void) {
  /* a typo in a kernel parameter: at the key, with a hint */
  {
    const char *t = MIN_HEAD "kernels:\n  - name: bf\n    op: virtual_image\n"
                             "    detector: {shape: circle, center: [5, 5], raduis: 2}\n";
    EXPECT_ERROR(t, "job.yaml:7:47", "did you mean 'radius'");
    EXPECT_ERROR(t, pos_of(t, "raduis", 0), "raduis");
  }
  /* a typo in a top-level key */
  {
    const char *t = "version: 1\ninput: {file: in.hspy}\noutput: {file: out.hspy}\nkernals:\n  - name: bf\n";
    EXPECT_ERROR(t, "job.yaml:4:1", "did you mean 'kernels'");
  }
  /* an unknown top-level key, far from every known one */
  {
    const char *t = MIN_HEAD MIN_KERNELS "colour: red\n";
    EXPECT_ERROR(t, "job.yaml:8:1", "colour");
  }
  /* an unknown key in a nested section */
  {
    const char *t = MIN_HEAD MIN_KERNELS "run:\n  block: 4\n  thraeds: 2\n";
    EXPECT_ERROR(t, "job.yaml:10:3", "did you mean 'threads'");
  }
  /* YAML syntax errors point at the offending character */
  EXPECT_ERROR("version: 1\ninput:\n  file: a\n bad: 2\n", "job.yaml:4:2", "YAML syntax error");
  EXPECT_ERROR("version: 1\ninput: {file: a]\n", "job.yaml:2:16", "YAML syntax error");
  EXPECT_ERROR("version: 1\ninput:\n\tfile: a\n", "job.yaml:3:1", "YAML syntax error");
  /* wrong types, at the value */
  {
    const char *t = MIN_HEAD "kernels:\n  - name: bf\n    op: virtual_image\n"
                             "    detector: {shape: circle, center: [5, 5], radius: abc}\n";
    EXPECT_ERROR(t, "job.yaml:7:55", "abc");
    EXPECT_ERROR(t, pos_of(t, "abc", 0), "must be a number");
  }
  {
    const char *t = "version: 1\ninput: {file: in.hspy}\noutput:\n  file: out.hspy\n  overwrite: maybe\n" MIN_KERNELS;
    EXPECT_ERROR(t, "job.yaml:5:14", "maybe");
  }
  {
    const char *t = MIN_HEAD MIN_KERNELS "run:\n  threads: two\n";
    EXPECT_ERROR(t, "job.yaml:9:12", "integer");
  }
  {
    const char *t = MIN_HEAD "kernels:\n  - name: bf\n    op: virtual_image\n"
                             "    detector: {shape: circle, center: 5, radius: 2}\n";
    EXPECT_ERROR(t, pos_of(t, "5,", 0), "center");
  }
  {
    /* axis names are checked against the input when the kernel is planned
     * (tests/interop/test_stats.py); the type is checked on loading */
    const char *t = MIN_HEAD "kernels:\n  - name: m\n    op: mean\n    axes: {every: thing}\n";
    EXPECT_ERROR(t, "job.yaml:7:11", "'axes' must be a name or a list");
  }
  /* missing required keys */
  EXPECT_ERROR(MIN_HEAD, "job.yaml:1:1", "'kernels'");
  EXPECT_ERROR("version: 1\ninput: {file: in.hspy}\noutput: {overwrite: true}\n" MIN_KERNELS, "job.yaml:3:1", "'file'");
  EXPECT_ERROR("input: {file: in.hspy}\noutput: {file: out.hspy}\n" MIN_KERNELS, "job.yaml:1:1", "'version'");
  EXPECT_ERROR(MIN_HEAD "kernels:\n  - name: m\n    op: mean\n", "job.yaml:5:5", "'axes'");
  EXPECT_ERROR(MIN_HEAD "kernels:\n  - op: mean\n    axes: signal\n", "job.yaml:5:5", "'name'");
  EXPECT_ERROR(MIN_HEAD "kernels:\n  - name: m\n    axes: signal\n", "job.yaml:5:5", "'op'");
  /* duplicate kernel names: at the second, naming the first's line */
  {
    const char *t = MIN_HEAD MIN_KERNELS "  - name: bf\n    op: sum\n    axes: signal\n";
    EXPECT_ERROR(t, "job.yaml:8:11", "first at line 5");
  }
  /* unknown op: at the value, with the closest op */
  {
    const char *t = MIN_HEAD "kernels:\n  - name: bf\n    op: virtual_imgae\n    detector: {shape: point, at: [1, 1]}\n";
    EXPECT_ERROR(t, "job.yaml:6:9", "did you mean 'virtual_image'");
  }
  {
    const char *t = MIN_HEAD "kernels:\n  - {name: s, op: summ, axes: signal}\n";
    EXPECT_ERROR(t, pos_of(t, "summ", 0), "did you mean 'sum'");
  }
  {
    const char *t = MIN_HEAD "preprocess:\n  - op: filter_hot_pixel\n" MIN_KERNELS;
    EXPECT_ERROR(t, "job.yaml:5:9", "filter_hot_pixel");
  }
  {
    const char *t = MIN_HEAD "preprocess:\n  - op: filter_hot_pixels\n    treshold: 5\n" MIN_KERNELS;
    EXPECT_ERROR(t, "job.yaml:6:5", "did you mean 'threshold'");
  }
  /* a duplicate YAML map key: at the second, naming the first's line */
  EXPECT_ERROR("version: 1\ninput: {file: a.hspy, file: b.hspy}\noutput: {file: out.hspy}\n" MIN_KERNELS, "job.yaml:2:23",
               "first at line 2");
  EXPECT_ERROR(MIN_HEAD MIN_KERNELS "version: 1\n", "job.yaml:8:1", "duplicate key 'version' (first at line 1)");
  /* version 2 */
  {
    const char *t = "version: 2\ninput: {file: in.hspy}\noutput: {file: out.hspy}\n" MIN_KERNELS;
    EXPECT_ERROR(t, "job.yaml:1:10", "version 2");
  }
  /* an empty kernels list: at the key */
  EXPECT_ERROR(MIN_HEAD "kernels: []\n", "job.yaml:4:1", "at least one kernel");
  /* kernels must be a list */
  EXPECT_ERROR(MIN_HEAD "kernels: {name: bf}\n", "job.yaml:4:10", "list");
  /* a kernel name with '/' (it would become an HDF5 path) */
  {
    const char *t = MIN_HEAD "kernels:\n  - name: a/b\n    op: sum\n    axes: signal\n";
    EXPECT_ERROR(t, "job.yaml:5:11", "a/b");
  }
  EXPECT_ERROR(MIN_HEAD "kernels:\n  - {name: .hidden, op: sum, axes: signal}\n", NULL, ".hidden");
  /* bad run values */
  EXPECT_ERROR(MIN_HEAD MIN_KERNELS "run:\n  block: 0\n", "job.yaml:9:10", "run.block");
  EXPECT_ERROR(MIN_HEAD MIN_KERNELS "run:\n  block: lots\n", "job.yaml:9:10", "lots");
  EXPECT_ERROR(MIN_HEAD MIN_KERNELS "run:\n  threads: 0\n", "job.yaml:9:12", "run.threads");
  EXPECT_ERROR(MIN_HEAD MIN_KERNELS "run:\n  progress: sometimes\n", "job.yaml:9:13", "sometimes");
  EXPECT_ERROR(MIN_HEAD MIN_KERNELS "run:\n  checkpoint: perhaps\n", "job.yaml:9:15", "perhaps");
  /* not a map; empty; two documents; empty file name */
  EXPECT_ERROR("- version: 1\n", "job.yaml:1:1", "map");
  EXPECT_ERROR("", NULL, "empty");
  EXPECT_ERROR("# only a comment\n", NULL, "empty");
  EXPECT_ERROR(MIN_HEAD MIN_KERNELS "---\nversion: 1\n", NULL, "more than one YAML document");
  EXPECT_ERROR("version: 1\ninput: {file: ''}\noutput: {file: out.hspy}\n" MIN_KERNELS, "job.yaml:2:15", "empty");
  EXPECT_ERROR("version: 1\ninput: {file: in.hspy, navigation_dimension: 9}\noutput: {file: out.hspy}\n" MIN_KERNELS,
               "job.yaml:2:46", "navigation_dimension");
  EXPECT_ERROR("version: 1\ninput: {file: in.hspy, axes: [{name: y, scael: 2}]}\noutput: {file: out.hspy}\n" MIN_KERNELS,
               "job.yaml:2:41", "did you mean 'scale'");

  /* a NUL byte inside the text */
  {
    hb_job job;
    static const char nul[] = "version: 1\0junk: 1\n";
    hb_error_clear();
    int rc = hb_job_parse("job.yaml", nul, sizeof nul - 1, NULL, 0, &job);
    CHECK(rc == HB_EINVALID, "a NUL byte: expected HB_EINVALID, got %d", rc);
    hb_job_free(&job);
    hb_error_clear();
  }
}

static void test_set(void) {
  char *sets[] = {
      "output.file=x.hspy",
      "kernels.bf.detector.radius=5",
      "kernels.0.axes=signal",
      "run.block=7",
      "kernels.bf.detector.center=[1, 2]",
      "kernels.total.axes=navigation",
      "input.signal=other",
  };
  const int nsets = (int)(sizeof sets / sizeof sets[0]);
  hb_job job;
  int rc = parse(full_job, sets, nsets, &job);
  CHECK(rc == 0, "--set: rc %d, %s: %s", rc, hb_error_where(), hb_error_what());
  if (!rc) {
    CHECK_RESOLVED(job.output_file, ".", "x.hspy");
    const hb_node *bf = kernel_named(&job, "bf");
    CHECK_STR(text_at(bf, "detector", "radius"), "5");
    CHECK_STR(text_at(job.kernels->kids[0], "axes", NULL), "signal");
    CHECK_STR(text_at(kernel_named(&job, "mean_dp"), "axes", NULL), "signal");
    CHECK_STR(text_at(kernel_named(&job, "total"), "axes", NULL), "navigation");
    CHECK_INT(job.block, 7);
    CHECK_STR(job.input_signal, "other");
    const hb_node *det = bf ? hb_node_child(bf, "detector") : NULL;
    const hb_node *c = det ? hb_node_child(det, "center") : NULL;
    CHECK(c && c->kind == HB_NODE_SEQ && c->n == 2, "--set center=[1, 2] must give a list of two");
    double xy[2] = {-1, -1};
    if (c) {
      int nrc = hb_node_numbers(c, xy, 2);
      CHECK(nrc == 0 && xy[0] == 1 && xy[1] == 2, "center read back as [%g, %g] (rc %d)", xy[0], xy[1], nrc);
    }
    /* the other keys of the detector are untouched, and the edited map keeps its order */
    CHECK_STR(text_at(bf, "detector", "shape"), "circle");
    CHECK(det && det->n == 3, "detector must still have 3 keys, has %zu", det ? det->n : 0);
    /* the --sets are recorded, in order, for the provenance */
    CHECK_INT(job.nsets, nsets);
    if (job.nsets == nsets) {
      CHECK_STR(job.sets[0], "--set output.file=x.hspy");
      CHECK_STR(job.sets[4], "--set kernels.bf.detector.center=[1, 2]");
    }
    /* the job text is kept as written, not as edited */
    CHECK(job.text && !strcmp(job.text, full_job), "the job text must not change with --set");
  }
  hb_job_free(&job);

  /* a --set may create a section that the file does not have */
  {
    char *s[] = {"run.threads=3", "run.progress=off"};
    rc = parse(min_job, s, 2, &job);
    CHECK(rc == 0, "--set run.threads=3 on a job without run: rc %d, %s: %s", rc, hb_error_where(), hb_error_what());
    if (!rc) {
      CHECK_INT(job.threads, 3);
      CHECK_INT(job.progress, HB_PROGRESS_OFF);
    }
    hb_job_free(&job);
  }
  /* later --sets win */
  {
    char *s[] = {"run.block=3", "run.block=9"};
    rc = parse(min_job, s, 2, &job);
    CHECK(rc == 0 && job.block == 9, "two --set run.block: rc %d block %lld, want 9", rc, job.block);
    hb_job_free(&job);
  }

  /* errors name the --set itself */
  EXPECT_SET_ERROR(full_job, "output.fiel=x.hspy", "--set output.fiel=x.hspy", "did you mean 'file'");
  EXPECT_SET_ERROR(full_job, "kernels.bf.detector.raduis=3", "--set kernels.bf.detector.raduis=3",
                   "did you mean 'radius'");
  EXPECT_SET_ERROR(full_job, "colour=red", "--set colour=red", "colour");
  EXPECT_SET_ERROR(full_job, "output.file", "--set output.file", "KEY=VALUE");
  EXPECT_SET_ERROR(full_job, "=x", "--set =x", "KEY=VALUE");
  EXPECT_SET_ERROR(full_job, "kernels.bf.detector.radius=abc", "--set kernels.bf.detector.radius=abc", "abc");
  EXPECT_SET_ERROR(full_job, "kernels.nope.axes=signal", "--set kernels.nope.axes=signal", "nope");
  EXPECT_SET_ERROR(full_job, "kernels.9.axes=signal", "--set kernels.9.axes=signal", NULL);
  EXPECT_SET_ERROR(full_job, "kernels.0=sum", "--set kernels.0=sum", NULL);
  EXPECT_SET_ERROR(full_job, "version.minor=1", "--set version.minor=1", NULL);
  EXPECT_SET_ERROR(full_job, "version=2", "--set version=2", "version 2");
  EXPECT_SET_ERROR(full_job, "output.file=", "--set output.file=", "empty");
  EXPECT_SET_ERROR(full_job, "kernels.0.op=maen", "--set kernels.0.op=maen", "did you mean 'mean'");
  /* a VALUE that is not valid YAML */
  {
    hb_job j;
    char *s[] = {"kernels.bf.detector.center=[1, 2"};
    rc = parse(full_job, s, 1, &j);
    CHECK(rc == HB_EINVALID, "unclosed flow value: expected HB_EINVALID, got %d", rc);
    CHECK(!strncmp(hb_error_where(), "--set kernels.bf.detector.center=[1, 2", 38),
          "unclosed flow value: where \"%s\" must name the --set", hb_error_where());
    hb_job_free(&j);
    hb_error_clear();
  }
}

/* A bare YAML null (~, null, Null, NULL or nothing) given for a string is an
 * error at the value or at the --set, never a file called `~` or `null`;
 * quoted, it is an ordinary name. */
static void test_nulls(void) {
  static const char *const nulls[] = {"~", "null", "Null", "NULL"};
  for (size_t i = 0; i < sizeof nulls / sizeof nulls[0]; i++) {
    const char *v = nulls[i];
    char t[1024], msg[128], set[128];
    snprintf(msg, sizeof msg, "'file' is %s, a YAML null", v);
    snprintf(t, sizeof t, "version: 1\ninput: {file: %s}\noutput: {file: out.hspy}\n" MIN_KERNELS, v);
    EXPECT_ERROR(t, pos_of(t, v, 0), msg);
    snprintf(t, sizeof t, "version: 1\ninput: {file: in.hspy}\noutput:\n  file: %s\n" MIN_KERNELS, v);
    EXPECT_ERROR(t, pos_of(t, v, 0), msg);
    snprintf(t, sizeof t, MIN_HEAD MIN_KERNELS "run:\n  profile: %s\n", v);
    EXPECT_ERROR(t, pos_of(t, v, 0), "'profile' is");
    /* kernel parameters that name files: a mask, an init file, a mask path */
    snprintf(t, sizeof t, MIN_HEAD "kernels:\n  - {name: m, op: virtual_image, detector: {shape: mask, file: %s, dataset: /m}}\n",
             v);
    EXPECT_ERROR(t, pos_of(t, v, 0), msg);
    snprintf(t, sizeof t, MIN_HEAD "kernels:\n  - {name: d, op: decomposition, components: 2, init: custom, init_file: %s}\n", v);
    EXPECT_ERROR(t, pos_of(t, v, 0), "'init_file' is");
    snprintf(t, sizeof t, MIN_HEAD "kernels:\n  - {name: d, op: decomposition, components: 2, navigation_mask: %s}\n", v);
    EXPECT_ERROR(t, pos_of(t, v, 0), "'navigation_mask' is");
    /* the same from the command line */
    snprintf(set, sizeof set, "output.file=%s", v);
    char label[160];
    snprintf(label, sizeof label, "--set %s", set);
    EXPECT_SET_ERROR(min_job, set, label, msg);
    snprintf(set, sizeof set, "run.profile=%s", v);
    snprintf(label, sizeof label, "--set %s", set);
    EXPECT_SET_ERROR(min_job, set, label, "'profile' is");
    snprintf(set, sizeof set, "input.file=%s", v);
    snprintf(label, sizeof label, "--set %s", set);
    EXPECT_SET_ERROR(min_job, set, label, msg);
  }
  /* nothing after the colon is a null too */
  EXPECT_ERROR("version: 1\ninput:\n  file:\noutput: {file: out.hspy}\n" MIN_KERNELS, NULL,
               "'file' is empty (a YAML null)");
  EXPECT_ERROR(MIN_HEAD MIN_KERNELS "run:\n  profile:\n", NULL, "'profile' is empty (a YAML null)");
  EXPECT_SET_ERROR(min_job, "run.profile=", "--set run.profile=", "'profile' is empty");

  /* quoted, each is a name like any other */
  static const char quoted[] = "version: 1\ninput: {file: 'null'}\noutput: {file: \"~\"}\n" MIN_KERNELS
                               "run: {profile: \"NULL\"}\n";
  hb_job job;
  int rc = parse(quoted, NULL, 0, &job);
  CHECK(rc == 0, "quoted nulls: rc %d, %s: %s", rc, hb_error_where(), hb_error_what());
  if (!rc) {
    CHECK_RESOLVED(job.input_file, ".", "null");
    CHECK_RESOLVED(job.output_file, ".", "~");
    CHECK_RESOLVED(job.profile, ".", "NULL");
  }
  hb_job_free(&job);
  char *sets[] = {"output.file=\"null\"", "run.profile='~'"};
  rc = parse(min_job, sets, 2, &job);
  CHECK(rc == 0, "quoted nulls in --set: rc %d, %s: %s", rc, hb_error_where(), hb_error_what());
  if (!rc) {
    CHECK_RESOLVED(job.output_file, ".", "null");
    CHECK_RESOLVED(job.profile, ".", "~");
  }
  hb_job_free(&job);
  hb_error_clear();
}

/* ---- typed parameters --------------------------------------------------------- */

static const hb_node *kernel_node(const hb_job *job, size_t i) {
  return job->kernels && i < job->kernels->n ? job->kernels->kids[i] : NULL;
}

/* The kernel i of the job, bound to its op's table. */
static const hb_params *kernel_params(const hb_job *job, size_t i) {
  const hb_node *k = kernel_node(job, i);
  const hb_kernel_def *def = k ? hb_kernel_find(hb_node_child(k, "op")->text) : NULL;
  const hb_params *p = NULL;
  int rc = def ? hb_params_bind(k, def->params, &p) : -1;
  CHECK(rc == 0 && p, "kernel %zu: bind rc %d (%s: %s)", i, rc, hb_error_where(), hb_error_what());
  return p;
}

static void check_defaults(const char *op, const hb_param_spec *table) {
  char buf[256];
  for (const hb_param_spec *q = table; q && q->name; q++) {
    if (q->sub) check_defaults(op, q->sub);
    if (!q->has_dflt) continue;
    CHECK(!q->required, "%s.%s: required with a default", op, q->name);
    if (q->type == HB_P_ENUM || (q->type == HB_P_INT && q->dflt.s)) {
      char choices[256], want[128];
      snprintf(choices, sizeof choices, "|%s|", q->choices ? q->choices : "");
      snprintf(want, sizeof want, "|%s|", q->dflt.s ? q->dflt.s : "(null)");
      CHECK(strstr(choices, want) != NULL, "%s.%s: default '%s' is not one of %s", op, q->name,
            q->dflt.s ? q->dflt.s : "(null)", q->choices ? q->choices : "(none)");
    }
    CHECK(hb_param_default_text(q, buf, sizeof buf) != NULL, "%s.%s: a default that cannot be printed", op, q->name);
  }
}

static void test_typed_defaults(void) {
  /* the job's own tables: defaults typed, given values typed */
  hb_job job;
  int rc = parse(min_job, NULL, 0, &job);
  CHECK(rc == 0, "minimal job: rc %d, %s: %s", rc, hb_error_where(), hb_error_what());
  if (!rc) {
    CHECK(job.params && job.input && job.output && job.run, "the job's parameters are bound");
    CHECK_INT(hb_param_bool(job.output, "overwrite"), 0);
    CHECK_INT(hb_param_bool(job.output, "previews"), 1);
    CHECK_STR(hb_param_str(job.output, "compression"), "gzip");
    CHECK_INT(hb_param_given(job.output, "previews"), 0);
    /* no run section: a map of defaults all the same */
    CHECK_INT(hb_param_given(job.params, "run"), 0);
    CHECK_STR(hb_param_word(job.run, "block"), "auto");
    CHECK_INT(hb_param_int(job.run, "threads"), 1);
    CHECK_INT(hb_param_bool(job.run, "checkpoint"), 1);
    CHECK_STR(hb_param_str(job.run, "progress"), "auto");
    CHECK(hb_param_str(job.run, "profile") == NULL, "run.profile: no default, NULL");
    CHECK(hb_param_node(job.run, "mpiio_hints") == NULL, "run.mpiio_hints: absent, NULL");
    CHECK(hb_param_str(job.input, "signal") == NULL, "input.signal: absent, NULL");
    CHECK_INT(hb_param_count(job.input, "axes"), 0);
    CHECK_INT(hb_params_misused(job.params), 0);
    CHECK_INT(hb_error_code(), 0);
  }
  hb_job_free(&job);

  /* a kernel's table: the defaults of the rows, and the given values */
  static const char dec_job[] = MIN_HEAD
      "kernels:\n"
      "  - {name: d, op: decomposition, components: 3}\n"
      "  - {name: n, op: decomposition, components: 2, algorithm: nmf, max_iter: 50, tol: 0.5}\n"
      "  - {name: bf, op: virtual_image, detector: {shape: circle, center: [5, 5], radius: 2}}\n";
  rc = parse(dec_job, NULL, 0, &job);
  CHECK(rc == 0, "decomposition job: rc %d, %s: %s", rc, hb_error_where(), hb_error_what());
  if (!rc) {
    const hb_params *d = kernel_params(&job, 0), *n = kernel_params(&job, 1);
    CHECK_INT(hb_param_int(d, "components"), 3);
    CHECK_STR(hb_param_str(d, "algorithm"), "svd");
    CHECK_INT(hb_param_int(d, "max_iter"), 200);
    CHECK(hb_param_float(d, "tol") == 1e-4, "tol default %g, expected 1e-4", hb_param_float(d, "tol"));
    CHECK_INT(hb_param_int(d, "n_iter"), 7);
    CHECK_INT(hb_param_int(d, "oversampling"), 10);
    CHECK(hb_param_float(d, "bss_tol") == 1e-10, "bss_tol default %g", hb_param_float(d, "bss_tol"));
    CHECK_INT(hb_param_bool(d, "bss"), 0);
    CHECK_INT(hb_param_given(d, "max_iter"), 0);
    CHECK(hb_param_map(d, "navigation_mask") == NULL && hb_param_str(d, "navigation_mask") == NULL,
          "an absent mask is neither a map nor a path");
    CHECK_INT(hb_param_int(n, "max_iter"), 50);
    CHECK(hb_param_float(n, "tol") == 0.5, "tol given %g, expected 0.5", hb_param_float(n, "tol"));
    CHECK_INT(hb_param_given(n, "max_iter"), 1);
    /* binding again gives the same object; another table is a bug */
    const hb_params *again = NULL;
    CHECK(hb_params_bind(kernel_node(&job, 0), hb_kernel_find("decomposition")->params, &again) == 0 && again == d,
          "a second bind must return the same parameters");
    hb_error_clear();
    rc = hb_params_bind(kernel_node(&job, 0), hb_kernel_find("sum")->params, &again);
    CHECK(rc == HB_EINTERNAL && hb_error_code() == HB_EINTERNAL, "bind to another table: rc %d", rc);
    hb_error_clear();
    /* the detector of the third kernel: a nested map, its enum default */
    const hb_params *bf = kernel_params(&job, 2), *det = hb_param_map(bf, "detector");
    CHECK(det != NULL, "detector parameters");
    CHECK_STR(hb_param_str(det, "shape"), "circle");
    CHECK_STR(hb_param_str(det, "units"), "px");
    double c[2] = {0, 0};
    CHECK_INT(hb_param_numbers(det, "center", c), 2);
    CHECK(c[0] == 5 && c[1] == 5, "center [%g, %g]", c[0], c[1]);
    CHECK_INT(hb_param_numbers(det, "at", c), 0);
    CHECK(hb_param_float(det, "radius") == 2, "radius %g", hb_param_float(det, "radius"));
  }
  hb_job_free(&job);

  /* the documentation is printed from the typed default: written once */
  char buf[256];
  const hb_param_spec *dec = hb_kernel_find("decomposition")->params;
  for (const hb_param_spec *r = dec; r->name; r++) {
    const char *t = hb_param_default_text(r, buf, sizeof buf);
    if (!strcmp(r->name, "tol")) CHECK_STR(t, "1e-4");
    if (!strcmp(r->name, "bss_tol")) CHECK_STR(t, "1e-10");
    if (!strcmp(r->name, "max_iter")) CHECK_STR(t, "200");
    if (!strcmp(r->name, "n_iter")) CHECK_STR(t, "7, or 4 when k >= 0.1 min(N, M)");
    if (!strcmp(r->name, "bss")) CHECK_STR(t, "false");
    if (!strcmp(r->name, "algorithm")) CHECK_STR(t, "svd");
    if (!strcmp(r->name, "components")) CHECK(t == NULL, "components has no default");
  }
  /* every default of every table (nested ones too) is a value its own row accepts */
  for (const hb_kernel_def *const *d = hb_kernel_table; *d; d++) check_defaults((*d)->op, (*d)->params);
}

/* Where each value is, and where a default is (its map). */
static void test_where(void) {
  static const char t[] = MIN_HEAD
      "kernels:\n"
      "  - name: bf\n"
      "    op: virtual_image\n"
      "    detector: {shape: circle, center: [5, 5], radius: 2}\n"
      "run:\n"
      "  threads: 3\n";
  hb_job job;
  int rc = parse(t, NULL, 0, &job);
  CHECK(rc == 0, "where job: rc %d, %s: %s", rc, hb_error_where(), hb_error_what());
  if (!rc) {
    CHECK_STR(hb_param_where(job.run, "threads"), pos_of(t, "3\n", 0));
    CHECK_STR(hb_param_where_key(job.run, "threads"), pos_of(t, "threads", 0));
    CHECK_STR(hb_param_where(job.run, "checkpoint"), pos_of(t, "run:", 0)); /* defaulted: at run */
    CHECK_STR(hb_params_where(job.run), pos_of(t, "run:", 0));
    CHECK_STR(hb_param_where(job.output, "file"), pos_of(t, "out.hspy", 0));
    CHECK_STR(hb_param_where(job.output, "previews"), pos_of(t, "output:", 0));
    CHECK_STR(hb_param_where(job.params, "version"), pos_of(t, "1\n", 0));
    const hb_params *bf = kernel_params(&job, 0), *det = hb_param_map(bf, "detector");
    CHECK_STR(hb_param_where(det, "radius"), pos_of(t, "2}", 0));
    CHECK_STR(hb_param_where(det, "center"), pos_of(t, "[5, 5]", 0));
    CHECK_STR(hb_param_where(det, "units"), pos_of(t, "detector", 0)); /* defaulted: at the detector's key */
    CHECK_STR(hb_param_where(bf, "detector"), pos_of(t, "{shape", 0));
    CHECK_STR(hb_param_text(det, "radius"), "2");
    CHECK(hb_param_text(det, "units") == NULL, "a default has no text");
    CHECK_INT(hb_error_code(), 0);
  }
  hb_job_free(&job);
  /* no run section: its defaults point at the job */
  rc = parse(min_job, NULL, 0, &job);
  if (!rc) CHECK_STR(hb_param_where(job.run, "threads"), "job.yaml:1:1");
  hb_job_free(&job);
  /* a value from --set is at its --set; a list of maps gives its items */
  char *sets[] = {"run.threads=4"};
  rc = parse(full_job, sets, 1, &job);
  CHECK(rc == 0, "full job + --set: rc %d, %s: %s", rc, hb_error_where(), hb_error_what());
  if (!rc) {
    CHECK_STR(hb_param_where(job.run, "threads"), "--set run.threads=4");
    CHECK_INT(hb_param_int(job.run, "threads"), 4);
    CHECK_INT(hb_param_count(job.input, "axes"), 2);
    const hb_params *x = hb_param_item(job.input, "axes", 1);
    CHECK(x && hb_param_float(x, "scale") == 0.25 && hb_param_float(x, "offset") == 1.5, "axis 1: scale, offset");
    CHECK_STR(hb_param_str(x, "name"), "x");
    CHECK_STR(hb_param_where(x, "units"), pos_of(full_job, "nm", 1));
    CHECK_INT(hb_param_int(job.run, "block"), 16);
    CHECK(hb_param_word(job.run, "block") == NULL, "block 16 is a number, not a word");
  }
  hb_job_free(&job);
  hb_error_clear();
}

/* A programming mistake (a name not in the table, the accessor of another
 * type) is HB_EINTERNAL, never a silent 0. */
static int misusing_plan(hb_kernel *k, const hb_stream *in, const hb_params *p) {
  (void)k, (void)in;
  return hb_param_int(p, "threshold") > 0 ? 0 : 0; /* threshold is a number, not an integer */
}
static int correct_plan(hb_kernel *k, const hb_stream *in, const hb_params *p) {
  (void)in;
  k->nout = (int)hb_param_float(p, "threshold"); /* somewhere to put it */
  return 0;
}
/* What the engine does with a kernel's map: bind it to the table, plan,
 * then fail if the plan misused an accessor. */
static int plan_as_engine(hb_kernel *k, const hb_stream *in) {
  const hb_params *p;
  HB_CALL(hb_params_bind(k->spec, k->def->params, &p));
  HB_CALL(k->def->plan(k, in, p));
  return hb_params_misused(p);
}

static void test_misuse(void) {
  static const struct {
    const char *what;
    int which;
  } cases[] = {{"int of a path", 0}, {"bool of a name not in the table", 1}, {"int of a word", 2},
               {"float of an integer", 3}, {"str of a boolean", 4}, {"map of a scalar", 5},
               {"item past the end", 6}, {"numbers of a string", 7}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    hb_job job;
    int rc = parse(full_job, NULL, 0, &job);
    CHECK(rc == 0, "full job: rc %d", rc);
    if (rc) {
      hb_job_free(&job);
      continue;
    }
    hb_error_clear();
    long long v = -1;
    const void *ptr = &v;
    switch (cases[c].which) {
      case 0: v = hb_param_int(job.output, "file"); break;
      case 1: v = hb_param_bool(job.run, "nope"); break;
      case 2: { /* block: auto (a word) read as an integer */
        hb_job j2;
        hb_job_free(&job);
        rc = parse(min_job, NULL, 0, &j2);
        job = j2;
        hb_error_clear();
        v = hb_param_int(job.run, "block");
        break;
      }
      case 3: v = (long long)hb_param_float(job.run, "threads"); break;
      case 4: ptr = hb_param_str(job.run, "checkpoint"); break;
      case 5: ptr = hb_param_map(job.run, "threads"); break;
      case 6: ptr = hb_param_item(job.input, "axes", 2); break;
      case 7: v = hb_param_numbers(job.input, "signal", NULL); break;
    }
    CHECK(hb_error_code() == HB_EINTERNAL, "%s: expected HB_EINTERNAL, got %d (%s)", cases[c].what, hb_error_code(),
          hb_error_what());
    CHECK(v == 0 || ptr == NULL, "%s: the accessor must return 0 or NULL", cases[c].what);
    CHECK(hb_params_misused(job.params) == HB_EINTERNAL, "%s: hb_params_misused must report it", cases[c].what);
    hb_job_free(&job);
    hb_error_clear();
  }

  /* a plan that misuses an accessor fails, through the adapter */
  static const hb_param_spec table[] = {
      {"threshold", HB_P_FLOAT, HB_DEFAULT_FLOAT(8), .help = "a number"},
      HB_PARAM_END,
  };
  static const hb_kernel_def bad_def = {.op = "bad", .params = table, .plan = misusing_plan};
  static const hb_kernel_def good_def = {.op = "good", .params = table, .plan = correct_plan};
  hb_node *spec = NULL;
  int rc = hb_yaml_parse("k.yaml", "{name: k, op: bad}", 18, &spec);
  CHECK(rc == 0 && spec, "k.yaml: rc %d", rc);
  if (spec) {
    hb_kernel k = {.def = &bad_def, .name = "k", .spec = spec};
    hb_stream in;
    memset(&in, 0, sizeof in);
    hb_error_clear();
    rc = plan_as_engine(&k, &in);
    CHECK(rc == HB_EINTERNAL && hb_error_code() == HB_EINTERNAL, "a misusing plan: rc %d, %s", rc, hb_error_what());
    CHECK_CONTAINS(hb_error_what(), "threshold");
    hb_node_free(spec);
    hb_error_clear();
    /* the same table read right: the default, no error (a fresh tree: the
     * misuse stays with the parameters it happened on) */
    rc = hb_yaml_parse("k.yaml", "{name: k, op: good}", 19, &spec);
    hb_kernel g = {.def = &good_def, .name = "k", .spec = spec};
    rc = rc ? rc : plan_as_engine(&g, &in);
    CHECK(rc == 0 && g.nout == 8, "a correct plan: rc %d, threshold %d", rc, g.nout);
    hb_node_free(spec);
    hb_error_clear();
  }
}

/* One rule for every path: written in the job, against the job's folder;
 * typed on the command line (--set), against the current folder; absolute
 * as written; the folder made real when it exists. */
static void test_paths(void) {
  char jdir[128], jpath[160], cwd[PATH_MAX], want[PATH_MAX + 64];
  snprintf(jdir, sizeof jdir, "%s/jobs/a", tmpdir);
  snprintf(jpath, sizeof jpath, "%s/job.yaml", jdir);
  char *rtmp = realpath(tmpdir, NULL);
  if (!rtmp || !getcwd(cwd, sizeof cwd) || chdir(tmpdir)) {
    CHECK(0, "cannot enter %s", tmpdir);
    free(rtmp);
    return;
  }
  static const char paths_job[] =
      "version: 1\n"
      "input: {file: in.hspy}\n"
      "output: {file: out/res.hspy}\n"
      "kernels:\n"
      "  - {name: m, op: virtual_image, detector: {shape: mask, file: m.h5, dataset: /m}}\n"
      "  - {name: d, op: decomposition, components: 2, algorithm: nmf, init: custom, init_file: w.h5,\n"
      "     navigation_mask: nav.h5:/masks/nav, signal_mask: sig.hspy}\n"
      "run: {profile: t.json}\n";
  /* written in the job: against jobs/a, whatever the current folder */
  hb_job job;
  int rc = hb_job_parse(jpath, paths_job, strlen(paths_job), NULL, 0, &job);
  CHECK(rc == 0, "paths job: rc %d, %s: %s", rc, hb_error_where(), hb_error_what());
  if (!rc) {
    snprintf(want, sizeof want, "%s/jobs/a/in.hspy", rtmp);
    CHECK_STR(job.input_file, want);
    CHECK_STR(job.input_file_as_written, "in.hspy");
    snprintf(want, sizeof want, "%s/jobs/a/out/res.hspy", rtmp); /* out/ does not exist: kept */
    CHECK_STR(job.output_file, want);
    snprintf(want, sizeof want, "%s/jobs/a/t.json", rtmp);
    CHECK_STR(job.profile, want);
    const hb_params *m = kernel_params(&job, 0), *d = kernel_params(&job, 1);
    snprintf(want, sizeof want, "%s/jobs/a/m.h5", rtmp);
    CHECK_STR(hb_param_str(hb_param_map(m, "detector"), "file"), want);
    CHECK_STR(hb_param_text(hb_param_map(m, "detector"), "file"), "m.h5");
    snprintf(want, sizeof want, "%s/jobs/a/w.h5", rtmp);
    CHECK_STR(hb_param_str(d, "init_file"), want);
    snprintf(want, sizeof want, "%s/jobs/a/nav.h5", rtmp);
    CHECK_STR(hb_param_str(d, "navigation_mask"), want);
    CHECK_STR(hb_param_text(d, "navigation_mask"), "nav.h5");
    CHECK_STR(hb_param_dataset(d, "navigation_mask"), "/masks/nav");
    CHECK(hb_param_map(d, "navigation_mask") == NULL, "a mask path is not a map");
    snprintf(want, sizeof want, "%s/jobs/a/sig.hspy", rtmp);
    CHECK_STR(hb_param_str(d, "signal_mask"), want);
    CHECK(hb_param_dataset(d, "signal_mask") == NULL, "sig.hspy names no dataset");
  }
  hb_job_free(&job);
  hb_error_clear();

  /* the same keys typed on the command line: against the current folder
   * (tmpdir), not the job's */
  char *sets[] = {"input.file=in2.hspy",
                  "output.file=jobs/../res2.hspy", /* the folder made real: tmpdir/res2.hspy */
                  "run.profile=t2.json",
                  "kernels.m.detector.file=m2.h5",
                  "kernels.d.init_file=jobs/w2.h5",
                  "kernels.d.navigation_mask=nav2.h5:/n",
                  "kernels.d.signal_mask={shape: mask, file: s2.h5, dataset: /s}"};
  rc = hb_job_parse(jpath, paths_job, strlen(paths_job), sets, 7, &job);
  CHECK(rc == 0, "paths job + --set: rc %d, %s: %s", rc, hb_error_where(), hb_error_what());
  if (!rc) {
    snprintf(want, sizeof want, "%s/in2.hspy", rtmp);
    CHECK_STR(job.input_file, want);
    snprintf(want, sizeof want, "%s/res2.hspy", rtmp);
    CHECK_STR(job.output_file, want);
    snprintf(want, sizeof want, "%s/t2.json", rtmp);
    CHECK_STR(job.profile, want);
    const hb_params *m = kernel_params(&job, 0), *d = kernel_params(&job, 1);
    snprintf(want, sizeof want, "%s/m2.h5", rtmp);
    CHECK_STR(hb_param_str(hb_param_map(m, "detector"), "file"), want);
    snprintf(want, sizeof want, "%s/jobs/w2.h5", rtmp);
    CHECK_STR(hb_param_str(d, "init_file"), want);
    snprintf(want, sizeof want, "%s/nav2.h5", rtmp);
    CHECK_STR(hb_param_str(d, "navigation_mask"), want);
    CHECK_STR(hb_param_dataset(d, "navigation_mask"), "/n");
    const hb_params *sm = hb_param_map(d, "signal_mask");
    snprintf(want, sizeof want, "%s/s2.h5", rtmp);
    CHECK(sm != NULL, "a mask map from --set");
    if (sm) CHECK_STR(hb_param_str(sm, "file"), want);
  }
  hb_job_free(&job);
  hb_error_clear();

  /* absolute paths stay as written, from the job and from --set */
  char *abs_sets[] = {"output.file=/abs/x/out.hspy"};
  rc = hb_job_parse(jpath, paths_job, strlen(paths_job), abs_sets, 1, &job);
  if (!rc) CHECK_STR(job.output_file, "/abs/x/out.hspy");
  else CHECK(0, "absolute --set: rc %d: %s", rc, hb_error_what());
  hb_job_free(&job);
  hb_error_clear();

  /* hb_path_resolve itself: a node of the job, a node of a --set */
  hb_node *root = NULL;
  rc = hb_yaml_parse(jpath, "a: 1\n", 5, &root);
  if (!rc && root) {
    char *p = hb_path_resolve(root, "../b/../x.h5"); /* jobs/b does not exist, so neither does b/..: kept */
    snprintf(want, sizeof want, "%s/jobs/a/../b/../x.h5", rtmp);
    CHECK_STR(p, want);
    free(p);
    p = hb_path_resolve(root, "../x.h5"); /* jobs/a/.. exists: tmpdir/jobs */
    snprintf(want, sizeof want, "%s/jobs/x.h5", rtmp);
    CHECK_STR(p, want);
    free(p);
    /* an output folder still to be made: its deepest existing folder made real */
    p = hb_path_resolve(root, "../../results/run1/o.hspy");
    snprintf(want, sizeof want, "%s/results/run1/o.hspy", rtmp);
    CHECK_STR(p, want);
    free(p);
    char label[] = "--set x=../y.h5";
    CHECK(hb_node_set_path(root, label) == 0, "--set x");
    const hb_node *x = hb_node_child(root, "x");
    p = x ? hb_path_resolve(x, "../y.h5") : NULL; /* tmpdir/.. */
    char *up = realpath("..", NULL);
    snprintf(want, sizeof want, "%s/y.h5", up && strcmp(up, "/") ? up : "");
    CHECK_STR(p, want);
    free(up);
    free(p);
  }
  hb_node_free(root);
  /* a job given by a relative path: its folder from the current one */
  rc = hb_job_parse("jobs/a/job.yaml", paths_job, strlen(paths_job), NULL, 0, &job);
  if (!rc) {
    snprintf(want, sizeof want, "%s/jobs/a/in.hspy", rtmp);
    CHECK_STR(job.input_file, want);
    snprintf(want, sizeof want, "%s/jobs/a", rtmp);
    CHECK_STR(job.dir, want);
  } else {
    CHECK(0, "jobs/a/job.yaml: rc %d: %s", rc, hb_error_what());
  }
  hb_job_free(&job);
  hb_error_clear();
  /* an empty path is no file, in the job or in a mask string */
  {
    static const char t1[] = "version: 1\ninput: {file: in.hspy}\noutput: {file: ''}\n" MIN_KERNELS;
    static const char t2[] = MIN_HEAD "kernels:\n  - {name: d, op: decomposition, components: 2, signal_mask: ':/x'}\n";
    EXPECT_ERROR(t1, pos_of(t1, "''", 0), "'file' is empty");
    EXPECT_ERROR(t2, pos_of(t2, "':/x'", 0), "'signal_mask' names no file");
  }
  CHECK(chdir(cwd) == 0, "cannot return to %s", cwd);
  free(rtmp);
}

/* A parser that expands the bomb would run for hours: fail instead of hanging. */
static void bomb_timeout(int sig) {
  (void)sig;
  static const char msg[] = "FAIL test_job.c: a hostile document was not refused within 10 s\n"
                            "test_job: aborted, 1 failed\n";
  if (write(2, msg, sizeof msg - 1) < 0) _exit(1);
  _exit(1);
}

static void test_bounds(void) {
  hb_job job;
  signal(SIGALRM, bomb_timeout);
  alarm(60);
  /* billion laughs: 10 levels of 10 aliases each would expand to 10^10 nodes */
  {
    char text[8192];
    size_t len = (size_t)snprintf(text, sizeof text, "version: 1\nl0: &l0 [%s]\n",
                                  "lol, lol, lol, lol, lol, lol, lol, lol, lol, lol");
    for (int i = 1; i <= 9; i++) {
      len += (size_t)snprintf(text + len, sizeof text - len, "l%d: &l%d [", i, i);
      for (int j = 0; j < 10; j++)
        len += (size_t)snprintf(text + len, sizeof text - len, "*l%d%s", i - 1, j < 9 ? ", " : "]\n");
    }
    len += (size_t)snprintf(text + len, sizeof text - len, "input: {file: *l9}\n");
    double t0 = seconds();
    int rc = parse(text, NULL, 0, &job);
    double dt = seconds() - t0;
    CHECK(rc == HB_EINVALID, "billion laughs: expected HB_EINVALID, got %d (%s)", rc, hb_error_what());
    CHECK(dt < 1.0, "billion laughs took %.3f s; must be refused in under 1 s", dt);
    CHECK(strstr(hb_error_what(), "nodes") != NULL, "billion laughs: refused for its size, got \"%s\"", hb_error_what());
    hb_job_free(&job);
    hb_error_clear();
    /* the same bomb inside a --set value */
    char *s[] = {"run.x=[*a]"};
    rc = parse(min_job, s, 1, &job);
    CHECK(rc == HB_EINVALID, "an alias to nothing in a --set value: expected HB_EINVALID, got %d", rc);
    hb_job_free(&job);
    hb_error_clear();
  }
  /* text over HB_YAML_MAX_BYTES; exactly at the limit is fine */
  {
    size_t n = HB_YAML_MAX_BYTES + 1;
    char *big = malloc(n + 1);
    memcpy(big, min_job, strlen(min_job));
    size_t at = strlen(min_job);
    memcpy(big + at, "# ", 2);
    memset(big + at + 2, 'x', n - at - 3);
    big[n - 1] = '\n';
    big[n] = 0;
    double t0 = seconds();
    int rc = hb_job_parse("job.yaml", big, n, NULL, 0, &job);
    CHECK(rc == HB_EINVALID, "%zu-byte job: expected HB_EINVALID, got %d", n, rc);
    CHECK(seconds() - t0 < 1.0, "an oversized job must be refused quickly");
    CHECK(strstr(hb_error_what(), "limit") || strstr(hb_error_what(), "larger"),
          "oversized: message \"%s\" should name the limit", hb_error_what());
    hb_job_free(&job);
    hb_error_clear();
    /* drop one 'x': HB_YAML_MAX_BYTES exactly */
    memmove(big + n - 3, big + n - 2, 3);
    rc = hb_job_parse("job.yaml", big, n - 1, NULL, 0, &job);
    CHECK(rc == 0, "a job of exactly HB_YAML_MAX_BYTES must parse: rc %d, %s", rc, hb_error_what());
    hb_job_free(&job);
    hb_error_clear();
    free(big);
  }
  /* nesting deeper than HB_YAML_MAX_DEPTH (as a value of an unknown key:
   * the depth check must come before the key checks) */
  {
    char text[1024];
    int depth = HB_YAML_MAX_DEPTH + 36;
    size_t len = (size_t)snprintf(text, sizeof text, "%srun: ", min_job);
    for (int i = 0; i < depth; i++) text[len++] = '[';
    for (int i = 0; i < depth; i++) text[len++] = ']';
    text[len++] = '\n';
    text[len] = 0;
    double t0 = seconds();
    int rc = parse(text, NULL, 0, &job);
    CHECK(rc == HB_EINVALID, "depth %d: expected HB_EINVALID, got %d", depth, rc);
    CHECK(strstr(hb_error_what(), "nesting") != NULL, "depth %d: expected a nesting error, got \"%s\"", depth,
          hb_error_what());
    CHECK(seconds() - t0 < 1.0, "deep nesting must be refused quickly");
    hb_job_free(&job);
    hb_error_clear();
    /* a much deeper one, still well under HB_YAML_MAX_BYTES: libyaml's own
     * loader is quadratic in the depth of flow collections (about 4 s here
     * when the whole document is loaded before the depth is checked) */
    enum { DEEP = 50000 };
    char *deep = malloc(2 * DEEP + 1);
    size_t m = 0;
    for (int i = 0; i < DEEP; i++) deep[m++] = '[';
    for (int i = 0; i < DEEP; i++) deep[m++] = ']';
    deep[m] = 0;
    t0 = seconds();
    rc = parse(deep, NULL, 0, &job);
    double dt = seconds() - t0;
    CHECK(rc == HB_EINVALID, "depth %d: expected HB_EINVALID, got %d", DEEP, rc);
    CHECK(dt < 1.0, "depth %d (%d bytes) took %.2f s to refuse; must be under 1 s", DEEP, 2 * DEEP, dt);
    hb_job_free(&job);
    hb_error_clear();
    free(deep);
    /* well inside the limit is fine for the YAML reader */
    len = 0;
    for (int i = 0; i < HB_YAML_MAX_DEPTH - 4; i++) text[len++] = '[';
    for (int i = 0; i < HB_YAML_MAX_DEPTH - 4; i++) text[len++] = ']';
    hb_node *root = NULL;
    rc = hb_yaml_parse("deep.yaml", text, len, &root);
    CHECK(rc == 0 && root, "depth %d must parse: rc %d %s", HB_YAML_MAX_DEPTH - 4, rc, hb_error_what());
    hb_node_free(root);
    hb_error_clear();
  }
  /* a wide document over HB_YAML_MAX_NODES without aliases */
  {
    size_t items = HB_YAML_MAX_NODES + 10;
    char *wide = malloc(items * 3 + 64);
    size_t len = (size_t)sprintf(wide, "x: [");
    for (size_t i = 0; i < items; i++) len += (size_t)sprintf(wide + len, "%s1", i ? "," : "");
    len += (size_t)sprintf(wide + len, "]\n");
    if (len <= HB_YAML_MAX_BYTES) {
      hb_node *root = NULL;
      int rc = hb_yaml_parse("wide.yaml", wide, len, &root);
      CHECK(rc == HB_EINVALID, "%zu nodes: expected HB_EINVALID, got %d", items, rc);
      hb_node_free(root);
      hb_error_clear();
    }
    free(wide);
  }
  /* aliases are counted as the tree copies them, in nodes and in text:
   * exactly HB_YAML_MAX_NODES or HB_YAML_MAX_EXPANDED parses, one more is
   * refused at the alias that crosses the limit, before any copy is made */
  {
    enum { K = 99, M = 990 }; /* an anchored list of K scalars, aliased M times */
    for (int extra = 0; extra <= 1; extra++) {
      /* nodes: the root, a (1 + K), c (1 + P), b (1 + M (1 + K)) */
      size_t pad = HB_YAML_MAX_NODES - 4 - K - (size_t)M * (1 + K) + (size_t)extra;
      char *text = malloc(8 * (K + M + pad) + 64);
      size_t len = (size_t)sprintf(text, "a: &a [");
      for (int i = 0; i < K; i++) len += (size_t)sprintf(text + len, "%sx", i ? "," : "");
      len += (size_t)sprintf(text + len, "]\nc: [");
      for (size_t i = 0; i < pad; i++) len += (size_t)sprintf(text + len, "%sy", i ? "," : "");
      len += (size_t)sprintf(text + len, "]\nb: [");
      for (int i = 0; i < M; i++) len += (size_t)sprintf(text + len, "%s*a", i ? ", " : "");
      len += (size_t)sprintf(text + len, "]\n");
      hb_node *root = NULL;
      hb_error_clear();
      double t0 = seconds();
      int rc = hb_yaml_parse("job.yaml", text, len, &root);
      if (!extra) {
        CHECK(rc == 0, "exactly %d nodes through aliases must parse: rc %d, %s: %s", HB_YAML_MAX_NODES, rc,
              hb_error_where(), hb_error_what());
      } else {
        CHECK(rc == HB_EINVALID, "%d nodes through aliases: expected HB_EINVALID, got %d", HB_YAML_MAX_NODES + 1, rc);
        CHECK_STR(hb_error_where(), pos_of(text, "*a", M - 1));
        CHECK(strstr(hb_error_what(), "more than 100000 YAML nodes once this alias is expanded") != NULL,
              "nodes: got \"%s\"", hb_error_what());
        CHECK(seconds() - t0 < 1.0, "an alias over the node limit must be refused quickly");
      }
      hb_node_free(root);
      hb_error_clear();
      free(text);
    }
    enum { L = 100000, N = 334 }; /* a scalar of L bytes, aliased N times */
    for (int extra = 0; extra <= 1; extra++) {
      /* text: the keys s, p, b (3 bytes), the scalar N + 1 times, the pad */
      size_t pad = HB_YAML_MAX_EXPANDED - 3 - (size_t)(N + 1) * L + (size_t)extra;
      char *text = malloc(L + pad + 8 * N + 64);
      size_t len = (size_t)sprintf(text, "s: &s ");
      memset(text + len, 'x', L), len += L;
      len += (size_t)sprintf(text + len, "\np: ");
      memset(text + len, 'y', pad), len += pad;
      len += (size_t)sprintf(text + len, "\nb: [");
      for (int i = 0; i < N; i++) len += (size_t)sprintf(text + len, "%s*s", i ? ", " : "");
      len += (size_t)sprintf(text + len, "]\n");
      hb_node *root = NULL;
      hb_error_clear();
      double t0 = seconds();
      int rc = hb_yaml_parse("job.yaml", text, len, &root);
      if (!extra) {
        CHECK(rc == 0, "exactly %d bytes through aliases must parse: rc %d, %s: %s", HB_YAML_MAX_EXPANDED, rc,
              hb_error_where(), hb_error_what());
        CHECK(root && root->n == 3 && root->kids[2]->n == N && strlen(root->kids[2]->kids[N - 1]->text) == L,
              "every alias of the %d-byte scalar is a copy", L);
      } else {
        CHECK(rc == HB_EINVALID, "%d bytes through aliases: expected HB_EINVALID, got %d", HB_YAML_MAX_EXPANDED + 1,
              rc);
        CHECK_STR(hb_error_where(), pos_of(text, "*s", N - 1));
        CHECK(strstr(hb_error_what(), "aliases expand the job to more than 32 MiB of text") != NULL,
              "expanded text: got \"%s\"", hb_error_what());
        CHECK(seconds() - t0 < 1.0, "an alias over the text limit must be refused quickly");
      }
      hb_node_free(root);
      hb_error_clear();
      free(text);
    }
    /* an alias inside its own anchor */
    hb_node *root = NULL;
    int rc = hb_yaml_parse("job.yaml", "a: &a [x, *a]\n", 14, &root);
    CHECK(rc == HB_EINVALID && !strcmp(hb_error_where(), "job.yaml:1:11") && strstr(hb_error_what(), "cycle"),
          "a cycle: rc %d, %s: %s", rc, hb_error_where(), hb_error_what());
    hb_node_free(root);
    hb_error_clear();
  }
  alarm(0);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  snprintf(tmpdir, sizeof tmpdir, "/tmp/hb_test_job_XXXXXX");
  char sub[128];
  if (!mkdtemp(tmpdir) || (snprintf(sub, sizeof sub, "%s/jobs", tmpdir), mkdir(sub, 0700)) ||
      (snprintf(sub, sizeof sub, "%s/jobs/a", tmpdir), mkdir(sub, 0700))) {
    perror("test_job: temporary folder");
    MPI_Finalize();
    return 1;
  }
  test_valid();
  test_errors();
  test_set();
  test_nulls();
  test_typed_defaults();
  test_where();
  test_misuse();
  test_paths();
  test_bounds();
  rmdir(sub);
  snprintf(sub, sizeof sub, "%s/jobs", tmpdir);
  rmdir(sub);
  rmdir(tmpdir);
  int rc = TEST_DONE("test_job");
  MPI_Finalize();
  return rc;
}
