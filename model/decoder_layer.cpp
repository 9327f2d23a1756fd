#include "model/decoder_layer.h"

#include <cstring>

#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/lora.h"
#include "ops/matmul.h"
#include "ops/norm.h"

namespace rrt {

namespace {

int idx(Proj p) { return static_cast<int>(p); }

// y = x W^T + bias + s B(A x): the tied projection plus this position's LoRA.
void project(const LayerDims& d, const LayerParams& p, const LayerStash& s, Proj which,
             const float* x, float* y, int64_t in, int64_t out) {
  const int i = idx(which);
  ops::linear_forward<float>(x, p.weight[i], p.bias[i], y, d.M(), in, out, false);
  ops::lora_forward<float>(x, p.lora_a[i], p.lora_b[i], s.lora_u[i], y, d.M(), in, out, p.rank[i],
                           p.scale[i]);
}

// Backward of project(): dx += ..., dW += ..., dbias += ..., dA/dB += ...
void project_backward(const LayerDims& d, const LayerParams& p, const LayerGrads& g,
                      const LayerStash& s, const LayerScratch& sc, Proj which, const float* x,
                      const float* dy, float* dx, int64_t in, int64_t out) {
  const int i = idx(which);
  ops::linear_backward<float>(x, p.weight[i], dy, dx, g.weight[i], g.bias[i], d.M(), in, out);
  ops::lora_backward<float>(x, p.lora_a[i], p.lora_b[i], s.lora_u[i], dy, dx, g.lora_a[i],
                            g.lora_b[i], sc.lora_du, d.M(), in, out, p.rank[i], p.scale[i]);
}

void zero(float* x, int64_t n) { std::memset(x, 0, static_cast<size_t>(n) * sizeof(float)); }

bool gated(const LayerDims& d) {
  return d.activation == Activation::swiglu || d.activation == Activation::geglu;
}

}  // namespace

void norm_forward(const LayerDims& d, const float* x, const float* w, const float* bias, float* y,
                  float* mean, float* rstd) {
  if (d.norm == Norm::layer)
    ops::layernorm_forward<float>(x, w, bias, y, mean, rstd, d.M(), d.D, d.eps);
  else
    ops::rmsnorm_forward<float>(x, w, y, rstd, d.M(), d.D, d.eps, d.unit_offset);
}

void norm_backward(const LayerDims& d, const float* x, const float* w, const float* mean,
                   const float* rstd, const float* dy, float* dx, float* dw, float* dbias) {
  if (d.norm == Norm::layer)
    ops::layernorm_backward<float>(x, w, mean, rstd, dy, dx, dw, dbias, d.M(), d.D);
  else
    ops::rmsnorm_backward<float>(x, w, rstd, dy, dx, dw, d.M(), d.D, d.unit_offset);
}

void decoder_layer_forward(const LayerDims& d, const ops::RopeTable& rope, const LayerParams& p,
                           const LayerStash& s, const float* x_in, float* x_out,
                           const LayerScratch& sc) {
  const int64_t M = d.M(), qd = d.H * d.Dh, kvd = d.Hkv * d.Dh;
  norm_forward(d, x_in, p.attn_norm, p.attn_norm_bias, s.xn1, s.mean1, s.rstd1);
  project(d, p, s, Proj::q, s.xn1, s.q, d.D, qd);
  project(d, p, s, Proj::k, s.xn1, s.k, d.D, kvd);
  project(d, p, s, Proj::v, s.xn1, s.v, d.D, kvd);
  ops::rope_forward<float>(s.q, rope, d.N, d.T, d.H, d.Dh);
  ops::rope_forward<float>(s.k, rope, d.N, d.T, d.Hkv, d.Dh);
  const ops::AttentionShape shape{d.N, d.T, d.H, d.Hkv, d.Dh};
  ops::attention_forward<float>(s.q, s.k, s.v, s.att, s.lse, shape, sc.attn_workspace, sc.threads);
  project(d, p, s, Proj::o, s.att, s.mid, qd, d.D);
  ops::add_forward<float>(s.mid, x_in, s.mid, M * d.D);

  norm_forward(d, d.parallel_residual ? x_in : s.mid, p.mlp_norm, p.mlp_norm_bias, s.xn2, s.mean2,
               s.rstd2);
  project(d, p, s, Proj::up, s.xn2, s.up, d.D, d.F);
  switch (d.activation) {
    case Activation::swiglu:
      project(d, p, s, Proj::gate, s.xn2, s.gate, d.D, d.F);
      ops::swiglu_forward<float>(s.gate, s.up, s.act, M * d.F);
      break;
    case Activation::geglu:
      project(d, p, s, Proj::gate, s.xn2, s.gate, d.D, d.F);
      ops::geglu_forward<float>(s.gate, s.up, s.act, M * d.F);
      break;
    case Activation::gelu:
    case Activation::gelu_tanh:
      ops::gelu_forward<float>(s.up, s.act, M * d.F, d.activation == Activation::gelu_tanh);
      break;
  }
  project(d, p, s, Proj::down, s.act, x_out, d.F, d.D);
  ops::add_forward<float>(x_out, s.mid, x_out, M * d.D);
}

void decoder_layer_backward(const LayerDims& d, const ops::RopeTable& rope, const LayerParams& p,
                            const LayerGrads& g, const LayerStash& s, const LayerScratch& sc,
                            const float* x_in, float* d_resid) {
  const int64_t M = d.M(), qd = d.H * d.Dh, kvd = d.Hkv * d.Dh;
  // d_resid holds d(x_out) = d(mid) through the residual. Both branches that read it directly
  // take their share first: the MLP's down projection, and (parallel residual) the attention
  // output projection, before the MLP norm adds its part of d(x_in) into d_resid.
  zero(sc.dact, M * d.F);
  project_backward(d, p, g, s, sc, Proj::down, s.act, d_resid, sc.dact, d.F, d.D);
  if (d.parallel_residual) {
    zero(sc.datt, M * qd);
    project_backward(d, p, g, s, sc, Proj::o, s.att, d_resid, sc.datt, qd, d.D);
  }
  zero(sc.dup, M * d.F);
  zero(sc.dxn, M * d.D);
  if (gated(d)) {
    zero(sc.dgate, M * d.F);
    if (d.activation == Activation::swiglu)
      ops::swiglu_backward<float>(s.gate, s.up, sc.dact, sc.dgate, sc.dup, M * d.F);
    else
      ops::geglu_backward<float>(s.gate, s.up, sc.dact, sc.dgate, sc.dup, M * d.F);
    project_backward(d, p, g, s, sc, Proj::gate, s.xn2, sc.dgate, sc.dxn, d.D, d.F);
  } else {
    ops::gelu_backward<float>(s.up, sc.dact, sc.dup, M * d.F,
                              d.activation == Activation::gelu_tanh);
  }
  project_backward(d, p, g, s, sc, Proj::up, s.xn2, sc.dup, sc.dxn, d.D, d.F);
  norm_backward(d, d.parallel_residual ? x_in : s.mid, p.mlp_norm, s.mean2, s.rstd2, sc.dxn,
                d_resid, g.mlp_norm, g.mlp_norm_bias);
  // Sequential residual: d_resid now holds d(mid), which the output projection reads.
  if (!d.parallel_residual) {
    zero(sc.datt, M * qd);
    project_backward(d, p, g, s, sc, Proj::o, s.att, d_resid, sc.datt, qd, d.D);
  }
  zero(sc.dq, M * qd);
  zero(sc.dk, M * kvd);
  zero(sc.dv, M * kvd);
  const ops::AttentionShape shape{d.N, d.T, d.H, d.Hkv, d.Dh};
  ops::attention_backward<float>(s.q, s.k, s.v, s.att, s.lse, sc.datt, sc.dq, sc.dk, sc.dv, shape,
                                 sc.attn_workspace, sc.threads);
  ops::rope_backward<float>(sc.dq, rope, d.N, d.T, d.H, d.Dh);
  ops::rope_backward<float>(sc.dk, rope, d.N, d.T, d.Hkv, d.Dh);
  zero(sc.dxn, M * d.D);
  project_backward(d, p, g, s, sc, Proj::q, s.xn1, sc.dq, sc.dxn, d.D, qd);
  project_backward(d, p, g, s, sc, Proj::k, s.xn1, sc.dk, sc.dxn, d.D, kvd);
  project_backward(d, p, g, s, sc, Proj::v, s.xn1, sc.dv, sc.dxn, d.D, kvd);
  norm_backward(d, x_in, p.attn_norm, s.mean1, s.rstd1, sc.dxn, d_resid, g.attn_norm,
                g.attn_norm_bias);
}

}  // namespace rrt
