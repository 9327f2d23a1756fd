#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for trying and testing the launch/slurm_* scripts:
#   tools/local_slurm.sh start    start munged, slurmctld and slurmd; prints `export SLURM_CONF=...`
#   tools/local_slurm.sh stop     stop them (by their pid files) and delete the state directory
#   tools/local_slurm.sh status   which daemons run, and sinfo
# Environment: RRT_SLURM_DIR (state directory: slurm.conf, munge key and socket, spool, logs;
# default /tmp/rrt-slurm), RRT_SLURM_PORT (slurmctld's port, slurmd uses the next one; default
# 16817: unprivileged, away from Slurm's own 6817/6818), RRT_SLURM_CPUS (CPUs the node offers;
# default: cores, at least 4, so jobs with more tasks than cores still start).
# Needs root and Debian's slurm-wlm and munge (tools/setup.sh). Idempotent: start with the
# daemons running only prints the export line; stop with nothing running does nothing. Nothing
# outside the state directory is touched: munged gets its own key and socket.
set -euo pipefail
dir="${RRT_SLURM_DIR:-/tmp/rrt-slurm}"
port="${RRT_SLURM_PORT:-16817}"
conf="$dir/slurm.conf"
daemons=(munged slurmctld slurmd)

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0" >&2; exit 2; }
die() { echo "local_slurm: $*" >&2; exit 1; }

pid_of() { [[ -s "$dir/$1.pid" ]] && cat "$dir/$1.pid"; }
alive() {  # alive PID NAME: PID is a NAME process, not a zombie (nor a reused pid)
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  [[ "$stat" == "$1 ($2) "[!Z]* ]]
}
running() { local pid; pid=$(pid_of "$1") && alive "$pid" "$1"; }
wait_for() {  # wait_for SECONDS WHAT COMMAND...: polls COMMAND every 0.2 s
  local seconds="$1" what="$2" i; shift 2
  for ((i = 0; i < seconds * 5; i++)); do "$@" && return 0; sleep 0.2; done
  die "$what after $seconds s; logs in $dir/log"
}
export SLURM_CONF="$conf"
# slurmd finds its NodeName by the short host name; NodeAddr=127.0.0.1, so it need not resolve.
node="$(hostname -s)"

write_conf() {
  local cpus="${RRT_SLURM_CPUS:-$(nproc)}"
  [[ -n "${RRT_SLURM_CPUS:-}" ]] || ((cpus >= 4)) || cpus=4
  mkdir -p "$dir/state" "$dir/spool" "$dir/log"
  # No cgroups (containers, no systemd): linuxproc tracking, no task plugin. Cores are
  # oversubscribed up to 4 jobs per core, so small test jobs never queue behind each other.
  # MpiDefault=pmix: what Debian's Open MPI 4.1 wants under srun. MinJobAge=4: `sbatch --wait`
  # polls every 2 s only while MinJobAge < 6 (else after 2, 10, 42, 74... s); a finished job
  # stays visible to squeue and scontrol for about 4 s. cred_expire=10: a requeued job may start
  # again 10 s after its requeue instead of Slurm's default 120 s (the requeue test waits for it).
  cat >"$conf" <<EOF
ClusterName=rrt-local
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge.socket,cred_expire=10
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=pmix
ReturnToService=2
SlurmdParameters=config_overrides
MailProg=/bin/true
KillWait=5
MinJobAge=4
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
node_up() { sinfo -h -n "$node" -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; }
munge_ok() { munge -n -S "$dir/munge.socket" 2>/dev/null | unmunge -S "$dir/munge.socket" >/dev/null 2>&1; }

start() {
  [[ $(id -u) -eq 0 ]] || die "needs root (slurmd runs jobs as their user)"
  local tool
  for tool in munged munge slurmctld slurmd sinfo; do
    command -v "$tool" >/dev/null || die "$tool not found: install slurm-wlm and munge (tools/setup.sh)"
  done
  if running munged && running slurmctld && running slurmd; then
    echo "export SLURM_CONF=$conf"
    return
  fi
  stop_daemons  # a half-started cluster: start again from scratch
  local p
  for p in "$port" $((port + 1)); do
    port_free "$p" || die "port $p is in use (another cluster? set RRT_SLURM_PORT)"
  done
  # munged checks that every directory above its socket is searchable by all.
  mkdir -p "$dir" && chmod 755 "$dir"
  write_conf
  if [[ ! -s "$dir/munge.key" ]]; then
    dd if=/dev/urandom of="$dir/munge.key" bs=1024 count=1 status=none
    chmod 400 "$dir/munge.key"
  fi
  # --force: run over a stale socket (a munged that died) and permissions it finds insecure.
  munged --force --socket="$dir/munge.socket" --key-file="$dir/munge.key" \
    --pid-file="$dir/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munged.seed"
  wait_for 10 "munge does not answer" munge_ok
  # -c: a cold start (no saved jobs); the daemons fork and write their pid files.
  slurmctld -c -f "$conf"
  slurmd -f "$conf"
  wait_for 30 "the node is not idle" node_up
  echo "export SLURM_CONF=$conf"
}

stop_daemons() {
  local name pid i
  for name in slurmd slurmctld munged; do
    pid=$(pid_of "$name") || continue
    if alive "$pid" "$name"; then kill "$pid" 2>/dev/null || true; fi
  done
  for name in slurmd slurmctld munged; do
    pid=$(pid_of "$name") || continue
    for ((i = 0; i < 50; i++)); do alive "$pid" "$name" || break; sleep 0.2; done
    if alive "$pid" "$name"; then kill -9 "$pid" 2>/dev/null || true; fi
    rm -f "$dir/$name.pid"
  done
}

# Jobs still running are cancelled first: their slurmstepd and tasks would outlive slurmd.
cancel_jobs() {
  running slurmctld && running slurmd || return 0
  local jobs i
  mapfile -t jobs < <(squeue -h -o %i 2>/dev/null)
  ((${#jobs[@]})) || return 0
  echo "local_slurm: cancelling jobs ${jobs[*]}" >&2
  scancel "${jobs[@]}" 2>/dev/null || true
  for ((i = 0; i < 75; i++)); do
    [[ -z "$(squeue -h -o %i 2>/dev/null)" ]] && break
    sleep 0.2
  done
}

stop() {
  [[ -d "$dir" ]] || return 0
  cancel_jobs
  stop_daemons
  # Only a directory this script made (its slurm.conf) is deleted.
  [[ -f "$conf" ]] && rm -rf "$dir"
  return 0
}

status() {
  local name pid down=0
  for name in "${daemons[@]}"; do
    if running "$name"; then
      echo "$name: running (pid $(pid_of "$name"))"
    else
      echo "$name: not running"
      down=1
    fi
  done
  if ((down == 0)); then
    echo "export SLURM_CONF=$conf"
    sinfo
  fi
  return $down
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) usage ;;
esac
