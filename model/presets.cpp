#include "model/presets.h"

#include <functional>
#include <utility>

#include "core/error.h"

namespace rrt::presets {

ModelSpec tiny_relaxed(Family family, bool parallel_residual, int64_t loops) {
  ModelSpec s;
  apply_family_defaults(s.model, family);
  s.model.vocab = 61;
  s.model.d_model = 24;
  // GQA for Llama, MQA for Gemma, MHA with 8-dim heads for NeoX (25% rotary: 2 dims).
  s.model.n_heads = family == Family::neox ? 3 : 6;
  const bool gemma3 = family == Family::gemma3 || family == Family::gemma2;
  s.model.n_kv_heads = family == Family::gemma ? 1 : family == Family::neox ? 3 : 2;
  // Qwen3 and Gemma 2 / 3: head_dim 8 independent of d_model / n_heads (4), as the real models'.
  s.model.head_dim = family == Family::gemma || family == Family::qwen3 || gemma3 ? 8 : 0;
  s.model.ffn = 40;
  s.model.max_seq_len = 48;
  if (family == Family::neox) s.model.parallel_residual = parallel_residual;
  // Qwen3 with Llama 3's RoPE scaling, so the engines run a scaled table too (every band of
  // it: with 8-dim heads the wavelengths are 6.3, 63, 628 and 6283 against 16 / 4 and 16 / 1).
  if (family == Family::qwen3)
    s.model.rope_scaling = {.type = ops::RopeScalingType::llama3,
                            .factor = 4.0,
                            .low_freq_factor = 1.0,
                            .high_freq_factor = 4.0,
                            .original_max_positions = 16};
  // Gemma 2 / 3: query_pre_attn_scalar 6 != head_dim 8, and (Gemma 3) local layers (base 100,
  // a window of 6) among global ones (base 10000, linear scaling 2) in a pattern that does not
  // follow the block (period 3 against B = 2), so a tied block layer rotates and masks
  // differently per loop; (Gemma 2) windows of 5 on alternate positions and soft-capped scores.
  // The windows are shorter than the tests' sequences, so the masks take effect.
  if (gemma3) s.model.query_pre_attn_scalar = 6.0;
  if (family == Family::gemma3) {
    s.model.rope_local_theta = 100.0;
    s.model.sliding_window = 6;
    s.model.sliding_layers = {true, true, false};
    s.model.rope_scaling = {.type = ops::RopeScalingType::linear, .factor = 2.0};
  }
  if (family == Family::gemma2) {
    s.model.sliding_window = 5;
    s.model.sliding_layers = {true, false};
    s.model.attn_logit_softcapping = 2.0;
  }
  s.recursion = {.block_layers = 2, .loops = loops};
  // Per-loop norms and biases for NeoX, Qwen2 and Gemma 3: every position's own vectors.
  s.recursion.per_loop_norms =
      family == Family::neox || family == Family::qwen2 || family == Family::gemma3;
  s.lora = {.rank_attention = 3, .rank_mlp = 2};
  return s;
}

ModelSpec bench(bool small) {
  ModelSpec spec;
  ModelConfig& m = spec.model;
  m.vocab = small ? 512 : 8192;
  m.d_model = small ? 128 : 512;
  m.n_heads = 8;
  m.n_kv_heads = 4;
  m.ffn = small ? 352 : 1408;
  m.max_seq_len = small ? 64 : 256;
  spec.recursion.block_layers = 4;
  spec.recursion.loops = 2;
  spec.lora.rank_attention = spec.lora.rank_mlp = small ? 8 : 32;
  return spec;
}

namespace {

// A released checkpoint's spec. `shape` holds what its config.json gives (the family, sizes,
// norm epsilon, RoPE, whether the head is tied); the family's structure fills the rest. Plain
// (K = 1), or relaxed as every real-shape preset is: B = L / 2 block layers x K = 2 loops with
// LoRA 64 on every projection.
ModelSpec released(const ModelConfig& shape, bool relaxed, bool per_loop_norms = false) {
  ModelSpec s;
  s.model = shape;
  apply_family_defaults(s.model, shape.family);
  s.model.tied_head = shape.tied_head;  // the checkpoint's, not the family's default
  const int64_t L = shape.n_layers;
  s.recursion =
      relaxed ? RecursionConfig{.block_layers = L / 2, .loops = 2, .per_loop_norms = per_loop_norms}
              : RecursionConfig{.block_layers = L, .loops = 1};
  if (relaxed) s.lora = {.rank_attention = 64, .rank_mlp = 64};
  return s;
}

}  // namespace

ModelSpec tinyllama(bool relaxed) {
  return released({.family = Family::llama,
                   .n_layers = 22,
                   .vocab = 32000,
                   .d_model = 2048,
                   .n_heads = 32,
                   .n_kv_heads = 4,
                   .ffn = 5632,
                   .max_seq_len = 2048},
                  relaxed);
}

ModelSpec llama32_1b(bool relaxed) {
  return released({.family = Family::llama,
                   .n_layers = 16,
                   .vocab = 128256,
                   .d_model = 2048,
                   .n_heads = 32,
                   .n_kv_heads = 8,
                   .head_dim = 64,
                   .ffn = 8192,
                   .max_seq_len = 131072,
                   .norm_eps = 1e-5,
                   .rope_theta = 500000.0,
                   .rope_scaling = {.type = ops::RopeScalingType::llama3,
                                    .factor = 32.0,
                                    .low_freq_factor = 1.0,
                                    .high_freq_factor = 4.0,
                                    .original_max_positions = 8192},
                   .tied_head = true},
                  relaxed);
}

// Relaxed with per-loop norms and biases: every position its own q/k/v biases.
ModelSpec qwen25_05b(bool relaxed) {
  return released({.family = Family::qwen2,
                   .n_layers = 24,
                   .vocab = 151936,
                   .d_model = 896,
                   .n_heads = 14,
                   .n_kv_heads = 2,
                   .ffn = 4864,
                   .max_seq_len = 32768,
                   .norm_eps = 1e-6,
                   .rope_theta = 1000000.0,
                   .tied_head = true},
                  relaxed, /*per_loop_norms=*/true);
}

ModelSpec qwen3_06b() {
  return released({.family = Family::qwen3,
                   .n_layers = 28,
                   .vocab = 151936,
                   .d_model = 1024,
                   .n_heads = 16,
                   .n_kv_heads = 8,
                   .head_dim = 128,
                   .ffn = 3072,
                   .max_seq_len = 40960,
                   .norm_eps = 1e-6,
                   .rope_theta = 1000000.0,
                   .tied_head = true},
                  /*relaxed=*/false);
}

ModelSpec gemma3_1b(bool relaxed) {
  ModelSpec s;
  ModelConfig& m = s.model;
  apply_family_defaults(m, Family::gemma3);
  m.n_layers = 26;
  m.vocab = 262144;
  m.d_model = 1152;
  m.n_heads = 4;
  m.n_kv_heads = 1;
  m.head_dim = 256;
  m.ffn = 6912;
  m.max_seq_len = 32768;
  m.norm_eps = 1e-6;
  m.rope_theta = 1000000.0;
  m.rope_local_theta = 10000.0;
  m.sliding_window = 512;
  m.sliding_layers = {true, true, true, true, true, false};  // sliding_window_pattern 6
  m.query_pre_attn_scalar = 256.0;
  m.tied_head = true;
  s.recursion = relaxed ? RecursionConfig{.block_layers = 13, .loops = 2, .per_loop_norms = true}
                        : RecursionConfig{.block_layers = 26, .loops = 1};
  if (relaxed) s.lora = {.rank_attention = 64, .rank_mlp = 64};
  return s;
}

namespace {

const std::vector<std::pair<std::string, std::function<ModelSpec()>>>& table() {
  static const std::vector<std::pair<std::string, std::function<ModelSpec()>>> t = {
      {"tiny-relaxed", [] { return tiny_relaxed(Family::llama, false); }},
      {"tiny-relaxed-gemma", [] { return tiny_relaxed(Family::gemma, false); }},
      {"tiny-relaxed-neox", [] { return tiny_relaxed(Family::neox, true); }},
      {"tiny-relaxed-neox-sequential", [] { return tiny_relaxed(Family::neox, false); }},
      {"tiny-relaxed-qwen2", [] { return tiny_relaxed(Family::qwen2, false); }},
      {"tiny-relaxed-qwen3", [] { return tiny_relaxed(Family::qwen3, false); }},
      {"tiny-relaxed-gemma3", [] { return tiny_relaxed(Family::gemma3, false); }},
      {"tiny-relaxed-gemma2", [] { return tiny_relaxed(Family::gemma2, false); }},
      {"bench", [] { return bench(false); }},
      {"bench-small", [] { return bench(true); }},
      {"tinyllama", [] { return tinyllama(true); }},
      {"tinyllama-plain", [] { return tinyllama(false); }},
      {"llama3.2-1b", [] { return llama32_1b(true); }},
      {"llama3.2-1b-plain", [] { return llama32_1b(false); }},
      {"qwen2.5-0.5b", [] { return qwen25_05b(true); }},
      {"qwen2.5-0.5b-plain", [] { return qwen25_05b(false); }},
      {"qwen3-0.6b-plain", [] { return qwen3_06b(); }},
      {"gemma3-1b", [] { return gemma3_1b(true); }},
      {"gemma3-1b-plain", [] { return gemma3_1b(false); }},
  };
  return t;
}

}  // namespace

ModelSpec preset(std::string_view name) {
  for (const auto& [n, make] : table())
    if (n == name) return make();
  std::string known;
  for (const auto& [n, make] : table()) {
    if (!known.empty()) known += ", ";
    known += n;
  }
  RRT_FAIL("presets", "no model preset named '", std::string(name), "'; known presets: ", known);
}

std::vector<std::string> preset_names() {
  std::vector<std::string> names;
  for (const auto& [n, make] : table()) names.push_back(n);
  return names;
}

}  // namespace rrt::presets
