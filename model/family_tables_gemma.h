// Internal to model/families.cpp (included there only): the Gemma family tables (Gemma 1,
// Gemma 2, Gemma 3 text; HF and llama.cpp's GGUF), the largest group, kept apart so that each
// file stays readable. transformers 5.24 semantics; llama.cpp's convert_hf_to_gguf.py for GGUF.
#pragma once
#include "model/family_tables_common.h"

namespace rrt::family_tables {

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

// ---- The layer and the HF format, built once for Gemma 1, 2 and 3 -----------------------------
// What every Gemma layer shares; the arguments are where they differ.
constexpr FamilyStructure gemma_structure(bool sandwich_norm, bool qk_norm) {
  return {.norm = Norm::rms,
          .norm_unit_offset = true,
          .activation = Activation::geglu,
          .parallel_residual = false,
          .rotary_fraction = 1.0,
          .linear_bias = false,
          .qk_norm = qk_norm,
          .sandwich_norm = sandwich_norm,
          .tied_head = true,
          .embed_scale = 0.0};
}
// What every Gemma HF format shares; each sets its activation keys and what it adds.
constexpr HfFormat gemma_hf_base(const char* architecture, const char* model_type,
                                 std::span<const TensorRule> tensors,
                                 std::span<const HfFlag> flags) {
  return {.architecture = architecture,
          .model_type = model_type,
          .sizes = kHfSizes,
          // Required: the configs' defaults (Gemma 1: 16 kv heads and head_dim 256, gemma-7b's;
          // Gemma 3: 4 kv heads) are one release's and would silently apply to any other size.
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
          .activation = {},
          .activation_check = {},
          .flags = flags,
          .constants = {},
          .tensors = tensors,
          .optional = kLlamaOptional};
}
// Gemma 1 names its tensors as Llama does (the caller's table).
constexpr HfFormat gemma1_hf(std::span<const TensorRule> llama_tensors) {
  HfFormat f = gemma_hf_base("GemmaForCausalLM", "gemma", llama_tensors, kGemmaFlags);
  f.activation = {.key = "hidden_act",
                  .fallback = "gelu_pytorch_tanh",
                  .accepted = kGemmaActivations,
                  .hint = " (the legacy \"gelu\" is the tanh GELU in transformers 5)"};
  f.activation_check = {.key = "hidden_activation",
                        .fallback = nullptr,
                        .accepted = kGemmaHiddenActivations,
                        .hint =
                            "; transformers 4 computes hidden_activation but transformers 5 "
                            "hidden_act (the tanh GELU), so what the model computes is "
                            "ambiguous"};
  return f;
}
constexpr FamilyStructure kGemmaStructure = gemma_structure(/*sandwich_norm=*/false,
                                                            /*qk_norm=*/false);
constexpr HfFormat gemma_sandwich_hf(const char* architecture, const char* model_type,
                                     std::span<const TensorRule> tensors,
                                     int64_t sliding_pattern_default, double attn_softcap_default,
                                     double final_softcap_default) {
  HfFormat f = gemma_hf_base(architecture, model_type, tensors, kGemma3Flags);
  f.activation = {
      .key = "hidden_activation", .fallback = "gelu_pytorch_tanh", .accepted = kGemma3Activations};
  f.query_scale_key = "query_pre_attn_scalar";
  f.query_scale_default = 256.0;
  f.sliding_pattern_default = sliding_pattern_default;
  f.attn_softcap_key = "attn_logit_softcapping";
  f.attn_softcap_default = attn_softcap_default;
  f.final_softcap_key = "final_logit_softcapping";
  f.final_softcap_default = final_softcap_default;
  return f;
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
constexpr FamilyStructure kGemma3Structure = gemma_structure(/*sandwich_norm=*/true,
                                                             /*qk_norm=*/true);
constexpr HfFormat kGemma3Hf = gemma3_hf();
constexpr FamilyStructure kGemma2Structure = gemma_structure(/*sandwich_norm=*/true,
                                                             /*qk_norm=*/false);
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

}  // namespace rrt::family_tables
