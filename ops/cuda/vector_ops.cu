// Whole-arena kernels of the device model's step (ops/cuda/vector_ops.h).
#include "core/cuda/cuda_check.h"
#include "ops/cuda/elementwise_util.cuh"
#include "ops/cuda/vector_ops.h"
#include "ops/logit_softcap.h"

namespace rrt::ops::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void to_bf16_kernel(const float* in, bf16* out, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = __float2bfloat16_rn(in[i]);
}

__global__ void scale_kernel(float* x, int64_t n, float factor) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    x[i] *= factor;
}

__global__ void softcap_kernel(float* z, int64_t n, float cap) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    z[i] = softcap_value(z[i], cap);
}

// Double sum over the block (blockDim.x == kThreads), fixed order: a shared-memory tree.
__device__ double block_sum_double(double v) {
  __shared__ double partial[kThreads];
  partial[threadIdx.x] = v;
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
    __syncthreads();
  }
  return partial[0];
}

__global__ void sum_squares_partial_kernel(const float* x, int64_t n, double* partials) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  double sum = 0;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    sum += static_cast<double>(x[i]) * x[i];
  sum = block_sum_double(sum);
  if (threadIdx.x == 0) partials[blockIdx.x] = sum;
}

__global__ void sum_partials_kernel(double* partials, int count) {
  double sum = 0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) sum += partials[i];
  sum = block_sum_double(sum);
  if (threadIdx.x == 0) partials[count] = sum;
}

}  // namespace

void to_bf16(const float* in, bf16* out, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  to_bf16_kernel<<<detail::grid_for(n, kThreads), kThreads, 0, stream>>>(in, out, n);
  RRT_CUDA_CHECK_LAUNCH();
}

void scale_inplace(float* x, int64_t n, float factor, cudaStream_t stream) {
  if (n <= 0) return;
  scale_kernel<<<detail::grid_for(n, kThreads), kThreads, 0, stream>>>(x, n, factor);
  RRT_CUDA_CHECK_LAUNCH();
}

void softcap_logits(float* z, int64_t n, float cap, cudaStream_t stream) {
  if (n <= 0 || cap <= 0.f) return;
  softcap_kernel<<<detail::grid_for(n, kThreads), kThreads, 0, stream>>>(z, n, cap);
  RRT_CUDA_CHECK_LAUNCH();
}

double sum_squares(const float* x, int64_t n, double* workspace, cudaStream_t stream) {
  if (n <= 0) return 0.0;
  // workspace: kSumSquaresBlocks partial sums, then the total at [kSumSquaresBlocks].
  sum_squares_partial_kernel<<<kSumSquaresBlocks, kThreads, 0, stream>>>(x, n, workspace);
  RRT_CUDA_CHECK_LAUNCH();
  sum_partials_kernel<<<1, kThreads, 0, stream>>>(workspace, kSumSquaresBlocks);
  RRT_CUDA_CHECK_LAUNCH();
  double total = 0;
  RRT_CUDA_CHECK(cudaMemcpyAsync(&total, workspace + kSumSquaresBlocks, sizeof(double),
                                 cudaMemcpyDeviceToHost, stream));
  RRT_CUDA_CHECK(cudaStreamSynchronize(stream));
  return total;
}

}  // namespace rrt::ops::cuda
