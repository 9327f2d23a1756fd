#include "data/bpe_merge.h"

#include <functional>
#include <queue>

namespace rrt {

void bpe_merge(std::vector<int32_t> symbols, const BpeMergeTable& merges,
               std::vector<int32_t>& out) {
  std::vector<int32_t>& id = symbols;
  const int n = static_cast<int>(id.size());
  std::vector<int32_t> prev(n), next(n);
  for (int i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Candidate {
    int32_t rank, left, right, left_id, right_id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : left > o.left;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
  const auto push = [&](int left) {
    if (left < 0 || next[left] < 0) return;
    const int right = next[left];
    const auto it = merges.find(bpe_pair_key(id[left], id[right]));
    if (it != merges.end()) heap.push({it->second.rank, left, right, id[left], id[right]});
  };
  for (int i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    if (id[c.left] != c.left_id || next[c.left] != c.right || id[c.right] != c.right_id) continue;
    id[c.left] = merges.at(bpe_pair_key(c.left_id, c.right_id)).merged;
    id[c.right] = -1;
    next[c.left] = next[c.right];
    if (next[c.left] >= 0) prev[next[c.left]] = c.left;
    push(prev[c.left]);
    push(c.left);
  }
  for (int i = n > 0 ? 0 : -1; i >= 0; i = next[i]) out.push_back(id[i]);
}

}  // namespace rrt
