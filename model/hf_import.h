// Import of Hugging Face Llama checkpoints (LlamaForCausalLM): config.json -> ModelConfig and
// model.safetensors (or shards listed in model.safetensors.index.json) -> a ParameterSet under
// rrt registry names. HF Llama uses the same [out, in] weight layout and rotate_half RoPE
// convention as rrt, so tensors are copied as they are (converted to fp32 from F32/BF16/F16).
#pragma once

#include <memory>
#include <string>

#include "model/config.h"
#include "model/parameters.h"

namespace rrt {

struct HfModel {
  ModelSpec spec;                        // llama, recursion {block_layers = L, loops = 1}, no LoRA
  std::unique_ptr<ParameterSet> params;  // registry names: block.{l}.attn.q.weight, ...
};

// Reads <dir>/config.json. Only architectures == ["LlamaForCausalLM"] with plain RoPE (no
// rope_scaling), hidden_act silu and no biases are accepted; anything else throws rrt::Error.
ModelConfig read_hf_config(const std::string& dir);

// Reads config.json and the weights of <dir>: model.safetensors, or the shards named by
// model.safetensors.index.json. Missing, extra or misshapen tensors throw rrt::Error naming them.
HfModel load_hf_model(const std::string& dir);

}  // namespace rrt
