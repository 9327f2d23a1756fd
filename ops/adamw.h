// AdamW (Loshchilov & Hutter), matching torch.optim.AdamW:
//   p <- p (1 - lr wd)                        (decoupled decay; wd = 0 for no-decay params)
//   m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
//   p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// `step` counts from 1.
#pragma once

#include <cstdint>

namespace rrt::ops {

struct AdamWHyper {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
};

template <typename S>
void adamw_step(S* param, const S* grad, S* m, S* v, int64_t n, const AdamWHyper& hyper,
                bool decay, int64_t step);

}  // namespace rrt::ops
