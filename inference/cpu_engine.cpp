#include "inference/cpu_engine.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "inference/stage_engine_impl.h"

namespace rrt::inference {

template class StageEngine<CpuBackend>;

namespace {
int64_t max_seq_of(const ModelWeights& w, const EngineCapacity& c) {
  return c.max_seq > 0 ? c.max_seq : w.spec.model.max_seq_len;
}
}  // namespace

CpuEngine::CpuEngine(const ModelWeights& weights, const EngineCapacity& capacity)
    : CpuEngineCache{KvCache(weights.spec.positions(), capacity.slots,
                             max_seq_of(weights, capacity), weights.spec.model.kv_dim())},
      StageEngine<CpuBackend>(
          weights, [](const float* host) { return host; }, capacity, cache_.key(0, 0, 0),
          cache_.value(0, 0, 0)),
      loops_(static_cast<size_t>(capacity.max_rows)) {}

void CpuEngine::load_rows(const float* resid, int64_t n) {
  RRT_CHECK(n <= capacity().max_rows, "Engine", n, " rows exceed the planned ",
            capacity().max_rows);
  std::memcpy(rows_buffer(), resid, static_cast<size_t>(n * d_model()) * sizeof(float));
}

void CpuEngine::embed(const int32_t* tokens, int64_t n, float* resid) {
  for (int64_t a = 0; a < n; a += capacity().max_rows) {
    const int64_t c = std::min(capacity().max_rows, n - a);
    embed_rows(tokens + a, c);
    std::memcpy(resid + a * d_model(), rows_buffer(),
                static_cast<size_t>(c * d_model()) * sizeof(float));
  }
}

void CpuEngine::run_stage(const StageRow* rows, int64_t n, float* resid) {
  if (n == 0) return;
  load_rows(resid, n);
  upload_rows(rows, nullptr, n);
  run_rows(rows, n);
  std::memcpy(resid, rows_buffer(), static_cast<size_t>(n * d_model()) * sizeof(float));
}

void CpuEngine::exit_logits(int64_t loop, const float* resid, int64_t n, float* logits) {
  RRT_CHECK(loop >= 1 && loop <= stages(), "Engine", "exit loop ", loop, " outside 1..", stages());
  if (n == 0) return;
  RRT_CHECK(n <= capacity().max_rows, "Engine", n, " rows exceed the planned ",
            capacity().max_rows);
  std::fill(loops_.begin(), loops_.begin() + n, static_cast<int32_t>(loop));
  exit_logits(loops_.data(), resid, n, logits);
}

void CpuEngine::exit_logits(const int32_t* loops, const float* resid, int64_t n, float* logits) {
  if (n == 0) return;
  load_rows(resid, n);
  head_rows(loops, n);
  std::memcpy(logits, logits_buffer(), static_cast<size_t>(n * vocab()) * sizeof(float));
}

void CpuEngine::propagate_kv(const StageRow* rows, int64_t n, const float* resid) {
  if (n == 0) return;
  load_rows(resid, n);
  upload_rows(rows, nullptr, n);
  propagate_rows(rows, n);
}

}  // namespace rrt::inference
