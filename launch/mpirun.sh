#!/usr/bin/env bash
# Data-parallel training on one machine (or the hosts of a hostfile) with Open MPI:
#   launch/mpirun.sh RANKS CONFIG [key=value ...]
# Environment: THREADS (OpenMP threads per rank; default: cores / RANKS), HOSTFILE (Open MPI
# hostfile for several machines; the run directory must be on a shared file system only for
# rank 0, which alone writes it), RRT (the rrt binary; default: build/rrt), MPIRUN (mpirun).
# train.micro_batch is per rank: the global batch is RANKS x micro_batch x grad_accum rows.
# SIGTERM, SIGINT (Ctrl-C) or SIGUSR1 to this script: every rank finishes its step, rank 0
# writes a checkpoint, and the script exits 3; a second SIGTERM or SIGINT stops at once.
set -euo pipefail
if [[ $# -lt 2 ]]; then
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
ranks="$1"; shift
rrt="${RRT:-$(dirname "$0")/../build/rrt}"
mpirun="${MPIRUN:-mpirun}"
cores=$(nproc)
threads="${THREADS:-$(( cores / ranks > 0 ? cores / ranks : 1 ))}"
args=(-np "$ranks" --bind-to none -x OMP_NUM_THREADS="$threads" -x OMP_WAIT_POLICY=passive)
[[ -n "${HOSTFILE:-}" ]] && args+=(--hostfile "$HOSTFILE")
(( ranks * threads > cores )) && [[ -z "${HOSTFILE:-}" ]] && args+=(--oversubscribe)
if [[ $(id -u) -eq 0 ]]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1  # containers
fi
# train.threads=0 keeps the trainer from overriding OMP_NUM_THREADS.
setsid "$mpirun" "${args[@]}" "$rrt" train "$@" train.threads=0 &
pid=$!
# Open MPI's mpirun answers SIGTERM and SIGINT by killing every rank a second later, too soon
# to finish a step and write a checkpoint; it forwards SIGUSR1 as it is. So the first SIGTERM
# or SIGINT reaches the ranks as SIGUSR1 (finish the step, checkpoint, exit 3), the next one as
# SIGTERM (at once). mpirun runs in a session of its own, so that Ctrl-C, or a signal to this
# script's process group, reaches this script only, and through it the ranks.
signals=0
forward() { if (( signals++ == 0 )); then kill -USR1 "$pid"; else kill -TERM "$pid"; fi; }
trap forward TERM INT
trap 'kill -USR1 "$pid"' USR1
while :; do
  status=0
  wait "$pid" || status=$?
  kill -0 "$pid" 2>/dev/null || break  # wait returned for a trapped signal: mpirun still runs
done
# mpirun reports rrt's own exit status (3: stopped on a signal with a checkpoint).
exit "$status"
