// A training step allocates nothing: no arena, no operator new, no malloc, in steps 2..5.
// This binary interposes every allocation function (tests/allocation_counter.h), so
// allocations by the model, the C++ runtime and OpenMP are all counted while the window is
// open; OpenBLAS's internal job descriptors are counted apart and reported.
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "core/arena.h"
#include "model/optimizer.h"
#include "model/recursive_core.h"
#include "model/recursive_model.h"
#include "ops/cpu/backend.h"
#include "tests/allocation_counter.h"

namespace rrt {
namespace {

// Every family: the LayerNorm, bias and parallel-residual paths (NeoX) and Gemma's must not
// allocate either.
class NoAllocation : public ::testing::TestWithParam<Family> {};

TEST_P(NoAllocation, TrainingStepsTwoToFive) {
  g_heap_allocs = 0;
  ModelSpec spec;
  spec.model = {
      .vocab = 301, .d_model = 48, .n_heads = 6, .n_kv_heads = 2, .ffn = 80, .max_seq_len = 70};
  apply_family_defaults(spec.model, GetParam());
  spec.recursion = {.block_layers = 2, .loops = 3};
  spec.lora = {.rank_attention = 4, .rank_mlp = 3};
  const int64_t N = 3, T = 70;  // T > one 64-row attention block
  RecursiveModel model(spec, {.max_batch = N, .max_seq = T, .head_chunk = 64});
  model.params().init({.seed = 5, .lora_b_zero = false});
  AdamW optimizer(model.params(), {.lr = 1e-3});
  std::vector<int32_t> tokens(N * T), targets(N * T);
  for (int64_t i = 0; i < N * T; ++i) {
    tokens[i] = static_cast<int32_t>((i * 37) % 301);
    targets[i] = i % 11 == 0 ? RecursiveModel::kIgnoreIndex : static_cast<int32_t>((i * 53) % 301);
  }
  auto step = [&] {
    model.params().zero_grads();
    double loss = model.forward_backward(tokens.data(), targets.data(), N, T);
    optimizer.step();
    return loss;
  };
  dl_iterate_phdr(find_blas, nullptr);
  ASSERT_NE(g_blas_begin, 0u) << "libopenblas not found among the loaded objects";
  const double first = step();
  const int64_t arenas_before = Arena::alloc_count();
  g_counting = true;
  double last = 0;
  for (int s = 2; s <= 5; ++s) last = step();
  g_counting = false;
  EXPECT_EQ(Arena::alloc_count(), arenas_before);
  EXPECT_EQ(g_heap_allocs.load(), 0) << "heap allocations inside steps 2..5";
  EXPECT_LT(last, first);  // the steps did real work
  RecordProperty("openblas_internal_allocs", static_cast<int>(g_blas_allocs.load()));

  // The counter itself works: an allocation inside the window is seen.
  g_counting = true;
  auto* probe = new std::vector<int>(1000);
  g_counting = false;
  delete probe;
  EXPECT_GE(g_heap_allocs.load(), 1);
}

// Distillation from a forward-only teacher with three exits, self-distillation and freezing:
// the teacher's forward and the chunked exit loss allocate nothing either.
TEST(NoAllocationDistill, ExitsTeacherAndFreezing) {
  g_heap_allocs = 0;
  ModelSpec spec, teacher_spec;
  spec.model = {
      .vocab = 301, .d_model = 48, .n_heads = 6, .n_kv_heads = 2, .ffn = 80, .max_seq_len = 70};
  spec.recursion = {.block_layers = 2, .loops = 3};
  spec.lora = {.rank_attention = 4, .rank_mlp = 3};
  teacher_spec.model = {
      .vocab = 301, .d_model = 64, .n_heads = 4, .n_kv_heads = 4, .ffn = 96, .max_seq_len = 70};
  teacher_spec.recursion = {.block_layers = 4, .loops = 1};
  const int64_t N = 3, T = 70;
  RecursiveModel teacher(teacher_spec, {.max_batch = N, .max_seq = T, .forward_only = true});
  teacher.params().init({.seed = 9});
  TrainingLoss loss;
  loss.exit_loops = {1, 2, 3};
  loss.exit_weights = {0.1, 0.1, 1.0};
  loss.self_distill = true;
  loss.teacher = true;
  loss.temperature = 2.0;
  loss.train = TrainScope::lora;
  RecursiveModel model(spec, {.max_batch = N, .max_seq = T, .head_chunk = 64}, loss);
  model.params().init({.seed = 5, .lora_b_zero = false});
  model.set_teacher(&teacher);
  AdamW optimizer(model.params(), {.lr = 1e-3});
  std::vector<int32_t> tokens(N * T), targets(N * T);
  for (int64_t i = 0; i < N * T; ++i) {
    tokens[i] = static_cast<int32_t>((i * 37) % 301);
    targets[i] = i % 11 == 0 ? RecursiveModel::kIgnoreIndex : static_cast<int32_t>((i * 53) % 301);
  }
  auto step = [&] {
    model.params().zero_grads();
    double l = model.forward_backward(tokens.data(), targets.data(), N, T);
    optimizer.step();
    return l;
  };
  dl_iterate_phdr(find_blas, nullptr);
  const double first = step();
  const int64_t arenas_before = Arena::alloc_count();
  g_counting = true;
  double last = 0;
  for (int s = 2; s <= 5; ++s) last = step();
  g_counting = false;
  EXPECT_EQ(Arena::alloc_count(), arenas_before);
  EXPECT_EQ(g_heap_allocs.load(), 0) << "heap allocations inside steps 2..5";
  EXPECT_LT(last, first);
}

// The process's virtual size (VmSize of /proc/self/status), in bytes; -1 if unknown.
int64_t virtual_bytes() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmSize:", 0) == 0) return std::stoll(line.substr(7)) * 1024;
  return -1;
}

// A measure-only core (CoreCapacity::measure_only, what DeviceModel builds for the trainer's GPU
// memory check) plans exactly the blocks the real core allocates, and allocates none of them:
// a plan of over 32 GiB leaves the process's virtual size as it was.
TEST(MeasureOnlyCore, PlansTheBlocksAndAllocatesNothing) {
  ModelSpec spec;
  spec.model = {
      .vocab = 301, .d_model = 48, .n_heads = 6, .n_kv_heads = 2, .ffn = 80, .max_seq_len = 70};
  spec.recursion = {.block_layers = 2, .loops = 3};
  spec.lora = {.rank_attention = 4, .rank_mlp = 3};
  TrainingLoss exits;
  exits.exit_loops = {1, 2, 3};
  exits.exit_weights = {0.1, 0.1, 1.0};
  exits.self_distill = true;
  struct Case {
    TrainingLoss loss;
    bool forward_only;
  };
  for (const Case& c : {Case{{}, false}, Case{exits, false}, Case{{}, true}}) {
    const ModelCapacity capacity{
        .max_batch = 3, .max_seq = 70, .head_chunk = 64, .forward_only = c.forward_only};
    const RecursiveModel model(spec, capacity, c.loss);
    CpuBackend backend(1);
    const ParamRegistry registry(spec);
    CoreCapacity plan{.max_batch = 3,
                      .max_seq = 70,
                      .head_chunk = 64,
                      .forward_only = c.forward_only,
                      .recompute = {},
                      .measure_only = true};
    const RecursiveCore<CpuBackend> measured(backend, spec, registry, {}, plan, c.loss);
    EXPECT_EQ(measured.activation_bytes(), model.activation_bytes()) << c.forward_only;
    EXPECT_EQ(measured.scratch_bytes(), model.scratch_bytes()) << c.forward_only;
    EXPECT_GT(measured.activation_bytes(), 0);
  }
  spec.model.max_seq_len = 4096;
  const int64_t before = virtual_bytes();
  CpuBackend backend(1);
  const ParamRegistry registry(spec);
  const RecursiveCore<CpuBackend> huge(backend, spec, registry, {},
                                       {.max_batch = 1024,
                                        .max_seq = 4096,
                                        .head_chunk = 64,
                                        .forward_only = false,
                                        .recompute = {},
                                        .measure_only = true},
                                       {});
  const int64_t after = virtual_bytes();
  EXPECT_GT(huge.activation_bytes(), int64_t{32} << 30);
  ASSERT_GT(before, 0);
  EXPECT_LT(after - before, int64_t{1} << 30) << "the measure-only core allocated its plan";
}

INSTANTIATE_TEST_SUITE_P(Families, NoAllocation,
                         ::testing::Values(Family::llama, Family::gemma, Family::neox),
                         [](const auto& info) { return to_string(info.param); });

}  // namespace
}  // namespace rrt
