// The model rrt eval scores (evaluation/exit_model.h): the one model code's exit logits of rows of
// a batch (RecursiveCore::exit_logits, what every backend computes for evaluation) against the
// host model's exit_logits on the same residual rows gathered by hand, for every loop end with
// and without head adapters; its refusals; and the device factory.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "config/config_io.h"
#include "evaluation/exit_model.h"
#include "model/cpu_bf16_model.h"
#include "model/cuda/device_model.h"
#include "model/recursive_model.h"
#include "tests/error_helpers.h"
#include "tests/ops/cpu_bf16/bf16_test.h"

namespace rrt {
namespace {

ModelSpec spec_with_adapters() {
  ModelSpec s;
  s.model = {
      .vocab = 53, .d_model = 24, .n_heads = 4, .n_kv_heads = 2, .ffn = 40, .max_seq_len = 32};
  s.recursion = {.block_layers = 2, .loops = 3};
  s.lora = {.rank_attention = 3, .rank_mlp = 2};
  s.exit_head = {.lora_rank = 2, .loops = {1, 2}};
  return s;
}

std::vector<int32_t> tokens_for(int64_t M, int64_t V) {
  std::vector<int32_t> t(static_cast<size_t>(M));
  for (int64_t i = 0; i < M; ++i)
    t[static_cast<size_t>(i)] = static_cast<int32_t>((i * 29 + 3) % V);
  return t;
}

// Tolerance 1e-5 of the largest logit: the same fp32 ops on the same rows, but the head's
// products may run over other block shapes (n rows at once here, the gathered rows there).
TEST(ExitModel, RowsOfTheBatchGiveTheHostModelsExitLogits) {
  const ModelSpec spec = spec_with_adapters();
  const int64_t N = 2, T = 11, D = spec.model.d_model, V = spec.model.vocab;
  RecursiveModel model(spec, ModelCapacity{.max_batch = N, .max_seq = T, .head_chunk = 8});
  model.params().init(InitConfig{.seed = 5, .std = 0.3, .lora_b_zero = false});
  const std::vector<int32_t> tokens = tokens_for(N * T, V);
  auto view = exit_model_of(model);
  EXPECT_EQ(view->device(), "cpu");
  EXPECT_EQ(view->chunk(), 8);
  view->forward_loop_ends(tokens.data(), N, T);
  const std::vector<int32_t> rows = {21, 0, 12, 11, 3};
  const int64_t n = static_cast<int64_t>(rows.size());
  std::vector<double> spread;  // exit k's logits differ from exit K's: the adapters are used
  std::vector<float> last;
  for (int64_t k = 3; k >= 1; --k) {
    std::vector<float> resid(static_cast<size_t>(n * D)), h(resid.size());
    for (int64_t r = 0; r < n; ++r)
      std::copy_n(model.loop_end_residual(k) + rows[r] * D, D, resid.begin() + r * D);
    std::vector<float> want(static_cast<size_t>(n * V)), have(want.size(), NAN);
    model.exit_logits(k, resid.data(), n, h.data(), want.data());
    view->exit_logits(k, rows.data(), n, have.data());
    float scale = 0;
    for (float w : want) scale = std::max(scale, std::abs(w));
    ASSERT_GT(scale, 0.f);
    for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(have[i], want[i], 1e-5 * scale) << k;
    if (!last.empty()) {
      double d = 0;
      for (size_t i = 0; i < want.size(); ++i) d = std::max<double>(d, std::abs(want[i] - last[i]));
      spread.push_back(d);
    }
    last = want;
  }
  for (double d : spread) EXPECT_GT(d, 1e-3);
}

TEST(ExitModel, RefusesRowsOutsideTheBatchAndMoreThanAChunk) {
  const ModelSpec spec = spec_with_adapters();
  RecursiveModel model(spec, ModelCapacity{.max_batch = 1, .max_seq = 8, .head_chunk = 4});
  auto view = exit_model_of(model);
  std::vector<float> out(static_cast<size_t>(8 * spec.model.vocab));
  const std::vector<int32_t> rows = {0, 1, 2, 3, 4};
  EXPECT_TRUE(testing::contains(
      testing::error_message([&] { view->exit_logits(1, rows.data(), 1, out.data()); }),
      "forward first"));
  const std::vector<int32_t> tokens = tokens_for(6, spec.model.vocab);
  view->forward_loop_ends(tokens.data(), 1, 6);
  const std::vector<int32_t> outside = {6};
  EXPECT_TRUE(testing::contains(
      testing::error_message([&] { view->exit_logits(1, outside.data(), 1, out.data()); }),
      "outside the batch's 6 rows"));
  EXPECT_TRUE(testing::contains(
      testing::error_message([&] { view->exit_logits(2, rows.data(), 5, out.data()); }),
      "exceed the chunk 4"));
  EXPECT_TRUE(testing::contains(
      testing::error_message([&] { view->exit_logits(4, rows.data(), 1, out.data()); }),
      "outside 1..3"));
}

TEST(ExitModel, TheDeviceIsTheRunsAndAnUnknownOneIsRefused) {
  const ModelSpec spec = spec_with_adapters();
  EXPECT_TRUE(testing::contains(
      testing::error_message([&] { load_exit_model("unused.h5", spec, 1, 8, 4, "tpu"); }),
      "train.device"));
  if (device_model_compiled()) GTEST_SKIP() << "a CUDA build: cuda is a device here";
  const std::string msg =
      testing::error_message([&] { load_exit_model("unused.h5", spec, 1, 8, 4, "cuda"); });
  EXPECT_TRUE(testing::contains(msg, "train.device")) << msg;
  EXPECT_TRUE(testing::contains(msg, "train.device: cpu")) << msg;
}

// `rrt eval ... train.precision=bf16`: the checkpoint's weights (a set without gradients: nothing
// trains) in a forward-only bf16 model, whose exit logits are the fp32 host model's within the
// bf16 model tests' logits tolerance (tests/model/test_core_bf16.cpp: 3e-2 relative L2) for
// every exit.
TEST(ExitModel, Bf16OnTheCpuLoadsACheckpointAndGivesTheFp32ExitLogits) {
  RRT_REQUIRE_AVX512_BF16();
  std::string why;
  if (!cpu_bf16_supported(&why)) GTEST_SKIP() << why;
  const ModelSpec spec = spec_with_adapters();
  const int64_t N = 2, T = 11, V = spec.model.vocab;
  RecursiveModel model(spec, ModelCapacity{.max_batch = N, .max_seq = T, .head_chunk = 8});
  model.params().init(InitConfig{.seed = 5, .std = 0.3, .lora_b_zero = false});
  // Weights that bf16 holds exactly, as tests/model/test_core_bf16.cpp: the tolerance is the
  // activations' rounding, not the weights'.
  float* v = static_cast<float*>(model.params().values_arena().base());
  const int64_t n_values =
      model.params().values_arena().total_bytes() / static_cast<int64_t>(sizeof(float));
  for (int64_t i = 0; i < n_values; ++i) v[i] = bf16::from_float(v[i]).to_float();
  const std::filesystem::path path = std::filesystem::path(::testing::TempDir()) /
                                     ("rrt_exit_model_bf16_" + std::to_string(::getpid()) + ".h5");
  RunConfig c;
  c.model = spec;
  save_checkpoint(path.string(), to_yaml(c), model.params(), nullptr, TrainState{.step = 1});
  std::unique_ptr<ExitModel> bf16;
  ASSERT_NO_THROW(bf16 = load_exit_model(path.string(), spec, N, T, 8, "cpu", "bf16"));
  std::filesystem::remove(path);
  EXPECT_EQ(bf16->device(), "cpu-bf16");
  auto fp32 = exit_model_of(model);
  const std::vector<int32_t> tokens = tokens_for(N * T, V);
  bf16->forward_loop_ends(tokens.data(), N, T);
  fp32->forward_loop_ends(tokens.data(), N, T);
  const std::vector<int32_t> rows = {21, 0, 12, 11, 3};
  const int64_t n = static_cast<int64_t>(rows.size());
  for (int64_t k = 1; k <= 3; ++k) {
    std::vector<float> want(static_cast<size_t>(n * V)), have(want.size(), NAN);
    fp32->exit_logits(k, rows.data(), n, want.data());
    bf16->exit_logits(k, rows.data(), n, have.data());
    EXPECT_LT(testing::relative_l2(have, want), 3e-2) << "exit " << k;
  }
}

}  // namespace
}  // namespace rrt
