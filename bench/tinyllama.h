// The ~1B shape the GPU benchmarks measure: TinyLlama 1.1B (22 layers, vocab 32000, d_model 2048,
// 32 heads / 4 kv heads, ffn 5632), relaxed as B = 11 block layers x K = 2 loops with LoRA r = 64
// on every projection, or plain; and random weights for it in a few seconds.
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>

#include "model/config.h"
#include "model/parameters.h"
#include "model/presets.h"

namespace rrt::bench {

// The "tinyllama" / "tinyllama-plain" presets (model/presets.h).
inline ModelSpec tinyllama(bool relaxed) { return presets::tinyllama(relaxed); }

// ParameterSet::init's Philox streams take much longer for 1.1 B parameters: norms 1, biases 0,
// every matrix uniform with standard deviation 0.02 (never zeros, which would run faster).
inline void fill_weights(ParameterSet& p) {
  std::mt19937_64 rng(1234);
  const float half_width = 0.02f * 1.7320508f;
  for (int i = 0; i < p.registry().size(); ++i) {
    const ParamKind kind = p.registry()[i].kind;
    float* v = p.value(i);
    const int64_t n = p.numel(i);
    if (kind == ParamKind::norm || kind == ParamKind::final_norm) {
      std::fill(v, v + n, 1.0f);
    } else if (kind == ParamKind::bias) {
      std::fill(v, v + n, 0.0f);
    } else {
      for (int64_t j = 0; j < n; ++j)
        v[j] = half_width * (static_cast<float>(rng() >> 40) / 8388608.0f - 1.0f);
    }
  }
}

}  // namespace rrt::bench
