// Chunked LM head + cross-entropy: the loss against a naive full log-softmax, gradients for h and
// W by finite differences of mean_loss (ignored targets, chunks that do not divide M), chunk-size
// invariance, the gradient weight, and all-ignored batches.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "ops/cross_entropy.h"
#include "tests/ops/gradcheck.h"
#include "tests/ops/op_cases.h"

namespace rrt::ops {
namespace {

using testing::expect_near_all;
using testing::random_vector;

namespace cases = testing::op_cases;
namespace tol = cases::cross_entropy_tol;
using CeCase = cases::CrossEntropyCase;

std::vector<CeCase> cases_list() { return cases::cross_entropy_cases(); }
const CeCase& named(const std::string& name) {
  static const std::vector<CeCase> all = cases_list();
  return cases::find_case(all, name);
}

// The shared table (tests/ops/op_cases.h): every case runs on every backend.
class CrossEntropy : public ::testing::TestWithParam<CeCase> {};
INSTANTIATE_TEST_SUITE_P(Table, CrossEntropy, ::testing::ValuesIn(cases_list()), cases::kCaseName);

std::string describe(const CeCase& c) { return c.name; }

// Mean over non-ignored rows of lse(h_i W^T) - (h_i W^T)[target], in long double.
double naive_mean_loss(const std::vector<double>& h, const std::vector<double>& W, const CeCase& c,
                       int64_t* counted) {
  long double total = 0;
  *counted = 0;
  std::vector<long double> logits(c.V);
  for (int64_t i = 0; i < c.M; ++i) {
    if (c.targets[i] == c.ignore_index) continue;
    ++*counted;
    for (int64_t v = 0; v < c.V; ++v) {
      logits[v] = 0;
      for (int64_t d = 0; d < c.D; ++d)
        logits[v] += static_cast<long double>(h[i * c.D + d]) * W[v * c.D + d];
      if (c.softcap > 0) logits[v] = c.softcap * std::tanh(logits[v] / c.softcap);
    }
    const long double m = *std::max_element(logits.begin(), logits.end());
    long double sum = 0;
    for (long double l : logits) sum += std::exp(l - m);
    total += m + std::log(sum) - logits[c.targets[i]];
  }
  return *counted ? static_cast<double>(total / *counted) : 0.0;
}

// Runs the op in double; dh/dW may be null.
CrossEntropyResult run_ce(const std::vector<double>& h, const std::vector<double>& W,
                          const CeCase& c, double* dh, double* dW, double weight = 1.0) {
  std::vector<double> workspace(lm_head_workspace_elems(c.V, c.chunk));
  return lm_head_cross_entropy(h.data(), W.data(), c.targets.data(), dh, dW, c.M, c.D, c.V,
                               c.ignore_index, weight, workspace.data(), c.chunk, c.softcap);
}

TEST_P(CrossEntropy, LossMatchesNaiveLogSoftmax) {
  const CeCase& c = GetParam();
  {
    const auto h = random_vector(c.M * c.D, 1), W = random_vector(c.V * c.D, 2, 0.7);
    int64_t counted = 0;
    const double expected = naive_mean_loss(h, W, c, &counted);
    const CrossEntropyResult eval = run_ce(h, W, c, nullptr, nullptr);
    EXPECT_EQ(eval.counted, counted);
    EXPECT_NEAR(eval.mean_loss, expected, tol::kCpuF64.rel * std::abs(expected));
    std::vector<double> dh(h.size(), 0.0), dW(W.size(), 0.0);
    const CrossEntropyResult train = run_ce(h, W, c, dh.data(), dW.data());
    EXPECT_EQ(train.counted, counted);
    EXPECT_NEAR(train.mean_loss, expected, tol::kCpuF64.rel * std::abs(expected));

    std::vector<float> workspace(lm_head_workspace_elems(c.V, c.chunk));
    const auto hf = testing::to_float(h), Wf = testing::to_float(W);
    const CrossEntropyResult in_float =
        lm_head_cross_entropy(hf.data(), Wf.data(), c.targets.data(), static_cast<float*>(nullptr),
                              static_cast<float*>(nullptr), c.M, c.D, c.V, c.ignore_index, 1.0f,
                              workspace.data(), c.chunk, c.softcap);
    EXPECT_NEAR(in_float.mean_loss, expected, tol::kCpuF32.rel * std::abs(expected));
  }
}

TEST(CrossEntropyEdge, UniformLogitsGiveLogV) {
  const CeCase c{"uniform", 4, 3, 50, 3, -100, {0, 49, -100, 7}};
  const std::vector<double> h(c.M * c.D, 0.0), W = random_vector(c.V * c.D, 3);
  const CrossEntropyResult r = run_ce(h, W, c, nullptr, nullptr);
  EXPECT_EQ(r.counted, 3);
  EXPECT_NEAR(r.mean_loss, std::log(50.0), 1e-14);
}

TEST_P(CrossEntropy, GradientsMatchFiniteDifferences) {
  const CeCase& c = GetParam();
  {
    auto h = random_vector(c.M * c.D, 4), W = random_vector(c.V * c.D, 5, 0.7);
    // The gradient is c.weight times that of the mean loss.
    auto loss = [&] { return c.weight * run_ce(h, W, c, nullptr, nullptr).mean_loss; };
    auto backward = [&](std::vector<std::vector<double>>& g) {
      run_ce(h, W, c, g[0].data(), g[1].data(), c.weight);
    };
    testing::GradCheckOptions opts;
    opts.max_checked = static_cast<size_t>(c.fd_samples);
    testing::check_gradients({{"h", &h}, {"W", &W}}, loss, backward, opts);
  }
}

TEST_P(CrossEntropy, IgnoredRowsGetNoGradient) {
  const CeCase& c = GetParam();
  const auto h = random_vector(c.M * c.D, 6), W = random_vector(c.V * c.D, 7);
  std::vector<double> dh(h.size(), 0.0), dW(W.size(), 0.0);
  run_ce(h, W, c, dh.data(), dW.data());
  for (int64_t i = 0; i < c.M; ++i) {
    double norm = 0;
    for (int64_t d = 0; d < c.D; ++d) norm += std::abs(dh[i * c.D + d]);
    if (c.targets[i] == c.ignore_index) {
      EXPECT_EQ(norm, 0.0) << "ignored row " << i;
    } else {
      EXPECT_GT(norm, 0.0) << "counted row " << i;
    }
  }
}

TEST(CrossEntropyEdge, ResultsDoNotDependOnChunkSize) {
  const CeCase& first = named("chunk3_not_dividing");
  const auto h = random_vector(10 * 7, 8), W = random_vector(13 * 7, 9);
  std::vector<double> ref_dh(h.size(), 0.0), ref_dW(W.size(), 0.0);
  const double ref_loss = run_ce(h, W, first, ref_dh.data(), ref_dW.data()).mean_loss;
  // The M = 10 cases, chunks 1, 4, 10, 16.
  for (const char* name : {"chunk1", "chunk4_last_of_2", "chunk10_single", "chunk16_above_M"}) {
    const CeCase& c = named(name);
    SCOPED_TRACE(describe(c));
    std::vector<double> dh(h.size(), 0.0), dW(W.size(), 0.0);
    EXPECT_NEAR(run_ce(h, W, c, dh.data(), dW.data()).mean_loss, ref_loss, 1e-13);
    expect_near_all("dh", dh, ref_dh, 1e-12, 1e-14);
    expect_near_all("dW", dW, ref_dW, 1e-12, 1e-14);
  }
}

TEST(CrossEntropyEdge, WeightScalesOnlyTheGradient) {
  const CeCase& c = named("chunk4_last_of_2");
  const auto h = random_vector(c.M * c.D, 10), W = random_vector(c.V * c.D, 11);
  std::vector<double> dh1(h.size(), 0.0), dW1(W.size(), 0.0);
  std::vector<double> dh4(h.size(), 0.0), dW4(W.size(), 0.0);
  const double loss1 = run_ce(h, W, c, dh1.data(), dW1.data(), 1.0).mean_loss;
  const double loss4 = run_ce(h, W, c, dh4.data(), dW4.data(), 0.25).mean_loss;
  EXPECT_DOUBLE_EQ(loss1, loss4);
  for (double& x : dh1) x *= 0.25;
  for (double& x : dW1) x *= 0.25;
  expect_near_all("dh", dh4, dh1, 1e-14, 1e-16);
  expect_near_all("dW", dW4, dW1, 1e-14, 1e-16);
}

TEST(CrossEntropyEdge, AllIgnoredRowsCountZeroAndLeaveGradientsAlone) {
  const CeCase c{"all_ignored", 5, 4, 9, 3, -100, {-100, -100, -100, -100, -100}};
  const auto h = random_vector(c.M * c.D, 12), W = random_vector(c.V * c.D, 13);
  std::vector<double> dh(h.size(), 2.0), dW(W.size(), -3.0);
  const CrossEntropyResult r = run_ce(h, W, c, dh.data(), dW.data());
  EXPECT_EQ(r.counted, 0);
  EXPECT_EQ(r.mean_loss, 0.0);
  EXPECT_TRUE(std::isfinite(r.mean_loss));
  EXPECT_EQ(dh, std::vector<double>(h.size(), 2.0));
  EXPECT_EQ(dW, std::vector<double>(W.size(), -3.0));
}

TEST(CrossEntropyEdge, TargetOutsideVocabularyThrows) {
  for (int32_t bad : {13, 99, -2}) {
    CeCase c = named("chunk3_not_dividing");
    c.targets[4] = bad;
    const auto h = random_vector(c.M * c.D, 14), W = random_vector(c.V * c.D, 15);
    try {
      run_ce(h, W, c, nullptr, nullptr);
      ADD_FAILURE() << "target " << bad << " did not throw";
    } catch (const rrt::Error& e) {
      EXPECT_EQ(e.where(), "cross_entropy");
      EXPECT_NE(std::string(e.what()).find("row 4"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace rrt::ops
