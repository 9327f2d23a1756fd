#include "data/piece_cache.h"

namespace rrt {

size_t PieceCache::shard_of(std::string_view piece) {
  // The map hashes again inside the shard; the shard takes the top bits so the two choices
  // are not correlated with the map's bucket index (its low bits).
  const uint64_t h = std::hash<std::string_view>{}(piece) * 0x9E3779B97F4A7C15ull;
  return static_cast<size_t>(h >> 58) % kShards;
}

bool PieceCache::lookup(std::string_view piece, std::vector<int32_t>& out) const {
  if (piece.size() > kMaxPieceBytes) return false;
  Shard& shard = shards_[shard_of(piece)];
  std::lock_guard lock(shard.mutex);
  const auto it = shard.map.find(piece);
  if (it == shard.map.end()) return false;
  out.insert(out.end(), it->second.begin(), it->second.end());
  return true;
}

void PieceCache::insert(std::string_view piece, std::span<const int32_t> tokens) {
  if (piece.size() > kMaxPieceBytes) return;
  Shard& shard = shards_[shard_of(piece)];
  std::lock_guard lock(shard.mutex);
  if (shard.map.size() >= kEntriesPerShard) shard.map.clear();
  shard.map.emplace(std::string(piece), std::vector<int32_t>(tokens.begin(), tokens.end()));
}

size_t PieceCache::size() const {
  size_t n = 0;
  for (Shard& shard : shards_) {
    std::lock_guard lock(shard.mutex);
    n += shard.map.size();
  }
  return n;
}

}  // namespace rrt
