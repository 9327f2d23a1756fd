// What the model's training step optimises beyond plain next-token cross-entropy: early exits
// at loop ends sharing the final norm and head, their weights, self-distillation, distillation
// from a teacher, and which parameters train (docs/method.md §3 and §4; docs/distillation.md).
// The default is the plain objective: one exit after the last loop, weight 1, no teacher.
#pragma once

#include <cstdint>
#include <vector>

#include "ops/exit_loss.h"

namespace rrt {

// Which parameters the optimizer updates; the others are frozen (no gradient, no update).
enum class TrainScope {
  all,        // every parameter
  lora,       // every LoRA: the per-position ones and the exits' head adapters
  head_lora,  // the exits' head adapters only (ModelSpec::exit_head)
};

struct TrainingLoss {
  // Loops (1-based) whose end is an exit, ascending; the last is always K. Empty: {K}.
  std::vector<int64_t> exit_loops;
  // w_k per exit, same length as exit_loops. Empty: 1 for the single final exit.
  std::vector<double> exit_weights;
  // Intermediate exits also get KL(stopgrad(p_final) || p_k).
  bool self_distill = false;

  // Distillation from a teacher (set_teacher); planned at construction when `teacher` is set.
  bool teacher = false;
  ops::Divergence divergence = ops::Divergence::forward_kl;
  double temperature = 1.0;  // tau; KD carries Hinton's tau^2
  double alpha = 0.5;        // loss = (1 - alpha) CE + alpha KD

  TrainScope train = TrainScope::all;

  // One final exit with weight 1, no teacher, no freezing: exactly the plain CE step.
  bool plain() const {
    return exit_loops.size() <= 1 && (exit_weights.empty() || exit_weights[0] == 1.0) && !teacher &&
           train == TrainScope::all;
  }
};

}  // namespace rrt
