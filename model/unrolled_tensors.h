// The unrolled model of an rrt model (plain, recursive or relaxed recursive) as the tensors of a
// file format: what `rrt export` writes, as an HF directory (model/hf_export.h) or a GGUF file
// (model/gguf_export.h).
//
// Plain layer l (l = 0..K*B-1) gets the tied block weights of block layer b(l) (position_of),
// and for a relaxed model that position's LoRA merged in:
//     W_l = W_b + s * B_{k,b} A_{k,b}      (s = ModelSpec::lora_scale(p); computed in double,
//                                           rounded once to fp32)
// Norms (and LayerNorm biases) and projection biases are the tied block layer's, or the
// position's own with per-loop norms. Embedding, final norm and head are as they are. The
// format's tensor table (model/family.h: names and row layouts) is expanded over the unrolled
// layers; every parameter of the model must land in some tensor (LoRA in the merged weights).
#pragma once

#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/family.h"
#include "model/parameters.h"

namespace rrt {

struct UnrolledTensor {
  std::string name;            // the file's name for it
  std::vector<int64_t> shape;  // outermost first
  const float* data;           // the parameter itself, or a computed tensor the owner holds
  const TensorRule* rule;      // the table's rule it expands
  int64_t numel() const;
};

class UnrolledTensors {
 public:
  // `format` names the table in errors ("LlamaForCausalLM", "gguf llama").
  UnrolledTensors(const ModelSpec& spec, const ParameterSet& params,
                  std::span<const TensorRule> table, const std::string& format);
  const std::vector<UnrolledTensor>& tensors() const { return tensors_; }

 private:
  std::vector<UnrolledTensor> tensors_;
  std::deque<std::vector<float>> owned_;  // deque: earlier elements keep their addresses
};

// The plain model the export describes: every position its own layer, no LoRA.
ModelSpec unrolled_spec(const ModelSpec& spec);

// The merged weight [out, in] of projection p at unrolled position l.
std::vector<float> merged_weight(const ModelSpec& spec, const ParameterSet& params, int64_t l,
                                 Proj p);

// fp32 -> bf16 bit patterns, rounded to nearest even (core/dtype.h).
std::vector<uint16_t> to_bf16_bits(const float* data, int64_t n);

}  // namespace rrt
