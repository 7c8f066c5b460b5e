/* How fast this machine's page cache takes two processes' writes, into one
 * file (as parallel HDF5 writes an output from every rank) or into a file
 * each, without HDF5 or MPI.
 *
 *   shared_write same|own PIECES MBYTES [DIR [direct]]   (default DIR: .)
 *
 * Two processes each write PIECES pieces of MBYTES with pwrite: `same`
 * interleaves them in one file (process r writes pieces 2i + r), `own`
 * gives each process a file.  `direct` opens the files O_DIRECT, past the
 * page cache (what output.direct_io does for the output's large writes).  Prints each process' seconds in pwrite and
 * the total with an fsync at the end.  Run `sync` and let the machine idle
 * before each run: dirty pages of an earlier run change the result. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hb_timing.h"

int main(int argc, char **argv) {
  if (argc < 4 || (strcmp(argv[1], "same") && strcmp(argv[1], "own")) || (argc > 5 && strcmp(argv[5], "direct"))) {
    fprintf(stderr, "usage: shared_write same|own PIECES MBYTES [DIR [direct]]\n");
    return 2;
  }
  int same = !strcmp(argv[1], "same");
  long pieces = atol(argv[2]);
  size_t piece = (size_t)atol(argv[3]) << 20;
  const char *dir = argc > 4 ? argv[4] : ".";
  int direct = argc > 5;
  char path[2][4096];
  for (int r = 0; r < 2; r++) snprintf(path[r], sizeof path[r], "%s/shared_write.%d.bin", dir, same ? 0 : r);
  unlink(path[0]), unlink(path[1]);
  double t0 = hb_now();
  for (int r = 0; r < 2; r++)
    if (fork() == 0) {
      unsigned char *buf = NULL; /* aligned for O_DIRECT */
      int fd = open(path[r], O_WRONLY | O_CREAT | (direct ? O_DIRECT : 0), 0644);
      if (posix_memalign((void **)&buf, 4096, piece) || fd < 0) _exit(1);
      memset(buf, r + 1, piece);
      double t = hb_now();
      for (long i = 0; i < pieces; i++) {
        off_t off = (off_t)(same ? 2 * i + r : i) * (off_t)piece;
        if (pwrite(fd, buf, piece, off) != (ssize_t)piece) _exit(1);
      }
      t = hb_now() - t;
      printf("process %d: %.2f s in pwrite, %.2f GB/s\n", r, t, (double)pieces * (double)piece / 1e9 / t);
      fflush(stdout);
      fsync(fd);
      _exit(0);
    }
  int ok = 1, status;
  while (wait(&status) > 0) ok &= WIFEXITED(status) && WEXITSTATUS(status) == 0;
  printf("%s%s: %.2f s for %.2f GB, fsync included\n", argv[1], direct ? " direct" : "", hb_now() - t0, 2.0 * (double)pieces * (double)piece / 1e9);
  unlink(path[0]), unlink(path[1]);
  return ok ? 0 : 1;
}
