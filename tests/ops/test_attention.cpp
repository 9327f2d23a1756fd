// Causal attention (MHA, GQA, MQA; T = 1, odd T, T across the 64-row query block): forward
// against a naive full-softmax reference, gradients by finite differences in double, identical
// results for 1 and 2 threads, and float agreeing with double.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "ops/attention.h"
#include "tests/ops/gradcheck.h"
#include "tests/ops/op_cases.h"

namespace rrt::ops {
namespace {

using testing::expect_near_all;
using testing::random_vector;
using testing::weighted_sum;

namespace cases = testing::op_cases;
namespace tol = cases::attention_tol;

// The shared table (tests/ops/op_cases.h): every case runs on every backend.
class Attention : public ::testing::TestWithParam<cases::AttentionCase> {};
INSTANTIATE_TEST_SUITE_P(Table, Attention, ::testing::ValuesIn(cases::attention_cases()),
                         cases::kCaseName);

int64_t q_elems(const AttentionShape& s) { return s.N * s.T * s.H * s.Dh; }
int64_t kv_elems(const AttentionShape& s) { return s.N * s.T * s.Hkv * s.Dh; }

struct Inputs {
  std::vector<double> q, k, v;
};
Inputs make_inputs(const AttentionShape& s, uint64_t seed, double scale = 1.0) {
  return {random_vector(q_elems(s), seed, scale), random_vector(kv_elems(s), seed + 1, scale),
          random_vector(kv_elems(s), seed + 2)};
}

// Full T x T causal softmax per (n, h), in long double; out [N, T, H, Dh], lse [N, H, T].
void naive_attention(const Inputs& in, const AttentionShape& s, std::vector<double>& out,
                     std::vector<double>& lse) {
  out.assign(q_elems(s), 0.0);
  lse.assign(s.N * s.H * s.T, 0.0);
  const long double scale = 1.0L / std::sqrt(static_cast<long double>(s.Dh));
  std::vector<long double> scores(s.T);
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t h = 0; h < s.H; ++h) {
      const int64_t kvh = h / (s.H / s.Hkv);
      for (int64_t i = 0; i < s.T; ++i) {
        const double* qi = &in.q[((n * s.T + i) * s.H + h) * s.Dh];
        long double m = -std::numeric_limits<long double>::infinity(), sum = 0;
        for (int64_t j = 0; j <= i; ++j) {
          const double* kj = &in.k[((n * s.T + j) * s.Hkv + kvh) * s.Dh];
          long double dot = 0;
          for (int64_t d = 0; d < s.Dh; ++d) dot += static_cast<long double>(qi[d]) * kj[d];
          scores[j] = dot * scale;
          m = std::max(m, scores[j]);
        }
        for (int64_t j = 0; j <= i; ++j) sum += std::exp(scores[j] - m);
        for (int64_t d = 0; d < s.Dh; ++d) {
          long double acc = 0;
          for (int64_t j = 0; j <= i; ++j)
            acc += std::exp(scores[j] - m) / sum * in.v[((n * s.T + j) * s.Hkv + kvh) * s.Dh + d];
          out[((n * s.T + i) * s.H + h) * s.Dh + d] = static_cast<double>(acc);
        }
        lse[(n * s.H + h) * s.T + i] = static_cast<double>(m + std::log(sum));
      }
    }
}

// Runs forward (and backward when dout is given) with `threads` threads on a NaN-poisoned
// workspace, so reading scratch that was never written shows up as NaN; guard values after the
// attention_workspace_elems() elements catch writes past the documented size.
template <typename S>
struct AttentionRun {
  std::vector<S> out, lse, dq, dk, dv;
};
template <typename S>
AttentionRun<S> run_attention(const std::vector<S>& q, const std::vector<S>& k,
                              const std::vector<S>& v, const std::vector<S>* dout,
                              const AttentionShape& s, int threads) {
  AttentionRun<S> r;
  r.out.assign(q.size(), S(0));
  r.lse.assign(s.N * s.H * s.T, S(0));
  constexpr int64_t kGuard = 256;
  constexpr S kGuardValue = S(-12345);
  const int64_t elems = attention_workspace_elems(s, threads);
  std::vector<S> workspace(elems + kGuard, kGuardValue);
  std::fill(workspace.begin(), workspace.begin() + elems, std::numeric_limits<S>::quiet_NaN());
  attention_forward(q.data(), k.data(), v.data(), r.out.data(), r.lse.data(), s, workspace.data(),
                    threads);
  if (dout) {
    r.dq.assign(q.size(), S(0));
    r.dk.assign(k.size(), S(0));
    r.dv.assign(v.size(), S(0));
    std::fill(workspace.begin(), workspace.begin() + elems, std::numeric_limits<S>::quiet_NaN());
    attention_backward(q.data(), k.data(), v.data(), r.out.data(), r.lse.data(), dout->data(),
                       r.dq.data(), r.dk.data(), r.dv.data(), s, workspace.data(), threads);
  }
  for (int64_t i = elems; i < elems + kGuard; ++i)
    EXPECT_EQ(workspace[i], kGuardValue) << "write past the workspace at +" << i - elems;
  return r;
}

TEST_P(Attention, ForwardMatchesNaiveFullSoftmax) {
  const AttentionShape& s = GetParam().shape;
  for (double input_scale : {1.0, 6.0}) {  // 6: peaked softmax, exercises the max shift
    SCOPED_TRACE("input scale " + std::to_string(input_scale));
    const Inputs in = make_inputs(s, 1, input_scale);
    std::vector<double> expected_out, expected_lse;
    naive_attention(in, s, expected_out, expected_lse);
    for (int threads : {1, 2}) {
      SCOPED_TRACE("threads=" + std::to_string(threads));
      const auto r = run_attention<double>(in.q, in.k, in.v, nullptr, s, threads);
      expect_near_all("out", r.out, expected_out, tol::kCpuOutF64.rel, tol::kCpuOutF64.abs);
      expect_near_all("lse", r.lse, expected_lse, tol::kCpuLseF64.rel, tol::kCpuLseF64.abs);
    }
  }
}

TEST(AttentionEdge, FirstPositionCopiesItsValue) {
  // Row 0 sees only key 0, so out[0] = v[0] of the head's kv group and lse = scaled q.k.
  const AttentionShape s{1, 4, 6, 2, 3};
  const Inputs in = make_inputs(s, 2);
  const auto r = run_attention<double>(in.q, in.k, in.v, nullptr, s, 2);
  for (int64_t h = 0; h < s.H; ++h) {
    double dot = 0;
    for (int64_t d = 0; d < s.Dh; ++d) {
      EXPECT_NEAR(r.out[h * s.Dh + d], in.v[(h / 3) * s.Dh + d], 1e-14) << "head " << h;
      dot += in.q[h * s.Dh + d] * in.k[(h / 3) * s.Dh + d];
    }
    EXPECT_NEAR(r.lse[h * s.T], dot / std::sqrt(3.0), 1e-14) << "head " << h;
  }
}

TEST_P(Attention, GradientsMatchFiniteDifferences) {
  const AttentionShape& s = GetParam().shape;
  {
    Inputs in = make_inputs(s, 3);
    const auto w = random_vector(q_elems(s), 4);
    std::vector<double> out(q_elems(s)), lse(s.N * s.H * s.T);
    std::vector<double> workspace(attention_workspace_elems(s, 2));
    auto loss = [&] {  // one thread: many tiny calls (see gradcheck.h)
      attention_forward(in.q.data(), in.k.data(), in.v.data(), out.data(), lse.data(), s,
                        workspace.data(), 1);
      return weighted_sum(out, w);
    };
    auto backward = [&](std::vector<std::vector<double>>& g) {
      attention_forward(in.q.data(), in.k.data(), in.v.data(), out.data(), lse.data(), s,
                        workspace.data(), 2);
      attention_backward(in.q.data(), in.k.data(), in.v.data(), out.data(), lse.data(), w.data(),
                         g[0].data(), g[1].data(), g[2].data(), s, workspace.data(), 2);
    };
    testing::GradCheckOptions opts;
    opts.max_checked = static_cast<size_t>(GetParam().fd_samples);
    testing::check_gradients({{"q", &in.q}, {"k", &in.k}, {"v", &in.v}}, loss, backward, opts);
  }
}

TEST_P(Attention, OneAndTwoThreadsAgree) {
  const AttentionShape& s = GetParam().shape;
  {
    const Inputs in = make_inputs(s, 5);
    const auto dout = random_vector(q_elems(s), 6);
    const auto one = run_attention<double>(in.q, in.k, in.v, &dout, s, 1);
    const auto two = run_attention<double>(in.q, in.k, in.v, &dout, s, 2);
    const auto& t = tol::kCpuThreads;
    expect_near_all("out", two.out, one.out, t.rel, t.abs);
    expect_near_all("lse", two.lse, one.lse, t.rel, t.abs);
    expect_near_all("dq", two.dq, one.dq, t.rel, t.abs);
    expect_near_all("dk", two.dk, one.dk, t.rel, t.abs);
    expect_near_all("dv", two.dv, one.dv, t.rel, t.abs);
    for (double x : two.dq) ASSERT_TRUE(std::isfinite(x));
  }
}

TEST_P(Attention, FloatAgreesWithDouble) {
  const AttentionShape& s = GetParam().shape;
  {
    const Inputs in = make_inputs(s, 7);
    const auto dout = random_vector(q_elems(s), 8);
    const auto ref = run_attention<double>(in.q, in.k, in.v, &dout, s, 2);
    const auto dout_f = testing::to_float(dout);
    const auto got = run_attention<float>(testing::to_float(in.q), testing::to_float(in.k),
                                          testing::to_float(in.v), &dout_f, s, 2);
    const auto& t = tol::kCpuF32;
    expect_near_all("out", got.out, ref.out, t.rel, t.abs);
    expect_near_all("lse", got.lse, ref.lse, t.rel, t.abs);
    expect_near_all("dq", got.dq, ref.dq, t.rel, t.abs);
    expect_near_all("dk", got.dk, ref.dk, t.rel, t.abs);
    expect_near_all("dv", got.dv, ref.dv, t.rel, t.abs);
  }
}

TEST(AttentionEdge, HeadsNotAMultipleOfKvHeadsThrows) {
  const AttentionShape s{1, 3, 4, 3, 2};
  std::vector<double> q(q_elems(s)), kv(kv_elems(s)), out(q_elems(s)), lse(s.H * s.T);
  std::vector<double> workspace(attention_workspace_elems(s, 1));
  EXPECT_THROW(attention_forward(q.data(), kv.data(), kv.data(), out.data(), lse.data(), s,
                                 workspace.data(), 1),
               rrt::Error);
}

}  // namespace
}  // namespace rrt::ops
