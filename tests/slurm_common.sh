# shellcheck shell=bash
# Shared by the tests that run on a one-node Slurm cluster started here (tools/local_slurm.sh):
# exits 77 (ctest: skipped) without slurm-wlm, munge or root; makes a temp dir $work, with the
# cluster in $work/cluster, both stopped and deleted on exit; defines fail MESSAGE (the tail of
# every log, then exit 1) and seconds_since_start; starts the cluster on free ports and exports
# its environment (SLURM_CONF, ...) and one OpenMP thread per process.
# Expects src (the source directory) to be set by the caller.
: "${src:?slurm_common.sh needs src, the source directory}"
for tool in munged slurmctld slurmd sbatch srun; do
  command -v "$tool" >/dev/null ||
    { echo "SKIP: $tool is not installed (tools/setup.sh installs slurm-wlm and munge)"; exit 77; }
done
[[ $(id -u) -eq 0 ]] || { echo "SKIP: a local Slurm cluster needs root"; exit 77; }

work="$(mktemp -d)"
chmod 755 "$work"  # munged wants every directory above its socket searchable
export RRT_SLURM_DIR="$work/cluster"
cleanup() { "$src/tools/local_slurm.sh" stop || true; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 1' TERM INT
fail() {
  echo "FAIL: $*" >&2
  local f
  for f in "$work"/*.out "$work"/*.log "$work"/*/slurm-*.out "$RRT_SLURM_DIR"/log/*.log; do
    [[ -f "$f" ]] || continue
    echo "---- $f" >&2
    tail -n 40 "$f" >&2
  done
  exit 1
}
# Free ports: other clusters (another checkout's test) may be running on this machine.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for _ in $(seq 20); do
  RRT_SLURM_PORT=$((20000 + RANDOM % 20000))
  port_free "$RRT_SLURM_PORT" && port_free $((RRT_SLURM_PORT + 1)) && break
done
export RRT_SLURM_PORT
slurm_start=$(date +%s.%N)
seconds_since_start() { python3 -c "print(f'{$(date +%s.%N) - $slurm_start:.1f}')"; }
exports="$("$src/tools/local_slurm.sh" start)" || fail "the local cluster did not start"
eval "$exports"
echo "cluster up after $(seconds_since_start) s: $SLURM_CONF"
# One OpenMP thread per process; the jobs inherit this environment.
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
