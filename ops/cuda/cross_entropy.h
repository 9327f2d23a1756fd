// Chunked LM head + log-softmax + cross-entropy on the GPU, the CUDA twin of
// ops/cross_entropy.h (same semantics: mean over rows whose target is not ignore_index; the
// gradient is weight / counted * (softmax - onehot)). Per chunk of rows:
//   logits[rows, V]  = h_c W^T                 (cuBLASLt, bf16 operands, fp32 logits)
//   one block per row: log-sum-exp, loss, dlogits = (softmax - onehot) * weight / counted (bf16)
//   dh_c            += dlogits W               (bf16, beta = 1)
//   dW              += dlogits^T h_c           (fp32, beta = 1)
// Only chunk x V values exist at a time, never the M x V logits. softcap > 0: the fp32 logits are
// soft-capped after the GEMM (ops/logit_softcap.h) and dlogits scaled by its slope.
//   h: [M, D] bf16, W: [V, D] bf16 (head or tied embedding), targets: [M] int32 on the device
// dlogits go to their own bf16 buffer (not over the fp32 logits): the two gradient GEMMs need
// bf16 operands, and writing bf16 over a row's fp32 values while other threads read them races.
// The call synchronizes ctx's stream twice: once to validate targets and count kept rows (before
// any gradient is touched, as on the CPU), once to read the loss back.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ops/cross_entropy.h"
#include "ops/cuda/gemm.h"

namespace rrt::ops::cuda {

// Device workspace for lm_head_cross_entropy: counters, fp32 logits and bf16 dlogits of one
// chunk, and the chunk's per-row losses.
size_t lm_head_workspace_bytes(int64_t V, int64_t chunk);

// dh and dW may both be null (evaluation: no dlogits, no gradient GEMMs). `weight` scales the
// gradient (e.g. 1 / accumulation steps). Throws rrt::Error on a target outside [0, V) that is
// not ignore_index, before touching any gradient.
CrossEntropyResult lm_head_cross_entropy(GemmContext& ctx, const bf16* h, const bf16* W,
                                         const int32_t* targets, bf16* dh, float* dW, int64_t M,
                                         int64_t D, int64_t V, int32_t ignore_index, float weight,
                                         void* workspace, size_t workspace_bytes, int64_t chunk,
                                         double softcap = 0);

}  // namespace rrt::ops::cuda
