// LoRA adapter on the GPU, the CUDA twin of ops/lora.h, through the cuBLASLt wrapper:
//   y += s * (x A^T) B^T      x: [M, in], A: [R, in], B: [out, R], u = x A^T: [M, R] (stashed)
// Backward: du = s dy B; dB += s dy^T u; dA += du^T x; dx += du A.
// Activations (x, u, y, dy, dx, du) are bf16; the adapter's weight gradients dA, dB are fp32 and
// accumulate (beta = 1). `du` is caller scratch of M*R bf16 elements. R = 0 does nothing.
// A per-loop adapter is applied to the whole batch (all M = N*T rows) in one call.
#pragma once

#include <cstdint>

#include "ops/cuda/gemm.h"

namespace rrt::ops::cuda {

void lora_forward(GemmContext& ctx, const bf16* x, const bf16* A, const bf16* B, bf16* u, bf16* y,
                  int64_t M, int64_t in, int64_t out, int64_t R, float scale);
// The same product written over y (y = s (x A^T) B^T, never read): the first term of a projection
// whose tied GEMM then adds onto y with beta = 1 inside its own compute-bound pass, instead of a
// separate read-modify-write of y (CudaBackend::project, ops/cuda/backend.h). R = 0 does nothing.
void lora_forward_overwrite(GemmContext& ctx, const bf16* x, const bf16* A, const bf16* B, bf16* u,
                            bf16* y, int64_t M, int64_t in, int64_t out, int64_t R, float scale);
void lora_backward(GemmContext& ctx, const bf16* x, const bf16* A, const bf16* B, const bf16* u,
                   const bf16* dy, bf16* dx, float* dA, float* dB, bf16* du, int64_t M, int64_t in,
                   int64_t out, int64_t R, float scale);

}  // namespace rrt::ops::cuda
