// The engine's calls allocate nothing after construction: run_stage over rows at mixed stages,
// exit heads, KV propagation and copies. Its own binary: it replaces malloc and operator new for
// the whole process (tests/allocation_counter.h, as for the training step's test) and
// counts every allocation while the window is open; OpenBLAS's own (a job descriptor per
// multi-threaded GEMM, library internals) are told apart by their return address and reported.
#include <gtest/gtest.h>

#include <vector>

#include "tests/allocation_counter.h"
#include "tests/inference/tiny_models.h"

namespace rrt {
namespace {

using inference::StageRow;

TEST(EngineNoAllocation, CallsAllocateNothingAfterConstruction) {
  dl_iterate_phdr(find_blas, nullptr);
  const ModelSpec spec = testing::tiny_spec(Family::llama, false, 3);
  testing::TinyModel tm = testing::make_tiny(spec, 3, 8);
  inference::CpuEngine& e = *tm.engine;
  const int64_t D = spec.model.d_model, V = spec.model.vocab;
  std::vector<float> resid(static_cast<size_t>(8 * D)), logits(static_cast<size_t>(8 * V));
  std::vector<int32_t> tokens = {1, 2, 3, 4, 5, 6, 7, 8};
  auto step = [&](int32_t pos) {
    // Prefill-like rows of slot 0, then three slots at three different stages.
    e.embed(tokens.data(), 4, resid.data());
    StageRow prompt[4];
    for (int32_t t = 0; t < 4; ++t) prompt[t] = {0, pos + t, 0};
    e.run_stage(prompt, 4, resid.data());
    const StageRow mixed[3] = {{0, pos + 4, 2}, {1, pos, 1}, {2, pos, 0}};
    e.run_stage(mixed, 3, resid.data());
    e.exit_logits(1, resid.data(), 3, logits.data());
    e.exit_logits(3, resid.data(), 3, logits.data());
    const StageRow exited[2] = {{1, pos, 0}, {2, pos, 1}};
    e.propagate_kv(exited, 2, resid.data());
    e.copy_kv(StageRow{0, pos, 0});
  };
  step(0);  // warm-up: OpenMP's thread pool and OpenBLAS's buffers
  g_counting = true;
  for (int32_t pos = 5; pos < 30; pos += 5) step(pos);
  g_counting = false;
  std::printf("engine calls: %ld heap allocations, %ld inside OpenBLAS\n", g_heap_allocs.load(),
              g_blas_allocs.load());
  EXPECT_EQ(g_heap_allocs.load(), 0);
  RecordProperty("openblas_allocations", std::to_string(g_blas_allocs.load()));
}

}  // namespace
}  // namespace rrt
