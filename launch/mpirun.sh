#!/usr/bin/env bash
# Data-parallel training on one machine (or the hosts of a hostfile) with Open MPI:
#   launch/mpirun.sh RANKS CONFIG [key=value ...]
# Environment: THREADS (OpenMP threads per rank; default: cores / RANKS), HOSTFILE (Open MPI
# hostfile for several machines; the run directory must be on a shared file system only for
# rank 0, which alone writes it), RRT (the rrt binary; default: build/rrt), MPIRUN (mpirun).
# train.micro_batch is per rank: the global batch is RANKS x micro_batch x grad_accum rows.
set -euo pipefail
if [[ $# -lt 2 ]]; then
  sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
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
exec "$mpirun" "${args[@]}" "$rrt" train "$@" train.threads=0
