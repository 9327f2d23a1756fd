// Export of an rrt model (plain, recursive or relaxed recursive) as a Hugging Face directory
// (config.json + model.safetensors, fp32 or bf16) of the UNROLLED model (model/unrolled_tensors.h:
// K * B layers, each position's LoRA merged into its weights), in the architecture of its
// family: LlamaForCausalLM, GemmaForCausalLM, GPTNeoXForCausalLM, Qwen2ForCausalLM or
// Qwen3ForCausalLM. The tensor names, row layouts (NeoX's fused per-head query_key_value) and
// config.json keys are the family's descriptor's (model/family.h). A tied head writes no head
// tensor and tie_word_embeddings true.
//
// A model whose structure its family's HF architecture cannot express (check_family_structure,
// plus what the family's config keys cannot say: partial rotary without a rotary key, GQA
// without a kv-heads key, a head size other than d_model / n_heads where the config has no
// head_dim) is refused. The result loads with load_hf_model and transformers and computes the
// same function as the rrt model, up to fp32 rounding of the merged weights (and bf16
// rounding of every weight with dtype bf16).
#pragma once

#include <string>
#include <vector>

#include "core/dtype.h"
#include "model/config.h"
#include "model/parameters.h"
#include "model/unrolled_tensors.h"

namespace rrt {

// Writes <out_dir>/config.json and <out_dir>/model.safetensors (and generation_config.json when
// the tokenizer's EOS is given), creating out_dir. A non-empty
// out_dir is refused unless overwrite is set (then the two files are replaced and a stale
// model.safetensors.index.json removed). Errors are rrt::Error naming the directory, or the
// model field that no HF architecture of the family can express.
struct HfExportOptions {
  bool overwrite = false;
  DType dtype = DType::f32;  // or bf16 (rounded to nearest even; config.json's dtype says which)
  // The tokenizer's ids (-1: none): bos_token_id / eos_token_id in config.json, and
  // generation_config.json (what generate() stops at) when EOS is known.
  int32_t bos_id = -1, eos_id = -1;
};
void export_hf(const ModelSpec& spec, const ParameterSet& params, const std::string& out_dir,
               const HfExportOptions& options);
inline void export_hf(const ModelSpec& spec, const ParameterSet& params, const std::string& out_dir,
                      bool overwrite = false) {
  export_hf(spec, params, out_dir, HfExportOptions{.overwrite = overwrite});
}

}  // namespace rrt
