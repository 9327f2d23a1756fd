// What accelerators this build can see. A CPU-only build links a stub that reports none,
// so callers never need #ifdefs (the mlx "no_gpu" pattern).
#pragma once

#include <cstdint>
#include <string>

namespace rrt {

bool cuda_compiled();     // true when built with RRT_CUDA
int cuda_device_count();  // 0 without CUDA or without a GPU
std::string cuda_device_name(int index);

// The memory of this thread's current CUDA device (cudaMemGetInfo): what is free now, after
// every context and allocation on it, this process's and others'. -1s when unknown (no CUDA in
// the build, no GPU, a query that failed); the trainer's GPU memory check
// (trainer/memory_check.h) then lets the run go.
struct DeviceMemoryInfo {
  int device = -1;
  int64_t free_bytes = -1;
  int64_t total_bytes = -1;
};
DeviceMemoryInfo cuda_memory_info();

}  // namespace rrt
