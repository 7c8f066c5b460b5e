/* Files a job reads besides its input (masks, initial factors, ...).
 *
 * Every such file is opened through hb_file_check_read: it must be a
 * regular file (a FIFO or a device would block the run, or never end), and
 * it is remembered so that no file the run writes can replace it
 * (output.c). */
#ifndef HB_FILES_H
#define HB_FILES_H

#include <stddef.h>

#include "hb_yaml.h"

#define HB_MAX_READ_FILES 64

/* THE rule for every path a user writes (docs/job-format.md, "Paths"):
 * absolute, it is taken as written; relative, it resolves against the job
 * file's folder when it is written in the job, and against the current
 * folder when it was typed on the command line (`--set`, `--profile`: node
 * n came from a --set).  "configs/../data/x.hspy" then names the file as the
 * user thinks of it: the path's folder, when it exists, is replaced by its
 * realpath (not a lexical cleanup, so symlinks stay right).  malloc'd; NULL
 * when out of memory.  Parameters of type HB_P_PATH are resolved with it
 * when they are bound (hb_params.h). */
char *hb_path_resolve(const hb_node *n, const char *path);
/* The folder that a job file's relative paths resolve against: the realpath
 * of the job path's folder (that folder as given when it does not exist).
 * malloc'd; NULL when out of memory. */
char *hb_path_job_folder(const char *job_path);

/* Local: 0 if `path` is a regular file (following links), else an error
 * naming `where` (a job position).  Remembers the path. */
int hb_file_check_read(const char *path, const char *where);
int hb_files_read_count(void);
const char *hb_files_read_path(int i);
void hb_files_forget(void);

#endif
