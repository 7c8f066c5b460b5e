/* Is mapping a file cheaper than reading it, for the engine's uncompressed
 * chunks?  Sums a byte range of FILE as uint16, either read with pread into
 * one chunk-sized buffer (what the engine does) or mapped with mmap (with or
 * without MAP_POPULATE) and summed in place.
 *
 *   read_probe FILE pread|mmap|populate PART NPARTS [CHUNK_BYTES]
 *
 * PART of NPARTS picks the range, so that two probes at once on the two
 * halves stand for two ranks:
 *   read_probe F pread 0 2 & read_probe F pread 1 2; wait
 * Prints seconds and GB/s; the sums must agree between the modes. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static uint64_t sum_u16(const unsigned char *p, size_t bytes) {
  uint64_t s = 0;
  for (size_t i = 0; i + 1 < bytes; i += 2) {
    uint16_t v;
    memcpy(&v, p + i, 2);
    s += v;
  }
  return s;
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: read_probe FILE pread|mmap|populate PART NPARTS [CHUNK_BYTES]\n");
    return 2;
  }
  const char *mode = argv[2];
  long part = atol(argv[3]), nparts = atol(argv[4]);
  size_t chunk = argc > 5 ? (size_t)atoll(argv[5]) : 819200; /* the benchmark's (5, 5, 128, 128) uint16 */
  int fd = open(argv[1], O_RDONLY);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) || nparts < 1 || part < 0 || part >= nparts || !chunk) {
    perror("read_probe");
    return 1;
  }
  size_t len = (size_t)st.st_size / (size_t)nparts / chunk * chunk;
  off_t off = (off_t)((size_t)part * len) / 4096 * 4096; /* mmap offsets are page-aligned */
  uint64_t s = 0;
  double t0 = now();
  if (!strcmp(mode, "pread")) {
    unsigned char *buf = malloc(chunk);
    for (size_t o = 0; buf && o < len; o += chunk) {
      if (pread(fd, buf, chunk, off + (off_t)o) != (ssize_t)chunk) {
        perror("pread");
        return 1;
      }
      s += sum_u16(buf, chunk);
    }
    free(buf);
  } else {
    int flags = MAP_SHARED | (!strcmp(mode, "populate") ? MAP_POPULATE : 0);
    unsigned char *m = mmap(NULL, len, PROT_READ, flags, fd, off);
    if (m == MAP_FAILED) {
      perror("mmap");
      return 1;
    }
    for (size_t o = 0; o < len; o += chunk) s += sum_u16(m + o, chunk);
    munmap(m, len);
  }
  double t = now() - t0;
  printf("%-8s part %ld/%ld: %zu bytes in %.4f s, %.2f GB/s, sum %llu\n", mode, part, nparts, len, t, len / 1e9 / t,
         (unsigned long long)s);
  close(fd);
  return 0;
}
