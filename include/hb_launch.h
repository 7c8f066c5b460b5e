/* Start-up adjustments to the MPI launcher's connections. */
#ifndef HB_LAUNCH_H
#define HB_LAUNCH_H

#include <mpi.h>

/* Turn Nagle's algorithm off on this process's TCP connections, which right
 * after MPI_Init are the launcher's (PMIx) ones: see launch.c for why.
 * HB_MPI_NODELAY=0 in the environment leaves them alone.  Returns how many
 * sockets it changed. */
int hb_launch_sockets_nodelay(void);

/* Settings for the MPI library that must be in place before MPI_Init (they
 * then hold under mpirun, srun and a direct launch alike): with Open MPI,
 * OMPI_MCA_sharedfp=HB_SHAREDFP_DEFAULT unless the variable is set already,
 * so that opening a file never selects the lockedfile or individual
 * shared-file-pointer component (see launch.c for why).  Returns 1 if it set
 * something. */
#define HB_SHAREDFP_DEFAULT "^lockedfile,individual"
/* A process no launcher started (an Open MPI singleton) is also made an
 * isolated singleton with a session folder of its own, unless
 * OMPI_MCA_ess_singleton_isolated or OMPI_MCA_orte_tmpdir_base is set (see
 * launch.c for why); hb_launch_finish removes that folder after
 * MPI_Finalize. */
int hb_launch_mpi_settings(void);
void hb_launch_finish(void);
/* 1 when no MPI launcher (mpirun, srun's PMIx or PMI-2) started this process. */
int hb_launch_is_singleton(void);

/* glibc's malloc keeps allocations below 32 MiB on the heap and does not
 * trim it below 256 MiB of free space (see launch.c for why).  Returns 1
 * when both were set. */
int hb_launch_memory_settings(void);

/* For `run`, after MPI_Init: whether Slurm meant more processes than MPI
 * connected.  A process alone in its world but one of several tasks of an
 * srun step (no working MPI plugin) would run the whole job and write the
 * same output as its siblings: HB_EINVALID.  One started straight from a
 * batch script of a job with several tasks (no launcher) prints a note and
 * runs.  A process mpirun started is never questioned. */
int hb_launch_check_world(MPI_Comm comm);

#endif
