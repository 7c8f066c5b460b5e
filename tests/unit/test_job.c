/* hb_job_parse (from text, path "job.yaml") and --set (hb_node_set_path via
 * the sets argument).
 *
 *  - a job with every section parses and every field is right;
 *  - every kind of job error is HB_EINVALID at exactly "job.yaml:LINE:COL" of
 *    the offending key or value, with a useful message;
 *  - --set by key path, by kernel name and by index; errors name the --set;
 *  - a bare YAML null (~, null, nothing) is no file name; quoted, it is one;
 *  - hostile input (billion laughs, huge text, deep nesting) is refused fast,
 *    and aliases are bounded by the nodes and the text they expand to. */
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
#include "hb_job.h"
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
    const char *t = MIN_HEAD "kernels:\n  - name: m\n    op: mean\n    axes: everything\n";
    EXPECT_ERROR(t, "job.yaml:7:11", "navigation|signal");
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
 * error at the value or at the --set, never a file called `~` or `null`
 * (issue 14, item 13); quoted, it is an ordinary name. */
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
  test_bounds();
  rmdir(sub);
  snprintf(sub, sizeof sub, "%s/jobs", tmpdir);
  rmdir(sub);
  rmdir(tmpdir);
  int rc = TEST_DONE("test_job");
  MPI_Finalize();
  return rc;
}
