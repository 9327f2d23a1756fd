// Model, recursion and LoRA configuration: plain structs with defaults (gemma.cpp style).
// The family names the checkpoint format (import/export names); the structural fields below
// (norm, bias, activation, residual, embedding scale) define the math, and
// apply_family_defaults() sets them to what each family uses.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "ops/rope.h"

namespace rrt {

// qwen2: Qwen2 / Qwen2.5; qwen3: Qwen3 (dense). Llama 3.x is llama with RoPE scaling.
// gemma3: Gemma 3 text (Gemma3ForCausalLM); gemma2: Gemma 2 (Gemma2ForCausalLM).
enum class Family { llama, gemma, neox, qwen2, qwen3, gemma3, gemma2 };
enum class Activation { swiglu, geglu, gelu, gelu_tanh };  // gelu: exact (erf)
enum class Norm { rms, layer };
enum class Sharing { cycle, sequence };

// The projections of a decoder layer that carry weights (and LoRA); gate only in gated MLPs.
enum class Proj : int { q = 0, k, v, o, gate, up, down };
constexpr int kNumProj = 7;
constexpr std::array<const char*, kNumProj> kProjNames = {"q", "k", "v", "o", "gate", "up", "down"};
inline bool is_attention_proj(Proj p) { return static_cast<int>(p) <= static_cast<int>(Proj::o); }

struct ModelConfig {
  Family family = Family::llama;
  int64_t n_layers = 0;  // depth L of the original model; 0: block_layers * loops
  int64_t vocab = 32000;
  int64_t d_model = 2048;
  int64_t n_heads = 32;
  int64_t n_kv_heads = 4;
  int64_t head_dim = 0;  // 0: d_model / n_heads (Gemma sets it independently)
  int64_t ffn = 5632;
  int64_t max_seq_len = 2048;
  double norm_eps = 1e-5;
  double rope_theta = 10000.0;
  ops::RopeScaling rope_scaling{};  // Llama 3.x: llama3; also linear, dynamic (ops/rope.h)
  double rotary_fraction = 1.0;     // NeoX rotates 25% of each head
  bool tied_head = false;
  bool parallel_residual = false;  // NeoX: x + attn(ln1(x)) + mlp(ln2(x))
  Activation activation = Activation::swiglu;
  Norm norm = Norm::rms;          // NeoX: LayerNorm with a bias
  bool linear_bias = false;       // NeoX: every projection has a bias
  bool qkv_bias = false;          // Qwen2: q, k and v (only) have a bias
  bool qk_norm = false;           // Qwen3: RMSNorm over each head of q and k before RoPE
  bool norm_unit_offset = false;  // Gemma: RMSNorm scales by (1 + w)
  double embed_scale = 1.0;       // multiplier on the embeddings; 0: sqrt(d_model) (Gemma)
  // Gemma 2 / 3: a norm on the attention output and on the MLP output before each residual add
  // (x' = x + norm(attn(norm(x))), x'' = x' + norm(mlp(norm(x')))); four norms per layer.
  bool sandwich_norm = false;
  // Gemma 2 / 3: attention scores scaled by query_pre_attn_scalar^-0.5 instead of head_dim^-0.5;
  // 0: head_dim.
  double query_pre_attn_scalar = 0.0;
  // Gemma 3: the RoPE base of the local layers (the sliding-window positions, window_at(l) > 0),
  // which never scale their frequencies; rope_theta and rope_scaling are the global layers'.
  // 0: rope_theta everywhere.
  double rope_local_theta = 0.0;

  // Sliding-window (local) attention (Mistral, Gemma 2 / 3): at an unrolled position l that
  // uses it, query i sees key j only if i - j < sliding_window. 0: no window anywhere.
  // sliding_layers says which positions use it as a pattern repeated over the depth: position
  // l uses sliding_layers[l % size] (HF's layer_types is the full list, one entry per layer;
  // Gemma 2's alternation is {true, false}; Gemma 3's is five true then one false); empty with
  // a window: every position. Positions count the unrolled depth K * B (loop k's layer b is
  // position k * B + b under cycle sharing), so a converted model keeps each original layer's.
  int64_t sliding_window = 0;
  std::vector<bool> sliding_layers = {};
  // Gemma 2: attention scores s become cap * tanh(s / cap) before the softmax; 0: off.
  double attn_logit_softcapping = 0.0;
  // Gemma 2: the LM head's logits z become cap * tanh(z / cap) (after any exit's head adapter)
  // before softmax, loss and sampling, on every exit; 0: off (ops/logit_softcap.h).
  double final_logit_softcapping = 0.0;

  // The window of unrolled position l: sliding_window if l uses it, else 0 (no window).
  int64_t window_at(int64_t l) const {
    if (sliding_window <= 0) return 0;
    if (sliding_layers.empty()) return sliding_window;
    return sliding_layers[static_cast<size_t>(l) % sliding_layers.size()] ? sliding_window : 0;
  }

  // Gated MLPs (SwiGLU, GeGLU) have a gate projection; NeoX's GELU MLP has only up and down.
  bool gated() const { return activation == Activation::swiglu || activation == Activation::geglu; }
  bool has_proj(Proj p) const { return p != Proj::gate || gated(); }
  // Whether projection p carries a bias: every one (NeoX) or q, k and v (Qwen2).
  bool has_bias(Proj p) const {
    return has_proj(p) &&
           (linear_bias || (qkv_bias && (p == Proj::q || p == Proj::k || p == Proj::v)));
  }

  double embedding_multiplier() const;
  // The factor on q that turns attention's head_dim^-0.5 into query_pre_attn_scalar^-0.5.
  double query_scale() const;
  // Whether unrolled position l rotates with the local RoPE base: a sliding-window position of
  // a model with rope_local_theta (Gemma 3).
  bool local_rope_at(int64_t l) const { return rope_local_theta > 0 && window_at(l) > 0; }
  int64_t dh() const { return head_dim > 0 ? head_dim : d_model / n_heads; }
  int64_t q_dim() const { return n_heads * dh(); }
  int64_t kv_dim() const { return n_kv_heads * dh(); }
  int64_t rot_dim() const;
};

struct RecursionConfig {
  int64_t block_layers = 1;  // B unique layers
  int64_t loops = 1;         // K; the unrolled depth is K * B
  Sharing sharing = Sharing::cycle;
  // Norms and projection biases (the layer's vectors) per unrolled position instead of tied:
  // with them, full-rank LoRA reproduces any original model exactly.
  bool per_loop_norms = false;
};

struct LoraConfig {
  int64_t rank_attention = 0;  // q, k, v, o
  int64_t rank_mlp = 0;        // gate, up, down
  double alpha = 0.0;          // 0: alpha = rank, i.e. scale s = 1 (rrt default)
  std::array<bool, kNumProj> targets{true, true, true, true, true, true, true};

  // The rank asked for; ModelSpec::lora_rank caps it per projection.
  int64_t requested_rank(Proj p) const {
    return targets[static_cast<int>(p)] ? (is_attention_proj(p) ? rank_attention : rank_mlp) : 0;
  }
};

// A LoRA on the shared head for each intermediate early exit (docs/method.md §4.1's option):
// exit k's logits are h W^T + (h A_k^T) B_k^T with exit.{k}.head_lora.A [R, D] and .B [V, R]
// (scale 1). The final exit keeps the plain head, so the model's output does not depend on them.
// Derived from the early_exit section (early_exit.head_lora_rank and the exits before K).
struct ExitHeadConfig {
  int64_t lora_rank = 0;
  std::vector<int64_t> loops;  // intermediate exit loops (1..K-1) that carry an adapter
};

struct ModelSpec {
  ModelConfig model;
  RecursionConfig recursion;
  LoraConfig lora;
  ExitHeadConfig exit_head;

  int64_t positions() const { return recursion.loops * recursion.block_layers; }
  // The LoRA rank of projection p: the requested rank capped at min(in, out) of p
  // (docs/method.md §2.2), so a rank >= every dimension means full rank everywhere, also
  // where GQA makes k and v narrower than q and o. 0 for projections the family lacks.
  int64_t lora_rank(Proj p) const;
  // The largest of them (0 without LoRA): the size of per-row LoRA scratch.
  int64_t max_lora_rank() const;
  // The LoRA scale s = alpha / rank (1 when alpha = 0); 0 at rank 0.
  double lora_scale(Proj p) const;
};

// One unrolled position l: which loop it belongs to and which block layer serves it.
struct Position {
  int64_t loop, layer;
};
Position position_of(const RecursionConfig& r, int64_t l);

// Output and input sizes of projection p: weight shape [out, in].
std::array<int64_t, 2> proj_shape(const ModelConfig& m, Proj p);

// Sets the structural fields to family f's: llama (RMSNorm, SwiGLU), gemma (RMSNorm (1 + w),
// GeGLU with tanh GELU, embeddings x sqrt(d_model), tied head) and neox (LayerNorm with bias,
// biased projections, exact GELU, parallel residual, 25% rotary).
void apply_family_defaults(ModelConfig& m, Family f);

// Throws rrt::Error naming the field for anything impossible (heads not dividing, rotary dims
// out of range, a negative rank, ...).
void validate(const ModelSpec& spec);

// Throws unless the structural fields are exactly what the family's HF architecture expresses
// (LlamaForCausalLM, GemmaForCausalLM, GPTNeoXForCausalLM): what export checks, so that an
// exported model computes what rrt trained. Training itself accepts any combination.
void check_family_structure(const ModelConfig& m);

std::string to_string(Family f);
std::string to_string(Activation a);
std::string to_string(Sharing s);
std::string to_string(ops::RopeScalingType t);

}  // namespace rrt
