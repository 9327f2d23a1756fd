// AdamW against a reference written in the test straight from the formula in ops/adamw.h:
//   p <- p (1 - lr wd);  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
//   p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// Decay on and off, the first step and later ones, float and double.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "ops/adamw.h"
#include "tests/ops/gradcheck.h"

namespace rrt::ops {
namespace {

using testing::expect_near_all;
using testing::random_vector;

struct AdamState {
  std::vector<double> p, m, v;
};

void reference_step(AdamState& s, const std::vector<double>& g, const AdamWHyper& hp, bool decay,
                    int64_t t) {
  const double wd = decay ? hp.weight_decay : 0.0;
  for (size_t i = 0; i < s.p.size(); ++i) {
    s.p[i] *= 1 - hp.lr * wd;
    s.m[i] = hp.beta1 * s.m[i] + (1 - hp.beta1) * g[i];
    s.v[i] = hp.beta2 * s.v[i] + (1 - hp.beta2) * g[i] * g[i];
    const double m_hat = s.m[i] / (1 - std::pow(hp.beta1, t));
    const double v_hat_sqrt = std::sqrt(s.v[i]) / std::sqrt(1 - std::pow(hp.beta2, t));
    s.p[i] -= hp.lr * m_hat / (v_hat_sqrt + hp.eps);
  }
}

AdamWHyper test_hyper() {
  AdamWHyper hp;
  hp.lr = 3e-3;
  hp.beta1 = 0.9;
  hp.beta2 = 0.95;
  hp.eps = 1e-8;
  hp.weight_decay = 0.1;
  return hp;
}

// Runs `steps` steps from `first_step` on both the op (in S) and the reference, comparing after
// every step. The starting moments are non-zero when resuming at a later step. `atol_m` covers
// the cancellation in m = b1 m + (1 - b1) g, where float's rounded b1 shows most.
template <typename S>
void compare_steps(int64_t n, bool decay, int64_t first_step, int steps, double rtol,
                   double atol_m) {
  const AdamWHyper hp = test_hyper();
  AdamState ref{random_vector(n, 1), std::vector<double>(n, 0.0), std::vector<double>(n, 0.0)};
  if (first_step > 1) {
    ref.m = random_vector(n, 2, 0.01);
    ref.v = random_vector(n, 3, 1e-4);
    for (double& x : ref.v) x *= x;  // second moments are non-negative
  }
  std::vector<S> p(ref.p.begin(), ref.p.end()), m(ref.m.begin(), ref.m.end());
  std::vector<S> v(ref.v.begin(), ref.v.end());
  for (int k = 0; k < steps; ++k) {
    const int64_t t = first_step + k;
    SCOPED_TRACE("step " + std::to_string(t));
    auto g = random_vector(n, 100 + t, 0.02);
    g[0] = 0.0;  // a zero gradient: only decay and the momentum of earlier steps move p[0]
    const std::vector<S> gs(g.begin(), g.end());
    if constexpr (sizeof(S) == 4) {
      for (int64_t i = 0; i < n; ++i) g[i] = gs[i];  // the reference sees the same gradient
    }
    reference_step(ref, g, hp, decay, t);
    adamw_step(p.data(), gs.data(), m.data(), v.data(), n, hp, decay, t);
    expect_near_all("m", m, ref.m, rtol, atol_m);
    expect_near_all("v", v, ref.v, rtol, 1e-16);
    expect_near_all("p", p, ref.p, rtol, 1e-7);
  }
}

TEST(AdamW, MatchesReferenceDoubleFromFirstStep) {
  for (bool decay : {false, true}) {
    SCOPED_TRACE("decay=" + std::to_string(decay));
    compare_steps<double>(1, decay, 1, 6, 1e-13, 1e-16);
    compare_steps<double>(1001, decay, 1, 6, 1e-13, 1e-16);
  }
}

TEST(AdamW, MatchesReferenceDoubleResumingLater) {
  for (bool decay : {false, true}) {
    SCOPED_TRACE("decay=" + std::to_string(decay));
    compare_steps<double>(257, decay, 1000, 4, 1e-13, 1e-16);
  }
}

TEST(AdamW, MatchesReferenceFloat) {
  for (bool decay : {false, true})
    for (int64_t first : {1, 50}) {
      SCOPED_TRACE("decay=" + std::to_string(decay) + " first=" + std::to_string(first));
      compare_steps<float>(1001, decay, first, 5, 2e-5, 1e-8);
    }
}

TEST(AdamW, FirstStepMovesEachParameterByAboutLr) {
  // At t = 1, m_hat = g and sqrt(v_hat) = |g|: the update is lr * sign(g) (|g| >> eps).
  const AdamWHyper hp = test_hyper();
  const std::vector<double> g = {0.5, -2.0, 1e-3, -7e-4};
  std::vector<double> p = {1.0, 1.0, -1.0, 0.0}, m(4, 0.0), v(4, 0.0);
  const std::vector<double> p0 = p;
  adamw_step(p.data(), g.data(), m.data(), v.data(), 4, hp, false, 1);
  for (size_t i = 0; i < p.size(); ++i) {
    EXPECT_NEAR(p0[i] - p[i], hp.lr * g[i] / (std::abs(g[i]) + hp.eps), 1e-15) << i;
    EXPECT_NEAR(p0[i] - p[i], hp.lr * (g[i] > 0 ? 1 : -1), 1e-4 * hp.lr) << i;
  }
}

TEST(AdamW, DecayShrinksOnlyWhenAsked) {
  AdamWHyper hp = test_hyper();
  hp.weight_decay = 0.5;
  const std::vector<double> g(3, 0.0);  // no gradient: only decay can move the parameters
  std::vector<double> p = {2.0, -4.0, 0.5}, m(3, 0.0), v(3, 0.0);
  adamw_step(p.data(), g.data(), m.data(), v.data(), 3, hp, true, 1);
  EXPECT_DOUBLE_EQ(p[0], 2.0 * (1 - hp.lr * 0.5));
  EXPECT_DOUBLE_EQ(p[1], -4.0 * (1 - hp.lr * 0.5));
  std::vector<double> q = {2.0, -4.0, 0.5};
  adamw_step(q.data(), g.data(), m.data(), v.data(), 3, hp, false, 2);
  EXPECT_EQ(q, (std::vector<double>{2.0, -4.0, 0.5}));
}

TEST(AdamW, StepZeroThrows) {
  std::vector<float> p(2, 1.0f), g(2, 1.0f), m(2, 0.0f), v(2, 0.0f);
  EXPECT_THROW(adamw_step(p.data(), g.data(), m.data(), v.data(), 2, AdamWHyper{}, true, 0),
               rrt::Error);
}

}  // namespace
}  // namespace rrt::ops
