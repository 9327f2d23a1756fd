// Export of an rrt model as a GGUF file (llama.cpp's format) of the UNROLLED model
// (model/unrolled_tensors.h: K * B layers, each position's LoRA merged), in the GGUF
// architecture of its family (llama, qwen2, gemma, gemma3), fp32 or bf16. The tensor names and
// row layouts are the family's GGUF table (model/families.cpp: llama.cpp's interleaved q/k rows
// for llama, Gemma's norm weights as 1 + w), the metadata the keys that GGUF import and llama.cpp
// read; Llama 3 (llama3) and linear RoPE scaling are written as llama.cpp's converter writes
// them, per-frequency divisors in rope_freqs.weight (gemma3: linear as rope.scaling.*). A tokenizer
// GGUF's tokenizer.* keys are copied when one is given (llama.cpp needs them to run the file).
// load_gguf_model reads the export back as the same model.
#pragma once

#include <string>

#include "core/dtype.h"
#include "model/config.h"
#include "model/parameters.h"

namespace rrt {

struct GgufExportOptions {
  DType dtype = DType::f32;         // f32 or bf16 (rounded to nearest even)
  std::string tokenizer_gguf{};     // copy its tokenizer.* keys; "" for a file without a tokenizer
  std::string name = "rrt export";  // general.name
};

// Writes `path` atomically. Refuses (naming the field) a model its family's GGUF architecture
// cannot hold: a family without one, structure the family's table has no tensor for, RoPE
// scaling other than llama3 / linear or on an architecture without rope_freqs, and anything
// llama.cpp fixes for the architecture that the model does otherwise (an untied gemma head, the
// attention scale, the window pattern, the local RoPE base, soft-caps; gemma2 always, for its
// final logit soft-cap).
void export_gguf(const ModelSpec& spec, const ParameterSet& params, const std::string& path,
                 const GgufExportOptions& options = {});

}  // namespace rrt
