#!/usr/bin/env bash
# Two hosts on one machine: two network namespaces joined by a
# bridge stand in for two cluster nodes that share a file system.  Open MPI
# reaches the second "host" over TCP through an rsh agent that, like ssh,
# runs the command there with a fresh environment, so the ranks there see
# only what mpirun forwards: OMPI_* (OMPI_ALLOW_RUN_AS_ROOT too) and -x VAR;
# the remote orted gets the OMPI_MCA_* settings as -mca arguments and needs
# no root permission of its own.  Asserts:
#   - Open MPI sees two hosts: ranks 0,1 on hostA, 2,3 on hostB, local size 2,
#     and no shared-memory path between the hosts (self,vader alone fails);
#   - hyperbatch across the hosts at 2 and 4 ranks == a one-host run, bit for bit;
#   - a rank killed on hostB, then --resume on both hosts == the one-host run;
#   - SIGUSR1 to mpirun reaches the ranks on hostB: a checkpoint, exit 75,
#     then --resume on both hosts == the one-host run;
#   - an HB_* variable set only in mpirun's environment (no -x) acts on the
#     ranks on hostB too (rank 0's settings are shared);
#   - no file appears next to the input, and no MPI-IO file next to the
#     output: Open MPI's lockedfile/individual shared-file-pointer
#     components, which select themselves when ranks span hosts, would leave
#     <file>-<jobid>-<pid>.lock or <file>.data.<rank> there after a kill.
# Everything lives in namespaces made here (hb2h-<pid>-*), addresses only
# inside them; the EXIT trap stops what runs in them and deletes them.
# Exit 77 (meson: skipped), loudly, only if namespaces cannot be made.
# Usage: test_two_hosts.sh path/to/hyperbatch
set -euo pipefail
HB=$1
. "$(dirname "$0")/../lib.sh"
cd "$WORK"
: >"$WORK/hb.stderr"

NS_A=hb2h-$$-a
NS_B=hb2h-$$-b
NS_SW=hb2h-$$-sw # holds the bridge: nothing is made in the machine's own namespace
NET=10.77.14     # hostA .1, hostB .2; seen only inside NS_A and NS_B
made=()

teardown() {
  local ns p
  for ns in "${made[@]}"; do # what still runs in them: mpirun, orted, ranks this test started
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
  done
  for ns in "${made[@]}"; do ip netns del "$ns" 2>/dev/null || true; done # takes the veths and the bridge along
}
trap 'teardown; rm -rf "$WORK"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

skip() {
  echo
  echo "#####################################################################"
  echo "SKIP: two-host test not run: $*"
  echo "      (it needs root and network namespaces: ip netns add, veth, bridge)"
  echo "#####################################################################"
  exit 77
}

# namespaces left by a run of this test that was killed outright (SIGKILL skips the trap)
for ns in $(ip netns list 2>/dev/null | sed -n 's/^\(hb2h-\([0-9]*\)-[a-z]*\).*/\1 \2/p' | while read -r n p; do
  kill -0 "$p" 2>/dev/null || echo "$n"; done); do
  ip netns del "$ns" 2>/dev/null || true
done

up() {
  local ns h
  for ns in $NS_SW $NS_A $NS_B; do
    ip netns add "$ns" || return 1
    made+=("$ns")
    ip -n "$ns" link set lo up || return 1
  done
  ip -n $NS_SW link add br0 type bridge && ip -n $NS_SW link set br0 up || return 1
  for h in a b; do
    ns=hb2h-$$-$h
    ip -n "$ns" link add eth0 type veth peer name port-$h netns $NS_SW &&
      ip -n $NS_SW link set port-$h master br0 && ip -n $NS_SW link set port-$h up &&
      ip -n "$ns" link set eth0 up || return 1
  done
  ip -n $NS_A addr add $NET.1/24 dev eth0 && ip -n $NS_B addr add $NET.2/24 dev eth0
}
[ "$(id -u)" = 0 ] || skip "not root"
command -v ip >/dev/null && command -v unshare >/dev/null || skip "ip (iproute2) or unshare (util-linux) missing"
t0=$(date +%s)
up 2>"$WORK/up.err" || skip "cannot make network namespaces here: $(tr '\n' ' ' <"$WORK/up.err")"

# The rsh agent: "rsh-agent [options] HOST COMMAND..." as Open MPI calls ssh.
cat >rsh-agent <<EOF
#!/bin/bash
while [ "\${1#-}" != "\$1" ]; do shift; done # ssh options, if any
case \$1 in
  $NET.1) ns=$NS_A name=hostA ;;
  $NET.2) ns=$NS_B name=hostB ;;
  *) echo "rsh-agent: unknown host '\$1'" >&2; exit 255 ;;
esac
shift
# like sshd: the host's own hostname, a fresh environment, the words joined into one shell command
exec ip netns exec "\$ns" unshare --uts env -i PATH="\$PATH" HOME="\$HOME" \${LD_LIBRARY_PATH:+LD_LIBRARY_PATH="\$LD_LIBRARY_PATH"} \\
  /bin/sh -c 'hostname "\$0" && exec /bin/sh -c "\$*"' "\$name" "\$@"
EOF
# on-a COMMAND...: run COMMAND on hostA (where mpirun runs); its pid goes to on-a.pid
cat >on-a <<EOF
#!/bin/sh
exec ip netns exec $NS_A unshare --uts /bin/sh -c 'hostname hostA && echo \$\$ >"$WORK/on-a.pid" && exec "\$@"' sh "\$@"
EOF
chmod +x rsh-agent on-a
printf '%s slots=2\n' $NET.1 $NET.2 >hosts

# mpi2 NRANKS ARGS...: mpirun on hostA across both hosts, NRANKS/2 ranks on each
# (quiet unless QUIET= is given; killed after TMO seconds, default 180)
mpi2() {
  local n=$1
  shift
  OMPI_MCA_plm_rsh_agent=$WORK/rsh-agent OMPI_MCA_btl_tcp_if_include=$NET.0/24 OMPI_MCA_oob_tcp_if_include=$NET.0/24 \
    timeout "${TMO:-180}" ./on-a mpirun ${QUIET--q} --hostfile "$WORK/hosts" -n "$n" --npernode $((n / 2)) "$@"
}
# hb2 NRANKS ARGS...: hyperbatch across both hosts, every HB_* variable passed with -x
# (the remote ranks would not see it otherwise); output in hb.stdout/hb.stderr, $RC set
hb2() {
  local n=$1 v x=()
  shift
  for v in $(compgen -e | grep '^HB_' || true); do x+=(-x "$v"); done
  set +e
  mpi2 "$n" "${x[@]}" "$HB" "$@" >"$WORK/hb.stdout" 2>"$WORK/hb.stderr"
  RC=$?
  set -e
}

# 1. the hosts as Open MPI sees them
set +e
mpi2 4 sh -c 'echo "$OMPI_COMM_WORLD_RANK $(hostname) $OMPI_COMM_WORLD_LOCAL_SIZE"' 2>"$WORK/hb.stderr" | sort >map.txt
RC=$?
set -e
check "hello world on two hosts (exit $RC, $(($(date +%s) - t0)) s since setup began)" test "$RC" = 0
check "ranks 0,1 on hostA and 2,3 on hostB, 2 local ranks each: $(tr '\n' ',' <map.txt)" \
  test "$(tr '\n' ',' <map.txt)" = "0 hostA 2,1 hostA 2,2 hostB 2,3 hostB 2,"
# an MPI_Allreduce between the hosts works, and does not without TCP: had
# Open MPI taken them for one node, vader (shared memory) would carry it
cat >allreduce.c <<'C'
#include <mpi.h>
int main(int argc, char **argv) {
  int one = 1, sum = 0;
  MPI_Init(&argc, &argv);
  MPI_Allreduce(&one, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  MPI_Finalize();
  return sum != 2;
}
C
check "mpicc builds the probe" mpicc -o allreduce allreduce.c
set +e
TMO=60 mpi2 2 ./allreduce >/dev/null 2>"$WORK/hb.stderr"
RC=$?
set -e
check "an MPI_Allreduce across the hosts (exit $RC)" test "$RC" = 0
set +e
TMO=60 mpi2 2 --mca btl self,vader ./allreduce >/dev/null 2>"$WORK/hb.stderr"
RC=$?
set -e
check "no shared-memory path between the hosts: with btl self,vader alone it fails (exit $RC)" test "$RC" != 0 -a "$RC" != 124
set +e
HB_PROBE=set mpi2 2 sh -c 'echo "$(hostname) ${HB_PROBE:-unset}"' 2>"$WORK/hb.stderr" | sort >env.txt
set -e
check "like ssh, hostB's ranks see HB_* only with -x: $(tr '\n' ',' <env.txt)" \
  test "$(tr '\n' ',' <env.txt)" = "hostA set,hostB unset,"

# 2. the one-host reference, then the same job across the hosts
mkdir data results
"$HB" synth 4dstem data/in.hspy --shape 24,20,32,32 --chunks 2,8,32,32 --seed 14 >/dev/null
cat >job.yaml <<'YAML'
version: 1
input: {file: data/in.hspy}
output: {file: results/out.hspy, previews: false}
kernels:
  - {name: bf, op: virtual_image, detector: {shape: circle, center: [16, 16], radius: 4}}
  - {name: total, op: sum, axes: signal}
  - {name: mean_dp, op: mean, axes: navigation}
  - {name: max_dp, op: max, axes: navigation}
run: {block: 16, progress: off}
YAML
same() { # same FILE: FILE's results == the reference's, bit for bit
  [ -e "$1" ] || { echo "     | $1 does not exist"; return 1; }
  $HB_PYTHON "$here/tests/compare_outputs.py" results/ref.hspy "$1" >"$WORK/cmp.txt" || { sed 's/^/     | /' "$WORK/cmp.txt"; false; }
}
# strays: anything next to the input but the input, and Open MPI's files next
# to the output: sharedfp lockedfile's <file>-<jobid>-<pid>.lock and
# <file>.locktest.<rank>, individual's <file>.data.<rank> and
# <file>.metadata.<rank>, ROMIO's .<file>.shfp.* (hyperbatch's own
# <output>.lock and checkpoint files are its business, not this test's)
strays() {
  { find data -type f ! -name in.hspy
    find results -type f \( -name '*-[0-9]*-[0-9]*.lock' -o -name '*.locktest.[0-9]*' -o -name '*.data.[0-9]*' \
      -o -name '*.metadata.[0-9]*' -o -name '*.shfp.*' \); } | sort | tr '\n' ' '
}
no_strays() { local s; s=$(strays); [ -z "$s" ] || { echo "     | $s"; false; }; }

hb 2 run job.yaml --set output.file=results/ref.hspy
check "one-host reference on 2 ranks (exit $RC)" test "$RC" = 0
for n in 2 4; do
  hb2 $n run job.yaml --set output.file=results/x$n.hspy
  check "two hosts, $n ranks (exit $RC)" test "$RC" = 0
  check "two hosts, $n ranks == one host, bit for bit" same results/x$n.hspy
done
check "no file next to the input, no MPI-IO file next to the outputs" no_strays

# 3. a rank on hostB killed outright (HB_FAULT_KILL_AFTER kills the last rank), then --resume on both
export HB_CHECKPOINT_SECONDS=0 # flush after every round
QUIET= HB_FAULT_KILL_AFTER=3 hb2 4 run job.yaml # not quiet: mpirun names the rank that died
# Open MPI 4.1's mpirun now and then dies itself, in its PMIx log handler
# (pmix_server_log_fn), while it reports the dead rank (seen once in CI):
# its bug, not the job's, and then it names no rank. Kill the run again once,
# as the same command: a --set would change the job's identity and the resume
# below, without it, would rightly refuse the checkpoint. The crashed attempt's
# files go first, and any of its ranks still alive (they run in $WORK).
# TWO_HOSTS_RETRY_KILL=1 takes this path without the crash, to test it.
if [ -n "${TWO_HOSTS_RETRY_KILL-}" ] ||
  { grep -q pmix_server_log "$WORK/hb.stderr" && ! grep -q "rank 3 with PID" "$WORK/hb.stderr"; }; then
  echo "note mpirun crashed in Open MPI's PMIx log handler; the kill is run again"
  for p in /proc/[0-9]*; do
    [ "$(cat "$p/comm" 2>/dev/null)" = hyperbatch ] && [ "$(readlink "$p/cwd" 2>/dev/null)" = "$WORK" ] &&
      kill -KILL "${p#/proc/}" 2>/dev/null || true
  done
  rm -f results/out.hspy results/out.hspy.*
  QUIET= HB_FAULT_KILL_AFTER=3 hb2 4 run job.yaml
fi
check "a killed rank fails the job (exit $RC)" test "$RC" != 0 -a "$RC" != 124
check "the killed rank was rank 3, on hostB ($NET.2)" grep -q "rank 3 with PID [0-9]* on node $NET.2 exited on signal 9" "$WORK/hb.stderr"
check "killed: nothing under the output's name" test ! -e results/out.hspy
check "killed: the .partial is kept" test -e results/out.hspy.partial
check "killed: no Open MPI lock or other MPI-IO file next to the input or the output" no_strays
hb2 4 run job.yaml --resume
check "resume on both hosts after the kill (exit $RC)" test "$RC" = 0
check "resumed after a kill == one host, bit for bit" same results/out.hspy
check "resumed: nothing left but the output" test ! -e results/out.hspy.partial

# 4. SIGUSR1 to mpirun on hostA: every rank, those on hostB too, checkpoints and stops
rm -f results/out.hspy on-a.pid
(HB_FAULT_ROUND_DELAY_MS=300 hb2 4 run job.yaml; exit $RC) &
bg=$!
# the .partial exists once the ranks run (their signal handlers are in place); 36 blocks take 9 rounds of 0.3 s or more
for _ in $(seq 300); do [ -e results/out.hspy.partial ] && [ -s on-a.pid ] && break; sleep 0.1; done
kill -USR1 "$(cat on-a.pid)" 2>/dev/null || true
set +e
wait $bg
RC=$?
set -e
expect_fail "SIGUSR1 to mpirun stops the ranks on both hosts" 75 "out.hspy: stopped by signal 10 after [0-9]+ of [0-9]+ blocks"
hb2 2 run job.yaml --resume
check "resume on both hosts (2 ranks) after the stop on 4 (exit $RC)" test "$RC" = 0
check "resumed after a stop == one host, bit for bit" same results/out.hspy
check "after all runs: no file next to the input, no MPI-IO file next to the outputs" no_strays

# 5. HB_* only in mpirun's environment (no -x): hyperbatch takes rank 0's
# settings on every rank, so the kill still happens, on hostB
set +e
HB_FAULT_KILL_AFTER=3 QUIET= mpi2 4 "$HB" run job.yaml --set output.file=results/env.hspy >"$WORK/hb.stdout" 2>"$WORK/hb.stderr"
RC=$?
set -e
check "HB_FAULT_KILL_AFTER without -x reaches rank 3 on hostB (exit $RC)" \
  grep -q "rank 3 with PID [0-9]* on node $NET.2 exited on signal 9" "$WORK/hb.stderr"
echo "two-host test: $(($(date +%s) - t0)) s from setup to the last run"
finish
