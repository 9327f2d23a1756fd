#include "ops/cross_entropy.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "ops/logit_softcap.h"
#include "ops/matmul.h"

namespace rrt::ops {

template <typename S>
CrossEntropyResult lm_head_cross_entropy(const S* h, const S* W, const int32_t* targets, S* dh,
                                         S* dW, int64_t M, int64_t D, int64_t V,
                                         int32_t ignore_index, S weight, S* workspace,
                                         int64_t chunk, double softcap) {
  RRT_CHECK(softcap >= 0, "cross_entropy", "softcap must be >= 0 (0: off), got ", softcap);
  CrossEntropyResult result;
  for (int64_t i = 0; i < M; ++i) {
    if (targets[i] == ignore_index) continue;
    RRT_CHECK(targets[i] >= 0 && targets[i] < V, "cross_entropy", "target ", targets[i], " at row ",
              i, " is outside the vocabulary of ", V);
    ++result.counted;
  }
  if (result.counted == 0) return result;
  const bool backward = dh != nullptr || dW != nullptr;
  const S grad_scale = weight / static_cast<S>(result.counted);
  double loss_sum = 0;
  for (int64_t r0 = 0; r0 < M; r0 += chunk) {
    const int64_t rows = std::min(chunk, M - r0);
    S* logits = workspace;
    gemm<S>(false, true, rows, V, D, S(1), h + r0 * D, D, W, D, S(0), logits, V);
    softcap_logits(logits, rows * V, softcap);
    double chunk_loss = 0;
#pragma omp parallel for schedule(static) reduction(+ : chunk_loss)
    for (int64_t r = 0; r < rows; ++r) {
      S* row = logits + r * V;
      const int32_t target = targets[r0 + r];
      if (target == ignore_index) {
        if (backward) std::fill(row, row + V, S(0));
        continue;
      }
      const S m = *std::max_element(row, row + V);
      double sum = 0;
      for (int64_t j = 0; j < V; ++j) sum += std::exp(static_cast<double>(row[j] - m));
      const double lse = static_cast<double>(m) + std::log(sum);
      chunk_loss += lse - static_cast<double>(row[target]);
      if (backward) {
        // softmax - onehot, times dc/dz of the soft-cap (read off the capped logit it replaces)
        const S cap = static_cast<S>(softcap);
        for (int64_t j = 0; j < V; ++j) {
          const S zj = row[j];
          S g = grad_scale * static_cast<S>(std::exp(static_cast<double>(zj) - lse));
          if (j == target) g -= grad_scale;
          row[j] = softcap > 0 ? g * softcap_slope(zj, cap) : g;
        }
      }
    }
    loss_sum += chunk_loss;
    if (dh) gemm<S>(false, false, rows, D, V, S(1), logits, V, W, D, S(1), dh + r0 * D, D);
    if (dW) gemm<S>(true, false, V, D, rows, S(1), logits, V, h + r0 * D, D, S(1), dW, D);
  }
  result.mean_loss = loss_sum / static_cast<double>(result.counted);
  return result;
}

template CrossEntropyResult lm_head_cross_entropy<float>(const float*, const float*, const int32_t*,
                                                         float*, float*, int64_t, int64_t, int64_t,
                                                         int32_t, float, float*, int64_t, double);
template CrossEntropyResult lm_head_cross_entropy<double>(const double*, const double*,
                                                          const int32_t*, double*, double*, int64_t,
                                                          int64_t, int64_t, int32_t, double,
                                                          double*, int64_t, double);

}  // namespace rrt::ops
