// cuDNN causal attention (ops/cuda/attention.h) against the CPU ops::attention_* in fp32 on the
// same bf16-rounded inputs: out and lse of the forward, dq, dk, dv of the backward, on every case
// of the shared op-test table (tests/ops/op_cases.h) that cuDNN serves on the GPU at hand: MHA,
// GQA (H = 8, Hkv = 2), MQA, odd T (7, 37, 129, 300: tiles of 64 and 128 rows end mid-way), Dh 8,
// 64, 72 and 128, N > 1. The CPU backward runs from the GPU's own out and lse (as training would),
// so the gradients measure the backward alone. Tolerances (relative L2 against the CPU;
// attention_tol in the table):
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
//
// rrt's own kernels (ops/cuda/attention_fallback.h), which run where cuDNN cannot, go through the
// same comparison, forced (RRT_ATTENTION_FALLBACK's context flag) on every case of the table:
// Dh 1, 3, 20, 36, 256 (backward too), 512, T = 1, GQA and MQA; pointers 2 bytes past an
// allocation and unforced calls, to check that the dispatch picks them, below. They keep fp32 from
// the loads to the one bf16 rounding of each output, so their tolerances are tighter:
//   kFallbackLse  = 1e-4: fp32 on identical inputs, only the summation order differs.
//   kFallbackOut  = 5e-3: the output's bf16 rounding alone (~1e-3 relative L2).
//   kFallbackGrad = 1e-2: one bf16 rounding of (start + update), the start of the update's size
//                   (~3e-3 of the update).
// Against cuDNN on shapes both serve, the cuDNN tolerances apply (its bf16 P dominates).
// The table's masked cases (documents, windows, soft-caps) run with their mask on both sides:
// windows through cuDNN's diagonal band where it serves the shape, documents and soft-caps
// through the fallback (choose_attention_path), doc_start uploaded to the device.
// The gradient itself is checked by finite differences in double on the CPU op
// (tests/ops/test_attention.cpp), which both GPU paths are compared with.
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
#include "tests/ops/op_cases.h"

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

namespace cases = rrt::testing::op_cases;
namespace tol = cases::attention_tol;
constexpr double kLse = tol::kCudnnLse.rel;
constexpr double kOut = tol::kCudnnOut.rel;
constexpr double kGrad = tol::kCudnnGrad.rel;
constexpr double kFallbackLse = tol::kFallbackLse.rel;
constexpr double kFallbackOut = tol::kFallbackOut.rel;
constexpr double kFallbackGrad = tol::kFallbackGrad.rel;
constexpr int kCpuThreads = 4;

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
                 const std::vector<float>& v, std::vector<float>& out, std::vector<float>& lse,
                 const AttentionMask& mask = {}) {
  std::vector<float> ws(ops::attention_workspace_elems(s, kCpuThreads));
  out.assign(q_elems(s), 0.f);
  lse.assign(lse_elems(s), 0.f);
  ops::attention_forward<float>(q.data(), k.data(), v.data(), out.data(), lse.data(), s, ws.data(),
                                kCpuThreads, mask);
}
// The update alone (the CPU backward adds into zeroed gradients here).
void cpu_backward(const AttentionShape& s, const std::vector<float>& q, const std::vector<float>& k,
                  const std::vector<float>& v, const std::vector<float>& out,
                  const std::vector<float>& lse, const std::vector<float>& dout,
                  std::vector<float>& dq, std::vector<float>& dk, std::vector<float>& dv,
                  const AttentionMask& mask = {}) {
  std::vector<float> ws(ops::attention_workspace_elems(s, kCpuThreads));
  dq.assign(q_elems(s), 0.f);
  dk.assign(kv_elems(s), 0.f);
  dv.assign(kv_elems(s), 0.f);
  ops::attention_backward<float>(q.data(), k.data(), v.data(), out.data(), lse.data(), dout.data(),
                                 dq.data(), dk.data(), dv.data(), s, ws.data(), kCpuThreads, mask);
}

// A device buffer whose pointer sits `offset` elements past its allocation (offset 1: a bf16
// pointer 2-byte aligned, an fp32 one 4-byte aligned; cuDNN wants 16).
template <typename T>
struct ShiftedBuffer {
  DeviceBuffer<T> storage;
  size_t n, offset;
  ShiftedBuffer(size_t n_, size_t offset_) : storage(n_ + offset_), n(n_), offset(offset_) {}
  T* get() { return storage.get() + offset; }
  void set(const std::vector<T>& h) {
    RRT_CUDA_CHECK(cudaMemcpy(get(), h.data(), sizeof(T) * n, cudaMemcpyHostToDevice));
  }
  std::vector<T> host() {
    std::vector<T> h(n);
    RRT_CUDA_CHECK(cudaDeviceSynchronize());
    RRT_CUDA_CHECK(cudaMemcpy(h.data(), get(), sizeof(T) * n, cudaMemcpyDeviceToHost));
    return h;
  }
};
std::vector<float> host_f32(ShiftedBuffer<bf16>& d) {
  const auto h = d.host();
  std::vector<float> y(h.size());
  for (size_t i = 0; i < h.size(); ++i) y[i] = __bfloat162float(h[i]);
  return y;
}

struct Tolerances {
  double lse, out, grad;
};

// The mask of a table case: the CPU's over host doc_start, the GPU's over its device copy.
struct CaseMask {
  std::vector<int32_t> host_starts;
  DeviceBuffer<int32_t> device_starts;
  AttentionMask cpu, gpu;
  explicit CaseMask(const cases::AttentionCase& c)
      : host_starts(c.doc_starts()), device_starts(std::max<size_t>(host_starts.size(), 1)) {
    if (!host_starts.empty()) upload(device_starts, host_starts);
    cpu = c.mask(host_starts.data());
    gpu = c.mask(device_starts.get());
  }
};

// `ctx`'s forward and backward against the CPU op on random inputs of shape s, every pointer
// `offset` elements past its allocation.
void expect_matches_cpu(AttentionContext& ctx, const AttentionShape& s, uint32_t seed,
                        size_t offset, const Tolerances& tol, const AttentionMask& cpu_mask = {},
                        const AttentionMask& gpu_mask = {}) {
  SCOPED_TRACE(describe(s) + " offset " + std::to_string(offset));
  // q, k of +-2: scaled scores of order 1, a softmax neither flat nor one-hot.
  const auto q = random_bf16_values(q_elems(s), seed, 2.f);
  const auto k = random_bf16_values(kv_elems(s), seed + 1, 2.f);
  const auto v = random_bf16_values(kv_elems(s), seed + 2, 1.f);
  const auto dout = random_bf16_values(q_elems(s), seed + 3, 1.f);
  ShiftedBuffer<bf16> d_q(q.size(), offset), d_k(k.size(), offset), d_v(v.size(), offset),
      d_dout(dout.size(), offset), d_out(q.size(), offset);
  ShiftedBuffer<float> d_lse(lse_elems(s), offset);
  d_q.set(to_bf16(q));
  d_k.set(to_bf16(k));
  d_v.set(to_bf16(v));
  d_dout.set(to_bf16(dout));

  // Forward.
  std::vector<float> out_cpu, lse_cpu;
  cpu_forward(s, q, k, v, out_cpu, lse_cpu, cpu_mask);
  poison(d_out.storage);
  poison(d_lse.storage);
  attention_forward(ctx, d_q.get(), d_k.get(), d_v.get(), d_out.get(), d_lse.get(), s, gpu_mask);
  const auto out_gpu = host_f32(d_out);
  const auto lse_gpu = d_lse.host();
  EXPECT_LE(relative_l2(lse_gpu, lse_cpu), tol.lse);
  EXPECT_LE(relative_l2(out_gpu, out_cpu), tol.out);

  // Backward from the GPU's out and lse, onto random starting gradients.
  std::vector<float> gq, gk, gv;
  cpu_backward(s, q, k, v, out_gpu, lse_gpu, dout, gq, gk, gv, cpu_mask);
  const auto dq0 = random_bf16_values(gq.size(), seed + 4, rms(gq));
  const auto dk0 = random_bf16_values(gk.size(), seed + 5, rms(gk));
  const auto dv0 = random_bf16_values(gv.size(), seed + 6, rms(gv));
  ShiftedBuffer<bf16> d_dq(gq.size(), offset), d_dk(gk.size(), offset), d_dv(gv.size(), offset);
  d_dq.set(to_bf16(dq0));
  d_dk.set(to_bf16(dk0));
  d_dv.set(to_bf16(dv0));
  attention_backward(ctx, d_q.get(), d_k.get(), d_v.get(), d_out.get(), d_lse.get(), d_dout.get(),
                     d_dq.get(), d_dk.get(), d_dv.get(), s, gpu_mask);
  // dq and dk are exactly 0 when every query sees one key (T = 1): the error of an update is
  // relative to the larger of its own norm and 1% of dv's (never zero), so rounding noise passes.
  const double floor = 1e-2 * rms(gv);
  auto update_error = [&](const std::vector<float>& got, const std::vector<float>& want) {
    double num = 0, den = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      if (std::isnan(got[i])) return double(INFINITY);
      num += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
      den += double(want[i]) * want[i];
    }
    return std::sqrt(num / std::max(den, floor * floor * double(got.size())));
  };
  EXPECT_LE(update_error(sub(host_f32(d_dq), dq0), gq), tol.grad) << "dq";
  EXPECT_LE(update_error(sub(host_f32(d_dk), dk0), gk), tol.grad) << "dk";
  EXPECT_LE(relative_l2(sub(host_f32(d_dv), dv0), gv), tol.grad) << "dv";
}

// The dispatch rule on an A100 (compute capability 80), the strictest of the GPUs rrt runs on
// (Hopper's cuDNN also runs Dh 256 backward): the cases cuDNN serves on every one of them.
constexpr int kStrictestComputeCapability = 80;

// Seeds apart for every case of the table (by its position), the same on every run.
uint32_t case_seed(const std::string& name) {
  const auto all = cases::attention_cases();
  for (size_t i = 0; i < all.size(); ++i)
    if (all[i].name == name) return static_cast<uint32_t>(10 * (i + 1));
  return 1;
}

// cuDNN on the table's cases it serves in both directions on any GPU (the dispatch rule
// decides; the others are the fallback's, below).
class AttentionGpuCudnn : public ::testing::TestWithParam<cases::AttentionCase> {};
INSTANTIATE_TEST_SUITE_P(Table, AttentionGpuCudnn, ::testing::ValuesIn(cases::attention_cases()),
                         cases::kCaseName);

TEST_P(AttentionGpuCudnn, ForwardAndBackwardMatchTheCpu) {
  RRT_REQUIRE_GPU();
  const AttentionShape& s = GetParam().shape;
  const CaseMask mask(GetParam());
  const int cc = kStrictestComputeCapability;
  for (bool backward : {false, true})
    if (choose_attention_path(s, backward, cc, true, false, mask.gpu) != AttentionPath::kCudnn)
      GTEST_SKIP() << "cuDNN does not serve this shape on compute capability " << cc
                   << " (the fallback test runs it)";
  AttentionContext ctx;
  ctx.set_force_fallback(false);  // cuDNN, whatever RRT_ATTENTION_FALLBACK says
  expect_matches_cpu(ctx, s, case_seed(GetParam().name), 0, {kLse, kOut, kGrad}, mask.cpu,
                     mask.gpu);
  // One forward and one backward graph, and nothing through the fallback.
  EXPECT_EQ(ctx.cached_graphs(), 2u);
  EXPECT_EQ(ctx.fallback_calls(), 0);
}

// rrt's own kernels, forced, on every case of the table: shapes cuDNN cannot serve (Dh 1, 3, 5,
// 20, 36, 256 backward, 512; T = 1) and ones it can.
class AttentionGpuFallback : public ::testing::TestWithParam<cases::AttentionCase> {};
INSTANTIATE_TEST_SUITE_P(Table, AttentionGpuFallback, ::testing::ValuesIn(cases::attention_cases()),
                         cases::kCaseName);

TEST_P(AttentionGpuFallback, MatchesTheCpuOnAnyShape) {
  RRT_REQUIRE_GPU();
  AttentionContext ctx;
  ctx.set_force_fallback(true);
  const CaseMask mask(GetParam());
  expect_matches_cpu(ctx, GetParam().shape, 100 + case_seed(GetParam().name), 0,
                     {kFallbackLse, kFallbackOut, kFallbackGrad}, mask.cpu, mask.gpu);
  EXPECT_EQ(ctx.fallback_calls(), 2);
  EXPECT_EQ(ctx.cached_graphs(), 0u);  // cuDNN never asked
}

// Unforced: the dispatch sends what cuDNN cannot serve to the fallback, and the rest to cuDNN.
TEST(AttentionGpu, DispatchPicksTheFallbackWhereCudnnCannotServe) {
  RRT_REQUIRE_GPU();
  const Tolerances loose{kLse, kOut, kGrad};  // whichever path runs
  {
    AttentionContext ctx;
    ctx.set_force_fallback(false);
    expect_matches_cpu(ctx, {2, 21, 4, 2, 36}, 7, 0, loose);  // Dh 36: both directions fall back
    EXPECT_EQ(ctx.fallback_calls(), 2);
    EXPECT_EQ(ctx.cached_graphs(), 0u);
  }
  {
    AttentionContext ctx;
    ctx.set_force_fallback(false);
    expect_matches_cpu(ctx, {1, 45, 4, 1, 64}, 17, 1, loose);  // 2-byte aligned pointers
    EXPECT_EQ(ctx.fallback_calls(), 2);
    EXPECT_EQ(ctx.cached_graphs(), 0u);
  }
  {
    AttentionContext ctx;
    ctx.set_force_fallback(false);
    expect_matches_cpu(ctx, {3, 1, 4, 4, 64}, 27, 0, loose);  // T = 1: cuDNN forward only
    EXPECT_EQ(ctx.fallback_calls(), 1);
    EXPECT_EQ(ctx.cached_graphs(), 1u);
  }
}

// Fallback against cuDNN on shapes both serve: the same inputs, the backward of both from
// cuDNN's out and lse.
TEST(AttentionGpu, FallbackMatchesCudnn) {
  RRT_REQUIRE_GPU();
  const AttentionShape shapes[] = {{2, 129, 8, 2, 64}, {1, 100, 4, 1, 128}, {2, 64, 4, 4, 32}};
  AttentionContext cudnn, fallback;
  cudnn.set_force_fallback(false);
  fallback.set_force_fallback(true);
  uint32_t seed = 500;
  for (const AttentionShape& s : shapes) {
    SCOPED_TRACE(describe(s));
    const auto q = random_bf16_values(q_elems(s), seed++, 2.f);
    const auto k = random_bf16_values(kv_elems(s), seed++, 2.f);
    const auto v = random_bf16_values(kv_elems(s), seed++, 1.f);
    const auto dout = random_bf16_values(q_elems(s), seed++, 1.f);
    Bf16Buffer d_q(q), d_k(k), d_v(v), d_dout(dout);
    DeviceBuffer<bf16> out_c(q_elems(s)), out_f(q_elems(s));
    DeviceBuffer<float> lse_c(lse_elems(s)), lse_f(lse_elems(s));
    attention_forward(cudnn, d_q.get(), d_k.get(), d_v.get(), out_c.get(), lse_c.get(), s);
    attention_forward(fallback, d_q.get(), d_k.get(), d_v.get(), out_f.get(), lse_f.get(), s);
    EXPECT_LE(relative_l2(download(lse_f), download(lse_c)), kLse);
    EXPECT_LE(relative_l2(download_f32(out_f), download_f32(out_c)), kOut);

    const std::vector<float> zq(q_elems(s), 0.f), zkv(kv_elems(s), 0.f);
    Bf16Buffer dq_c(zq), dk_c(zkv), dv_c(zkv), dq_f(zq), dk_f(zkv), dv_f(zkv);
    attention_backward(cudnn, d_q.get(), d_k.get(), d_v.get(), out_c.get(), lse_c.get(),
                       d_dout.get(), dq_c.get(), dk_c.get(), dv_c.get(), s);
    attention_backward(fallback, d_q.get(), d_k.get(), d_v.get(), out_c.get(), lse_c.get(),
                       d_dout.get(), dq_f.get(), dk_f.get(), dv_f.get(), s);
    EXPECT_LE(relative_l2(download_f32(dq_f), download_f32(dq_c)), kGrad) << "dq";
    EXPECT_LE(relative_l2(download_f32(dk_f), download_f32(dk_c)), kGrad) << "dk";
    EXPECT_LE(relative_l2(download_f32(dv_f), download_f32(dv_c)), kGrad) << "dv";
  }
  EXPECT_EQ(cudnn.fallback_calls(), 0);
  EXPECT_EQ(fallback.fallback_calls(), 2 * static_cast<int64_t>(std::size(shapes)));
}

TEST(AttentionGpu, GraphsAreCachedAndRepeatedBackwardsKeepAdding) {
  RRT_REQUIRE_GPU();
  AttentionContext ctx;
  ctx.set_force_fallback(false);
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

// The dispatch rule itself, without a GPU.
TEST(AttentionGpu, DispatchRule) {
  const auto path = [](const AttentionShape& s, bool backward, int cc, bool aligned, bool force) {
    return choose_attention_path(s, backward, cc, aligned, force);
  };
  constexpr auto kCudnn = AttentionPath::kCudnn, kFallback = AttentionPath::kFallback;
  EXPECT_EQ(path({2, 64, 8, 2, 64}, true, 80, true, false), kCudnn);
  EXPECT_EQ(path({2, 64, 8, 2, 64}, true, 80, true, true), kFallback);     // forced
  EXPECT_EQ(path({2, 64, 8, 2, 64}, false, 90, false, false), kFallback);  // misaligned
  EXPECT_EQ(path({2, 64, 8, 2, 36}, false, 90, true, false), kFallback);   // Dh % 8 != 0
  EXPECT_EQ(path({2, 64, 8, 2, 264}, false, 90, true, false), kFallback);  // Dh > 256
  EXPECT_EQ(path({2, 64, 8, 8, 256}, false, 80, true, false), kCudnn);     // forward: any GPU
  EXPECT_EQ(path({2, 64, 8, 8, 256}, true, 90, true, false), kCudnn);      // Hopper backward
  EXPECT_EQ(path({2, 64, 8, 8, 256}, true, 80, true, false), kFallback);   // A100 backward
  EXPECT_EQ(path({2, 64, 8, 8, 256}, true, 100, true, false), kFallback);
  EXPECT_EQ(path({2, 64, 8, 8, 128}, true, 80, true, false), kCudnn);
  EXPECT_EQ(path({2, 1, 8, 8, 64}, false, 90, true, false), kCudnn);
  EXPECT_EQ(path({2, 1, 8, 8, 64}, true, 90, true, false), kFallback);  // T = 1 backward
  // Masks: a window is cuDNN's diagonal band; documents and soft-caps are the fallback's.
  AttentionMask window, docs, cap;
  window.window = 16;
  const int32_t starts[1] = {0};
  docs.doc_start = starts;
  cap.softcap = 50;
  const AttentionShape s{2, 64, 8, 2, 64};
  EXPECT_EQ(choose_attention_path(s, true, 80, true, false, window), kCudnn);
  EXPECT_EQ(choose_attention_path(s, false, 80, true, false, docs), kFallback);
  EXPECT_EQ(choose_attention_path(s, true, 90, true, false, cap), kFallback);
  EXPECT_EQ(choose_attention_path({2, 64, 8, 2, 36}, false, 90, true, false, window), kFallback);
}

// Runs without a GPU: the shape and pointer checks come before any CUDA or cuDNN call (the
// pointers below are never dereferenced). Only what no path runs is an error now.
TEST(AttentionGpu, InvalidShapesAndPointersFailWithAClearError) {
  AttentionContext ctx;
  auto* aligned = reinterpret_cast<bf16*>(uintptr_t{4096});
  auto* lse = reinterpret_cast<float*>(uintptr_t{8192});
  auto expect_error = [&](const AttentionShape& s, bool backward, const char* shape_part,
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
      EXPECT_NE(what.find(shape_part), std::string::npos) << what;  // the shape is named
    }
  };
  expect_error({1, 16, 4, 4, 520}, true, "Dh=520", "head dim");  // above the fallback's 512
  expect_error({1, 16, 4, 4, 1024}, false, "Dh=1024", "head dim");
  expect_error({2, 16, 6, 4, 64}, false, "H=6 Hkv=4", "multiple of kv heads");
  expect_error({0, 16, 4, 4, 64}, false, "N=0", "at least 1");
  expect_error({1, 0, 4, 4, 64}, true, "T=0", "at least 1");
  auto* null = static_cast<bf16*>(nullptr);
  try {  // a null k
    attention_forward(ctx, aligned, null, aligned, aligned, lse, {1, 16, 4, 4, 64});
    ADD_FAILURE() << "no error for a null k";
  } catch (const rrt::Error& e) {
    EXPECT_NE(std::string(e.what()).find("k is null"), std::string::npos) << e.what();
  }
  EXPECT_EQ(ctx.cached_graphs(), 0u);
  EXPECT_EQ(ctx.fallback_calls(), 0);
}

}  // namespace
}  // namespace rrt::ops::cuda
