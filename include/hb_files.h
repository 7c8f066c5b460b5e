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

/* A file named in the job at node n: relative to the job file's folder, or
 * to the current folder when n came from --set. */
void hb_file_resolve(const hb_node *n, const char *file, char *out, size_t cap);

/* Local: 0 if `path` is a regular file (following links), else an error
 * naming `where` (a job position).  Remembers the path. */
int hb_file_check_read(const char *path, const char *where);
int hb_files_read_count(void);
const char *hb_files_read_path(int i);
void hb_files_forget(void);

#endif
