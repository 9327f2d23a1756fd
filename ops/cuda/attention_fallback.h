// rrt's own causal GQA attention kernels, for the shapes cuDNN's SDPA cannot serve (see
// ops/cuda/attention.h: head dims that are not a multiple of 8 or above 256, a backward above
// Dh = 128 off Hopper, T = 1 in backward, pointers not 16-byte aligned). ops/cuda/attention.cpp
// picks them in one place; nothing else calls them.
//   q: [N, T, H, Dh]   k, v: [N, T, Hkv, Dh]   out: [N, T, H, Dh]   bf16, any 2-byte alignment
//   lse: [N, H, T] fp32, natural log (the CPU's and cuDNN's definition: both paths interchange)
// Any N, T, H, Hkv >= 1 with H a multiple of Hkv, and 1 <= Dh <= kFallbackMaxHeadDim.
// Flash-style, O(T) memory: one warp per query row keeps a running max and sum over key tiles in
// shared memory, fp32 throughout, bf16 only at the loads and stores. It is the CPU twin
// (ops/cpu/attention.cpp) written row by row, for correctness and readability; it uses no tensor
// cores and is many times slower than cuDNN (bench/gpu_attention.cpp measures by how much).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "ops/attention.h"

namespace rrt::ops::cuda {

using bf16 = __nv_bfloat16;

// 16 fp32 registers a lane for the row's q and accumulator: 32 lanes x 16.
constexpr int64_t kFallbackMaxHeadDim = 512;

// fp32 elements of the backward's scratch: D = rowsum(dO * O), [N, H, T].
int64_t attention_fallback_scratch_elems(const AttentionShape& shape);

// out = softmax(scale q k^T + causal mask) v, lse as above. Queued on `stream`. The mask
// (ops/attention.h; doc_start in device memory): each query row's keys start at its first key,
// scores soft-capped; backward walks the same ranges.
void attention_fallback_forward(const bf16* q, const bf16* k, const bf16* v, bf16* out, float* lse,
                                const AttentionShape& shape, cudaStream_t stream,
                                const AttentionMask& mask = {});
// dq += dL/dq, dk += dL/dk, dv += dL/dv from the forward's out and lse; `scratch` holds
// attention_fallback_scratch_elems(shape) floats. Deterministic (no atomics).
void attention_fallback_backward(const bf16* q, const bf16* k, const bf16* v, const bf16* out,
                                 const float* lse, const bf16* dout, bf16* dq, bf16* dk, bf16* dv,
                                 float* scratch, const AttentionShape& shape, cudaStream_t stream,
                                 const AttentionMask& mask = {});

}  // namespace rrt::ops::cuda
