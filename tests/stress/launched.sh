#!/usr/bin/env bash
# Start short hyperbatch runs under mpirun, two jobs of 2 ranks at a time,
# for SECONDS, and count the runs that fail: each is a --resume of a job
# whose output is finished, which starts MPI, reads the output's identity,
# says "finished already" and ends (the path where test_kill_resume.sh once
# saw a rank die of SIGILL, exit 132 under mpirun -q).  Load the machine
# meanwhile (run tests).  Extra arguments go to mpirun, e.g.
# -x OMPI_MCA_mca_base_component_disable_dlclose=0.
#   tests/stress/launched.sh build/hyperbatch [SECONDS] [MPIRUN ARGS...]
set -uo pipefail
HB=$(realpath "$1")
seconds=${2:-200}
shift $(($# < 2 ? $# : 2))
. "$(dirname "$0")/../../scripts/env.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
"$HB" synth 4dstem in.hspy --shape 8,8,16,16 >/dev/null || exit 1
for i in 1 2; do
  printf 'version: 1\ninput: {file: in.hspy}\noutput: {file: out%s.hspy, previews: false}\nkernels:\n  - {name: total, op: sum, axes: signal}\nrun: {progress: off}\n' "$i" >job$i.yaml
  mpirun -q -n 2 "$HB" run job$i.yaml >/dev/null || exit 1
done
n=0 bad=0 end=$((SECONDS + seconds))
while [ $SECONDS -lt $end ]; do
  for i in 1 2; do (mpirun -q -n 2 "$@" "$HB" run job$i.yaml --resume >out$i 2>err$i; echo $? >rc$i) & done
  wait
  for i in 1 2; do
    n=$((n + 1))
    rc=$(cat rc$i)
    if [ "$rc" != 0 ] || ! grep -q "finished already" out$i; then
      bad=$((bad + 1))
      echo "exit $rc: $(tail -n 3 err$i | tr '\n' ' ')"
    fi
  done
done
echo "$n runs, $bad failed"
