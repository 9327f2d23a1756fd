// The gradient communicator of data-parallel training on GPUs (train.device: cuda, more than
// one rank), behind a header without CUDA types so that the trainer includes it in every build.
// In a CUDA build it is the NCCL communicator (distributed/nccl_communicator.h) on this rank's
// GPU, the launcher's local rank modulo the visible GPUs; its collectives take *device*
// pointers and are ordered after the work already queued on the default stream (where the
// device model runs). A build without CUDA throws rrt::Error saying so.
#pragma once

#include <memory>

#include "distributed/communicator.h"

namespace rrt {

// Selects the GPU (cudaSetDevice): call it before anything allocates device memory. The NCCL
// unique id travels over `bootstrap` (MPI), which must outlive the result and keeps the
// host-side collectives (metrics, broadcasts, abort).
std::unique_ptr<Communicator> make_gpu_communicator(Communicator& bootstrap);

// The GPU make_gpu_communicator picks for this rank (0 without a launcher or without CUDA).
int gpu_for_this_rank();

}  // namespace rrt
