// Named model shapes shared by the tests, the benchmarks and the tools, so that "the tiny relaxed
// model" or "the TinyLlama-shaped one" is one definition instead of a spec written out in every
// file that needs it. Each returns a ModelSpec; `preset(name)` looks one up by name (the names
// are listed by preset_names(), and an unknown name is an error that lists them).
//
//   tiny-relaxed[-gemma|-neox|-neox-sequential]  tiny_relaxed(): the inference and family tests'
//                      relaxed model (B = 2 x K = 3, per-position LoRA; GQA / MQA / MHA by family)
//   bench, bench-small bench(): bench_train_step's d = 512 model (B = 4 x K = 2, LoRA 32), and its
//                      --small variant
//   tinyllama, tinyllama-plain  tinyllama(): TinyLlama 1.1B's shape, relaxed (B = 11 x K = 2,
//                      LoRA 64) or plain; the GPU benchmarks' ~1B model
//   llama3.2-1b[-plain], qwen2.5-0.5b[-plain], qwen3-0.6b-plain  the real checkpoints' shapes
//                      (Llama 3 RoPE scaling, Qwen2 q/k/v biases, Qwen3 q/k norms), relaxed
//                      (K = 2, LoRA 64) or plain
//   gemma3-1b[-plain]  Gemma 3 1B's shape (sandwich norms, q/k norms, local and global RoPE),
//                      relaxed (B = 13 x K = 2, LoRA 64, per-loop norms) or plain
//   tiny-relaxed-{gemma2,gemma3,qwen2,qwen3}  tiny_relaxed() for those families
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model/config.h"

namespace rrt::presets {

// A tiny relaxed model: vocab 61, d_model 24, ffn 40, max_seq_len 48, B = 2 block layers run
// `loops` times with per-position LoRA (ranks 3 / 2); GQA 6/2 for Llama, MQA 6/1 with 8-dim
// heads for Gemma, MHA 3 x 8 for NeoX (25% rotary, per-loop norms and biases, parallel or
// sequential residual); Gemma 3 with local RoPE on windowed positions (window 6) and Gemma 2
// with windows of 5 and soft-capped attention scores, so their masks take effect.
ModelSpec tiny_relaxed(Family family = Family::llama, bool parallel_residual = false,
                       int64_t loops = 3);

// bench/train_step.cpp's model: d_model 512, 8 heads / 4 kv heads, ffn 1408, vocab 8192,
// seq 256, B = 4 x K = 2 with LoRA rank 32; `small`: d_model 128, ffn 352, vocab 512, seq 64,
// LoRA 8.
ModelSpec bench(bool small = false);

// TinyLlama 1.1B: 22 layers, vocab 32000, d_model 2048, 32 heads / 4 kv heads, ffn 5632, seq
// 2048; relaxed as B = 11 x K = 2 with LoRA 64 on every projection, or plain (K = 1).
ModelSpec tinyllama(bool relaxed = true);

// Llama 3.2 1B (16 layers, vocab 128256, d 2048, 32 / 8 heads of 64, ffn 8192, llama3 RoPE
// scaling factor 32 from 8192 positions, theta 500000, tied head; 1,235,814,400 parameters);
// relaxed: B = 8 x K = 2, LoRA 64.
ModelSpec llama32_1b(bool relaxed = true);
// Qwen2.5 0.5B (24 layers, vocab 151936, d 896, 14 / 2 heads of 64, ffn 4864, q/k/v biases,
// theta 1e6, tied head; 494,032,768 parameters); relaxed: B = 12 x K = 2, LoRA 64, per-loop
// norms and biases.
ModelSpec qwen25_05b(bool relaxed = true);
// Qwen3 0.6B (28 layers, vocab 151936, d 1024, 16 / 8 heads of 128, ffn 3072, q/k norms, theta
// 1e6, tied head; 596,049,920 parameters), plain.
ModelSpec qwen3_06b();
// Gemma 3 1B (26 layers, vocab 262144, d 1152, 4 / 1 heads of 256, ffn 6912, (1 + w) q/k and
// sandwich norms, query_pre_attn_scalar 256, five local layers (RoPE base 1e4, sliding window
// 512 in transformers) to one global (base 1e6), tied head; 999,885,952 parameters);
// relaxed: B = 13 x K = 2, LoRA 64, per-loop norms.
ModelSpec gemma3_1b(bool relaxed = true);

ModelSpec preset(std::string_view name);
std::vector<std::string> preset_names();

}  // namespace rrt::presets
