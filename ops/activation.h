// Element-wise activations over n elements. Backward adds into the given gradients.
//   swiglu:  out = silu(gate) * up                  (Llama MLP)
//   geglu:   out = gelu_tanh(gate) * up             (Gemma MLP)
//   gelu:    out = gelu(x), exact (erf) or tanh approximation (GPT-NeoX uses exact)
//   add:     out = a + b                            (residual)
#pragma once

#include <cstdint>

namespace rrt::ops {

template <typename S>
void swiglu_forward(const S* gate, const S* up, S* out, int64_t n);
template <typename S>
void swiglu_backward(const S* gate, const S* up, const S* dout, S* dgate, S* dup, int64_t n);

template <typename S>
void geglu_forward(const S* gate, const S* up, S* out, int64_t n);
template <typename S>
void geglu_backward(const S* gate, const S* up, const S* dout, S* dgate, S* dup, int64_t n);

template <typename S>
void gelu_forward(const S* x, S* out, int64_t n, bool tanh_approx);
template <typename S>
void gelu_backward(const S* x, const S* dout, S* dx, int64_t n, bool tanh_approx);

template <typename S>
void add_forward(const S* a, const S* b, S* out, int64_t n);
template <typename S>
void add_backward(const S* dout, S* da, S* db, int64_t n);

}  // namespace rrt::ops
