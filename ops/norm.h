// Normalisations over the last dim D of x: [M, D].
//   RMSNorm:   y = x / sqrt(mean(x^2) + eps) * g,  g = w (Llama) or 1 + w (Gemma: unit_offset)
//   LayerNorm: y = (x - mean) / sqrt(var + eps) * w + b   (GPT-NeoX)
// Forward stores per-row statistics (rstd, and mean for LayerNorm) that backward reuses.
#pragma once

#include <cstdint>

namespace rrt::ops {

template <typename S>
void rmsnorm_forward(const S* x, const S* w, S* y, S* rstd, int64_t M, int64_t D, S eps,
                     bool unit_offset);
template <typename S>
void rmsnorm_backward(const S* x, const S* w, const S* rstd, const S* dy, S* dx, S* dw, int64_t M,
                      int64_t D, bool unit_offset);

template <typename S>
void layernorm_forward(const S* x, const S* w, const S* b, S* y, S* mean, S* rstd, int64_t M,
                       int64_t D, S eps);
template <typename S>
void layernorm_backward(const S* x, const S* w, const S* mean, const S* rstd, const S* dy, S* dx,
                        S* dw, S* db, int64_t M, int64_t D);

}  // namespace rrt::ops
