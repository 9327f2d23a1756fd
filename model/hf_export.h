// Export of an rrt model (plain, recursive or relaxed recursive) as a Hugging Face directory
// (config.json + model.safetensors, fp32) of the UNROLLED model, in the architecture of its
// family: LlamaForCausalLM, GemmaForCausalLM or GPTNeoXForCausalLM.
//
// HF layer l (l = 0..K*B-1) gets the tied block weights of block layer b(l) (position_of), and
// for a relaxed model that position's LoRA merged in:
//     W_l = W_b + s * B_{k,b} A_{k,b}      (s = ModelSpec::lora_scale(p); computed in double,
//                                           rounded once to fp32)
// Norms (and LayerNorm biases) and projection biases are the tied block layer's, or the
// position's own with per-loop norms. NeoX's fused query_key_value is assembled per head:
// rows [h*3*Dh, h*3*Dh + Dh) are q of head h, the next Dh rows k, the next Dh rows v (biases
// alike). Embedding, final norm and head are copied; a tied head writes no head tensor and
// tie_word_embeddings true.
//
// A model whose structure its family's HF architecture cannot express (check_family_structure,
// plus what the HF configs cannot say: Llama/Gemma rotate whole heads, NeoX has no GQA and no
// independent head_dim) is refused. The result loads with load_hf_model and transformers and
// computes the same function as the rrt model, up to fp32 rounding of the merged weights.
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

// NeoX's fused query_key_value layout: q, k and v, each `heads` blocks of `block` floats (one
// head's rows), interleaved per head as [q_0 k_0 v_0 q_1 k_1 v_1 ...]. block = Dh * D for the
// weights, Dh for the biases.
std::vector<float> fuse_qkv_per_head(const float* q, const float* k, const float* v, int64_t heads,
                                     int64_t block);

}  // namespace rrt
