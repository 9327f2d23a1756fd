// The scalar activation functions and their derivatives, shared by the fp32/fp64 CPU ops
// (ops/cpu/activation.cpp) and the bf16 CPU backend (ops/cpu_bf16/elementwise.cpp), which
// computes them in fp32: one formula for both.
#pragma once

#include <cmath>

namespace rrt::ops::activation_math {

constexpr double kSqrt2OverPi = 0.7978845608028654;
constexpr double kGeluCubic = 0.044715;

template <typename S>
inline S sigmoid(S x) {
  return S(1) / (S(1) + std::exp(-x));
}

template <typename S>
inline S gelu_tanh(S x) {
  S u = static_cast<S>(kSqrt2OverPi) * (x + static_cast<S>(kGeluCubic) * x * x * x);
  return S(0.5) * x * (S(1) + std::tanh(u));
}
template <typename S>
inline S gelu_tanh_grad(S x) {
  S u = static_cast<S>(kSqrt2OverPi) * (x + static_cast<S>(kGeluCubic) * x * x * x);
  S t = std::tanh(u);
  S du = static_cast<S>(kSqrt2OverPi) * (S(1) + S(3 * kGeluCubic) * x * x);
  return S(0.5) * (S(1) + t) + S(0.5) * x * (S(1) - t * t) * du;
}
template <typename S>
inline S gelu_erf(S x) {
  return S(0.5) * x * (S(1) + std::erf(x * static_cast<S>(M_SQRT1_2)));
}
template <typename S>
inline S gelu_erf_grad(S x) {
  S cdf = S(0.5) * (S(1) + std::erf(x * static_cast<S>(M_SQRT1_2)));
  S pdf = std::exp(S(-0.5) * x * x) * static_cast<S>(0.3989422804014327);
  return cdf + x * pdf;
}

}  // namespace rrt::ops::activation_math
