// The CPU engine: the serving engine (inference/stage_engine.h) on the CPU fp32 backend
// (OpenBLAS GEMMs and OpenMP attention), with its KV cache in a KvCache the tests can read.
// Besides the state-based calls the schedulers use, it offers the same operations over residual
// rows the caller holds (embed / run_stage / exit_logits / propagate_kv over `resid`), which the
// tests use to compare the engine with the full-sequence forward.
#pragma once

#include <cstdint>
#include <vector>

#include "inference/kv_cache.h"
#include "inference/stage_engine.h"
#include "inference/weights.h"
#include "ops/cpu/backend.h"

namespace rrt::inference {

// Constructed before the engine, so that the engine can be handed its cache.
struct CpuEngineCache {
  KvCache cache_;
};

class CpuEngine final : private CpuEngineCache, public StageEngine<CpuBackend> {
 public:
  CpuEngine(const ModelWeights& weights, const EngineCapacity& capacity);

  KvCache& cache() { return cache_; }
  const KvCache& cache() const { return cache_; }

  // resid[i] = embedding of tokens[i] (times the family's scale). resid: [n, D].
  void embed(const int32_t* tokens, int64_t n, float* resid);
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

  using StageEngine<CpuBackend>::propagate_kv;
  using StageEngine<CpuBackend>::run_stage;

 private:
  void load_rows(const float* resid, int64_t n);
  std::vector<int32_t> loops_;  // exit_logits(loop, ...)'s loop per row
};

}  // namespace rrt::inference
