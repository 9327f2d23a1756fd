// LoRA adapter added onto a linear layer's output:
//   y += s * (x A^T) B^T      x: [M, in], A: [R, in], B: [out, R], u = x A^T: [M, R] (stashed)
// Backward: du = s * dy B; dB += s * dy^T u; dA += du^T x; dx += du A.
// `du` is caller scratch of M*R elements (no allocation inside the step).
#pragma once

#include <cstdint>

namespace rrt::ops {

template <typename S>
void lora_forward(const S* x, const S* A, const S* B, S* u, S* y, int64_t M, int64_t in,
                  int64_t out, int64_t R, S scale);
template <typename S>
void lora_backward(const S* x, const S* A, const S* B, const S* u, const S* dy, S* dx, S* dA,
                   S* dB, S* du, int64_t M, int64_t in, int64_t out, int64_t R, S scale);

}  // namespace rrt::ops
