#include <cuda_runtime.h>

#include "core/device.h"
#include "core/error.h"

namespace rrt {

bool cuda_compiled() { return true; }

int cuda_device_count() {
  int count = 0;
  // No driver or no GPU is not an error here: it means "zero devices".
  if (cudaGetDeviceCount(&count) != cudaSuccess) return 0;
  return count;
}

DeviceMemoryInfo cuda_memory_info() {
  DeviceMemoryInfo info;
  int device = 0;
  size_t free_bytes = 0, total_bytes = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) {
    cudaGetLastError();  // unknown, not an error: the caller's check lets the run go
    return info;
  }
  info.device = device;
  info.free_bytes = static_cast<int64_t>(free_bytes);
  info.total_bytes = static_cast<int64_t>(total_bytes);
  return info;
}

std::string cuda_device_name(int index) {
  cudaDeviceProp prop{};
  cudaError_t err = cudaGetDeviceProperties(&prop, index);
  RRT_CHECK(err == cudaSuccess, "cuda", "cannot query device ", index, ": ",
            cudaGetErrorString(err));
  return prop.name;
}

}  // namespace rrt
