// Token embedding: forward rows, gradient into the table (repeated tokens, scale != 1), and a
// clear error for tokens outside the vocabulary.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "ops/embedding.h"
#include "tests/ops/gradcheck.h"
#include "tests/ops/op_cases.h"

namespace rrt::ops {
namespace {

using testing::check_gradients;
using testing::random_vector;
using testing::weighted_sum;

namespace cases = testing::op_cases;
namespace tol = cases::embedding_tol;
using cases::EmbeddingCase;

// The shared table (tests/ops/op_cases.h): every case runs on every backend.
class Embedding : public ::testing::TestWithParam<EmbeddingCase> {};
INSTANTIATE_TEST_SUITE_P(Table, Embedding, ::testing::ValuesIn(cases::embedding_cases()),
                         cases::kCaseName);

TEST_P(Embedding, ForwardCopiesScaledRows) {
  const EmbeddingCase& c = GetParam();
  {
    const int64_t M = static_cast<int64_t>(c.tokens.size());
    const auto table = random_vector(c.V * c.D, 1);
    std::vector<double> out(M * c.D, -1.0);
    embedding_forward(c.tokens.data(), table.data(), out.data(), M, c.D, c.V, c.scale);
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < c.D; ++j)
        ASSERT_EQ(out[i * c.D + j], c.scale * table[c.tokens[i] * c.D + j]) << i << "," << j;

    const auto table_f = testing::to_float(table);
    std::vector<float> out_f(M * c.D);
    embedding_forward(c.tokens.data(), table_f.data(), out_f.data(), M, c.D, c.V,
                      static_cast<float>(c.scale));
    testing::expect_near_all("out (float)", out_f, out, tol::kCpuF32.rel, tol::kCpuF32.abs);
  }
}

TEST_P(Embedding, GradientMatchesFiniteDifferences) {
  const EmbeddingCase& c = GetParam();
  const int64_t M = static_cast<int64_t>(c.tokens.size());
  auto table = random_vector(c.V * c.D, 2);
  const auto w = random_vector(M * c.D, 3);
  if (c.V * c.D > tol::kCpuFdMaxTable) {
    // The op is linear in the table: its gradient is the scatter-add of scale * w by token.
    std::vector<double> expected(table.size(), 0.5), got(table.size(), 0.5);
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < c.D; ++j) expected[c.tokens[i] * c.D + j] += c.scale * w[i * c.D + j];
    embedding_backward(c.tokens.data(), w.data(), got.data(), M, c.D, c.scale);
    testing::expect_near_all("dtable", got, expected, tol::kCpuScatterF64.rel,
                             tol::kCpuScatterF64.abs);
    return;
  }
  {
    std::vector<double> out(M * c.D);
    auto loss = [&] {
      embedding_forward(c.tokens.data(), table.data(), out.data(), M, c.D, c.V, c.scale);
      return weighted_sum(out, w);
    };
    auto backward = [&](std::vector<std::vector<double>>& g) {
      embedding_backward(c.tokens.data(), w.data(), g[0].data(), M, c.D, c.scale);
    };
    check_gradients({{"table", &table}}, loss, backward);
  }
}

TEST(EmbeddingEdge, RepeatedTokenGradientSumsAllOccurrences) {
  const int64_t V = 4, D = 2;
  const std::vector<int32_t> tokens = {2, 1, 2, 2};
  const std::vector<double> dout = {1, 10, 2, 20, 3, 30, 4, 40};
  std::vector<double> dtable(V * D, 0.0);
  embedding_backward(tokens.data(), dout.data(), dtable.data(), 4, D, 2.0);
  const std::vector<double> expected = {0, 0, 4, 40, 16, 160, 0, 0};
  EXPECT_EQ(dtable, expected);
}

TEST(EmbeddingEdge, OutOfVocabularyTokenThrows) {
  const int64_t V = 6, D = 3;
  const auto table = random_vector(V * D, 4);
  std::vector<double> out(2 * D);
  for (int32_t bad : {6, 1000, -1}) {
    const std::vector<int32_t> tokens = {0, bad};
    try {
      embedding_forward(tokens.data(), table.data(), out.data(), 2, D, V, 1.0);
      ADD_FAILURE() << "token " << bad << " did not throw";
    } catch (const rrt::Error& e) {
      EXPECT_EQ(e.where(), "embedding");
      EXPECT_NE(std::string(e.what()).find("token " + std::to_string(bad)), std::string::npos)
          << e.what();
    }
  }
  const std::vector<float> table_f(V * D, 0.0f);
  std::vector<float> out_f(D);
  const int32_t bad = V;
  EXPECT_THROW(embedding_forward(&bad, table_f.data(), out_f.data(), 1, D, V, 1.0f), rrt::Error);
}

}  // namespace
}  // namespace rrt::ops
