#include "model/recursive_model.h"

#include <omp.h>

#include <algorithm>
#include <cstring>

#include "ops/attention.h"
#include "ops/cross_entropy.h"
#include "ops/embedding.h"
#include "ops/exit_loss.h"
#include "ops/matmul.h"
#include "ops/norm.h"

namespace rrt {

RecursiveModel::RecursiveModel(const ModelSpec& spec, const ModelCapacity& capacity,
                               const TrainingLoss& loss)
    : spec_(spec),
      cap_(capacity),
      params_(spec, capacity.forward_only ? ParameterSet::Grads::without
                                          : ParameterSet::Grads::with),
      loss_(loss) {
  const ModelConfig& m = spec_.model;
  if (cap_.max_seq <= 0) cap_.max_seq = m.max_seq_len;
  if (cap_.threads <= 0) cap_.threads = omp_get_max_threads();
  RRT_CHECK(cap_.max_batch > 0 && cap_.max_seq <= m.max_seq_len, "RecursiveModel",
            "capacity ", cap_.max_batch, " x ", cap_.max_seq, " must fit max_seq_len ",
            m.max_seq_len);
  rope_ = ops::RopeTable(cap_.max_seq, m.rot_dim(), m.rope_theta);
  const int64_t M = cap_.max_batch * cap_.max_seq, D = m.d_model, F = m.ffn;
  const int64_t qd = m.q_dim(), kvd = m.kv_dim(), L = spec_.positions();

  RRT_CHECK(!cap_.forward_only || loss_.plain(), "RecursiveModel",
            "a forward-only model (a teacher) trains nothing: it takes no training loss");
  // Plan every activation once: per position what backward reads, then shared scratch. Forward
  // only, nothing is kept for a backward: two residual buffers in turn and one stash.
  const int64_t stashes = cap_.forward_only ? 1 : L;
  for (int64_t l = 0; l <= (cap_.forward_only ? 1 : L); ++l)
    activations_.plan("resid." + std::to_string(l), Shape{M, D});
  int64_t max_rank = 0;
  for (int64_t l = 0; l < stashes; ++l) {
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
  plan_exits(M);
  activations_.allocate();

  if (!cap_.forward_only) {
    for (const char* n : {"dxn", "d_resid", "d_final_h"}) scratch_.plan(n, Shape{M, D});
    for (const char* n : {"dq", "datt"}) scratch_.plan(n, Shape{M, qd});
    for (const char* n : {"dk", "dv"}) scratch_.plan(n, Shape{M, kvd});
    for (const char* n : {"dgate", "dup", "dact"}) scratch_.plan(n, Shape{M, F});
    scratch_.plan("lora_du", Shape{M * std::max<int64_t>(max_rank, 1)});
    for (size_t e = 0; e + 1 < exit_resid_.size(); ++e)
      scratch_.plan("exit." + std::to_string(e) + ".dh", Shape{M, D});
  }
  const ops::AttentionShape ashape{cap_.max_batch, cap_.max_seq, m.n_heads, m.n_kv_heads, m.dh()};
  scratch_.plan("attn_ws", Shape{ops::attention_workspace_elems(ashape, cap_.threads)});
  // One head scratch for the plain CE and the exit loss: chunk x V blocks, never M x V.
  const int64_t head_ws = std::max(
      ops::lm_head_workspace_elems(m.vocab, cap_.head_chunk),
      loss_.plain() ? 0
                    : ops::exit_loss_workspace_elems(m.vocab, cap_.head_chunk, loss_.teacher,
                                                     loss_.self_distill,
                                                     spec_.exit_head.lora_rank));
  scratch_.plan("head_ws", Shape{head_ws});
  scratch_.allocate();

  auto s = [&](const char* n) { return scratch_.has(n) ? scratch_.view(n).f32() : nullptr; };
  layer_scratch_ = {s("dxn"), s("dq"), s("dk"), s("dv"), s("datt"), s("dgate"), s("dup"),
                    s("dact"), s("lora_du"), s("attn_ws"), cap_.threads};
  d_final_h_ = s("d_final_h");
  d_resid_ = s("d_resid");
  head_ws_ = s("head_ws");
  final_h_ = activations_.view("final.h").f32();
  final_rstd_ = activations_.view("final.rstd").f32();
  final_mean_ = activations_.view("final.mean").f32();
  for (int64_t l = 0; l <= L; ++l) {
    const int64_t buffer = cap_.forward_only ? l % 2 : l;
    resid_.push_back(activations_.view("resid." + std::to_string(buffer)).f32());
  }
  const int E = static_cast<int>(exit_resid_.size());
  for (int e = 0; e + 1 < E; ++e) {
    const std::string pre = "exit." + std::to_string(e) + ".";
    exit_h_[e] = activations_.view(pre + "h").f32();
    exit_rstd_[e] = activations_.view(pre + "rstd").f32();
    exit_mean_[e] = m.norm == Norm::layer ? activations_.view(pre + "mean").f32() : nullptr;
    exit_dh_[e] = scratch_.view(pre + "dh").f32();
  }
  exit_h_[E - 1] = final_h_;
  exit_dh_[E - 1] = d_final_h_;
  freeze();
  bind_positions();
  // Resolved once: name lookups build strings, and the step must not allocate.
  const ParamRegistry& reg = params_.registry();
  const char* head_name = m.tied_head ? "embed.weight" : "head.weight";
  embed_ = params_.value("embed.weight");
  embed_grad_ = grad_or_null(reg.index("embed.weight"));
  final_norm_ = params_.value("final_norm.weight");
  final_norm_grad_ = grad_or_null(reg.index("final_norm.weight"));
  if (m.norm == Norm::layer) {
    final_norm_bias_ = params_.value("final_norm.bias");
    final_norm_bias_grad_ = grad_or_null(reg.index("final_norm.bias"));
  }
  head_ = params_.value(head_name);
  head_grad_ = grad_or_null(reg.index(head_name));
  for (int e = 0; e + 1 < E; ++e) {
    const std::string a = ParamRegistry::head_lora_name(loss_.exit_loops[e], true);
    const std::string b = ParamRegistry::head_lora_name(loss_.exit_loops[e], false);
    if (!reg.has(a)) continue;
    exit_lora_a_[e] = params_.value(a);
    exit_lora_b_[e] = params_.value(b);
    exit_lora_da_[e] = grad_or_null(reg.index(a));
    exit_lora_db_[e] = grad_or_null(reg.index(b));
  }
  // Intermediate exits add into the final norm's gradient during backward, at their loop's
  // end: it is final once the earliest of them is done (after hook(k * B - 1)).
  if (E > 1) {
    for (const char* n : {"final_norm.weight", "final_norm.bias"})
      if (reg.has(n)) grad_ready_after_[static_cast<size_t>(reg.index(n))] = exit_resid_[0] - 1;
  }
}

// Exits from loss_.exit_loops: loop k ends at residual index k * B (cycle sharing). The final
// exit reuses final.h; each intermediate one stashes its normed state and statistics.
void RecursiveModel::plan_exits(int64_t M) {
  const int64_t K = spec_.recursion.loops, B = spec_.recursion.block_layers, L = spec_.positions();
  std::vector<int64_t> loops = loss_.exit_loops;
  if (loops.empty()) loops = {K};
  if (loss_.exit_weights.empty()) loss_.exit_weights.assign(loops.size(), 1.0);
  loss_.exit_loops = loops;
  RRT_CHECK(loops.back() == K, "RecursiveModel", "the last exit must be the final loop ", K,
            ", got loop ", loops.back());
  RRT_CHECK(loss_.exit_weights.size() == loops.size(), "RecursiveModel", loops.size(),
            " exits but ", loss_.exit_weights.size(), " exit weights");
  RRT_CHECK(loops.size() == 1 || spec_.recursion.sharing == Sharing::cycle, "RecursiveModel",
            "early exits need cycle sharing (sequence sharing has no loop ends)");
  exit_at_resid_.assign(static_cast<size_t>(L + 1), -1);
  for (size_t e = 0; e < loops.size(); ++e) {
    RRT_CHECK(loops[e] >= 1 && loops[e] <= K && (e == 0 || loops[e] > loops[e - 1]),
              "RecursiveModel", "exit loops must ascend within 1..", K);
    exit_resid_.push_back(loops[e] * B);
    exit_at_resid_[static_cast<size_t>(loops[e] * B)] = static_cast<int>(e);
    if (e + 1 == loops.size()) break;
    const std::string pre = "exit." + std::to_string(e) + ".";
    activations_.plan(pre + "h", Shape{M, spec_.model.d_model});
    activations_.plan(pre + "rstd", Shape{M});
    if (spec_.model.norm == Norm::layer) activations_.plan(pre + "mean", Shape{M});
  }
  const size_t E = loops.size();
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

// TrainScope::lora: only LoRA trains (per position and the exits' head adapters); head_lora:
// only the head adapters. Frozen parameters get null gradient pointers (their weight-gradient
// GEMMs are skipped) and no optimizer update.
void RecursiveModel::freeze() {
  if (loss_.train == TrainScope::all) return;
  const ParamRegistry& reg = params_.registry();
  bool any = false;
  for (int i = 0; i < reg.size(); ++i) {
    const bool lora = reg[i].kind == ParamKind::lora_a || reg[i].kind == ParamKind::lora_b;
    const bool head_adapter = lora && reg[i].layer < 0;
    const bool trains = loss_.train == TrainScope::lora ? lora : head_adapter;
    params_.set_trainable(i, trains);
    any |= trains;
  }
  RRT_CHECK(any, "early_exit.train", "nothing would train: the model has no ",
            loss_.train == TrainScope::lora ? "LoRA" : "head adapters (early_exit.head_lora_rank)");
}

float* RecursiveModel::grad_or_null(int i) const {
  return params_.has_grads() && params_.registry()[i].trainable ? params_.grad(i) : nullptr;
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
    g.attn_norm = grad_or_null(norm(true, false));
    g.mlp_norm = grad_or_null(norm(false, false));
    if (m.norm == Norm::layer) {
      p.attn_norm_bias = params_.value(norm(true, true));
      p.mlp_norm_bias = params_.value(norm(false, true));
      g.attn_norm_bias = grad_or_null(norm(true, true));
      g.mlp_norm_bias = grad_or_null(norm(false, true));
    }
    for (int j = 0; j < kNumProj; ++j) {
      const Proj proj = static_cast<Proj>(j);
      if (!m.has_proj(proj)) continue;
      const int w = used(reg.index(ParamRegistry::block_name(pos.layer, proj)));
      p.weight[j] = params_.value(w);
      g.weight[j] = grad_or_null(w);
      if (m.linear_bias) {
        const int bi = used(
            reg.index(ParamRegistry::bias_name(pos.layer, proj, pos.loop, r.per_loop_norms)));
        p.bias[j] = params_.value(bi);
        g.bias[j] = grad_or_null(bi);
      }
      p.rank[j] = spec_.lora_rank(proj);
      p.scale[j] = static_cast<float>(spec_.lora_scale(proj));
      if (p.rank[j] > 0) {
        const int a = used(reg.index(ParamRegistry::lora_name(pos.loop, pos.layer, proj, true)));
        const int b = used(reg.index(ParamRegistry::lora_name(pos.loop, pos.layer, proj, false)));
        p.lora_a[j] = params_.value(a);
        p.lora_b[j] = params_.value(b);
        g.lora_a[j] = grad_or_null(a);
        g.lora_b[j] = grad_or_null(b);
      }
    }
    layer_params_.push_back(p);
    layer_grads_.push_back(g);

    const std::string pre = "pos." + std::to_string(cap_.forward_only ? 0 : l) + ".";
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
  return layer_dims(spec_.model, N, T);
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
  const int final_exit = static_cast<int>(exit_resid_.size()) - 1;
  for (int64_t l = L - 1; l >= 0; --l) {
    // An intermediate exit reads resid[l + 1]: its gradient joins d(resid[l + 1]) here.
    if (const int e = exit_at_resid_[static_cast<size_t>(l + 1)]; e >= 0 && e < final_exit)
      norm_backward(d, resid_[l + 1], final_norm_, exit_mean_[e], exit_rstd_[e], exit_dh_[e],
                    d_resid_, final_norm_grad_, final_norm_bias_grad_);
    decoder_layer_backward(d, rope_, layer_params_[l], layer_grads_[l], stash_[l], layer_scratch_,
                           resid_[l], d_resid_);
    if (grad_ready_hook_) grad_ready_hook_(l);
  }
  if (embed_grad_)
    ops::embedding_backward<float>(tokens, d_resid_, embed_grad_, d.M(), d.D,
                                   static_cast<float>(m.embedding_multiplier()));
  if (grad_ready_hook_) grad_ready_hook_(-1);
}

double RecursiveModel::forward_backward(const int32_t* tokens, const int32_t* targets, int64_t N,
                                        int64_t T, float weight) {
  RRT_CHECK(!cap_.forward_only, "RecursiveModel",
            "this model was planned forward only (a teacher) and cannot train");
  if (!loss_.plain()) return exits_forward_backward(tokens, targets, N, T, weight);
  forward(tokens, N, T);
  const ModelConfig& m = spec_.model;
  std::memset(d_final_h_, 0, static_cast<size_t>(N * T * m.d_model) * sizeof(float));
  auto ce = ops::lm_head_cross_entropy<float>(final_h_, head_, targets, d_final_h_,
                                              head_grad_, N * T, m.d_model, m.vocab, kIgnoreIndex,
                                              weight, head_ws_, cap_.head_chunk);
  backward(tokens);
  losses_.total = losses_.ce = losses_.exit_ce[0] = ce.mean_loss;
  return ce.mean_loss;
}

// Exits, distillation and freezing: every exit's normed state, the teacher's forward, one
// chunked loss over all of them (which also writes each exit's dh and the head's dW), backward.
double RecursiveModel::exits_forward_backward(const int32_t* tokens, const int32_t* targets,
                                              int64_t N, int64_t T, float weight) {
  RRT_CHECK(!loss_.teacher || teacher_ != nullptr, "RecursiveModel",
            "the training loss distils from a teacher, but none is set (set_teacher)");
  forward(tokens, N, T);
  const ModelConfig& m = spec_.model;
  const LayerDims d = dims(N, T);
  const int64_t E = static_cast<int64_t>(exit_resid_.size());
  const size_t bytes = static_cast<size_t>(N * T * m.d_model) * sizeof(float);
  for (int64_t e = 0; e < E; ++e) {
    if (e + 1 < E)
      norm_forward(d, resid_[exit_resid_[e]], final_norm_, final_norm_bias_,
                   exit_h_[e], exit_mean_[e], exit_rstd_[e]);
    std::memset(exit_dh_[e], 0, bytes);
  }
  ops::ExitLossArgs<float> a;
  a.M = N * T;
  a.D = m.d_model;
  a.V = m.vocab;
  a.exits = E;
  a.h = exit_h_.data();
  a.exit_weights = loss_.exit_weights.data();
  a.W = head_;
  a.targets = targets;
  a.ignore_index = kIgnoreIndex;
  if (loss_.teacher) {
    a.teacher_h = teacher_->final_hidden(tokens, N, T);
    a.teacher_W = teacher_->head_weight();
    a.teacher_D = teacher_->spec().model.d_model;
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
  a.chunk = cap_.head_chunk;
  a.exit_ce = losses_.exit_ce.data();
  a.exit_kd = losses_.exit_kd.data();
  a.exit_sd = losses_.exit_sd.data();
  const ops::ExitLossResult r = ops::exit_loss<float>(a);
  losses_.total = r.loss;
  losses_.ce = r.ce;
  losses_.kd = r.kd;
  losses_.sd = r.sd;
  backward(tokens);
  return r.loss;
}

void RecursiveModel::set_teacher(RecursiveModel* teacher) {
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
            teacher->cap_.max_seq, " is below the student's ", cap_.max_batch, " x ",
            cap_.max_seq);
  teacher_ = teacher;
}

const float* RecursiveModel::final_hidden(const int32_t* tokens, int64_t N, int64_t T) {
  forward(tokens, N, T);
  return final_h_;
}

void RecursiveModel::forward_loop_ends(const int32_t* tokens, int64_t N, int64_t T) {
  forward(tokens, N, T);
}

const float* RecursiveModel::loop_end_residual(int64_t loop) const {
  const int64_t K = spec_.recursion.loops;
  RRT_CHECK(loop >= 1 && loop <= K, "RecursiveModel", "loop ", loop, " is outside 1..", K);
  RRT_CHECK(cur_N_ > 0, "RecursiveModel", "loop_end_residual needs a forward_loop_ends first");
  if (loop == K) return resid_[spec_.positions()];
  RRT_CHECK(spec_.recursion.sharing == Sharing::cycle, "RecursiveModel",
            "only the last loop ends a sequence-shared model (exits need cycle sharing)");
  RRT_CHECK(!cap_.forward_only, "RecursiveModel",
            "a forward-only model keeps no residual stream before its last loop");
  return resid_[loop * spec_.recursion.block_layers];
}

void RecursiveModel::exit_logits(int64_t loop, const float* resid_rows, int64_t rows, float* h,
                                 float* out) const {
  const ModelConfig& m = spec_.model;
  const int64_t K = spec_.recursion.loops;
  RRT_CHECK(loop >= 1 && loop <= K, "RecursiveModel", "exit loop ", loop, " is outside 1..", K);
  if (rows <= 0) return;
  std::vector<float> stats(static_cast<size_t>(2 * rows));  // norm mean and rstd per row
  norm_forward(dims(rows, 1), resid_rows, final_norm_, final_norm_bias_, h, stats.data(),
               stats.data() + rows);
  ops::linear_forward<float>(h, head_, nullptr, out, rows, m.d_model, m.vocab, false);
  const int64_t R = spec_.exit_head.lora_rank;
  const std::string a = ParamRegistry::head_lora_name(loop, true);
  if (loop == K || R == 0 || !params_.registry().has(a)) return;
  // The exit's adapter, as in ops/exit_loss (scale 1): out += (h A^T) B^T.
  std::vector<float> u(static_cast<size_t>(rows * R));
  ops::gemm<float>(false, true, rows, R, m.d_model, 1.0f, h, m.d_model, params_.value(a), m.d_model,
                   0.0f, u.data(), R);
  ops::gemm<float>(false, true, rows, m.vocab, R, 1.0f, u.data(), R,
                   params_.value(ParamRegistry::head_lora_name(loop, false)), R, 1.0f, out,
                   m.vocab);
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
