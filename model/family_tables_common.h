// Internal to model/families.cpp (included there only): what several families' tables share.
// Namespace-scope constexpr data has internal linkage, so each table exists once, in that file.
#pragma once
#include <array>
#include <span>
#include <string_view>

#include "model/family.h"

namespace rrt::family_tables {

// The size keys every transformers decoder config here spells alike.
constexpr HfSizeKeys kHfSizes{
    .vocab = "vocab_size",
    .d_model = "hidden_size",
    .n_heads = "num_attention_heads",
    .ffn = "intermediate_size",
    .n_layers = "num_hidden_layers",
    .max_seq_len = "max_position_embeddings",
};

// A family that is another's with a few tensors more or different (Qwen over Llama) states only
// those: each added rule goes right after the base rule of plain-model parameter `after` (in
// the order listed), and a rule in `replaced` takes the place of the base rule of its rrt name,
// so the table keeps the order its own copy had. An `after` or a replaced rule that no base rule
// names does not compile.
struct AddedTensor {
  const char* after;
  TensorRule rule;
};
// The base may itself be a with_tensors result (Gemma 3's GGUF table over Gemma 2's).
template <size_t N, size_t A>
constexpr std::array<TensorRule, N + A> with_tensors(std::span<const TensorRule, N> base,
                                                     const AddedTensor (&added)[A],
                                                     std::span<const TensorRule> replaced = {}) {
  std::array<TensorRule, N + A> out{};
  size_t n = 0, replacements = 0;
  for (const TensorRule& rule : base) {
    out[n] = rule;
    for (const TensorRule& r : replaced) {
      if (std::string_view(r.rrt) != rule.rrt) continue;
      out[n] = r;
      ++replacements;
    }
    ++n;
    for (const AddedTensor& a : added)
      if (std::string_view(a.after) == rule.rrt) out[n++] = a.rule;
  }
  if (n != N + A || replacements != replaced.size())
    throw "with_tensors: an added or replaced tensor names no rule of the base table";
  return out;
}
template <size_t N, size_t A>
constexpr std::array<TensorRule, N + A> with_tensors(const TensorRule (&base)[N],
                                                     const AddedTensor (&added)[A],
                                                     std::span<const TensorRule> replaced = {}) {
  return with_tensors(std::span<const TensorRule, N>(base), added, replaced);
}
template <size_t N, size_t A>
constexpr std::array<TensorRule, N + A> with_tensors(const std::array<TensorRule, N>& base,
                                                     const AddedTensor (&added)[A],
                                                     std::span<const TensorRule> replaced = {}) {
  return with_tensors(std::span<const TensorRule, N>(base), added, replaced);
}

// RoPE buffers that older checkpoints saved, and a tied head stored anyway (HF itself uses the
// embedding then).
constexpr OptionalTensor kLlamaOptional[] = {
    {"model.layers.{l}.self_attn.rotary_emb.inv_freq"},
    {"lm_head.weight", true},
};

}  // namespace rrt::family_tables
