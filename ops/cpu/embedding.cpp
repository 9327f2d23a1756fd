#include "ops/embedding.h"

#include "core/error.h"

namespace rrt::ops {

template <typename S>
void embedding_forward(const int32_t* tokens, const S* table, S* out, int64_t M, int64_t D,
                       int64_t V, S scale) {
  for (int64_t i = 0; i < M; ++i)
    RRT_CHECK(tokens[i] >= 0 && tokens[i] < V, "embedding", "token ", tokens[i], " at position ",
              i, " is outside the vocabulary of ", V, "; does the data match the tokenizer?");
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < M; ++i) {
    const S* row = table + static_cast<int64_t>(tokens[i]) * D;
    for (int64_t j = 0; j < D; ++j) out[i * D + j] = scale * row[j];
  }
}

template <typename S>
void embedding_backward(const int32_t* tokens, const S* dout, S* dtable, int64_t M, int64_t D,
                        S scale) {
  // Columns in parallel: rows may repeat a token, columns never collide.
#pragma omp parallel for schedule(static)
  for (int64_t j0 = 0; j0 < D; j0 += 16) {
    int64_t j1 = j0 + 16 < D ? j0 + 16 : D;
    for (int64_t i = 0; i < M; ++i) {
      S* row = dtable + static_cast<int64_t>(tokens[i]) * D;
      for (int64_t j = j0; j < j1; ++j) row[j] += scale * dout[i * D + j];
    }
  }
}

template void embedding_forward<float>(const int32_t*, const float*, float*, int64_t, int64_t,
                                       int64_t, float);
template void embedding_forward<double>(const int32_t*, const double*, double*, int64_t, int64_t,
                                        int64_t, double);
template void embedding_backward<float>(const int32_t*, const float*, float*, int64_t, int64_t,
                                        float);
template void embedding_backward<double>(const int32_t*, const double*, double*, int64_t, int64_t,
                                         double);

}  // namespace rrt::ops
