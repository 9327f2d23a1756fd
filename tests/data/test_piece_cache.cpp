// The BPE tokenizers' shared per-piece cache (data/piece_cache.h): what it returns, what it
// refuses to keep, its bound, and its use from several threads at once.
#include "data/piece_cache.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace rrt {
namespace {

TEST(PieceCache, ReturnsWhatWasStoredAppendedToTheOutput) {
  PieceCache cache;
  std::vector<int32_t> out = {7};
  EXPECT_FALSE(cache.lookup("hello", out));
  EXPECT_EQ(out, std::vector<int32_t>({7}));
  const std::vector<int32_t> tokens = {1, 2, 3};
  cache.insert("hello", tokens);
  EXPECT_TRUE(cache.lookup("hello", out));
  EXPECT_EQ(out, std::vector<int32_t>({7, 1, 2, 3}));
  EXPECT_FALSE(cache.lookup("hell", out));
}

TEST(PieceCache, IgnoresPiecesOverTheLengthLimit) {
  PieceCache cache;
  const std::string piece(PieceCache::kMaxPieceBytes + 1, 'a');
  const std::vector<int32_t> tokens = {4};
  cache.insert(piece, tokens);
  std::vector<int32_t> out;
  EXPECT_FALSE(cache.lookup(piece, out));
  EXPECT_EQ(cache.size(), 0u);
  cache.insert(piece.substr(1), tokens);  // exactly at the limit: kept
  EXPECT_TRUE(cache.lookup(piece.substr(1), out));
}

TEST(PieceCache, StaysWithinItsBound) {
  PieceCache cache;
  const std::vector<int32_t> tokens = {0};
  for (size_t i = 0; i < 2 * PieceCache::kMaxEntries; ++i) {
    cache.insert(std::to_string(i), tokens);
  }
  EXPECT_LE(cache.size(), PieceCache::kMaxEntries);
  EXPECT_GT(cache.size(), 0u);
}

// Four threads storing and reading overlapping pieces: every hit is the piece's own tokens
// (under a sanitizer this is also the data-race check).
TEST(PieceCache, ThreadsSeeOnlyEachPiecesOwnTokens) {
  PieceCache cache;
  std::vector<int> wrong(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::vector<int32_t> out;
      for (int i = 0; i < 20000; ++i) {
        const int key = (i * 7 + t * 13) % 5000;
        const std::string piece = std::to_string(key);
        out.clear();
        if (cache.lookup(piece, out)) {
          if (out != std::vector<int32_t>({key, key + 1})) ++wrong[t];
        } else {
          const std::vector<int32_t> tokens = {key, key + 1};
          cache.insert(piece, tokens);
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(wrong, std::vector<int>(4, 0));
  EXPECT_EQ(cache.size(), 5000u);
}

}  // namespace
}  // namespace rrt
