// StageEngine's definitions (inference/stage_engine.h), written once for every backend.
// Included only where the engine is instantiated: inference/cpu_engine.cpp (CPU) and
// inference/cuda/device_engine.cpp (CUDA).
#pragma once

#include <algorithm>
#include <cmath>

#include "core/dtype.h"
#include "core/error.h"
#include "inference/stage_engine.h"

namespace rrt::inference {

namespace stage_engine_detail {

inline int idx(Proj p) { return static_cast<int>(p); }

// An activation on the host as a float: fp32, rrt's bf16 or CUDA's (its host conversion).
inline float as_float(float x) { return x; }
inline float as_float(const bf16& x) { return x.to_float(); }
template <typename T>
float as_float(const T& x) {
  return static_cast<float>(x);
}

}  // namespace stage_engine_detail

template <class Be>
StageEngine<Be>::StageEngine(const ModelWeights& w, const WeightMap& map,
                             const EngineCapacity& capacity, Act* k_cache, Act* v_cache)
    : be_(capacity.threads), spec_(w.spec), cap_(capacity) {
  const ModelConfig& m = spec_.model;
  if (cap_.max_seq <= 0) cap_.max_seq = m.max_seq_len;
  RRT_CHECK(cap_.max_seq <= m.max_seq_len, "Engine", "max_seq ", cap_.max_seq,
            " exceeds the model's max_seq_len ", m.max_seq_len);
  RRT_CHECK(cap_.max_rows > 0 && cap_.slots > 0, "Engine", "max_rows and slots must be positive");
  be_.prepare({{cap_.max_rows, cap_.max_seq, m.n_heads, m.n_kv_heads, m.dh()},
               m.rot_dim(),
               m.rope_theta,
               m.rope_scaling,
               false,
               m.rope_local_theta});
  std::vector<RowAdapter<Act>> adapters;
  for (const LayerParams& lp : w.positions) {
    LayerParamsOf<Act> d;
    d.attn_norm = map(lp.attn_norm);
    d.mlp_norm = map(lp.mlp_norm);
    d.attn_norm_bias = map(lp.attn_norm_bias);
    d.mlp_norm_bias = map(lp.mlp_norm_bias);
    d.q_norm = map(lp.q_norm);
    d.k_norm = map(lp.k_norm);
    d.attn_post_norm = map(lp.attn_post_norm);
    d.mlp_post_norm = map(lp.mlp_post_norm);
    d.local_rope = lp.local_rope;
    for (int i = 0; i < kNumProj; ++i) {
      d.weight[i] = map(lp.weight[i]);
      d.bias[i] = map(lp.bias[i]);
      d.lora_a[i] = map(lp.lora_a[i]);
      d.lora_b[i] = map(lp.lora_b[i]);
      d.rank[i] = lp.rank[i];
      d.scale[i] = lp.scale[i];
      adapters.push_back({d.lora_a[i], d.lora_b[i], static_cast<int32_t>(d.rank[i]), d.scale[i]});
    }
    positions_.push_back(d);
  }
  embed_ = map(w.embed);
  final_norm_ = map(w.final_norm);
  final_norm_bias_ = map(w.final_norm_bias);
  head_ = map(w.head);
  for (const float* a : w.exit_lora_a) exit_lora_a_.push_back(map(a));
  for (const float* b : w.exit_lora_b) exit_lora_b_.push_back(map(b));
  exit_rank_ = w.exit_lora_rank;
  max_rank_ = spec_.max_lora_rank();

  cache_stride_ = cap_.slots * cap_.max_seq * m.kv_dim();
  if (k_cache == nullptr) {
    const size_t bytes = sizeof(Act) * static_cast<size_t>(spec_.positions() * cache_stride_);
    cache_block_ = be_.allocate(2 * bytes, "KV cache");
    k_cache = static_cast<Act*>(cache_block_.get());
    v_cache = reinterpret_cast<Act*>(static_cast<char*>(cache_block_.get()) + bytes);
  }
  k_cache_ = k_cache;
  v_cache_ = v_cache;

  const int64_t R = cap_.max_rows, D = m.d_model, F = m.ffn, V = m.vocab;
  const int64_t rank = std::max<int64_t>(max_rank_, 1);
  auto carve = [&](auto& c) {
    adapters_ = c.template take<RowAdapter<Act>>(static_cast<int64_t>(adapters.size()));
    for (Act** p : {&x_, &xn_, &mid_, &out_, &before_}) *p = c.template take<Act>(R * D);
    for (Act** p : {&q_, &att_}) *p = c.template take<Act>(R * m.q_dim());
    for (Act** p : {&k_, &v_}) *p = c.template take<Act>(R * m.kv_dim());
    for (Act** p : {&gate_, &up_, &act_}) *p = c.template take<Act>(R * F);
    lora_u_ = c.template take<Act>(R * rank);
    lora_rows_u_ = c.template take<float>(R * rank);
    head_u_ = c.template take<Act>(R * std::max<int64_t>(exit_rank_, 1));
    mean_ = c.template take<typename Be::Stat>(R);
    // The q head norm has a statistic per row and head.
    rstd_ = c.template take<typename Be::Stat>(R * (m.qk_norm ? m.n_heads : 1));
    if (m.qk_norm) k_raw_ = c.template take<Act>(R * m.kv_dim());
    logits_ = c.template take<float>(R * V);
    max_prob_ = c.template take<float>(R);
    argmax_ = c.template take<int32_t>(R);
    row_data_ = c.template take<int32_t>(5 * R);
  };
  BufferCarver<Be::kAlign> measure;
  carve(measure);
  block_ = be_.allocate(measure.used, "engine scratch");
  BufferCarver<Be::kAlign> c{static_cast<char*>(block_.get())};
  carve(c);
  be_.upload(adapters_, adapters.data(), static_cast<int64_t>(adapters.size()));
  staging_.resize(static_cast<size_t>(5 * R));
  groups_.reserve(static_cast<size_t>(stages()) + 1);
  head_argmax_.resize(static_cast<size_t>(R));
  head_max_prob_.resize(static_cast<size_t>(R));
  sat_before_.resize(static_cast<size_t>(R * D));
  sat_after_.resize(static_cast<size_t>(R * D));
  similarity_.resize(static_cast<size_t>(R));
  sat_normed_.resize(static_cast<size_t>(R * D));
  if (!Be::kHostMemory) head_logits_.resize(static_cast<size_t>(R * V));
  be_.synchronize();  // the adapter table's host copy goes out of scope
}

template <class Be>
const float* StageEngine<Be>::head_logits() const {
  return Be::kHostMemory ? logits_ : head_logits_.data();
}

template <class Be>
void StageEngine<Be>::reserve_states(int64_t n) {
  if (n <= n_states_) return;
  states_block_ =
      be_.allocate(sizeof(Act) * static_cast<size_t>(n * d_model()), "work-item states");
  states_ = static_cast<Act*>(states_block_.get());
  n_states_ = n;
}

// Slot, position, state and stage of each row: one upload.
template <class Be>
void StageEngine<Be>::upload_rows(const StageRow* rows, const int32_t* states, int64_t n) {
  RRT_CHECK(n <= cap_.max_rows, "Engine", n, " rows exceed the planned ", cap_.max_rows);
  const int64_t R = cap_.max_rows;
  for (int64_t i = 0; i < n; ++i) {
    if (rows) {
      RRT_CHECK(rows[i].slot >= 0 && rows[i].slot < cap_.slots && rows[i].pos >= 0 &&
                    rows[i].pos < cap_.max_seq,
                "Engine", "row ", i, " (slot ", rows[i].slot, ", position ", rows[i].pos,
                ") is outside the cache's ", cap_.slots, " slots x ", cap_.max_seq, " tokens");
      staging_[i] = rows[i].slot;
      staging_[R + i] = rows[i].pos;
      staging_[3 * R + i] = rows[i].stage;
    }
    if (states) {
      RRT_CHECK(states[i] >= 0 && states[i] < n_states_, "Engine", "state ", states[i],
                " outside the reserved pool of ", n_states_);
      staging_[2 * R + i] = states[i];
    }
  }
  be_.upload(row_data_, staging_.data(), 4 * R);
}

template <class Be>
void StageEngine<Be>::embed_rows(const int32_t* tokens, int64_t n) {
  const ModelConfig& m = spec_.model;
  RRT_CHECK(n <= cap_.max_rows, "Engine", n, " rows exceed the planned ", cap_.max_rows);
  for (int64_t i = 0; i < n; ++i)
    RRT_CHECK(tokens[i] >= 0 && tokens[i] < m.vocab, "Engine", "token ", tokens[i],
              " outside the vocabulary of ", m.vocab);
  be_.upload(d_token(), tokens, n);
  be_.embedding_forward(d_token(), embed_, x_, n, m.d_model, m.vocab,
                        static_cast<float>(m.embedding_multiplier()));
}

template <class Be>
void StageEngine<Be>::embed_states(const int32_t* tokens, const int32_t* states, int64_t n) {
  for (int64_t a = 0; a < n; a += cap_.max_rows) {
    const int64_t c = std::min(cap_.max_rows, n - a);
    upload_rows(nullptr, states + a, c);
    embed_rows(tokens + a, c);
    be_.scatter_rows(x_, d_state(), states_, c, d_model());
  }
}

// y = x W^T + bias + s B(A x): the tied GEMM (with the bias) once over every row when all groups
// share the weight and the bias, then every row's own adapter.
template <class Be>
void StageEngine<Be>::project(Proj p, const Act* in, int64_t in_dim, Act* out, int64_t out_dim) {
  const int i = stage_engine_detail::idx(p);
  const LayerParamsOf<Act>& first = positions_[static_cast<size_t>(groups_[0].position)];
  bool shared = true;
  for (const StageGroup& g : groups_) {
    const LayerParamsOf<Act>& lp = positions_[static_cast<size_t>(g.position)];
    shared = shared && lp.weight[i] == first.weight[i] && lp.bias[i] == first.bias[i];
  }
  if (shared) {
    be_.project(in, first.weight[i], first.bias[i], nullptr, nullptr, nullptr, out,
                groups_.back().end, in_dim, out_dim, 0, 0.f);
  } else {
    for (const StageGroup& g : groups_) {
      const LayerParamsOf<Act>& lp = positions_[static_cast<size_t>(g.position)];
      be_.project(in + g.begin * in_dim, lp.weight[i], lp.bias[i], nullptr, nullptr, nullptr,
                  out + g.begin * out_dim, g.end - g.begin, in_dim, out_dim, 0, 0.f);
    }
  }
  if (groups_.size() == 1) {
    be_.lora_add(in, first.lora_a[i], first.lora_b[i], lora_u_, out,
                 groups_[0].end - groups_[0].begin, in_dim, out_dim, first.rank[i], first.scale[i]);
    return;
  }
  // Entry (stage * B + j) * kNumProj + i of the adapter table: base j * kNumProj + i, stride
  // B * kNumProj.
  const int64_t B = block_layers(), j = groups_[0].position % B;
  be_.lora_rows(in, in_dim, out, out_dim, adapters_ + j * kNumProj + i, B * kNumProj,
                groups_.data(), static_cast<int64_t>(groups_.size()), B, lora_rows_u_, max_rank_);
}

template <class Be>
void StageEngine<Be>::norm_rows(int64_t rows, const Act* x, const Act* w, const Act* b, Act* y) {
  const LayerDims d = layer_dims(spec_.model, rows, 1);
  be_.norm_forward(d.norm == Norm::layer, x, w, b, y, mean_, rstd_, rows, d.D, d.eps,
                   d.unit_offset);
}

// One call over every row when the groups share the norm's weights (tied blocks do).
template <class Be>
void StageEngine<Be>::norm(bool attn, const Act* x, Act* y, bool post) {
  const int64_t D = d_model();
  const auto weights = [&](const StageGroup& g) {
    const LayerParamsOf<Act>& lp = positions_[static_cast<size_t>(g.position)];
    if (post)  // Gemma's sandwich norms are RMSNorms: no bias
      return std::pair(attn ? lp.attn_post_norm : lp.mlp_post_norm,
                       static_cast<const Act*>(nullptr));
    return attn ? std::pair(lp.attn_norm, lp.attn_norm_bias)
                : std::pair(lp.mlp_norm, lp.mlp_norm_bias);
  };
  bool shared = true;
  for (const StageGroup& g : groups_) shared = shared && weights(g) == weights(groups_[0]);
  if (shared) {
    const auto [w, b] = weights(groups_[0]);
    norm_rows(groups_.back().end, x, w, b, y);
    return;
  }
  for (const StageGroup& g : groups_) {
    const auto [w, b] = weights(g);
    norm_rows(g.end - g.begin, x + g.begin * D, w, b, y + g.begin * D);
  }
}

template <class Be>
void StageEngine<Be>::head_norm(bool q, const Act* raw, Act* y) {
  const ModelConfig& m = spec_.model;
  const int64_t H = q ? m.n_heads : m.n_kv_heads, Dh = m.dh();
  for (const StageGroup& g : groups_) {
    const LayerParamsOf<Act>& lp = positions_[static_cast<size_t>(g.position)];
    be_.norm_forward(false, raw + g.begin * H * Dh, q ? lp.q_norm : lp.k_norm, nullptr,
                     y + g.begin * H * Dh, nullptr, rstd_, (g.end - g.begin) * H, Dh,
                     static_cast<float>(m.norm_eps), m.norm_unit_offset);
  }
}

template <class Be>
void StageEngine<Be>::rope(Act* x, int64_t n, int64_t H, bool is_q) {
  const ModelConfig& m = spec_.model;
  const int64_t Dh = m.dh();
  const auto local = [&](const StageGroup& g) {
    return positions_[static_cast<size_t>(g.position)].local_rope;
  };
  bool shared = true;
  for (const StageGroup& g : groups_) shared = shared && local(g) == local(groups_[0]);
  if (shared) {
    be_.rope_rows(x, d_pos(), n, H, Dh, local(groups_[0]));
  } else {
    for (const StageGroup& g : groups_)
      be_.rope_rows(x + g.begin * H * Dh, d_pos() + g.begin, g.end - g.begin, H, Dh, local(g));
  }
  const float q_scale = static_cast<float>(m.query_scale());
  if (is_q && q_scale != 1.f) be_.scale(x, q_scale, n * H * Dh);
}

template <class Be>
void StageEngine<Be>::layer(int64_t j, int64_t n) {
  const ModelConfig& m = spec_.model;
  const int64_t D = m.d_model, qd = m.q_dim(), kvd = m.kv_dim(), F = m.ffn;
  const int64_t stride = block_layers() * cache_stride_;  // row i's cache: stage[i] * stride
  norm(true, x_, xn_);
  // With q/k head norms the projections land in att_ (free until attention) and k_raw_ first.
  project(Proj::q, xn_, D, m.qk_norm ? att_ : q_, qd);
  project(Proj::k, xn_, D, m.qk_norm ? k_raw_ : k_, kvd);
  project(Proj::v, xn_, D, v_, kvd);
  if (m.qk_norm) {
    head_norm(true, att_, q_);
    head_norm(false, k_raw_, k_);
  }
  rope(q_, n, m.n_heads, true);
  rope(k_, n, m.n_kv_heads, false);
  be_.kv_store(k_, v_, k_cache(j), v_cache(j), d_slot(), d_pos(), n, cap_.max_seq, kvd, d_stage(),
               stride);
  // Each row's position (loop) has its own window (ModelConfig::window_at): one call when the
  // groups share it, else one per group (a window reads only its last keys of the cache).
  ops::AttentionMask mask;
  mask.softcap = m.attn_logit_softcapping;
  bool one_window = true;
  for (const StageGroup& g : groups_)
    one_window = one_window && m.window_at(g.position) == m.window_at(groups_[0].position);
  if (one_window) {
    mask.window = m.window_at(groups_[0].position);
    be_.kv_attention(q_, k_cache(j), v_cache(j), d_slot(), d_pos(), att_, n, m.n_heads,
                     m.n_kv_heads, m.dh(), cap_.max_seq, d_stage(), stride, mask);
  } else {
    for (const StageGroup& g : groups_) {
      mask.window = m.window_at(g.position);
      be_.kv_attention(q_ + g.begin * qd, k_cache(j), v_cache(j), d_slot() + g.begin,
                       d_pos() + g.begin, att_ + g.begin * qd, g.end - g.begin, m.n_heads,
                       m.n_kv_heads, m.dh(), cap_.max_seq, d_stage() + g.begin, stride, mask);
    }
  }
  if (m.sandwich_norm) {  // out_ is free until the down projection
    project(Proj::o, att_, qd, out_, D);
    norm(true, out_, mid_, true);
  } else {
    project(Proj::o, att_, qd, mid_, D);
  }
  be_.add(mid_, x_, mid_, n * D);
  norm(false, m.parallel_residual ? x_ : mid_, xn_);
  project(Proj::up, xn_, D, up_, F);
  switch (m.activation) {
    case Activation::swiglu:
      project(Proj::gate, xn_, D, gate_, F);
      be_.swiglu_forward(gate_, up_, act_, n * F);
      break;
    case Activation::geglu:
      project(Proj::gate, xn_, D, gate_, F);
      be_.geglu_forward(gate_, up_, act_, n * F);
      break;
    case Activation::gelu:
    case Activation::gelu_tanh:
      be_.gelu_forward(up_, act_, n * F, m.activation == Activation::gelu_tanh);
      break;
  }
  project(Proj::down, act_, F, out_, D);
  if (m.sandwich_norm) {  // xn_ is free after the gate and up projections
    norm(false, out_, xn_, true);
    be_.add(xn_, mid_, x_, n * D);
  } else {
    be_.add(out_, mid_, x_, n * D);
  }
}

template <class Be>
void StageEngine<Be>::run_rows(const StageRow* rows, int64_t n) {
  for (int64_t j = 0; j < block_layers(); ++j) {
    group_by_stage(rows, n, j, groups_);
    layer(j, n);
  }
}

template <class Be>
void StageEngine<Be>::run_stage(const StageRow* rows, const int32_t* states, int64_t n) {
  if (n == 0) return;
  upload_rows(rows, states, n);
  be_.gather_rows(states_, d_state(), x_, n, d_model());
  run_rows(rows, n);
  be_.scatter_rows(x_, d_state(), states_, n, d_model());
}

// Why after the final norm: the head reads the normed state, so two loops whose normed states
// point the same way give logits of the same direction; the norm's gain weights each dimension as
// much as the head sees it. Cosine ignores the scale the norm removes.
template <class Be>
void StageEngine<Be>::run_stage_saturation(const StageRow* rows, const int32_t* states, int64_t n) {
  using stage_engine_detail::as_float;
  if (n == 0) return;
  const int64_t D = d_model();
  upload_rows(rows, states, n);
  be_.gather_rows(states_, d_state(), x_, n, D);
  norm_rows(n, x_, final_norm_, final_norm_bias_, before_);
  run_rows(rows, n);
  norm_rows(n, x_, final_norm_, final_norm_bias_, xn_);
  be_.scatter_rows(x_, d_state(), states_, n, D);
  be_.download(sat_before_.data(), before_, n * D);
  be_.download(sat_after_.data(), xn_, n * D);
  be_.synchronize();
  for (int64_t i = 0; i < n; ++i) {
    const Act* a = sat_before_.data() + i * D;
    const Act* b = sat_after_.data() + i * D;
    float* normed = sat_normed_.data() + i * D;
    double ab = 0, aa = 0, bb = 0;
    for (int64_t d = 0; d < D; ++d) {
      normed[d] = as_float(b[d]);
      const double x = as_float(a[d]), y = normed[d];
      ab += x * y;
      aa += x * x;
      bb += y * y;
    }
    const double denom = std::sqrt(aa * bb);
    similarity_[static_cast<size_t>(i)] = denom > 0 ? std::clamp(ab / denom, -1.0, 1.0) : 0.0;
  }
}

// The final norm and head over every row (fp32 logits), then each exit's head adapter (scale 1)
// on its rows (rows of one loop contiguous), then the final logit soft-cap over them all.
template <class Be>
void StageEngine<Be>::head_rows(const int32_t* loops, int64_t n) {
  const ModelConfig& m = spec_.model;
  const int64_t D = m.d_model, V = m.vocab;
  for (int64_t i = 0; i < n; ++i)
    RRT_CHECK(loops[i] >= 1 && loops[i] <= stages(), "Engine", "exit loop ", loops[i],
              " outside 1..", stages());
  norm_rows(n, x_, final_norm_, final_norm_bias_, xn_);
  be_.head_logits(xn_, head_, n, D, V, logits_);
  for (int64_t a = 0; a < n;) {
    int64_t b = a;
    while (b < n && loops[b] == loops[a]) ++b;
    const int64_t loop = loops[a];
    const Act* A = exit_lora_a_.empty() ? nullptr : exit_lora_a_[static_cast<size_t>(loop - 1)];
    if (loop != stages() && A != nullptr)
      be_.head_adapter(xn_ + a * D, A, exit_lora_b_[static_cast<size_t>(loop - 1)], head_u_, b - a,
                       D, V, exit_rank_, logits_ + a * V);
    a = b;
  }
  be_.softcap_logits(logits_, n * V, m.final_logit_softcapping);
}

template <class Be>
void StageEngine<Be>::exit_heads(const int32_t* loops, const int32_t* states, int64_t n,
                                 bool host_logits) {
  if (n == 0) return;
  upload_rows(nullptr, states, n);
  be_.gather_rows(states_, d_state(), x_, n, d_model());
  head_rows(loops, n);
  if (host_logits && !Be::kHostMemory) be_.download(head_logits_.data(), logits_, n * vocab());
  be_.head_results(logits_, n, vocab(), argmax_, max_prob_, head_argmax_.data(),
                   head_max_prob_.data());
}

// For every skipped stage s, the rows whose last stage is below s are a prefix (rows ascend by
// stage): each skipped position runs its attention norm and its k and v projections (with its
// LoRA and bias) on that prefix, RoPE at each row's position, and stores into stage s's caches.
template <class Be>
void StageEngine<Be>::propagate_rows(const StageRow* rows, int64_t n) {
  const ModelConfig& m = spec_.model;
  const int64_t D = m.d_model, kvd = m.kv_dim(), B = block_layers();
  for (int64_t i = 1; i < n; ++i)
    RRT_CHECK(rows[i].stage >= rows[i - 1].stage, "Engine",
              "propagate_kv needs rows sorted by their last stage");
  for (int64_t s = rows[0].stage + 1; s < stages(); ++s) {
    int64_t count = 0;
    while (count < n && rows[count].stage < s) ++count;
    for (int64_t j = 0; j < B; ++j) {
      groups_.assign(1, StageGroup{0, count, s * B + j});
      norm(true, x_, xn_);
      project(Proj::k, xn_, D, m.qk_norm ? k_raw_ : k_, kvd);
      project(Proj::v, xn_, D, v_, kvd);
      if (m.qk_norm) head_norm(false, k_raw_, k_);
      rope(k_, count, m.n_kv_heads, false);
      be_.kv_store(k_, v_, k_cache(s * B + j), v_cache(s * B + j), d_slot(), d_pos(), count,
                   cap_.max_seq, kvd, nullptr, 0);
    }
  }
}

template <class Be>
void StageEngine<Be>::propagate_kv(const StageRow* rows, const int32_t* states, int64_t n) {
  if (n == 0) return;
  upload_rows(rows, states, n);
  be_.gather_rows(states_, d_state(), x_, n, d_model());
  propagate_rows(rows, n);
}

template <class Be>
void StageEngine<Be>::copy_kv(const StageRow& row) {
  const int64_t B = block_layers(), kvd = spec_.model.kv_dim();
  RRT_CHECK(row.slot >= 0 && row.slot < cap_.slots && row.pos >= 0 && row.pos < cap_.max_seq &&
                row.stage >= 0 && row.stage < stages(),
            "Engine", "copy_kv row outside the cache");
  const int64_t at = (static_cast<int64_t>(row.slot) * cap_.max_seq + row.pos) * kvd;
  for (int64_t s = row.stage + 1; s < stages(); ++s)
    for (int64_t j = 0; j < B; ++j) {
      const int64_t from = row.stage * B + j, to = s * B + j;
      be_.copy(k_cache(to) + at, k_cache(from) + at, kvd);
      be_.copy(v_cache(to) + at, v_cache(from) + at, kvd);
    }
}

}  // namespace rrt::inference
