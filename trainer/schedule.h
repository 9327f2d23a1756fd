// Learning-rate schedules; `step` counts optimizer steps from 1 to total_steps.
//   cosine:   linear warmup, then cosine from lr down to lr * min_lr_ratio at the last step
//   constant: linear warmup, then lr
//   wsd:      linear warmup, lr until the last decay_fraction of steps, then linear to the minimum
#pragma once

#include <cstdint>
#include <string>

namespace rrt {

struct ScheduleSpec {
  std::string kind = "cosine";
  double lr = 3e-4, min_lr_ratio = 0.1;
  int64_t warmup_steps = 0, total_steps = 1;
  double decay_fraction = 0.2;
};

double learning_rate(const ScheduleSpec& s, int64_t step);

}  // namespace rrt
