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
// sequential residual).
ModelSpec tiny_relaxed(Family family = Family::llama, bool parallel_residual = false,
                       int64_t loops = 3);

// bench/train_step.cpp's model: d_model 512, 8 heads / 4 kv heads, ffn 1408, vocab 8192,
// seq 256, B = 4 x K = 2 with LoRA rank 32; `small`: d_model 128, ffn 352, vocab 512, seq 64,
// LoRA 8.
ModelSpec bench(bool small = false);

// TinyLlama 1.1B: 22 layers, vocab 32000, d_model 2048, 32 heads / 4 kv heads, ffn 5632, seq
// 2048; relaxed as B = 11 x K = 2 with LoRA 64 on every projection, or plain (K = 1).
ModelSpec tinyllama(bool relaxed = true);

ModelSpec preset(std::string_view name);
std::vector<std::string> preset_names();

}  // namespace rrt::presets
