#include "ops/logit_softcap.h"

namespace rrt::ops {

template <typename S>
void softcap_logits(S* z, int64_t n, double cap) {
  if (cap <= 0) return;
  const S c = static_cast<S>(cap);
#pragma omp parallel for schedule(static) if (n >= (int64_t{1} << 16))
  for (int64_t i = 0; i < n; ++i) z[i] = softcap_value(z[i], c);
}

template void softcap_logits<float>(float*, int64_t, double);
template void softcap_logits<double>(double*, int64_t, double);

}  // namespace rrt::ops
