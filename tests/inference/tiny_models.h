// Tiny random models for the inference tests: relaxed (per-position LoRA, K >= 2), GQA or MQA,
// one per family, with every weight random (LoRA B, norms and biases too, so that every path
// the engine takes changes the output), and the full-sequence reference the engine must match.
#pragma once

#include <memory>
#include <vector>

#include "core/rng.h"
#include "inference/cpu_engine.h"
#include "model/presets.h"
#include "model/recursive_model.h"
#include "tests/model/families.h"

namespace rrt::testing {

// The "tiny-relaxed" presets (model/presets.h): GQA Llama, MQA Gemma, MHA NeoX.
inline ModelSpec tiny_spec(Family family, bool parallel, int64_t loops = 3) {
  return presets::tiny_relaxed(family, parallel, loops);
}

// Random weights: linear weights as initialised, then LoRA B, norms and biases too. Norm gains
// are around 1 in every family: w around 1, or around 0 where the norm scales by (1 + w)
// (Gemma), whose gains would otherwise be 2 and, over Gemma 3's q/k and sandwich norms, make
// attention four times sharper than any other family's and a bf16 engine's logits 5% off
// instead of the others' 1%.
inline void randomise(ParameterSet& p, const ModelConfig& m, uint64_t seed) {
  p.init(InitConfig{.seed = seed, .std = 0.15, .lora_b_zero = false});
  const ParamRegistry& reg = p.registry();
  const double gain = m.norm_unit_offset ? 0.0 : 1.0;
  for (int i = 0; i < reg.size(); ++i) {
    const ParamKind k = reg[i].kind;
    if (k != ParamKind::norm && k != ParamKind::final_norm && k != ParamKind::bias) continue;
    fill_normal(p.value(i), p.numel(i), k == ParamKind::bias ? 0.0 : gain, 0.1, seed + 7,
                static_cast<uint64_t>(i));
  }
}

struct TinyModel {
  std::unique_ptr<RecursiveModel> model;  // the full-sequence reference (owns the weights)
  std::unique_ptr<inference::CpuEngine> engine;
};

inline TinyModel make_tiny(const ModelSpec& spec, int64_t slots, int64_t max_rows,
                           uint64_t seed = 3) {
  TinyModel t;
  t.model = std::make_unique<RecursiveModel>(
      spec, ModelCapacity{.max_batch = 1, .max_seq = spec.model.max_seq_len});
  randomise(t.model->params(), spec.model, seed);
  t.engine = std::make_unique<inference::CpuEngine>(
      inference::bind_weights(spec, t.model->params()),
      inference::EngineCapacity{.slots = slots, .max_rows = max_rows});
  return t;
}

// Logits of exit `loop` for every position of one sequence, by the full-sequence forward:
// [T, V].
inline std::vector<float> reference_exit_logits(RecursiveModel& m, const std::vector<int32_t>& seq,
                                                int64_t loop) {
  const int64_t T = static_cast<int64_t>(seq.size()), V = m.spec().model.vocab;
  m.forward_loop_ends(seq.data(), 1, T);
  std::vector<float> h(static_cast<size_t>(T * m.spec().model.d_model));
  std::vector<float> out(static_cast<size_t>(T * V));
  m.exit_logits(loop, m.loop_end_residual(loop), T, h.data(), out.data());
  return out;
}

inline int32_t argmax_row(const std::vector<float>& logits, int64_t row, int64_t V) {
  int64_t best = 0;
  for (int64_t i = 1; i < V; ++i)
    if (logits[row * V + i] > logits[row * V + best]) best = i;
  return static_cast<int32_t>(best);
}

}  // namespace rrt::testing
