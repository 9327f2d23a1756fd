// cuDNN causal attention (ops/cuda/attention.h) against the CPU ops::attention_* in fp32 on the
// same bf16-rounded inputs: out and lse of the forward, dq, dk, dv of the backward, for MHA, GQA
// (H = 8, Hkv = 2), MQA, odd T (7, 37, 129, 300: tiles of 64 and 128 rows end mid-way), Dh 64
// and 128, N > 1. The CPU backward runs from the GPU's own out and lse (as training would), so the
// gradients measure the backward alone.
// Tolerances (relative L2 against the CPU):
//   kLse  = 1e-3 on lse (fp32): fp32 scores of identical inputs; only the summation order and
//           cuDNN's exp/log implementation differ (expected well below 1e-4).
//   kOut  = 1e-2 on out (bf16): the output's own bf16 rounding (2^-9 relative) plus the
//           probabilities rounded to bf16 before the P V product (expected ~3e-3).
//   kGrad = 2e-2 on dq, dk, dv (bf16): P and dS = P (dP - D) enter tensor-core GEMMs as bf16,
//           and dP - D subtracts nearly equal numbers, which enlarges their relative rounding
//           error (expected ~5e-3). A wrong mask, scale, head mapping or stride gives errors of
//           order 1, far above any of these.
// The backward ADDS into its gradients: they start from random values of the update's size and
// the check is on (result - start) against the CPU's update. Forward outputs are poisoned (NaN)
// first, so an element cuDNN does not write fails.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <iterator>
#include <string>
#include <vector>

#include "core/error.h"
#include "ops/attention.h"
#include "ops/cuda/attention.h"
#include "tests/gpu/gpu_test.h"

namespace rrt::ops::cuda {
namespace {

using rrt::testing::DeviceBuffer;
using rrt::testing::download;
using rrt::testing::download_f32;
using rrt::testing::poison;
using rrt::testing::relative_l2;
using rrt::testing::round_bf16;
using rrt::testing::to_bf16;
using rrt::testing::upload;

constexpr double kLse = 1e-3;
constexpr double kOut = 1e-2;
constexpr double kGrad = 2e-2;
constexpr int kCpuThreads = 4;

const AttentionShape kShapes[] = {
    {2, 64, 4, 4, 64},    // MHA, N > 1
    {2, 129, 8, 2, 64},   // GQA 8/2, odd T one past two 64-row tiles
    {3, 37, 4, 1, 128},   // MQA, odd T, Dh 128
    {1, 129, 8, 2, 128},  // GQA, Dh 128
    {1, 300, 2, 1, 64},   // longer odd T: several key tiles, the last one partial
    {2, 7, 2, 2, 64},     // shorter than one tile
};

std::string describe(const AttentionShape& s) {
  return "N=" + std::to_string(s.N) + " T=" + std::to_string(s.T) + " H=" + std::to_string(s.H) +
         " Hkv=" + std::to_string(s.Hkv) + " Dh=" + std::to_string(s.Dh);
}
size_t q_elems(const AttentionShape& s) { return s.N * s.T * s.H * s.Dh; }
size_t kv_elems(const AttentionShape& s) { return s.N * s.T * s.Hkv * s.Dh; }
size_t lse_elems(const AttentionShape& s) { return s.N * s.H * s.T; }

std::vector<float> random_bf16_values(size_t n, uint32_t seed, float scale) {
  return round_bf16(rrt::testing::random_uniform(n, seed, scale));
}
float rms(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += double(x) * x;
  return v.empty() ? 0.f : static_cast<float>(std::sqrt(s / v.size()) + 1e-9);
}
std::vector<float> sub(const std::vector<float>& a, const std::vector<float>& b) {
  std::vector<float> d(a.size());
  for (size_t i = 0; i < a.size(); ++i) d[i] = a[i] - b[i];
  return d;
}

struct Bf16Buffer : DeviceBuffer<bf16> {
  explicit Bf16Buffer(const std::vector<float>& h) : DeviceBuffer<bf16>(h.size()) {
    upload(*this, to_bf16(h));
  }
};
struct F32Buffer : DeviceBuffer<float> {
  explicit F32Buffer(const std::vector<float>& h) : DeviceBuffer<float>(h.size()) {
    upload(*this, h);
  }
};

// The CPU op in fp32 on host vectors.
void cpu_forward(const AttentionShape& s, const std::vector<float>& q, const std::vector<float>& k,
                 const std::vector<float>& v, std::vector<float>& out, std::vector<float>& lse) {
  std::vector<float> ws(ops::attention_workspace_elems(s, kCpuThreads));
  out.assign(q_elems(s), 0.f);
  lse.assign(lse_elems(s), 0.f);
  ops::attention_forward<float>(q.data(), k.data(), v.data(), out.data(), lse.data(), s, ws.data(),
                                kCpuThreads);
}
// The update alone (the CPU backward adds into zeroed gradients here).
void cpu_backward(const AttentionShape& s, const std::vector<float>& q, const std::vector<float>& k,
                  const std::vector<float>& v, const std::vector<float>& out,
                  const std::vector<float>& lse, const std::vector<float>& dout,
                  std::vector<float>& dq, std::vector<float>& dk, std::vector<float>& dv) {
  std::vector<float> ws(ops::attention_workspace_elems(s, kCpuThreads));
  dq.assign(q_elems(s), 0.f);
  dk.assign(kv_elems(s), 0.f);
  dv.assign(kv_elems(s), 0.f);
  ops::attention_backward<float>(q.data(), k.data(), v.data(), out.data(), lse.data(), dout.data(),
                                 dq.data(), dk.data(), dv.data(), s, ws.data(), kCpuThreads);
}

TEST(AttentionGpu, ForwardAndBackwardMatchTheCpu) {
  RRT_REQUIRE_GPU();
  AttentionContext ctx;
  uint32_t seed = 1;
  for (const AttentionShape& s : kShapes) {
    SCOPED_TRACE(describe(s));
    // q, k of +-2: scaled scores of order 1, a softmax neither flat nor one-hot.
    const auto q = random_bf16_values(q_elems(s), seed++, 2.f);
    const auto k = random_bf16_values(kv_elems(s), seed++, 2.f);
    const auto v = random_bf16_values(kv_elems(s), seed++, 1.f);
    const auto dout = random_bf16_values(q_elems(s), seed++, 1.f);
    Bf16Buffer d_q(q), d_k(k), d_v(v), d_dout(dout);

    // Forward.
    std::vector<float> out_cpu, lse_cpu;
    cpu_forward(s, q, k, v, out_cpu, lse_cpu);
    DeviceBuffer<bf16> d_out(q_elems(s));
    DeviceBuffer<float> d_lse(lse_elems(s));
    poison(d_out);
    poison(d_lse);
    attention_forward(ctx, d_q.get(), d_k.get(), d_v.get(), d_out.get(), d_lse.get(), s);
    const auto out_gpu = download_f32(d_out);
    const auto lse_gpu = download(d_lse);
    EXPECT_LE(relative_l2(lse_gpu, lse_cpu), kLse);
    EXPECT_LE(relative_l2(out_gpu, out_cpu), kOut);

    // Backward from the GPU's out and lse, onto random starting gradients.
    std::vector<float> gq, gk, gv;
    cpu_backward(s, q, k, v, out_gpu, lse_gpu, dout, gq, gk, gv);
    const auto dq0 = random_bf16_values(gq.size(), seed++, rms(gq));
    const auto dk0 = random_bf16_values(gk.size(), seed++, rms(gk));
    const auto dv0 = random_bf16_values(gv.size(), seed++, rms(gv));
    Bf16Buffer d_dq(dq0), d_dk(dk0), d_dv(dv0);
    attention_backward(ctx, d_q.get(), d_k.get(), d_v.get(), d_out.get(), d_lse.get(), d_dout.get(),
                       d_dq.get(), d_dk.get(), d_dv.get(), s);
    EXPECT_LE(relative_l2(sub(download_f32(d_dq), dq0), gq), kGrad) << "dq";
    EXPECT_LE(relative_l2(sub(download_f32(d_dk), dk0), gk), kGrad) << "dk";
    EXPECT_LE(relative_l2(sub(download_f32(d_dv), dv0), gv), kGrad) << "dv";
  }
  // One forward and one backward graph per shape.
  EXPECT_EQ(ctx.cached_graphs(), 2 * std::size(kShapes));
}

TEST(AttentionGpu, GraphsAreCachedAndRepeatedBackwardsKeepAdding) {
  RRT_REQUIRE_GPU();
  AttentionContext ctx;
  const AttentionShape s{1, 48, 4, 2, 64};
  const auto q = random_bf16_values(q_elems(s), 11, 2.f);
  const auto k = random_bf16_values(kv_elems(s), 12, 2.f);
  const auto v = random_bf16_values(kv_elems(s), 13, 1.f);
  const auto dout = random_bf16_values(q_elems(s), 14, 1.f);
  Bf16Buffer d_q(q), d_k(k), d_v(v), d_dout(dout);
  DeviceBuffer<bf16> d_out(q_elems(s));
  DeviceBuffer<float> d_lse(lse_elems(s));
  for (int i = 0; i < 3; ++i)
    attention_forward(ctx, d_q.get(), d_k.get(), d_v.get(), d_out.get(), d_lse.get(), s);
  EXPECT_EQ(ctx.cached_graphs(), 1u);

  // Two backwards into zeroed gradients: twice the CPU's update (the tied block over two loops).
  std::vector<float> gq, gk, gv;
  cpu_backward(s, q, k, v, download_f32(d_out), download(d_lse), dout, gq, gk, gv);
  Bf16Buffer d_dq(std::vector<float>(gq.size(), 0.f)), d_dk(std::vector<float>(gk.size(), 0.f)),
      d_dv(std::vector<float>(gv.size(), 0.f));
  for (int i = 0; i < 2; ++i)
    attention_backward(ctx, d_q.get(), d_k.get(), d_v.get(), d_out.get(), d_lse.get(), d_dout.get(),
                       d_dq.get(), d_dk.get(), d_dv.get(), s);
  EXPECT_EQ(ctx.cached_graphs(), 2u);
  for (auto* g : {&gq, &gk, &gv})
    for (float& x : *g) x *= 2.f;
  EXPECT_LE(relative_l2(download_f32(d_dq), gq), kGrad) << "dq";
  EXPECT_LE(relative_l2(download_f32(d_dk), gk), kGrad) << "dk";
  EXPECT_LE(relative_l2(download_f32(d_dv), gv), kGrad) << "dv";

  // Another shape is another graph.
  const AttentionShape s2{1, 24, 4, 2, 64};
  attention_forward(ctx, d_q.get(), d_k.get(), d_v.get(), d_out.get(), d_lse.get(), s2);
  EXPECT_EQ(ctx.cached_graphs(), 3u);
}

// Runs without a GPU: the shape and pointer checks come before any CUDA or cuDNN call (the
// pointers below are never dereferenced).
TEST(AttentionGpu, UnsupportedShapesAndPointersFailWithAClearError) {
  AttentionContext ctx;
  auto* aligned = reinterpret_cast<bf16*>(uintptr_t{4096});
  auto* lse = reinterpret_cast<float*>(uintptr_t{8192});
  auto expect_error = [&](const AttentionShape& s, bool backward, const char* bf16_part,
                          const std::string& expected) {
    SCOPED_TRACE(describe(s) + (backward ? " backward" : " forward"));
    try {
      if (backward)
        attention_backward(ctx, aligned, aligned, aligned, aligned, lse, aligned, aligned, aligned,
                           aligned, s);
      else
        attention_forward(ctx, aligned, aligned, aligned, aligned, lse, s);
      ADD_FAILURE() << "no error";
    } catch (const rrt::Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(expected), std::string::npos) << what;
      EXPECT_NE(what.find(bf16_part), std::string::npos) << what;  // the shape is named
    }
  };
  expect_error({1, 16, 4, 4, 36}, false, "Dh=36", "head dim");      // not a multiple of 8
  expect_error({1, 16, 4, 4, 512}, true, "Dh=512", "at most 256");  // too large
  expect_error({2, 16, 6, 4, 64}, false, "H=6 Hkv=4", "multiple of kv heads");
  expect_error({1, 1, 4, 4, 64}, true, "T=1", "T >= 2");
  expect_error({0, 16, 4, 4, 64}, false, "N=0", "at least 1");

  const AttentionShape s{1, 16, 4, 4, 64};
  auto* odd = reinterpret_cast<bf16*>(uintptr_t{4096 + 2});
  try {
    attention_forward(ctx, aligned, odd, aligned, aligned, lse, s);
    ADD_FAILURE() << "no error for a misaligned k";
  } catch (const rrt::Error& e) {
    EXPECT_NE(std::string(e.what()).find("k is not 16-byte aligned"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(ctx.cached_graphs(), 0u);
}

}  // namespace
}  // namespace rrt::ops::cuda
