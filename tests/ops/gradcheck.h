// Finite-difference gradient checks for the ops, in double precision.
//
// A check names the differentiable inputs of an op (`GradParam`), a loss that re-runs the
// forward from their current values (usually sum(out * fixed random weights)), and a backward
// that re-runs the forward and then ADDS d loss / d input into one buffer per input. Each
// analytic gradient is compared with the central difference (loss(x+h) - loss(x-h)) / 2h on
// every element, or on a random subset for large tensors. Separately, the backward is run twice
// onto buffers pre-filled with known values, which must end as prefill + 2 * gradient: every
// backward in rrt accumulates.
#pragma once

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace rrt::testing {

// Gaussian values of standard deviation `scale` from a fixed seed (tests are reproducible).
inline std::vector<double> random_vector(size_t n, uint64_t seed, double scale = 1.0) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> normal(0.0, scale);
  std::vector<double> out(n);
  for (double& x : out) x = normal(gen);
  return out;
}

inline std::vector<float> to_float(const std::vector<double>& x) {
  return std::vector<float>(x.begin(), x.end());
}

// sum(out * weights), accumulated and returned in long double (with Neumaier's compensation) so
// that the tiny differences between the two perturbed losses are not buried under round-off:
// the 10^5..10^6 outputs of the large table cases (tests/ops/op_cases.h) give losses of ~10^4,
// whose rounding to double alone (~1e-12) would be ~1e-6 of a central difference with h = 1e-6.
template <typename S>
long double weighted_sum(const std::vector<S>& out, const std::vector<double>& weights) {
  long double sum = 0, compensation = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    const long double term = static_cast<long double>(out[i]) * static_cast<long double>(weights[i]);
    const long double t = sum + term;
    compensation += std::fabs(sum) >= std::fabs(term) ? (sum - t) + term : (term - t) + sum;
    sum = t;
  }
  return sum + compensation;
}

// Element-wise comparison that reports the first few mismatches by name and index.
template <typename A, typename B>
void expect_near_all(const std::string& name, const std::vector<A>& actual,
                     const std::vector<B>& expected, double rtol, double atol) {
  ASSERT_EQ(actual.size(), expected.size()) << name;
  int reported = 0;
  for (size_t i = 0; i < actual.size(); ++i) {
    const double a = static_cast<double>(actual[i]), e = static_cast<double>(expected[i]);
    if (std::abs(a - e) <= atol + rtol * std::abs(e)) continue;
    if (reported++ < 5) {
      ADD_FAILURE() << name << "[" << i << "]: got " << a << ", expected " << e << " (diff "
                    << a - e << ")";
    }
  }
  if (reported > 5) ADD_FAILURE() << name << ": " << reported << " mismatches in total";
}

struct GradParam {
  std::string name;
  std::vector<double>* values;  // perturbed in place during the check, restored afterwards
};

struct GradCheckOptions {
  double h = 1e-6;
  double rtol = 1e-6;
  double atol = 1e-7;
  size_t max_checked = 300;       // larger tensors are checked on a random subset of elements
  bool check_accumulates = true;  // false for in-place backwards (rope)
  uint64_t seed = 12345;
};

// Long double: see weighted_sum (a loss computed in double converts without loss).
using LossFn = std::function<long double()>;
// Must recompute the forward at the current values, then add the gradients into grads[i].
using BackwardFn = std::function<void(std::vector<std::vector<double>>& grads)>;

namespace detail {

// Sets the OpenMP thread count for a scope. The finite differences are thousands of tiny
// forwards: threading them only adds fork/join and barrier spinning, which turns into minutes
// when ctest -j runs two OpenMP tests on two cores. The analytic backward keeps its threads.
class ScopedOmpThreads {
 public:
  explicit ScopedOmpThreads(int threads) : saved_(omp_get_max_threads()) {
    omp_set_num_threads(threads);
  }
  ~ScopedOmpThreads() { omp_set_num_threads(saved_); }
  ScopedOmpThreads(const ScopedOmpThreads&) = delete;
  ScopedOmpThreads& operator=(const ScopedOmpThreads&) = delete;

 private:
  int saved_;
};

inline std::vector<size_t> indices_to_check(size_t n, const GradCheckOptions& opts) {
  std::vector<size_t> idx(n);
  for (size_t i = 0; i < n; ++i) idx[i] = i;
  if (n <= opts.max_checked) return idx;
  std::mt19937_64 gen(opts.seed + n);
  std::shuffle(idx.begin() + 1, idx.end() - 1, gen);  // always keep the first and last element
  idx.resize(opts.max_checked - 1);
  idx.push_back(n - 1);
  return idx;
}

inline std::vector<std::vector<double>> zero_grads(const std::vector<GradParam>& params) {
  std::vector<std::vector<double>> grads;
  for (const GradParam& p : params) grads.emplace_back(p.values->size(), 0.0);
  return grads;
}

}  // namespace detail

// Checks that backward(grads) starting from zero buffers matches central differences of loss().
inline void expect_gradients_match_fd(const std::vector<GradParam>& params, const LossFn& loss,
                                      const BackwardFn& backward,
                                      const GradCheckOptions& opts = {}) {
  std::vector<std::vector<double>> grads = detail::zero_grads(params);
  backward(grads);
  const detail::ScopedOmpThreads single_thread(1);
  for (size_t p = 0; p < params.size(); ++p) {
    std::vector<double>& x = *params[p].values;
    ASSERT_EQ(grads[p].size(), x.size()) << params[p].name;
    int failures = 0;
    size_t checked = 0;
    for (size_t i : detail::indices_to_check(x.size(), opts)) {
      const double saved = x[i];
      // The step actually taken: x +- h rounded to double.
      x[i] = saved + opts.h;
      const long double plus = loss(), up = x[i];
      x[i] = saved - opts.h;
      const long double minus = loss(), down = x[i];
      x[i] = saved;
      const double numeric = static_cast<double>((plus - minus) / (up - down));
      const double analytic = grads[p][i];
      ++checked;
      if (std::abs(analytic - numeric) <= opts.atol + opts.rtol * std::abs(numeric)) continue;
      if (failures++ < 5) {
        ADD_FAILURE() << "gradient of '" << params[p].name << "' at index " << i << ": analytic "
                      << analytic << ", numeric " << numeric << " (diff " << analytic - numeric
                      << ")";
      }
    }
    EXPECT_EQ(failures, 0) << "'" << params[p].name << "': " << failures << " of " << checked
                           << " checked elements disagree with finite differences";
  }
}

// Checks that backward adds: two calls onto buffers pre-filled with known values give
// prefill + 2 * gradient (the gradient itself taken from a call onto zero buffers).
inline void expect_backward_accumulates(const std::vector<GradParam>& params,
                                        const BackwardFn& backward) {
  std::vector<std::vector<double>> once = detail::zero_grads(params);
  backward(once);
  std::vector<std::vector<double>> prefill, twice;
  for (size_t p = 0; p < params.size(); ++p) {
    prefill.push_back(random_vector(params[p].values->size(), 777 + p, 3.0));
  }
  twice = prefill;
  backward(twice);
  backward(twice);
  for (size_t p = 0; p < params.size(); ++p) {
    std::vector<double> expected(prefill[p].size());
    for (size_t i = 0; i < expected.size(); ++i) expected[i] = prefill[p][i] + 2 * once[p][i];
    expect_near_all("accumulated gradient of '" + params[p].name + "'", twice[p], expected, 1e-12,
                    1e-12);
  }
}

// Both checks above (the accumulation check unless opts.check_accumulates is false).
inline void check_gradients(const std::vector<GradParam>& params, const LossFn& loss,
                            const BackwardFn& backward, const GradCheckOptions& opts = {}) {
  {
    SCOPED_TRACE("finite differences");
    expect_gradients_match_fd(params, loss, backward, opts);
  }
  if (opts.check_accumulates) {
    SCOPED_TRACE("backward accumulates");
    expect_backward_accumulates(params, backward);
  }
}

}  // namespace rrt::testing
