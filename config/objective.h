// The model's training loss (model/training_loss.h) from the distill and early_exit sections
// of a run config: exits resolved against K, weights against the exits, with errors that name
// the key to change.
#pragma once

#include <string>
#include <vector>

#include "config/run_config.h"
#include "model/training_loss.h"

namespace rrt {

// The syntax of the items of early_exit.exits and early_exit.weights, before K is known:
// "" when fine, else what is wrong.
std::string check_exit_items(const std::vector<std::string>& items);
std::string check_weight_items(const std::vector<std::string>& items);

// Sets config.model.exit_head.loops (the registry's head adapters) from early_exit.exits when
// early_exit.head_lora_rank > 0: the exits before K. Parsing does this; code that builds a
// RunConfig by hand calls it before building the model (the trainer does).
void derive_exit_head(RunConfig& config);

// Throws rrt::Error whose where() is the key to change: an exit loop above recursion.loops, a
// list of exits without the final loop, weights of the wrong length, self-distillation with one
// exit, train: lora without LoRA, head adapters without intermediate exits, exits with sequence
// sharing (which has no loop ends).
TrainingLoss training_loss_from(const RunConfig& config);

}  // namespace rrt
