// Export of an rrt model (plain, recursive or relaxed recursive) as a Hugging Face directory
// (config.json + model.safetensors, fp32) of the UNROLLED model, in the architecture of its
// family: LlamaForCausalLM, GemmaForCausalLM or GPTNeoXForCausalLM.
//
// HF layer l (l = 0..K*B-1) gets the tied block weights of block layer b(l) (position_of), and
// for a relaxed model that position's LoRA merged in:
//     W_l = W_b + s * B_{k,b} A_{k,b}      (s = ModelSpec::lora_scale(p); computed in double,
//                                           rounded once to fp32)
// Norms (and LayerNorm biases) and projection biases are the tied block layer's, or the
// position's own with per-loop norms. Embedding, final norm and head are copied; a tied head
// writes no head tensor and tie_word_embeddings true. The tensor names, row layouts (NeoX's
// fused per-head query_key_value) and config.json keys are the family's descriptor's
// (model/family.h): export expands its tensor table over the unrolled positions.
//
// A model whose structure its family's HF architecture cannot express (check_family_structure,
// plus what the family's config keys cannot say: partial rotary without a rotary key, GQA
// without a kv-heads key, a head size other than d_model / n_heads where the config has no
// head_dim) is refused. The result loads with load_hf_model and transformers and computes the
// same function as the rrt model, up to fp32 rounding of the merged weights.
#pragma once

#include <string>
#include <vector>

#include "model/config.h"
#include "model/parameters.h"

namespace rrt {

// Writes <out_dir>/config.json and <out_dir>/model.safetensors, creating out_dir. A non-empty
// out_dir is refused unless overwrite is set (then the two files are replaced and a stale
// model.safetensors.index.json removed). Errors are rrt::Error naming the directory, or the
// model field that no HF architecture of the family can express.
void export_hf(const ModelSpec& spec, const ParameterSet& params, const std::string& out_dir,
               bool overwrite = false);

// The merged weight [out, in] of projection p at unrolled position l (what export_hf writes).
std::vector<float> merged_weight(const ModelSpec& spec, const ParameterSet& params, int64_t l,
                                 Proj p);

}  // namespace rrt
