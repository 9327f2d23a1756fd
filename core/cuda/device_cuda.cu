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

std::string cuda_device_name(int index) {
  cudaDeviceProp prop{};
  cudaError_t err = cudaGetDeviceProperties(&prop, index);
  RRT_CHECK(err == cudaSuccess, "cuda", "cannot query device ", index, ": ",
            cudaGetErrorString(err));
  return prop.name;
}

}  // namespace rrt
