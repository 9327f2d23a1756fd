// What accelerators this build can see. A CPU-only build links a stub that reports none,
// so callers never need #ifdefs (the mlx "no_gpu" pattern).
#pragma once

#include <string>

namespace rrt {

bool cuda_compiled();                // true when built with RRT_CUDA
int cuda_device_count();             // 0 without CUDA or without a GPU
std::string cuda_device_name(int index);

}  // namespace rrt
