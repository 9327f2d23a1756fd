// What converting a plain model into a recursive one (model/convert.h) starts from: the layer
// selection tables of every init rule (init_sources) and the SVD that initialises LoRA
// (model/svd.h). The conversions themselves are in test_convert.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "model/convert.h"
#include "model/svd.h"

namespace rrt {
namespace {

using Table = std::vector<std::vector<int64_t>>;

Table singles(std::vector<int64_t> v) {
  Table t;
  for (int64_t x : v) t.push_back({x});
  return t;
}

// ---------------------------------------------------------------------------------------------
// 1. init_sources tables. The stepwise rows are round(linspace(0, L-1, B)) worked out by hand:
//   (18, 9):  step 17/8 = 2.125   -> 0 2.125 4.25 6.375 8.5(->8, even) 10.625 12.75 14.875 17
//   (22, 11): step 21/10 = 2.1    -> 0 2.1 4.2 6.3 8.4 10.5(->10, even) 12.6 14.7 16.8 18.9 21
//   (16, 8):  step 15/7 = 2.142.. -> 0 2.14 4.29 6.43 8.57 10.71 12.86 15
//   (24, 8):  step 23/7 = 3.285.. -> 0 3.29 6.57 9.86 13.14 16.43 19.71 23
struct Case {
  int64_t L, B;
  std::vector<int64_t> stepwise;
};
const Case kCases[] = {
    {18, 9, {0, 2, 4, 6, 8, 11, 13, 15, 17}},
    {22, 11, {0, 2, 4, 6, 8, 10, 13, 15, 17, 19, 21}},
    {16, 8, {0, 2, 4, 6, 9, 11, 13, 15}},
    {24, 8, {0, 3, 7, 10, 13, 16, 20, 23}},
};

TEST(InitSources, StepwiseIsRoundedLinspaceForBothSharings) {
  for (const Case& c : kCases)
    for (Sharing s : {Sharing::cycle, Sharing::sequence})
      EXPECT_EQ(init_sources(c.L, c.B, s, InitRule::stepwise), singles(c.stepwise))
          << c.L << "/" << c.B << " " << to_string(s);
}

TEST(InitSources, AverageCycleTakesTheStridedGroup) {
  Table gemma;
  for (int64_t b = 0; b < 9; ++b) gemma.push_back({b, b + 9});
  EXPECT_EQ(init_sources(18, 9, Sharing::cycle, InitRule::average), gemma);
  Table t24;  // K = 3
  for (int64_t b = 0; b < 8; ++b) t24.push_back({b, b + 8, b + 16});
  EXPECT_EQ(init_sources(24, 8, Sharing::cycle, InitRule::average), t24);
  for (const Case& c : kCases) {
    Table t = init_sources(c.L, c.B, Sharing::cycle, InitRule::average);
    ASSERT_EQ(static_cast<int64_t>(t.size()), c.B);
    for (int64_t b = 0; b < c.B; ++b) {
      ASSERT_EQ(static_cast<int64_t>(t[b].size()), c.L / c.B);
      for (int64_t k = 0; k < c.L / c.B; ++k) EXPECT_EQ(t[b][k], b + k * c.B);
    }
  }
}

TEST(InitSources, AverageSequenceTakesConsecutiveGroups) {
  Table gemma;
  for (int64_t b = 0; b < 9; ++b) gemma.push_back({2 * b, 2 * b + 1});
  EXPECT_EQ(init_sources(18, 9, Sharing::sequence, InitRule::average), gemma);
  EXPECT_EQ(init_sources(24, 8, Sharing::sequence, InitRule::average), (Table{{0, 1, 2},
                                                                              {3, 4, 5},
                                                                              {6, 7, 8},
                                                                              {9, 10, 11},
                                                                              {12, 13, 14},
                                                                              {15, 16, 17},
                                                                              {18, 19, 20},
                                                                              {21, 22, 23}}));
  for (const Case& c : kCases) {
    const int64_t K = c.L / c.B;
    Table t = init_sources(c.L, c.B, Sharing::sequence, InitRule::average);
    ASSERT_EQ(static_cast<int64_t>(t.size()), c.B);
    for (int64_t b = 0; b < c.B; ++b) {
      ASSERT_EQ(static_cast<int64_t>(t[b].size()), K);
      for (int64_t k = 0; k < K; ++k) EXPECT_EQ(t[b][k], b * K + k);
    }
  }
}

TEST(InitSources, LowerAndUpper) {
  EXPECT_EQ(init_sources(18, 9, Sharing::cycle, InitRule::lower),
            singles({0, 1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(init_sources(18, 9, Sharing::cycle, InitRule::upper),
            singles({9, 10, 11, 12, 13, 14, 15, 16, 17}));
  EXPECT_EQ(init_sources(18, 9, Sharing::sequence, InitRule::lower),
            singles({0, 2, 4, 6, 8, 10, 12, 14, 16}));
  EXPECT_EQ(init_sources(18, 9, Sharing::sequence, InitRule::upper),
            singles({1, 3, 5, 7, 9, 11, 13, 15, 17}));
  EXPECT_EQ(init_sources(24, 8, Sharing::sequence, InitRule::lower),
            singles({0, 3, 6, 9, 12, 15, 18, 21}));
  EXPECT_EQ(init_sources(24, 8, Sharing::cycle, InitRule::upper),
            singles({16, 17, 18, 19, 20, 21, 22, 23}));
  for (const Case& c : kCases) {
    const int64_t K = c.L / c.B;
    Table lc = init_sources(c.L, c.B, Sharing::cycle, InitRule::lower);
    Table ls = init_sources(c.L, c.B, Sharing::sequence, InitRule::lower);
    Table uc = init_sources(c.L, c.B, Sharing::cycle, InitRule::upper);
    Table us = init_sources(c.L, c.B, Sharing::sequence, InitRule::upper);
    for (int64_t b = 0; b < c.B; ++b) {
      EXPECT_EQ(lc[b], std::vector<int64_t>{b});
      EXPECT_EQ(ls[b], std::vector<int64_t>{b * K});
      EXPECT_EQ(uc[b], std::vector<int64_t>{c.L - c.B + b});
      EXPECT_EQ(us[b], std::vector<int64_t>{b * K + K - 1});
    }
  }
}

TEST(InitSources, RandomPicksFromTheGroupDeterministically) {
  for (const Case& c : kCases)
    for (Sharing s : {Sharing::cycle, Sharing::sequence}) {
      Table avg = init_sources(c.L, c.B, s, InitRule::average);
      Table r1 = init_sources(c.L, c.B, s, InitRule::random, 7);
      EXPECT_EQ(r1, init_sources(c.L, c.B, s, InitRule::random, 7));
      for (int64_t b = 0; b < c.B; ++b) {
        ASSERT_EQ(r1[b].size(), 1u);
        EXPECT_NE(std::find(avg[b].begin(), avg[b].end(), r1[b][0]), avg[b].end());
      }
    }
  // Some seed picks a layer other than the first of the group.
  bool varied = false;
  for (uint64_t seed = 1; seed < 20 && !varied; ++seed)
    varied = init_sources(18, 9, Sharing::cycle, InitRule::random, seed) !=
             init_sources(18, 9, Sharing::cycle, InitRule::lower);
  EXPECT_TRUE(varied);
}

TEST(InitSources, RejectsBlockNotDividingDepth) {
  EXPECT_THROW(init_sources(18, 4, Sharing::cycle, InitRule::stepwise), Error);
  EXPECT_THROW(init_sources(18, 0, Sharing::cycle, InitRule::stepwise), Error);
  EXPECT_EQ(init_sources(5, 1, Sharing::cycle, InitRule::stepwise), singles({0}));
  EXPECT_EQ(init_sources(5, 5, Sharing::cycle, InitRule::stepwise), singles({0, 1, 2, 3, 4}));
}

// ---------------------------------------------------------------------------------------------
// 2. SVD.
std::vector<float> random_matrix(int64_t n, uint64_t stream) {
  std::vector<float> m(n);
  fill_normal(m.data(), n, 0.0, 1.0, 99, stream);
  return m;
}

// (U S) [rows, r] times Vt [r, cols], in double.
std::vector<double> product(const std::vector<float>& US, const std::vector<float>& Vt,
                            int64_t rows, int64_t cols, int64_t r) {
  std::vector<double> out(rows * cols, 0.0);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t k = 0; k < r; ++k)
      for (int64_t j = 0; j < cols; ++j)
        out[i * cols + j] += double(US[i * r + k]) * Vt[k * cols + j];
  return out;
}

TEST(Svd, FullRankReconstructsAndValuesDescend) {
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{13, 7}, {7, 13}, {10, 10}}) {
    std::vector<float> M = random_matrix(rows * cols, rows * 100 + cols);
    const int64_t k = std::min(rows, cols);
    std::vector<float> US(rows * k), Vt(k * cols);
    std::vector<double> sv;
    truncated_svd(M.data(), rows, cols, k, US.data(), Vt.data(), &sv);
    std::vector<double> P = product(US, Vt, rows, cols, k);
    for (int64_t i = 0; i < rows * cols; ++i) EXPECT_NEAR(P[i], M[i], 1e-5) << rows << "x" << cols;
    ASSERT_EQ(static_cast<int64_t>(sv.size()), k);
    for (int64_t i = 0; i + 1 < k; ++i) EXPECT_GE(sv[i], sv[i + 1]);
    EXPECT_GT(sv[k - 1], 0.0);
    // Vt rows are orthonormal.
    for (int64_t a = 0; a < k; ++a)
      for (int64_t b = 0; b < k; ++b) {
        double dot = 0;
        for (int64_t j = 0; j < cols; ++j) dot += double(Vt[a * cols + j]) * Vt[b * cols + j];
        EXPECT_NEAR(dot, a == b ? 1.0 : 0.0, 1e-5);
      }
  }
}

TEST(Svd, RecoversALowRankMatrixExactly) {
  const int64_t rows = 12, cols = 9, r = 3;
  std::vector<float> X = random_matrix(rows * r, 1), Y = random_matrix(r * cols, 2);
  std::vector<double> Md = product(X, Y, rows, cols, r);
  std::vector<float> US(rows * r), Vt(r * cols);
  std::vector<double> sv;
  truncated_svd(Md.data(), rows, cols, r, US.data(), Vt.data(), &sv);
  std::vector<double> P = product(US, Vt, rows, cols, r);
  double mx = 0;
  for (double v : Md) mx = std::max(mx, std::fabs(v));
  for (int64_t i = 0; i < rows * cols; ++i) EXPECT_NEAR(P[i], Md[i], 1e-5 * mx);
  // The remaining singular values vanish.
  for (size_t i = r; i < sv.size(); ++i) EXPECT_LT(sv[i], 1e-10 * sv[0]);
  // A rank below the true rank leaves an error of exactly the dropped singular value (spectral).
  std::vector<float> US2(rows * 2), Vt2(2 * cols);
  truncated_svd(Md.data(), rows, cols, 2, US2.data(), Vt2.data());
  std::vector<double> P2 = product(US2, Vt2, rows, cols, 2);
  double fro = 0;
  for (int64_t i = 0; i < rows * cols; ++i) fro += (P2[i] - Md[i]) * (P2[i] - Md[i]);
  EXPECT_NEAR(std::sqrt(fro), sv[2], 1e-4 * sv[0]);
}

// Low ranks of large matrices take the randomized path (model/svd.cpp); passing
// singular_values forces the exact one. The randomized rank-r error must be within 1% of the
// optimum, on a decaying spectrum and on a flat (Gaussian) one, the hard case.
TEST(Svd, RandomizedLowRankIsNearOptimal) {
  const int64_t rows = 200, cols = 150, r = 5;
  for (bool decaying : {true, false}) {
    std::vector<float> X = random_matrix(rows * cols, 11), Y = random_matrix(cols * cols, 12);
    if (decaying)
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t k = 0; k < cols; ++k)
          X[i * cols + k] *= static_cast<float>(std::exp(-k / 10.0));
    std::vector<double> M = product(X, Y, rows, cols, cols);
    auto error_of = [&](bool exact) {
      std::vector<float> US(rows * r), Vt(r * cols);
      std::vector<double> sv;
      truncated_svd(M.data(), rows, cols, r, US.data(), Vt.data(), exact ? &sv : nullptr);
      std::vector<double> P = product(US, Vt, rows, cols, r);
      double fro = 0;
      for (int64_t i = 0; i < rows * cols; ++i) fro += (P[i] - M[i]) * (P[i] - M[i]);
      return std::sqrt(fro);
    };
    const double exact = error_of(true), fast = error_of(false);
    EXPECT_LE(fast, 1.01 * exact) << (decaying ? "decaying" : "flat") << " spectrum";
    EXPECT_GE(fast, exact * (1 - 1e-9));  // sanity: no rank-r approximation beats the optimum
  }
}

TEST(Svd, RejectsBadRank) {
  std::vector<float> M = random_matrix(12, 3), US(100), Vt(100);
  EXPECT_THROW(truncated_svd(M.data(), 3, 4, 4, US.data(), Vt.data()), Error);
  EXPECT_THROW(truncated_svd(M.data(), 3, 4, -1, US.data(), Vt.data()), Error);
  EXPECT_NO_THROW(truncated_svd(M.data(), 3, 4, 0, US.data(), Vt.data()));
}

}  // namespace
}  // namespace rrt
