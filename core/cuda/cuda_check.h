// Checks for CUDA runtime, cuBLAS(Lt) and kernel launches: every failure becomes an rrt::Error
// naming the call and the file:line, so a bad launch never passes silently (exit code 0 proves
// nothing on a GPU). Include only from .cu files or CUDA-only .cpp files.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include "core/error.h"

#define RRT_CUDA_CHECK(call)                                                              \
  do {                                                                                    \
    const cudaError_t rrt_cuda_err_ = (call);                                             \
    RRT_CHECK(rrt_cuda_err_ == cudaSuccess, "cuda", #call, " failed at ", __FILE__, ":", \
              __LINE__, ": ", cudaGetErrorString(rrt_cuda_err_));                         \
  } while (0)

// After a kernel launch: the launch configuration error, if any.
#define RRT_CUDA_CHECK_LAUNCH() RRT_CUDA_CHECK(cudaGetLastError())

// cudaMalloc that fails saying what the memory was for, how much of the GPU's is free, and what
// to lower (`hint`, a sentence).
inline void* cuda_malloc_or_fail(size_t bytes, const char* where, const char* what,
                                 const char* hint) {
  void* p = nullptr;
  const cudaError_t err = cudaMalloc(&p, bytes);
  if (err != cudaSuccess) {
    size_t free_bytes = 0, total_bytes = 0;
    cudaGetLastError();
    cudaMemGetInfo(&free_bytes, &total_bytes);
    RRT_FAIL(where, "cannot allocate ", bytes >> 20, " MiB of GPU memory for the ", what, " (",
             free_bytes >> 20, " of ", total_bytes >> 20, " MiB free): ", cudaGetErrorString(err),
             ". ", hint);
  }
  return p;
}

#define RRT_CUBLAS_CHECK(call)                                                                \
  do {                                                                                        \
    const cublasStatus_t rrt_cublas_st_ = (call);                                             \
    RRT_CHECK(rrt_cublas_st_ == CUBLAS_STATUS_SUCCESS, "cublas", #call, " failed at ",        \
              __FILE__, ":", __LINE__, ": status ", static_cast<int>(rrt_cublas_st_));        \
  } while (0)
