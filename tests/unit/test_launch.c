/* hb_launch_sockets_nodelay: Nagle off on TCP connections, nothing else
 * touched, and HB_MPI_NODELAY=0 leaves everything as it was.
 * hb_launch_mpi_settings: Open MPI's lockedfile and individual sharedfp
 * components are excluded, unless OMPI_MCA_sharedfp is set already.
 *
 * Plain C, no MPI: a loopback TCP connection stands in for the PMIx one. */
#include "hb_launch.h"
#include "hb_settings.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <mpi.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

/* A connected loopback pair: fd[0] the client, fd[1] the accepted end. */
static int tcp_pair(int fd[2]) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  int lis = socket(AF_INET, SOCK_STREAM, 0);
  if (lis < 0 || bind(lis, (struct sockaddr *)&a, sizeof a) || listen(lis, 1) ||
      getsockname(lis, (struct sockaddr *)&a, &len))
    return -1;
  fd[0] = socket(AF_INET, SOCK_STREAM, 0);
  if (fd[0] < 0 || connect(fd[0], (struct sockaddr *)&a, sizeof a)) return -1;
  fd[1] = accept(lis, NULL, NULL);
  close(lis);
  return fd[1] < 0 ? -1 : 0;
}

static int nodelay(int fd) {
  int on = -1;
  socklen_t len = sizeof on;
  return getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &len) ? -1 : on != 0;
}

int main(void) {
  int tcp[2], local[2];
  if (tcp_pair(tcp) || socketpair(AF_UNIX, SOCK_STREAM, 0, local)) {
    perror("test_launch: cannot make the sockets");
    return 1;
  }
  CHECK_INT(nodelay(tcp[0]), 0); /* Nagle is on by default: what the launcher leaves */

  setenv("HB_MPI_NODELAY", "0", 1);
  hb_settings_reset();
  CHECK_INT(hb_launch_sockets_nodelay(), 0);
  CHECK_INT(nodelay(tcp[0]), 0);
  CHECK_INT(nodelay(tcp[1]), 0);

  unsetenv("HB_MPI_NODELAY");
  hb_settings_reset();
  int changed = hb_launch_sockets_nodelay(); /* at least these two; an inherited one would add */
  CHECK(changed >= 2, "changed %d sockets", changed);
  CHECK_INT(nodelay(tcp[0]), 1);
  CHECK_INT(nodelay(tcp[1]), 1);
  CHECK_INT(nodelay(local[0]), -1); /* not TCP: untouched, and the option does not apply */
  CHECK_INT(hb_launch_sockets_nodelay(), 0); /* already off: nothing to change */

  /* the connection still carries data */
  char out[] = "ping", in[8] = {0};
  CHECK(write(tcp[0], out, 4) == 4 && read(tcp[1], in, sizeof in) == 4 && !strcmp(in, "ping"), "no data");

#ifdef OPEN_MPI
  unsetenv("OMPI_MCA_sharedfp");
  CHECK_INT(hb_launch_mpi_settings(), 1);
  CHECK_STR(getenv("OMPI_MCA_sharedfp"), "^lockedfile,individual");
  setenv("OMPI_MCA_sharedfp", "lockedfile", 1); /* the user's choice (or mpirun --mca sharedfp) stays */
  CHECK_INT(hb_launch_mpi_settings(), 0);
  CHECK_STR(getenv("OMPI_MCA_sharedfp"), "lockedfile");
  setenv("OMPI_MCA_sharedfp", "", 1); /* empty: Open MPI's default, all components; also the user's */
  CHECK_INT(hb_launch_mpi_settings(), 0);
  CHECK_STR(getenv("OMPI_MCA_sharedfp"), "");
#endif
  return TEST_DONE("test_launch");
}
