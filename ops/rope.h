// Rotary position embedding, HF "rotate_half" layout, applied in place per head.
// x: [N, T, H, Dh]; only the first rot_dim dims of each head rotate (NeoX: rot_dim = 25% of Dh).
// For i < rot_dim/2, with angle = pos * theta^(-2i/rot_dim):
//   x[i]           <- x[i] cos - x[i + rot_dim/2] sin
//   x[i+rot_dim/2] <- x[i + rot_dim/2] cos + x[i] sin
// Backward is the inverse rotation of the incoming gradient (also in place).
//
// RoPE scaling (the inverse frequencies of transformers' modeling_rope_utils, which Llama 3.x
// and the Llama-shaped families use) only changes theta^(-2i/rot_dim) per dim, so every backend
// gets it from this one table:
//   linear   inv_freq / factor
//   dynamic  NTK-aware scaling of the base once a sequence exceeds original_max_positions;
//            within them (the only positions rrt runs, see RopeScaling) the plain frequencies
//   llama3   wavelengths 2 pi / inv_freq above original_max / low_freq_factor are divided by
//            factor, below original_max / high_freq_factor kept, and smoothly interpolated
//            between: s = (original_max / wavelen - low) / (high - low),
//            inv_freq' = (1 - s) inv_freq / factor + s inv_freq
// None of the three changes the attention scale (transformers' attention_factor is 1).
#pragma once

#include <cstdint>
#include <vector>

namespace rrt::ops {

enum class RopeScalingType { none, linear, dynamic, llama3 };

struct RopeScaling {
  RopeScalingType type = RopeScalingType::none;
  double factor = 1.0;
  double low_freq_factor = 1.0;        // llama3
  double high_freq_factor = 4.0;       // llama3
  int64_t original_max_positions = 0;  // llama3, dynamic
};
// Written out: the CUDA sources that include this header compile as C++17.
inline bool operator==(const RopeScaling& a, const RopeScaling& b) {
  return a.type == b.type && a.factor == b.factor && a.low_freq_factor == b.low_freq_factor &&
         a.high_freq_factor == b.high_freq_factor &&
         a.original_max_positions == b.original_max_positions;
}

// The rot_dim / 2 inverse frequencies, in double.
std::vector<double> rope_inv_freq(int64_t rot_dim, double theta, const RopeScaling& scaling);

struct RopeTable {
  int64_t max_positions = 0, rot_dim = 0;
  double theta = 10000.0;
  RopeScaling scaling;
  std::vector<double> cos, sin;  // [max_positions, rot_dim/2], computed in double once
  RopeTable() = default;
  // Dynamic scaling past original_max_positions depends on the sequence length, not the
  // position: the table refuses positions there (rrt's models stop at max_seq_len, which import
  // keeps within them).
  RopeTable(int64_t max_positions, int64_t rot_dim, double theta, const RopeScaling& scaling = {});
};

// pos: [N, T] each token's position (document-aware batches restart them after each EOS);
// null: token t is at position t.
template <typename S>
void rope_forward(S* x, const RopeTable& table, int64_t N, int64_t T, int64_t H, int64_t Dh,
                  const int32_t* pos = nullptr);
template <typename S>
void rope_backward(S* dx, const RopeTable& table, int64_t N, int64_t T, int64_t H, int64_t Dh,
                   const int32_t* pos = nullptr);

}  // namespace rrt::ops
