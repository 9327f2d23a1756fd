// AdamW over a ParameterSet: one visitor over the registry. Moments live in two arenas with
// the parameters' layout; decay follows each parameter's registry flag; frozen ones are skipped.
#pragma once

#include <cstdint>

#include "core/arena.h"
#include "model/parameters.h"
#include "ops/adamw.h"

namespace rrt {

class AdamW {
 public:
  AdamW(ParameterSet& params, const ops::AdamWHyper& hyper);

  // One update from the gradients currently in params; lr overrides hyper.lr when >= 0.
  void step(double lr = -1.0);
  int64_t steps_taken() const { return step_; }
  // For resuming: the bias corrections continue from the restored step count.
  void set_steps_taken(int64_t steps) { step_ = steps; }
  const ops::AdamWHyper& hyper() const { return hyper_; }
  Arena& first_moment() { return m_; }
  Arena& second_moment() { return v_; }

 private:
  ParameterSet& params_;
  ops::AdamWHyper hyper_;
  Arena m_{"adam.m"}, v_{"adam.v"};
  int64_t step_ = 0;
};

}  // namespace rrt
