// Byte pair merging of one word, the loop that both BPE tokenizers run: GGUF's byte-level BPE
// (data/bpe_tokenizer.cpp) and tokenizer.json's BPE model (data/tokenizer_json_encode.cpp).
// Each builds its own merge table from its file (their rules for a repeated pair differ) and
// its own symbols (bytes, or characters with byte fallback and unknown tokens); the merging
// itself is the same, and the parity tests against transformers' and llama.cpp's fixtures
// (tests/data) hold it to both.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

namespace rrt {

struct BpeMerge {
  int32_t rank;    // the merge's line in the file: lower merges first
  int32_t merged;  // the token the pair becomes
};

// (left id, right id) -> its merge; the key is bpe_pair_key(left, right).
using BpeMergeTable = std::unordered_map<uint64_t, BpeMerge>;

inline uint64_t bpe_pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

// Merges the token ids `symbols` of one word and appends the result to `out`: a doubly linked
// list of symbols and a heap of candidate pairs ordered by (rank, position), so the lowest-ranked
// pair merges first and ties go to the left (transformers' Word::merge_all and llama.cpp agree);
// stale heap entries are skipped. O(n log n) in the symbols.
void bpe_merge(std::vector<int32_t> symbols, const BpeMergeTable& merges,
               std::vector<int32_t>& out);

}  // namespace rrt
