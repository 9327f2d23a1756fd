#include "core/device.h"
#include "core/error.h"

namespace rrt {

bool cuda_compiled() { return false; }
int cuda_device_count() { return 0; }
DeviceMemoryInfo cuda_memory_info() { return {}; }
std::string cuda_device_name(int index) {
  RRT_FAIL("cuda", "this rrt was built without CUDA; reconfigure with -DRRT_CUDA=ON");
}

}  // namespace rrt
