# Sourced by the scripts: Open MPI refuses root unless told, and more ranks
# than cores need --oversubscribe (tests run 3 ranks on 2 cores).
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMPI_MCA_rmaps_base_oversubscribe=1
# no InfiniBand/high-speed fabrics here: keep Open MPI from probing for them
export OMPI_MCA_btl=self,vader,tcp OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
export OMPI_MCA_pml=ob1
# a quicker start on one node (docs/operations.md, "The launcher"): hwloc skips
# the PCI devices, whose config space is slow to read in a VM and of no use
# without a fabric to place, and PMIx keeps its few keys in a hash table
# rather than building a shared-memory store; 30-40 ms of every mpirun
export HWLOC_COMPONENTS=-pci,-linuxio PMIX_MCA_gds=hash
HB_PYTHON=/usr/bin/python3
