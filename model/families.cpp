// The family descriptors (model/family.h): one section per family. transformers 5.24 semantics
// for the config keys and their defaults; llama.cpp's convert_hf_to_gguf.py for the GGUF names.
#include <array>
#include <string_view>

#include "model/family.h"

namespace rrt {
namespace {

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

// ---- Llama (and everything saved as LlamaForCausalLM: TinyLlama, SmolLM, ...) ------------------
// RMSNorm, SwiGLU, RoPE over whole heads, optional GQA and head_dim, tied or untied head.
constexpr HfActivation kLlamaActivations[] = {{"silu", Activation::swiglu}};
constexpr HfFlag kLlamaFlags[] = {
    {"attention_bias", false, true, "rrt's Llama layers have no biases"},
    {"mlp_bias", false, true, "rrt's Llama layers have no biases"},
};
constexpr HfConstant kLlamaConstants[] = {{"pretraining_tp", "1"}};
// Gemma 1 names its tensors alike.
constexpr TensorRule kLlamaTensors[] = {
    {"embed.weight", "model.embed_tokens.weight"},
    {"block.{l}.attn_norm.weight", "model.layers.{l}.input_layernorm.weight"},
    {"block.{l}.attn.q.weight", "model.layers.{l}.self_attn.q_proj.weight"},
    {"block.{l}.attn.k.weight", "model.layers.{l}.self_attn.k_proj.weight"},
    {"block.{l}.attn.v.weight", "model.layers.{l}.self_attn.v_proj.weight"},
    {"block.{l}.attn.o.weight", "model.layers.{l}.self_attn.o_proj.weight"},
    {"block.{l}.mlp_norm.weight", "model.layers.{l}.post_attention_layernorm.weight"},
    {"block.{l}.mlp.gate.weight", "model.layers.{l}.mlp.gate_proj.weight"},
    {"block.{l}.mlp.up.weight", "model.layers.{l}.mlp.up_proj.weight"},
    {"block.{l}.mlp.down.weight", "model.layers.{l}.mlp.down_proj.weight"},
    {"final_norm.weight", "model.norm.weight"},
    {"head.weight", "lm_head.weight"},  // in the registry only when the head is untied
};
// RoPE buffers that older checkpoints saved, and a tied head stored anyway (HF itself uses the
// embedding then).
constexpr OptionalTensor kLlamaOptional[] = {
    {"model.layers.{l}.self_attn.rotary_emb.inv_freq"},
    {"lm_head.weight", true},
};

// GGUF: llama.cpp reorders attn_q and attn_k for its adjacent-pair RoPE.
constexpr TensorRule kLlamaGgufTensors[] = {
    {"embed.weight", "token_embd.weight"},
    {"block.{l}.attn_norm.weight", "blk.{l}.attn_norm.weight"},
    {"block.{l}.attn.q.weight", "blk.{l}.attn_q.weight", RowLayout::rope_pairs_q},
    {"block.{l}.attn.k.weight", "blk.{l}.attn_k.weight", RowLayout::rope_pairs_k},
    {"block.{l}.attn.v.weight", "blk.{l}.attn_v.weight"},
    {"block.{l}.attn.o.weight", "blk.{l}.attn_output.weight"},
    {"block.{l}.mlp_norm.weight", "blk.{l}.ffn_norm.weight"},
    {"block.{l}.mlp.gate.weight", "blk.{l}.ffn_gate.weight"},
    {"block.{l}.mlp.up.weight", "blk.{l}.ffn_up.weight"},
    {"block.{l}.mlp.down.weight", "blk.{l}.ffn_down.weight"},
    {"final_norm.weight", "output_norm.weight"},
    {"head.weight", "output.weight"},  // absent: the head is tied
};
// RoPE inverse frequencies that some converters stored (they follow from rope.freq_base).
constexpr OptionalTensor kLlamaGgufOptional[] = {{"blk.{l}.attn_rot_embd"}};
constexpr GgufFormat kLlamaGguf{
    .architecture = "llama",
    .norm_eps_key = "attention.layer_norm_rms_epsilon",
    .whole_head_rotary = true,
    .tensors = kLlamaGgufTensors,
    .optional = kLlamaGgufOptional,
    .refused = {},
    .rope_factors = "rope_freqs.weight",
};

constexpr FamilyStructure kLlamaStructure{.norm = Norm::rms,
                                          .norm_unit_offset = false,
                                          .activation = Activation::swiglu,
                                          .parallel_residual = false,
                                          .rotary_fraction = 1.0,
                                          .linear_bias = false,
                                          .tied_head = false,
                                          .embed_scale = 1.0};
constexpr HfFormat kLlamaHf{
    .architecture = "LlamaForCausalLM",
    .model_type = "llama",
    .sizes = kHfSizes,
    .kv_heads_key = "num_key_value_heads",
    .kv_heads_required = false,
    .head_dim_key = "head_dim",
    .head_dim = HfHeadDim::optional,
    .norm_eps_key = "rms_norm_eps",
    .norm_eps_default = 1e-6,
    .rope_theta_key = "rope_theta",
    .rotary_fraction_key = nullptr,
    .parallel_residual_key = nullptr,
    .tied_head_key = "tie_word_embeddings",
    .rope_scaling = true,
    .activation = {.key = "hidden_act", .fallback = "silu", .accepted = kLlamaActivations},
    .activation_check = {},
    .flags = kLlamaFlags,
    .constants = kLlamaConstants,
    .tensors = kLlamaTensors,
    .optional = kLlamaOptional};

// ---- Gemma 1 ------------------------------------------------------------------------------------
// RMSNorm (1 + w), GeGLU with the tanh GELU, embeddings x sqrt(D), independent head_dim,
// MQA/GQA, tied head by default. transformers 5.24's GemmaConfig turns the legacy hidden_act
// "gelu" of the official releases into gelu_pytorch_tanh and no longer reads hidden_activation
// (transformers 4 did, and there "gelu" meant the exact GELU), so hidden_activation must be a
// tanh GELU when present. gelu_new, gelu_fast and gelu_python_tanh write the tanh approximation
// out by hand; gelu_pytorch_tanh is torch's; all four are the same function.
constexpr HfActivation kGemmaActivations[] = {
    {"gelu_pytorch_tanh", Activation::geglu},
    {"gelu", Activation::geglu},  // the legacy spelling: tanh in transformers 5
    {"gelu_new", Activation::geglu},
    {"gelu_fast", Activation::geglu},
    {"gelu_python_tanh", Activation::geglu},
};
constexpr HfActivation kGemmaHiddenActivations[] = {
    {"gelu_pytorch_tanh", Activation::geglu},
    {"gelu_new", Activation::geglu},
    {"gelu_fast", Activation::geglu},
    {"gelu_python_tanh", Activation::geglu},
};
constexpr HfFlag kGemmaFlags[] = {
    {"attention_bias", false, true, "rrt's Gemma layers have no biases"},
    {"use_bidirectional_attention", false, false, "rrt's attention is causal"},
};

// ---- GPT-NeoX (Pythia, ...) -------------------------------------------------------------------
// LayerNorm with bias, biases on every projection, exact or tanh GELU MLP, parallel or
// sequential residual, partial rotary (rotary_pct / partial_rotary_factor; transformers rotates
// 25% by default), head embed_out untied by default, no GQA.
constexpr HfActivation kNeoxActivations[] = {
    {"gelu", Activation::gelu},
    {"gelu_python", Activation::gelu},
    {"gelu_pytorch_tanh", Activation::gelu_tanh},
    {"gelu_new", Activation::gelu_tanh},
    {"gelu_fast", Activation::gelu_tanh},
    {"gelu_python_tanh", Activation::gelu_tanh},
};
constexpr HfFlag kNeoxFlags[] = {
    {"attention_bias", true, true,
     "rrt's GPT-NeoX layer has a bias on every projection, so a NeoX without attention biases "
     "cannot be imported"},
};
constexpr HfConstant kNeoxConstants[] = {{"hidden_dropout", "0.0"}};
constexpr TensorRule kNeoxTensors[] = {
    {"embed.weight", "gpt_neox.embed_in.weight"},
    {"block.{l}.attn_norm.weight", "gpt_neox.layers.{l}.input_layernorm.weight"},
    {"block.{l}.attn_norm.bias", "gpt_neox.layers.{l}.input_layernorm.bias"},
    {"block.{l}.attn.q.weight", "gpt_neox.layers.{l}.attention.query_key_value.weight",
     RowLayout::qkv_per_head},
    {"block.{l}.attn.q.bias", "gpt_neox.layers.{l}.attention.query_key_value.bias",
     RowLayout::qkv_per_head},
    {"block.{l}.attn.o.weight", "gpt_neox.layers.{l}.attention.dense.weight"},
    {"block.{l}.attn.o.bias", "gpt_neox.layers.{l}.attention.dense.bias"},
    {"block.{l}.mlp_norm.weight", "gpt_neox.layers.{l}.post_attention_layernorm.weight"},
    {"block.{l}.mlp_norm.bias", "gpt_neox.layers.{l}.post_attention_layernorm.bias"},
    {"block.{l}.mlp.up.weight", "gpt_neox.layers.{l}.mlp.dense_h_to_4h.weight"},
    {"block.{l}.mlp.up.bias", "gpt_neox.layers.{l}.mlp.dense_h_to_4h.bias"},
    {"block.{l}.mlp.down.weight", "gpt_neox.layers.{l}.mlp.dense_4h_to_h.weight"},
    {"block.{l}.mlp.down.bias", "gpt_neox.layers.{l}.mlp.dense_4h_to_h.bias"},
    {"final_norm.weight", "gpt_neox.final_layer_norm.weight"},
    {"final_norm.bias", "gpt_neox.final_layer_norm.bias"},
    // Checkpoints (and transformers 5's save_pretrained) call the head embed_out; the module
    // itself is lm_head, which other tools may write.
    {"head.weight", "embed_out.weight", RowLayout::as_is, "lm_head.weight"},
};
// Causal-mask and RoPE buffers of older checkpoints (transformers ignores them on load too).
constexpr OptionalTensor kNeoxOptional[] = {
    {"gpt_neox.layers.{l}.attention.bias"},
    {"gpt_neox.layers.{l}.attention.masked_bias"},
    {"gpt_neox.layers.{l}.attention.rotary_emb.inv_freq"},
    {"embed_out.weight", true},
    {"lm_head.weight", true},
};

// ---- Qwen2 / Qwen2.5 and Qwen3: Llama's with a difference each -------------------------------
// Llama's layer with q/k/v biases or q/k norms; Llama's HF format but for the names, the flags,
// the tensors, head_dim, and two keys: kv heads required (Qwen2Config's and Qwen3Config's default
// when the key is absent is 32, not n_heads), and no pretraining_tp.
constexpr FamilyStructure qwen_structure(bool qkv_bias, bool qk_norm) {
  FamilyStructure s = kLlamaStructure;
  s.qkv_bias = qkv_bias;
  s.qk_norm = qk_norm;
  return s;
}
constexpr HfFormat qwen_hf(const char* architecture, const char* model_type, HfHeadDim head_dim,
                           std::span<const HfFlag> flags, std::span<const TensorRule> tensors) {
  HfFormat f = kLlamaHf;
  f.architecture = architecture;
  f.model_type = model_type;
  f.kv_heads_required = true;
  f.head_dim = head_dim;
  f.flags = flags;
  f.constants = {};
  f.tensors = tensors;
  return f;
}

// ---- Qwen2 / Qwen2.5 -------------------------------------------------------------------------
// Llama's layer with a bias on q, k and v (transformers hard-codes bias=True there and False on
// o and the MLP; there is no config key for it). Sliding-window attention (use_sliding_window,
// layer_types with "sliding_attention") is refused: rrt's attention is full causal.
constexpr HfFlag kQwen2Flags[] = {
    {"use_sliding_window", false, true,
     "rrt's attention is full causal; sliding-window layers are not implemented"},
};
constexpr AddedTensor kQwen2QkvBiases[] = {
    {"block.{l}.attn.q.weight",
     {"block.{l}.attn.q.bias", "model.layers.{l}.self_attn.q_proj.bias"}},
    {"block.{l}.attn.k.weight",
     {"block.{l}.attn.k.bias", "model.layers.{l}.self_attn.k_proj.bias"}},
    {"block.{l}.attn.v.weight",
     {"block.{l}.attn.v.bias", "model.layers.{l}.self_attn.v_proj.bias"}},
};
constexpr auto kQwen2Tensors = with_tensors(kLlamaTensors, kQwen2QkvBiases);
constexpr FamilyStructure kQwen2Structure = qwen_structure(/*qkv_bias=*/true, /*qk_norm=*/false);
constexpr HfFormat kQwen2Hf =
    qwen_hf("Qwen2ForCausalLM", "qwen2", HfHeadDim::optional, kQwen2Flags, kQwen2Tensors);

// GGUF "qwen2": Llama's GGUF names, but llama.cpp runs it with NeoX-style RoPE (rotate_half,
// HF's), so its converter keeps HF's q/k row order; the biases of q, k and v are tensors of
// their own.
constexpr AddedTensor kQwen2GgufQkvBiases[] = {
    {"block.{l}.attn.q.weight", {"block.{l}.attn.q.bias", "blk.{l}.attn_q.bias"}},
    {"block.{l}.attn.k.weight", {"block.{l}.attn.k.bias", "blk.{l}.attn_k.bias"}},
    {"block.{l}.attn.v.weight", {"block.{l}.attn.v.bias", "blk.{l}.attn_v.bias"}},
};
constexpr TensorRule kQwen2GgufHfRows[] = {
    {"block.{l}.attn.q.weight", "blk.{l}.attn_q.weight"},
    {"block.{l}.attn.k.weight", "blk.{l}.attn_k.weight"},
};
constexpr auto kQwen2GgufTensors =
    with_tensors(kLlamaGgufTensors, kQwen2GgufQkvBiases, kQwen2GgufHfRows);
constexpr GgufFormat kQwen2Gguf{
    .architecture = "qwen2",
    .norm_eps_key = "attention.layer_norm_rms_epsilon",
    .whole_head_rotary = true,
    .tensors = kQwen2GgufTensors,
    .optional = {},
    .refused = {},
    .rope_factors = nullptr,
};

// ---- Qwen3 (dense) ---------------------------------------------------------------------------
// Llama's layer with an RMSNorm over each head of q and k (weights [head_dim]) between the
// projection and RoPE; no biases (attention_bias false); head_dim independent of hidden_size
// (Qwen3Config's default, 128, is the real models', but a config must say it).
constexpr HfFlag kQwen3Flags[] = {
    {"attention_bias", false, true, "rrt's Qwen3 layers have no biases"},
    {"use_sliding_window", false, true,
     "rrt's attention is full causal; sliding-window layers are not implemented"},
};
constexpr AddedTensor kQwen3QkNorms[] = {
    {"block.{l}.attn.o.weight",
     {"block.{l}.attn.q_norm.weight", "model.layers.{l}.self_attn.q_norm.weight"}},
    {"block.{l}.attn.o.weight",
     {"block.{l}.attn.k_norm.weight", "model.layers.{l}.self_attn.k_norm.weight"}},
};
constexpr auto kQwen3Tensors = with_tensors(kLlamaTensors, kQwen3QkNorms);
constexpr FamilyStructure kQwen3Structure = qwen_structure(/*qkv_bias=*/false, /*qk_norm=*/true);
constexpr HfFormat kQwen3Hf =
    qwen_hf("Qwen3ForCausalLM", "qwen3", HfHeadDim::required, kQwen3Flags, kQwen3Tensors);

// ---- Gemma 3 (text: Gemma3ForCausalLM, model_type gemma3_text) and Gemma 2 --------------------
// Gemma's (1 + w) RMSNorm, GeGLU with the tanh GELU (hidden_activation) and sqrt(D) embedding
// scale, plus sandwich norms (post_attention_layernorm on the attention output before its
// residual add, pre_feedforward_layernorm / post_feedforward_layernorm around the MLP),
// attention scale query_pre_attn_scalar^-0.5, and sliding-window layers (layer_types) that
// alternate with global ones. Gemma 3 adds (1 + w) RMSNorms on each q and k head (q_norm,
// k_norm) and a RoPE base of the local layers' own (rope_local_base_freq); its rope_scaling
// applies to the global layers only. Attention logit soft-capping (attn_logit_softcapping; Gemma
// 2's default 50) is the attention masks' softcap; the final logits' (final_logit_softcapping;
// Gemma 2's default 30) the head ops'.
constexpr HfActivation kGemma3Activations[] = {
    {"gelu_pytorch_tanh", Activation::geglu},
    {"gelu_new", Activation::geglu},
    {"gelu_fast", Activation::geglu},
    {"gelu_python_tanh", Activation::geglu},
};
constexpr HfFlag kGemma3Flags[] = {
    {"attention_bias", false, true, "rrt's Gemma 3 layers have no biases"},
    {"use_bidirectional_attention", false, true, "rrt's attention is causal"},
};
// Gemma 2's tensors; Gemma 3 adds the q / k head norms.
constexpr TensorRule kGemma2Tensors[] = {
    {"embed.weight", "model.embed_tokens.weight"},
    {"block.{l}.attn_norm.weight", "model.layers.{l}.input_layernorm.weight"},
    {"block.{l}.attn.q.weight", "model.layers.{l}.self_attn.q_proj.weight"},
    {"block.{l}.attn.k.weight", "model.layers.{l}.self_attn.k_proj.weight"},
    {"block.{l}.attn.v.weight", "model.layers.{l}.self_attn.v_proj.weight"},
    {"block.{l}.attn.o.weight", "model.layers.{l}.self_attn.o_proj.weight"},
    {"block.{l}.attn_post_norm.weight", "model.layers.{l}.post_attention_layernorm.weight"},
    {"block.{l}.mlp_norm.weight", "model.layers.{l}.pre_feedforward_layernorm.weight"},
    {"block.{l}.mlp.gate.weight", "model.layers.{l}.mlp.gate_proj.weight"},
    {"block.{l}.mlp.up.weight", "model.layers.{l}.mlp.up_proj.weight"},
    {"block.{l}.mlp.down.weight", "model.layers.{l}.mlp.down_proj.weight"},
    {"block.{l}.mlp_post_norm.weight", "model.layers.{l}.post_feedforward_layernorm.weight"},
    {"final_norm.weight", "model.norm.weight"},
    {"head.weight", "lm_head.weight"},
};
constexpr AddedTensor kGemma3QkNorms[] = {
    {"block.{l}.attn.o.weight",
     {"block.{l}.attn.q_norm.weight", "model.layers.{l}.self_attn.q_norm.weight"}},
    {"block.{l}.attn.o.weight",
     {"block.{l}.attn.k_norm.weight", "model.layers.{l}.self_attn.k_norm.weight"}},
};
constexpr auto kGemma3Tensors = with_tensors(kGemma2Tensors, kGemma3QkNorms);

// The layer and the HF format both share; the arguments are where they differ.
constexpr FamilyStructure gemma_sandwich_structure(bool qk_norm) {
  return {.norm = Norm::rms,
          .norm_unit_offset = true,
          .activation = Activation::geglu,
          .parallel_residual = false,
          .rotary_fraction = 1.0,
          .linear_bias = false,
          .qk_norm = qk_norm,
          .sandwich_norm = true,
          .tied_head = true,
          .embed_scale = 0.0};
}
constexpr HfFormat gemma_sandwich_hf(const char* architecture, const char* model_type,
                                     std::span<const TensorRule> tensors,
                                     int64_t sliding_pattern_default, double attn_softcap_default,
                                     double final_softcap_default) {
  return {.architecture = architecture,
          .model_type = model_type,
          .sizes = kHfSizes,
          // Required: the configs' defaults (Gemma 3: 4 kv heads, head_dim 256) are one
          // release's and would silently apply to any other size.
          .kv_heads_key = "num_key_value_heads",
          .kv_heads_required = true,
          .head_dim_key = "head_dim",
          .head_dim = HfHeadDim::required,
          .norm_eps_key = "rms_norm_eps",
          .norm_eps_default = 1e-6,
          .rope_theta_key = "rope_theta",
          .rotary_fraction_key = nullptr,
          .parallel_residual_key = nullptr,
          .tied_head_key = "tie_word_embeddings",
          .rope_scaling = false,
          .activation = {.key = "hidden_activation",
                         .fallback = "gelu_pytorch_tanh",
                         .accepted = kGemma3Activations},
          .activation_check = {},
          .flags = kGemma3Flags,
          .constants = {},
          .tensors = tensors,
          .optional = kLlamaOptional,
          .query_scale_key = "query_pre_attn_scalar",
          .query_scale_default = 256.0,
          .sliding_pattern_default = sliding_pattern_default,
          .attn_softcap_key = "attn_logit_softcapping",
          .attn_softcap_default = attn_softcap_default,
          .final_softcap_key = "final_logit_softcapping",
          .final_softcap_default = final_softcap_default};
}
// Gemma 3 also scales the global layers' RoPE and gives the local ones a base of their own.
constexpr HfFormat gemma3_hf() {
  HfFormat f = gemma_sandwich_hf("Gemma3ForCausalLM", "gemma3_text", kGemma3Tensors,
                                 /*sliding_pattern_default=*/6, /*attn_softcap_default=*/0.0,
                                 /*final_softcap_default=*/0.0);
  f.rope_scaling = true;
  f.rope_theta_default = 1000000.0;
  f.rope_local_theta_key = "rope_local_base_freq";
  f.rope_local_theta_default = 10000.0;
  return f;
}
constexpr FamilyStructure kGemma3Structure = gemma_sandwich_structure(/*qk_norm=*/true);
constexpr HfFormat kGemma3Hf = gemma3_hf();
constexpr FamilyStructure kGemma2Structure = gemma_sandwich_structure(/*qk_norm=*/false);
constexpr HfFormat kGemma2Hf = gemma_sandwich_hf("Gemma2ForCausalLM", "gemma2", kGemma2Tensors,
                                                 /*sliding_pattern_default=*/2,
                                                 /*attn_softcap_default=*/50.0,
                                                 /*final_softcap_default=*/30.0);

// ---- GGUF "gemma", "gemma2", "gemma3" (llama.cpp) ------------------------------------------
// llama.cpp runs the three with NeoX-style RoPE (rotate_half), so its converter keeps HF's q/k
// row order, and stores every RMSNorm weight as 1 + w (norm_plus_one). Its converter drops
// lm_head for gemma and gemma2, whose llama.cpp models always use the embedding as the head
// (an untied model has no spelling there); gemma3 writes output.weight when the head is untied.
// llama.cpp fixes what these files do not say: the sliding-window pattern (gemma2 every other
// layer, gemma3 five in six), gemma3's local RoPE base 10000, the attention scale (head_dim,
// or d_model / n_heads for the 27B block counts), gemma2's soft-capping defaults (attention
// 50, final logits 30, always applied).
constexpr TensorRule kGemmaGgufTensors[] = {
    {"embed.weight", "token_embd.weight"},
    {"block.{l}.attn_norm.weight", "blk.{l}.attn_norm.weight"},
    {"block.{l}.attn.q.weight", "blk.{l}.attn_q.weight"},
    {"block.{l}.attn.k.weight", "blk.{l}.attn_k.weight"},
    {"block.{l}.attn.v.weight", "blk.{l}.attn_v.weight"},
    {"block.{l}.attn.o.weight", "blk.{l}.attn_output.weight"},
    {"block.{l}.mlp_norm.weight", "blk.{l}.ffn_norm.weight"},
    {"block.{l}.mlp.gate.weight", "blk.{l}.ffn_gate.weight"},
    {"block.{l}.mlp.up.weight", "blk.{l}.ffn_up.weight"},
    {"block.{l}.mlp.down.weight", "blk.{l}.ffn_down.weight"},
    {"final_norm.weight", "output_norm.weight"},
};
// Gemma 2's sandwich norms: ffn_norm is the MLP's input norm (pre_feedforward_layernorm).
constexpr AddedTensor kGemma2GgufPostNorms[] = {
    {"block.{l}.attn.o.weight",
     {"block.{l}.attn_post_norm.weight", "blk.{l}.post_attention_norm.weight"}},
    {"block.{l}.mlp.down.weight",
     {"block.{l}.mlp_post_norm.weight", "blk.{l}.post_ffw_norm.weight"}},
};
constexpr auto kGemma2GgufTensors = with_tensors(kGemmaGgufTensors, kGemma2GgufPostNorms);
constexpr AddedTensor kGemma3GgufExtra[] = {
    {"block.{l}.attn.o.weight", {"block.{l}.attn.q_norm.weight", "blk.{l}.attn_q_norm.weight"}},
    {"block.{l}.attn.o.weight", {"block.{l}.attn.k_norm.weight", "blk.{l}.attn_k_norm.weight"}},
    {"final_norm.weight", {"head.weight", "output.weight"}},  // absent: the head is tied
};
constexpr auto kGemma3GgufTensors = with_tensors(kGemma2GgufTensors, kGemma3GgufExtra);

constexpr GgufFormat kGemmaGguf{
    .architecture = "gemma",
    .norm_eps_key = "attention.layer_norm_rms_epsilon",
    .whole_head_rotary = true,
    .tensors = kGemmaGgufTensors,
    .optional = {},
    .refused = {},
    .norm_plus_one = true,
};
constexpr GgufFormat kGemma2Gguf{
    .architecture = "gemma2",
    .norm_eps_key = "attention.layer_norm_rms_epsilon",
    .whole_head_rotary = true,
    .tensors = kGemma2GgufTensors,
    .optional = {},
    .refused = {},
    .norm_plus_one = true,
    .sliding_pattern = 2,
    .sliding_window_default = 4096,
    .wide_query_scale_blocks = 46,
    .attn_softcap_key = "attn_logit_softcapping",
    .attn_softcap_default = 50.0,
    .final_softcap_key = "final_logit_softcapping",
    .final_softcap_default = 30.0,
};
constexpr GgufFormat kGemma3Gguf{
    .architecture = "gemma3",
    .norm_eps_key = "attention.layer_norm_rms_epsilon",
    .whole_head_rotary = true,
    .tensors = kGemma3GgufTensors,
    .optional = {},
    .refused = {},
    .norm_plus_one = true,
    .linear_rope_scaling = true,
    .sliding_pattern = 6,
    .local_rope_theta = 10000.0,
    .wide_query_scale_blocks = 62,
    .final_softcap_key = "final_logit_softcapping",
};

constexpr FamilyDescriptor kFamilies[] = {
    {
        .family = Family::llama,
        .name = "llama",
        .display = "Llama",
        .mlp = "SwiGLU",
        .structure = kLlamaStructure,
        .hf = kLlamaHf,
        .gguf = &kLlamaGguf,
    },
    {
        .family = Family::gemma,
        .name = "gemma",
        .display = "Gemma",
        .mlp = "GeGLU with the tanh GELU",
        .structure = {.norm = Norm::rms,
                      .norm_unit_offset = true,
                      .activation = Activation::geglu,
                      .parallel_residual = false,
                      .rotary_fraction = 1.0,
                      .linear_bias = false,
                      .tied_head = true,
                      .embed_scale = 0.0},
        .hf = {.architecture = "GemmaForCausalLM",
               .model_type = "gemma",
               .sizes = kHfSizes,
               // Required: GemmaConfig's defaults (16 kv heads, head_dim 256) are gemma-7b's and
               // would silently apply to any other size.
               .kv_heads_key = "num_key_value_heads",
               .kv_heads_required = true,
               .head_dim_key = "head_dim",
               .head_dim = HfHeadDim::required,
               .norm_eps_key = "rms_norm_eps",
               .norm_eps_default = 1e-6,
               .rope_theta_key = "rope_theta",
               .rotary_fraction_key = nullptr,
               .parallel_residual_key = nullptr,
               .tied_head_key = "tie_word_embeddings",
               .rope_scaling = false,
               .activation = {.key = "hidden_act",
                              .fallback = "gelu_pytorch_tanh",
                              .accepted = kGemmaActivations,
                              .hint = " (the legacy \"gelu\" is the tanh GELU in transformers 5)"},
               .activation_check = {.key = "hidden_activation",
                                    .fallback = nullptr,
                                    .accepted = kGemmaHiddenActivations,
                                    .hint = "; transformers 4 computes hidden_activation but "
                                            "transformers 5 hidden_act (the tanh GELU), so what "
                                            "the model computes is ambiguous"},
               .flags = kGemmaFlags,
               .constants = {},
               .tensors = kLlamaTensors,
               .optional = kLlamaOptional},
        .gguf = &kGemmaGguf,
    },
    {
        .family = Family::neox,
        .name = "neox",
        .display = "GPT-NeoX",
        .mlp = "a GELU MLP (exact or tanh)",
        .structure = {.norm = Norm::layer,
                      .norm_unit_offset = false,
                      .activation = Activation::gelu,
                      .parallel_residual = true,
                      .rotary_fraction = 0.25,
                      .linear_bias = true,
                      .tied_head = false,
                      .embed_scale = 1.0},
        .hf = {.architecture = "GPTNeoXForCausalLM",
               .model_type = "gpt_neox",
               .sizes = kHfSizes,
               .kv_heads_key = nullptr,
               .kv_heads_required = false,
               // transformers' attention ignores head_dim but its rotary embedding would read it.
               .head_dim_key = "head_dim",
               .head_dim = HfHeadDim::quotient,
               .norm_eps_key = "layer_norm_eps",
               .norm_eps_default = 1e-5,
               .rope_theta_key = "rotary_emb_base",
               .rotary_fraction_key = "rotary_pct",
               .parallel_residual_key = "use_parallel_residual",
               .tied_head_key = "tie_word_embeddings",
               .rope_scaling = false,
               .activation = {.key = "hidden_act",
                              .fallback = "gelu",
                              .accepted = kNeoxActivations},
               .activation_check = {},
               .flags = kNeoxFlags,
               .constants = kNeoxConstants,
               .tensors = kNeoxTensors,
               .optional = kNeoxOptional},
        .gguf = nullptr,
    },
    {
        .family = Family::qwen2,
        .name = "qwen2",
        .display = "Qwen2",
        .mlp = "SwiGLU",
        .structure = kQwen2Structure,
        .hf = kQwen2Hf,
        .gguf = &kQwen2Gguf,
    },
    {
        .family = Family::qwen3,
        .name = "qwen3",
        .display = "Qwen3",
        .mlp = "SwiGLU",
        .structure = kQwen3Structure,
        .hf = kQwen3Hf,
        .gguf = nullptr,
    },
    {
        .family = Family::gemma3,
        .name = "gemma3",
        .display = "Gemma 3",
        .mlp = "GeGLU with the tanh GELU",
        .structure = kGemma3Structure,
        .hf = kGemma3Hf,
        .gguf = &kGemma3Gguf,
    },
    {
        .family = Family::gemma2,
        .name = "gemma2",
        .display = "Gemma 2",
        .mlp = "GeGLU with the tanh GELU",
        .structure = kGemma2Structure,
        .hf = kGemma2Hf,
        .gguf = &kGemma2Gguf,
    },
};

}  // namespace

std::span<const FamilyDescriptor> families() { return kFamilies; }

}  // namespace rrt
