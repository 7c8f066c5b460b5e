/* Direct I/O for the bulk of an output's data (docs/output.md, "Direct I/O").
 *
 * On this project's machines a buffered write of gigabytes costs more than
 * the disk does: the kernel's copy into fresh page-cache pages ran at about
 * 0.4 GB/s, three times slower than the disk takes the same writes with
 * O_DIRECT (docs/output.md).  Neither HDF5 1.10's MPI-IO driver nor Open
 * MPI's MPI-IO (OMPIO, ROMIO's UFS driver) can open a file O_DIRECT, so the
 * executable interposes pwrite, pwritev and aio_write, which OMPIO's and
 * ROMIO's POSIX back ends and HDF5's sec2 driver call (exported by
 * src/output/directio.sym, so that the MPI components Open MPI loads with
 * dlopen bind to them too), as it interposes zlib's compress2
 * (hdf5_deflate.c) and as I/O-tracing tools interpose libc's calls.
 *
 * A write to the watched file (the output's .partial, by device and inode)
 * whose page-aligned interior is at least DIRECT_MIN bytes goes past the
 * page cache: the interior through an O_DIRECT descriptor from an aligned
 * bounce buffer, the unaligned head and tail buffered.  Every other write
 * passes through unchanged.  The bytes in the file are the same either way;
 * Linux keeps the page cache coherent with direct writes (it drops the
 * cached pages of the range written).  A file system that refuses O_DIRECT
 * (at open, or with EINVAL at a write) turns the path off for the file. */
/* both names are defined below: keep the headers from renaming pwrite to
 * pwrite64 (LP64: off_t is 64 bits either way) */
#undef _FILE_OFFSET_BITS
#include "directio.h"

#include <aio.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define ALIGN ((off_t)4096)          /* a multiple of every logical block size in use */
#define DIRECT_MIN ((size_t)1 << 20) /* smaller writes stay buffered: metadata, small chunks */
#define BOUNCE_BYTES ((size_t)8 << 20)

static struct {
  pthread_mutex_t lock; /* one bounce buffer; HDF5 writes from one thread anyway */
  int fd;               /* O_DIRECT descriptor of the watched file, -1 if none */
  dev_t dev;
  ino_t ino;
  char *bounce;
  unsigned long long direct_bytes;
} watch = {PTHREAD_MUTEX_INITIALIZER, -1, 0, 0, NULL, 0};

static ssize_t (*libc_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*libc_pwritev)(int, const struct iovec *, int, off_t);
static int (*libc_aio_write)(struct aiocb *);

static void find_libc(void) {
  if (!libc_aio_write) libc_aio_write = (int (*)(struct aiocb *))dlsym(RTLD_NEXT, "aio_write");
  if (!libc_pwrite) libc_pwrite = (ssize_t (*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite");
  if (!libc_pwritev)
    libc_pwritev = (ssize_t (*)(int, const struct iovec *, int, off_t))dlsym(RTLD_NEXT, "pwritev");
}

int hb_directio_watch(const char *path) {
  hb_directio_unwatch();
  find_libc();
  struct stat st;
  int fd = open(path, O_WRONLY | O_DIRECT | O_CLOEXEC);
  if (fd < 0) return -1; /* a file system without O_DIRECT: buffered writes as before */
  char *b = NULL;
  if (fstat(fd, &st) || !libc_pwrite || !libc_pwritev || !libc_aio_write ||
      posix_memalign((void **)&b, (size_t)ALIGN, BOUNCE_BYTES)) {
    close(fd);
    free(b);
    return -1;
  }
  pthread_mutex_lock(&watch.lock);
  watch.fd = fd, watch.dev = st.st_dev, watch.ino = st.st_ino, watch.bounce = b, watch.direct_bytes = 0;
  pthread_mutex_unlock(&watch.lock);
  return 0;
}

unsigned long long hb_directio_unwatch(void) {
  pthread_mutex_lock(&watch.lock);
  unsigned long long n = watch.direct_bytes;
  if (watch.fd >= 0) close(watch.fd);
  free(watch.bounce);
  watch.fd = -1, watch.bounce = NULL, watch.direct_bytes = 0;
  pthread_mutex_unlock(&watch.lock);
  return n;
}

/* The bytes of iov[] as one stream, taken n at a time. */
typedef struct {
  const struct iovec *iov;
  int i;
  size_t at;
} iov_cursor;

static void take(iov_cursor *c, char *to, size_t n) {
  while (n) {
    size_t k = c->iov[c->i].iov_len - c->at;
    if (k > n) k = n;
    memcpy(to, (const char *)c->iov[c->i].iov_base + c->at, k);
    to += k, n -= k, c->at += k;
    if (c->at == c->iov[c->i].iov_len) c->i++, c->at = 0;
  }
}

static int write_all(int fd, const char *buf, size_t n, off_t off) {
  while (n) {
    ssize_t w = libc_pwrite(fd, buf, n, off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      if (w == 0) errno = EIO;
      return -1;
    }
    buf += w, n -= (size_t)w, off += w;
  }
  return 0;
}

/* Called with watch.lock held and the write's interior [a, b) at least
 * DIRECT_MIN.  Returns the bytes written, or -1 with errno. */
static ssize_t write_direct(int fd, const struct iovec *iov, off_t off, size_t total, off_t a, off_t b) {
  iov_cursor c = {iov, 0, 0};
  char *buf = watch.bounce; /* take() walks the vector, empty entries too; total bounds it */
  if (a > off) { /* the head, buffered, through the caller's descriptor */
    take(&c, buf, (size_t)(a - off));
    if (write_all(fd, buf, (size_t)(a - off), off)) return -1;
  }
  for (off_t at = a; at < b;) {
    size_t n = (size_t)(b - at) < BOUNCE_BYTES ? (size_t)(b - at) : BOUNCE_BYTES, done = 0;
    take(&c, buf, n);
    while (done < n && watch.fd >= 0) {
      ssize_t w = libc_pwrite(watch.fd, buf + done, n - done, at + (off_t)done);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0 && errno == EINVAL) { /* refused: this file is written buffered from here on */
        close(watch.fd);
        watch.fd = -1;
        break;
      }
      if (w < 0) return -1;
      done += (size_t)w;
      if (w == 0 || w % ALIGN) break; /* short (a disk filling up): the rest buffered, which reports it */
    }
    watch.direct_bytes += done;
    if (done < n && write_all(fd, buf + done, n - done, at + (off_t)done)) return -1;
    at += (off_t)n;
  }
  size_t tail = (size_t)(off + (off_t)total - b);
  if (tail) {
    take(&c, buf, tail);
    if (write_all(fd, buf, tail, b)) return -1;
  }
  return (ssize_t)total;
}

/* The write done, or -2: not one for the direct path. */
static ssize_t maybe_direct(int fd, const struct iovec *iov, off_t off, size_t total) {
  if (watch.fd < 0 || total < DIRECT_MIN || off < 0) return -2;
  off_t a = (off + ALIGN - 1) / ALIGN * ALIGN, b = (off + (off_t)total) / ALIGN * ALIGN;
  if (b - a < (off_t)DIRECT_MIN) return -2;
  int saved = errno;
  struct stat st;
  if (fstat(fd, &st)) {
    errno = saved;
    return -2;
  }
  ssize_t r = -2;
  pthread_mutex_lock(&watch.lock);
  if (watch.fd >= 0 && st.st_dev == watch.dev && st.st_ino == watch.ino)
    r = write_direct(fd, iov, off, total, a, b);
  pthread_mutex_unlock(&watch.lock);
  return r;
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off) {
  find_libc();
  size_t total = 0;
  for (int i = 0; i < cnt; i++) total += iov[i].iov_len;
  ssize_t r = maybe_direct(fd, iov, off, total);
  return r != -2 ? r : libc_pwritev(fd, iov, cnt, off);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
  find_libc();
  struct iovec one = {(void *)buf, n};
  ssize_t r = maybe_direct(fd, &one, off, n);
  return r != -2 ? r : libc_pwrite(fd, buf, n, off);
}

/* OMPIO overlaps its aggregators' writes with aio_write, whose glibc
 * threads call pwrite inside libc, past the functions above.  A request
 * for the direct path is done here, at once; aio_error and aio_return
 * read its result from the control block, where glibc keeps it too.  A
 * request that asks for a completion signal goes to glibc. */
int aio_write(struct aiocb *cb) {
  find_libc();
  struct iovec one = {(void *)cb->aio_buf, cb->aio_nbytes};
  ssize_t r = cb->aio_sigevent.sigev_notify == SIGEV_NONE
                  ? maybe_direct(cb->aio_fildes, &one, cb->aio_offset, cb->aio_nbytes)
                  : -2;
  if (r == -2) return libc_aio_write(cb);
  cb->__error_code = r < 0 ? errno : 0;
  cb->__return_value = r;
  return 0;
}

/* the same functions under their large-file names (LP64: the same types) */
ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off) { return pwrite(fd, buf, n, off); }
ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off64_t off) { return pwritev(fd, iov, cnt, off); }
int aio_write64(struct aiocb64 *cb) { return aio_write((struct aiocb *)cb); }
