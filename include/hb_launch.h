/* Start-up adjustments to the MPI launcher's connections. */
#ifndef HB_LAUNCH_H
#define HB_LAUNCH_H

/* Turn Nagle's algorithm off on this process's TCP connections, which right
 * after MPI_Init are the launcher's (PMIx) ones: see launch.c for why.
 * HB_MPI_NODELAY=0 in the environment leaves them alone.  Returns how many
 * sockets it changed. */
int hb_launch_sockets_nodelay(void);

#endif
