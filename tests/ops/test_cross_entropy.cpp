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

namespace rrt::ops {
namespace {

using testing::expect_near_all;
using testing::random_vector;

struct CeCase {
  int64_t M, D, V, chunk;
  int32_t ignore_index;
  std::vector<int32_t> targets;  // size M
};

std::vector<CeCase> cases() {
  const std::vector<int32_t> ten = {3, -100, 12, 0, 3, -100, 7, 7, 1, 12};
  std::vector<int32_t> long_targets(34);
  for (int64_t i = 0; i < 34; ++i) long_targets[i] = i % 5 == 2 ? -1 : (i * 37) % 300;
  return {
      {10, 7, 13, 3, -100, ten},   // chunk 3 does not divide M = 10
      {10, 7, 13, 1, -100, ten},   // one row at a time
      {10, 7, 13, 4, -100, ten},   // last chunk of 2
      {10, 7, 13, 10, -100, ten},  // a single chunk
      {10, 7, 13, 16, -100, ten},  // chunk larger than M
      {1, 5, 2, 3, -100, {1}},     // one row, two classes
      {34, 32, 300, 8, -1, long_targets},
  };
}

std::string describe(const CeCase& c) {
  return "M=" + std::to_string(c.M) + " D=" + std::to_string(c.D) + " V=" + std::to_string(c.V) +
         " chunk=" + std::to_string(c.chunk);
}

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
                               c.ignore_index, weight, workspace.data(), c.chunk);
}

TEST(CrossEntropy, LossMatchesNaiveLogSoftmax) {
  for (const CeCase& c : cases()) {
    SCOPED_TRACE(describe(c));
    const auto h = random_vector(c.M * c.D, 1), W = random_vector(c.V * c.D, 2, 0.7);
    int64_t counted = 0;
    const double expected = naive_mean_loss(h, W, c, &counted);
    const CrossEntropyResult eval = run_ce(h, W, c, nullptr, nullptr);
    EXPECT_EQ(eval.counted, counted);
    EXPECT_NEAR(eval.mean_loss, expected, 1e-12 * std::abs(expected));
    std::vector<double> dh(h.size(), 0.0), dW(W.size(), 0.0);
    const CrossEntropyResult train = run_ce(h, W, c, dh.data(), dW.data());
    EXPECT_EQ(train.counted, counted);
    EXPECT_NEAR(train.mean_loss, expected, 1e-12 * std::abs(expected));

    std::vector<float> workspace(lm_head_workspace_elems(c.V, c.chunk));
    const auto hf = testing::to_float(h), Wf = testing::to_float(W);
    const CrossEntropyResult in_float =
        lm_head_cross_entropy(hf.data(), Wf.data(), c.targets.data(), static_cast<float*>(nullptr),
                              static_cast<float*>(nullptr), c.M, c.D, c.V, c.ignore_index, 1.0f,
                              workspace.data(), c.chunk);
    EXPECT_NEAR(in_float.mean_loss, expected, 1e-5 * std::abs(expected));
  }
}

TEST(CrossEntropy, UniformLogitsGiveLogV) {
  const CeCase c{4, 3, 50, 3, -100, {0, 49, -100, 7}};
  const std::vector<double> h(c.M * c.D, 0.0), W = random_vector(c.V * c.D, 3);
  const CrossEntropyResult r = run_ce(h, W, c, nullptr, nullptr);
  EXPECT_EQ(r.counted, 3);
  EXPECT_NEAR(r.mean_loss, std::log(50.0), 1e-14);
}

TEST(CrossEntropy, GradientsMatchFiniteDifferences) {
  for (const CeCase& c : cases()) {
    SCOPED_TRACE(describe(c));
    auto h = random_vector(c.M * c.D, 4), W = random_vector(c.V * c.D, 5, 0.7);
    auto loss = [&] { return run_ce(h, W, c, nullptr, nullptr).mean_loss; };
    auto backward = [&](std::vector<std::vector<double>>& g) {
      run_ce(h, W, c, g[0].data(), g[1].data());
    };
    testing::check_gradients({{"h", &h}, {"W", &W}}, loss, backward);
  }
}

TEST(CrossEntropy, IgnoredRowsGetNoGradient) {
  const CeCase c = cases()[0];
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

TEST(CrossEntropy, ResultsDoNotDependOnChunkSize) {
  const auto all = cases();
  const auto h = random_vector(10 * 7, 8), W = random_vector(13 * 7, 9);
  std::vector<double> ref_dh(h.size(), 0.0), ref_dW(W.size(), 0.0);
  const double ref_loss = run_ce(h, W, all[0], ref_dh.data(), ref_dW.data()).mean_loss;
  for (size_t k = 1; k < 5; ++k) {  // the M = 10 cases, chunks 1, 4, 10, 16
    SCOPED_TRACE(describe(all[k]));
    std::vector<double> dh(h.size(), 0.0), dW(W.size(), 0.0);
    EXPECT_NEAR(run_ce(h, W, all[k], dh.data(), dW.data()).mean_loss, ref_loss, 1e-13);
    expect_near_all("dh", dh, ref_dh, 1e-12, 1e-14);
    expect_near_all("dW", dW, ref_dW, 1e-12, 1e-14);
  }
}

TEST(CrossEntropy, WeightScalesOnlyTheGradient) {
  const CeCase c = cases()[2];
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

TEST(CrossEntropy, AllIgnoredRowsCountZeroAndLeaveGradientsAlone) {
  const CeCase c{5, 4, 9, 3, -100, {-100, -100, -100, -100, -100}};
  const auto h = random_vector(c.M * c.D, 12), W = random_vector(c.V * c.D, 13);
  std::vector<double> dh(h.size(), 2.0), dW(W.size(), -3.0);
  const CrossEntropyResult r = run_ce(h, W, c, dh.data(), dW.data());
  EXPECT_EQ(r.counted, 0);
  EXPECT_EQ(r.mean_loss, 0.0);
  EXPECT_TRUE(std::isfinite(r.mean_loss));
  EXPECT_EQ(dh, std::vector<double>(h.size(), 2.0));
  EXPECT_EQ(dW, std::vector<double>(W.size(), -3.0));
}

TEST(CrossEntropy, TargetOutsideVocabularyThrows) {
  for (int32_t bad : {13, 99, -2}) {
    CeCase c = cases()[0];
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
