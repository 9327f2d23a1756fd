// Rotary position embedding, HF "rotate_half" layout, applied in place per head.
// x: [N, T, H, Dh]; only the first rot_dim dims of each head rotate (NeoX: rot_dim = 25% of Dh).
// For i < rot_dim/2, with angle = pos * theta^(-2i/rot_dim):
//   x[i]           <- x[i] cos - x[i + rot_dim/2] sin
//   x[i+rot_dim/2] <- x[i + rot_dim/2] cos + x[i] sin
// Backward is the inverse rotation of the incoming gradient (also in place).
#pragma once

#include <cstdint>
#include <vector>

namespace rrt::ops {

struct RopeTable {
  int64_t max_positions = 0, rot_dim = 0;
  double theta = 10000.0;
  std::vector<double> cos, sin;  // [max_positions, rot_dim/2], computed in double once
  RopeTable() = default;
  RopeTable(int64_t max_positions, int64_t rot_dim, double theta);
};

template <typename S>
void rope_forward(S* x, const RopeTable& table, int64_t N, int64_t T, int64_t H, int64_t Dh);
template <typename S>
void rope_backward(S* dx, const RopeTable& table, int64_t N, int64_t T, int64_t H, int64_t Dh);

}  // namespace rrt::ops
