// Causal attention over bf16 q, k, v (the shapes and semantics of ops/attention.h) for the CPU
// bf16 backend: the fp32 op's flash-style structure (64-query blocks, scores against the causally
// visible keys in per-thread scratch, only the row log-sum-exp kept) with every block widened to
// fp32 first. Softmax statistics, the lse and every accumulator are fp32; out, dq, dk and dv are
// rounded to bf16 once (backward adds: a head's dq, a kv head's dk and dv are summed in fp32 over
// all their query blocks and heads, then added to the bf16 gradient).
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "ops/attention.h"

namespace rrt::ops::cpu_bf16 {

// fp32 scratch per OpenMP thread for calls up to shape s.
int64_t attention_workspace_elems(const AttentionShape& s);

// lse: [N, H, T] fp32. workspace: threads * attention_workspace_elems(s).
void attention_forward(const bf16* q, const bf16* k, const bf16* v, bf16* out, float* lse,
                       const AttentionShape& s, float* workspace, int threads,
                       const AttentionMask& mask = {});
// Adds into dq, dk, dv.
void attention_backward(const bf16* q, const bf16* k, const bf16* v, const bf16* out,
                        const float* lse, const bf16* dout, bf16* dq, bf16* dk, bf16* dv,
                        const AttentionShape& s, float* workspace, int threads,
                        const AttentionMask& mask = {});

}  // namespace rrt::ops::cpu_bf16
