// The family descriptors (model/family.h): one section per family. transformers 5.24 semantics
// for the config keys and their defaults; llama.cpp's convert_hf_to_gguf.py for the GGUF names.
#include <array>
#include <string_view>

#include "model/family.h"
#include "model/family_tables_common.h"
#include "model/family_tables_gemma.h"

namespace rrt {
namespace {

using namespace family_tables;  // the shared pieces and the Gemma tables (model/family_tables_*.h)

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
constexpr HfFormat kGemmaHf = gemma1_hf(kLlamaTensors);

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
        .structure = kGemmaStructure,
        .hf = kGemmaHf,
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
