// Document-aware batches (data.document_mask, issue 25): a packed training sequence holds several
// documents, each ending in EOS (rrt prepare writes every document followed by EOS). With the
// mask, token t's document starts after the last EOS before t (or at the sequence's start), its
// attention sees only that document's keys (ops/attention.h's doc_start) and its RoPE position
// restarts there, so each document computes what it computes as a sequence of its own. The EOS
// token belongs to the document it ends; the loss is unchanged (every target still counts).
#pragma once

#include <cstdint>

namespace rrt {

// tokens [N, T] -> doc_start [N, T] (first position of each token's document) and positions
// [N, T] (t - doc_start). Returns whether any sequence holds more than one document (a token
// after an EOS within it); when not, every doc_start is 0 and positions are 0..T-1.
inline bool document_starts(const int32_t* tokens, int64_t N, int64_t T, int32_t eos,
                            int32_t* doc_start, int32_t* positions) {
  bool several = false;
  for (int64_t n = 0; n < N; ++n) {
    int32_t start = 0;
    for (int64_t t = 0; t < T; ++t) {
      if (t > 0 && tokens[n * T + t - 1] == eos) {
        start = static_cast<int32_t>(t);
        several = true;
      }
      doc_start[n * T + t] = start;
      positions[n * T + t] = static_cast<int32_t>(t) - start;
    }
  }
  return several;
}

}  // namespace rrt
