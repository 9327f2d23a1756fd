#include "ops/activation.h"

#include <cmath>

namespace rrt::ops {

namespace {
constexpr double kSqrt2OverPi = 0.7978845608028654;
constexpr double kGeluCubic = 0.044715;

template <typename S>
inline S sigmoid(S x) { return S(1) / (S(1) + std::exp(-x)); }

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
inline S gelu_erf(S x) { return S(0.5) * x * (S(1) + std::erf(x * static_cast<S>(M_SQRT1_2))); }
template <typename S>
inline S gelu_erf_grad(S x) {
  S cdf = S(0.5) * (S(1) + std::erf(x * static_cast<S>(M_SQRT1_2)));
  S pdf = std::exp(S(-0.5) * x * x) * static_cast<S>(0.3989422804014327);
  return cdf + x * pdf;
}
}  // namespace

template <typename S>
void swiglu_forward(const S* gate, const S* up, S* out, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] * sigmoid(gate[i]) * up[i];
}

template <typename S>
void swiglu_backward(const S* gate, const S* up, const S* dout, S* dgate, S* dup, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const S g = gate[i], sg = sigmoid(g), silu = g * sg;
    dgate[i] += dout[i] * up[i] * sg * (S(1) + g * (S(1) - sg));
    dup[i] += dout[i] * silu;
  }
}

template <typename S>
void geglu_forward(const S* gate, const S* up, S* out, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = gelu_tanh(gate[i]) * up[i];
}

template <typename S>
void geglu_backward(const S* gate, const S* up, const S* dout, S* dgate, S* dup, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    dgate[i] += dout[i] * up[i] * gelu_tanh_grad(gate[i]);
    dup[i] += dout[i] * gelu_tanh(gate[i]);
  }
}

template <typename S>
void gelu_forward(const S* x, S* out, int64_t n, bool tanh_approx) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = tanh_approx ? gelu_tanh(x[i]) : gelu_erf(x[i]);
}

template <typename S>
void gelu_backward(const S* x, const S* dout, S* dx, int64_t n, bool tanh_approx) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i)
    dx[i] += dout[i] * (tanh_approx ? gelu_tanh_grad(x[i]) : gelu_erf_grad(x[i]));
}

template <typename S>
void add_forward(const S* a, const S* b, S* out, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

template <typename S>
void add_backward(const S* dout, S* da, S* db, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    if (da) da[i] += dout[i];
    if (db) db[i] += dout[i];
  }
}

#define RRT_INSTANTIATE(S)                                                               \
  template void swiglu_forward<S>(const S*, const S*, S*, int64_t);                      \
  template void swiglu_backward<S>(const S*, const S*, const S*, S*, S*, int64_t);       \
  template void geglu_forward<S>(const S*, const S*, S*, int64_t);                       \
  template void geglu_backward<S>(const S*, const S*, const S*, S*, S*, int64_t);        \
  template void gelu_forward<S>(const S*, S*, int64_t, bool);                            \
  template void gelu_backward<S>(const S*, const S*, S*, int64_t, bool);                 \
  template void add_forward<S>(const S*, const S*, S*, int64_t);                         \
  template void add_backward<S>(const S*, S*, S*, int64_t);
RRT_INSTANTIATE(float)
RRT_INSTANTIATE(double)

}  // namespace rrt::ops
