/* Files a job reads (hb_files.h). */
#include "hb_files.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hb_error.h"

static char *read_files[HB_MAX_READ_FILES];
static int nread;

void hb_file_resolve(const hb_node *n, const char *file, char *out, size_t cap) {
  const char *src = n->src, *slash = strrchr(src, '/');
  if (file[0] == '/' || !slash || !strncmp(src, "--set", 5))
    snprintf(out, cap, "%s", file);
  else
    snprintf(out, cap, "%.*s/%s", (int)(slash - src), src, file);
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
