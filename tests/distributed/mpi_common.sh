# Shared by the mpi_*.sh tests: a temp dir, token shards from `rrt prepare`, mpirun flags.
# Expects rrt, mpirun and src to be set by the caller.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# One OpenMP thread per rank; more ranks than cores is fine here (tests, not speed).
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpi=("$mpirun" --oversubscribe -x OMP_NUM_THREADS -x OMP_WAIT_POLICY)

mkdir -p "$work/text"
for i in 1 2 3; do
  for j in $(seq 1 60); do echo "Text $i, line $j: a block that loops over itself."; done > "$work/text/doc$i.txt"
done
"$rrt" prepare --quiet --out "$work/shards" "$work/text" >/dev/null || fail prepare
cfg="$src/configs/tiny.yaml"
