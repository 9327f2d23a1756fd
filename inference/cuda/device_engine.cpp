// The inference engine on one GPU: inference/cpu_engine.cpp's twin (read them side by side), on
// bf16 device buffers. The differences are where the data lives: the weights are one bf16 copy of
// the model's value arena (a pointer into the host arena maps to the same offset here), the
// work-item states and the KV cache are bf16 device memory, and each call uploads only its rows
// (slot, position, state, stage) and returns only the head's per-row results. And how a
// depth-wise step batches: the CPU engine loops over a call's stage groups (its cost follows the
// rows), while a decode step on a GPU is bound by its kernel launches, so here every op of a
// layer is one launch over all rows whatever their loops: the tied GEMM (shared by every loop),
// each row's own loop's LoRA (lora_rows_forward), the KV cache of each row's own position
// (kv_store / kv_attention with a per-row cache index). A step mixing loops then costs what a
// step of one loop costs, as the paper's model of depth-wise batching assumes
// (docs/method.md §6.3).
// Everything is queued on the engine's own stream; exit_heads and synchronize wait for it.
#include "inference/device_engine.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "core/cuda/cuda_check.h"
#include "core/device.h"
#include "core/error.h"
#include "model/decoder_layer.h"
#include "model/parameters.h"
#include "ops/cuda/elementwise.h"
#include "ops/cuda/gemm.h"
#include "ops/cuda/kv_ops.h"
#include "ops/cuda/lora.h"
#include "ops/cuda/lora_rows.h"
#include "ops/cuda/vector_ops.h"
#include "ops/rope.h"

namespace rrt::inference {

namespace cu = ops::cuda;
using cu::bf16;
using DeviceLayerParams = LayerParamsOf<bf16>;  // the model's per-position weights, in bf16

namespace {

constexpr const char* kWhere = "DeviceEngine";

int idx(Proj p) { return static_cast<int>(p); }

// One cudaMalloc'd block; the error names what it was for and the memory left.
struct Buffer {
  void* ptr = nullptr;
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { cudaFree(ptr); }
  template <typename T>
  T* allocate(int64_t count, const char* what) {
    cudaFree(ptr);
    ptr = nullptr;
    const size_t bytes = sizeof(T) * static_cast<size_t>(std::max<int64_t>(count, 1));
    ptr = cuda_malloc_or_fail(bytes, kWhere, what, "Lower --max-batch or the sequence lengths");
    return static_cast<T*>(ptr);
  }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr);
  }
};

// Before any cuBLAS handle exists: its own error would not say that no GPU is there.
const EngineCapacity& require_gpu(const EngineCapacity& c) {
  RRT_CHECK(cuda_device_count() > 0, kWhere,
            "device cuda: no CUDA GPU is visible to this process (check nvidia-smi and "
            "CUDA_VISIBLE_DEVICES), or use --device cpu");
  return c;
}

class DeviceEngine final : public Engine {
 public:
  DeviceEngine(const ModelWeights& w, const ParameterSet& params, const EngineCapacity& capacity);

  const ModelSpec& spec() const override { return spec_; }
  const EngineCapacity& capacity() const override { return cap_; }
  const char* device() const override { return "cuda"; }
  void reserve_states(int64_t n) override;
  void embed_states(const int32_t* tokens, const int32_t* states, int64_t n) override;
  void run_stage(const StageRow* rows, const int32_t* states, int64_t n) override;
  void exit_heads(const int32_t* loops, const int32_t* states, int64_t n,
                  bool host_logits) override;
  const int32_t* head_argmax() const override { return head_argmax_.data(); }
  const double* head_max_probability() const override { return head_max_prob_.data(); }
  const float* head_logits() const override { return head_logits_.data(); }
  void propagate_kv(const StageRow* rows, const int32_t* states, int64_t n) override;
  void copy_kv(const StageRow& row) override;
  void synchronize() override { RRT_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

 private:
  const bf16* on_device(const float* host) const;
  void upload_rows(const StageRow* rows, const int32_t* states, int64_t n);
  void upload_lora_tiles();
  void layer(int64_t j, int64_t n);
  void project(Proj p, const bf16* in, int64_t in_dim, bf16* out, int64_t out_dim);
  void norm(bool attn, const bf16* x, bf16* y);
  void norm_rows(const LayerDims& d, const bf16* x, const bf16* w, const bf16* b, bf16* y);
  void store_kv(int64_t j, int64_t n);
  void attend(int64_t j, int64_t n);
  bf16* k_cache(int64_t l) const { return kc_.as<bf16>() + l * cache_stride_; }
  bf16* v_cache(int64_t l) const { return vc_.as<bf16>() + l * cache_stride_; }

  ModelSpec spec_;
  EngineCapacity cap_;
  cudaStream_t stream_ = nullptr;  // the legacy default stream, as the device model's
  cu::GemmContext gemm_;
  std::unique_ptr<cu::DeviceRopeTable> rope_;
  const float* host_base_ = nullptr;
  int64_t arena_floats_ = 0;
  Buffer weights_;  // bf16 copy of the value arena
  std::vector<DeviceLayerParams> positions_;
  // Every position's adapters as lora_rows_forward reads them: [position][projection] on the
  // device; a call's rows of stage s and block layer j use entry (s * B + j) * kNumProj + p.
  Buffer lora_adapters_;
  // The current call's rows in tiles of one stage each (LoraRowTile::group = the stage).
  std::vector<cu::LoraRowTile> lora_tiles_;
  Buffer lora_tiles_dev_;
  const bf16 *embed_ = nullptr, *final_norm_ = nullptr, *final_norm_bias_ = nullptr,
             *head_ = nullptr;
  std::vector<const bf16*> exit_lora_a_, exit_lora_b_;
  int64_t exit_rank_ = 0;
  int64_t cache_stride_ = 0;  // slots * max_seq * kv_dim per position
  Buffer kc_, vc_, states_;
  int64_t n_states_ = 0;
  // Scratch for max_rows rows.
  Buffer x_, xn_, q_, k_, v_, att_, mid_, gate_, up_, act_, out_, lora_u_, head_u_;
  Buffer lora_rows_u_;  // fp32 scratch of lora_rows_forward
  Buffer logits_, max_prob_, argmax_;
  Buffer row_data_;  // per row: slot, position, state, stage, token ([5, max_rows] int32)
  std::vector<int32_t> staging_;
  std::vector<StageGroup> groups_;
  std::vector<int32_t> head_argmax_;
  std::vector<float> head_max_prob_f_;
  std::vector<double> head_max_prob_;
  std::vector<float> head_logits_;
  int32_t* d_slot() const { return row_data_.as<int32_t>(); }
  int32_t* d_pos() const { return row_data_.as<int32_t>() + cap_.max_rows; }
  int32_t* d_state() const { return row_data_.as<int32_t>() + 2 * cap_.max_rows; }
  int32_t* d_stage() const { return row_data_.as<int32_t>() + 3 * cap_.max_rows; }
  int32_t* d_token() const { return row_data_.as<int32_t>() + 4 * cap_.max_rows; }
};

DeviceEngine::DeviceEngine(const ModelWeights& w, const ParameterSet& params,
                           const EngineCapacity& capacity)
    : spec_(w.spec), cap_(require_gpu(capacity)), gemm_(nullptr) {
  const ModelConfig& m = spec_.model;
  if (cap_.max_seq <= 0) cap_.max_seq = m.max_seq_len;
  RRT_CHECK(cap_.max_seq <= m.max_seq_len, kWhere, "max_seq ", cap_.max_seq,
            " exceeds the model's max_seq_len ", m.max_seq_len);
  RRT_CHECK(cap_.max_rows > 0 && cap_.slots > 0, kWhere, "max_rows and slots must be positive");
  rope_ = std::make_unique<cu::DeviceRopeTable>(
      ops::RopeTable(cap_.max_seq, m.rot_dim(), m.rope_theta));

  // The value arena as bf16, through an fp32 staging slice.
  const Arena& arena = const_cast<ParameterSet&>(params).values_arena();
  host_base_ = static_cast<const float*>(arena.base());
  arena_floats_ = arena.total_bytes() / static_cast<int64_t>(sizeof(float));
  bf16* wdev = weights_.allocate<bf16>(arena_floats_, "bf16 weights");
  {
    const int64_t slice = std::min<int64_t>(arena_floats_, int64_t{1} << 24);
    Buffer staging;
    float* st = staging.allocate<float>(slice, "weight upload staging");
    for (int64_t at = 0; at < arena_floats_; at += slice) {
      const int64_t n = std::min(slice, arena_floats_ - at);
      RRT_CUDA_CHECK(cudaMemcpy(st, host_base_ + at, sizeof(float) * static_cast<size_t>(n),
                                cudaMemcpyHostToDevice));
      cu::to_bf16(st, wdev + at, n, stream_);
      RRT_CUDA_CHECK(cudaStreamSynchronize(stream_));
    }
  }
  for (const LayerParams& lp : w.positions) {
    DeviceLayerParams d;
    d.attn_norm = on_device(lp.attn_norm);
    d.mlp_norm = on_device(lp.mlp_norm);
    d.attn_norm_bias = on_device(lp.attn_norm_bias);
    d.mlp_norm_bias = on_device(lp.mlp_norm_bias);
    for (int i = 0; i < kNumProj; ++i) {
      d.weight[i] = on_device(lp.weight[i]);
      d.bias[i] = on_device(lp.bias[i]);
      d.lora_a[i] = on_device(lp.lora_a[i]);
      d.lora_b[i] = on_device(lp.lora_b[i]);
      d.rank[i] = lp.rank[i];
      d.scale[i] = lp.scale[i];
    }
    positions_.push_back(d);
  }
  std::vector<cu::LoraAdapter> adapters;
  for (const DeviceLayerParams& d : positions_)
    for (int i = 0; i < kNumProj; ++i)
      adapters.push_back({d.lora_a[i], d.lora_b[i], static_cast<int32_t>(d.rank[i]), d.scale[i]});
  RRT_CUDA_CHECK(cudaMemcpy(
      lora_adapters_.allocate<cu::LoraAdapter>(static_cast<int64_t>(adapters.size()), "adapters"),
      adapters.data(), sizeof(cu::LoraAdapter) * adapters.size(), cudaMemcpyHostToDevice));
  embed_ = on_device(w.embed);
  final_norm_ = on_device(w.final_norm);
  final_norm_bias_ = on_device(w.final_norm_bias);
  head_ = on_device(w.head);
  for (const float* a : w.exit_lora_a) exit_lora_a_.push_back(on_device(a));
  for (const float* b : w.exit_lora_b) exit_lora_b_.push_back(on_device(b));
  exit_rank_ = w.exit_lora_rank;

  cache_stride_ = cap_.slots * cap_.max_seq * m.kv_dim();
  kc_.allocate<bf16>(spec_.positions() * cache_stride_, "KV cache (keys)");
  vc_.allocate<bf16>(spec_.positions() * cache_stride_, "KV cache (values)");
  const int64_t R = cap_.max_rows, D = m.d_model, F = m.ffn;
  x_.allocate<bf16>(R * D, "rows");
  xn_.allocate<bf16>(R * D, "normed rows");
  mid_.allocate<bf16>(R * D, "attention residual");
  out_.allocate<bf16>(R * D, "MLP output");
  q_.allocate<bf16>(R * m.q_dim(), "queries");
  att_.allocate<bf16>(R * m.q_dim(), "attention output");
  k_.allocate<bf16>(R * m.kv_dim(), "keys");
  v_.allocate<bf16>(R * m.kv_dim(), "values");
  gate_.allocate<bf16>(R * F, "MLP gate");
  up_.allocate<bf16>(R * F, "MLP up");
  act_.allocate<bf16>(R * F, "MLP activation");
  lora_u_.allocate<bf16>(R * std::max<int64_t>(spec_.max_lora_rank(), 1), "LoRA scratch");
  lora_rows_u_.allocate<float>(R * std::max<int64_t>(spec_.max_lora_rank(), 1), "LoRA scratch");
  // A call's groups (at most one per stage) in tiles of up to kLoraRowTileMax rows.
  const int64_t max_tiles = R / cu::kLoraRowTileMax + stages() + 1;
  lora_tiles_dev_.allocate<cu::LoraRowTile>(max_tiles, "LoRA row tiles");
  lora_tiles_.reserve(static_cast<size_t>(max_tiles));
  head_u_.allocate<bf16>(R * std::max<int64_t>(exit_rank_, 1), "head adapter scratch");
  logits_.allocate<float>(R * m.vocab, "logits");
  max_prob_.allocate<float>(R, "head results");
  argmax_.allocate<int32_t>(R, "head results");
  row_data_.allocate<int32_t>(5 * R, "row descriptors");
  staging_.resize(static_cast<size_t>(5 * R));
  head_argmax_.resize(static_cast<size_t>(R));
  head_max_prob_f_.resize(static_cast<size_t>(R));
  head_max_prob_.resize(static_cast<size_t>(R));
  head_logits_.resize(static_cast<size_t>(R * m.vocab));
  groups_.reserve(static_cast<size_t>(stages()) + 1);
}

const bf16* DeviceEngine::on_device(const float* host) const {
  if (host == nullptr) return nullptr;
  const int64_t at = host - host_base_;
  RRT_CHECK(at >= 0 && at < arena_floats_, kWhere,
            "a weight does not point into the parameter set's arena (bind_weights of another set)");
  return weights_.as<bf16>() + at;
}

void DeviceEngine::reserve_states(int64_t n) {
  if (n <= n_states_) return;
  states_.allocate<bf16>(n * d_model(), "work-item states");
  n_states_ = n;
}

// slot, position, state and stage of each row: one upload (pageable memory: staged at once, so
// the host buffer is free again when the call returns).
void DeviceEngine::upload_rows(const StageRow* rows, const int32_t* states, int64_t n) {
  RRT_CHECK(n <= cap_.max_rows, kWhere, n, " rows exceed the planned ", cap_.max_rows);
  const int64_t R = cap_.max_rows;
  for (int64_t i = 0; i < n; ++i) {
    if (rows) {
      RRT_CHECK(rows[i].slot >= 0 && rows[i].slot < cap_.slots && rows[i].pos >= 0 &&
                    rows[i].pos < cap_.max_seq,
                kWhere, "row ", i, " (slot ", rows[i].slot, ", position ", rows[i].pos,
                ") is outside the cache's ", cap_.slots, " slots x ", cap_.max_seq, " tokens");
      staging_[i] = rows[i].slot;
      staging_[R + i] = rows[i].pos;
      staging_[3 * R + i] = rows[i].stage;
    }
    RRT_CHECK(states[i] >= 0 && states[i] < n_states_, kWhere, "state ", states[i],
              " outside the reserved pool of ", n_states_);
    staging_[2 * R + i] = states[i];
  }
  RRT_CUDA_CHECK(cudaMemcpyAsync(row_data_.ptr, staging_.data(), sizeof(int32_t) * 4 * R,
                                 cudaMemcpyHostToDevice, stream_));
}

// The current groups' rows as LoRA tiles, grouped by stage (the same for every block layer of a
// call: a group's position is stage * B + j).
void DeviceEngine::upload_lora_tiles() {
  lora_tiles_.clear();
  const int64_t B = block_layers();
  for (const StageGroup& g : groups_)
    cu::append_lora_row_tiles(static_cast<int32_t>(g.begin), static_cast<int32_t>(g.end),
                              static_cast<int32_t>(g.position / B), lora_tiles_);
  RRT_CUDA_CHECK(cudaMemcpyAsync(lora_tiles_dev_.ptr, lora_tiles_.data(),
                                 sizeof(cu::LoraRowTile) * lora_tiles_.size(),
                                 cudaMemcpyHostToDevice, stream_));
}

void DeviceEngine::embed_states(const int32_t* tokens, const int32_t* states, int64_t n) {
  const ModelConfig& m = spec_.model;
  for (int64_t a = 0; a < n; a += cap_.max_rows) {
    const int64_t c = std::min(cap_.max_rows, n - a);
    for (int64_t i = 0; i < c; ++i)
      RRT_CHECK(tokens[a + i] >= 0 && tokens[a + i] < m.vocab, kWhere, "token ", tokens[a + i],
                " outside the vocabulary of ", m.vocab);
    upload_rows(nullptr, states + a, c);
    RRT_CUDA_CHECK(cudaMemcpyAsync(d_token(), tokens + a, sizeof(int32_t) * c,
                                   cudaMemcpyHostToDevice, stream_));
    cu::embedding_forward(d_token(), embed_, x_.as<bf16>(), c, m.d_model, m.vocab,
                          static_cast<float>(m.embedding_multiplier()), stream_);
    cu::scatter_rows(x_.as<bf16>(), d_state(), states_.as<bf16>(), c, m.d_model, stream_);
  }
}

// y = x W^T + bias + s B(A x): the tied GEMM (with its bias in the epilogue) once over every row
// when all groups share the weight, then every row's own adapter in one lora_rows_forward.
void DeviceEngine::project(Proj p, const bf16* in, int64_t in_dim, bf16* out, int64_t out_dim) {
  const int i = idx(p);
  const DeviceLayerParams& first = positions_[static_cast<size_t>(groups_[0].position)];
  bool shared = true;
  for (const StageGroup& g : groups_) {
    const DeviceLayerParams& lp = positions_[static_cast<size_t>(g.position)];
    shared = shared && lp.weight[i] == first.weight[i] && lp.bias[i] == first.bias[i];
  }
  if (shared) {
    cu::linear_forward(gemm_, in, first.weight[i], first.bias[i], out, groups_.back().end, in_dim,
                       out_dim, false);
  } else {
    for (const StageGroup& g : groups_) {
      const DeviceLayerParams& lp = positions_[static_cast<size_t>(g.position)];
      cu::linear_forward(gemm_, in + g.begin * in_dim, lp.weight[i], lp.bias[i],
                         out + g.begin * out_dim, g.end - g.begin, in_dim, out_dim, false);
    }
  }
  // One group (prefill, sequence-wise steps): the adapter's two GEMMs on tensor cores, no more
  // launches than the batched kernel's two. Several: every row's own adapter at once.
  if (groups_.size() == 1) {
    const DeviceLayerParams& lp = first;
    cu::lora_forward(gemm_, in, lp.lora_a[i], lp.lora_b[i], lora_u_.as<bf16>(), out,
                     groups_[0].end - groups_[0].begin, in_dim, out_dim, lp.rank[i], lp.scale[i]);
    return;
  }
  // Entry (stage * B + j) * kNumProj + i of the adapter table: base j * kNumProj + i, stride
  // B * kNumProj.
  const int64_t j = groups_[0].position % block_layers();
  cu::lora_rows_forward(in, in_dim, out, out_dim,
                        lora_adapters_.as<cu::LoraAdapter>() + j * kNumProj + i,
                        block_layers() * kNumProj, lora_tiles_dev_.as<cu::LoraRowTile>(),
                        static_cast<int64_t>(lora_tiles_.size()), spec_.max_lora_rank(),
                        lora_rows_u_.as<float>(), stream_);
}

void DeviceEngine::norm_rows(const LayerDims& d, const bf16* x, const bf16* w, const bf16* b,
                             bf16* y) {
  if (d.norm == Norm::layer)
    cu::layernorm_forward(x, w, b, y, nullptr, nullptr, d.M(), d.D, d.eps, stream_);
  else
    cu::rmsnorm_forward(x, w, y, nullptr, d.M(), d.D, d.eps, d.unit_offset, stream_);
}

// One launch over every row when the groups share the norm's weights (tied blocks do).
void DeviceEngine::norm(bool attn, const bf16* x, bf16* y) {
  const ModelConfig& m = spec_.model;
  const auto weights = [&](const StageGroup& g) {
    const DeviceLayerParams& lp = positions_[static_cast<size_t>(g.position)];
    return attn ? std::pair(lp.attn_norm, lp.attn_norm_bias)
                : std::pair(lp.mlp_norm, lp.mlp_norm_bias);
  };
  bool shared = true;
  for (const StageGroup& g : groups_) shared = shared && weights(g) == weights(groups_[0]);
  if (shared) {
    const auto [w, b] = weights(groups_[0]);
    norm_rows(layer_dims(m, groups_.back().end, 1), x, w, b, y);
    return;
  }
  for (const StageGroup& g : groups_) {
    const DeviceLayerParams& lp = positions_[static_cast<size_t>(g.position)];
    norm_rows(layer_dims(m, g.end - g.begin, 1), x + g.begin * m.d_model,
              attn ? lp.attn_norm : lp.mlp_norm, attn ? lp.attn_norm_bias : lp.mlp_norm_bias,
              y + g.begin * m.d_model);
  }
}

// Rows of every stage in one launch each: row i's cache is position stage[i] * B + j, i.e.
// k_cache(j) + stage[i] * (B * cache_stride_).
void DeviceEngine::store_kv(int64_t j, int64_t n) {
  cu::kv_store(k_.as<bf16>(), v_.as<bf16>(), k_cache(j), v_cache(j), d_slot(), d_pos(), n,
               cap_.max_seq, spec_.model.kv_dim(), stream_, d_stage(),
               block_layers() * cache_stride_);
}

void DeviceEngine::attend(int64_t j, int64_t n) {
  const ModelConfig& m = spec_.model;
  cu::kv_attention(q_.as<bf16>(), k_cache(j), v_cache(j), d_slot(), d_pos(), att_.as<bf16>(), n,
                   m.n_heads, m.n_kv_heads, m.dh(), cap_.max_seq, stream_, d_stage(),
                   block_layers() * cache_stride_);
}

void DeviceEngine::layer(int64_t j, int64_t n) {
  const ModelConfig& m = spec_.model;
  const int64_t D = m.d_model, qd = m.q_dim(), kvd = m.kv_dim(), F = m.ffn;
  bf16 *x = x_.as<bf16>(), *xn = xn_.as<bf16>(), *mid = mid_.as<bf16>();
  norm(true, x, xn);
  project(Proj::q, xn, D, q_.as<bf16>(), qd);
  project(Proj::k, xn, D, k_.as<bf16>(), kvd);
  project(Proj::v, xn, D, v_.as<bf16>(), kvd);
  cu::rope_rows_forward(q_.as<bf16>(), *rope_, d_pos(), n, m.n_heads, m.dh(), stream_);
  cu::rope_rows_forward(k_.as<bf16>(), *rope_, d_pos(), n, m.n_kv_heads, m.dh(), stream_);
  store_kv(j, n);
  attend(j, n);
  project(Proj::o, att_.as<bf16>(), qd, mid, D);
  cu::add_forward(mid, x, mid, n * D, stream_);
  norm(false, m.parallel_residual ? x : mid, xn);
  project(Proj::up, xn, D, up_.as<bf16>(), F);
  switch (m.activation) {
    case Activation::swiglu:
      project(Proj::gate, xn, D, gate_.as<bf16>(), F);
      cu::swiglu_forward(gate_.as<bf16>(), up_.as<bf16>(), act_.as<bf16>(), n * F, stream_);
      break;
    case Activation::geglu:
      project(Proj::gate, xn, D, gate_.as<bf16>(), F);
      cu::geglu_forward(gate_.as<bf16>(), up_.as<bf16>(), act_.as<bf16>(), n * F, stream_);
      break;
    case Activation::gelu:
    case Activation::gelu_tanh:
      cu::gelu_forward(up_.as<bf16>(), act_.as<bf16>(), n * F,
                       m.activation == Activation::gelu_tanh, stream_);
      break;
  }
  project(Proj::down, act_.as<bf16>(), F, out_.as<bf16>(), D);
  cu::add_forward(out_.as<bf16>(), mid, x, n * D, stream_);
}

void DeviceEngine::run_stage(const StageRow* rows, const int32_t* states, int64_t n) {
  if (n == 0) return;
  upload_rows(rows, states, n);
  cu::gather_rows(states_.as<bf16>(), d_state(), x_.as<bf16>(), n, d_model(), stream_);
  group_by_stage(rows, n, 0, groups_);
  if (groups_.size() > 1) upload_lora_tiles();  // project's batched LoRA reads them
  for (int64_t j = 0; j < block_layers(); ++j) {
    group_by_stage(rows, n, j, groups_);
    layer(j, n);
  }
  cu::scatter_rows(x_.as<bf16>(), d_state(), states_.as<bf16>(), n, d_model(), stream_);
}

// The final norm and head over every row (fp32 logits), each exit's head adapter (scale 1) on
// its rows, then argmax and max probability per row on the device.
void DeviceEngine::exit_heads(const int32_t* loops, const int32_t* states, int64_t n,
                              bool host_logits) {
  if (n == 0) return;
  const ModelConfig& m = spec_.model;
  const int64_t D = m.d_model, V = m.vocab;
  for (int64_t i = 0; i < n; ++i)
    RRT_CHECK(loops[i] >= 1 && loops[i] <= stages(), kWhere, "exit loop ", loops[i], " outside 1..",
              stages());
  upload_rows(nullptr, states, n);
  bf16 *x = x_.as<bf16>(), *h = xn_.as<bf16>();
  float* logits = logits_.as<float>();
  cu::gather_rows(states_.as<bf16>(), d_state(), x, n, D, stream_);
  norm_rows(layer_dims(m, n, 1), x, final_norm_, final_norm_bias_, h);
  cu::gemm(gemm_, false, true, n, V, D, 1.0f, h, head_, 0.0f, logits);
  for (int64_t a = 0; a < n;) {
    int64_t b = a;
    while (b < n && loops[b] == loops[a]) ++b;
    const int64_t loop = loops[a];
    const bf16* A = exit_lora_a_.empty() ? nullptr : exit_lora_a_[static_cast<size_t>(loop - 1)];
    if (loop != stages() && A != nullptr) {
      cu::gemm(gemm_, false, true, b - a, exit_rank_, D, 1.0f, h + a * D, A, 0.0f,
               head_u_.as<bf16>());
      cu::gemm(gemm_, false, true, b - a, V, exit_rank_, 1.0f, head_u_.as<bf16>(),
               exit_lora_b_[static_cast<size_t>(loop - 1)], 1.0f, logits + a * V);
    }
    a = b;
  }
  cu::logits_argmax_max_prob(logits, n, V, argmax_.as<int32_t>(), max_prob_.as<float>(), stream_);
  RRT_CUDA_CHECK(cudaMemcpyAsync(head_argmax_.data(), argmax_.ptr, sizeof(int32_t) * n,
                                 cudaMemcpyDeviceToHost, stream_));
  RRT_CUDA_CHECK(cudaMemcpyAsync(head_max_prob_f_.data(), max_prob_.ptr, sizeof(float) * n,
                                 cudaMemcpyDeviceToHost, stream_));
  if (host_logits)
    RRT_CUDA_CHECK(cudaMemcpyAsync(head_logits_.data(), logits, sizeof(float) * n * V,
                                   cudaMemcpyDeviceToHost, stream_));
  synchronize();
  for (int64_t i = 0; i < n; ++i) head_max_prob_[i] = head_max_prob_f_[i];
}

// CpuEngine::propagate_kv: for every skipped stage s, the prefix of rows whose last stage is
// below s runs each of that stage's positions' attention norm, k and v (LoRA and bias), RoPE.
void DeviceEngine::propagate_kv(const StageRow* rows, const int32_t* states, int64_t n) {
  if (n == 0) return;
  const ModelConfig& m = spec_.model;
  const int64_t D = m.d_model, kvd = m.kv_dim(), B = block_layers();
  for (int64_t i = 1; i < n; ++i)
    RRT_CHECK(rows[i].stage >= rows[i - 1].stage, kWhere,
              "propagate_kv needs rows sorted by their last stage");
  upload_rows(rows, states, n);
  cu::gather_rows(states_.as<bf16>(), d_state(), x_.as<bf16>(), n, D, stream_);
  for (int64_t s = rows[0].stage + 1; s < stages(); ++s) {
    int64_t count = 0;
    while (count < n && rows[count].stage < s) ++count;
    for (int64_t j = 0; j < B; ++j) {
      groups_.assign(1, StageGroup{0, count, s * B + j});
      norm(true, x_.as<bf16>(), xn_.as<bf16>());
      project(Proj::k, xn_.as<bf16>(), D, k_.as<bf16>(), kvd);
      project(Proj::v, xn_.as<bf16>(), D, v_.as<bf16>(), kvd);
      cu::rope_rows_forward(k_.as<bf16>(), *rope_, d_pos(), count, m.n_kv_heads, m.dh(), stream_);
      // Into stage s's caches (not the rows' own last stage, which d_stage holds).
      cu::kv_store(k_.as<bf16>(), v_.as<bf16>(), k_cache(s * B + j), v_cache(s * B + j), d_slot(),
                   d_pos(), count, cap_.max_seq, kvd, stream_);
    }
  }
}

void DeviceEngine::copy_kv(const StageRow& row) {
  const int64_t B = block_layers(), kvd = spec_.model.kv_dim();
  RRT_CHECK(row.slot >= 0 && row.slot < cap_.slots && row.pos >= 0 && row.pos < cap_.max_seq &&
                row.stage >= 0 && row.stage < stages(),
            kWhere, "copy_kv row outside the cache");
  const int64_t at = (static_cast<int64_t>(row.slot) * cap_.max_seq + row.pos) * kvd;
  const size_t bytes = sizeof(bf16) * static_cast<size_t>(kvd);
  for (int64_t s = row.stage + 1; s < stages(); ++s)
    for (int64_t j = 0; j < B; ++j) {
      const int64_t from = row.stage * B + j, to = s * B + j;
      RRT_CUDA_CHECK(cudaMemcpyAsync(k_cache(to) + at, k_cache(from) + at, bytes,
                                     cudaMemcpyDeviceToDevice, stream_));
      RRT_CUDA_CHECK(cudaMemcpyAsync(v_cache(to) + at, v_cache(from) + at, bytes,
                                     cudaMemcpyDeviceToDevice, stream_));
    }
}

}  // namespace

bool device_engine_compiled() { return true; }

std::unique_ptr<Engine> make_device_engine(const ModelWeights& weights, const ParameterSet& params,
                                           const EngineCapacity& capacity) {
  return std::make_unique<DeviceEngine>(weights, params, capacity);
}

}  // namespace rrt::inference
