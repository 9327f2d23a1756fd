// Token embedding on the GPU; the CPU twin is ops/cpu/embedding.cpp.
#include <cmath>

#include "core/cuda/cuda_check.h"
#include "ops/cuda/elementwise.h"
#include "ops/cuda/elementwise_util.cuh"

namespace rrt::ops::cuda {

namespace {
using detail::load8;
using detail::store8;

// One block per output row, 8 columns per thread per step.
template <bool kVec>
__global__ void embedding_forward_kernel(const int32_t* tokens, const bf16* table, bf16* out,
                                         int64_t D, int64_t V, float scale) {
  const int64_t i = blockIdx.x;
  const int32_t token = tokens[i];
  bf16* out_row = out + i * D;
  if (token < 0 || token >= V) {
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) out_row[j] = __float2bfloat16(NAN);
    return;
  }
  const bf16* row = table + static_cast<int64_t>(token) * D;
  for (int64_t j = threadIdx.x * 8; j < D; j += blockDim.x * 8) {
    float v[8];
    load8<kVec>(row, j, D, v);
#pragma unroll
    for (int k = 0; k < 8; ++k) v[k] *= scale;
    store8<kVec>(out_row, j, D, v);
  }
}

// One block per input row; columns never collide within a row, repeated tokens across rows do.
template <bool kVec>
__global__ void embedding_backward_atomic_kernel(const int32_t* tokens, const bf16* dout,
                                                 float* dtable, int64_t D, int64_t V, float scale) {
  const int64_t i = blockIdx.x;
  const int32_t token = tokens[i];
  if (token < 0 || token >= V) return;
  float* row = dtable + static_cast<int64_t>(token) * D;
  for (int64_t j = threadIdx.x * 8; j < D; j += blockDim.x * 8) {
    float g[8];
    load8<kVec>(dout + i * D, j, D, g);
#pragma unroll
    for (int k = 0; k < 8; ++k)
      if (j + k < D) atomicAdd(row + j + k, scale * g[k]);
  }
}

constexpr int kOrderedThreads = 256;

// Block b owns vocabulary rows [v0, v1). It walks the tokens in chunks of blockDim, compacts the
// positions that hit its rows (in position order) into shared memory, then adds those dout rows
// one after another; thread t always owns columns t, t + blockDim, ... so each dtable element is
// updated by one thread, in position order.
__global__ void __launch_bounds__(kOrderedThreads)
    embedding_backward_ordered_kernel(const int32_t* tokens, const bf16* dout, float* dtable,
                                      int64_t M, int64_t D, int64_t V, int64_t rows_per_block,
                                      float scale) {
  __shared__ int64_t hits[kOrderedThreads];
  __shared__ int warp_offset[kOrderedThreads / detail::kWarp];
  __shared__ int hit_count;
  const int64_t v0 = blockIdx.x * rows_per_block, v1 = min(V, v0 + rows_per_block);
  const int lane = threadIdx.x % detail::kWarp, warp = threadIdx.x / detail::kWarp;
  for (int64_t chunk = 0; chunk < M; chunk += kOrderedThreads) {
    const int64_t i = chunk + threadIdx.x;
    const int64_t token = i < M ? tokens[i] : -1;
    const bool hit = token >= v0 && token < v1;  // out-of-range tokens hit no block
    const unsigned ballot = __ballot_sync(0xffffffffu, hit);
    if (lane == 0) warp_offset[warp] = __popc(ballot);
    __syncthreads();
    if (threadIdx.x == 0) {  // exclusive scan over the 8 warps
      int total = 0;
      for (int w = 0; w < kOrderedThreads / detail::kWarp; ++w) {
        const int c = warp_offset[w];
        warp_offset[w] = total;
        total += c;
      }
      hit_count = total;
    }
    __syncthreads();
    if (hit) hits[warp_offset[warp] + __popc(ballot & ((1u << lane) - 1u))] = i;
    __syncthreads();
    for (int k = 0; k < hit_count; ++k) {
      const int64_t p = hits[k];
      float* row = dtable + static_cast<int64_t>(tokens[p]) * D;
      const bf16* g = dout + p * D;
      for (int64_t j = threadIdx.x; j < D; j += kOrderedThreads)
        row[j] += scale * __bfloat162float(g[j]);
    }
    __syncthreads();  // hits and warp_offset are rewritten by the next chunk
  }
}

void check_shape(const char* op, int64_t M, int64_t D, int64_t V) {
  RRT_CHECK(M >= 0 && D > 0 && V > 0, op, "bad shape M=", M, " D=", D, " V=", V);
  RRT_CHECK(V <= INT32_MAX, op, "vocabulary of ", V, " does not fit int32 tokens");
  RRT_CHECK(M <= INT32_MAX, op, M, " rows exceed one launch (one block per row)");
}
}  // namespace

void embedding_forward(const int32_t* tokens, const bf16* table, bf16* out, int64_t M, int64_t D,
                       int64_t V, float scale, cudaStream_t stream) {
  check_shape("embedding", M, D, V);
  if (M == 0) return;
  const bool vec = D % 8 == 0 && detail::aligned16(table) && detail::aligned16(out);
  const int threads = detail::row_threads(D);
  if (vec)
    embedding_forward_kernel<true>
        <<<static_cast<unsigned>(M), threads, 0, stream>>>(tokens, table, out, D, V, scale);
  else
    embedding_forward_kernel<false>
        <<<static_cast<unsigned>(M), threads, 0, stream>>>(tokens, table, out, D, V, scale);
  RRT_CUDA_CHECK_LAUNCH();
}

void embedding_backward(const int32_t* tokens, const bf16* dout, float* dtable, int64_t M,
                        int64_t D, int64_t V, float scale, cudaStream_t stream) {
  check_shape("embedding", M, D, V);
  if (M == 0) return;
  const bool vec = D % 8 == 0 && detail::aligned16(dout);
  const int threads = detail::row_threads(D);
  if (vec)
    embedding_backward_atomic_kernel<true>
        <<<static_cast<unsigned>(M), threads, 0, stream>>>(tokens, dout, dtable, D, V, scale);
  else
    embedding_backward_atomic_kernel<false>
        <<<static_cast<unsigned>(M), threads, 0, stream>>>(tokens, dout, dtable, D, V, scale);
  RRT_CUDA_CHECK_LAUNCH();
}

void embedding_backward_deterministic(const int32_t* tokens, const bf16* dout, float* dtable,
                                      int64_t M, int64_t D, int64_t V, float scale,
                                      cudaStream_t stream) {
  check_shape("embedding", M, D, V);
  if (M == 0) return;
  // About 1024 blocks: enough to fill the GPU, few enough that the token scans stay cheap.
  const int64_t rows_per_block = (V + 1023) / 1024;
  const int64_t blocks = (V + rows_per_block - 1) / rows_per_block;
  embedding_backward_ordered_kernel<<<static_cast<unsigned>(blocks), kOrderedThreads, 0, stream>>>(
      tokens, dout, dtable, M, D, V, rows_per_block, scale);
  RRT_CUDA_CHECK_LAUNCH();
}

}  // namespace rrt::ops::cuda
