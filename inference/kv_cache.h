// KV cache for every unrolled position: for each position l (loop k, block layer b) and each of
// `slots` sequences, the RoPE'd keys and the values of every token, [max_seq, Hkv * Dh] each.
// A sequence owns a slot from admission to completion; replacing it is O(1) (its next prompt
// simply overwrites positions from 0, and attention reads only positions up to the row's own).
#pragma once

#include <cstdint>
#include <vector>

namespace rrt::inference {

class KvCache {
 public:
  KvCache(int64_t positions, int64_t slots, int64_t max_seq, int64_t kv_dim);

  float* key(int64_t l, int64_t slot, int64_t pos) { return keys_.data() + offset(l, slot, pos); }
  float* value(int64_t l, int64_t slot, int64_t pos) {
    return values_.data() + offset(l, slot, pos);
  }
  const float* key(int64_t l, int64_t slot, int64_t pos) const {
    return keys_.data() + offset(l, slot, pos);
  }
  const float* value(int64_t l, int64_t slot, int64_t pos) const {
    return values_.data() + offset(l, slot, pos);
  }
  int64_t positions() const { return positions_; }
  int64_t slots() const { return slots_; }
  int64_t max_seq() const { return max_seq_; }
  int64_t kv_dim() const { return kv_dim_; }
  int64_t bytes() const { return static_cast<int64_t>(2 * keys_.size() * sizeof(float)); }

 private:
  int64_t offset(int64_t l, int64_t slot, int64_t pos) const {
    return ((l * slots_ + slot) * max_seq_ + pos) * kv_dim_;
  }
  int64_t positions_, slots_, max_seq_, kv_dim_;
  std::vector<float> keys_, values_;
};

}  // namespace rrt::inference
