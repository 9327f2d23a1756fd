// Causal scaled-dot-product attention with grouped KV heads (MHA: Hkv = H, GQA, MQA: Hkv = 1).
//   q: [N, T, H, Dh]   k, v: [N, T, Hkv, Dh]   out: [N, T, H, Dh]   lse: [N, H, T]
// Query head h reads kv head h / (H / Hkv). Scale 1/sqrt(Dh).
// An AttentionMask narrows what a query sees and shapes its scores (all off by default, which is
// the plain causal op, bit for bit): query i of sequence n sees keys j in
// [attention_first_key(mask, T, n, i), i], a contiguous range because both restrictions cut from
// the left: a document boundary (doc_start: the first position of token i's document, so a packed
// sequence's documents do not see each other) and a sliding window (i - j < window). Soft-capping
// replaces each scaled score s by cap tanh(s / cap) before the softmax; lse is over the capped
// scores, and backward multiplies the score gradient by 1 - tanh^2.
// Flash-style blocking: queries go in blocks of kAttnBlock rows; a block's scores against the
// (causally visible) keys live in per-thread scratch of kAttnBlock x T, so memory is O(T) per
// head row and nothing T x T is ever stored. Forward keeps only the row log-sum-exp; backward
// recomputes the probabilities from it.
#pragma once

#include <cstdint>

namespace rrt::ops {

constexpr int64_t kAttnBlock = 64;

struct AttentionShape {
  int64_t N, T, H, Hkv, Dh;
};

struct AttentionMask {
  // [N, T] int32 in the backend's memory: doc_start[n T + i] is the first position of the
  // document that holds token i (non-decreasing along a sequence, <= i). null: one document.
  const int32_t* doc_start = nullptr;
  int64_t window = 0;  // sliding window: key j visible iff i - j < window; 0: none
  double softcap = 0;  // scores become softcap tanh(s / softcap); 0: none
  bool plain() const { return doc_start == nullptr && window <= 0 && softcap <= 0; }
};

// The first key that query i of sequence n sees (host memory doc_start).
inline int64_t attention_first_key(const AttentionMask& m, int64_t T, int64_t n, int64_t i) {
  int64_t lo = m.doc_start ? m.doc_start[n * T + i] : 0;
  if (m.window > 0 && i - m.window + 1 > lo) lo = i - m.window + 1;
  return lo;
}

// Throws unless the mask is one the ops run (doc_start in host memory: the CPU backends' check;
// each token's document start in [previous token's, its own position]).
void check_attention_mask(const AttentionMask& mask, const AttentionShape& shape);

// Scratch elements the forward/backward need when run with `threads` OpenMP threads.
int64_t attention_workspace_elems(const AttentionShape& s, int threads);

template <typename S>
void attention_forward(const S* q, const S* k, const S* v, S* out, S* lse,
                       const AttentionShape& shape, S* workspace, int threads,
                       const AttentionMask& mask = {});
// Adds into dq, dk, dv. Needs the forward's out and lse (and the forward's mask).
template <typename S>
void attention_backward(const S* q, const S* k, const S* v, const S* out, const S* lse,
                        const S* dout, S* dq, S* dk, S* dv, const AttentionShape& shape,
                        S* workspace, int threads, const AttentionMask& mask = {});

}  // namespace rrt::ops
