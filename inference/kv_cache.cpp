#include "inference/kv_cache.h"

#include "core/error.h"

namespace rrt::inference {

KvCache::KvCache(int64_t positions, int64_t slots, int64_t max_seq, int64_t kv_dim)
    : positions_(positions), slots_(slots), max_seq_(max_seq), kv_dim_(kv_dim) {
  RRT_CHECK(positions > 0 && slots > 0 && max_seq > 0 && kv_dim > 0, "KvCache",
            "every size must be positive: positions ", positions, ", slots ", slots, ", max_seq ",
            max_seq, ", kv_dim ", kv_dim);
  const size_t n = static_cast<size_t>(positions * slots * max_seq * kv_dim);
  keys_.assign(n, 0.0f);
  values_.assign(n, 0.0f);
}

}  // namespace rrt::inference
