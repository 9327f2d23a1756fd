// train.init_from: the weights a run starts from. A checkpoint written before the exits' head
// adapters existed (the usual two-stage recipe: uptrain, then post-train early exits with
// early_exit.head_lora_rank) lacks exit.{k}.head_lora.*: those keep their initialisation
// (B = 0, so each exit starts as the plain head) and every other tensor is loaded.
#pragma once

#include <string>

#include "model/parameters.h"

namespace rrt {

void load_initial_weights(const std::string& path, const ModelSpec& spec, ParameterSet& params);

}  // namespace rrt
