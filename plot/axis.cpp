#include "plot/axis.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace rrt {

bool wants_log_axis(double lo, double hi) {
  return std::isfinite(lo) && std::isfinite(hi) && lo > 0 && hi > kLogAxisMinRatio * lo;
}

std::vector<double> nice_ticks(double lo, double hi, int target, double min_step) {
  if (!(hi > lo) || !std::isfinite(lo) || !std::isfinite(hi)) return {lo};
  const double rough = (hi - lo) / std::max(1, target);
  const double magnitude = std::pow(10.0, std::floor(std::log10(rough)));
  double step = magnitude;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * magnitude >= rough) {
      step = m * magnitude;
      break;
    }
  step = std::max(step, min_step);
  std::vector<double> ticks;  // integer multiples of the step: no drift from adding it up
  for (double k = std::ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k += 1)
    ticks.push_back(k == 0 ? 0.0 : k * step);  // not -0, which prints as "-0"
  return ticks;
}

std::string tick_label(double value, double step) {
  const char* unit = "";
  double scale = 1;
  if (step >= 1e6) {
    unit = "M";
    scale = 1e6;
  } else if (step >= 1e3) {
    unit = "k";
    scale = 1e3;
  }
  const double v = value / scale, s = step / scale;
  int decimals = 0;  // as many as the step needs: 0.5 -> 1, 0.25 -> 2
  while (decimals < 6 &&
         std::abs(s * std::pow(10.0, decimals) - std::round(s * std::pow(10.0, decimals))) > 1e-6)
    ++decimals;
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f%s", decimals, v, unit);
  return buf;
}

std::vector<double> log_ticks(double lo, double hi, int target) {
  if (!(lo > 0) || !(hi > lo) || !std::isfinite(hi)) return {};
  // A little slack: 1000 computed as 999.9999 is still a tick.
  const int first = static_cast<int>(std::ceil(std::log10(lo) - 1e-9));
  const int last = static_cast<int>(std::floor(std::log10(hi) + 1e-9));
  std::vector<double> ticks;
  if (last - first + 1 < 2) {
    for (int k = first - 1; k <= last; ++k)
      for (double m : {1.0, 2.0, 5.0}) {
        const double v = m * std::pow(10.0, k);
        if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) ticks.push_back(v);
      }
    return ticks;
  }
  int every = 1;  // decades between ticks
  for (int d : {1, 2, 5, 10, 20, 50, 100}) {
    every = d;
    if ((last - first) / d + 1 <= std::max(2, target)) break;
  }
  for (int k = first; k <= last; ++k)
    if (((k % every) + every) % every == 0) ticks.push_back(std::pow(10.0, k));
  return ticks;
}

std::string log_tick_label(double value) {
  char buf[48];
  if (!(value > 0) || !std::isfinite(value)) {
    std::snprintf(buf, sizeof buf, "%g", value);
    return buf;
  }
  int k = static_cast<int>(std::floor(std::log10(value) + 1e-9));
  double m = value / std::pow(10.0, k);
  if (std::abs(m - std::round(m)) < 1e-6) m = std::round(m);
  if (value >= 0.01 && value < 1000) {
    const int decimals = std::max(0, -k);
    std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  } else if (m == std::round(m)) {
    std::snprintf(buf, sizeof buf, "%de%d", static_cast<int>(m), k);
  } else {
    std::snprintf(buf, sizeof buf, "%.1fe%d", m, k);
  }
  return buf;
}

}  // namespace rrt
