// What the schedulers (inference/generate.cpp) need from an engine, whichever device runs it.
//
// An engine holds one model, a KV cache for every unrolled position (k, b) and a pool of work-item
// *states*: residual rows [D] that live where the engine computes (host memory for CpuEngine,
// device memory for the GPU engine). The schedulers name states by index, so an engine call moves
// only token ids, row descriptors and per-row head results between the scheduler and the engine,
// never a residual or (unless sampling needs them) the logits.
//
//   run_stage: the block once (B layers) over rows, each row one token of one sequence at its own
//   stage (loop) and position, with that stage's LoRA, norms and biases (docs/method.md §6.1: rows
//   at different loop depths batched together); keys and values go to the cache at
//   (s*B + j, slot, pos); attention reads the row's own slot, positions 0..pos.
//   exit_heads: the shared final norm and head (plus each exit's head adapter) over states, and
//   per row the argmax and the max softmax probability (the confidence exit's score).
//   run_stage_saturation: run_stage, and per row the cosine similarity of its state before and
//   after the stage, both through the shared final norm (the saturation exit's score), and the
//   normed state after it (the classifier exit's features, inference/exit_classifier.h): no head.
//   propagate_kv / copy_kv: the KV of the positions a token skipped by exiting early.
//
// Work is queued in call order; exit_heads returns with its results on the host. synchronize()
// waits for everything queued (the schedulers' per-call timings call it: a GPU engine queues
// work asynchronously).
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"
#include "ops/backend.h"

namespace rrt::inference {

struct EngineCapacity {
  int64_t slots = 1;      // sequences with a KV cache at once
  int64_t max_seq = 0;    // tokens per sequence (prompt + output); 0: the model's max_seq_len
  int64_t max_rows = 64;  // rows per engine call (decode batch, prefill chunk)
  int threads = 0;        // OpenMP threads for attention (CPU); 0: omp_get_max_threads()
};

// What the schedulers need to serve up to max_batch sequences of up to max_seq tokens: a slot per
// sequence, and calls of at least 64 rows so that prefill chunks keep the GEMMs efficient even
// when the decode batch is small.
inline EngineCapacity capacity_for_batch(int64_t max_batch, int64_t max_seq) {
  return {.slots = max_batch, .max_seq = max_seq, .max_rows = max_batch > 64 ? max_batch : 64};
}

// One row of an engine call: a token of the sequence in `slot` at position `pos`, and the
// stage the call runs for it (propagate_kv / copy_kv: the last stage computed).
struct StageRow {
  int32_t slot = 0;
  int32_t pos = 0;
  int32_t stage = 0;
};

// Rows [begin, end) of a call that run unrolled position `position` (one stage, one block layer).
using StageGroup = RowGroup;

class Engine {
 public:
  virtual ~Engine() = default;

  virtual const ModelSpec& spec() const = 0;
  virtual const EngineCapacity& capacity() const = 0;
  // "cpu" or "cuda".
  virtual const char* device() const = 0;
  int64_t stages() const { return spec().recursion.loops; }
  int64_t block_layers() const { return spec().recursion.block_layers; }
  int64_t d_model() const { return spec().model.d_model; }
  int64_t vocab() const { return spec().model.vocab; }
  // Loop ends are exits only with cycle sharing (sequence sharing: the last stage alone).
  bool exits_before_last() const {
    return spec().recursion.sharing == Sharing::cycle && stages() > 1;
  }

  // Makes states 0..n-1 available (allocates when more than before: call before a run, not per
  // call). Their contents are undefined until embed_states writes them.
  virtual void reserve_states(int64_t n) = 0;
  // state[states[i]] = embedding of tokens[i] (times the family's scale).
  virtual void embed_states(const int32_t* tokens, const int32_t* states, int64_t n) = 0;
  // Runs each row's stage over state[states[i]] in place. Rows at the same stage must be
  // contiguous; rows of one slot must not share a position; n <= max_rows.
  virtual void run_stage(const StageRow* rows, const int32_t* states, int64_t n) = 0;
  // run_stage, and stage_similarity()[i] (n values, host): the cosine similarity of row i's state
  // before the stage (after the previous loop; loop 1: the embedding) and after it, each through
  // the shared final norm (the head's input, without an exit's head adapter), in [-1, 1]. Two
  // norms and a dot product per row beside the stage: the saturation exit's score without the
  // vocabulary-sized head. Waits for the results.
  // stage_normed_states() ([n, D] floats, host): each row's state after the stage through the
  // shared final norm, the classifier exit's features (on a GPU engine: the download the cosine
  // needs anyway).
  virtual void run_stage_saturation(const StageRow* rows, const int32_t* states, int64_t n) = 0;
  virtual const double* stage_similarity() const = 0;
  virtual const float* stage_normed_states() const = 0;
  // The exit of loops[i] (1..K; rows of one loop contiguous) over state[states[i]]: one head
  // GEMM for every row (the final norm and head are shared by the exits), each exit's head
  // adapter per group. Fills head_argmax() and head_max_probability() (n values); with
  // host_logits also head_logits() ([n, V] on the host). Waits for the results.
  virtual void exit_heads(const int32_t* loops, const int32_t* states, int64_t n,
                          bool host_logits) = 0;
  virtual const int32_t* head_argmax() const = 0;
  virtual const double* head_max_probability() const = 0;
  virtual const float* head_logits() const = 0;
  // rows[i].stage: the last stage computed for the token, state[states[i]] its state after it.
  // Rows sorted by stage, ascending. Writes the KV of every later stage (KV propagation).
  virtual void propagate_kv(const StageRow* rows, const int32_t* states, int64_t n) = 0;
  // Copies the KV of row.stage's positions to every later stage's (the same block layer).
  virtual void copy_kv(const StageRow& row) = 0;
  virtual void synchronize() = 0;

 protected:
  // The call's rows as groups at the same stage, for block layer j: each group runs position
  // stage * B + j. Throws for a stage outside 0..K-1 or rows of one stage that are not contiguous.
  void group_by_stage(const StageRow* rows, int64_t n, int64_t j,
                      std::vector<StageGroup>& groups) const;
};

}  // namespace rrt::inference
