// Device helpers shared by the element-wise and row kernels (embedding, norm, rope, activation,
// adamw): 16-byte loads and stores with a bounds-checked scalar fallback, and fixed-order fp32
// reductions (the same input always gives the same bits).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

namespace rrt::ops::cuda::detail {

using bf16 = __nv_bfloat16;

constexpr int kWarp = 32;

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Blocks for a grid-stride loop over `work` items at `per_block` items per block; at least 1.
inline unsigned grid_for(int64_t work, int64_t per_block) {
  const int64_t blocks = (work + per_block - 1) / per_block;
  return static_cast<unsigned>(std::clamp<int64_t>(blocks, 1, int64_t{1} << 20));
}

// Threads for one block per row of D elements handled 8 at a time: a multiple of 32, <= 256.
inline int row_threads(int64_t D) {
  const int64_t vecs = (D + 7) / 8;
  return static_cast<int>(std::clamp<int64_t>((vecs + kWarp - 1) / kWarp * kWarp, kWarp, 256));
}

// 8 bf16 packed in 16 bytes, as fp32.
__device__ __forceinline__ void unpack8(const uint4& raw, float (&out)[8]) {
  const __nv_bfloat162* pairs = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const float2 f = __bfloat1622float2(pairs[k]);
    out[2 * k] = f.x;
    out[2 * k + 1] = f.y;
  }
}

// p[i..i+8) as fp32. kVec: one 16-byte load; the caller guarantees p + i is 16-byte aligned and
// i + 8 <= n. Otherwise scalar loads, elements at or past n read as 0.
template <bool kVec>
__device__ __forceinline__ void load8(const bf16* p, int64_t i, int64_t n, float (&out)[8]) {
  if constexpr (kVec) {
    unpack8(*reinterpret_cast<const uint4*>(p + i), out);
  } else {
#pragma unroll
    for (int k = 0; k < 8; ++k) out[k] = i + k < n ? __bfloat162float(p[i + k]) : 0.f;
  }
}

// p[i..i+8) <- v (rounded to nearest bf16); the same contract as load8.
template <bool kVec>
__device__ __forceinline__ void store8(bf16* p, int64_t i, int64_t n, const float (&v)[8]) {
  if constexpr (kVec) {
    uint4 raw;
    __nv_bfloat162* pairs = reinterpret_cast<__nv_bfloat162*>(&raw);
#pragma unroll
    for (int k = 0; k < 4; ++k) pairs[k] = __floats2bfloat162_rn(v[2 * k], v[2 * k + 1]);
    *reinterpret_cast<uint4*>(p + i) = raw;
  } else {
#pragma unroll
    for (int k = 0; k < 8; ++k)
      if (i + k < n) p[i + k] = __float2bfloat16_rn(v[k]);
  }
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset /= 2)
    v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Sum over the block, returned to every thread. blockDim.x is a multiple of 32; scratch is a
// __shared__ float[32]. Safe to call repeatedly with the same scratch.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int warps = blockDim.x / kWarp;
  v = warp_sum(v);
  __syncthreads();  // the previous call's readers are done with scratch
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : 0.f;
  return warp_sum(v);
}

}  // namespace rrt::ops::cuda::detail
