#include "ops/adamw.h"

#include <cmath>

#include "core/error.h"

namespace rrt::ops {

template <typename S>
void adamw_step(S* p, const S* g, S* m, S* v, int64_t n, const AdamWHyper& hp, bool decay,
                int64_t step) {
  RRT_CHECK(step >= 1, "adamw", "step counts from 1, got ", step);
  const double bc1 = 1.0 - std::pow(hp.beta1, static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(hp.beta2, static_cast<double>(step));
  const S shrink = static_cast<S>(1.0 - hp.lr * (decay ? hp.weight_decay : 0.0));
  const S step_size = static_cast<S>(hp.lr / bc1), inv_sqrt_bc2 = static_cast<S>(1.0 / std::sqrt(bc2));
  const S b1 = static_cast<S>(hp.beta1), b2 = static_cast<S>(hp.beta2), eps = static_cast<S>(hp.eps);
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const S gi = g[i];
    m[i] = b1 * m[i] + (S(1) - b1) * gi;
    v[i] = b2 * v[i] + (S(1) - b2) * gi * gi;
    p[i] = p[i] * shrink - step_size * m[i] / (std::sqrt(v[i]) * inv_sqrt_bc2 + eps);
  }
}

template void adamw_step<float>(float*, const float*, float*, float*, int64_t, const AdamWHyper&,
                                bool, int64_t);
template void adamw_step<double>(double*, const double*, double*, double*, int64_t,
                                 const AdamWHyper&, bool, int64_t);

}  // namespace rrt::ops
