// One Llama-family decoder layer at one unrolled position (k, b): the tied block weights of
// layer b plus the LoRA of position (k, b). Forward stashes what backward needs; backward
// turns d(x_out) into d(x_in) in place and adds every weight gradient.
//
//   xn1 = rmsnorm(x_in)            q,k,v = proj(xn1) (+ LoRA), RoPE on q and k
//   att = causal_attention(q,k,v)  mid = x_in + proj_o(att)
//   xn2 = rmsnorm(mid)             act = silu(proj_gate(xn2)) * proj_up(xn2)
//   x_out = mid + proj_down(act)
#pragma once

#include <array>
#include <cstdint>

#include "model/config.h"
#include "ops/rope.h"

namespace rrt {

struct LayerDims {
  int64_t N, T, D, H, Hkv, Dh, F;
  float eps;
  int64_t M() const { return N * T; }
};

// Weights of one position. Pointers into the parameter arena; LoRA entries are null at rank 0.
struct LayerParams {
  const float* attn_norm = nullptr;
  const float* mlp_norm = nullptr;
  std::array<const float*, kNumProj> weight{};
  std::array<const float*, kNumProj> lora_a{}, lora_b{};
  std::array<int64_t, kNumProj> rank{};
  std::array<float, kNumProj> scale{};
};

struct LayerGrads {
  float* attn_norm = nullptr;
  float* mlp_norm = nullptr;
  std::array<float*, kNumProj> weight{};
  std::array<float*, kNumProj> lora_a{}, lora_b{};
};

// Activations of one position, kept from forward to backward. Shapes (M = N*T):
// xn1, mid, xn2 [M, D]; q, att [M, H*Dh]; k, v [M, Hkv*Dh]; gate, up, act [M, F];
// rstd1, rstd2 [M]; lse [N, H, T]; lora_u[p] [M, rank(p)].
struct LayerStash {
  float *xn1, *rstd1, *q, *k, *v, *lse, *att, *mid, *xn2, *rstd2, *gate, *up, *act;
  std::array<float*, kNumProj> lora_u{};
};

// Scratch shared by all positions (backward of one position at a time).
struct LayerScratch {
  float *dxn, *dq, *dk, *dv, *datt, *dgate, *dup, *dact, *lora_du;
  float* attn_workspace;
  int threads;
};

void llama_layer_forward(const LayerDims& dims, const ops::RopeTable& rope, const LayerParams& p,
                         const LayerStash& s, const float* x_in, float* x_out,
                         const LayerScratch& scratch);

// d_resid: in d(x_out), out d(x_in).
void llama_layer_backward(const LayerDims& dims, const ops::RopeTable& rope, const LayerParams& p,
                          const LayerGrads& g, const LayerStash& s, const LayerScratch& scratch,
                          const float* x_in, float* d_resid);

}  // namespace rrt
