// The GPU twin of model/decoder_layer.cpp: the same statements in the same order, on bf16
// device buffers. Differences: zeroing is cudaMemsetAsync, and the ops take the GEMM, attention
// and RoPE contexts.
#include "model/cuda/device_layer.h"

#include "core/cuda/cuda_check.h"
#include "ops/cuda/lora.h"

namespace rrt {

namespace {

int idx(Proj p) { return static_cast<int>(p); }

// y = x W^T + bias + s B(A x): the tied projection plus this position's LoRA. The one departure
// from the CPU's order: the LoRA term is written first and the tied GEMM adds onto it (beta = 1),
// which saves a read-modify-write pass over y per adapted projection (the same sum, rounded in
// another order).
void project(const DeviceLayerContext& c, const LayerDims& d, const DeviceLayerParams& p,
             const DeviceLayerStash& s, Proj which, const bf16* x, bf16* y, int64_t in,
             int64_t out) {
  const int i = idx(which);
  ops::cuda::lora_forward_overwrite(c.gemm, x, p.lora_a[i], p.lora_b[i], s.lora_u[i], y, d.M(), in,
                                    out, p.rank[i], p.scale[i]);
  ops::cuda::linear_forward(c.gemm, x, p.weight[i], p.bias[i], y, d.M(), in, out,
                            /*accumulate=*/p.rank[i] > 0);
}

// Backward of project(): dx += ..., dW += ..., dbias += ..., dA/dB += ...
void project_backward(const DeviceLayerContext& c, const LayerDims& d, const DeviceLayerParams& p,
                      const DeviceLayerGrads& g, const DeviceLayerStash& s,
                      const DeviceLayerScratch& sc, Proj which, const bf16* x, const bf16* dy,
                      bf16* dx, int64_t in, int64_t out) {
  const int i = idx(which);
  ops::cuda::linear_backward(c.gemm, x, p.weight[i], dy, dx, g.weight[i], g.bias[i], d.M(), in,
                             out);
  ops::cuda::lora_backward(c.gemm, x, p.lora_a[i], p.lora_b[i], s.lora_u[i], dy, dx, g.lora_a[i],
                           g.lora_b[i], sc.lora_du, d.M(), in, out, p.rank[i], p.scale[i]);
}

void zero(const DeviceLayerContext& c, bf16* x, int64_t n) {
  RRT_CUDA_CHECK(cudaMemsetAsync(x, 0, static_cast<size_t>(n) * sizeof(bf16), c.stream));
}

bool gated(const LayerDims& d) {
  return d.activation == Activation::swiglu || d.activation == Activation::geglu;
}

}  // namespace

void device_norm_forward(const DeviceLayerContext& c, const LayerDims& d, const bf16* x,
                         const bf16* w, const bf16* bias, bf16* y, float* mean, float* rstd) {
  if (d.norm == Norm::layer)
    ops::cuda::layernorm_forward(x, w, bias, y, mean, rstd, d.M(), d.D, d.eps, c.stream);
  else
    ops::cuda::rmsnorm_forward(x, w, y, rstd, d.M(), d.D, d.eps, d.unit_offset, c.stream);
}

void device_norm_backward(const DeviceLayerContext& c, const LayerDims& d, const bf16* x,
                          const bf16* w, const float* mean, const float* rstd, const bf16* dy,
                          bf16* dx, float* dw, float* dbias) {
  if (d.norm == Norm::layer)
    ops::cuda::layernorm_backward(x, w, mean, rstd, dy, dx, dw, dbias, d.M(), d.D, c.stream);
  else
    ops::cuda::rmsnorm_backward(x, w, rstd, dy, dx, dw, d.M(), d.D, d.unit_offset, c.stream);
}

void device_layer_forward(const DeviceLayerContext& c, const LayerDims& d,
                          const DeviceLayerParams& p, const DeviceLayerStash& s, const bf16* x_in,
                          bf16* x_out) {
  const int64_t M = d.M(), qd = d.H * d.Dh, kvd = d.Hkv * d.Dh;
  device_norm_forward(c, d, x_in, p.attn_norm, p.attn_norm_bias, s.xn1, s.mean1, s.rstd1);
  project(c, d, p, s, Proj::q, s.xn1, s.q, d.D, qd);
  project(c, d, p, s, Proj::k, s.xn1, s.k, d.D, kvd);
  project(c, d, p, s, Proj::v, s.xn1, s.v, d.D, kvd);
  ops::cuda::rope_forward(s.q, c.rope, d.N, d.T, d.H, d.Dh, c.stream);
  ops::cuda::rope_forward(s.k, c.rope, d.N, d.T, d.Hkv, d.Dh, c.stream);
  const ops::AttentionShape shape{d.N, d.T, d.H, d.Hkv, d.Dh};
  ops::cuda::attention_forward(c.attention, s.q, s.k, s.v, s.att, s.lse, shape);
  project(c, d, p, s, Proj::o, s.att, s.mid, qd, d.D);
  ops::cuda::add_forward(s.mid, x_in, s.mid, M * d.D, c.stream);

  device_norm_forward(c, d, d.parallel_residual ? x_in : s.mid, p.mlp_norm, p.mlp_norm_bias, s.xn2,
                      s.mean2, s.rstd2);
  project(c, d, p, s, Proj::up, s.xn2, s.up, d.D, d.F);
  switch (d.activation) {
    case Activation::swiglu:
      project(c, d, p, s, Proj::gate, s.xn2, s.gate, d.D, d.F);
      ops::cuda::swiglu_forward(s.gate, s.up, s.act, M * d.F, c.stream);
      break;
    case Activation::geglu:
      project(c, d, p, s, Proj::gate, s.xn2, s.gate, d.D, d.F);
      ops::cuda::geglu_forward(s.gate, s.up, s.act, M * d.F, c.stream);
      break;
    case Activation::gelu:
    case Activation::gelu_tanh:
      ops::cuda::gelu_forward(s.up, s.act, M * d.F, d.activation == Activation::gelu_tanh,
                              c.stream);
      break;
  }
  project(c, d, p, s, Proj::down, s.act, x_out, d.F, d.D);
  ops::cuda::add_forward(x_out, s.mid, x_out, M * d.D, c.stream);
}

void device_layer_backward(const DeviceLayerContext& c, const LayerDims& d,
                           const DeviceLayerParams& p, const DeviceLayerGrads& g,
                           const DeviceLayerStash& s, const DeviceLayerScratch& sc,
                           const bf16* x_in, bf16* d_resid) {
  const int64_t M = d.M(), qd = d.H * d.Dh, kvd = d.Hkv * d.Dh;
  // As on the CPU: d_resid holds d(x_out) = d(mid); the down projection (and, parallel residual,
  // the output projection) read it before the MLP norm adds its part of d(x_in).
  zero(c, sc.dact, M * d.F);
  project_backward(c, d, p, g, s, sc, Proj::down, s.act, d_resid, sc.dact, d.F, d.D);
  if (d.parallel_residual) {
    zero(c, sc.datt, M * qd);
    project_backward(c, d, p, g, s, sc, Proj::o, s.att, d_resid, sc.datt, qd, d.D);
  }
  zero(c, sc.dup, M * d.F);
  zero(c, sc.dxn, M * d.D);
  if (gated(d)) {
    zero(c, sc.dgate, M * d.F);
    if (d.activation == Activation::swiglu)
      ops::cuda::swiglu_backward(s.gate, s.up, sc.dact, sc.dgate, sc.dup, M * d.F, c.stream);
    else
      ops::cuda::geglu_backward(s.gate, s.up, sc.dact, sc.dgate, sc.dup, M * d.F, c.stream);
    project_backward(c, d, p, g, s, sc, Proj::gate, s.xn2, sc.dgate, sc.dxn, d.D, d.F);
  } else {
    ops::cuda::gelu_backward(s.up, sc.dact, sc.dup, M * d.F, d.activation == Activation::gelu_tanh,
                             c.stream);
  }
  project_backward(c, d, p, g, s, sc, Proj::up, s.xn2, sc.dup, sc.dxn, d.D, d.F);
  device_norm_backward(c, d, d.parallel_residual ? x_in : s.mid, p.mlp_norm, s.mean2, s.rstd2,
                       sc.dxn, d_resid, g.mlp_norm, g.mlp_norm_bias);
  // Sequential residual: d_resid now holds d(mid), which the output projection reads.
  if (!d.parallel_residual) {
    zero(c, sc.datt, M * qd);
    project_backward(c, d, p, g, s, sc, Proj::o, s.att, d_resid, sc.datt, qd, d.D);
  }
  zero(c, sc.dq, M * qd);
  zero(c, sc.dk, M * kvd);
  zero(c, sc.dv, M * kvd);
  const ops::AttentionShape shape{d.N, d.T, d.H, d.Hkv, d.Dh};
  ops::cuda::attention_backward(c.attention, s.q, s.k, s.v, s.att, s.lse, sc.datt, sc.dq, sc.dk,
                                sc.dv, shape);
  ops::cuda::rope_backward(sc.dq, c.rope, d.N, d.T, d.H, d.Dh, c.stream);
  ops::cuda::rope_backward(sc.dk, c.rope, d.N, d.T, d.Hkv, d.Dh, c.stream);
  zero(c, sc.dxn, M * d.D);
  project_backward(c, d, p, g, s, sc, Proj::q, s.xn1, sc.dq, sc.dxn, d.D, qd);
  project_backward(c, d, p, g, s, sc, Proj::k, s.xn1, sc.dk, sc.dxn, d.D, kvd);
  project_backward(c, d, p, g, s, sc, Proj::v, s.xn1, sc.dv, sc.dxn, d.D, kvd);
  device_norm_backward(c, d, x_in, p.attn_norm, s.mean1, s.rstd1, sc.dxn, d_resid, g.attn_norm,
                       g.attn_norm_bias);
}

}  // namespace rrt
