// One decoder layer at one unrolled position (k, b): the tied block weights of layer b plus the
// LoRA of position (k, b). Forward stashes what backward needs; backward turns d(x_out) into
// d(x_in) in place and adds every weight gradient. One code path serves every family:
//
//   xn1 = norm1(x_in)              q,k,v = proj(xn1) (+ bias, + LoRA), RoPE on q and k
//                                  (Qwen3: q and k RMSNorm-ed per head, over Dh, before RoPE)
//   att = causal_attention(q,k,v)  mid = x_in + proj_o(att)
//   xn2 = norm2(parallel ? x_in : mid)
//   act = silu(gate) * up (Llama), gelu_tanh(gate) * up (Gemma) or gelu(up) (NeoX)
//   x_out = mid + proj_down(act)
//
// norm: RMSNorm with w or (1 + w) (Gemma), or LayerNorm with a bias (NeoX). The parallel
// residual (NeoX) is x_out = x_in + attn(norm1(x_in)) + mlp(norm2(x_in)). Gemma 2 / 3's sandwich
// norms put a norm on each branch's output before its residual add:
// mid = x_in + norm_ap(proj_o(att)), x_out = mid + norm_mp(proj_down(act)). Gemma 3 scales q by
// query_scale after RoPE (its attention scale query_pre_attn_scalar^-0.5, the attention op's
// own being head_dim^-0.5) and rotates its local layers with a RoPE base of their own.
#pragma once

#include <array>
#include <cstdint>

#include "model/config.h"
#include "ops/attention.h"
#include "ops/rope.h"

namespace rrt {

struct LayerDims {
  int64_t N, T, D, H, Hkv, Dh, F;
  float eps;
  Norm norm = Norm::rms;
  bool unit_offset = false;
  bool parallel_residual = false;
  Activation activation = Activation::swiglu;
  bool qk_norm = false;
  bool sandwich_norm = false;
  float q_scale = 1.f;  // ModelConfig::query_scale()
  // Attention masks (ops/attention.h): the window of the position being run (ModelConfig::
  // window_at), the soft-cap, and a document-aware batch's doc_start and restarted RoPE
  // positions ([N, T] in the backend's memory; null: one document per sequence).
  int64_t window = 0;
  double softcap = 0;
  const int32_t* doc_start = nullptr;
  const int32_t* positions = nullptr;
  int64_t M() const { return N * T; }
  ops::AttentionMask mask() const {
    ops::AttentionMask m;
    m.doc_start = doc_start;
    m.window = window < T ? window : 0;  // a window the sequence fits in is no window
    m.softcap = softcap;
    return m;
  }
};

// The sizes and structure of model m's layer for N sequences of T tokens.
inline LayerDims layer_dims(const ModelConfig& m, int64_t N, int64_t T) {
  return {N,
          T,
          m.d_model,
          m.n_heads,
          m.n_kv_heads,
          m.dh(),
          m.ffn,
          static_cast<float>(m.norm_eps),
          m.norm,
          m.norm_unit_offset,
          m.parallel_residual,
          m.activation,
          m.qk_norm,
          m.sandwich_norm,
          static_cast<float>(m.query_scale()),
          0,
          m.attn_logit_softcapping};
}

// Weights of one position, in the backend's compute type A (pointers into its parameter
// buffers). LoRA entries are null at rank 0, biases null without linear_bias / LayerNorm, gate
// null in an ungated MLP.
template <typename A>
struct LayerParamsOf {
  const A* attn_norm = nullptr;
  const A* mlp_norm = nullptr;
  const A* attn_norm_bias = nullptr;
  const A* mlp_norm_bias = nullptr;
  const A* q_norm = nullptr;  // [Dh], qk_norm only
  const A* k_norm = nullptr;
  const A* attn_post_norm = nullptr;  // [D], sandwich_norm only
  const A* mlp_post_norm = nullptr;
  std::array<const A*, kNumProj> weight{}, bias{};
  std::array<const A*, kNumProj> lora_a{}, lora_b{};
  std::array<int64_t, kNumProj> rank{};
  std::array<float, kNumProj> scale{};
  bool local_rope = false;  // this position rotates with the local RoPE base (Gemma 3)
};

// Weight gradients (G: float on every backend today); null where frozen.
template <typename G>
struct LayerGradsOf {
  G* attn_norm = nullptr;
  G* mlp_norm = nullptr;
  G* attn_norm_bias = nullptr;
  G* mlp_norm_bias = nullptr;
  G* q_norm = nullptr;
  G* k_norm = nullptr;
  G* attn_post_norm = nullptr;
  G* mlp_post_norm = nullptr;
  std::array<G*, kNumProj> weight{}, bias{};
  std::array<G*, kNumProj> lora_a{}, lora_b{};
};

// Activations of one position, kept from forward to backward, in A; statistics in S. Shapes
// (M = N*T): xn1, mid, xn2 [M, D]; q, att [M, H*Dh]; k, v [M, Hkv*Dh]; gate (gated MLPs), up,
// act [M, F]; rstd1, rstd2, mean1, mean2 (LayerNorm) [M]; lse [N, H, T]; lora_u[p] [M, rank(p)].
// With qk_norm, q_raw [M, H*Dh] and k_raw [M, Hkv*Dh] hold the projections before their head
// norms (q and k hold the normed, rotated heads), rstd_q [M*H] and rstd_k [M*Hkv].
// With sandwich_norm, attn_out and mlp_out [M, D] hold the o and down projections before their
// norms, rstd_ap and rstd_mp [M] those norms' statistics.
template <typename A, typename S>
struct LayerStashOf {
  A *xn1 = nullptr, *q = nullptr, *k = nullptr, *v = nullptr, *att = nullptr, *mid = nullptr,
    *xn2 = nullptr, *gate = nullptr, *up = nullptr, *act = nullptr;
  A *q_raw = nullptr, *k_raw = nullptr;
  A *attn_out = nullptr, *mlp_out = nullptr;
  S *rstd1 = nullptr, *rstd2 = nullptr, *mean1 = nullptr, *mean2 = nullptr, *lse = nullptr;
  S *rstd_q = nullptr, *rstd_k = nullptr, *rstd_ap = nullptr, *rstd_mp = nullptr;
  std::array<A*, kNumProj> lora_u{};
};

// Backward scratch shared by all positions (one position at a time).
template <typename A>
struct LayerScratchOf {
  A *dxn = nullptr, *dq = nullptr, *dk = nullptr, *dv = nullptr, *datt = nullptr, *dgate = nullptr,
    *dup = nullptr, *dact = nullptr, *lora_du = nullptr;
  A *dq_raw = nullptr, *dk_raw = nullptr;  // qk_norm: d(q_raw), d(k_raw)
  A* dpost = nullptr;                      // sandwich_norm: d(attn_out), then d(mlp_out) [M, D]
};

// The fp32 CPU instantiation's names (the CPU engine and the tests use them).
using LayerParams = LayerParamsOf<float>;
using LayerGrads = LayerGradsOf<float>;
using LayerStash = LayerStashOf<float, float>;
using LayerScratch = LayerScratchOf<float>;

// The layer over backend Be (ops/backend.h), written once for every backend in
// model/decoder_layer_impl.h and instantiated per backend (decoder_layer.cpp for the CPU,
// model/cuda/instantiate.cpp for CUDA).
template <class Be>
void decoder_layer_forward(Be& be, const LayerDims& dims, const LayerParamsOf<typename Be::Act>& p,
                           const LayerStashOf<typename Be::Act, typename Be::Stat>& s,
                           const typename Be::Act* x_in, typename Be::Act* x_out);

// d_resid: in d(x_out), out d(x_in).
template <class Be>
void decoder_layer_backward(Be& be, const LayerDims& dims, const LayerParamsOf<typename Be::Act>& p,
                            const LayerGradsOf<typename Be::Grad>& g,
                            const LayerStashOf<typename Be::Act, typename Be::Stat>& s,
                            const LayerScratchOf<typename Be::Act>& scratch,
                            const typename Be::Act* x_in, typename Be::Act* d_resid);

// The family's norm over x [M, D] (RMSNorm ignores bias and mean); shared with the model's final
// norm and the exits.
template <class Be>
void family_norm_forward(Be& be, const LayerDims& d, const typename Be::Act* x,
                         const typename Be::Act* w, const typename Be::Act* bias,
                         typename Be::Act* y, typename Be::Stat* mean, typename Be::Stat* rstd) {
  be.norm_forward(d.norm == Norm::layer, x, w, bias, y, mean, rstd, d.M(), d.D, d.eps,
                  d.unit_offset);
}
// Adds d(x) into dx and the weight (and bias) gradients.
template <class Be>
void family_norm_backward(Be& be, const LayerDims& d, const typename Be::Act* x,
                          const typename Be::Act* w, const typename Be::Stat* mean,
                          const typename Be::Stat* rstd, const typename Be::Act* dy,
                          typename Be::Act* dx, typename Be::Grad* dw, typename Be::Grad* dbias) {
  be.norm_backward(d.norm == Norm::layer, x, w, mean, rstd, dy, dx, dw, dbias, d.M(), d.D,
                   d.unit_offset);
}

// The fp32 CPU norm (the CPU inference engine's).
void norm_forward(const LayerDims& d, const float* x, const float* w, const float* bias, float* y,
                  float* mean, float* rstd);

}  // namespace rrt
