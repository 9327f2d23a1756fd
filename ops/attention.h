// Causal scaled-dot-product attention with grouped KV heads (MHA: Hkv = H, GQA, MQA: Hkv = 1).
//   q: [N, T, H, Dh]   k, v: [N, T, Hkv, Dh]   out: [N, T, H, Dh]   lse: [N, H, T]
// Query head h reads kv head h / (H / Hkv). Scale 1/sqrt(Dh).
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

// Scratch elements the forward/backward need when run with `threads` OpenMP threads.
int64_t attention_workspace_elems(const AttentionShape& s, int threads);

template <typename S>
void attention_forward(const S* q, const S* k, const S* v, S* out, S* lse,
                       const AttentionShape& shape, S* workspace, int threads);
// Adds into dq, dk, dv. Needs the forward's out and lse.
template <typename S>
void attention_backward(const S* q, const S* k, const S* v, const S* out, const S* lse,
                        const S* dout, S* dq, S* dk, S* dv, const AttentionShape& shape,
                        S* workspace, int threads);

}  // namespace rrt::ops
