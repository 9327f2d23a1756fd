// The bf16 GEMMs (ops/cpu_bf16/gemm.h) against a double-precision reference computed on the same
// bf16 inputs. Skipped, with the reason, where gemm() cannot run (no oneDNN in the build, or a
// CPU with neither AMX nor AVX512_BF16); the tests of that refusal itself always run.
//
// Tolerance. Every input is a bf16, so each product a*b is exact in fp32 (8 + 8 significant
// bits); what is left is the rounding of the fp32 sums. K additions, the alpha scale, the
// beta C term and the bias each round once with unit roundoff u = 2^-24, so
//   |C - ref| <= (K + 4) u S,   S = |alpha| sum_k |a_k b_k| + |beta C_old| + |bias|
// (the classic bound for recursive summation, whatever order or blocking the kernel uses). A bf16
// output then rounds once more to 8 significant bits: relative error at most 2^-8 (half of the
// 2^-7 spacing of bf16 values in [1, 2)). The bound scales with S, not |ref|, so cancellation in
// random data cannot make it fail spuriously; it is still small enough that a wrong transpose,
// a missing bias, beta applied twice or a wrong leading dimension are off by orders of magnitude.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "ops/cpu_bf16/gemm.h"

namespace rrt::ops::cpu_bf16 {
namespace {

#define RRT_SKIP_WITHOUT_BF16_GEMM() \
  if (!gemm_available()) GTEST_SKIP() << "bf16 GEMM unavailable: " << gemm_unavailable_reason()

const float kNaN = std::numeric_limits<float>::quiet_NaN();

// A stored matrix of rows x cols with leading dimension ld >= cols; the padding past the width
// holds NaN, so a kernel that reads it poisons its result.
std::vector<bf16> random_bf16(int64_t rows, int64_t cols, int64_t ld, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-2.f, 2.f);
  std::vector<bf16> m(static_cast<size_t>(std::max<int64_t>(rows, 1) * ld), bf16::from_float(kNaN));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) m[i * ld + j] = bf16::from_float(u(rng));
  return m;
}

struct Case {
  bool ta = false, tb = false;
  int64_t M = 1, N = 1, K = 1;
  int64_t pad_a = 0, pad_b = 0, pad_c = 0;  // leading dimension minus the stored width
  float alpha = 1.f, beta = 0.f;
  bool bias = false;
  std::string name() const {
    return std::string(ta ? "T" : "N") + (tb ? "T" : "N") + " M=" + std::to_string(M) +
           " N=" + std::to_string(N) + " K=" + std::to_string(K) +
           " pads=" + std::to_string(pad_a) + "," + std::to_string(pad_b) + "," +
           std::to_string(pad_c) + " alpha=" + std::to_string(alpha) +
           " beta=" + std::to_string(beta) + (bias ? " bias" : "");
  }
};

// Runs one case with an fp32 (bf16_out false) or bf16 C and checks every element, and that the
// padding of C is untouched.
void check_case(const Case& c, bool bf16_out, uint32_t seed) {
  SCOPED_TRACE(c.name() + (bf16_out ? " bf16 C" : " f32 C"));
  std::mt19937 rng(seed);
  const int64_t a_rows = c.ta ? c.K : c.M, a_cols = c.ta ? c.M : c.K;
  const int64_t b_rows = c.tb ? c.N : c.K, b_cols = c.tb ? c.K : c.N;
  const int64_t lda = a_cols + c.pad_a, ldb = b_cols + c.pad_b, ldc = c.N + c.pad_c;
  const std::vector<bf16> A = random_bf16(a_rows, a_cols, lda, rng);
  const std::vector<bf16> B = random_bf16(b_rows, b_cols, ldb, rng);
  std::vector<bf16> bias;
  if (c.bias) bias = random_bf16(1, c.N, c.N, rng);
  // C before: random values (beta != 0) or NaN (beta == 0 must not read C); padding a sentinel.
  const float kSentinel = 12288.f;  // exact in bf16
  std::vector<double> c_old(c.M * c.N, 0.0);
  std::vector<float> Cf(c.M * ldc, kSentinel);
  std::vector<bf16> Cb(c.M * ldc, bf16::from_float(kSentinel));
  std::uniform_real_distribution<float> u(-2.f, 2.f);
  for (int64_t i = 0; i < c.M; ++i)
    for (int64_t j = 0; j < c.N; ++j) {
      const float v = c.beta != 0.f ? bf16::from_float(u(rng)).to_float() : kNaN;
      Cf[i * ldc + j] = v;
      Cb[i * ldc + j] = bf16::from_float(v);
      c_old[i * c.N + j] = c.beta != 0.f ? v : 0.0;
    }
  auto a_at = [&](int64_t i, int64_t k) {
    return static_cast<double>((c.ta ? A[k * lda + i] : A[i * lda + k]).to_float());
  };
  auto b_at = [&](int64_t k, int64_t j) {
    return static_cast<double>((c.tb ? B[j * ldb + k] : B[k * ldb + j]).to_float());
  };

  if (bf16_out)
    gemm(c.ta, c.tb, c.M, c.N, c.K, c.alpha, A.data(), lda, B.data(), ldb, c.beta, Cb.data(), ldc,
         c.bias ? bias.data() : nullptr);
  else
    gemm(c.ta, c.tb, c.M, c.N, c.K, c.alpha, A.data(), lda, B.data(), ldb, c.beta, Cf.data(), ldc);

  const double u24 = std::ldexp(1.0, -24), u8 = std::ldexp(1.0, -8);
  int bad = 0;
  for (int64_t i = 0; i < c.M && bad < 5; ++i) {
    for (int64_t j = 0; j < c.N; ++j) {
      double sum = 0, mag = 0;
      for (int64_t k = 0; k < c.K; ++k) {
        const double p = a_at(i, k) * b_at(k, j);
        sum += p;
        mag += std::fabs(p);
      }
      const double bj = c.bias ? bias[j].to_float() : 0.0;
      const double ref = c.alpha * sum + c.beta * c_old[i * c.N + j] + bj;
      const double S =
          std::fabs(c.alpha) * mag + std::fabs(c.beta * c_old[i * c.N + j]) + std::fabs(bj);
      double tol = (c.K + 4) * u24 * S;
      const double got = bf16_out ? Cb[i * ldc + j].to_float() : Cf[i * ldc + j];
      if (bf16_out) tol += u8 * (std::fabs(ref) + tol);
      if (!(std::fabs(got - ref) <= tol) && bad++ < 5)
        ADD_FAILURE() << "C[" << i << "," << j << "] = " << got << ", reference " << ref
                      << " (tolerance " << tol << ")";
    }
    for (int64_t j = c.N; j < ldc; ++j) {
      const float pad = bf16_out ? Cb[i * ldc + j].to_float() : Cf[i * ldc + j];
      if (pad != kSentinel && bad++ < 5)
        ADD_FAILURE() << "padding C[" << i << "," << j << "] overwritten with " << pad;
    }
  }
}

const int64_t kOdd[][3] = {{1, 1, 1},   {7, 33, 129}, {129, 7, 33}, {33, 129, 7},  {1, 129, 33},
                           {129, 1, 7}, {7, 7, 1},    {64, 48, 96}, {257, 65, 130}};

TEST(GemmBf16, EveryTransposeOddSizesBothOutputsBetaZeroAndOne) {
  RRT_SKIP_WITHOUT_BF16_GEMM();
  uint32_t seed = 1;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (const auto& s : kOdd)
        for (float beta : {0.f, 1.f})
          for (bool bf16_out : {false, true}) {
            Case c{ta, tb, s[0], s[1], s[2]};
            c.beta = beta;
            c.bias = bf16_out && beta == 0.f;  // the bias with and without the sum below
            check_case(c, bf16_out, seed++);
          }
}

TEST(GemmBf16, LeadingDimensionsWiderThanTheMatrix) {
  RRT_SKIP_WITHOUT_BF16_GEMM();
  uint32_t seed = 100;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (bool bf16_out : {false, true}) {
        Case c{ta, tb, 33, 17, 65, 3, 5, 7};
        c.beta = 1.f;
        c.bias = bf16_out;
        check_case(c, bf16_out, seed++);
        Case d{ta, tb, 7, 129, 33, 64, 1, 128};  // padding wider than the width itself
        check_case(d, bf16_out, seed++);
      }
}

TEST(GemmBf16, AlphaAndFractionalBetaWithBias) {
  RRT_SKIP_WITHOUT_BF16_GEMM();
  Case c{false, true, 45, 31, 77};
  c.alpha = 0.125f;  // e.g. the attention's 1/sqrt(d) folded into the product
  c.beta = 0.5f;
  c.bias = true;
  check_case(c, true, 7);
  c.bias = false;
  c.alpha = -3.f;
  check_case(c, false, 8);
  c.beta = -1.f;
  check_case(c, false, 9);
}

// The bench model's shapes with a few rows: the long reductions (K = 512, 1408, 2048) are where
// the fp32 accumulation bound is widest.
TEST(GemmBf16, ModelShapesLongReductions) {
  RRT_SKIP_WITHOUT_BF16_GEMM();
  check_case({false, true, 16, 1408, 512}, true, 11);    // gate/up forward, x W^T
  check_case({false, true, 16, 512, 1408}, true, 12);    // down forward
  check_case({false, false, 16, 1408, 512}, false, 13);  // dx = dy W
  Case dw{true, false, 32, 48, 2048};                    // dW += dy^T x over 2048 tokens
  dw.beta = 1.f;
  check_case(dw, false, 14);
  check_case({false, true, 16, 32, 512}, true, 15);  // LoRA A, r = 32
  check_case({false, true, 16, 512, 32}, true, 16);  // LoRA B
}

TEST(GemmBf16, EmptyProducts) {
  RRT_SKIP_WITHOUT_BF16_GEMM();
  // K = 0: C = beta C + bias, with no product to form.
  Case c{false, false, 5, 9, 0, 1, 0, 2};  // BLAS leading dimensions: at least 1
  c.beta = 0.5f;
  c.bias = true;
  check_case(c, true, 21);
  c.bias = false;
  check_case(c, false, 22);
  // M = 0 or N = 0: nothing to write, and null pointers are fine.
  gemm(false, false, 0, 4, 4, 1.f, nullptr, 4, nullptr, 4, 0.f, static_cast<float*>(nullptr), 4);
  gemm(false, false, 4, 0, 4, 1.f, nullptr, 4, nullptr, 1, 0.f, static_cast<bf16*>(nullptr), 1);
}

TEST(GemmBf16, BadLeadingDimensionIsAnErrorNamingIt) {
  RRT_SKIP_WITHOUT_BF16_GEMM();
  std::vector<bf16> a(64), b(64);
  std::vector<float> c(64);
  try {
    gemm(false, false, 4, 4, 8, 1.f, a.data(), 7, b.data(), 4, 0.f, c.data(), 4);
    FAIL() << "lda 7 < K 8 was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("lda=7"), std::string::npos) << e.what();
  }
  EXPECT_THROW(gemm(false, true, 4, 4, 8, 1.f, a.data(), 8, b.data(), 4, 0.f, c.data(), 4), Error);
  EXPECT_THROW(gemm(false, false, 4, 5, 8, 1.f, a.data(), 8, b.data(), 5, 0.f, c.data(), 4), Error);
}

// No supported shape may fall back to oneDNN's reference loop ("ref:..."), which runs two to
// three orders of magnitude slower and would pass every numerical test.
TEST(GemmBf16, NoShapeTakesTheReferenceKernel) {
  RRT_SKIP_WITHOUT_BF16_GEMM();
  struct S {
    bool ta, tb;
    int64_t M, N, K;
  };
  const S shapes[] = {{false, true, 2048, 512, 512},   {false, true, 2048, 1408, 512},
                      {false, true, 2048, 512, 1408},  {false, true, 2048, 8192, 512},
                      {false, true, 2048, 32, 512},    {false, true, 2048, 512, 32},
                      {false, false, 2048, 512, 1408}, {true, false, 1408, 512, 2048},
                      {true, true, 64, 64, 64},        {false, false, 7, 33, 129}};
  for (const S& s : shapes)
    for (DType out : {DType::f32, DType::bf16})
      for (bool acc : {false, true}) {
        const int64_t lda = s.ta ? s.M : s.K, ldb = s.tb ? s.K : s.N;
        const bool bias = out == DType::bf16 && !acc;
        const std::string impl =
            gemm_impl(s.ta, s.tb, s.M, s.N, s.K, lda, ldb, s.N, out, acc, bias);
        EXPECT_NE(impl.rfind("ref", 0), 0u)
            << impl << " for " << s.ta << s.tb << " " << s.M << "x" << s.N << "x" << s.K;
      }
  // The padded leading dimensions of the tests above, too.
  const std::string padded =
      gemm_impl(false, true, 33, 17, 65, 68, 70, 24, DType::bf16, true, false);
  EXPECT_NE(padded.rfind("ref", 0), 0u) << padded;
}

TEST(GemmBf16, PrimitivesAreCachedAndTheCacheIsBounded) {
  RRT_SKIP_WITHOUT_BF16_GEMM();
  set_gemm_cache_capacity(4);
  clear_gemm_cache();
  std::vector<bf16> a(64 * 64, bf16::from_float(1.f)), b(64 * 64, bf16::from_float(1.f));
  std::vector<float> c(64 * 64);
  // ldb 16: a key none of the shapes below repeats.
  for (int rep = 0; rep < 3; ++rep)
    gemm(false, false, 8, 8, 8, 1.f, a.data(), 8, b.data(), 16, 0.f, c.data(), 8);
  GemmCacheStats s = gemm_cache_stats();
  EXPECT_EQ(s.misses, 1);
  EXPECT_EQ(s.hits, 2);
  EXPECT_EQ(c[0], 8.f);
  for (int64_t n = 1; n <= 10; ++n)  // ten distinct shapes through a cache of four
    gemm(false, false, 8, n, 8, 1.f, a.data(), 8, b.data(), n, 0.f, c.data(), n);
  s = gemm_cache_stats();
  EXPECT_EQ(s.entries, 4);
  EXPECT_EQ(s.capacity, 4);
  EXPECT_EQ(s.evictions, 7);  // 11 shapes created, 4 kept
  // The most recent shape is still there; the first was evicted.
  gemm(false, false, 8, 10, 8, 1.f, a.data(), 8, b.data(), 10, 0.f, c.data(), 10);
  EXPECT_EQ(gemm_cache_stats().hits, s.hits + 1);
  gemm(false, false, 8, 8, 8, 1.f, a.data(), 8, b.data(), 16, 0.f, c.data(), 8);
  EXPECT_EQ(gemm_cache_stats().misses, s.misses + 1);
  EXPECT_THROW(set_gemm_cache_capacity(0), Error);
  set_gemm_cache_capacity(kDefaultGemmCacheCapacity);
}

// Several threads share the cache and its primitives: same shapes and different ones at once.
TEST(GemmBf16, ConcurrentCallsFromSeveralThreads) {
  RRT_SKIP_WITHOUT_BF16_GEMM();
  set_gemm_cache_capacity(3);  // small, so that threads also evict each other's entries
  constexpr int kThreads = 4, kIters = 40;
  std::vector<int> wrong(kThreads, 0);
  std::vector<std::thread> pool;
  for (int t = 0; t < kThreads; ++t) {
    pool.emplace_back([t, &wrong] {
      for (int it = 0; it < kIters; ++it) {
        const int64_t n = 1 + (t + it) % 6, k = 16 + t;
        std::vector<bf16> a(4 * k, bf16::from_float(1.f)), b(k * n, bf16::from_float(0.5f));
        std::vector<bf16> c(4 * n);
        gemm(false, false, 4, n, k, 1.f, a.data(), k, b.data(), n, 0.f, c.data(), n);
        for (const bf16& v : c) wrong[t] += v.to_float() != 0.5f * static_cast<float>(k);
      }
    });
  }
  for (auto& th : pool) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(wrong[t], 0) << "thread " << t;
  set_gemm_cache_capacity(kDefaultGemmCacheCapacity);
}

TEST(GemmBf16, PathNamesTheLibraryOrWhyNot) {
  const std::string path = gemm_path();
  std::printf("bf16 GEMM path: %s\n", path.c_str());
  if (gemm_available()) {
    EXPECT_EQ(path.rfind("oneDNN ", 0), 0u) << path;
    const CpuFeatures& f = cpu_features();
    // The ISA oneDNN runs is the one the CPU flags promise.
    EXPECT_NE(path.find(cpu_has_amx_bf16(f) ? "amx" : "avx512_core_bf16"), std::string::npos)
        << path;
  } else {
    EXPECT_EQ(path, "unavailable (" + gemm_unavailable_reason() + ")");
  }
}

// `rrt --version` names the same path on its second line, available or not.
TEST(GemmBf16, RrtVersionNamesThePath) {
  FILE* p = popen((std::string(RRT_CLI_PATH) + " --version").c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  std::array<char, 256> buf{};
  while (fgets(buf.data(), buf.size(), p)) out += buf.data();
  EXPECT_EQ(pclose(p), 0) << out;
  EXPECT_NE(out.find("\nbf16: " + gemm_path() + "\n"), std::string::npos) << out;
}

// The refusal itself: always tested, whatever this machine has.
TEST(GemmBf16, RefusesWithTheReasonWhereItCannotRun) {
  CpuFeatures none;  // a CPU with neither flag
  none.avx512f = none.avx512_core = true;
#if RRT_HAVE_ONEDNN
  EXPECT_EQ(gemm_unavailable_reason(none), "this CPU has neither AMX nor AVX512_BF16");
  CpuFeatures amx_refused = none;
  amx_refused.amx_tile = amx_refused.amx_bf16 = true;
  EXPECT_NE(gemm_unavailable_reason(amx_refused).find("OS refused the tile state"),
            std::string::npos);
  CpuFeatures bf = none;
  bf.avx512_bf16 = true;
  EXPECT_EQ(gemm_unavailable_reason(bf), "");
#else
  EXPECT_NE(gemm_unavailable_reason(none).find("no oneDNN"), std::string::npos);
#endif
  if (!gemm_available()) {
    std::vector<bf16> a(4), b(4);
    std::vector<float> c(4);
    try {
      gemm(false, false, 2, 2, 2, 1.f, a.data(), 2, b.data(), 2, 0.f, c.data(), 2);
      FAIL() << "gemm ran although unavailable";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(gemm_unavailable_reason()), std::string::npos)
          << e.what();
    }
  }
}

}  // namespace
}  // namespace rrt::ops::cpu_bf16
