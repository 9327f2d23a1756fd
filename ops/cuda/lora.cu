#include "ops/cuda/lora.h"

namespace rrt::ops::cuda {

void lora_forward(GemmContext& ctx, const bf16* x, const bf16* A, const bf16* B, bf16* u, bf16* y,
                  int64_t M, int64_t in, int64_t out, int64_t R, float scale) {
  if (R == 0) return;
  gemm(ctx, false, true, M, R, in, 1.f, x, A, 0.f, u);     // u = x A^T       [M, R]
  gemm(ctx, false, true, M, out, R, scale, u, B, 1.f, y);  // y += s u B^T    [M, out]
}

void lora_forward_overwrite(GemmContext& ctx, const bf16* x, const bf16* A, const bf16* B, bf16* u,
                            bf16* y, int64_t M, int64_t in, int64_t out, int64_t R, float scale) {
  if (R == 0) return;
  gemm(ctx, false, true, M, R, in, 1.f, x, A, 0.f, u);     // u = x A^T       [M, R]
  gemm(ctx, false, true, M, out, R, scale, u, B, 0.f, y);  // y = s u B^T     [M, out]
}

void lora_backward(GemmContext& ctx, const bf16* x, const bf16* A, const bf16* B, const bf16* u,
                   const bf16* dy, bf16* dx, float* dA, float* dB, bf16* du, int64_t M, int64_t in,
                   int64_t out, int64_t R, float scale) {
  if (R == 0) return;
  gemm(ctx, false, false, M, R, out, scale, dy, B, 0.f, du);         // du = s dy B     [M, R]
  if (dB) gemm(ctx, true, false, out, R, M, scale, dy, u, 1.f, dB);  // dB += s dy^T u [out, R]
  if (dA) gemm(ctx, true, false, R, in, M, 1.f, du, x, 1.f, dA);     // dA += du^T x   [R, in]
  if (dx) gemm(ctx, false, false, M, in, R, 1.f, du, A, 1.f, dx);    // dx += du A     [M, in]
}

}  // namespace rrt::ops::cuda
