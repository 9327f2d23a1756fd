// One decoder layer at one unrolled position (k, b): the tied block weights of layer b plus the
// LoRA of position (k, b). Forward stashes what backward needs; backward turns d(x_out) into
// d(x_in) in place and adds every weight gradient. One code path serves every family:
//
//   xn1 = norm1(x_in)              q,k,v = proj(xn1) (+ bias, + LoRA), RoPE on q and k
//   att = causal_attention(q,k,v)  mid = x_in + proj_o(att)
//   xn2 = norm2(parallel ? x_in : mid)
//   act = silu(gate) * up (Llama), gelu_tanh(gate) * up (Gemma) or gelu(up) (NeoX)
//   x_out = mid + proj_down(act)
//
// norm: RMSNorm with w or (1 + w) (Gemma), or LayerNorm with a bias (NeoX). The parallel
// residual (NeoX) is x_out = x_in + attn(norm1(x_in)) + mlp(norm2(x_in)).
#pragma once

#include <array>
#include <cstdint>

#include "model/config.h"
#include "ops/rope.h"

namespace rrt {

struct LayerDims {
  int64_t N, T, D, H, Hkv, Dh, F;
  float eps;
  Norm norm = Norm::rms;
  bool unit_offset = false;
  bool parallel_residual = false;
  Activation activation = Activation::swiglu;
  int64_t M() const { return N * T; }
};

// The sizes and structure of model m's layer for N sequences of T tokens.
inline LayerDims layer_dims(const ModelConfig& m, int64_t N, int64_t T) {
  return {N,         T,           m.d_model,
          m.n_heads, m.n_kv_heads, m.dh(),
          m.ffn,     static_cast<float>(m.norm_eps),
          m.norm,    m.norm_unit_offset, m.parallel_residual,
          m.activation};
}

// Weights of one position. Pointers into the parameter arena; LoRA entries are null at rank 0,
// biases null without linear_bias / LayerNorm, gate null in an ungated MLP.
struct LayerParams {
  const float* attn_norm = nullptr;
  const float* mlp_norm = nullptr;
  const float* attn_norm_bias = nullptr;
  const float* mlp_norm_bias = nullptr;
  std::array<const float*, kNumProj> weight{}, bias{};
  std::array<const float*, kNumProj> lora_a{}, lora_b{};
  std::array<int64_t, kNumProj> rank{};
  std::array<float, kNumProj> scale{};
};

struct LayerGrads {
  float* attn_norm = nullptr;
  float* mlp_norm = nullptr;
  float* attn_norm_bias = nullptr;
  float* mlp_norm_bias = nullptr;
  std::array<float*, kNumProj> weight{}, bias{};
  std::array<float*, kNumProj> lora_a{}, lora_b{};
};

// Activations of one position, kept from forward to backward. Shapes (M = N*T):
// xn1, mid, xn2 [M, D]; q, att [M, H*Dh]; k, v [M, Hkv*Dh]; gate (gated MLPs), up, act [M, F];
// rstd1, rstd2, mean1, mean2 (LayerNorm) [M]; lse [N, H, T]; lora_u[p] [M, rank(p)].
struct LayerStash {
  float *xn1, *rstd1, *q, *k, *v, *lse, *att, *mid, *xn2, *rstd2, *gate, *up, *act;
  float *mean1 = nullptr, *mean2 = nullptr;
  std::array<float*, kNumProj> lora_u{};
};

// Scratch shared by all positions (backward of one position at a time).
struct LayerScratch {
  float *dxn, *dq, *dk, *dv, *datt, *dgate, *dup, *dact, *lora_du;
  float* attn_workspace;
  int threads;
};

void decoder_layer_forward(const LayerDims& dims, const ops::RopeTable& rope,
                           const LayerParams& p, const LayerStash& s, const float* x_in,
                           float* x_out, const LayerScratch& scratch);

// d_resid: in d(x_out), out d(x_in).
void decoder_layer_backward(const LayerDims& dims, const ops::RopeTable& rope,
                            const LayerParams& p, const LayerGrads& g, const LayerStash& s,
                            const LayerScratch& scratch, const float* x_in, float* d_resid);

// The norm of the given kind over x [M, D] (RMSNorm ignores bias and mean); shared with the
// model's final norm.
void norm_forward(const LayerDims& d, const float* x, const float* w, const float* bias, float* y,
                  float* mean, float* rstd);
// Adds d(x) into dx and the weight (and bias) gradients.
void norm_backward(const LayerDims& d, const float* x, const float* w, const float* mean,
                   const float* rstd, const float* dy, float* dx, float* dw, float* dbias);

}  // namespace rrt
