/* Open MPI 4.1's PMIx client reaches mpirun's PMIx server over loopback TCP
 * with Nagle's algorithm on.  MPI_Finalize sends several small requests back
 * to back; the last is held until the server ACKs the one before, and the
 * server delays that ACK by 40 ms because it has nothing to send yet.  That
 * was 40 ms of every run on the benchmark machine, 15% of the 2.1 GB
 * benchmark (docs/performance.md, "The launcher's 40 ms").  TCP_NODELAY only
 * changes when segments leave, never what arrives, so it is safe on any
 * stream socket; the MPI library's own TCP transport already sets it. */
#include "hb_launch.h"

#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static int is_tcp(int fd) {
  int type = 0, domain = 0;
  socklen_t len = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) || type != SOCK_STREAM) return 0;
  len = sizeof domain;
  return !getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) && (domain == AF_INET || domain == AF_INET6);
}

int hb_launch_sockets_nodelay(void) {
  const char *knob = getenv("HB_MPI_NODELAY");
  if (knob && !strcmp(knob, "0")) return 0;
  DIR *fds = opendir("/proc/self/fd");
  if (!fds) return 0;
  int changed = 0;
  for (struct dirent *e; (e = readdir(fds));) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    int fd = atoi(e->d_name), on = 0, one = 1;
    socklen_t len = sizeof on;
    if (fd == dirfd(fds) || !is_tcp(fd) || getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &len) || on) continue;
    if (!setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one)) changed++;
  }
  closedir(fds);
  return changed;
}
