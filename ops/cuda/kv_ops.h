// CUDA kernels of the early-exit inference engine: the per-row RoPE, KV-cache writes, decode
// attention, row gather/scatter and greedy-exit statistics that the CPU engine computes
// in its rope_rows, store_kv and attend and in inference/sampling.cpp's argmax / max_probability.
//
// All pointers are device pointers, int32 index arrays included; work is queued on `stream` and
// nothing synchronises. Values in device memory (positions, slots, indices) are not
// range-checked: the caller validates them on the host before uploading. n = 0 launches nothing.
// Every kernel uses 16-byte loads and stores where the row length is a multiple of 8 bf16 and
// the pointers are 16-byte aligned (cudaMalloc's are), and a scalar path otherwise: any layout
// works, aligned ones are faster.
//
// KV cache of one unrolled position: k_cache, v_cache [slots, max_seq, kv_dim] bf16, kv_dim =
// Hkv * Dh; row (slot, t) holds the key (value) of token t of the sequence in `slot`.
// Several caches in one allocation (the engine's, one per unrolled position, cache_stride
// elements apart): with `cache` non-null, kv_store and kv_attention send row i to the cache that
// starts cache[i] * cache_stride elements after k_cache (and v_cache), so one launch serves the
// rows of every loop in a depth-wise step; with `cache` null every row uses k_cache / v_cache.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "ops/cuda/elementwise.h"

namespace rrt::ops::cuda {

using bf16 = __nv_bfloat16;

// Largest head dim kv_attention takes (a lane holds at most 16 dims of q, k, v and the output).
constexpr int64_t kKvAttentionMaxHeadDim = 512;

// RoPE of rows each at its own position, in place: x [n, H, Dh] bf16, pos [n] (< the table's
// max_positions). Rotates the first table.rot_dim() dims of each head with rope_forward's
// half-split pairing (i, i + rot_dim/2), table and fp32 arithmetic; the other dims are untouched.
void rope_rows_forward(bf16* x, const DeviceRopeTable& table, const int32_t* pos, int64_t n,
                       int64_t H, int64_t Dh, cudaStream_t stream);

// Writes n tokens' keys and values into the cache: k, v [n, kv_dim];
//   k_cache[(slot[i] * max_seq + pos[i]) * kv_dim + c] = k[i * kv_dim + c], the same for v.
// Rows must name distinct (slot, pos) cells (two writes to one cell race).
void kv_store(const bf16* k, const bf16* v, bf16* k_cache, bf16* v_cache, const int32_t* slot,
              const int32_t* pos, int64_t n, int64_t max_seq, int64_t kv_dim, cudaStream_t stream,
              const int32_t* cache = nullptr, int64_t cache_stride = 0);

// Decode attention, one query per (row i, head h):
//   out[i, h, :] = softmax(q[i, h, :] . K^T / sqrt(Dh)) V
// over the keys t = 0..pos[i] (inclusive) of slot[i]'s cache, kv head h / (H / Hkv).
// q, out [n, H * Dh] bf16; caches as above with kv_dim = Hkv * Dh. Reads pos[i] + 1 rows of each
// cache (clamped to max_seq); pos[i] < 0 gives NaN (no keys).
// One block (128 threads) per (i, h): a decode step has few query rows, each against a long
// context, so the parallelism is over keys. The block splits into key groups of L lanes (L = the
// power of two >= Dh/8, at most 32; each lane holds 8 dims, 16 when Dh > 256); each round a group
// loads 4 keys and values (2 when Dh > 256) at once, sums the dot products over its lanes with
// warp shuffles and folds them into its own online softmax (running max and sum, fp32); the
// groups merge at the end through 5 KiB (Dh <= 256) or 9 KiB of static shared memory. No split
// over keys across blocks: n * H blocks in all, each reading its slot's pos[i] + 1 key rows.
// Throws rrt::Error for Dh outside 1..512, Hkv < 1, H % Hkv != 0, negative sizes (kv_store too,
// and both for a negative cache_stride).
// window > 0: row i reads only keys pos[i] - window + 1 .. pos[i] (sliding-window layers);
// softcap > 0: scores become softcap tanh(s / softcap) (ops/attention.h's AttentionMask).
void kv_attention(const bf16* q, const bf16* k_cache, const bf16* v_cache, const int32_t* slot,
                  const int32_t* pos, bf16* out, int64_t n, int64_t H, int64_t Hkv, int64_t Dh,
                  int64_t max_seq, cudaStream_t stream, const int32_t* cache = nullptr,
                  int64_t cache_stride = 0, int64_t window = 0, double softcap = 0);

// Rows of D bf16 (i < n): gather dst[i] = src[index[i]]; scatter dst[index[i]] = src[i].
// Scatter indices must be distinct; src and dst must not overlap.
void gather_rows(const bf16* src, const int32_t* index, bf16* dst, int64_t n, int64_t D,
                 cudaStream_t stream);
void scatter_rows(const bf16* src, const int32_t* index, bf16* dst, int64_t n, int64_t D,
                  cudaStream_t stream);

// Per row r of fp32 logits [n, V] (one block per row):
//   argmax[r]   = the lowest index of the maximum (inference/sampling.cpp argmax's tie rule),
//   max_prob[r] = the largest softmax probability = 1 / sum_j exp(l_j - max), fp32 block sum.
// argmax, max_prob: [n] device arrays. NaN logits never win the argmax.
void logits_argmax_max_prob(const float* logits, int64_t n, int64_t V, int32_t* argmax,
                            float* max_prob, cudaStream_t stream);

}  // namespace rrt::ops::cuda
