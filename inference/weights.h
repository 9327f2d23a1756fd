// The weights of a trained model as the inference engine reads them: one LayerParams per
// unrolled position (the tied block layer plus that position's LoRA, norms and biases), the
// embedding, the shared final norm and head, and the exits' head adapters. Pointers into a
// ParameterSet that must outlive this view; nothing is copied.
#pragma once

#include <cstdint>
#include <vector>

#include "model/decoder_layer.h"
#include "model/parameters.h"

namespace rrt::inference {

struct ModelWeights {
  ModelSpec spec;
  std::vector<LayerParams> positions;  // [K * B], unrolled order
  const float* embed = nullptr;        // [V, D]
  const float* final_norm = nullptr;   // [D]
  const float* final_norm_bias = nullptr;
  const float* head = nullptr;  // [V, D] (the embedding when the head is tied)
  // exit.{k}.head_lora.A [R, D] / .B [V, R] per loop k = 1..K (index k - 1); null where absent.
  std::vector<const float*> exit_lora_a, exit_lora_b;
  int64_t exit_lora_rank = 0;
};

// Binds every pointer by registry name; throws if the set lacks a tensor the spec needs.
ModelWeights bind_weights(const ModelSpec& spec, const ParameterSet& params);

}  // namespace rrt::inference
