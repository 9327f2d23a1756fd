// Chunked LM head + cross-entropy on the GPU against ops::lm_head_cross_entropy<float> on the
// same bf16-rounded h and W: the mean loss and the count, dh (bf16, added onto its old value) and
// dW (fp32, added onto its old value), over chunks that do not divide M, ignored rows, a vocab
// that is not a multiple of the block size, evaluation without gradients, all rows ignored, and a
// bad target (an rrt::Error before any gradient is touched).
// The cases are the shared op-test table's (tests/ops/op_cases.h), which the CPU op test runs too.
// Tolerances (relative L2 against the CPU; cross_entropy_tol in the table):
//   kLoss     = 1e-4 on the mean loss: fp32 logits of identical inputs, fp32 exp/log
//   kGradient = 1e-2 on dh and dW: dlogits are stored in bf16 before the two gradient GEMMs
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "ops/cross_entropy.h"
#include "ops/cuda/cross_entropy.h"
#include "tests/gpu/gpu_test.h"
#include "tests/ops/op_cases.h"

namespace rrt::ops::cuda {
namespace {

using rrt::testing::DeviceBuffer;
using rrt::testing::download;
using rrt::testing::download_f32;
using rrt::testing::relative_l2;
using rrt::testing::round_bf16;
using rrt::testing::to_bf16;
using rrt::testing::upload;

namespace cases = rrt::testing::op_cases;
constexpr double kLoss = cases::cross_entropy_tol::kCudaLoss.rel;
constexpr double kGradient = cases::cross_entropy_tol::kCudaGradient.rel;

std::vector<float> random_values(size_t n, uint32_t seed, float scale) {
  return rrt::testing::random_uniform(n, seed, scale);
}
float rms(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += double(x) * x;
  return v.empty() ? 0.f : static_cast<float>(std::sqrt(s / v.size()) + 1e-9);
}

constexpr int32_t kIgnore = -100;

class CrossEntropyGpu : public ::testing::TestWithParam<cases::CrossEntropyCase> {};
INSTANTIATE_TEST_SUITE_P(Table, CrossEntropyGpu, ::testing::ValuesIn(cases::cross_entropy_cases()),
                         cases::kCaseName);

TEST_P(CrossEntropyGpu, LossAndGradientsMatchTheCpu) {
  RRT_REQUIRE_GPU();
  GemmContext ctx;
  uint32_t seed = 1;
  const cases::CrossEntropyCase& c = GetParam();
  const float weight = static_cast<float>(c.weight);
  const int32_t ignore = c.ignore_index;
  {
    // Scales that give a spread-out softmax: logits of order 1.
    const auto h = round_bf16(random_values(c.M * c.D, seed++, 1.f));
    const auto W = round_bf16(random_values(c.V * c.D, seed++, 2.f / std::sqrt(float(c.D))));
    const auto& targets = c.targets;

    // CPU: the update alone (to size the accumulators' starting values), then the expected sums.
    std::vector<float> cpu_ws(ops::lm_head_workspace_elems(c.V, c.chunk));
    std::vector<float> gh(h.size(), 0.f), gW(W.size(), 0.f);
    const auto ref = ops::lm_head_cross_entropy<float>(h.data(), W.data(), targets.data(),
                                                       gh.data(), gW.data(), c.M, c.D, c.V, ignore,
                                                       weight, cpu_ws.data(), c.chunk, c.softcap);
    const auto dh0 = round_bf16(random_values(h.size(), seed++, rms(gh)));
    const auto dW0 = random_values(W.size(), seed++, rms(gW));
    std::vector<float> eh = dh0, eW = dW0;
    for (size_t i = 0; i < eh.size(); ++i) eh[i] += gh[i];
    for (size_t i = 0; i < eW.size(); ++i) eW[i] += gW[i];

    DeviceBuffer<bf16> d_h(h.size()), d_W(W.size()), d_dh(h.size());
    DeviceBuffer<float> d_dW(W.size());
    DeviceBuffer<int32_t> d_t(targets.size());
    upload(d_h, to_bf16(h));
    upload(d_W, to_bf16(W));
    upload(d_dh, to_bf16(dh0));
    upload(d_dW, dW0);
    upload(d_t, targets);
    const size_t ws_bytes = lm_head_workspace_bytes(c.V, c.chunk);
    DeviceBuffer<char> ws(ws_bytes);
    rrt::testing::poison(ws);  // nothing may depend on the workspace's old contents

    const auto got =
        lm_head_cross_entropy(ctx, d_h.get(), d_W.get(), d_t.get(), d_dh.get(), d_dW.get(), c.M,
                              c.D, c.V, ignore, weight, ws.get(), ws_bytes, c.chunk, c.softcap);
    EXPECT_EQ(got.counted, ref.counted);
    EXPECT_NEAR(got.mean_loss, ref.mean_loss, kLoss * std::abs(ref.mean_loss));
    EXPECT_LE(relative_l2(download_f32(d_dh), eh), kGradient);
    EXPECT_LE(relative_l2(download(d_dW), eW), kGradient);

    // Evaluation: same loss, no gradient touched.
    const auto eval =
        lm_head_cross_entropy(ctx, d_h.get(), d_W.get(), d_t.get(), nullptr, nullptr, c.M, c.D, c.V,
                              ignore, weight, ws.get(), ws_bytes, c.chunk, c.softcap);
    EXPECT_EQ(eval.counted, ref.counted);
    EXPECT_NEAR(eval.mean_loss, ref.mean_loss, kLoss * std::abs(ref.mean_loss));
  }
}

TEST(CrossEntropyGpuEdge, AllIgnoredRowsCountZeroAndLeaveGradientsAlone) {
  RRT_REQUIRE_GPU();
  GemmContext ctx;
  const int64_t M = 4, D = 8, V = 10, chunk = 3;
  const auto h = round_bf16(random_values(M * D, 11, 1.f));
  const auto W = round_bf16(random_values(V * D, 12, 1.f));
  const std::vector<float> dh0 = round_bf16(random_values(M * D, 13, 1.f));
  const std::vector<float> dW0 = random_values(V * D, 14, 1.f);
  DeviceBuffer<bf16> d_h(h.size()), d_W(W.size()), d_dh(h.size());
  DeviceBuffer<float> d_dW(W.size());
  DeviceBuffer<int32_t> d_t(M);
  upload(d_h, to_bf16(h));
  upload(d_W, to_bf16(W));
  upload(d_dh, to_bf16(dh0));
  upload(d_dW, dW0);
  upload(d_t, std::vector<int32_t>(M, kIgnore));
  const size_t ws_bytes = lm_head_workspace_bytes(V, chunk);
  DeviceBuffer<char> ws(ws_bytes);
  const auto got =
      lm_head_cross_entropy(ctx, d_h.get(), d_W.get(), d_t.get(), d_dh.get(), d_dW.get(), M, D, V,
                            kIgnore, 1.f, ws.get(), ws_bytes, chunk);
  EXPECT_EQ(got.counted, 0);
  EXPECT_EQ(got.mean_loss, 0.0);
  EXPECT_EQ(download_f32(d_dh), dh0);
  EXPECT_EQ(download(d_dW), dW0);
}

TEST(CrossEntropyGpuEdge, BadTargetThrowsBeforeTouchingGradients) {
  RRT_REQUIRE_GPU();
  GemmContext ctx;
  const int64_t M = 5, D = 8, V = 10, chunk = 2;
  DeviceBuffer<bf16> d_h(M * D), d_W(V * D), d_dh(M * D);
  DeviceBuffer<float> d_dW(V * D);
  upload(d_h, to_bf16(random_values(M * D, 21, 1.f)));
  upload(d_W, to_bf16(random_values(V * D, 22, 1.f)));
  const auto dh0 = round_bf16(random_values(M * D, 23, 1.f));
  upload(d_dh, to_bf16(dh0));
  DeviceBuffer<int32_t> d_t(M);
  upload(d_t, std::vector<int32_t>{1, kIgnore, 3, 10, -7});  // row 3 is the first bad one
  const size_t ws_bytes = lm_head_workspace_bytes(V, chunk);
  DeviceBuffer<char> ws(ws_bytes);
  try {
    lm_head_cross_entropy(ctx, d_h.get(), d_W.get(), d_t.get(), d_dh.get(), d_dW.get(), M, D, V,
                          kIgnore, 1.f, ws.get(), ws_bytes, chunk);
    FAIL() << "expected rrt::Error";
  } catch (const rrt::Error& e) {
    EXPECT_NE(std::string(e.what()).find("target 10 at row 3"), std::string::npos) << e.what();
  }
  EXPECT_EQ(download_f32(d_dh), dh0);
  // A workspace that is too small is refused up front.
  EXPECT_THROW(lm_head_cross_entropy(ctx, d_h.get(), d_W.get(), d_t.get(), nullptr, nullptr, M, D,
                                     V, kIgnore, 1.f, ws.get(), ws_bytes - 1, chunk),
               rrt::Error);
}

}  // namespace
}  // namespace rrt::ops::cuda
