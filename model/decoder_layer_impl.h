// The decoder layer's forward and backward over any backend (model/decoder_layer.h says what it
// computes; ops/backend.h what a backend provides). Included only by the files that instantiate
// it for a backend: model/decoder_layer.cpp (CPU) and model/cuda/instantiate.cpp (CUDA).
#pragma once

#include "core/trace.h"
#include "model/decoder_layer.h"
#include "ops/attention.h"

namespace rrt::layer_detail {

inline int idx(Proj p) { return static_cast<int>(p); }

inline bool gated(const LayerDims& d) {
  return d.activation == Activation::swiglu || d.activation == Activation::geglu;
}

// y = x W^T + bias + s B(A x): the tied projection plus this position's LoRA.
template <class Be, class Stash>
void project(Be& be, const LayerDims& d, const LayerParamsOf<typename Be::Act>& p, const Stash& s,
             Proj which, const typename Be::Act* x, typename Be::Act* y, int64_t in, int64_t out) {
  const int i = idx(which);
  RRT_TRACE_SPAN("project", "proj", i);  // spans: docs/runs.md (profiles); on a GPU, enqueue time
  be.project(x, p.weight[i], p.bias[i], p.lora_a[i], p.lora_b[i], s.lora_u[i], y, d.M(), in, out,
             p.rank[i], p.scale[i]);
}

// Backward of project(): dx += ..., dW += ..., dbias += ..., dA/dB += ...
template <class Be, class Stash>
void project_backward(Be& be, const LayerDims& d, const LayerParamsOf<typename Be::Act>& p,
                      const LayerGradsOf<typename Be::Grad>& g, const Stash& s,
                      const LayerScratchOf<typename Be::Act>& sc, Proj which,
                      const typename Be::Act* x, const typename Be::Act* dy, typename Be::Act* dx,
                      int64_t in, int64_t out) {
  const int i = idx(which);
  RRT_TRACE_SPAN("project.backward", "proj", i);
  be.project_backward(x, p.weight[i], p.lora_a[i], p.lora_b[i], s.lora_u[i], dy, dx, g.weight[i],
                      g.bias[i], g.lora_a[i], g.lora_b[i], sc.lora_du, d.M(), in, out, p.rank[i],
                      p.scale[i]);
}

}  // namespace rrt::layer_detail

namespace rrt {

template <class Be>
void decoder_layer_forward(Be& be, const LayerDims& d, const LayerParamsOf<typename Be::Act>& p,
                           const LayerStashOf<typename Be::Act, typename Be::Stat>& s,
                           const typename Be::Act* x_in, typename Be::Act* x_out) {
  using layer_detail::project;
  const int64_t M = d.M(), qd = d.H * d.Dh, kvd = d.Hkv * d.Dh;
  family_norm_forward(be, d, x_in, p.attn_norm, p.attn_norm_bias, s.xn1, s.mean1, s.rstd1);
  project(be, d, p, s, Proj::q, s.xn1, d.qk_norm ? s.q_raw : s.q, d.D, qd);
  project(be, d, p, s, Proj::k, s.xn1, d.qk_norm ? s.k_raw : s.k, d.D, kvd);
  project(be, d, p, s, Proj::v, s.xn1, s.v, d.D, kvd);
  if (d.qk_norm) {  // each head's Dh values are one RMSNorm row, (1 + w) in Gemma 3
    be.norm_forward(false, s.q_raw, p.q_norm, nullptr, s.q, nullptr, s.rstd_q, M * d.H, d.Dh, d.eps,
                    d.unit_offset);
    be.norm_forward(false, s.k_raw, p.k_norm, nullptr, s.k, nullptr, s.rstd_k, M * d.Hkv, d.Dh,
                    d.eps, d.unit_offset);
  }
  be.rope_forward(s.q, d.N, d.T, d.H, d.Dh, d.positions, p.local_rope);
  be.rope_forward(s.k, d.N, d.T, d.Hkv, d.Dh, d.positions, p.local_rope);
  // The attention op scales by head_dim^-0.5; a scale of the family's own goes onto q.
  if (d.q_scale != 1.f) be.scale(s.q, d.q_scale, M * qd);
  const ops::AttentionShape shape{d.N, d.T, d.H, d.Hkv, d.Dh};
  {
    RRT_TRACE_SPAN("attention");
    be.attention_forward(s.q, s.k, s.v, s.att, s.lse, shape, d.mask());
  }
  if (d.sandwich_norm) {
    project(be, d, p, s, Proj::o, s.att, s.attn_out, qd, d.D);
    family_norm_forward(be, d, s.attn_out, p.attn_post_norm, nullptr, s.mid, nullptr, s.rstd_ap);
  } else {
    project(be, d, p, s, Proj::o, s.att, s.mid, qd, d.D);
  }
  be.add(s.mid, x_in, s.mid, M * d.D);

  family_norm_forward(be, d, d.parallel_residual ? x_in : s.mid, p.mlp_norm, p.mlp_norm_bias, s.xn2,
                      s.mean2, s.rstd2);
  project(be, d, p, s, Proj::up, s.xn2, s.up, d.D, d.F);
  switch (d.activation) {
    case Activation::swiglu:
      project(be, d, p, s, Proj::gate, s.xn2, s.gate, d.D, d.F);
      be.swiglu_forward(s.gate, s.up, s.act, M * d.F);
      break;
    case Activation::geglu:
      project(be, d, p, s, Proj::gate, s.xn2, s.gate, d.D, d.F);
      be.geglu_forward(s.gate, s.up, s.act, M * d.F);
      break;
    case Activation::gelu:
    case Activation::gelu_tanh:
      be.gelu_forward(s.up, s.act, M * d.F, d.activation == Activation::gelu_tanh);
      break;
  }
  if (d.sandwich_norm) {
    project(be, d, p, s, Proj::down, s.act, s.mlp_out, d.F, d.D);
    family_norm_forward(be, d, s.mlp_out, p.mlp_post_norm, nullptr, x_out, nullptr, s.rstd_mp);
  } else {
    project(be, d, p, s, Proj::down, s.act, x_out, d.F, d.D);
  }
  be.add(x_out, s.mid, x_out, M * d.D);
}

template <class Be>
void decoder_layer_backward(Be& be, const LayerDims& d, const LayerParamsOf<typename Be::Act>& p,
                            const LayerGradsOf<typename Be::Grad>& g,
                            const LayerStashOf<typename Be::Act, typename Be::Stat>& s,
                            const LayerScratchOf<typename Be::Act>& sc,
                            const typename Be::Act* x_in, typename Be::Act* d_resid) {
  auto back = [&](Proj which, const typename Be::Act* x, const typename Be::Act* dy,
                  typename Be::Act* dx, int64_t in, int64_t out) {
    layer_detail::project_backward(be, d, p, g, s, sc, which, x, dy, dx, in, out);
  };
  const int64_t M = d.M(), qd = d.H * d.Dh, kvd = d.Hkv * d.Dh;
  // d_resid holds d(x_out) = d(mid) through the residual. Both branches that read it directly
  // take their share first: the MLP's down projection, and (parallel residual) the attention
  // output projection, before the MLP norm adds its part of d(x_in) into d_resid.
  be.zero(sc.dact, M * d.F);
  // Sandwich norms: a branch's output projection reads d(branch output) = the post norm's
  // backward of d_resid, in dpost.
  auto post_norm_backward = [&](const typename Be::Act* out, const typename Be::Act* w,
                                const typename Be::Stat* rstd, typename Be::Grad* dw) {
    be.zero(sc.dpost, M * d.D);
    family_norm_backward(be, d, out, w, nullptr, rstd, d_resid, sc.dpost, dw, nullptr);
    return static_cast<const typename Be::Act*>(sc.dpost);
  };
  back(Proj::down, s.act,
       d.sandwich_norm ? post_norm_backward(s.mlp_out, p.mlp_post_norm, s.rstd_mp, g.mlp_post_norm)
                       : d_resid,
       sc.dact, d.F, d.D);
  if (d.parallel_residual) {
    be.zero(sc.datt, M * qd);
    back(Proj::o, s.att, d_resid, sc.datt, qd, d.D);
  }
  be.zero(sc.dup, M * d.F);
  be.zero(sc.dxn, M * d.D);
  if (layer_detail::gated(d)) {
    be.zero(sc.dgate, M * d.F);
    if (d.activation == Activation::swiglu)
      be.swiglu_backward(s.gate, s.up, sc.dact, sc.dgate, sc.dup, M * d.F);
    else
      be.geglu_backward(s.gate, s.up, sc.dact, sc.dgate, sc.dup, M * d.F);
    back(Proj::gate, s.xn2, sc.dgate, sc.dxn, d.D, d.F);
  } else {
    be.gelu_backward(s.up, sc.dact, sc.dup, M * d.F, d.activation == Activation::gelu_tanh);
  }
  back(Proj::up, s.xn2, sc.dup, sc.dxn, d.D, d.F);
  family_norm_backward(be, d, d.parallel_residual ? x_in : s.mid, p.mlp_norm, s.mean2, s.rstd2,
                       sc.dxn, d_resid, g.mlp_norm, g.mlp_norm_bias);
  // Sequential residual: d_resid now holds d(mid), which the output projection reads.
  if (!d.parallel_residual) {
    be.zero(sc.datt, M * qd);
    back(Proj::o, s.att,
         d.sandwich_norm
             ? post_norm_backward(s.attn_out, p.attn_post_norm, s.rstd_ap, g.attn_post_norm)
             : d_resid,
         sc.datt, qd, d.D);
  }
  be.zero(sc.dq, M * qd);
  be.zero(sc.dk, M * kvd);
  be.zero(sc.dv, M * kvd);
  const ops::AttentionShape shape{d.N, d.T, d.H, d.Hkv, d.Dh};
  {
    RRT_TRACE_SPAN("attention.backward");
    be.attention_backward(s.q, s.k, s.v, s.att, s.lse, sc.datt, sc.dq, sc.dk, sc.dv, shape,
                          d.mask());
  }
  if (d.q_scale != 1.f) be.scale(sc.dq, d.q_scale, M * qd);
  be.rope_backward(sc.dq, d.N, d.T, d.H, d.Dh, d.positions, p.local_rope);
  be.rope_backward(sc.dk, d.N, d.T, d.Hkv, d.Dh, d.positions, p.local_rope);
  const typename Be::Act* dq = sc.dq;
  const typename Be::Act* dk = sc.dk;
  if (d.qk_norm) {
    be.zero(sc.dq_raw, M * qd);
    be.zero(sc.dk_raw, M * kvd);
    be.norm_backward(false, s.q_raw, p.q_norm, nullptr, s.rstd_q, sc.dq, sc.dq_raw, g.q_norm,
                     nullptr, M * d.H, d.Dh, d.unit_offset);
    be.norm_backward(false, s.k_raw, p.k_norm, nullptr, s.rstd_k, sc.dk, sc.dk_raw, g.k_norm,
                     nullptr, M * d.Hkv, d.Dh, d.unit_offset);
    dq = sc.dq_raw;
    dk = sc.dk_raw;
  }
  be.zero(sc.dxn, M * d.D);
  back(Proj::q, s.xn1, dq, sc.dxn, d.D, qd);
  back(Proj::k, s.xn1, dk, sc.dxn, d.D, kvd);
  back(Proj::v, s.xn1, sc.dv, sc.dxn, d.D, kvd);
  family_norm_backward(be, d, x_in, p.attn_norm, s.mean1, s.rstd1, sc.dxn, d_resid, g.attn_norm,
                       g.attn_norm_bias);
}

}  // namespace rrt
