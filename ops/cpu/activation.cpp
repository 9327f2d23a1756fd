#include "ops/activation.h"

#include <cmath>

#include "ops/activation_math.h"

namespace rrt::ops {

using activation_math::gelu_erf;
using activation_math::gelu_erf_grad;
using activation_math::gelu_tanh;
using activation_math::gelu_tanh_grad;
using activation_math::sigmoid;

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

#define RRT_INSTANTIATE(S)                                                         \
  template void swiglu_forward<S>(const S*, const S*, S*, int64_t);                \
  template void swiglu_backward<S>(const S*, const S*, const S*, S*, S*, int64_t); \
  template void geglu_forward<S>(const S*, const S*, S*, int64_t);                 \
  template void geglu_backward<S>(const S*, const S*, const S*, S*, S*, int64_t);  \
  template void gelu_forward<S>(const S*, S*, int64_t, bool);                      \
  template void gelu_backward<S>(const S*, const S*, S*, int64_t, bool);           \
  template void add_forward<S>(const S*, const S*, S*, int64_t);                   \
  template void add_backward<S>(const S*, S*, S*, int64_t);
RRT_INSTANTIATE(float)
RRT_INSTANTIATE(double)

}  // namespace rrt::ops
