// The CPU bf16 backend's causal attention (ops/cpu_bf16/attention.h, through CpuBf16Backend)
// against the fp32 CpuBackend on every case of the shared op-test table (tests/ops/op_cases.h):
// MHA, GQA, MQA, T = 1, T across query blocks, Dh 1 to 512, and the masks (documents, windows,
// soft-caps; the decode check takes the window and soft-cap, a served row being one document).
// Forward: out (bf16) and lse (fp32). Backward: dq, dk, dv from the same out (rounded to bf16, as
// the backend stores it) and lse on both sides, so it measures the backward alone; the gradients
// start from random values of the update's size and the check is on the update (as
// tests/gpu/test_attention_gpu.cpp). And the engine's decode attention (kv_attention) over a cache
// filled from the same k and v. Tolerances (relative L2; attention_tol's kCpuBf16 entries, shared
// with rrt's own CUDA kernels, which also keep fp32 up to each output's one rounding): lse 1e-4,
// out 5e-3, gradients 1e-2.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "ops/cpu/backend.h"
#include "ops/cpu_bf16/backend.h"
#include "tests/ops/cpu_bf16/bf16_test.h"
#include "tests/ops/op_cases.h"

namespace rrt::testing {
namespace {

namespace cases = op_cases;
namespace tol = cases::attention_tol;
using ops::AttentionShape;

float rms(const std::vector<float>& v) {
  double sq = 0;
  for (float x : v) sq += double(x) * x;
  return static_cast<float>(std::sqrt(sq / static_cast<double>(v.empty() ? 1 : v.size())));
}
// relative_l2 with the reference norm floored at `floor` per element.
double relative_l2_floor(const std::vector<float>& got, const std::vector<float>& want,
                         double floor) {
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(got[i])) return INFINITY;
    num += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    den += double(want[i]) * want[i];
  }
  return std::sqrt(num / std::max(den, floor * floor * static_cast<double>(got.size())));
}

class Bf16Attention : public ::testing::TestWithParam<cases::AttentionCase> {};
INSTANTIATE_TEST_SUITE_P(Table, Bf16Attention, ::testing::ValuesIn(cases::attention_cases()),
                         cases::kCaseName);

TEST_P(Bf16Attention, ForwardBackwardAndDecodeMatchFp32) {
  RRT_REQUIRE_CPU_BF16_BACKEND();
  const AttentionShape s = GetParam().shape;
  const size_t nq = s.N * s.T * s.H * s.Dh, nkv = s.N * s.T * s.Hkv * s.Dh, nl = s.N * s.H * s.T;
  CpuBackend cpu(2);
  CpuBf16Backend be(2);
  // No RoPE here: any table.
  const BackendPlan plan{.max_attention = s, .rot_dim = 2, .rope_theta = 10000.0, .backward = true};
  cpu.prepare(plan);
  be.prepare(plan);
  const auto doc_start = GetParam().doc_starts();
  const ops::AttentionMask mask = GetParam().mask(doc_start.data());
  const auto q = random_uniform(nq, 1), k = random_uniform(nkv, 2), v = random_uniform(nkv, 3);
  std::vector<float> out(nq), lse(nl);
  cpu.attention_forward(q.data(), k.data(), v.data(), out.data(), lse.data(), s, mask);
  const auto q16 = to_bf16(q), k16 = to_bf16(k), v16 = to_bf16(v);
  auto out16 = poisoned(nq);
  std::vector<float> lse16(nl, NAN);
  be.attention_forward(q16.data(), k16.data(), v16.data(), out16.data(), lse16.data(), s, mask);
  EXPECT_LE(relative_l2(lse16, lse), tol::kCpuBf16Lse.rel) << "lse";
  EXPECT_LE(relative_l2(to_f32(out16), out), tol::kCpuBf16Out.rel) << "out";

  // The fp32 update alone (into zeros), then the bf16 backward onto starts of its size.
  const auto out_r = round_bf16(out), dout = random_uniform(nq, 4);
  std::vector<float> gq(nq), gk(nkv), gv(nkv);
  cpu.attention_backward(q.data(), k.data(), v.data(), out_r.data(), lse.data(), dout.data(),
                         gq.data(), gk.data(), gv.data(), s, mask);
  const float floor = 1e-2f * rms(gv);
  const auto dq0 = random_uniform(nq, 5, std::max(rms(gq), floor));
  const auto dk0 = random_uniform(nkv, 6, std::max(rms(gk), floor));
  const auto dv0 = random_uniform(nkv, 7, rms(gv));
  auto dq16 = to_bf16(dq0), dk16 = to_bf16(dk0), dv16 = to_bf16(dv0);
  be.attention_backward(q16.data(), k16.data(), v16.data(), to_bf16(out_r).data(), lse.data(),
                        to_bf16(dout).data(), dq16.data(), dk16.data(), dv16.data(), s, mask);
  // dq and dk are exactly 0 when every query sees one key (T = 1): an update's error is relative
  // to the larger of its own norm and 1% of dv's (never zero), so rounding noise passes.
  const double t = tol::kCpuBf16Grad.rel;
  EXPECT_LE(relative_l2_floor(minus(to_f32(dq16), dq0), gq, floor), t) << "dq";
  EXPECT_LE(relative_l2_floor(minus(to_f32(dk16), dk0), gk, floor), t) << "dk";
  EXPECT_LE(relative_l2(minus(to_f32(dv16), dv0), gv), t) << "dv";

  // Decode: each (n, t) a row of slot n at position t, against the cache of all of k and v
  // (cache [N slots, T, Hkv Dh] is k's own layout).
  const int64_t rows = s.N * s.T;
  std::vector<int32_t> slot(rows), pos(rows);
  for (int64_t i = 0; i < rows; ++i) {
    slot[i] = static_cast<int32_t>(i / s.T);
    pos[i] = static_cast<int32_t>(i % s.T);
  }
  ops::AttentionMask decode = mask;
  decode.doc_start = nullptr;
  std::vector<float> want(nq);
  cpu.kv_attention(q.data(), k.data(), v.data(), slot.data(), pos.data(), want.data(), rows, s.H,
                   s.Hkv, s.Dh, s.T, nullptr, 0, decode);
  auto got = poisoned(nq);
  be.kv_attention(q16.data(), k16.data(), v16.data(), slot.data(), pos.data(), got.data(), rows,
                  s.H, s.Hkv, s.Dh, s.T, nullptr, 0, decode);
  EXPECT_LE(relative_l2(to_f32(got), want), tol::kCpuBf16Out.rel) << "kv_attention";
}

}  // namespace
}  // namespace rrt::testing
