// The inference engine: one model, a KV cache for every unrolled position (k, b), and one
// operation that everything else is built on, run_stage: run the block once (B layers) over a
// batch of rows, each row one token of one sequence at its own stage (loop) and position, with
// that stage's LoRA (METHOD.md section 5: rows at different loop depths batched together).
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
// nothing.
#pragma once

#include <cstdint>
#include <vector>

#include "inference/kv_cache.h"
#include "inference/weights.h"
#include "ops/rope.h"

namespace rrt::inference {

struct EngineCapacity {
  int64_t slots = 1;      // sequences with a KV cache at once
  int64_t max_seq = 0;    // tokens per sequence (prompt + output); 0: the model's max_seq_len
  int64_t max_rows = 64;  // rows per engine call (decode batch, prefill chunk)
  int threads = 0;        // OpenMP threads for attention; 0: omp_get_max_threads()
};

// One row of an engine call: a token of the sequence in `slot` at position `pos`, and the
// stage the call runs for it (propagate_kv / copy_kv: the last stage computed).
struct StageRow {
  int32_t slot = 0;
  int32_t pos = 0;
  int32_t stage = 0;
};

class Engine {
 public:
  Engine(ModelWeights weights, const EngineCapacity& capacity);

  const ModelSpec& spec() const { return w_.spec; }
  int64_t stages() const { return w_.spec.recursion.loops; }
  int64_t block_layers() const { return w_.spec.recursion.block_layers; }
  int64_t d_model() const { return w_.spec.model.d_model; }
  int64_t vocab() const { return w_.spec.model.vocab; }
  const EngineCapacity& capacity() const { return cap_; }
  // Loop ends are exits only with cycle sharing (sequence sharing: the last stage alone).
  bool exits_before_last() const;
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
  void copy_kv(const StageRow& row);

 private:
  struct Group {
    int64_t begin, end, position;  // rows [begin, end) run unrolled position `position`
  };
  void layer(int64_t j, const StageRow* rows, int64_t n, float* x);
  void group_rows(const StageRow* rows, int64_t n, int64_t j);
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
  std::vector<Group> groups_;
  // Scratch for max_rows rows.
  std::vector<float> xn_, q_, k_, v_, att_, mid_, gate_, up_, act_, out_, lora_u_, rstd_, mean_;
  std::vector<float> head_h_, head_u_, scores_;
};

}  // namespace rrt::inference
