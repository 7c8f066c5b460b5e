# A throw-away single-node Slurm cluster: munged, slurmctld and slurmd, all
# running as root in the foreground of this shell (so their PIDs are known),
# with every state, spool, log and socket file under one folder.
#
#   . tests/slurm/minislurm.sh
#   minislurm_up /tmp/somewhere      # sets SLURM_CONF; returns 0 when the node is idle
#   sbatch ...; squeue; scontrol ...
#   minislurm_down                   # stops exactly the daemons minislurm_up started
#   job_field ID FIELD, wait_state ID SECONDS STATE...   # a job's state, for tests
#
# minislurm_up fails with a reason in $MINISLURM_WHY (and prints the daemon
# logs) if something is missing or a daemon does not come up; callers turn
# that into a skip.  Used by tests/slurm/test_slurm.sh, and by hand to try
# jobs/*.sbatch on a machine without a cluster.

MINISLURM_PIDS=()
MINISLURM_WHY=""

_minislurm_free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

minislurm_up() {
  local d=$1
  local bin
  for bin in munged mungekey slurmctld slurmd sbatch squeue scontrol sinfo; do
    if ! command -v "$bin" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$bin" ]; then
      MINISLURM_WHY="$bin is not installed (Debian packages: slurmctld slurmd slurm-client munge)"
      return 1
    fi
  done
  export PATH="$PATH:/usr/sbin"
  if [ "$(id -u)" != 0 ]; then
    MINISLURM_WHY="the single-node cluster runs its daemons as root; this is uid $(id -u)"
    return 1
  fi
  mkdir -p "$d"/munge "$d"/state "$d"/spool "$d"/log
  chmod 700 "$d" "$d"/munge
  MINISLURM_DIR=$d

  # munge: our own key, socket and pid file, so a system munged (if any) is untouched
  if ! mungekey --create --keyfile="$d/munge/munge.key" 2>"$d/log/mungekey.err"; then
    dd if=/dev/urandom of="$d/munge/munge.key" bs=1024 count=1 status=none
  fi
  chmod 600 "$d/munge/munge.key"
  munged -F --force --socket="$d/munge/socket" --pid-file="$d/munge/munged.pid" \
    --key-file="$d/munge/munge.key" --log-file="$d/log/munged.log" \
    --seed-file="$d/munge/seed" >>"$d/log/munged.log" 2>&1 &
  MINISLURM_PIDS+=($!)
  local i
  for i in $(seq 50); do [ -S "$d/munge/socket" ] && break; sleep 0.1; done
  if [ ! -S "$d/munge/socket" ]; then
    MINISLURM_WHY="munged did not start (log: $(tail -3 "$d/log/munged.log" | tr '\n' ' '))"
    return 1
  fi

  local host cpus mem ctlport dport
  host=$(hostname)
  cpus=$(nproc)
  # a little below the physical memory, or slurmd reports less than configured and the node drains
  mem=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
  ctlport=$(_minislurm_free_port)
  dport=$(_minislurm_free_port)
  while [ "$dport" = "$ctlport" ]; do dport=$(_minislurm_free_port); done
  cat >"$d/slurm.conf" <<EOF
ClusterName=hb
SlurmctldHost=$host
SlurmctldPort=$ctlport
SlurmdPort=$dport
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$d/munge/socket,cred_expire=10
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
MinJobAge=600
KillWait=5
SlurmctldTimeout=30
SlurmdTimeout=30
StateSaveLocation=$d/state
SlurmdSpoolDir=$d/spool
SlurmctldPidFile=$d/slurmctld.pid
SlurmdPidFile=$d/slurmd.pid
SlurmctldLogFile=$d/log/slurmctld.log
SlurmdLogFile=$d/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=hb Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  : >"$d/cgroup.conf"
  export SLURM_CONF=$d/slurm.conf

  slurmctld -D -i -f "$SLURM_CONF" >>"$d/log/slurmctld.out" 2>&1 &
  MINISLURM_PIDS+=($!)
  slurmd -D -f "$SLURM_CONF" >>"$d/log/slurmd.out" 2>&1 &
  MINISLURM_PIDS+=($!)

  local state=""
  for i in $(seq 60); do
    state=$(sinfo -h -n "$host" -o %t 2>/dev/null | head -1)
    case $state in idle) return 0 ;; esac
    sleep 0.5
  done
  MINISLURM_WHY="node $host did not become idle in 30 s (state: '${state:-no answer}')"
  minislurm_logs
  return 1
}

# job_field ID FIELD: one field of `scontrol show job`, e.g. JobState, Restarts, ExitCode
job_field() {
  scontrol show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1
}

# wait_state ID SECONDS STATE...: until the job is in one of the states
wait_state() {
  local id=$1 t=$2 s
  shift 2
  for _ in $(seq $((t * 2))); do
    s=$(job_field "$id" JobState)
    for w in "$@"; do [ "$s" = "$w" ] && return 0; done
    sleep 0.5
  done
  echo "job $id is $s after $t s, expected $*"
  return 1
}

minislurm_logs() {
  local f
  for f in "$MINISLURM_DIR"/log/*; do
    [ -s "$f" ] || continue
    echo "---- $f (last 15 lines)"
    tail -15 "$f"
  done
}

# Stop the daemons this shell started, newest first, by PID; wait for them.
minislurm_down() {
  local i pid
  for ((i = ${#MINISLURM_PIDS[@]} - 1; i >= 0; i--)); do
    pid=${MINISLURM_PIDS[i]}
    kill -TERM "$pid" 2>/dev/null || continue
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  MINISLURM_PIDS=()
}
