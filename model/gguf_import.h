// Import of GGUF models (llama.cpp's format, core/gguf.h): metadata -> ModelConfig and tensors
// (dequantised to fp32) -> a ParameterSet under rrt registry names, the same HfModel that
// load_hf_model returns, so conversion and evaluation take either.
//
// Architectures: general.architecture "llama" (Llama, TinyLlama, SmolLM, Mistral without sliding
// windows, ...): RMSNorm, SwiGLU, RoPE over the whole head, optional GQA, tied head when the file
// has no output.weight; "qwen2"; "gemma" and "gemma3" (norm weights stored as 1 + w; the window
// pattern, local RoPE base and attention scale that llama.cpp fixes rather than reads are filled
// as llama.cpp fills them); "gemma2" is refused on its final logit soft-cap, which llama.cpp
// always applies. Mixtures of experts and partial rotary are refused.
//
// llama.cpp's converter (convert_hf_to_gguf.py) reorders the rows of attn_q and attn_k for its
// RoPE, which rotates adjacent pairs: within each head of Dh rows, the HF row j * Dh/2 + i (half
// j of rotate_half, i < Dh/2) is stored as row 2i + j. The import puts the rows back, so the
// model equals the HF original (tests/model/test_gguf_import.cpp proves it on logits).
// The tensor names, row layouts and the metadata keys that differ between architectures are the
// family's descriptor's (GgufFormat in model/family.h).
#pragma once

#include <string>

#include "model/config.h"
#include "model/hf_import.h"

namespace rrt {

class GgufFile;

// The model config that a GGUF file's metadata describes (general.architecture, <arch>.* keys,
// the vocabulary size, and whether output.weight is present). Throws rrt::Error naming the key
// for anything rrt cannot compute exactly.
ModelConfig read_gguf_config(const GgufFile& file);

// Reads the config and every tensor. Missing, extra or misshapen tensors and tensor types
// that cannot be dequantised throw rrt::Error naming the tensor and the file.
HfModel load_gguf_model(const std::string& path);

}  // namespace rrt
