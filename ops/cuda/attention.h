// Fused causal attention with grouped KV heads on the GPU, the CUDA twin of ops/attention.h, run by
// cuDNN's scaled-dot-product-attention engines (flash attention: O(T) memory, nothing T x T is
// stored) through cudnn-frontend's graph API (the sdpa and sdpa_backward nodes), and by rrt's own
// kernels where cuDNN cannot serve a call (below).
//   q: [N, T, H, Dh]   k, v: [N, T, Hkv, Dh]   out: [N, T, H, Dh]      bf16
//   lse: [N, H, T] fp32, lse[n, h, i] = log sum_{j <= i} exp(scale q_i . k_j), natural log: the
//   CPU's definition and cuDNN's "Stats" output, so no conversion is needed.
// Query head h reads kv head h / (H / Hkv) (MHA: Hkv = H, GQA, MQA: Hkv = 1); scale 1/sqrt(Dh);
// query i sees keys 0..i (causal, top-left diagonal). The layouts are rrt's own: cuDNN reads them
// through strides ([N, H, T, Dh] dims with strides (T H Dh, Dh, H Dh, 1)), nothing is transposed.
//
// Backward ADDS into dq, dk, dv like every rrt backward. cuDNN overwrites its gradient outputs, so
// it writes into scratch owned by the context and a second pass adds the scratch into dq, dk, dv
// (3 extra reads and writes of q-sized and kv-sized tensors: small next to the attention itself).
//
// Which kernels run (decided in ONE place, choose_attention_path below):
//   - cuDNN's SDPA where it serves the call: Dh a multiple of 8 and at most 256 (cuDNN's bf16
//     limits), a backward with T >= 2 (cuDNN has none for a single query and key) and, above
//     Dh = 128, on Hopper (sm_90: other GPUs' cuDNN backward stops at 128), every pointer 16-byte
//     aligned (cuDNN's kernels use 16-byte vector loads; cudaMalloc and rrt's arenas give 256
//     and 64 bytes);
//   - otherwise rrt's own kernels (ops/cuda/attention_fallback.h): any Dh up to 512, any T, any
//     alignment, same layouts and lse, no tensor cores (far slower than cuDNN:
//     bench/gpu_attention.cpp measures the ratio), e.g. Gemma 2B's Dh = 256 training off Hopper.
//   - masks (ops/attention.h's AttentionMask): a sliding window is cuDNN's diagonal band (its
//     left bound, set_diagonal_band_left_bound(window) with the causal right bound 0: key j is
//     kept iff j + window > i, i.e. i - j < window, the CPU's rule), one graph per window. Document
//     masks and soft-capping go to the fallback: cuDNN expresses neither alongside the band here.
//     Per-token document starts are no diagonal band, and cuDNN's ragged / padding masks cut
//     whole sequences, not segments inside one (packing documents as ragged sequences would need
//     a re-layout of q, k, v). Soft-capping exists only as a score_mod subgraph
//     (cudnn-frontend's attn::score_modifiers::Softcap), and cudnn-frontend 1.32 refuses a
//     score_mod together with a diagonal band ("Attention score mod enabled and hence other
//     subgraphs are disabled"), so Gemma 2's layers (window and cap) could not use it anyway.
//   RRT_ATTENTION_FALLBACK=1 in the environment (read when a context is made) or
//   set_force_fallback(true) sends every call to the fallback (tests, the benchmark).
// Errors (rrt::Error naming the shape) are left for inputs no path runs: a size below 1, H not a
// multiple of Hkv, Dh above 512, a null pointer. These checks run before any CUDA or cuDNN call.
// Any other case cuDNN refuses (an older cuDNN, another GPU) throws when the graph for that shape
// is first built.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "ops/attention.h"

namespace rrt::ops::cuda {

using bf16 = __nv_bfloat16;

// One cuDNN handle (created at the first call, not in the constructor: constructing a context
// needs no GPU), the built SDPA graphs cached per (direction, N, T, H, Hkv, Dh), one device
// workspace grown to the largest graph's need, and the backward's gradient scratch. Create once
// per device and reuse; not thread-safe (one per stream/thread). Work is enqueued on `stream`.
class AttentionContext {
 public:
  explicit AttentionContext(cudaStream_t stream = nullptr);
  ~AttentionContext();
  AttentionContext(const AttentionContext&) = delete;
  AttentionContext& operator=(const AttentionContext&) = delete;

  cudaStream_t stream() const;
  void set_stream(cudaStream_t stream);
  size_t cached_graphs() const;  // how many (direction, shape) graphs are built (tests check it)
  // Every call to the fallback kernels when true (initially: RRT_ATTENTION_FALLBACK set, not 0).
  void set_force_fallback(bool force);
  bool force_fallback() const;
  int64_t fallback_calls() const;  // forward and backward calls the fallback ran (tests check it)

  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// Throws rrt::Error for a shape no path runs (see above; no GPU needed). `backward` is kept for
// callers that check a training shape; both directions have the same limits now.
void check_attention_shape(const AttentionShape& shape, bool backward);

enum class AttentionPath { kCudnn, kFallback };
// The dispatch rule, pure host code: cuDNN when it serves the call, else the fallback.
// compute_capability is major * 10 + minor (90 for H100/H200); pointers_aligned says whether
// every pointer of the call is 16-byte aligned.
// A mask with document starts or a soft-cap always takes the fallback (above).
AttentionPath choose_attention_path(const AttentionShape& shape, bool backward,
                                    int compute_capability, bool pointers_aligned,
                                    bool force_fallback, const AttentionMask& mask = {});

// out = softmax(scale q k^T + causal mask) v, and lse for the backward. mask.doc_start: device
// memory [N, T].
void attention_forward(AttentionContext& ctx, const bf16* q, const bf16* k, const bf16* v,
                       bf16* out, float* lse, const AttentionShape& shape,
                       const AttentionMask& mask = {});
// dq += dL/dq, dk += dL/dk, dv += dL/dv. Needs the forward's out and lse (and its mask).
void attention_backward(AttentionContext& ctx, const bf16* q, const bf16* k, const bf16* v,
                        const bf16* out, const float* lse, const bf16* dout, bf16* dq, bf16* dk,
                        bf16* dv, const AttentionShape& shape, const AttentionMask& mask = {});

}  // namespace rrt::ops::cuda
