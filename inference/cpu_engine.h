// The CPU engine (inference/engine.h's interface): OpenBLAS GEMMs and OpenMP attention in fp32.
// Besides the state-based calls the schedulers use, it offers the same operations over residual
// rows the caller holds (embed / run_stage / exit_logits / propagate_kv over `resid`), which the
// tests use to compare the engine with the full-sequence forward.
//
//   stage s of a row = unrolled positions s*B .. s*B + B - 1 (with cycle sharing, loop s + 1)
//   per layer j:  the tied projection x W_b^T runs once over all rows; norms, biases and LoRA
//                 run per group of rows at the same stage (each group its position's weights);
//                 keys and values go to the cache at (s*B + j, slot, pos); attention reads the
//                 row's own slot, positions 0..pos.
//
// Prefill runs a prompt's tokens as rows of one slot through every stage; decoding runs one
// row per sequence. Exits read the shared final norm and head (plus an exit's head adapter).
// Tokens that exit after stage e leave positions (e+1)*B.. of their KV empty: propagate_kv
// fills them from the exited state through only the k and v projections of each skipped
// position (its attention norm, LoRA and bias included), copy_kv copies the last computed
// loop's entries of the same block layer.
//
// Memory (cache and scratch for max_rows rows) is planned at construction: calls allocate
// nothing (reserve_states allocates the state pool, once per size).
#pragma once

#include <cstdint>
#include <vector>

#include "inference/engine.h"
#include "inference/kv_cache.h"
#include "inference/weights.h"
#include "ops/rope.h"

namespace rrt::inference {

class CpuEngine final : public Engine {
 public:
  CpuEngine(ModelWeights weights, const EngineCapacity& capacity);

  const ModelSpec& spec() const override { return w_.spec; }
  const EngineCapacity& capacity() const override { return cap_; }
  const char* device() const override { return "cpu"; }
  KvCache& cache() { return cache_; }
  const KvCache& cache() const { return cache_; }

  // resid[i] = embedding of tokens[i] (times the family's scale). resid: [n, D].
  void embed(const int32_t* tokens, int64_t n, float* resid) const;
  // Runs each row's stage over resid [n, D] in place. Rows at the same stage must be
  // contiguous; rows of one slot must not share a position.
  void run_stage(const StageRow* rows, int64_t n, float* resid);
  // logits [n, V] of exit `loop` (1..K) for residual rows resid [n, D].
  void exit_logits(int64_t loop, const float* resid, int64_t n, float* logits);
  // The same with each row's own exit loop (rows of one loop contiguous): the final norm and
  // the head are shared by every exit, so one head GEMM serves rows at every depth, and only
  // the exits' head adapters run per group.
  void exit_logits(const int32_t* loops, const float* resid, int64_t n, float* logits);
  // rows[i].stage: the last stage computed for the token; resid[i] its state after it. Rows
  // sorted by stage, ascending. Writes the KV of every later stage.
  void propagate_kv(const StageRow* rows, int64_t n, const float* resid);
  void copy_kv(const StageRow& row) override;

  // The state-based interface (engine.h): gathers the states' rows, runs the calls above,
  // scatters them back.
  using Engine::propagate_kv;
  using Engine::run_stage;
  void reserve_states(int64_t n) override;
  void embed_states(const int32_t* tokens, const int32_t* states, int64_t n) override;
  void run_stage(const StageRow* rows, const int32_t* states, int64_t n) override;
  void exit_heads(const int32_t* loops, const int32_t* states, int64_t n,
                  bool host_logits) override;
  const int32_t* head_argmax() const override { return head_argmax_.data(); }
  const double* head_max_probability() const override { return head_max_prob_.data(); }
  const float* head_logits() const override { return head_logits_.data(); }
  void propagate_kv(const StageRow* rows, const int32_t* states, int64_t n) override;
  void synchronize() override {}

 private:
  void layer(int64_t j, const StageRow* rows, int64_t n, float* x);
  void project(Proj p, const float* in, int64_t in_dim, float* out, int64_t out_dim);
  void norm(bool attn, const float* x, float* y);
  void rope_rows(float* x, const StageRow* rows, int64_t n, int64_t heads) const;
  void store_kv(const StageRow* rows, int64_t n);
  void attend(const StageRow* rows, int64_t n);
  void head(const float* resid, int64_t n, float* logits);
  void head_adapter(int64_t loop, int64_t row0, int64_t rows, float* logits);

  ModelWeights w_;
  EngineCapacity cap_;
  ops::RopeTable rope_;
  KvCache cache_;
  std::vector<StageGroup> groups_;
  // Scratch for max_rows rows.
  std::vector<float> xn_, q_, k_, v_, att_, mid_, gate_, up_, act_, out_, lora_u_, rstd_, mean_;
  std::vector<float> head_h_, head_u_, scores_;
  // The state pool [states, D], the rows of one call gathered, the last exit_heads' results.
  std::vector<float> states_, gathered_, head_logits_;
  std::vector<int32_t> head_argmax_;
  std::vector<double> head_max_prob_;
  float* state_row(int32_t state);
  void gather(const int32_t* states, int64_t n);
  void scatter(const int32_t* states, int64_t n);
};

}  // namespace rrt::inference
