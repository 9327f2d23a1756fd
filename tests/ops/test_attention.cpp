// Causal attention (MHA, GQA, MQA; T = 1, odd T, T across the 64-row query block; document
// masks, sliding windows, soft-capping): forward against a naive full-softmax reference,
// gradients by finite differences in double, identical results for 1 and 2 threads, float
// agreeing with double, and packed documents computing what each document computes alone.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "ops/attention.h"
#include "ops/cpu/backend.h"
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

// Full T x T causal softmax per (n, h), in long double; out [N, T, H, Dh], lse [N, H, T]. The
// mask written out as its definition: keys j in [doc start, i], i - j < window, capped scores.
void naive_attention(const Inputs& in, const AttentionShape& s, std::vector<double>& out,
                     std::vector<double>& lse, const AttentionMask& mask = {}) {
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
        int64_t lo = mask.doc_start ? mask.doc_start[n * s.T + i] : 0;
        if (mask.window > 0) lo = std::max<int64_t>(lo, i - mask.window + 1);
        for (int64_t j = lo; j <= i; ++j) {
          const double* kj = &in.k[((n * s.T + j) * s.Hkv + kvh) * s.Dh];
          long double dot = 0;
          for (int64_t d = 0; d < s.Dh; ++d) dot += static_cast<long double>(qi[d]) * kj[d];
          scores[j] = dot * scale;
          if (mask.softcap > 0) scores[j] = mask.softcap * std::tanh(scores[j] / mask.softcap);
          m = std::max(m, scores[j]);
        }
        for (int64_t j = lo; j <= i; ++j) sum += std::exp(scores[j] - m);
        for (int64_t d = 0; d < s.Dh; ++d) {
          long double acc = 0;
          for (int64_t j = lo; j <= i; ++j)
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
                              const AttentionShape& s, int threads,
                              const AttentionMask& mask = {}) {
  AttentionRun<S> r;
  r.out.assign(q.size(), S(0));
  r.lse.assign(s.N * s.H * s.T, S(0));
  constexpr int64_t kGuard = 256;
  constexpr S kGuardValue = S(-12345);
  const int64_t elems = attention_workspace_elems(s, threads);
  std::vector<S> workspace(elems + kGuard, kGuardValue);
  std::fill(workspace.begin(), workspace.begin() + elems, std::numeric_limits<S>::quiet_NaN());
  attention_forward(q.data(), k.data(), v.data(), r.out.data(), r.lse.data(), s, workspace.data(),
                    threads, mask);
  if (dout) {
    r.dq.assign(q.size(), S(0));
    r.dk.assign(k.size(), S(0));
    r.dv.assign(v.size(), S(0));
    std::fill(workspace.begin(), workspace.begin() + elems, std::numeric_limits<S>::quiet_NaN());
    attention_backward(q.data(), k.data(), v.data(), r.out.data(), r.lse.data(), dout->data(),
                       r.dq.data(), r.dk.data(), r.dv.data(), s, workspace.data(), threads, mask);
  }
  for (int64_t i = elems; i < elems + kGuard; ++i)
    EXPECT_EQ(workspace[i], kGuardValue) << "write past the workspace at +" << i - elems;
  return r;
}

TEST_P(Attention, ForwardMatchesNaiveFullSoftmax) {
  const AttentionShape& s = GetParam().shape;
  const auto doc_start = GetParam().doc_starts();
  const AttentionMask mask = GetParam().mask(doc_start.data());
  for (double input_scale : {1.0, 6.0}) {  // 6: peaked softmax, exercises the max shift
    SCOPED_TRACE("input scale " + std::to_string(input_scale));
    const Inputs in = make_inputs(s, 1, input_scale);
    std::vector<double> expected_out, expected_lse;
    naive_attention(in, s, expected_out, expected_lse, mask);
    for (int threads : {1, 2}) {
      SCOPED_TRACE("threads=" + std::to_string(threads));
      const auto r = run_attention<double>(in.q, in.k, in.v, nullptr, s, threads, mask);
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
  const auto doc_start = GetParam().doc_starts();
  const AttentionMask mask = GetParam().mask(doc_start.data());
  {
    Inputs in = make_inputs(s, 3);
    const auto w = random_vector(q_elems(s), 4);
    std::vector<double> out(q_elems(s)), lse(s.N * s.H * s.T);
    std::vector<double> workspace(attention_workspace_elems(s, 2));
    auto loss = [&] {  // one thread: many tiny calls (see gradcheck.h)
      attention_forward(in.q.data(), in.k.data(), in.v.data(), out.data(), lse.data(), s,
                        workspace.data(), 1, mask);
      return weighted_sum(out, w);
    };
    auto backward = [&](std::vector<std::vector<double>>& g) {
      attention_forward(in.q.data(), in.k.data(), in.v.data(), out.data(), lse.data(), s,
                        workspace.data(), 2, mask);
      attention_backward(in.q.data(), in.k.data(), in.v.data(), out.data(), lse.data(), w.data(),
                         g[0].data(), g[1].data(), g[2].data(), s, workspace.data(), 2, mask);
    };
    testing::GradCheckOptions opts;
    opts.max_checked = static_cast<size_t>(GetParam().fd_samples);
    testing::check_gradients({{"q", &in.q}, {"k", &in.k}, {"v", &in.v}}, loss, backward, opts);
  }
}

TEST_P(Attention, OneAndTwoThreadsAgree) {
  const AttentionShape& s = GetParam().shape;
  const auto doc_start = GetParam().doc_starts();
  const AttentionMask mask = GetParam().mask(doc_start.data());
  {
    const Inputs in = make_inputs(s, 5);
    const auto dout = random_vector(q_elems(s), 6);
    const auto one = run_attention<double>(in.q, in.k, in.v, &dout, s, 1, mask);
    const auto two = run_attention<double>(in.q, in.k, in.v, &dout, s, 2, mask);
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
  const auto doc_start = GetParam().doc_starts();
  const AttentionMask mask = GetParam().mask(doc_start.data());
  {
    const Inputs in = make_inputs(s, 7);
    const auto dout = random_vector(q_elems(s), 8);
    const auto ref = run_attention<double>(in.q, in.k, in.v, &dout, s, 2, mask);
    const auto dout_f = testing::to_float(dout);
    const auto got = run_attention<float>(testing::to_float(in.q), testing::to_float(in.k),
                                          testing::to_float(in.v), &dout_f, s, 2, mask);
    const auto& t = tol::kCpuF32;
    expect_near_all("out", got.out, ref.out, t.rel, t.abs);
    expect_near_all("lse", got.lse, ref.lse, t.rel, t.abs);
    expect_near_all("dq", got.dq, ref.dq, t.rel, t.abs);
    expect_near_all("dk", got.dk, ref.dk, t.rel, t.abs);
    expect_near_all("dv", got.dv, ref.dv, t.rel, t.abs);
  }
}

// Each document of a packed sequence computes what it computes as a sequence of its own: out,
// lse and every gradient (dk, dv of a document's keys come only from its own queries).
// The table's cases that pack several documents into a sequence.
std::vector<cases::AttentionCase> document_cases() {
  std::vector<cases::AttentionCase> out;
  for (const cases::AttentionCase& c : cases::attention_cases())
    if (!c.doc_lengths.empty()) out.push_back(c);
  return out;
}
class PackedAttention : public ::testing::TestWithParam<cases::AttentionCase> {};
INSTANTIATE_TEST_SUITE_P(Table, PackedAttention, ::testing::ValuesIn(document_cases()),
                         cases::kCaseName);

TEST_P(PackedAttention, PackedDocumentsEqualEachDocumentAlone) {
  const cases::AttentionCase& c = GetParam();
  ASSERT_FALSE(c.doc_lengths.empty());
  const AttentionShape& s = c.shape;
  const auto doc_start = c.doc_starts();
  const AttentionMask mask = c.mask(doc_start.data());
  const Inputs in = make_inputs(s, 9);
  const auto dout = random_vector(q_elems(s), 10);
  const auto packed = run_attention<double>(in.q, in.k, in.v, &dout, s, 2, mask);
  AttentionMask alone_mask = mask;
  alone_mask.doc_start = nullptr;
  int64_t documents = 0;
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t t0 = 0; t0 < s.T;) {
      int64_t t1 = t0 + 1;
      while (t1 < s.T && doc_start[n * s.T + t1] == t0) ++t1;
      const AttentionShape one{1, t1 - t0, s.H, s.Hkv, s.Dh};
      auto rows = [&](const std::vector<double>& x, int64_t heads) {  // rows [t0, t1) of n
        const auto first = x.begin() + (n * s.T + t0) * heads * s.Dh;
        return std::vector<double>(first, first + (t1 - t0) * heads * s.Dh);
      };
      const auto doc_dout = rows(dout, s.H);
      const auto alone = run_attention<double>(rows(in.q, s.H), rows(in.k, s.Hkv),
                                               rows(in.v, s.Hkv), &doc_dout, one, 1, alone_mask);
      const double kTight = 1e-12;
      expect_near_all("out", rows(packed.out, s.H), alone.out, kTight, kTight);
      expect_near_all("dq", rows(packed.dq, s.H), alone.dq, kTight, kTight);
      expect_near_all("dk", rows(packed.dk, s.Hkv), alone.dk, kTight, kTight);
      expect_near_all("dv", rows(packed.dv, s.Hkv), alone.dv, kTight, kTight);
      for (int64_t h = 0; h < s.H; ++h)
        for (int64_t t = t0; t < t1; ++t)
          EXPECT_NEAR(packed.lse[(n * s.H + h) * s.T + t], alone.lse[h * (t1 - t0) + t - t0],
                      kTight);
      ++documents;
      t0 = t1;
    }
  EXPECT_GT(documents, s.N) << "the case should pack several documents";
}

TEST(AttentionEdge, ZeroMaskIsThePlainOp) {
  // A mask with nothing set takes the plain path: bit-identical results.
  const auto all = cases::attention_cases();
  const auto& c = cases::find_case(all, "three_query_blocks_gqa");
  const Inputs in = make_inputs(c.shape, 11);
  const auto dout = random_vector(q_elems(c.shape), 12);
  const auto plain = run_attention<double>(in.q, in.k, in.v, &dout, c.shape, 2);
  AttentionMask zero;
  const std::vector<int32_t> starts(c.shape.N * c.shape.T, 0);  // one document per sequence
  AttentionMask one_doc;
  one_doc.doc_start = starts.data();
  for (const AttentionMask& m : {zero, one_doc}) {
    const auto r = run_attention<double>(in.q, in.k, in.v, &dout, c.shape, 2, m);
    EXPECT_EQ(r.out, plain.out);
    EXPECT_EQ(r.dq, plain.dq);
    EXPECT_EQ(r.dk, plain.dk);
    EXPECT_EQ(r.dv, plain.dv);
  }
  // A window as long as the sequence is no window either.
  AttentionMask wide;
  wide.window = c.shape.T;
  const auto r = run_attention<double>(in.q, in.k, in.v, &dout, c.shape, 2, wide);
  EXPECT_EQ(r.out, plain.out);
}

// The engine's decode attention (CpuBackend::kv_attention) reads only the window's keys and caps
// the scores as training attention does: each position of a sequence, decoded against a cache of
// the whole sequence, gives the forward's row.
TEST(AttentionEdge, DecodeWithWindowAndSoftcapMatchesForward) {
  for (const char* name : {"window_mqa", "window_across_blocks", "softcap_mha", "window_of_one"}) {
    SCOPED_TRACE(name);
    const auto all = cases::attention_cases();
    const auto& c = cases::find_case(all, name);
    const AttentionShape& s = c.shape;
    const AttentionMask mask = c.mask(nullptr);
    const Inputs in = make_inputs(s, 13);
    const auto f = [](const std::vector<double>& x) { return testing::to_float(x); };
    const auto q = f(in.q), k = f(in.k), v = f(in.v);
    const auto want = run_attention<float>(q, k, v, nullptr, s, 2, mask);
    CpuBackend be(2);
    be.prepare(BackendPlan{.max_attention = s,
                           .rot_dim = 2,
                           .rope_theta = 1e4,
                           .rope_scaling = {},
                           .backward = false});
    const int64_t rows = s.N * s.T;
    std::vector<int32_t> slot(rows), pos(rows);
    for (int64_t i = 0; i < rows; ++i) {
      slot[i] = static_cast<int32_t>(i / s.T);
      pos[i] = static_cast<int32_t>(i % s.T);
    }
    std::vector<float> got(q.size());
    be.kv_attention(q.data(), k.data(), v.data(), slot.data(), pos.data(), got.data(), rows, s.H,
                    s.Hkv, s.Dh, s.T, nullptr, 0, mask);
    expect_near_all("out", got, want.out, 1e-5, 1e-5);
  }
}

TEST(AttentionEdge, DocumentStartsOutOfOrderThrow) {
  const AttentionShape s{1, 4, 2, 1, 2};
  std::vector<double> q(q_elems(s)), kv(kv_elems(s)), out(q_elems(s)), lse(s.H * s.T);
  std::vector<double> workspace(attention_workspace_elems(s, 1));
  for (const std::vector<int32_t>& bad : {std::vector<int32_t>{0, 0, 3, 2},     // decreasing
                                          std::vector<int32_t>{0, 2, 2, 2}}) {  // after token 1
    AttentionMask m;
    m.doc_start = bad.data();
    EXPECT_THROW(attention_forward(q.data(), kv.data(), kv.data(), out.data(), lse.data(), s,
                                   workspace.data(), 1, m),
                 rrt::Error);
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
