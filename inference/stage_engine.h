// The serving engine (inference/engine.h's interface) written once over a backend
// (ops/backend.h): CpuEngine (inference/cpu_engine.h) runs it on the CPU fp32 backend, the GPU
// engine (inference/cuda/device_engine.cpp) on the CUDA bf16 backend.
//
//   stage s of a row = unrolled positions s*B .. s*B + B - 1 (with cycle sharing, loop s + 1)
//   per layer j: the tied projection x W_b^T runs once over all rows (with its bias when every
//                group shares it); norms run once when shared, else per group; each row's own
//                stage's LoRA in one lora_add (one group) or one lora_rows (several); keys and
//                values go to the cache of each row's own position (s*B + j, slot, pos); the
//                decode attention reads the row's own slot, positions 0..pos.
//
// Prefill runs a prompt's tokens as rows of one slot through every stage; decoding runs one row
// per sequence. Exits read the shared final norm and head (plus an exit's head adapter). Tokens
// that exit after stage e leave positions (e+1)*B.. of their KV empty: propagate_kv fills them
// from the exited state through only the k and v projections of each skipped position (its
// attention norm, LoRA and bias included); copy_kv copies the last computed loop's entries of
// the same block layer.
//
// Memory (scratch for max_rows rows, the KV cache unless the owner hands one in) is planned at
// construction in the backend's memory: calls allocate nothing (reserve_states allocates the
// state pool, once per size).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "inference/engine.h"
#include "inference/weights.h"
#include "model/decoder_layer.h"
#include "ops/backend.h"

namespace rrt::inference {

template <class Be>
class StageEngine : public Engine {
 public:
  using Act = typename Be::Act;
  // Where each fp32 host weight of `weights` lives in the backend's memory (the identity on the
  // CPU; the bf16 copy of the arena on a GPU).
  using WeightMap = std::function<const Act*(const float*)>;

  // k_cache / v_cache: [positions, slots, max_seq, kv_dim] caches the owner keeps, or null for
  // the engine's own.
  StageEngine(const ModelWeights& weights, const WeightMap& map, const EngineCapacity& capacity,
              Act* k_cache = nullptr, Act* v_cache = nullptr);

  const ModelSpec& spec() const override { return spec_; }
  const EngineCapacity& capacity() const override { return cap_; }
  const char* device() const override { return Be::kName; }
  void reserve_states(int64_t n) override;
  void embed_states(const int32_t* tokens, const int32_t* states, int64_t n) override;
  void run_stage(const StageRow* rows, const int32_t* states, int64_t n) override;
  void run_stage_saturation(const StageRow* rows, const int32_t* states, int64_t n) override;
  const double* stage_similarity() const override { return similarity_.data(); }
  const float* stage_normed_states() const override { return sat_normed_.data(); }
  void exit_heads(const int32_t* loops, const int32_t* states, int64_t n,
                  bool host_logits) override;
  const int32_t* head_argmax() const override { return head_argmax_.data(); }
  const double* head_max_probability() const override { return head_max_prob_.data(); }
  const float* head_logits() const override;
  void propagate_kv(const StageRow* rows, const int32_t* states, int64_t n) override;
  void copy_kv(const StageRow& row) override;
  void synchronize() override { be_.synchronize(); }

 protected:
  // The same operations over the call's rows x_ [n, D] (the state calls gather into it and
  // scatter back; CpuEngine's residual-row API copies in and out).
  void embed_rows(const int32_t* tokens, int64_t n);
  void run_rows(const StageRow* rows, int64_t n);
  void head_rows(const int32_t* loops, int64_t n);  // logits_ [n, V]
  void propagate_rows(const StageRow* rows, int64_t n);
  Act* rows_buffer() { return x_; }
  const float* logits_buffer() const { return logits_; }
  Be& backend() { return be_; }
  // Rows' slot, position and stage (rows may be null) and states (may be null) to the backend.
  void upload_rows(const StageRow* rows, const int32_t* states, int64_t n);

 private:
  void layer(int64_t j, int64_t n);
  void project(Proj p, const Act* in, int64_t in_dim, Act* out, int64_t out_dim);
  // The groups' attention (attn) or MLP input norm, or with post the norm on that half's output
  // (Gemma 2 / 3's sandwich norms).
  void norm(bool attn, const Act* x, Act* y, bool post = false);
  // RoPE at each row's position over x [n, H, Dh], each group with its position's base (Gemma 3's
  // local layers); the query scale on q (is_q).
  void rope(Act* x, int64_t n, int64_t H, bool is_q);
  // Qwen3's per-head RMSNorm of q (q = true, H heads) or k (Hkv heads) over rows' projections
  // `raw` into y, each group with its position's weight.
  void head_norm(bool q, const Act* raw, Act* y);
  void norm_rows(int64_t rows, const Act* x, const Act* w, const Act* b, Act* y);
  Act* k_cache(int64_t l) const { return k_cache_ + l * cache_stride_; }
  Act* v_cache(int64_t l) const { return v_cache_ + l * cache_stride_; }
  int32_t* d_slot() const { return row_data_; }
  int32_t* d_pos() const { return row_data_ + cap_.max_rows; }
  int32_t* d_state() const { return row_data_ + 2 * cap_.max_rows; }
  int32_t* d_stage() const { return row_data_ + 3 * cap_.max_rows; }
  int32_t* d_token() const { return row_data_ + 4 * cap_.max_rows; }

  Be be_;  // first: the members below are carved from its memory
  ModelSpec spec_;
  EngineCapacity cap_;
  std::vector<LayerParamsOf<Act>> positions_;
  RowAdapter<Act>* adapters_ = nullptr;  // [position][projection], backend memory
  const Act *embed_ = nullptr, *final_norm_ = nullptr, *final_norm_bias_ = nullptr,
            *head_ = nullptr;
  std::vector<const Act*> exit_lora_a_, exit_lora_b_;
  int64_t exit_rank_ = 0, max_rank_ = 0;
  BackendBlock block_, cache_block_, states_block_;
  Act *k_cache_ = nullptr, *v_cache_ = nullptr;
  int64_t cache_stride_ = 0;  // slots * max_seq * kv_dim per position
  Act* states_ = nullptr;
  int64_t n_states_ = 0;
  // Scratch for max_rows rows.
  Act *x_ = nullptr, *xn_ = nullptr, *q_ = nullptr, *k_ = nullptr, *v_ = nullptr, *att_ = nullptr,
      *mid_ = nullptr, *gate_ = nullptr, *up_ = nullptr, *act_ = nullptr, *out_ = nullptr,
      *lora_u_ = nullptr, *head_u_ = nullptr, *k_raw_ = nullptr,  // k_raw_: qk_norm only
                                                  *before_ = nullptr;
  typename Be::Stat *mean_ = nullptr, *rstd_ = nullptr;
  float *lora_rows_u_ = nullptr, *logits_ = nullptr, *max_prob_ = nullptr;
  int32_t *argmax_ = nullptr, *row_data_ = nullptr;  // row data: slot, pos, state, stage, token
  std::vector<int32_t> staging_;
  std::vector<StageGroup> groups_;
  std::vector<int32_t> head_argmax_;
  std::vector<double> head_max_prob_;
  std::vector<float> head_logits_;  // host copy where the backend's memory is not the host's
  // run_stage_saturation: the normed states before and after the stage [max_rows, D] on the
  // host, the similarities, and the state after it as floats (the classifier's features).
  std::vector<Act> sat_before_, sat_after_;
  std::vector<double> similarity_;
  std::vector<float> sat_normed_;
};

}  // namespace rrt::inference
