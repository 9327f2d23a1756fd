// All-reduce latency and bandwidth through the Communicator (MPI on host buffers):
//   mpirun -np 2 bench_allreduce [max_mib]
// For each size from 4 bytes to max_mib MiB: the median time of all_reduce_mean over repeats
// (after warm-up), and the bus bandwidth nccl-tests reports, 2 (p - 1) / p x bytes / time: the
// bytes each rank sends and receives in a ring all-reduce, so figures compare across rank counts.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "distributed/communicator.h"

int main(int argc, char** argv) {
  auto comm = rrt::make_communicator();
  const int64_t max_bytes = (argc > 1 ? std::atol(argv[1]) : 64) * (int64_t{1} << 20);
  const int p = comm->world_size();
  if (comm->is_root()) {
    std::printf("all-reduce (mean, fp32) over %d ranks, backend %s\n", p, comm->backend().c_str());
    std::printf("%12s %8s %12s %12s\n", "bytes", "repeats", "median us", "bus GB/s");
  }
  std::vector<float> buffer(static_cast<size_t>(max_bytes / 4), 1.0f);
  for (int64_t bytes = 4; bytes <= max_bytes; bytes *= 4) {
    const int64_t n = bytes / 4;
    const int repeats = bytes <= (1 << 20) ? 200 : 20;
    std::vector<double> times;
    for (int r = 0; r < repeats + 5; ++r) {
      comm->barrier();
      const auto start = std::chrono::steady_clock::now();
      comm->all_reduce_mean(buffer.data(), n);
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (r >= 5) times.push_back(seconds);
    }
    // Every repeat starts at a barrier, so rank 0's time is the collective's time.
    std::nth_element(times.begin(), times.begin() + times.size() / 2, times.end());
    const double median = times[times.size() / 2];
    const double bus = p > 1 ? 2.0 * (p - 1) / p * static_cast<double>(bytes) / median / 1e9 : 0;
    if (comm->is_root())
      std::printf("%12ld %8d %12.1f %12.3f\n", static_cast<long>(bytes), repeats, median * 1e6,
                  bus);
  }
  return 0;
}
