#!/usr/bin/env bash
# Start hyperbatch without a launcher (an Open MPI singleton), four at a
# time, for SECONDS, and count the runs that fail; docs/operations.md, "A
# process started without a launcher".  Load the machine meanwhile (run
# tests) to see the old crash: OMPI_MCA_ess_singleton_isolated=0 in the
# environment gives the ordinary singleton, as before hyperbatch isolated it.
#   tests/stress/singletons.sh build/hyperbatch [SECONDS]
set -uo pipefail
HB=$(realpath "$1")
seconds=${2:-200}
. "$(dirname "$0")/../../scripts/env.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$HB" synth 4dstem "$work/in.hspy" --shape 4,4,8,8 >/dev/null || exit 1
n=0 bad=0 end=$((SECONDS + seconds))
while [ $SECONDS -lt $end ]; do
  for i in 1 2 3 4; do ("$HB" inspect "$work/in.hspy" >/dev/null 2>"$work/err$i"; echo $? >"$work/rc$i") & done
  wait
  for i in 1 2 3 4; do
    n=$((n + 1))
    rc=$(cat "$work/rc$i")
    if [ "$rc" != 0 ]; then
      bad=$((bad + 1))
      echo "exit $rc: $(tail -n 3 "$work/err$i" | tr '\n' ' ')"
    fi
  done
done
echo "$n runs, $bad failed"
