// Chunked LM head + log-softmax + cross-entropy: the N*T x V logits never exist at once.
//   h: [M, D] (final hidden states), W: [V, D] (head or tied embedding), targets: [M]
// Rows are processed `chunk` at a time: logits = h_c W^T in scratch [chunk, V], then per row
// lse = log sum exp, loss = lse - logit[target], and (when dh/dW are given) the gradient
// g = weight/n_valid * (softmax - onehot) is pushed back at once: dh_c += g W, dW += g^T h_c.
// Rows whose target equals ignore_index contribute nothing and do not count.
// softcap > 0: the logits are soft-capped first (ops/logit_softcap.h), loss and gradient are the
// capped logits' (g times 1 - tanh^2).
#pragma once

#include <cstdint>

namespace rrt::ops {

struct CrossEntropyResult {
  double mean_loss = 0;  // over counted rows
  int64_t counted = 0;   // rows whose target is not ignore_index
};

inline int64_t lm_head_workspace_elems(int64_t V, int64_t chunk) { return V * chunk; }

// dh and dW may both be null (evaluation). `weight` scales the gradient (e.g. 1/accum steps).
template <typename S>
CrossEntropyResult lm_head_cross_entropy(const S* h, const S* W, const int32_t* targets, S* dh,
                                         S* dW, int64_t M, int64_t D, int64_t V,
                                         int32_t ignore_index, S weight, S* workspace,
                                         int64_t chunk, double softcap = 0);

}  // namespace rrt::ops
