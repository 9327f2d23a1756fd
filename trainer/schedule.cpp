#include "trainer/schedule.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace rrt {

double learning_rate(const ScheduleSpec& s, int64_t step) {
  if (s.warmup_steps > 0 && step <= s.warmup_steps)
    return s.lr * static_cast<double>(step) / static_cast<double>(s.warmup_steps);
  const double min_lr = s.lr * s.min_lr_ratio;
  if (s.kind == "constant") return s.lr;
  if (s.kind == "cosine") {
    const double span = static_cast<double>(std::max<int64_t>(s.total_steps - s.warmup_steps, 1));
    const double p = std::clamp(static_cast<double>(step - s.warmup_steps) / span, 0.0, 1.0);
    return min_lr + (s.lr - min_lr) * 0.5 * (1.0 + std::cos(M_PI * p));
  }
  if (s.kind == "wsd") {
    const double decay_steps = std::max(1.0, s.decay_fraction * static_cast<double>(s.total_steps));
    const double decay_start = static_cast<double>(s.total_steps) - decay_steps;
    if (static_cast<double>(step) <= decay_start) return s.lr;
    const double p = std::clamp((static_cast<double>(step) - decay_start) / decay_steps, 0.0, 1.0);
    return s.lr + (min_lr - s.lr) * p;
  }
  RRT_FAIL("optim.schedule", "unknown schedule '", s.kind, "' (cosine, constant, wsd)");
}

}  // namespace rrt
