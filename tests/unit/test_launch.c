/* hb_launch_sockets_nodelay: Nagle off on TCP connections, nothing else
 * touched, and HB_MPI_NODELAY=0 leaves everything as it was.
 * hb_launch_mpi_settings: a singleton is isolated in a session folder of its
 * own, which hb_launch_finish removes; Open MPI's lockedfile and individual sharedfp
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
#include <sys/stat.h>
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
  /* under a launcher: only the sharedfp setting */
  static const char *const mpi_vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_FD",
                                         "OMPI_MCA_ess_singleton_isolated", "OMPI_MCA_orte_tmpdir_base"};
  for (size_t i = 0; i < sizeof mpi_vars / sizeof mpi_vars[0]; i++) unsetenv(mpi_vars[i]);
  CHECK_INT(hb_launch_is_singleton(), 1);
  setenv("PMIX_RANK", "0", 1);
  CHECK_INT(hb_launch_is_singleton(), 0);
  unsetenv("OMPI_MCA_sharedfp");
  CHECK_INT(hb_launch_mpi_settings(), 1);
  CHECK(!getenv("OMPI_MCA_ess_singleton_isolated") && !getenv("OMPI_MCA_orte_tmpdir_base"),
        "a launched process must keep Open MPI's session folder and daemon");
  unsetenv("PMIX_RANK");
  /* a singleton: isolated, in a session folder of its own that hb_launch_finish removes */
  unsetenv("OMPI_MCA_sharedfp");
  CHECK_INT(hb_launch_mpi_settings(), 1);
  CHECK_STR(getenv("OMPI_MCA_ess_singleton_isolated"), "1");
  const char *dir = getenv("OMPI_MCA_orte_tmpdir_base");
  char kept[4096] = "";
  struct stat st;
  CHECK(dir && strstr(dir, "/hyperbatch-mpi.") && !stat(dir, &st) && S_ISDIR(st.st_mode),
        "a singleton's session folder must exist: %s", dir ? dir : "(unset)");
  if (dir) snprintf(kept, sizeof kept, "%s/session/inside", dir);
  if (dir) {
    char sub[4096];
    snprintf(sub, sizeof sub, "%s/session", dir);
    CHECK(!mkdir(sub, 0700) && !mkdir(kept, 0700), "folders inside the session folder");
    snprintf(kept, sizeof kept, "%s", dir);
  }
  hb_launch_finish();
  CHECK(kept[0] && stat(kept, &st) != 0, "hb_launch_finish must remove the session folder and what is in it");
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
