// RecursiveCore's definitions (model/recursive_core.h), written once for every backend.
// Included only where the core is instantiated: model/recursive_core.cpp (CPU) and
// model/cuda/instantiate.cpp (CUDA).
#pragma once

#include <algorithm>
#include <string>

#include "core/error.h"
#include "core/trace.h"
#include "model/decoder_layer_impl.h"
#include "model/documents.h"
#include "model/recursive_core.h"
#include "ops/logit_softcap.h"

namespace rrt {

template <class Be>
RecursiveCore<Be>::RecursiveCore(Be& backend, const ModelSpec& spec, const ParamRegistry& registry,
                                 const ParameterBinding<Be>& params, const CoreCapacity& capacity,
                                 const TrainingLoss& loss)
    : be_(backend), spec_(spec), cap_(capacity), loss_(loss) {
  const ModelConfig& m = spec_.model;
  L_ = spec_.positions();
  RRT_CHECK(cap_.max_batch > 0 && cap_.max_seq > 0 && cap_.max_seq <= m.max_seq_len,
            "RecursiveModel", "capacity ", cap_.max_batch, " x ", cap_.max_seq,
            " must fit max_seq_len ", m.max_seq_len);
  RRT_CHECK(!cap_.forward_only || loss_.plain(), "RecursiveModel",
            "a forward-only model (a teacher) trains nothing: it takes no training loss");
  M_ = cap_.max_batch * cap_.max_seq;
  host_doc_start_.resize(static_cast<size_t>(M_));  // here: a training step allocates nothing
  host_positions_.resize(static_cast<size_t>(M_));
  if (cap_.recompute.empty() || cap_.forward_only)
    cap_.recompute.assign(static_cast<size_t>(L_), false);
  RRT_CHECK(static_cast<int64_t>(cap_.recompute.size()) == L_, "RecursiveModel", "recompute lists ",
            cap_.recompute.size(), " positions; the model has ", L_);
  any_recompute_ =
      std::find(cap_.recompute.begin(), cap_.recompute.end(), true) != cap_.recompute.end();
  cap_.head_chunk = std::clamp<int64_t>(cap_.head_chunk, 1, M_);
  if (!cap_.measure_only)
    be_.prepare({{cap_.max_batch, cap_.max_seq, m.n_heads, m.n_kv_heads, m.dh()},
                 m.rot_dim(),
                 m.rope_theta,
                 m.rope_scaling,
                 !cap_.forward_only,
                 m.rope_local_theta});
  plan_exits();
  // One head workspace for the plain CE and the exit loss: chunk x V blocks, never M x V.
  head_ws_bytes_ = be_.lm_head_workspace_bytes(m.vocab, cap_.head_chunk);
  if (!loss_.plain())
    head_ws_bytes_ = std::max(
        head_ws_bytes_, be_.exit_loss_workspace_bytes(
                            m.vocab, cap_.head_chunk, static_cast<int64_t>(exit_resid_.size()),
                            loss_.teacher, loss_.self_distill, spec_.exit_head.lora_rank));
  // Both blocks are measured before either is allocated (measure_only stops there).
  Carver measure;
  carve_activations(measure);
  activation_bytes_ = static_cast<int64_t>(measure.used);
  Carver measure_scratch;
  carve_scratch(measure_scratch);
  scratch_bytes_ = static_cast<int64_t>(measure_scratch.used);
  if (cap_.measure_only) return;
  activation_block_ = be_.allocate(measure.used, "activations");
  Carver c{static_cast<char*>(activation_block_.get())};
  carve_activations(c);
  scratch_block_ = be_.allocate(measure_scratch.used, "backward scratch and head workspace");
  Carver s{static_cast<char*>(scratch_block_.get())};
  carve_scratch(s);
  bind_positions(registry, params);
  bind_head(registry, params);
}

// Exits from loss_.exit_loops: loop k ends at residual index k * B (cycle sharing).
template <class Be>
void RecursiveCore<Be>::plan_exits() {
  const int64_t K = spec_.recursion.loops, B = spec_.recursion.block_layers;
  if (loss_.exit_loops.empty()) loss_.exit_loops = {K};
  if (loss_.exit_weights.empty()) loss_.exit_weights.assign(loss_.exit_loops.size(), 1.0);
  const std::vector<int64_t>& loops = loss_.exit_loops;
  RRT_CHECK(loops.back() == K, "RecursiveModel", "the last exit must be the final loop ", K,
            ", got loop ", loops.back());
  RRT_CHECK(loss_.exit_weights.size() == loops.size(), "RecursiveModel", loops.size(),
            " exits but ", loss_.exit_weights.size(), " exit weights");
  RRT_CHECK(loops.size() == 1 || spec_.recursion.sharing == Sharing::cycle, "RecursiveModel",
            "early exits need cycle sharing (sequence sharing has no loop ends)");
  const size_t E = loops.size();
  exit_at_resid_.assign(static_cast<size_t>(L_ + 1), -1);
  for (size_t e = 0; e < E; ++e) {
    RRT_CHECK(loops[e] >= 1 && loops[e] <= K && (e == 0 || loops[e] > loops[e - 1]),
              "RecursiveModel", "exit loops must ascend within 1..", K);
    exit_resid_.push_back(loops[e] * B);
    exit_at_resid_[static_cast<size_t>(loops[e] * B)] = static_cast<int>(e);
  }
  exit_h_.assign(E, nullptr);
  exit_dh_.assign(E, nullptr);
  exit_rstd_.assign(E, nullptr);
  exit_mean_.assign(E, nullptr);
  exit_lora_a_.assign(E, nullptr);
  exit_lora_b_.assign(E, nullptr);
  exit_lora_da_.assign(E, nullptr);
  exit_lora_db_.assign(E, nullptr);
  losses_.exit_ce.assign(E, 0.0);
  losses_.exit_kd.assign(E, 0.0);
  losses_.exit_sd.assign(E, 0.0);
}

// Every activation: the residual streams, per position what backward reads (one shared stash for
// the recomputed positions, or for all of a forward-only model), the final norm's output and the
// intermediate exits' normed states.
template <class Be>
void RecursiveCore<Be>::carve_activations(Carver& c) {
  const ModelConfig& m = spec_.model;
  const int64_t M = M_, D = m.d_model, F = m.ffn, qd = m.q_dim(), kvd = m.kv_dim();
  std::vector<Act*> buffers(static_cast<size_t>(cap_.forward_only ? 2 : L_ + 1));
  for (auto& b : buffers) b = c.template take<Act>(M * D);
  resid_.assign(static_cast<size_t>(L_ + 1), nullptr);
  for (int64_t l = 0; l <= L_; ++l) resid_[l] = buffers[static_cast<size_t>(l) % buffers.size()];
  auto carve_stash = [&]() {
    LayerStashOf<Act, Stat> s;
    s.xn1 = c.template take<Act>(M * D);
    s.mid = c.template take<Act>(M * D);
    s.xn2 = c.template take<Act>(M * D);
    s.q = c.template take<Act>(M * qd);
    s.att = c.template take<Act>(M * qd);
    s.k = c.template take<Act>(M * kvd);
    s.v = c.template take<Act>(M * kvd);
    s.up = c.template take<Act>(M * F);
    s.act = c.template take<Act>(M * F);
    if (m.gated()) s.gate = c.template take<Act>(M * F);
    s.rstd1 = c.template take<Stat>(M);
    s.rstd2 = c.template take<Stat>(M);
    if (m.norm == Norm::layer) {
      s.mean1 = c.template take<Stat>(M);
      s.mean2 = c.template take<Stat>(M);
    }
    s.lse = c.template take<Stat>(M * m.n_heads);
    if (m.qk_norm) {
      s.q_raw = c.template take<Act>(M * qd);
      s.k_raw = c.template take<Act>(M * kvd);
      s.rstd_q = c.template take<Stat>(M * m.n_heads);
      s.rstd_k = c.template take<Stat>(M * m.n_kv_heads);
    }
    if (m.sandwich_norm) {
      s.attn_out = c.template take<Act>(M * D);
      s.mlp_out = c.template take<Act>(M * D);
      s.rstd_ap = c.template take<Stat>(M);
      s.rstd_mp = c.template take<Stat>(M);
    }
    for (int j = 0; j < kNumProj; ++j) {
      const int64_t r = spec_.lora_rank(static_cast<Proj>(j));
      if (r > 0) s.lora_u[j] = c.template take<Act>(M * r);
    }
    return s;
  };
  const bool shared_stash = any_recompute_ || cap_.forward_only;
  const LayerStashOf<Act, Stat> shared = shared_stash ? carve_stash() : LayerStashOf<Act, Stat>{};
  stash_.clear();
  for (int64_t l = 0; l < L_; ++l)
    stash_.push_back(cap_.recompute[static_cast<size_t>(l)] || cap_.forward_only ? shared
                                                                                 : carve_stash());
  final_h_ = c.template take<Act>(M * D);
  final_rstd_ = c.template take<Stat>(M);
  final_mean_ = c.template take<Stat>(M);
  tokens_ = c.template take<int32_t>(M);
  targets_ = c.template take<int32_t>(M);
  doc_start_ = c.template take<int32_t>(M);
  positions_ = c.template take<int32_t>(M);
  const int64_t E = static_cast<int64_t>(exit_resid_.size());
  for (int64_t e = 0; e + 1 < E; ++e) {
    exit_h_[e] = c.template take<Act>(M * D);
    exit_rstd_[e] = c.template take<Stat>(M);
    exit_mean_[e] = m.norm == Norm::layer ? c.template take<Stat>(M) : nullptr;
  }
  exit_h_[E - 1] = final_h_;
}

// Backward scratch (none forward only) and the head's workspace.
template <class Be>
void RecursiveCore<Be>::carve_scratch(Carver& c) {
  const ModelConfig& m = spec_.model;
  const int64_t M = M_, D = m.d_model, F = m.ffn, qd = m.q_dim(), kvd = m.kv_dim();
  head_ws_ = c.template take<char>(static_cast<int64_t>(head_ws_bytes_));
  if (cap_.forward_only) return;
  scratch_.dxn = c.template take<Act>(M * D);
  d_resid_ = c.template take<Act>(M * D);
  d_final_h_ = c.template take<Act>(M * D);
  scratch_.dq = c.template take<Act>(M * qd);
  scratch_.datt = c.template take<Act>(M * qd);
  scratch_.dk = c.template take<Act>(M * kvd);
  scratch_.dv = c.template take<Act>(M * kvd);
  if (m.gated()) scratch_.dgate = c.template take<Act>(M * F);
  scratch_.dup = c.template take<Act>(M * F);
  scratch_.dact = c.template take<Act>(M * F);
  scratch_.lora_du = c.template take<Act>(M * std::max<int64_t>(spec_.max_lora_rank(), 1));
  if (m.qk_norm) {
    scratch_.dq_raw = c.template take<Act>(M * qd);
    scratch_.dk_raw = c.template take<Act>(M * kvd);
  }
  if (m.sandwich_norm) scratch_.dpost = c.template take<Act>(M * D);
  if (any_recompute_) recompute_out_ = c.template take<Act>(M * D);
  const int64_t E = static_cast<int64_t>(exit_resid_.size());
  for (int64_t e = 0; e + 1 < E; ++e) exit_dh_[e] = c.template take<Act>(M * D);
  exit_dh_[E - 1] = d_final_h_;
}

template <class Be>
void RecursiveCore<Be>::bind_positions(const ParamRegistry& reg,
                                       const ParameterBinding<Be>& params) {
  const RecursionConfig& r = spec_.recursion;
  const ModelConfig& m = spec_.model;
  // Every parameter no position uses (head, final norm) is final after the head: L.
  grad_ready_after_.assign(static_cast<size_t>(reg.size()), L_);
  grad_ready_after_[static_cast<size_t>(reg.index("embed.weight"))] = -1;
  for (int64_t l = 0; l < L_; ++l) {
    const Position pos = position_of(r, l);
    LayerParamsOf<Act> p;
    LayerGradsOf<Grad> g;
    // Positions are bound in increasing order, so the first use is the smallest position.
    auto used = [&](int i) {
      int64_t& ready = grad_ready_after_[static_cast<size_t>(i)];
      if (ready == L_) ready = l;
      return i;
    };
    auto norm = [&](bool attn, bool bias) {
      return used(
          reg.index(ParamRegistry::norm_name(pos.layer, pos.loop, attn, r.per_loop_norms, bias)));
    };
    p.attn_norm = params.value(norm(true, false));
    p.mlp_norm = params.value(norm(false, false));
    g.attn_norm = params.grad(norm(true, false));
    g.mlp_norm = params.grad(norm(false, false));
    if (m.norm == Norm::layer) {
      p.attn_norm_bias = params.value(norm(true, true));
      p.mlp_norm_bias = params.value(norm(false, true));
      g.attn_norm_bias = params.grad(norm(true, true));
      g.mlp_norm_bias = params.grad(norm(false, true));
    }
    if (m.qk_norm) {
      const int qn =
          used(reg.index(ParamRegistry::qk_norm_name(pos.layer, pos.loop, true, r.per_loop_norms)));
      const int kn = used(
          reg.index(ParamRegistry::qk_norm_name(pos.layer, pos.loop, false, r.per_loop_norms)));
      p.q_norm = params.value(qn);
      p.k_norm = params.value(kn);
      g.q_norm = params.grad(qn);
      g.k_norm = params.grad(kn);
    }
    if (m.sandwich_norm) {
      const int an = used(
          reg.index(ParamRegistry::post_norm_name(pos.layer, pos.loop, true, r.per_loop_norms)));
      const int mn = used(
          reg.index(ParamRegistry::post_norm_name(pos.layer, pos.loop, false, r.per_loop_norms)));
      p.attn_post_norm = params.value(an);
      p.mlp_post_norm = params.value(mn);
      g.attn_post_norm = params.grad(an);
      g.mlp_post_norm = params.grad(mn);
    }
    p.local_rope = m.local_rope_at(l);
    for (int j = 0; j < kNumProj; ++j) {
      const Proj proj = static_cast<Proj>(j);
      if (!m.has_proj(proj)) continue;
      const int w = used(reg.index(ParamRegistry::block_name(pos.layer, proj)));
      p.weight[j] = params.value(w);
      g.weight[j] = params.grad(w);
      if (m.has_bias(proj)) {
        const int bi =
            used(reg.index(ParamRegistry::bias_name(pos.layer, proj, pos.loop, r.per_loop_norms)));
        p.bias[j] = params.value(bi);
        g.bias[j] = params.grad(bi);
      }
      p.rank[j] = spec_.lora_rank(proj);
      p.scale[j] = static_cast<float>(spec_.lora_scale(proj));
      if (p.rank[j] > 0) {
        const int a = used(reg.index(ParamRegistry::lora_name(pos.loop, pos.layer, proj, true)));
        const int b = used(reg.index(ParamRegistry::lora_name(pos.loop, pos.layer, proj, false)));
        p.lora_a[j] = params.value(a);
        p.lora_b[j] = params.value(b);
        g.lora_a[j] = params.grad(a);
        g.lora_b[j] = params.grad(b);
      }
    }
    layer_params_.push_back(p);
    layer_grads_.push_back(g);
  }
}

// The embedding, final norm, head and the exits' head adapters; resolved once (name lookups
// build strings, and a step must not allocate).
template <class Be>
void RecursiveCore<Be>::bind_head(const ParamRegistry& reg, const ParameterBinding<Be>& params) {
  const ModelConfig& m = spec_.model;
  const int embed = reg.index("embed.weight"), norm = reg.index("final_norm.weight");
  const int head = reg.index(m.tied_head ? "embed.weight" : "head.weight");
  embed_ = params.value(embed);
  embed_grad_ = params.grad(embed);
  final_norm_ = params.value(norm);
  final_norm_grad_ = params.grad(norm);
  if (m.norm == Norm::layer) {
    const int bias = reg.index("final_norm.bias");
    final_norm_bias_ = params.value(bias);
    final_norm_bias_grad_ = params.grad(bias);
  }
  head_ = params.value(head);
  head_grad_ = params.grad(head);
  const int64_t E = static_cast<int64_t>(exit_resid_.size());
  for (int64_t e = 0; e + 1 < E; ++e) {
    const std::string a = ParamRegistry::head_lora_name(loss_.exit_loops[e], true);
    const std::string b = ParamRegistry::head_lora_name(loss_.exit_loops[e], false);
    if (!reg.has(a)) continue;
    exit_lora_a_[e] = params.value(reg.index(a));
    exit_lora_b_[e] = params.value(reg.index(b));
    exit_lora_da_[e] = params.grad(reg.index(a));
    exit_lora_db_[e] = params.grad(reg.index(b));
  }
  const int64_t K = spec_.recursion.loops;
  head_lora_a_.assign(static_cast<size_t>(K), nullptr);
  head_lora_b_.assign(static_cast<size_t>(K), nullptr);
  for (int64_t k = 1; k < K; ++k) {
    const std::string a = ParamRegistry::head_lora_name(k, true);
    if (spec_.exit_head.lora_rank == 0 || !reg.has(a)) continue;
    head_lora_a_[static_cast<size_t>(k - 1)] = params.value(reg.index(a));
    head_lora_b_[static_cast<size_t>(k - 1)] =
        params.value(reg.index(ParamRegistry::head_lora_name(k, false)));
  }
  // Intermediate exits add into the final norm's gradient during backward, at their loop's
  // end: it is final once the earliest of them is done (after hook(k * B - 1)).
  if (E > 1)
    for (const char* n : {"final_norm.weight", "final_norm.bias"})
      if (reg.has(n)) grad_ready_after_[static_cast<size_t>(reg.index(n))] = exit_resid_[0] - 1;
}

template <class Be>
void RecursiveCore<Be>::forward(const int32_t* tokens, int64_t N, int64_t T) {
  RRT_CHECK(N > 0 && T > 0 && N <= cap_.max_batch && T <= cap_.max_seq, "RecursiveModel", "batch ",
            N, " x ", T, " exceeds the planned capacity ", cap_.max_batch, " x ", cap_.max_seq);
  const ModelConfig& m = spec_.model;
  cur_N_ = N;
  cur_T_ = T;
  // Document-aware batches: the starts and restarted positions, uploaded only when a sequence
  // holds more than one document (otherwise the plain path runs, bit for bit).
  documents_ = false;
  if (document_eos_ >= 0) {
    documents_ = document_starts(tokens, N, T, document_eos_, host_doc_start_.data(),
                                 host_positions_.data());
    if (documents_) {
      be_.upload(doc_start_, host_doc_start_.data(), N * T);
      be_.upload(positions_, host_positions_.data(), N * T);
    }
  }
  const LayerDims d = dims();
  be_.upload(tokens_, tokens, d.M());
  be_.embedding_forward(tokens_, embed_, resid_[0], d.M(), d.D, m.vocab,
                        static_cast<float>(m.embedding_multiplier()));
  for (int64_t l = 0; l < L_; ++l) {
    RRT_TRACE_SPAN("layer.forward", "position", l);
    decoder_layer_forward(be_, dims(l), layer_params_[l], stash_[l], resid_[l], resid_[l + 1]);
  }
  family_norm_forward(be_, d, resid_[L_], final_norm_, final_norm_bias_, final_h_, final_mean_,
                      final_rstd_);
}

template <class Be>
const typename Be::Act* RecursiveCore<Be>::loop_end(int64_t loop) const {
  const int64_t K = spec_.recursion.loops;
  RRT_CHECK(loop >= 1 && loop <= K, "RecursiveModel", "loop ", loop, " is outside 1..", K);
  RRT_CHECK(current_rows() > 0, "RecursiveModel", "loop ends need a forward first");
  if (loop == K) return resid_[static_cast<size_t>(L_)];
  RRT_CHECK(spec_.recursion.sharing == Sharing::cycle, "RecursiveModel",
            "only the last loop ends a sequence-shared model (exits need cycle sharing)");
  RRT_CHECK(!cap_.forward_only, "RecursiveModel",
            "a forward-only model keeps no residual stream before its last loop");
  return resid_[static_cast<size_t>(loop * spec_.recursion.block_layers)];
}

template <class Be>
void RecursiveCore<Be>::plan_exit_logits() {
  const ModelConfig& m = spec_.model;
  const int64_t C = cap_.head_chunk, D = m.d_model;
  const int64_t R = std::max<int64_t>(spec_.exit_head.lora_rank, 1);
  auto carve = [&](Carver& c) {
    exit_rows_ = c.template take<int32_t>(C);
    exit_x_ = c.template take<Act>(C * D);
    exit_xn_ = c.template take<Act>(C * D);
    exit_u_ = c.template take<Act>(C * R);
    exit_mean_rows_ = c.template take<Stat>(C);
    exit_rstd_rows_ = c.template take<Stat>(C);
    exit_logits_ = c.template take<float>(C * m.vocab);
  };
  Carver measure;
  carve(measure);
  exit_block_ = be_.allocate(measure.used, "exit logits");
  Carver c{static_cast<char*>(exit_block_.get())};
  carve(c);
}

template <class Be>
void RecursiveCore<Be>::exit_logits(int64_t loop, const int32_t* rows, int64_t n, float* out) {
  const Act* resid = loop_end(loop);
  RRT_CHECK(n >= 0 && n <= cap_.head_chunk, "RecursiveModel", n, " exit rows exceed the chunk ",
            cap_.head_chunk);
  if (n == 0) return;
  for (int64_t i = 0; i < n; ++i)
    RRT_CHECK(rows[i] >= 0 && rows[i] < current_rows(), "RecursiveModel", "exit row ", rows[i],
              " is outside the batch's ", current_rows(), " rows");
  if (!exit_block_) plan_exit_logits();
  const ModelConfig& m = spec_.model;
  const int64_t D = m.d_model, V = m.vocab;
  be_.upload(exit_rows_, rows, n);
  be_.gather_rows(resid, exit_rows_, exit_x_, n, D);
  family_norm_forward(be_, layer_dims(m, n, 1), exit_x_, final_norm_, final_norm_bias_, exit_xn_,
                      exit_mean_rows_, exit_rstd_rows_);
  float* logits = Be::kHostMemory ? out : exit_logits_;
  be_.head_logits(exit_xn_, head_, n, D, V, logits);
  const Act* A = head_lora_a_[static_cast<size_t>(loop - 1)];
  if (A != nullptr)
    be_.head_adapter(exit_xn_, A, head_lora_b_[static_cast<size_t>(loop - 1)], exit_u_, n, D, V,
                     spec_.exit_head.lora_rank, logits);
  be_.softcap_logits(logits, n * V, m.final_logit_softcapping);
  if (!Be::kHostMemory) {
    be_.download(out, exit_logits_, n * V);
    be_.synchronize();
  }
}

template <class Be>
void RecursiveCore<Be>::backward() {
  const ModelConfig& m = spec_.model;
  const LayerDims d = dims();
  be_.zero(d_resid_, d.M() * d.D);
  family_norm_backward(be_, d, resid_[L_], final_norm_, final_mean_, final_rstd_, d_final_h_,
                       d_resid_, final_norm_grad_, final_norm_bias_grad_);
  grad_ready(L_);
  const int final_exit = static_cast<int>(exit_resid_.size()) - 1;
  for (int64_t l = L_ - 1; l >= 0; --l) {
    // An intermediate exit reads resid[l + 1]: its gradient joins d(resid[l + 1]) here.
    if (const int e = exit_at_resid_[static_cast<size_t>(l + 1)]; e >= 0 && e < final_exit)
      family_norm_backward(be_, d, resid_[l + 1], final_norm_, exit_mean_[e], exit_rstd_[e],
                           exit_dh_[e], d_resid_, final_norm_grad_, final_norm_bias_grad_);
    // A recomputed position refills the shared stash from its input residual first (its output,
    // identical to resid[l + 1], goes to a scratch buffer).
    if (cap_.recompute[static_cast<size_t>(l)]) {
      RRT_TRACE_SPAN("layer.recompute", "position", l);
      decoder_layer_forward(be_, dims(l), layer_params_[l], stash_[l], resid_[l], recompute_out_);
    }
    RRT_TRACE_SPAN("layer.backward", "position", l);
    decoder_layer_backward(be_, dims(l), layer_params_[l], layer_grads_[l], stash_[l], scratch_,
                           resid_[l], d_resid_);
    grad_ready(l);
  }
  if (embed_grad_)
    be_.embedding_backward(tokens_, d_resid_, embed_grad_, d.M(), d.D, m.vocab,
                           static_cast<float>(m.embedding_multiplier()));
  grad_ready(-1);
}

template <class Be>
double RecursiveCore<Be>::forward_backward(const int32_t* tokens, const int32_t* targets, int64_t N,
                                           int64_t T, float weight) {
  RRT_CHECK(!cap_.forward_only, "RecursiveModel",
            "this model was planned forward only (a teacher) and cannot train");
  forward(tokens, N, T);
  be_.upload(targets_, targets, N * T);
  if (!loss_.plain()) return exits_forward_backward(tokens, N, T, weight);
  const ModelConfig& m = spec_.model;
  be_.zero(d_final_h_, N * T * m.d_model);
  ops::CrossEntropyResult ce;
  {
    RRT_TRACE_SPAN("head_loss");
    ce = be_.lm_head_cross_entropy(final_h_, head_, targets_, d_final_h_, head_grad_, N * T,
                                   m.d_model, m.vocab, kIgnoreIndex, weight, head_ws_,
                                   head_ws_bytes_, cap_.head_chunk, m.final_logit_softcapping);
  }
  backward();
  losses_.total = losses_.ce = losses_.exit_ce[0] = ce.mean_loss;
  return ce.mean_loss;
}

// Exits, distillation and freezing: every exit's normed state, the teacher's forward on the same
// tokens, one chunked loss over all of them (which writes each exit's dh and the head's dW), then
// backward. forward_backward has run the forward and uploaded the targets.
template <class Be>
double RecursiveCore<Be>::exits_forward_backward(const int32_t* tokens, int64_t N, int64_t T,
                                                 float weight) {
  RRT_CHECK(!loss_.teacher || teacher_ != nullptr, "RecursiveModel",
            "the training loss distils from a teacher, but none is set (set_teacher)");
  const ModelConfig& m = spec_.model;
  const LayerDims d = dims();
  const int64_t E = static_cast<int64_t>(exit_resid_.size());
  for (int64_t e = 0; e < E; ++e) {
    if (e + 1 < E)
      family_norm_forward(be_, d, resid_[exit_resid_[e]], final_norm_, final_norm_bias_, exit_h_[e],
                          exit_mean_[e], exit_rstd_[e]);
    be_.zero(exit_dh_[e], N * T * m.d_model);
  }
  HeadLossArgs<Act> a;
  a.M = N * T;
  a.D = m.d_model;
  a.V = m.vocab;
  a.exits = E;
  a.h = exit_h_.data();
  a.exit_weights = loss_.exit_weights.data();
  a.W = head_;
  a.targets = targets_;
  a.ignore_index = kIgnoreIndex;
  a.softcap = m.final_logit_softcapping;
  if (loss_.teacher) {
    {
      RRT_TRACE_SPAN("teacher.forward");
      teacher_->forward(tokens, N, T);  // same stream on a GPU: ordered before the loss reads it
    }
    a.teacher_h = teacher_->final_hidden();
    a.teacher_W = teacher_->head_weight();
    a.teacher_D = teacher_->spec().model.d_model;
    a.teacher_softcap = teacher_->spec().model.final_logit_softcapping;
    a.divergence = loss_.divergence;
    a.temperature = loss_.temperature;
    a.alpha = loss_.alpha;
  }
  a.self_distill = loss_.self_distill;
  if (spec_.exit_head.lora_rank > 0) {
    a.head_lora_rank = spec_.exit_head.lora_rank;
    a.lora_A = exit_lora_a_.data();
    a.lora_B = exit_lora_b_.data();
    a.dA = exit_lora_da_.data();
    a.dB = exit_lora_db_.data();
  }
  a.dh = exit_dh_.data();
  a.dW = head_grad_;
  a.weight = weight;
  a.workspace = head_ws_;
  a.workspace_bytes = head_ws_bytes_;
  a.chunk = cap_.head_chunk;
  a.exit_ce = losses_.exit_ce.data();
  a.exit_kd = losses_.exit_kd.data();
  a.exit_sd = losses_.exit_sd.data();
  ops::ExitLossResult r;
  {
    RRT_TRACE_SPAN("head_loss");
    r = be_.exit_loss(a);
  }
  losses_.total = r.loss;
  losses_.ce = r.ce;
  losses_.kd = r.kd;
  losses_.sd = r.sd;
  backward();
  return r.loss;
}

template <class Be>
double RecursiveCore<Be>::loss(const int32_t* tokens, const int32_t* targets, int64_t N,
                               int64_t T) {
  forward(tokens, N, T);
  be_.upload(targets_, targets, N * T);
  const ModelConfig& m = spec_.model;
  RRT_TRACE_SPAN("head_loss");
  return be_
      .lm_head_cross_entropy(final_h_, head_, targets_, nullptr, nullptr, N * T, m.d_model, m.vocab,
                             kIgnoreIndex, 1.0f, head_ws_, head_ws_bytes_, cap_.head_chunk,
                             m.final_logit_softcapping)
      .mean_loss;
}

template <class Be>
void RecursiveCore<Be>::logits(const int32_t* tokens, int64_t N, int64_t T, float* out) {
  forward(tokens, N, T);
  const ModelConfig& m = spec_.model;
  be_.logits(final_h_, head_, N * T, m.d_model, m.vocab, out);
  ops::softcap_logits(out, N * T * m.vocab, m.final_logit_softcapping);  // host memory
}

template <class Be>
void RecursiveCore<Be>::set_teacher(RecursiveCore* teacher) {
  RRT_CHECK(loss_.teacher, "RecursiveModel",
            "this model's training loss has no distillation term (TrainingLoss::teacher)");
  RRT_CHECK(teacher != nullptr && teacher != this, "RecursiveModel", "needs another model");
  RRT_CHECK(teacher->spec().model.vocab == spec_.model.vocab, "distill.teacher",
            "the teacher's vocabulary has ", teacher->spec().model.vocab,
            " tokens but the student's has ", spec_.model.vocab,
            "; distillation compares distributions over the same tokens: use a teacher with the "
            "student's tokenizer");
  RRT_CHECK(teacher->cap_.max_batch >= cap_.max_batch && teacher->cap_.max_seq >= cap_.max_seq,
            "RecursiveModel", "the teacher's capacity ", teacher->cap_.max_batch, " x ",
            teacher->cap_.max_seq, " is below the student's ", cap_.max_batch, " x ", cap_.max_seq);
  teacher_ = teacher;
}

}  // namespace rrt
