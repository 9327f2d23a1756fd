#include "distributed/communicator.h"

#include <cstdlib>
#include <cstring>
#include <string>

#include "core/error.h"
#if RRT_HAVE_MPI
#include "distributed/mpi_communicator.h"
#endif

namespace rrt {

namespace {

class SingleRequest final : public CommRequest {
 public:
  void wait() override {}
  bool test() override { return true; }
};

class SingleProcessCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  std::string backend() const override { return "single"; }
  void all_reduce_mean(float*, int64_t) override {}
  std::unique_ptr<CommRequest> all_reduce_mean_async(float*, int64_t) override {
    return std::make_unique<SingleRequest>();
  }
  void all_reduce_sum(double*, int64_t) override {}
  void broadcast(void*, int64_t, int root) override {
    RRT_CHECK(root == 0, "broadcast", "root ", root, " is not a rank of a 1-process world");
  }
  void all_gather(float*, const std::vector<int64_t>& begins) override { check(begins); }
  void gather(const float* slice, float* full, const std::vector<int64_t>& begins,
              int root) override {
    check(begins);
    RRT_CHECK(root == 0, "gather", "root ", root, " is not a rank of a 1-process world");
    if (full != slice) std::memcpy(full, slice, static_cast<size_t>(begins[1]) * sizeof(float));
  }
  void scatter(const float* full, float* slice, const std::vector<int64_t>& begins,
               int root) override {
    check(begins);
    RRT_CHECK(root == 0, "scatter", "root ", root, " is not a rank of a 1-process world");
    if (full != slice) std::memcpy(slice, full, static_cast<size_t>(begins[1]) * sizeof(float));
  }
  void barrier() override {}
  [[noreturn]] void abort(int code) override { std::_Exit(code); }

 private:
  static void check(const std::vector<int64_t>& begins) {
    RRT_CHECK(begins.size() == 2 && begins[0] == 0, "sharded collective",
              "a 1-process world needs begins {0, n}");
  }
};

// The process count the launcher announced, 0 when none did.
long launcher_world_size() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS"}) {
    if (const char* value = std::getenv(name)) {
      const long n = std::strtol(value, nullptr, 10);
      if (n > 0) return n;
    }
  }
  return 0;
}

}  // namespace

std::unique_ptr<Communicator> make_single_process_communicator() {
  return std::make_unique<SingleProcessCommunicator>();
}

std::vector<int64_t> shard_begins(int64_t n, int world) {
  RRT_CHECK(n >= 0 && world >= 1, "shard_begins", "cannot shard ", n, " floats over ", world,
            " ranks");
  std::vector<int64_t> begins(static_cast<size_t>(world) + 1);
  for (int r = 0; r < world; ++r) begins[static_cast<size_t>(r)] = n / world * r / 16 * 16;
  begins[static_cast<size_t>(world)] = n;
  return begins;
}

std::string detect_launcher() {
  if (std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE")) return "mpirun";
  if (std::getenv("SLURM_NTASKS") && std::getenv("SLURM_PROCID")) return "srun";
  return "";
}

bool mpi_compiled() {
#if RRT_HAVE_MPI
  return true;
#else
  return false;
#endif
}

std::unique_ptr<Communicator> make_communicator() {
  const std::string launcher = detect_launcher();
  if (launcher.empty()) return make_single_process_communicator();
  const long expected = launcher_world_size();
#if RRT_HAVE_MPI
  std::unique_ptr<Communicator> comm = make_mpi_communicator();
  RRT_CHECK(expected <= 1 || comm->world_size() == expected, "distributed", launcher, " started ",
            expected, " processes but MPI sees a world of ", comm->world_size(),
            ". ---> HINT: rrt was probably built against another MPI than the one whose ", launcher,
            " started it (check `which mpirun` against RRT_MPI's find_package(MPI)).");
  return comm;
#else
  RRT_CHECK(expected <= 1, "distributed", launcher, " started ", expected,
            " processes but this rrt was built without MPI (RRT_MPI=OFF), so each would train "
            "alone into the same run directory. Rebuild with -DRRT_MPI=ON.");
  return make_single_process_communicator();
#endif
}

}  // namespace rrt
