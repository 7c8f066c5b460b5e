/* Direct I/O for the bulk of the output's data (directio.c). */
#ifndef HB_DIRECTIO_H
#define HB_DIRECTIO_H

/* Large writes to the file at path (one file at a time) go past the page
 * cache from now on.  -1: the file system refuses O_DIRECT, or no memory;
 * writes stay buffered, which is not an error. */
int hb_directio_watch(const char *path);
/* Back to buffered writes; the bytes written past the page cache since the
 * watch began. */
unsigned long long hb_directio_unwatch(void);

#endif
