// RMSNorm and LayerNorm on the GPU; the CPU twin is ops/cpu/norm.cpp (same formulas, same
// variable names). Row kernels: one block per row, 8 columns per thread per step, fp32 block sums.
// Weight gradients: a column kernel (32 columns x a chunk of rows per block) whose per-column
// partial sums go to dw/db with one fp32 atomicAdd per column per chunk.
#include <algorithm>
#include <cmath>
#include <initializer_list>

#include "core/cuda/cuda_check.h"
#include "ops/cuda/elementwise.h"
#include "ops/cuda/elementwise_util.cuh"

namespace rrt::ops::cuda {

namespace {
using detail::block_sum;
using detail::load8;
using detail::store8;

template <bool kVec>
__global__ void rmsnorm_forward_kernel(const bf16* x, const bf16* w, bf16* y, float* rstd,
                                       int64_t D, float eps, float offset) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const bf16* xi = x + row * D;
  float ss = 0.f;
  for (int64_t j = threadIdx.x * 8; j < D; j += blockDim.x * 8) {
    float v[8];
    load8<kVec>(xi, j, D, v);
#pragma unroll
    for (int k = 0; k < 8; ++k) ss += v[k] * v[k];
  }
  ss = block_sum(ss, scratch);
  const float r = 1.f / sqrtf(ss / static_cast<float>(D) + eps);
  if (rstd != nullptr && threadIdx.x == 0) rstd[row] = r;
  for (int64_t j = threadIdx.x * 8; j < D; j += blockDim.x * 8) {
    float v[8], g[8];
    load8<kVec>(xi, j, D, v);
    load8<kVec>(w, j, D, g);
#pragma unroll
    for (int k = 0; k < 8; ++k) v[k] = v[k] * r * (offset + g[k]);
    store8<kVec>(y + row * D, j, D, v);
  }
}

// dx += r * (dy * g - x * r * dot),  dot = mean(dy * g * x * r)
template <bool kVec>
__global__ void rmsnorm_backward_dx_kernel(const bf16* x, const bf16* w, const float* rstd,
                                           const bf16* dy, bf16* dx, int64_t D, float offset) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const bf16 *xi = x + row * D, *dyi = dy + row * D;
  const float r = rstd[row];
  float dot = 0.f;
  for (int64_t j = threadIdx.x * 8; j < D; j += blockDim.x * 8) {
    float xv[8], gv[8], dv[8];
    load8<kVec>(xi, j, D, xv);
    load8<kVec>(w, j, D, gv);
    load8<kVec>(dyi, j, D, dv);
#pragma unroll
    for (int k = 0; k < 8; ++k) dot += dv[k] * (offset + gv[k]) * xv[k];
  }
  dot = block_sum(dot, scratch) * r / static_cast<float>(D);
  for (int64_t j = threadIdx.x * 8; j < D; j += blockDim.x * 8) {
    float xv[8], gv[8], dv[8], out[8];
    load8<kVec>(xi, j, D, xv);
    load8<kVec>(w, j, D, gv);
    load8<kVec>(dyi, j, D, dv);
    load8<kVec>(dx + row * D, j, D, out);
#pragma unroll
    for (int k = 0; k < 8; ++k) out[k] += r * (dv[k] * (offset + gv[k]) - xv[k] * r * dot);
    store8<kVec>(dx + row * D, j, D, out);
  }
}

template <bool kVec>
__global__ void layernorm_forward_kernel(const bf16* x, const bf16* w, const bf16* b, bf16* y,
                                         float* mean, float* rstd, int64_t D, float eps) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const bf16* xi = x + row * D;
  const float inv_d = 1.f / static_cast<float>(D);
  float sum = 0.f;
  for (int64_t j = threadIdx.x * 8; j < D; j += blockDim.x * 8) {
    float v[8];
    load8<kVec>(xi, j, D, v);
#pragma unroll
    for (int k = 0; k < 8; ++k) sum += v[k];
  }
  const float mu = block_sum(sum, scratch) * inv_d;
  float var = 0.f;  // two passes: no cancellation from E[x^2] - E[x]^2
  for (int64_t j = threadIdx.x * 8; j < D; j += blockDim.x * 8) {
    float v[8];
    load8<kVec>(xi, j, D, v);
#pragma unroll
    for (int k = 0; k < 8; ++k)
      if (j + k < D) var += (v[k] - mu) * (v[k] - mu);  // padding would add mu^2
  }
  const float r = 1.f / sqrtf(block_sum(var, scratch) * inv_d + eps);
  if (threadIdx.x == 0) {
    if (mean != nullptr) mean[row] = mu;
    if (rstd != nullptr) rstd[row] = r;
  }
  for (int64_t j = threadIdx.x * 8; j < D; j += blockDim.x * 8) {
    float v[8], g[8], bias[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    load8<kVec>(xi, j, D, v);
    load8<kVec>(w, j, D, g);
    if (b != nullptr) load8<kVec>(b, j, D, bias);
#pragma unroll
    for (int k = 0; k < 8; ++k) v[k] = (v[k] - mu) * r * g[k] + bias[k];
    store8<kVec>(y + row * D, j, D, v);
  }
}

// dx += r * (dy * w - mean_g - (x - mu) * r * mean_gx),  g = dy * w,
// mean_g = mean(g), mean_gx = mean(g * (x - mu) * r)
template <bool kVec>
__global__ void layernorm_backward_dx_kernel(const bf16* x, const bf16* w, const float* mean,
                                             const float* rstd, const bf16* dy, bf16* dx,
                                             int64_t D) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const bf16 *xi = x + row * D, *dyi = dy + row * D;
  const float mu = mean[row], r = rstd[row];
  const float inv_d = 1.f / static_cast<float>(D);
  float sum_g = 0.f, sum_gx = 0.f;
  for (int64_t j = threadIdx.x * 8; j < D; j += blockDim.x * 8) {
    float xv[8], wv[8], dv[8];
    load8<kVec>(xi, j, D, xv);
    load8<kVec>(w, j, D, wv);
    load8<kVec>(dyi, j, D, dv);
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      const float g = dv[k] * wv[k];  // 0 in the padding
      sum_g += g;
      sum_gx += g * (xv[k] - mu) * r;
    }
  }
  const float mean_g = block_sum(sum_g, scratch) * inv_d;
  const float mean_gx = block_sum(sum_gx, scratch) * inv_d;
  for (int64_t j = threadIdx.x * 8; j < D; j += blockDim.x * 8) {
    float xv[8], wv[8], dv[8], out[8];
    load8<kVec>(xi, j, D, xv);
    load8<kVec>(w, j, D, wv);
    load8<kVec>(dyi, j, D, dv);
    load8<kVec>(dx + row * D, j, D, out);
#pragma unroll
    for (int k = 0; k < 8; ++k) out[k] += r * (dv[k] * wv[k] - mean_g - (xv[k] - mu) * r * mean_gx);
    store8<kVec>(dx + row * D, j, D, out);
  }
}

constexpr int kColumns = 32, kRowGroups = 8;

// dw[j] += sum_i dy[i,j] * (x[i,j] - mean[i]) * rstd[i]   (mean null: RMSNorm, no centring)
// db[j] += sum_i dy[i,j]
// Block (32, 8): 32 columns; the 8 row groups stride over rows [i0, i1) and meet in shared memory.
__global__ void __launch_bounds__(kColumns* kRowGroups)
    norm_weight_grad_kernel(const bf16* x, const bf16* dy, const float* mean, const float* rstd,
                            float* dw, float* db, int64_t M, int64_t D, int64_t rows_per_block) {
  __shared__ float part_w[kRowGroups][kColumns], part_b[kRowGroups][kColumns];
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kColumns + threadIdx.x;
  const int64_t i0 = static_cast<int64_t>(blockIdx.y) * rows_per_block;
  const int64_t i1 = min(M, i0 + rows_per_block);
  float acc_w = 0.f, acc_b = 0.f;
  if (j < D) {
    for (int64_t i = i0 + threadIdx.y; i < i1; i += kRowGroups) {
      const float g = __bfloat162float(dy[i * D + j]);
      const float centred = __bfloat162float(x[i * D + j]) - (mean != nullptr ? mean[i] : 0.f);
      acc_w += g * centred * rstd[i];
      acc_b += g;
    }
  }
  part_w[threadIdx.y][threadIdx.x] = acc_w;
  part_b[threadIdx.y][threadIdx.x] = acc_b;
  __syncthreads();
  if (threadIdx.y == 0 && j < D) {
    float sw = 0.f, sb = 0.f;
#pragma unroll
    for (int k = 0; k < kRowGroups; ++k) {
      sw += part_w[k][threadIdx.x];
      sb += part_b[k][threadIdx.x];
    }
    if (dw != nullptr) atomicAdd(dw + j, sw);
    if (db != nullptr) atomicAdd(db + j, sb);
  }
}

void check_shape(const char* op, int64_t M, int64_t D) {
  RRT_CHECK(M >= 0 && D > 0, op, "bad shape M=", M, " D=", D);
  RRT_CHECK(M <= INT32_MAX, op, M, " rows exceed one launch (one block per row)");
}

bool all_aligned(int64_t D, std::initializer_list<const void*> ptrs) {
  if (D % 8 != 0) return false;
  for (const void* p : ptrs)
    if (!detail::aligned16(p)) return false;  // null counts as aligned
  return true;
}

void launch_weight_grad(const bf16* x, const bf16* dy, const float* mean, const float* rstd,
                        float* dw, float* db, int64_t M, int64_t D, cudaStream_t stream) {
  // Chunks of at least 64 rows and at most 128 chunks: few atomics per column, enough blocks.
  const int64_t chunks = std::clamp<int64_t>((M + 63) / 64, 1, 128);
  const int64_t rows_per_block = (M + chunks - 1) / chunks;
  const dim3 grid(static_cast<unsigned>((D + kColumns - 1) / kColumns),
                  static_cast<unsigned>(chunks));
  norm_weight_grad_kernel<<<grid, dim3(kColumns, kRowGroups), 0, stream>>>(
      x, dy, mean, rstd, dw, db, M, D, rows_per_block);
  RRT_CUDA_CHECK_LAUNCH();
}
}  // namespace

void rmsnorm_forward(const bf16* x, const bf16* w, bf16* y, float* rstd, int64_t M, int64_t D,
                     float eps, bool unit_offset, cudaStream_t stream) {
  check_shape("rmsnorm", M, D);
  if (M == 0) return;
  const float offset = unit_offset ? 1.f : 0.f;
  const unsigned rows = static_cast<unsigned>(M);
  const int threads = detail::row_threads(D);
  if (all_aligned(D, {x, w, y}))
    rmsnorm_forward_kernel<true><<<rows, threads, 0, stream>>>(x, w, y, rstd, D, eps, offset);
  else
    rmsnorm_forward_kernel<false><<<rows, threads, 0, stream>>>(x, w, y, rstd, D, eps, offset);
  RRT_CUDA_CHECK_LAUNCH();
}

void rmsnorm_backward(const bf16* x, const bf16* w, const float* rstd, const bf16* dy, bf16* dx,
                      float* dw, int64_t M, int64_t D, bool unit_offset, cudaStream_t stream) {
  check_shape("rmsnorm", M, D);
  if (M == 0) return;
  const float offset = unit_offset ? 1.f : 0.f;
  const unsigned rows = static_cast<unsigned>(M);
  const int threads = detail::row_threads(D);
  if (dx != nullptr) {
    if (all_aligned(D, {x, w, dy, dx}))
      rmsnorm_backward_dx_kernel<true><<<rows, threads, 0, stream>>>(x, w, rstd, dy, dx, D, offset);
    else
      rmsnorm_backward_dx_kernel<false>
          <<<rows, threads, 0, stream>>>(x, w, rstd, dy, dx, D, offset);
    RRT_CUDA_CHECK_LAUNCH();
  }
  // The gain's gradient is the same with or without the unit offset: d(1 + w)/dw = 1.
  if (dw != nullptr) launch_weight_grad(x, dy, nullptr, rstd, dw, nullptr, M, D, stream);
}

void layernorm_forward(const bf16* x, const bf16* w, const bf16* b, bf16* y, float* mean,
                       float* rstd, int64_t M, int64_t D, float eps, cudaStream_t stream) {
  check_shape("layernorm", M, D);
  if (M == 0) return;
  const unsigned rows = static_cast<unsigned>(M);
  const int threads = detail::row_threads(D);
  if (all_aligned(D, {x, w, b, y}))
    layernorm_forward_kernel<true><<<rows, threads, 0, stream>>>(x, w, b, y, mean, rstd, D, eps);
  else
    layernorm_forward_kernel<false><<<rows, threads, 0, stream>>>(x, w, b, y, mean, rstd, D, eps);
  RRT_CUDA_CHECK_LAUNCH();
}

void layernorm_backward(const bf16* x, const bf16* w, const float* mean, const float* rstd,
                        const bf16* dy, bf16* dx, float* dw, float* db, int64_t M, int64_t D,
                        cudaStream_t stream) {
  check_shape("layernorm", M, D);
  if (M == 0) return;
  const unsigned rows = static_cast<unsigned>(M);
  const int threads = detail::row_threads(D);
  if (dx != nullptr) {
    if (all_aligned(D, {x, w, dy, dx}))
      layernorm_backward_dx_kernel<true><<<rows, threads, 0, stream>>>(x, w, mean, rstd, dy, dx, D);
    else
      layernorm_backward_dx_kernel<false>
          <<<rows, threads, 0, stream>>>(x, w, mean, rstd, dy, dx, D);
    RRT_CUDA_CHECK_LAUNCH();
  }
  if (dw != nullptr || db != nullptr) launch_weight_grad(x, dy, mean, rstd, dw, db, M, D, stream);
}

}  // namespace rrt::ops::cuda
