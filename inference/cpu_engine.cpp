#include "inference/cpu_engine.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "inference/sampling.h"
#include "ops/activation.h"
#include "ops/embedding.h"
#include "ops/lora.h"
#include "ops/matmul.h"

namespace rrt::inference {

namespace {

int idx(Proj p) { return static_cast<int>(p); }

}  // namespace

CpuEngine::CpuEngine(ModelWeights weights, const EngineCapacity& capacity)
    : w_(std::move(weights)),
      cap_(capacity),
      cache_(w_.spec.positions(), capacity.slots,
             capacity.max_seq > 0 ? capacity.max_seq : w_.spec.model.max_seq_len,
             w_.spec.model.kv_dim()) {
  const ModelConfig& m = w_.spec.model;
  if (cap_.max_seq <= 0) cap_.max_seq = m.max_seq_len;
  if (cap_.threads <= 0) cap_.threads = omp_get_max_threads();
  RRT_CHECK(cap_.max_seq <= m.max_seq_len, "Engine", "max_seq ", cap_.max_seq,
            " exceeds the model's max_seq_len ", m.max_seq_len);
  RRT_CHECK(cap_.max_rows > 0, "Engine", "max_rows must be positive");
  rope_ = ops::RopeTable(cap_.max_seq, m.rot_dim(), m.rope_theta);
  const size_t R = static_cast<size_t>(cap_.max_rows), D = static_cast<size_t>(m.d_model);
  const size_t qd = static_cast<size_t>(m.q_dim()), kvd = static_cast<size_t>(m.kv_dim());
  const size_t F = static_cast<size_t>(m.ffn);
  xn_.resize(R * D);
  mid_.resize(R * D);
  out_.resize(R * D);
  q_.resize(R * qd);
  att_.resize(R * qd);
  k_.resize(R * kvd);
  v_.resize(R * kvd);
  gate_.resize(R * F);
  up_.resize(R * F);
  act_.resize(R * F);
  lora_u_.resize(R * static_cast<size_t>(std::max<int64_t>(w_.spec.max_lora_rank(), 1)));
  rstd_.resize(R);
  mean_.resize(R);
  head_h_.resize(R * D);
  head_u_.resize(R * static_cast<size_t>(std::max<int64_t>(w_.exit_lora_rank, 1)));
  scores_.resize(static_cast<size_t>(cap_.threads) * static_cast<size_t>(cap_.max_seq));
  groups_.reserve(static_cast<size_t>(stages()) + 1);
  gathered_.resize(R * D);
  head_logits_.resize(R * static_cast<size_t>(m.vocab));
  head_argmax_.resize(R);
  head_max_prob_.resize(R);
}

void CpuEngine::embed(const int32_t* tokens, int64_t n, float* resid) const {
  const ModelConfig& m = w_.spec.model;
  ops::embedding_forward<float>(tokens, w_.embed, resid, n, m.d_model, m.vocab,
                                static_cast<float>(m.embedding_multiplier()));
}

// y = x W^T + bias + s B(A x) per group. The tied weight is one GEMM over every row when all
// groups share it (cycle sharing: always); biases and LoRA belong to each group's position.
void CpuEngine::project(Proj p, const float* in, int64_t in_dim, float* out, int64_t out_dim) {
  const int i = idx(p);
  const float* W = w_.positions[static_cast<size_t>(groups_[0].position)].weight[i];
  bool shared = true;
  for (const StageGroup& g : groups_)
    shared = shared && w_.positions[static_cast<size_t>(g.position)].weight[i] == W;
  const int64_t n = groups_.back().end;
  if (shared) ops::linear_forward<float>(in, W, nullptr, out, n, in_dim, out_dim, false);
  for (const StageGroup& g : groups_) {
    const LayerParams& lp = w_.positions[static_cast<size_t>(g.position)];
    const int64_t rows = g.end - g.begin;
    const float* x = in + g.begin * in_dim;
    float* y = out + g.begin * out_dim;
    if (!shared)
      ops::linear_forward<float>(x, lp.weight[i], nullptr, y, rows, in_dim, out_dim, false);
    if (lp.bias[i])
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < out_dim; ++c) y[r * out_dim + c] += lp.bias[i][c];
    ops::lora_forward<float>(x, lp.lora_a[i], lp.lora_b[i], lora_u_.data(), y, rows, in_dim,
                             out_dim, lp.rank[i], lp.scale[i]);
  }
}

void CpuEngine::norm(bool attn, const float* x, float* y) {
  const ModelConfig& m = w_.spec.model;
  for (const StageGroup& g : groups_) {
    const LayerParams& lp = w_.positions[static_cast<size_t>(g.position)];
    const int64_t rows = g.end - g.begin;
    norm_forward(layer_dims(m, rows, 1), x + g.begin * m.d_model, attn ? lp.attn_norm : lp.mlp_norm,
                 attn ? lp.attn_norm_bias : lp.mlp_norm_bias, y + g.begin * m.d_model,
                 mean_.data() + g.begin, rstd_.data() + g.begin);
  }
}

// RoPE at each row's own position (ops/rope's formula, table and rounding).
void CpuEngine::rope_rows(float* x, const StageRow* rows, int64_t n, int64_t heads) const {
  const int64_t Dh = w_.spec.model.dh(), half = rope_.rot_dim / 2;
  for (int64_t i = 0; i < n; ++i) {
    const double* c = rope_.cos.data() + rows[i].pos * half;
    const double* s = rope_.sin.data() + rows[i].pos * half;
    for (int64_t h = 0; h < heads; ++h) {
      float* v = x + (i * heads + h) * Dh;
      for (int64_t t = 0; t < half; ++t) {
        const float ct = static_cast<float>(c[t]), st = static_cast<float>(s[t]);
        const float a = v[t], b = v[t + half];
        v[t] = a * ct - b * st;
        v[t + half] = b * ct + a * st;
      }
    }
  }
}

void CpuEngine::store_kv(const StageRow* rows, int64_t n) {
  const size_t bytes = static_cast<size_t>(w_.spec.model.kv_dim()) * sizeof(float);
  const int64_t kvd = w_.spec.model.kv_dim();
  for (const StageGroup& g : groups_)
    for (int64_t i = g.begin; i < g.end; ++i) {
      std::memcpy(cache_.key(g.position, rows[i].slot, rows[i].pos), k_.data() + i * kvd, bytes);
      std::memcpy(cache_.value(g.position, rows[i].slot, rows[i].pos), v_.data() + i * kvd, bytes);
    }
}

// One query per row and head against its slot's keys 0..pos: softmax(q K^T / sqrt(Dh)) V.
void CpuEngine::attend(const StageRow* rows, int64_t n) {
  const ModelConfig& m = w_.spec.model;
  const int64_t H = m.n_heads, Dh = m.dh(), kvd = m.kv_dim(), qd = m.q_dim();
  const int64_t group = H / m.n_kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(Dh));
  for (const StageGroup& g : groups_) {
    const int64_t l = g.position;
#pragma omp parallel for collapse(2) schedule(static) num_threads(cap_.threads)
    for (int64_t i = g.begin; i < g.end; ++i)
      for (int64_t h = 0; h < H; ++h) {
        float* sc = scores_.data() + static_cast<int64_t>(omp_get_thread_num()) * cap_.max_seq;
        const float* qh = q_.data() + i * qd + h * Dh;
        const int64_t kvh = h / group, len = rows[i].pos + 1;
        const float* keys = cache_.key(l, rows[i].slot, 0) + kvh * Dh;
        const float* vals = cache_.value(l, rows[i].slot, 0) + kvh * Dh;
        float mx = -INFINITY;
        for (int64_t t = 0; t < len; ++t) {
          float dot = 0;
          for (int64_t d = 0; d < Dh; ++d) dot += qh[d] * keys[t * kvd + d];
          sc[t] = dot * scale;
          mx = std::max(mx, sc[t]);
        }
        float sum = 0;
        for (int64_t t = 0; t < len; ++t) {
          sc[t] = std::exp(sc[t] - mx);
          sum += sc[t];
        }
        float* o = att_.data() + i * qd + h * Dh;
        std::fill(o, o + Dh, 0.0f);
        for (int64_t t = 0; t < len; ++t) {
          const float p = sc[t] / sum;
          for (int64_t d = 0; d < Dh; ++d) o[d] += p * vals[t * kvd + d];
        }
      }
  }
}

void CpuEngine::layer(int64_t j, const StageRow* rows, int64_t n, float* x) {
  const ModelConfig& m = w_.spec.model;
  const int64_t D = m.d_model, qd = m.q_dim(), kvd = m.kv_dim(), F = m.ffn;
  group_by_stage(rows, n, j, groups_);
  norm(true, x, xn_.data());
  project(Proj::q, xn_.data(), D, q_.data(), qd);
  project(Proj::k, xn_.data(), D, k_.data(), kvd);
  project(Proj::v, xn_.data(), D, v_.data(), kvd);
  rope_rows(q_.data(), rows, n, m.n_heads);
  rope_rows(k_.data(), rows, n, m.n_kv_heads);
  store_kv(rows, n);
  attend(rows, n);
  project(Proj::o, att_.data(), qd, mid_.data(), D);
  ops::add_forward<float>(mid_.data(), x, mid_.data(), n * D);
  norm(false, m.parallel_residual ? x : mid_.data(), xn_.data());
  project(Proj::up, xn_.data(), D, up_.data(), F);
  switch (m.activation) {
    case Activation::swiglu:
      project(Proj::gate, xn_.data(), D, gate_.data(), F);
      ops::swiglu_forward<float>(gate_.data(), up_.data(), act_.data(), n * F);
      break;
    case Activation::geglu:
      project(Proj::gate, xn_.data(), D, gate_.data(), F);
      ops::geglu_forward<float>(gate_.data(), up_.data(), act_.data(), n * F);
      break;
    case Activation::gelu:
    case Activation::gelu_tanh:
      ops::gelu_forward<float>(up_.data(), act_.data(), n * F,
                               m.activation == Activation::gelu_tanh);
      break;
  }
  project(Proj::down, act_.data(), F, out_.data(), D);
  ops::add_forward<float>(out_.data(), mid_.data(), x, n * D);
}

void CpuEngine::run_stage(const StageRow* rows, int64_t n, float* resid) {
  if (n == 0) return;
  RRT_CHECK(n <= cap_.max_rows, "Engine", n, " rows exceed the planned ", cap_.max_rows);
  for (int64_t i = 0; i < n; ++i)
    RRT_CHECK(rows[i].slot >= 0 && rows[i].slot < cap_.slots && rows[i].pos >= 0 &&
                  rows[i].pos < cap_.max_seq,
              "Engine", "row ", i, " (slot ", rows[i].slot, ", position ", rows[i].pos,
              ") is outside the cache's ", cap_.slots, " slots x ", cap_.max_seq, " tokens");
  for (int64_t j = 0; j < block_layers(); ++j) layer(j, rows, n, resid);
}

void CpuEngine::head(const float* resid, int64_t n, float* logits) {
  const ModelConfig& m = w_.spec.model;
  RRT_CHECK(n <= cap_.max_rows, "Engine", n, " rows exceed the planned ", cap_.max_rows);
  norm_forward(layer_dims(m, n, 1), resid, w_.final_norm, w_.final_norm_bias, head_h_.data(),
               mean_.data(), rstd_.data());
  ops::linear_forward<float>(head_h_.data(), w_.head, nullptr, logits, n, m.d_model, m.vocab,
                             false);
}

// The exit's head adapter (scale 1), as in training: logits += (h A^T) B^T, for rows
// [row0, row0 + rows) of the last head() call.
void CpuEngine::head_adapter(int64_t loop, int64_t row0, int64_t rows, float* logits) {
  const ModelConfig& m = w_.spec.model;
  RRT_CHECK(loop >= 1 && loop <= stages(), "Engine", "exit loop ", loop, " outside 1..", stages());
  const float* A = w_.exit_lora_a[static_cast<size_t>(loop - 1)];
  if (loop == stages() || A == nullptr || rows == 0) return;
  const int64_t R = w_.exit_lora_rank;
  ops::gemm<float>(false, true, rows, R, m.d_model, 1.0f, head_h_.data() + row0 * m.d_model,
                   m.d_model, A, m.d_model, 0.0f, head_u_.data(), R);
  ops::gemm<float>(false, true, rows, m.vocab, R, 1.0f, head_u_.data(), R,
                   w_.exit_lora_b[static_cast<size_t>(loop - 1)], R, 1.0f, logits + row0 * m.vocab,
                   m.vocab);
}

void CpuEngine::exit_logits(int64_t loop, const float* resid, int64_t n, float* logits) {
  RRT_CHECK(loop >= 1 && loop <= stages(), "Engine", "exit loop ", loop, " outside 1..", stages());
  if (n == 0) return;
  head(resid, n, logits);
  head_adapter(loop, 0, n, logits);
}

void CpuEngine::exit_logits(const int32_t* loops, const float* resid, int64_t n, float* logits) {
  if (n == 0) return;
  head(resid, n, logits);
  for (int64_t a = 0; a < n;) {
    int64_t b = a;
    while (b < n && loops[b] == loops[a]) ++b;
    head_adapter(loops[a], a, b - a, logits);
    a = b;
  }
}

// For every skipped stage s, the rows whose last stage is below s are a prefix (rows ascend by
// stage): each skipped position runs its attention norm and its k and v projections (with its
// LoRA and bias) on that prefix, RoPE at each row's position, and stores the result.
void CpuEngine::propagate_kv(const StageRow* rows, int64_t n, const float* resid) {
  if (n == 0) return;
  RRT_CHECK(n <= cap_.max_rows, "Engine", n, " rows exceed the planned ", cap_.max_rows);
  const ModelConfig& m = w_.spec.model;
  const int64_t D = m.d_model, kvd = m.kv_dim(), B = block_layers();
  for (int64_t i = 1; i < n; ++i)
    RRT_CHECK(rows[i].stage >= rows[i - 1].stage, "Engine",
              "propagate_kv needs rows sorted by their last stage");
  for (int64_t s = rows[0].stage + 1; s < stages(); ++s) {
    int64_t count = 0;
    while (count < n && rows[count].stage < s) ++count;
    for (int64_t j = 0; j < B; ++j) {
      groups_.assign(1, StageGroup{0, count, s * B + j});
      norm(true, resid, xn_.data());
      project(Proj::k, xn_.data(), D, k_.data(), kvd);
      project(Proj::v, xn_.data(), D, v_.data(), kvd);
      rope_rows(k_.data(), rows, count, m.n_kv_heads);
      store_kv(rows, count);
    }
  }
}

void CpuEngine::copy_kv(const StageRow& row) {
  const int64_t B = block_layers();
  const size_t bytes = static_cast<size_t>(w_.spec.model.kv_dim()) * sizeof(float);
  for (int64_t s = row.stage + 1; s < stages(); ++s)
    for (int64_t j = 0; j < B; ++j) {
      const int64_t from = row.stage * B + j, to = s * B + j;
      std::memcpy(cache_.key(to, row.slot, row.pos), cache_.key(from, row.slot, row.pos), bytes);
      std::memcpy(cache_.value(to, row.slot, row.pos), cache_.value(from, row.slot, row.pos),
                  bytes);
    }
}

// ---- the state-based interface ------------------------------------------------------------

void CpuEngine::reserve_states(int64_t n) {
  const size_t need = static_cast<size_t>(n * d_model());
  if (states_.size() < need) states_.resize(need);
}

float* CpuEngine::state_row(int32_t state) {
  RRT_CHECK(state >= 0 && (state + 1) * d_model() <= static_cast<int64_t>(states_.size()), "Engine",
            "state ", state, " outside the reserved pool of ",
            static_cast<int64_t>(states_.size()) / d_model());
  return states_.data() + static_cast<int64_t>(state) * d_model();
}

void CpuEngine::gather(const int32_t* states, int64_t n) {
  RRT_CHECK(n <= cap_.max_rows, "Engine", n, " rows exceed the planned ", cap_.max_rows);
  const size_t bytes = static_cast<size_t>(d_model()) * sizeof(float);
  for (int64_t i = 0; i < n; ++i)
    std::memcpy(gathered_.data() + i * d_model(), state_row(states[i]), bytes);
}

void CpuEngine::scatter(const int32_t* states, int64_t n) {
  const size_t bytes = static_cast<size_t>(d_model()) * sizeof(float);
  for (int64_t i = 0; i < n; ++i)
    std::memcpy(state_row(states[i]), gathered_.data() + i * d_model(), bytes);
}

void CpuEngine::embed_states(const int32_t* tokens, const int32_t* states, int64_t n) {
  for (int64_t i = 0; i < n; ++i) embed(tokens + i, 1, state_row(states[i]));
}

void CpuEngine::run_stage(const StageRow* rows, const int32_t* states, int64_t n) {
  gather(states, n);
  run_stage(rows, n, gathered_.data());
  scatter(states, n);
}

void CpuEngine::exit_heads(const int32_t* loops, const int32_t* states, int64_t n, bool) {
  gather(states, n);
  exit_logits(loops, gathered_.data(), n, head_logits_.data());
  const int64_t V = vocab();
  for (int64_t i = 0; i < n; ++i) {
    head_argmax_[static_cast<size_t>(i)] = argmax(head_logits_.data() + i * V, V);
    head_max_prob_[static_cast<size_t>(i)] = max_probability(head_logits_.data() + i * V, V);
  }
}

void CpuEngine::propagate_kv(const StageRow* rows, const int32_t* states, int64_t n) {
  gather(states, n);
  propagate_kv(rows, n, gathered_.data());
}

}  // namespace rrt::inference
