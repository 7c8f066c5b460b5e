#!/usr/bin/env bash
# mpirun.sh N PROGRAM [ARGS...]: run an MPI test program on N ranks.
set -euo pipefail
. "$(dirname "$0")/../../scripts/env.sh"
n=$1
shift
exec timeout 120 mpirun -q -n "$n" "$@"
