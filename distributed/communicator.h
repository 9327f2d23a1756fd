// Communicator: the collectives data-parallel training needs, behind one interface (mlx's
// distributed::Group pattern). The single-process implementation's collectives are no-ops, so
// the same training code runs with 1 or N processes; MPI (host buffers) is the other one.
//
// Every collective must be called by every rank, in the same order, with the same sizes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace rrt {

// A non-blocking collective in flight. Its buffer must not be read or written until wait()
// returns; wait() is idempotent, and the destructor waits too.
class CommRequest {
 public:
  virtual ~CommRequest() = default;
  virtual void wait() = 0;
  // Lets the library advance the transfer (MPI progresses non-blocking collectives only inside
  // MPI calls); true once it has completed.
  virtual bool test() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual std::string backend() const = 0;  // "single" or "mpi"
  bool is_root() const { return rank() == 0; }

  // In place: data[i] becomes the mean over ranks of data[i] (gradients).
  virtual void all_reduce_mean(float* data, int64_t n) = 0;
  // Non-blocking all_reduce_mean: the mean is in data once the request has been waited on.
  virtual std::unique_ptr<CommRequest> all_reduce_mean_async(float* data, int64_t n) = 0;
  // In place: data[i] becomes the sum over ranks (a few metrics; not for large buffers).
  virtual void all_reduce_sum(double* data, int64_t n) = 0;
  // Sharded buffers (ZeRO-1): rank r owns floats [begins[r], begins[r + 1]) of a flat buffer
  // of begins.back() floats; begins has world_size() + 1 entries, non-decreasing, from 0.
  // all_gather: in place, every rank's slice of `data` reaches every other rank.
  virtual void all_gather(float* data, const std::vector<int64_t>& begins) = 0;
  // gather: each rank's `slice` (its own range's floats) lands in root's `full` at its range;
  // `full` is read only on root (others may pass null).
  virtual void gather(const float* slice, float* full, const std::vector<int64_t>& begins,
                      int root = 0) = 0;
  // scatter: root's `full` range r lands in rank r's `slice`.
  virtual void scatter(const float* full, float* slice, const std::vector<int64_t>& begins,
                       int root = 0) = 0;
  // Root's bytes replace every other rank's.
  virtual void broadcast(void* data, int64_t bytes, int root = 0) = 0;
  virtual void barrier() = 0;
  // Ends every process of the job with this exit code, now (MPI_Abort); never returns. The
  // error path calls it so that one failing rank cannot leave the others waiting forever.
  [[noreturn]] virtual void abort(int code) = 0;
};

// One process, world size 1: every collective leaves the data as it is.
std::unique_ptr<Communicator> make_single_process_communicator();

// The launcher that started this process, from its environment: "mpirun" (Open MPI's
// OMPI_COMM_WORLD_SIZE, or PMI_SIZE from MPICH/Hydra), "srun" (SLURM_NTASKS with SLURM_PROCID)
// or "" when started directly.
std::string detect_launcher();

// MPI when the process was started by mpirun/srun and the build has MPI (initialising MPI on
// first use and finalising it at exit), otherwise the single-process communicator. A launcher
// without MPI in the build is an error when it asks for more than one process.
std::unique_ptr<Communicator> make_communicator();

// begins for sharding n floats evenly over `world` ranks (each boundary a multiple of 16 floats,
// so every slice starts 64-byte aligned when the buffer does).
std::vector<int64_t> shard_begins(int64_t n, int world);

// True when this build was compiled with MPI (RRT_MPI=ON).
bool mpi_compiled();

}  // namespace rrt
