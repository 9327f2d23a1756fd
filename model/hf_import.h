// Import of Hugging Face checkpoints: config.json -> ModelConfig and model.safetensors (or the
// shards listed in model.safetensors.index.json) -> a ParameterSet under rrt registry names.
// Architectures (transformers 5.24 semantics):
//   LlamaForCausalLM    RMSNorm, SwiGLU, RoPE, optional GQA, tied or untied head.
//   GemmaForCausalLM    Gemma 1: RMSNorm (1 + w), GeGLU with the tanh GELU (the legacy
//                       hidden_act "gelu" means tanh, as in transformers 5), embeddings x sqrt(D),
//                       independent head_dim, MQA/GQA, tied head by default.
//   GPTNeoXForCausalLM  LayerNorm with bias, biases on every projection, exact or tanh GELU MLP,
//                       parallel or sequential residual, partial rotary (rotary_pct /
//                       partial_rotary_factor, even rotary dims only), head embed_out untied by
//                       default. Its fused query_key_value [H * 3 * Dh, D] is per-head
//                       interleaved (q, k, v of head 0, then of head 1, ...) and is split into
//                       rrt's q, k, v weights and biases.
// All use the [out, in] weight layout and rotate_half RoPE over the first rot_dim dims of each
// head, as rrt does, so the other tensors are copied as they are (F32/BF16/F16 -> fp32). The
// config keys, tensor names and row layouts are each family's descriptor's (model/family.h,
// model/families.cpp); import is a loop over them.
// Configs that rrt's layer cannot compute exactly (rope_scaling, other activations, NeoX without
// attention biases, ...) are refused with rrt::Error rather than imported approximately.
#pragma once

#include <memory>
#include <string>

#include "model/config.h"
#include "model/parameters.h"

namespace rrt {

struct HfModel {
  ModelSpec spec;                        // recursion {block_layers = L, loops = 1}, no LoRA
  std::unique_ptr<ParameterSet> params;  // values only (no grads); block.{l}.attn.q.weight, ...
};

// Reads <dir>/config.json: the family (its architectures and model_type, which must agree),
// the family's structural defaults (apply_family_defaults), then its config keys. Only the
// architectures above with plain RoPE (no rope_scaling) are accepted; anything else throws
// rrt::Error naming the field (an unknown family: listing the known ones).
ModelConfig read_hf_config(const std::string& dir);

// Reads config.json and the weights of <dir>: model.safetensors, or the shards named by
// model.safetensors.index.json. Missing, extra or misshapen tensors throw rrt::Error naming the
// tensor and its file; known leftovers (old RoPE/mask buffers, a tied head stored anyway) are
// ignored, as transformers ignores them.
HfModel load_hf_model(const std::string& dir);

}  // namespace rrt
