// A build without CUDA: data parallel on GPUs is an error that says why, not a link failure.
#include "core/error.h"
#include "distributed/gpu_communicator.h"

namespace rrt {

std::unique_ptr<Communicator> make_gpu_communicator(Communicator&) {
  RRT_FAIL("train.device",
           "cuda with several ranks needs NCCL, and this rrt was built without CUDA "
           "(RRT_CUDA=OFF); rebuild with -DRRT_CUDA=ON or set train.device: cpu");
}

int gpu_for_this_rank() { return 0; }

}  // namespace rrt
