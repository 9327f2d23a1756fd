#pragma once
// The per-piece result cache of the BPE tokenizers (data/bpe_tokenizer.cpp,
// data/tokenizer_json_encode.cpp). Pre-tokenized pieces repeat (Zipf), so most never reach the
// merge loop. `rrt prepare --threads N` encodes from N threads through one tokenizer: one
// mutex around one map made them queue on it (2 threads ran no faster than 1 and burnt half
// again the CPU in futex calls), so the map is split into shards by hash, each with its own
// lock; two threads rarely want the same shard at once.
#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace rrt {

class PieceCache {
 public:
  static constexpr size_t kMaxPieceBytes = 64;  // longer pieces are rare: not worth keeping

  // Appends the cached tokens of `piece` to `out`; false (out unchanged) if not cached.
  bool lookup(std::string_view piece, std::vector<int32_t>& out) const;
  // Remembers `tokens` for `piece` (pieces over kMaxPieceBytes are ignored). A full shard is
  // emptied: the frequent pieces come back at once, and memory stays bounded.
  void insert(std::string_view piece, std::span<const int32_t> tokens);
  // Pieces held now, at most kMaxEntries.
  size_t size() const;
  static constexpr size_t kMaxEntries = size_t{1} << 18;

 private:
  static constexpr size_t kShards = 64;
  static constexpr size_t kEntriesPerShard = kMaxEntries / kShards;
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct Shard {
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<int32_t>, Hash, std::equal_to<>> map;
  };
  static size_t shard_of(std::string_view piece);
  mutable std::array<Shard, kShards> shards_;
};

}  // namespace rrt
