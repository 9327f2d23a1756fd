// exp over 16 fp32 lanes for the bf16 backend's softmaxes (ops/cpu_bf16/head_loss.cpp,
// exit_loss.cpp): glibc's scalar expf, called once per logit, costs more than the head's GEMMs.
#pragma once

#include <cstdint>
#include <cstring>

#include "ops/cpu_bf16/convert.h"

namespace rrt::ops::cpu_bf16 {

typedef int32_t I16 __attribute__((vector_size(64)));

// exp(x) for x <= ~88 (every caller passes log-probabilities or x - max, so x <= 0 up to rounding),
// Cephes' expf: x = n ln2 + r with |r| <= ln2 / 2, a degree-6 polynomial in r, 2^n through the
// exponent bits; about 1 ulp. Below -87 the result is clamped to ~1e-38, which no softmax sum
// (>= 1) or probability-weighted term can tell from 0.
inline F16 exp_lanes(F16 x) {
  x = x < splat(-87.f) ? splat(-87.f) : x;
  const F16 magic = splat(12582912.f);  // 1.5 * 2^23: adding and subtracting rounds to integer
  const F16 n = (x * 1.44269504f + magic) - magic;
  const F16 r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  F16 p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.f;
  const I16 bits = (__builtin_convertvector(n, I16) + 127) << 23;
  F16 scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// The activations of ops/activation_math.h on 16 lanes, through exp_lanes rather than a scalar
// exp per lane (which cost the bf16 SwiGLU 2x its fp32 version). sigmoid: inputs below -87 are
// clamped, where the result (~1.6e-38) is 0 to any bf16 consumer.
inline F16 sigmoid_lanes(F16 x) {
  x = x < splat(-87.f) ? splat(-87.f) : x;
  return 1.f / (1.f + exp_lanes(-x));
}
// GELU's tanh form, written with 0.5 (1 + tanh(u)) = sigmoid(2u) and 1 - tanh(u)^2 = 4 s (1 - s):
// gelu(x) = x s and gelu'(x) = s + 2 x s (1 - s) du/dx, s = sigmoid(2u),
// u = sqrt(2/pi) (x + 0.044715 x^3).
inline F16 gelu_tanh_sigmoid(F16 x) {
  return sigmoid_lanes(2.f * 0.7978845608f * (x + 0.044715f * x * x * x));
}
inline F16 gelu_tanh_lanes(F16 x) { return x * gelu_tanh_sigmoid(x); }
inline F16 gelu_tanh_grad_lanes(F16 x) {
  const F16 s = gelu_tanh_sigmoid(x);
  const F16 du = 0.7978845608f * (1.f + 3.f * 0.044715f * x * x);
  return s + 2.f * x * s * (1.f - s) * du;
}

// The final logit soft-cap (ops/logit_softcap.h) on 16 lanes: cap tanh(z / cap), written with
// tanh(u) = 2 sigmoid(2u) - 1 (absolute error ~cap 1e-7, below the bf16 GEMM's that made z), and
// its slope 1 - (c / cap)^2 from the capped value c.
inline F16 softcap_lanes(F16 z, float cap) {
  return cap * (2.f * sigmoid_lanes(z * (2.f / cap)) - 1.f);
}
inline F16 softcap_slope_lanes(F16 c, float inv_cap) {
  const F16 t = c * inv_cap;
  return 1.f - t * t;
}

// All ones in the lanes below n (n <= 16), zeros above: the valid lanes of a row's last block.
inline I16 lanes_below(int64_t n) {
  const I16 index = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  return index < static_cast<int32_t>(n);
}

inline float max_of(F16 v) {
  float m = v[0];
  for (int i = 1; i < kLanes; ++i) m = v[i] > m ? v[i] : m;
  return m;
}

}  // namespace rrt::ops::cpu_bf16
