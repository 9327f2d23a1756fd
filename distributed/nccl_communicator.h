// The NCCL communicator (CUDA builds): the gradient collectives on *device* buffers, one rank
// per GPU. NCCL's unique id travels over a bootstrap communicator (MPI under mpirun/srun, or the
// single-process one for one rank), which also keeps the host-side collectives: all_reduce_sum
// of metrics, broadcast of host state, barrier and abort. So:
//   device pointers: all_reduce_mean (+ async), all_gather, gather, scatter;
//   host pointers:   all_reduce_sum, broadcast, barrier, abort (delegated to the bootstrap).
// Asynchronous all-reduces run on a side stream that first waits for the compute stream, so
// a bucket overlaps the rest of backward; wait() blocks the host until it is done, and the
// compute stream must not touch the bucket before then.
#pragma once

#include <cuda_runtime.h>

#include <memory>

#include "distributed/communicator.h"

namespace rrt {

// The GPU this rank should use: the launcher's local rank (OMPI_COMM_WORLD_LOCAL_RANK,
// SLURM_LOCALID, MPI_LOCALRANKID) modulo the visible device count; 0 without a launcher.
int local_device_for_rank();

// Creates the NCCL communicator of bootstrap's world on `device` (cudaSetDevice is called);
// collectives are ordered after work already queued on `compute` (may be null: the default
// stream). bootstrap must outlive the result.
std::unique_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap, int device,
                                                     cudaStream_t compute);

}  // namespace rrt
