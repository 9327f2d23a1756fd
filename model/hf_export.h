// Export of an rrt model (plain, recursive or relaxed recursive) as a Hugging Face Llama
// directory (LlamaForCausalLM: config.json + model.safetensors, fp32) of the UNROLLED model.
//
// HF layer l (l = 0..K*B-1) gets the tied block weights of block layer b(l) (position_of), and
// for a relaxed model that position's LoRA merged in:
//     W_l = W_b + s * B_{k,b} A_{k,b}      (s = LoraConfig::scale(p); computed in double,
//                                           rounded once to fp32)
// Norms are the tied block layer's, or the position's own with per-loop norms. Embedding, final
// norm and head are copied; a tied head writes no lm_head.weight and tie_word_embeddings true.
// The result loads with load_hf_model (and transformers) and computes the same function as the
// rrt model, up to fp32 rounding of the merged weights.
#pragma once

#include <string>
#include <vector>

#include "model/config.h"
#include "model/parameters.h"

namespace rrt {

// Writes <out_dir>/config.json and <out_dir>/model.safetensors, creating out_dir. A non-empty
// out_dir is refused unless overwrite is set (then the two files are replaced and a stale
// model.safetensors.index.json removed). Only the llama family can be exported; errors are
// rrt::Error naming the directory.
void export_hf(const ModelSpec& spec, const ParameterSet& params, const std::string& out_dir,
               bool overwrite = false);

// The merged weight [out, in] of projection p at unrolled position l (what export_hf writes).
std::vector<float> merged_weight(const ModelSpec& spec, const ParameterSet& params, int64_t l,
                                 Proj p);

}  // namespace rrt
