// Tensor comparison used by the parity tests.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

namespace rrt::testing {

// max |a - b| over max |b|: the parity criterion is <= 1e-4 of each tensor's magnitude.
inline double relative_max_error(const float* a, const std::vector<float>& b) {
  double err = 0, mag = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    err = std::max(err, std::fabs(static_cast<double>(a[i]) - b[i]));
    mag = std::max(mag, std::fabs(static_cast<double>(b[i])));
  }
  return mag > 0 ? err / mag : err;
}

}  // namespace rrt::testing
