// The gradient-check harness must itself catch wrong and non-accumulating gradients, or every
// op test built on it proves nothing.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "tests/ops/gradcheck.h"

namespace rrt::testing {
namespace {

// Runs fn with gtest failures captured instead of reported; returns their messages.
std::vector<std::string> captured_failures(const std::function<void()>& fn) {
  ::testing::TestPartResultArray results;
  {
    ::testing::ScopedFakeTestPartResultReporter reporter(
        ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &results);
    fn();
  }
  std::vector<std::string> messages;
  for (int i = 0; i < results.size(); ++i)
    messages.push_back(results.GetTestPartResult(i).message());
  return messages;
}

bool any_contains(const std::vector<std::string>& messages, const std::string& part) {
  for (const std::string& m : messages)
    if (m.find(part) != std::string::npos) return true;
  return false;
}

// loss = sum(w * x^2 * y), a small smooth function of two inputs.
struct Quadratic {
  std::vector<double> x = random_vector(7, 1), y = random_vector(7, 2), w = random_vector(7, 3);
  double loss() const {
    std::vector<double> out(x.size());
    for (size_t i = 0; i < x.size(); ++i) out[i] = x[i] * x[i] * y[i];
    return weighted_sum(out, w);
  }
  // dx += factor * 2 x y w, dy += x^2 w
  void backward(std::vector<std::vector<double>>& g, double factor, bool assign) const {
    for (size_t i = 0; i < x.size(); ++i) {
      const double dx = factor * 2 * x[i] * y[i] * w[i], dy = x[i] * x[i] * w[i];
      g[0][i] = assign ? dx : g[0][i] + dx;
      g[1][i] = assign ? dy : g[1][i] + dy;
    }
  }
};

TEST(GradCheck, AcceptsCorrectGradient) {
  Quadratic f;
  check_gradients(
      {{"x", &f.x}, {"y", &f.y}}, [&] { return f.loss(); },
      [&](auto& g) { f.backward(g, 1.0, false); });
}

TEST(GradCheck, RejectsWrongGradientAndNamesIt) {
  Quadratic f;
  const auto failures = captured_failures([&] {
    expect_gradients_match_fd(
        {{"x", &f.x}, {"y", &f.y}}, [&] { return f.loss(); },
        [&](auto& g) { f.backward(g, 1.001, false); });
  });
  EXPECT_TRUE(any_contains(failures, "gradient of 'x' at index 0: analytic"));
  EXPECT_TRUE(any_contains(failures, "numeric"));
  EXPECT_FALSE(any_contains(failures, "'y'")) << "y's gradient is right";
}

TEST(GradCheck, RejectsBackwardThatOverwrites) {
  Quadratic f;
  const auto failures = captured_failures([&] {
    expect_backward_accumulates({{"x", &f.x}, {"y", &f.y}},
                                [&](auto& g) { f.backward(g, 1.0, true); });
  });
  EXPECT_TRUE(any_contains(failures, "accumulated gradient of 'x'"));
  EXPECT_TRUE(any_contains(failures, "accumulated gradient of 'y'"));
}

TEST(GradCheck, RestoresInputsAfterPerturbing) {
  Quadratic f;
  const std::vector<double> x0 = f.x;
  expect_gradients_match_fd(
      {{"x", &f.x}}, [&] { return f.loss(); },
      [&](auto& g) {
        std::vector<std::vector<double>> both = {g[0], f.y};
        f.backward(both, 1.0, false);
        g[0] = both[0];
      });
  EXPECT_EQ(f.x, x0);
}

TEST(GradCheck, LargeTensorsAreSubsampled) {
  std::vector<double> x = random_vector(5000, 4), w = random_vector(5000, 5);
  int evaluations = 0;
  GradCheckOptions opts;
  opts.max_checked = 50;
  expect_gradients_match_fd(
      {{"x", &x}},
      [&] {
        ++evaluations;
        return weighted_sum(x, w);
      },
      [&](auto& g) {
        for (size_t i = 0; i < x.size(); ++i) g[0][i] += w[i];
      },
      opts);
  EXPECT_EQ(evaluations, 2 * 50);
}

TEST(GradCheck, WeightedSumIsExactForSmallIntegers) {
  EXPECT_EQ(weighted_sum(std::vector<float>{1, 2, 3}, {4, 5, 6}), 32.0);
}

TEST(GradCheck, ExpectNearAllReportsNameAndIndex) {
  const std::vector<double> expected = {1.0, 2.0, 3.0};
  EXPECT_TRUE(captured_failures([&] {
                expect_near_all("out", std::vector<float>{1.0f, 2.0f, 3.0f}, expected, 0, 0);
              }).empty());
  const auto off = captured_failures([&] {
    expect_near_all("out", std::vector<double>{1.0, 2.001, 3.0}, expected, 1e-6, 1e-6);
  });
  ASSERT_EQ(off.size(), 1u);
  EXPECT_TRUE(any_contains(off, "out[1]: got 2.00"));
  EXPECT_EQ(captured_failures([&] {
              expect_near_all("out", std::vector<double>{1.0, 2.0}, expected, 1, 1);
            }).size(),
            1u);
}

}  // namespace
}  // namespace rrt::testing
