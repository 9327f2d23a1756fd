#include "model/recursive_model.h"

#include <omp.h>

#include <algorithm>
#include <cstring>

#include "ops/attention.h"
#include "ops/cross_entropy.h"
#include "ops/embedding.h"
#include "ops/matmul.h"
#include "ops/norm.h"

namespace rrt {

RecursiveModel::RecursiveModel(const ModelSpec& spec, const ModelCapacity& capacity)
    : spec_(spec), cap_(capacity), params_(spec) {
  const ModelConfig& m = spec_.model;
  if (cap_.max_seq <= 0) cap_.max_seq = m.max_seq_len;
  if (cap_.threads <= 0) cap_.threads = omp_get_max_threads();
  RRT_CHECK(cap_.max_batch > 0 && cap_.max_seq <= m.max_seq_len, "RecursiveModel",
            "capacity ", cap_.max_batch, " x ", cap_.max_seq, " must fit max_seq_len ",
            m.max_seq_len);
  rope_ = ops::RopeTable(cap_.max_seq, m.rot_dim(), m.rope_theta);
  const int64_t M = cap_.max_batch * cap_.max_seq, D = m.d_model, F = m.ffn;
  const int64_t qd = m.q_dim(), kvd = m.kv_dim(), L = spec_.positions();

  // Plan every activation once: per position what backward reads, then shared scratch.
  for (int64_t l = 0; l <= L; ++l) activations_.plan("resid." + std::to_string(l), Shape{M, D});
  int64_t max_rank = 0;
  for (int64_t l = 0; l < L; ++l) {
    const std::string p = "pos." + std::to_string(l) + ".";
    for (const char* n : {"xn1", "mid", "xn2"}) activations_.plan(p + n, Shape{M, D});
    for (const char* n : {"q", "att"}) activations_.plan(p + n, Shape{M, qd});
    for (const char* n : {"k", "v"}) activations_.plan(p + n, Shape{M, kvd});
    for (const char* n : {"up", "act"}) activations_.plan(p + n, Shape{M, F});
    if (m.gated()) activations_.plan(p + "gate", Shape{M, F});
    for (const char* n : {"rstd1", "rstd2"}) activations_.plan(p + n, Shape{M});
    if (m.norm == Norm::layer)
      for (const char* n : {"mean1", "mean2"}) activations_.plan(p + n, Shape{M});
    activations_.plan(p + "lse", Shape{M * m.n_heads});
    for (int j = 0; j < kNumProj; ++j) {
      int64_t r = spec_.lora_rank(static_cast<Proj>(j));
      max_rank = std::max(max_rank, r);
      if (r > 0) activations_.plan(p + "lora_u." + kProjNames[j], Shape{M, r});
    }
  }
  activations_.plan("final.h", Shape{M, D});
  for (const char* n : {"final.rstd", "final.mean"}) activations_.plan(n, Shape{M});
  activations_.allocate();

  for (const char* n : {"dxn", "d_resid", "d_final_h"}) scratch_.plan(n, Shape{M, D});
  for (const char* n : {"dq", "datt"}) scratch_.plan(n, Shape{M, qd});
  for (const char* n : {"dk", "dv"}) scratch_.plan(n, Shape{M, kvd});
  for (const char* n : {"dgate", "dup", "dact"}) scratch_.plan(n, Shape{M, F});
  scratch_.plan("lora_du", Shape{M * std::max<int64_t>(max_rank, 1)});
  const ops::AttentionShape ashape{cap_.max_batch, cap_.max_seq, m.n_heads, m.n_kv_heads, m.dh()};
  scratch_.plan("attn_ws", Shape{ops::attention_workspace_elems(ashape, cap_.threads)});
  scratch_.plan("head_ws", Shape{ops::lm_head_workspace_elems(m.vocab, cap_.head_chunk)});
  scratch_.allocate();

  auto s = [&](const char* n) { return scratch_.view(n).f32(); };
  layer_scratch_ = {s("dxn"), s("dq"), s("dk"), s("dv"), s("datt"), s("dgate"), s("dup"),
                    s("dact"), s("lora_du"), s("attn_ws"), cap_.threads};
  d_final_h_ = s("d_final_h");
  d_resid_ = s("d_resid");
  head_ws_ = s("head_ws");
  final_h_ = activations_.view("final.h").f32();
  final_rstd_ = activations_.view("final.rstd").f32();
  final_mean_ = activations_.view("final.mean").f32();
  for (int64_t l = 0; l <= L; ++l) resid_.push_back(activations_.view("resid." + std::to_string(l)).f32());
  bind_positions();
  // Resolved once: name lookups build strings, and the step must not allocate.
  const char* head_name = m.tied_head ? "embed.weight" : "head.weight";
  embed_ = params_.value("embed.weight");
  embed_grad_ = params_.grad("embed.weight");
  final_norm_ = params_.value("final_norm.weight");
  final_norm_grad_ = params_.grad("final_norm.weight");
  if (m.norm == Norm::layer) {
    final_norm_bias_ = params_.value("final_norm.bias");
    final_norm_bias_grad_ = params_.grad("final_norm.bias");
  }
  head_ = params_.value(head_name);
  head_grad_ = params_.grad(head_name);
}

void RecursiveModel::bind_positions() {
  const RecursionConfig& r = spec_.recursion;
  const ModelConfig& m = spec_.model;
  const ParamRegistry& reg = params_.registry();
  // Every parameter not used by a position (head, final norm) is final after the head: L.
  grad_ready_after_.assign(static_cast<size_t>(reg.size()), spec_.positions());
  grad_ready_after_[static_cast<size_t>(reg.index("embed.weight"))] = -1;
  for (int64_t l = 0; l < spec_.positions(); ++l) {
    const Position pos = position_of(r, l);
    LayerParams p;
    LayerGrads g;
    // Positions are bound in increasing order, so the first use is the smallest position.
    auto used = [&](int i) {
      int64_t& ready = grad_ready_after_[static_cast<size_t>(i)];
      if (ready == spec_.positions()) ready = l;
      return i;
    };
    auto norm = [&](bool attn, bool bias) {
      return used(
          reg.index(ParamRegistry::norm_name(pos.layer, pos.loop, attn, r.per_loop_norms, bias)));
    };
    p.attn_norm = params_.value(norm(true, false));
    p.mlp_norm = params_.value(norm(false, false));
    g.attn_norm = params_.grad(norm(true, false));
    g.mlp_norm = params_.grad(norm(false, false));
    if (m.norm == Norm::layer) {
      p.attn_norm_bias = params_.value(norm(true, true));
      p.mlp_norm_bias = params_.value(norm(false, true));
      g.attn_norm_bias = params_.grad(norm(true, true));
      g.mlp_norm_bias = params_.grad(norm(false, true));
    }
    for (int j = 0; j < kNumProj; ++j) {
      const Proj proj = static_cast<Proj>(j);
      if (!m.has_proj(proj)) continue;
      const int w = used(reg.index(ParamRegistry::block_name(pos.layer, proj)));
      p.weight[j] = params_.value(w);
      g.weight[j] = params_.grad(w);
      if (m.linear_bias) {
        const int bi = used(
            reg.index(ParamRegistry::bias_name(pos.layer, proj, pos.loop, r.per_loop_norms)));
        p.bias[j] = params_.value(bi);
        g.bias[j] = params_.grad(bi);
      }
      p.rank[j] = spec_.lora_rank(proj);
      p.scale[j] = static_cast<float>(spec_.lora_scale(proj));
      if (p.rank[j] > 0) {
        const int a = used(reg.index(ParamRegistry::lora_name(pos.loop, pos.layer, proj, true)));
        const int b = used(reg.index(ParamRegistry::lora_name(pos.loop, pos.layer, proj, false)));
        p.lora_a[j] = params_.value(a);
        p.lora_b[j] = params_.value(b);
        g.lora_a[j] = params_.grad(a);
        g.lora_b[j] = params_.grad(b);
      }
    }
    layer_params_.push_back(p);
    layer_grads_.push_back(g);

    const std::string pre = "pos." + std::to_string(l) + ".";
    auto a = [&](const std::string& n) { return activations_.view(pre + n).f32(); };
    LayerStash st{a("xn1"), a("rstd1"), a("q"), a("k"), a("v"), a("lse"), a("att"),
                  a("mid"), a("xn2"), a("rstd2"), m.gated() ? a("gate") : nullptr, a("up"),
                  a("act")};
    if (m.norm == Norm::layer) {
      st.mean1 = a("mean1");
      st.mean2 = a("mean2");
    }
    for (int j = 0; j < kNumProj; ++j)
      if (p.rank[j] > 0) st.lora_u[j] = a(std::string("lora_u.") + kProjNames[j]);
    stash_.push_back(st);
  }
}

LayerDims RecursiveModel::dims(int64_t N, int64_t T) const {
  const ModelConfig& m = spec_.model;
  return {N,         T,           m.d_model,
          m.n_heads, m.n_kv_heads, m.dh(),
          m.ffn,     static_cast<float>(m.norm_eps),
          m.norm,    m.norm_unit_offset, m.parallel_residual,
          m.activation};
}


void RecursiveModel::forward(const int32_t* tokens, int64_t N, int64_t T) {
  RRT_CHECK(N > 0 && T > 0 && N <= cap_.max_batch && T <= cap_.max_seq, "RecursiveModel",
            "batch ", N, " x ", T, " exceeds the planned capacity ", cap_.max_batch, " x ",
            cap_.max_seq);
  const ModelConfig& m = spec_.model;
  const LayerDims d = dims(N, T);
  cur_N_ = N;
  cur_T_ = T;
  ops::embedding_forward<float>(tokens, embed_, resid_[0], d.M(), d.D,
                                m.vocab, static_cast<float>(m.embedding_multiplier()));
  for (int64_t l = 0; l < spec_.positions(); ++l)
    decoder_layer_forward(d, rope_, layer_params_[l], stash_[l], resid_[l], resid_[l + 1],
                          layer_scratch_);
  norm_forward(d, resid_[spec_.positions()], final_norm_, final_norm_bias_, final_h_, final_mean_,
               final_rstd_);
}

void RecursiveModel::backward(const int32_t* tokens) {
  const ModelConfig& m = spec_.model;
  const LayerDims d = dims(cur_N_, cur_T_);
  const int64_t L = spec_.positions();
  std::memset(d_resid_, 0, static_cast<size_t>(d.M() * d.D) * sizeof(float));
  norm_backward(d, resid_[L], final_norm_, final_mean_, final_rstd_, d_final_h_, d_resid_,
                final_norm_grad_, final_norm_bias_grad_);
  if (grad_ready_hook_) grad_ready_hook_(L);
  for (int64_t l = L - 1; l >= 0; --l) {
    decoder_layer_backward(d, rope_, layer_params_[l], layer_grads_[l], stash_[l], layer_scratch_,
                           resid_[l], d_resid_);
    if (grad_ready_hook_) grad_ready_hook_(l);
  }
  ops::embedding_backward<float>(tokens, d_resid_, embed_grad_, d.M(), d.D,
                                 static_cast<float>(m.embedding_multiplier()));
  if (grad_ready_hook_) grad_ready_hook_(-1);
}

double RecursiveModel::forward_backward(const int32_t* tokens, const int32_t* targets, int64_t N,
                                        int64_t T, float weight) {
  forward(tokens, N, T);
  const ModelConfig& m = spec_.model;
  std::memset(d_final_h_, 0, static_cast<size_t>(N * T * m.d_model) * sizeof(float));
  auto ce = ops::lm_head_cross_entropy<float>(final_h_, head_, targets, d_final_h_,
                                              head_grad_, N * T, m.d_model, m.vocab, kIgnoreIndex,
                                              weight, head_ws_, cap_.head_chunk);
  backward(tokens);
  return ce.mean_loss;
}

double RecursiveModel::loss(const int32_t* tokens, const int32_t* targets, int64_t N, int64_t T) {
  forward(tokens, N, T);
  const ModelConfig& m = spec_.model;
  return ops::lm_head_cross_entropy<float>(final_h_, head_, targets, nullptr, nullptr,
                                           N * T, m.d_model, m.vocab, kIgnoreIndex, 1.0f, head_ws_,
                                           cap_.head_chunk)
      .mean_loss;
}

void RecursiveModel::logits(const int32_t* tokens, int64_t N, int64_t T, float* out) {
  forward(tokens, N, T);
  const ModelConfig& m = spec_.model;
  ops::linear_forward<float>(final_h_, head_, nullptr, out, N * T, m.d_model, m.vocab,
                             false);
}

double RecursiveModel::train_flops(int64_t N, int64_t T) const {
  const ModelConfig& m = spec_.model;
  double per_token = 0;  // multiply-adds of one forward, per token
  for (int64_t l = 0; l < spec_.positions(); ++l)
    for (int j = 0; j < kNumProj; ++j) {
      if (!m.has_proj(static_cast<Proj>(j))) continue;
      auto [out, in] = proj_shape(m, static_cast<Proj>(j));
      const int64_t r = spec_.lora_rank(static_cast<Proj>(j));
      per_token += static_cast<double>(out * in + r * (in + out));
    }
  per_token += static_cast<double>(m.vocab * m.d_model);
  // Causal attention: QK^T and PV over on average (T+1)/2 keys per query.
  const double attn = static_cast<double>(spec_.positions()) * 2.0 * m.q_dim() * (T + 1) / 2.0;
  return 6.0 * (per_token + attn) * static_cast<double>(N * T);
}

}  // namespace rrt
