/* Files a job reads (hb_files.h). */
#include "hb_files.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hb_error.h"

static char *read_files[HB_MAX_READ_FILES];
static int nread;

char *hb_path_job_folder(const char *job_path) {
  char *tmp = strdup(job_path);
  if (!tmp) return NULL;
  const char *folder = dirname(tmp);
  char *real = realpath(folder, NULL);
  char *out = real ? real : strdup(folder); /* a folder that does not exist (yet) is still the folder */
  free(tmp);
  return out;
}

/* "base/path" with its folder replaced by the folder's realpath; when the
 * folder does not exist (yet: an output's), by the realpath of its deepest
 * folder that exists, followed by the rest as written, unless that rest
 * holds "." or ".." (which only the missing folders could resolve): then
 * the path is kept as joined. */
static char *join_clean(const char *base, const char *path) {
  size_t n = strlen(base) + strlen(path) + 2;
  char *out = malloc(n), *dir = malloc(n);
  if (!out || !dir) {
    free(out);
    free(dir);
    return NULL;
  }
  snprintf(out, n, "%s/%s", strcmp(base, "/") ? base : "", path);
  memcpy(dir, out, n);
  char *slash = strrchr(dir, '/'), *real = NULL;
  const char *name = slash ? slash + 1 : "", *rest = "";
  if (slash && slash != dir && strcmp(name, "..") && strcmp(name, ".")) {
    *slash = 0; /* dir: the folder; out + (name - dir): its file name */
    name = out + (name - dir);
    size_t cut = strlen(dir);
    while (!(real = realpath(dir, NULL))) {
      char *up = strrchr(dir, '/');
      if (!up || up == dir || !strcmp(up + 1, ".") || !strcmp(up + 1, "..")) break;
      *up = 0;
      cut = (size_t)(up - dir);
    }
    rest = out + cut; /* "" or "/missing/folders" */
    for (const char *c = rest; real && *c; c++)
      if (c[0] == '/' && c[1] == '.' && (c[2] == '/' || (c[2] == '.' && c[3] == '/'))) {
        free(real); /* a "." or ".." after a missing folder */
        real = NULL;
      }
  }
  if (real) {
    size_t m = strlen(real) + strlen(rest) + strlen(name) + 2;
    char *clean = malloc(m);
    if (clean) {
      /* rest still ends at the file name's slash: print folder + rest + name */
      snprintf(clean, m, "%s%.*s/%s", strcmp(real, "/") ? real : "", (int)(name - 1 - rest), rest, name);
      free(out);
      out = clean;
    }
    free(real);
  }
  free(dir);
  return out;
}

char *hb_path_resolve(const hb_node *n, const char *path) {
  if (path[0] == '/') return strdup(path);
  /* --set nodes carry their assignment as their source (hb_node_set_path) */
  int typed = n && !strncmp(n->src, "--set", 5);
  char *base = typed ? getcwd(NULL, 0) : hb_path_job_folder(n ? n->src : ".");
  if (!base && typed) return strdup(path); /* no current folder (removed): the path as typed */
  if (!base) return NULL;
  char *out = strcmp(base, ".") ? join_clean(base, path) : strdup(path);
  free(base);
  return out;
}

int hb_file_check_read(const char *path, const char *where) {
  struct stat st;
  HB_CHECK(!stat(path, &st), HB_EINVALID, where, "cannot open '%s': %s", path, strerror(errno));
  HB_CHECK(S_ISREG(st.st_mode), HB_EINVALID, where, "'%s' is not a regular file (a %s); give a file", path,
           S_ISFIFO(st.st_mode)   ? "FIFO"
           : S_ISDIR(st.st_mode)  ? "folder"
           : S_ISSOCK(st.st_mode) ? "socket"
                                  : "device");
  for (int i = 0; i < nread; i++)
    if (!strcmp(read_files[i], path)) return 0;
  HB_CHECK(nread < HB_MAX_READ_FILES, HB_EINVALID, where, "the job reads more than %d files", HB_MAX_READ_FILES);
  read_files[nread] = strdup(path);
  HB_CHECK(read_files[nread], HB_EINTERNAL, "memory", "out of memory");
  nread++;
  return 0;
}

int hb_files_read_count(void) { return nread; }
const char *hb_files_read_path(int i) { return i >= 0 && i < nread ? read_files[i] : ""; }

void hb_files_forget(void) {
  while (nread) free(read_files[--nread]);
}
