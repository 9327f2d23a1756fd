// The CUDA element-wise ops (ops/cuda/elementwise.h) against their CPU twins in fp32, on the
// cases of the shared op-test table (tests/ops/op_cases.h) that the CPU op tests run too.
// Inputs are random and never zero (|v| in [0.1, 2] with a random sign unless stated), rounded to
// bf16 first so the CPU sees exactly what the GPU reads; outputs are poisoned (NaN) first, so an
// element the kernel forgets fails. Gradients start from random values: backward adds.
// Tolerances, relative L2 (||gpu - cpu|| / ||cpu||), from the table:
//   bf16 outputs (activations, dx, bf16 weight copies)          kCudaBf16 = 1e-2
//   fp32 outputs (rstd, mean, weight gradients, AdamW state)    kCudaF32  = 1e-5
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "ops/activation.h"
#include "ops/adamw.h"
#include "ops/cuda/elementwise.h"
#include "ops/embedding.h"
#include "ops/norm.h"
#include "ops/rope.h"
#include "tests/gpu/gpu_test.h"
#include "tests/ops/op_cases.h"

namespace rrt::testing {
namespace {

using ops::cuda::bf16;

namespace cases = op_cases;
constexpr double kBf16Tol = cases::kCudaBf16.rel;
constexpr double kF32Tol = cases::kCudaF32.rel;

// n values, |v| in [lo, hi] with a random sign (never zero), rounded to bf16.
std::vector<float> random_values(size_t n, uint32_t seed, float lo = 0.1f, float hi = 2.f) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> mag(lo, hi);
  std::bernoulli_distribution negative(0.5);
  std::vector<float> v(n);
  for (auto& x : v) x = negative(gen) ? -mag(gen) : mag(gen);
  return round_bf16(v);
}
std::vector<float> positive_values(size_t n, uint32_t seed, float lo, float hi) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> mag(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = mag(gen);
  return v;
}

void put(DeviceBuffer<bf16>& d, const std::vector<float>& h) { upload(d, to_bf16(h)); }
std::vector<float> tail(const std::vector<float>& v, size_t from) {
  return std::vector<float>(v.begin() + static_cast<std::ptrdiff_t>(from), v.end());
}

// ---- embedding ------------------------------------------------------------------------------

class GpuEmbedding : public ::testing::TestWithParam<cases::EmbeddingCase> {};
INSTANTIATE_TEST_SUITE_P(Table, GpuEmbedding, ::testing::ValuesIn(cases::embedding_cases()),
                         cases::kCaseName);

TEST_P(GpuEmbedding, ForwardMatchesCpu) {
  RRT_REQUIRE_GPU();
  const cases::EmbeddingCase& c = GetParam();
  const int64_t M = static_cast<int64_t>(c.tokens.size()), D = c.D, V = c.V;
  const float scale = static_cast<float>(c.scale);
  const auto& tokens = c.tokens;
  const auto table = random_values(static_cast<size_t>(V * D), 2);
  std::vector<float> ref(static_cast<size_t>(M * D));
  ops::embedding_forward<float>(tokens.data(), table.data(), ref.data(), M, D, V, scale);

  DeviceBuffer<int32_t> d_tokens(tokens.size());
  DeviceBuffer<bf16> d_table(table.size()), d_out(ref.size());
  upload(d_tokens, tokens);
  put(d_table, table);
  poison(d_out);
  ops::cuda::embedding_forward(d_tokens.get(), d_table.get(), d_out.get(), M, D, V, scale, nullptr);
  EXPECT_LE(relative_l2(download_f32(d_out), ref), kBf16Tol);
}

TEST(GpuEmbeddingEdge, ForwardTokenOutsideVocabularyGivesNaN) {
  RRT_REQUIRE_GPU();
  const int64_t V = 5, D = 16, M = 2;
  const std::vector<int32_t> tokens = {1, 5};
  DeviceBuffer<int32_t> d_tokens(2);
  DeviceBuffer<bf16> d_table(V * D), d_out(M * D);
  upload(d_tokens, tokens);
  put(d_table, random_values(V * D, 3));
  ops::cuda::embedding_forward(d_tokens.get(), d_table.get(), d_out.get(), M, D, V, 1.f, nullptr);
  const auto out = download_f32(d_out);
  EXPECT_FALSE(std::isnan(out[0]));
  EXPECT_TRUE(std::isnan(out[D]));
}

TEST_P(GpuEmbedding, BackwardMatchesCpuAtomicAndDeterministic) {
  RRT_REQUIRE_GPU();
  const cases::EmbeddingCase& c = GetParam();
  const int64_t M = static_cast<int64_t>(c.tokens.size()), D = c.D, V = c.V;
  const float scale = static_cast<float>(c.scale);
  const auto& tokens = c.tokens;
  const auto dout = random_values(static_cast<size_t>(M * D), 5);
  const auto dtable0 = positive_values(static_cast<size_t>(V * D), 6, 0.1f, 1.f);
  auto ref = dtable0;
  ops::embedding_backward<float>(tokens.data(), dout.data(), ref.data(), M, D, scale);

  DeviceBuffer<int32_t> d_tokens(tokens.size());
  DeviceBuffer<bf16> d_dout(dout.size());
  DeviceBuffer<float> d_dtable(dtable0.size());
  upload(d_tokens, tokens);
  put(d_dout, dout);
  upload(d_dtable, dtable0);
  ops::cuda::embedding_backward(d_tokens.get(), d_dout.get(), d_dtable.get(), M, D, V, scale,
                                nullptr);
  EXPECT_LE(relative_l2(download(d_dtable), ref), kF32Tol) << "atomic";

  upload(d_dtable, dtable0);
  ops::cuda::embedding_backward_deterministic(d_tokens.get(), d_dout.get(), d_dtable.get(), M, D, V,
                                              scale, nullptr);
  const auto first = download(d_dtable);
  EXPECT_LE(relative_l2(first, ref), kF32Tol) << "deterministic";
  upload(d_dtable, dtable0);
  ops::cuda::embedding_backward_deterministic(d_tokens.get(), d_dout.get(), d_dtable.get(), M, D, V,
                                              scale, nullptr);
  EXPECT_EQ(download(d_dtable), first) << "deterministic: two runs differ";
}

// ---- RMSNorm / LayerNorm ----------------------------------------------------------------------

class GpuNorm : public ::testing::TestWithParam<cases::NormCase> {};
INSTANTIATE_TEST_SUITE_P(Table, GpuNorm, ::testing::ValuesIn(cases::norm_cases()),
                         cases::kCaseName);

TEST_P(GpuNorm, RmsNormForwardAndBackwardMatchCpu) {
  RRT_REQUIRE_GPU();
  const float eps = 1e-5f;
  const int64_t M = GetParam().M, D = GetParam().D;
  for (bool unit_offset : {false, true}) {
    SCOPED_TRACE("unit_offset=" + std::to_string(unit_offset));
    const size_t n = static_cast<size_t>(M * D);
    const auto x = random_values(n, 10), w = random_values(D, 11, 0.5f, 1.5f);
    const auto dy = random_values(n, 12), dx0 = random_values(n, 13);
    const auto dw0 = random_values(D, 14);
    std::vector<float> y(n), rstd(M), dx = dx0, dw = dw0;
    ops::rmsnorm_forward<float>(x.data(), w.data(), y.data(), rstd.data(), M, D, eps, unit_offset);
    ops::rmsnorm_backward<float>(x.data(), w.data(), rstd.data(), dy.data(), dx.data(), dw.data(),
                                 M, D, unit_offset);

    DeviceBuffer<bf16> d_x(n), d_w(D), d_y(n), d_dy(n), d_dx(n);
    DeviceBuffer<float> d_rstd(M), d_dw(D);
    put(d_x, x);
    put(d_w, w);
    poison(d_y);
    poison(d_rstd);
    ops::cuda::rmsnorm_forward(d_x.get(), d_w.get(), d_y.get(), d_rstd.get(), M, D, eps,
                               unit_offset, nullptr);
    EXPECT_LE(relative_l2(download_f32(d_y), y), kBf16Tol) << "y";
    EXPECT_LE(relative_l2(download(d_rstd), rstd), kF32Tol) << "rstd";

    upload(d_rstd, rstd);  // backward sees the CPU's statistics
    put(d_dy, dy);
    put(d_dx, dx0);
    upload(d_dw, dw0);
    ops::cuda::rmsnorm_backward(d_x.get(), d_w.get(), d_rstd.get(), d_dy.get(), d_dx.get(),
                                d_dw.get(), M, D, unit_offset, nullptr);
    EXPECT_LE(relative_l2(download_f32(d_dx), dx), kBf16Tol) << "dx";
    EXPECT_LE(relative_l2(download(d_dw), dw), kF32Tol) << "dw";
  }
}

TEST_P(GpuNorm, LayerNormForwardAndBackwardMatchCpu) {
  RRT_REQUIRE_GPU();
  const float eps = 1e-5f;
  const int64_t M = GetParam().M, D = GetParam().D;
  for (bool with_bias : {true, false}) {
    SCOPED_TRACE("bias=" + std::to_string(with_bias));
    const size_t n = static_cast<size_t>(M * D);
    const auto x = random_values(n, 20), w = random_values(D, 21, 0.5f, 1.5f);
    const auto b = random_values(D, 22), dy = random_values(n, 23);
    const auto dx0 = random_values(n, 24), dw0 = random_values(D, 25);
    const auto db0 = random_values(D, 26);
    std::vector<float> y(n), mean(M), rstd(M), dx = dx0, dw = dw0, db = db0;
    const float* bias = with_bias ? b.data() : nullptr;
    ops::layernorm_forward<float>(x.data(), w.data(), bias, y.data(), mean.data(), rstd.data(), M,
                                  D, eps);
    ops::layernorm_backward<float>(x.data(), w.data(), mean.data(), rstd.data(), dy.data(),
                                   dx.data(), dw.data(), with_bias ? db.data() : nullptr, M, D);

    DeviceBuffer<bf16> d_x(n), d_w(D), d_b(D), d_y(n), d_dy(n), d_dx(n);
    DeviceBuffer<float> d_mean(M), d_rstd(M), d_dw(D), d_db(D);
    put(d_x, x);
    put(d_w, w);
    put(d_b, b);
    poison(d_y);
    poison(d_mean);
    poison(d_rstd);
    ops::cuda::layernorm_forward(d_x.get(), d_w.get(), with_bias ? d_b.get() : nullptr, d_y.get(),
                                 d_mean.get(), d_rstd.get(), M, D, eps, nullptr);
    EXPECT_LE(relative_l2(download_f32(d_y), y), kBf16Tol) << "y";
    EXPECT_LE(relative_l2(download(d_mean), mean), kF32Tol) << "mean";
    EXPECT_LE(relative_l2(download(d_rstd), rstd), kF32Tol) << "rstd";

    upload(d_mean, mean);  // backward sees the CPU's statistics
    upload(d_rstd, rstd);
    put(d_dy, dy);
    put(d_dx, dx0);
    upload(d_dw, dw0);
    upload(d_db, db0);
    ops::cuda::layernorm_backward(d_x.get(), d_w.get(), d_mean.get(), d_rstd.get(), d_dy.get(),
                                  d_dx.get(), d_dw.get(), with_bias ? d_db.get() : nullptr, M, D,
                                  nullptr);
    EXPECT_LE(relative_l2(download_f32(d_dx), dx), kBf16Tol) << "dx";
    EXPECT_LE(relative_l2(download(d_dw), dw), kF32Tol) << "dw";
    EXPECT_LE(relative_l2(download(d_db), db), kF32Tol) << "db";
  }
}

// ---- RoPE -------------------------------------------------------------------------------------

class GpuRope : public ::testing::TestWithParam<cases::RopeCase> {};
INSTANTIATE_TEST_SUITE_P(Table, GpuRope, ::testing::ValuesIn(cases::rope_cases()),
                         cases::kCaseName);

TEST_P(GpuRope, ForwardAndBackwardMatchCpu) {
  RRT_REQUIRE_GPU();
  const cases::RopeCase& s = GetParam();
  {
    const ops::RopeTable table(std::max<int64_t>(64, s.T), s.rot_dim, 10000.0);
    const ops::cuda::DeviceRopeTable d_table(table);
    const size_t n = static_cast<size_t>(s.N * s.T * s.H * s.Dh);
    const auto x = random_values(n, 30);
    DeviceBuffer<bf16> d_x(n);

    auto ref = x;
    ops::rope_forward<float>(ref.data(), table, s.N, s.T, s.H, s.Dh);
    put(d_x, x);
    ops::cuda::rope_forward(d_x.get(), d_table, s.N, s.T, s.H, s.Dh, nullptr);
    EXPECT_LE(relative_l2(download_f32(d_x), ref), kBf16Tol) << "forward";

    ref = x;
    ops::rope_backward<float>(ref.data(), table, s.N, s.T, s.H, s.Dh);
    put(d_x, x);
    ops::cuda::rope_backward(d_x.get(), d_table, s.N, s.T, s.H, s.Dh, nullptr);
    EXPECT_LE(relative_l2(download_f32(d_x), ref), kBf16Tol) << "backward";
  }
}

// ---- activations ------------------------------------------------------------------------------

// n and a start offset into the buffers: offset 1 misaligns every pointer (scalar path).
using ElementCase = cases::ElementCase;
std::string describe(const ElementCase& c) {
  return "n=" + std::to_string(c.n) + " offset=" + std::to_string(c.offset);
}

class GpuActivation : public ::testing::TestWithParam<ElementCase> {};
INSTANTIATE_TEST_SUITE_P(Table, GpuActivation, ::testing::ValuesIn(cases::element_cases()),
                         cases::kCaseName);

enum class Glu { kSwiglu, kGeglu };

void check_glu(Glu kind, const ElementCase& c) {
  {
    const size_t len = static_cast<size_t>(c.n + c.offset), off = static_cast<size_t>(c.offset);
    const auto gate = random_values(len, 40, 0.1f, 4.f), up = random_values(len, 41);
    const auto dout = random_values(len, 42), dgate0 = random_values(len, 43);
    const auto dup0 = random_values(len, 44);
    std::vector<float> out(len), dgate = dgate0, dup = dup0;
    (kind == Glu::kSwiglu
         ? ops::swiglu_forward<float>
         : ops::geglu_forward<float>)(gate.data() + off, up.data() + off, out.data() + off, c.n);
    (kind == Glu::kSwiglu ? ops::swiglu_backward<float>
                          : ops::geglu_backward<float>)(gate.data() + off, up.data() + off,
                                                        dout.data() + off, dgate.data() + off,
                                                        dup.data() + off, c.n);

    DeviceBuffer<bf16> d_gate(len), d_up(len), d_out(len), d_dout(len), d_dgate(len), d_dup(len);
    put(d_gate, gate);
    put(d_up, up);
    poison(d_out);
    (kind == Glu::kSwiglu ? ops::cuda::swiglu_forward : ops::cuda::geglu_forward)(
        d_gate.get() + off, d_up.get() + off, d_out.get() + off, c.n, nullptr);
    EXPECT_LE(relative_l2(tail(download_f32(d_out), off), tail(out, off)), kBf16Tol) << "out";

    put(d_dout, dout);
    put(d_dgate, dgate0);
    put(d_dup, dup0);
    (kind == Glu::kSwiglu ? ops::cuda::swiglu_backward : ops::cuda::geglu_backward)(
        d_gate.get() + off, d_up.get() + off, d_dout.get() + off, d_dgate.get() + off,
        d_dup.get() + off, c.n, nullptr);
    EXPECT_LE(relative_l2(download_f32(d_dgate), dgate), kBf16Tol) << "dgate";
    EXPECT_LE(relative_l2(download_f32(d_dup), dup), kBf16Tol) << "dup";
  }
}

TEST_P(GpuActivation, SwigluMatchesCpu) {
  RRT_REQUIRE_GPU();
  check_glu(Glu::kSwiglu, GetParam());
}

TEST_P(GpuActivation, GegluMatchesCpu) {
  RRT_REQUIRE_GPU();
  check_glu(Glu::kGeglu, GetParam());
}

TEST_P(GpuActivation, GeluErfAndTanhMatchCpu) {
  RRT_REQUIRE_GPU();
  const ElementCase& c = GetParam();
  for (bool tanh_approx : {false, true}) {
    SCOPED_TRACE("tanh=" + std::to_string(tanh_approx));
    const size_t len = static_cast<size_t>(c.n + c.offset), off = static_cast<size_t>(c.offset);
    const auto x = random_values(len, 50, 0.1f, 4.f), dout = random_values(len, 51);
    const auto dx0 = random_values(len, 52);
    std::vector<float> out(len), dx = dx0;
    ops::gelu_forward<float>(x.data() + off, out.data() + off, c.n, tanh_approx);
    ops::gelu_backward<float>(x.data() + off, dout.data() + off, dx.data() + off, c.n, tanh_approx);

    DeviceBuffer<bf16> d_x(len), d_out(len), d_dout(len), d_dx(len);
    put(d_x, x);
    poison(d_out);
    ops::cuda::gelu_forward(d_x.get() + off, d_out.get() + off, c.n, tanh_approx, nullptr);
    EXPECT_LE(relative_l2(tail(download_f32(d_out), off), tail(out, off)), kBf16Tol) << "out";

    put(d_dout, dout);
    put(d_dx, dx0);
    ops::cuda::gelu_backward(d_x.get() + off, d_dout.get() + off, d_dx.get() + off, c.n,
                             tanh_approx, nullptr);
    EXPECT_LE(relative_l2(download_f32(d_dx), dx), kBf16Tol) << "dx";
  }
}

TEST_P(GpuActivation, AddMatchesCpu) {
  RRT_REQUIRE_GPU();
  const ElementCase& c = GetParam();
  {
    const size_t len = static_cast<size_t>(c.n + c.offset), off = static_cast<size_t>(c.offset);
    const auto a = random_values(len, 60), b = random_values(len, 61);
    const auto dout = random_values(len, 62), da0 = random_values(len, 63);
    const auto db0 = random_values(len, 64);
    std::vector<float> out(len), da = da0, db = db0;
    ops::add_forward<float>(a.data() + off, b.data() + off, out.data() + off, c.n);
    ops::add_backward<float>(dout.data() + off, da.data() + off, db.data() + off, c.n);

    DeviceBuffer<bf16> d_a(len), d_b(len), d_out(len), d_dout(len), d_da(len), d_db(len);
    put(d_a, a);
    put(d_b, b);
    poison(d_out);
    ops::cuda::add_forward(d_a.get() + off, d_b.get() + off, d_out.get() + off, c.n, nullptr);
    EXPECT_LE(relative_l2(tail(download_f32(d_out), off), tail(out, off)), kBf16Tol) << "out";

    put(d_dout, dout);
    put(d_da, da0);
    put(d_db, db0);
    ops::cuda::add_backward(d_dout.get() + off, d_da.get() + off, d_db.get() + off, c.n, nullptr);
    EXPECT_LE(relative_l2(download_f32(d_da), da), kBf16Tol) << "da";
    EXPECT_LE(relative_l2(download_f32(d_db), db), kBf16Tol) << "db";

    // A null gradient is skipped: da alone gets dout once more.
    ops::add_backward<float>(dout.data() + off, da.data() + off, nullptr, c.n);
    ops::cuda::add_backward(d_dout.get() + off, d_da.get() + off, nullptr, c.n, nullptr);
    EXPECT_LE(relative_l2(download_f32(d_da), da), kBf16Tol) << "da, db null";
    EXPECT_LE(relative_l2(download_f32(d_db), db), kBf16Tol) << "db untouched";
  }
}

// Gemma 3's query scale (CudaBackend::scale): x *= factor in place, aligned or not.
TEST_P(GpuActivation, ScaleMatchesCpu) {
  RRT_REQUIRE_GPU();
  const ElementCase& c = GetParam();
  {
    const size_t len = static_cast<size_t>(c.n + c.offset), off = static_cast<size_t>(c.offset);
    auto x = random_values(len, 65);
    DeviceBuffer<bf16> d_x(len);
    put(d_x, x);
    for (size_t i = off; i < len; ++i) x[i] *= 0.7f;
    ops::cuda::scale(d_x.get() + off, 0.7f, c.n, nullptr);
    EXPECT_LE(relative_l2(download_f32(d_x), x), kBf16Tol);
  }
}

// ---- AdamW ------------------------------------------------------------------------------------

TEST(GpuAdamW, MatchesCpuOverSeveralSteps) {
  RRT_REQUIRE_GPU();
  ops::AdamWHyper hyper;
  hyper.lr = 1e-2;  // large enough that the update shows in fp32 relative errors
  hyper.weight_decay = 0.1;
  // {n, offset}: offset 1 misaligns the fp32 buffers (scalar path). (AdamW is no CPU-op
  // table family: the CPU checks it against its formula in tests/ops/test_adamw.cpp.)
  const ElementCase adamw_cases[] = {
      {"n1", 1, 0}, {"n7", 7, 0}, {"n12312", 4104 * 3, 0}, {"n4104_misaligned", 4096 + 8, 1}};
  for (bool decay : {true, false})
    for (const ElementCase& c : adamw_cases) {
      SCOPED_TRACE(describe(c) + " decay=" + std::to_string(decay));
      const size_t len = static_cast<size_t>(c.n + c.offset), off = static_cast<size_t>(c.offset);
      auto p = random_values(len, 70), m = random_values(len, 71);
      auto v = positive_values(len, 72, 1e-4f, 1e-2f);
      DeviceBuffer<float> d_p(len), d_g(len), d_m(len), d_v(len);
      DeviceBuffer<bf16> d_p16(len);
      upload(d_p, p);
      upload(d_m, m);
      upload(d_v, v);
      poison(d_p16);
      for (int64_t step = 5; step <= 7; ++step) {  // m, v carry state from earlier steps
        const auto g = random_values(len, static_cast<uint32_t>(73 + step), 0.01f, 1.f);
        ops::adamw_step<float>(p.data() + off, g.data() + off, m.data() + off, v.data() + off, c.n,
                               hyper, decay, step);
        upload(d_g, g);
        ops::cuda::adamw_step(d_p.get() + off, d_g.get() + off, d_m.get() + off, d_v.get() + off,
                              d_p16.get() + off, c.n, hyper, decay, step, nullptr);
      }
      EXPECT_LE(relative_l2(download(d_p), p), kF32Tol) << "param";
      EXPECT_LE(relative_l2(download(d_m), m), kF32Tol) << "m";
      EXPECT_LE(relative_l2(download(d_v), v), kF32Tol) << "v";
      EXPECT_LE(relative_l2(tail(download_f32(d_p16), off), tail(p, off)), kBf16Tol) << "bf16";
    }
}

}  // namespace
}  // namespace rrt::testing
