// The inference engine's kernels (ops/cuda/kv_ops.h): per-row RoPE, KV-cache writes, decode
// attention, row gather/scatter, argmax and max probability.
#include <climits>
#include <cmath>

#include "core/cuda/cuda_check.h"
#include "core/error.h"
#include "ops/cuda/elementwise_util.cuh"
#include "ops/cuda/kv_ops.h"

namespace rrt::ops::cuda {

namespace {

using detail::aligned16;
using detail::grid_for;
using detail::kWarp;
using detail::load8;
using detail::store8;
using detail::unpack8;

constexpr int kThreads = 256;

// ---- RoPE at per-row positions ----------------------------------------------------------------
// One thread per rotated pair (t, t + half) of one head; heads = n * H, row = head / H.
__global__ void rope_rows_kernel(bf16* x, const float* cos, const float* sin, const int32_t* pos,
                                 int64_t heads, int64_t H, int64_t Dh, int64_t half) {
  const int64_t pairs = heads * half;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < pairs;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = idx % half, head = idx / half;
    const int64_t angle = static_cast<int64_t>(pos[head / H]) * half + t;
    bf16* v = x + head * Dh;
    const float c = cos[angle], s = sin[angle];
    const float a = __bfloat162float(v[t]), b = __bfloat162float(v[t + half]);
    v[t] = __float2bfloat16_rn(a * c - b * s);
    v[t + half] = __float2bfloat16_rn(b * c + a * s);
  }
}

// ---- row copies -------------------------------------------------------------------------------
// Row r of D bf16 moves from src row src_index[r] to dst row dst_index[r] (a null index: r).
// kVec: 16-byte units (D % 8 == 0, both bases 16-byte aligned); otherwise one bf16 per thread.
template <bool kVec>
__global__ void copy_rows_kernel(const bf16* src, const int32_t* src_index, bf16* dst,
                                 const int32_t* dst_index, int64_t n, int64_t D) {
  const int64_t per_row = kVec ? D / 8 : D, total = n * per_row;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = idx / per_row, c = idx % per_row;
    const int64_t s = src_index ? src_index[r] : r, d = dst_index ? dst_index[r] : r;
    if constexpr (kVec)
      reinterpret_cast<uint4*>(dst + d * D)[c] = reinterpret_cast<const uint4*>(src + s * D)[c];
    else
      dst[d * D + c] = src[s * D + c];
  }
}

// The first element of row r's cache (kv_ops.h: several caches in one allocation).
__device__ __forceinline__ int64_t cache_base(const int32_t* cache, int64_t cache_stride,
                                              int64_t r) {
  return cache ? static_cast<int64_t>(cache[r]) * cache_stride : 0;
}

// Keys and values of row r go to cache row slot[r] * max_seq + pos[r] of row r's cache; same
// units as above.
template <bool kVec>
__global__ void kv_store_kernel(const bf16* k, const bf16* v, bf16* k_cache, bf16* v_cache,
                                const int32_t* slot, const int32_t* pos, int64_t n, int64_t max_seq,
                                int64_t kv_dim, const int32_t* cache, int64_t cache_stride) {
  const int64_t per_row = kVec ? kv_dim / 8 : kv_dim, total = n * per_row;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = idx / per_row, c = idx % per_row;
    const int64_t at = cache_base(cache, cache_stride, r) +
                       (static_cast<int64_t>(slot[r]) * max_seq + pos[r]) * kv_dim;
    if constexpr (kVec) {
      reinterpret_cast<uint4*>(k_cache + at)[c] = reinterpret_cast<const uint4*>(k + r * kv_dim)[c];
      reinterpret_cast<uint4*>(v_cache + at)[c] = reinterpret_cast<const uint4*>(v + r * kv_dim)[c];
    } else {
      k_cache[at + c] = k[r * kv_dim + c];
      v_cache[at + c] = v[r * kv_dim + c];
    }
  }
}

// ---- decode attention -------------------------------------------------------------------------
constexpr int kAttnThreads = 128;
// Keys a group loads before it computes (memory-level parallelism): 4 when a lane holds 8 dims,
// 2 when it holds 16 (Dh > 256); the same registers either way.
template <int C>
constexpr int kKeysPerRound = 4 / C;

// 8 bf16 as raw bits: one 16-byte load (kVec: p + i 16-byte aligned, i + 8 <= n) or scalar loads,
// zeros at and past n. Kept packed until used: half the registers of 8 floats.
template <bool kVec>
__device__ __forceinline__ uint4 load8_raw(const bf16* __restrict__ p, int64_t i, int64_t n) {
  if constexpr (kVec) {
    return *reinterpret_cast<const uint4*>(p + i);
  } else {
    uint4 raw;
    bf16* h = reinterpret_cast<bf16*>(&raw);
#pragma unroll
    for (int e = 0; e < 8; ++e) h[e] = i + e < n ? p[i + e] : __float2bfloat16_rn(0.f);
    return raw;
  }
}

// One block per (row, head): blockIdx.x = row * H + h. The block is G = kAttnThreads / L key
// groups of L lanes; lane `lane` of a group holds dims (lane + c * L) * 8 .. + 8 for c < C of q
// (pre-scaled by log2(e) / sqrt(Dh), so exp2 gives the softmax), of its output accumulator and of
// each key and value it reads. A round covers G * K keys (K = kKeysPerRound<C>): group g loads
// keys t0 + j * G + g for j < K (the G groups read neighbouring cache rows), sums each dot
// product over its lanes with xor shuffles (L divides 32, so a group never straddles a warp) and
// folds the round into its online softmax (one rescale per round). Every thread runs the same
// rounds so the full-mask shuffles always see the whole warp; keys past the end load nothing and
// count for nothing. Finally the groups' (max, sum, accumulator) merge through shared memory.
template <int C, bool kVec>
__global__ void __launch_bounds__(kAttnThreads)
    kv_attention_kernel(const bf16* __restrict__ q, const bf16* __restrict__ k_cache,
                        const bf16* __restrict__ v_cache, const int32_t* __restrict__ slot,
                        const int32_t* __restrict__ pos, bf16* __restrict__ out, int64_t H,
                        int64_t heads_per_kv, int64_t Dh, int64_t max_seq, int lanes,
                        float score_scale, const int32_t* __restrict__ cache, int64_t cache_stride,
                        int64_t window, float cap2) {
  __shared__ float acc_shared[1024 * C];  // G * Dh <= (128 / L) * (8 * L * C)
  __shared__ float max_shared[kAttnThreads], sum_shared[kAttnThreads];
  const int64_t row = blockIdx.x / H, h = blockIdx.x % H;
  const int64_t kv_dim = H / heads_per_kv * Dh;
  const int groups = blockDim.x / lanes, g = threadIdx.x / lanes, lane = threadIdx.x % lanes;
  const int64_t end = pos[row] < max_seq ? static_cast<int64_t>(pos[row]) + 1 : max_seq;
  // A sliding window reads only its last `window` keys.
  const int64_t first = window > 0 && end > window ? end - window : 0, len = end - first;
  const int64_t cache_offset = cache_base(cache, cache_stride, row) +
                               (static_cast<int64_t>(slot[row]) * max_seq + first) * kv_dim +
                               h / heads_per_kv * Dh;
  const bf16* keys = k_cache + cache_offset;
  const bf16* values = v_cache + cache_offset;
  const bf16* q_row = q + (row * H + h) * Dh;

  float qv[C][8], acc[C][8];
#pragma unroll
  for (int c = 0; c < C; ++c) {
    const int64_t d0 = static_cast<int64_t>(lane + c * lanes) * 8;
    if (d0 < Dh)
      load8<kVec>(q_row, d0, Dh, qv[c]);
    else
      for (int e = 0; e < 8; ++e) qv[c][e] = 0.f;
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      qv[c][e] *= score_scale;
      acc[c][e] = 0.f;
    }
  }
  float running_max = -INFINITY, running_sum = 0.f;
  for (int64_t t0 = 0; t0 < len; t0 += static_cast<int64_t>(groups) * kKeysPerRound<C>) {
    uint4 k_raw[kKeysPerRound<C>][C], v_raw[kKeysPerRound<C>][C];
#pragma unroll
    for (int j = 0; j < kKeysPerRound<C>; ++j) {
      const int64_t t = t0 + j * groups + g;
#pragma unroll
      for (int c = 0; c < C; ++c) {
        const int64_t d0 = static_cast<int64_t>(lane + c * lanes) * 8;
        if (t < len && d0 < Dh) {
          k_raw[j][c] = load8_raw<kVec>(keys + t * kv_dim, d0, Dh);
          v_raw[j][c] = load8_raw<kVec>(values + t * kv_dim, d0, Dh);
        } else {
          k_raw[j][c] = v_raw[j][c] = make_uint4(0, 0, 0, 0);  // bf16 zeros
        }
      }
    }
    float score[kKeysPerRound<C>];
#pragma unroll
    for (int j = 0; j < kKeysPerRound<C>; ++j) {
      score[j] = 0.f;
#pragma unroll
      for (int c = 0; c < C; ++c) {
        float kf[8];
        unpack8(k_raw[j][c], kf);
#pragma unroll
        for (int e = 0; e < 8; ++e) score[j] = fmaf(qv[c][e], kf[e], score[j]);
      }
    }
    for (int offset = lanes / 2; offset > 0; offset /= 2)
#pragma unroll
      for (int j = 0; j < kKeysPerRound<C>; ++j)
        score[j] += __shfl_xor_sync(0xffffffffu, score[j], offset);
    if (cap2 > 0.f)  // soft-cap in the log2 units of the scores: cap2 = softcap log2(e)
#pragma unroll
      for (int j = 0; j < kKeysPerRound<C>; ++j) score[j] = cap2 * tanhf(score[j] / cap2);
    if (t0 + g >= len) continue;  // no key for this group in this round (nor in later ones)
    float round_max = running_max;
#pragma unroll
    for (int j = 0; j < kKeysPerRound<C>; ++j)
      if (t0 + j * groups + g < len) round_max = fmaxf(round_max, score[j]);
    const float rescale = exp2f(running_max - round_max);  // 0 on the first round
    running_sum *= rescale;
#pragma unroll
    for (int c = 0; c < C; ++c)
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[c][e] *= rescale;
#pragma unroll
    for (int j = 0; j < kKeysPerRound<C>; ++j) {
      if (t0 + j * groups + g >= len) continue;
      const float p = exp2f(score[j] - round_max);
      running_sum += p;
#pragma unroll
      for (int c = 0; c < C; ++c) {
        float vf[8];
        unpack8(v_raw[j][c], vf);
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[c][e] = fmaf(p, vf[e], acc[c][e]);
      }
    }
    running_max = round_max;
  }

  if (lane == 0) {
    max_shared[g] = running_max;
    sum_shared[g] = running_sum;
  }
#pragma unroll
  for (int c = 0; c < C; ++c)
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const int64_t d = static_cast<int64_t>(lane + c * lanes) * 8 + e;
      if (d < Dh) acc_shared[g * Dh + d] = acc[c][e];
    }
  __syncthreads();
  // A group without keys has max -inf and sum 0: its weight exp2(-inf) is 0.
  float block_max = -INFINITY;
  for (int j = 0; j < groups; ++j) block_max = fmaxf(block_max, max_shared[j]);
  float denominator = 0.f;
  for (int j = 0; j < groups; ++j) denominator += exp2f(max_shared[j] - block_max) * sum_shared[j];
  bf16* out_row = out + (row * H + h) * Dh;
  for (int64_t d = threadIdx.x; d < Dh; d += blockDim.x) {
    float numerator = 0.f;
    for (int j = 0; j < groups; ++j)
      numerator += exp2f(max_shared[j] - block_max) * acc_shared[j * Dh + d];
    out_row[d] = __float2bfloat16_rn(numerator / denominator);
  }
}

// ---- argmax and max probability ---------------------------------------------------------------
constexpr int kLogitThreads = 512;

// (value, index) a beats b: larger value, or the same value at a lower index (NaN never beats).
__device__ __forceinline__ bool beats(float a, int a_index, float b, int b_index) {
  return a > b || (a == b && a_index < b_index);
}

// One block per row: the lowest index of the maximum, then sum_j exp(l_j - max) in fp32.
__global__ void __launch_bounds__(kLogitThreads)
    argmax_max_prob_kernel(const float* logits, int64_t V, int32_t* argmax, float* max_prob) {
  __shared__ float best_shared[kWarp], scratch[kWarp];
  __shared__ int index_shared[kWarp];
  const float* row = logits + static_cast<int64_t>(blockIdx.x) * V;
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  float best = -INFINITY;
  int best_index = INT_MAX;  // no candidate yet: any value, -inf included, beats it on the index
  for (int j = threadIdx.x; j < V; j += blockDim.x)
    if (beats(row[j], j, best, best_index)) {
      best = row[j];
      best_index = j;
    }
  for (int round = 0; round < 2; ++round) {  // within each warp, then across the warps
    for (int offset = kWarp / 2; offset > 0; offset /= 2) {
      const float other = __shfl_xor_sync(0xffffffffu, best, offset);
      const int other_index = __shfl_xor_sync(0xffffffffu, best_index, offset);
      if (beats(other, other_index, best, best_index)) {
        best = other;
        best_index = other_index;
      }
    }
    if (round == 1) break;
    if (lane == 0) {
      best_shared[warp] = best;
      index_shared[warp] = best_index;
    }
    __syncthreads();
    const bool held = lane < static_cast<int>(blockDim.x / kWarp);
    best = held ? best_shared[lane] : -INFINITY;
    best_index = held ? index_shared[lane] : INT_MAX;
  }
  float sum = 0.f;
  for (int j = threadIdx.x; j < V; j += blockDim.x) sum += expf(row[j] - best);
  sum = detail::block_sum(sum, scratch);
  if (threadIdx.x == 0) {
    argmax[blockIdx.x] = best_index == INT_MAX ? 0 : best_index;  // all NaN: index 0, as the CPU
    max_prob[blockIdx.x] = 1.f / sum;
  }
}

}  // namespace

void rope_rows_forward(bf16* x, const DeviceRopeTable& table, const int32_t* pos, int64_t n,
                       int64_t H, int64_t Dh, cudaStream_t stream) {
  RRT_CHECK(n >= 0 && H >= 0 && Dh > 0, "rope_rows", "bad shape n=", n, " H=", H, " Dh=", Dh);
  RRT_CHECK(table.rot_dim() <= Dh, "rope_rows", "rotary dim ", table.rot_dim(),
            " exceeds head dim ", Dh);
  const int64_t half = table.rot_dim() / 2, heads = n * H;
  if (heads == 0 || half == 0) return;
  rope_rows_kernel<<<grid_for(heads * half, kThreads), kThreads, 0, stream>>>(
      x, table.cos(), table.sin(), pos, heads, H, Dh, half);
  RRT_CUDA_CHECK_LAUNCH();
}

void kv_store(const bf16* k, const bf16* v, bf16* k_cache, bf16* v_cache, const int32_t* slot,
              const int32_t* pos, int64_t n, int64_t max_seq, int64_t kv_dim, cudaStream_t stream,
              const int32_t* cache, int64_t cache_stride) {
  RRT_CHECK(n >= 0 && max_seq >= 0 && kv_dim >= 0 && cache_stride >= 0, "kv_store",
            "bad shape n=", n, " max_seq=", max_seq, " kv_dim=", kv_dim,
            " cache_stride=", cache_stride);
  if (n == 0 || kv_dim == 0) return;
  const bool vec = kv_dim % 8 == 0 && cache_stride % 8 == 0 && aligned16(k) && aligned16(v) &&
                   aligned16(k_cache) && aligned16(v_cache);
  const int64_t units = n * (vec ? kv_dim / 8 : kv_dim);
  if (vec)
    kv_store_kernel<true><<<grid_for(units, kThreads), kThreads, 0, stream>>>(
        k, v, k_cache, v_cache, slot, pos, n, max_seq, kv_dim, cache, cache_stride);
  else
    kv_store_kernel<false><<<grid_for(units, kThreads), kThreads, 0, stream>>>(
        k, v, k_cache, v_cache, slot, pos, n, max_seq, kv_dim, cache, cache_stride);
  RRT_CUDA_CHECK_LAUNCH();
}

void kv_attention(const bf16* q, const bf16* k_cache, const bf16* v_cache, const int32_t* slot,
                  const int32_t* pos, bf16* out, int64_t n, int64_t H, int64_t Hkv, int64_t Dh,
                  int64_t max_seq, cudaStream_t stream, const int32_t* cache, int64_t cache_stride,
                  int64_t window, double softcap) {
  RRT_CHECK(window >= 0 && softcap >= 0, "kv_attention", "window ", window, " and softcap ",
            softcap, " must be >= 0 (0: off)");
  RRT_CHECK(n >= 0 && H >= 1 && Hkv >= 1 && max_seq >= 1 && cache_stride >= 0, "kv_attention",
            "bad shape n=", n, " H=", H, " Hkv=", Hkv, " max_seq=", max_seq,
            " cache_stride=", cache_stride);
  RRT_CHECK(H % Hkv == 0, "kv_attention", "H=", H, " is not a multiple of Hkv=", Hkv);
  RRT_CHECK(Dh >= 1 && Dh <= kKvAttentionMaxHeadDim, "kv_attention", "head dim ", Dh,
            " outside 1..", kKvAttentionMaxHeadDim);
  RRT_CHECK(n * H <= INT_MAX, "kv_attention", n, " rows x ", H, " heads exceed the grid");
  if (n == 0) return;
  const int64_t chunks = (Dh + 7) / 8;  // 8 dims per lane and chunk
  int lanes = 1;
  while (lanes < chunks && lanes < kWarp) lanes *= 2;
  const bool two_chunks = chunks > lanes;  // Dh > 256: each lane holds 16 dims
  const bool vec = Dh % 8 == 0 && cache_stride % 8 == 0 && aligned16(q) && aligned16(k_cache) &&
                   aligned16(v_cache);
  constexpr double kLog2E = 1.4426950408889634;
  const float score_scale = static_cast<float>(kLog2E / std::sqrt(static_cast<double>(Dh)));
  const float cap2 = static_cast<float>(softcap * kLog2E);
  const unsigned blocks = static_cast<unsigned>(n * H);
  const int64_t heads_per_kv = H / Hkv;
#define RRT_KV_ATTENTION(C, VEC)                                                             \
  kv_attention_kernel<C, VEC><<<blocks, kAttnThreads, 0, stream>>>(                          \
      q, k_cache, v_cache, slot, pos, out, H, heads_per_kv, Dh, max_seq, lanes, score_scale, \
      cache, cache_stride, window, cap2)
  if (two_chunks && vec)
    RRT_KV_ATTENTION(2, true);
  else if (two_chunks)
    RRT_KV_ATTENTION(2, false);
  else if (vec)
    RRT_KV_ATTENTION(1, true);
  else
    RRT_KV_ATTENTION(1, false);
#undef RRT_KV_ATTENTION
  RRT_CUDA_CHECK_LAUNCH();
}

namespace {
void copy_rows(const char* op, const bf16* src, const int32_t* src_index, bf16* dst,
               const int32_t* dst_index, int64_t n, int64_t D, cudaStream_t stream) {
  RRT_CHECK(n >= 0 && D >= 0, op, "bad shape n=", n, " D=", D);
  if (n == 0 || D == 0) return;
  const bool vec = D % 8 == 0 && aligned16(src) && aligned16(dst);
  const int64_t units = n * (vec ? D / 8 : D);
  if (vec)
    copy_rows_kernel<true>
        <<<grid_for(units, kThreads), kThreads, 0, stream>>>(src, src_index, dst, dst_index, n, D);
  else
    copy_rows_kernel<false>
        <<<grid_for(units, kThreads), kThreads, 0, stream>>>(src, src_index, dst, dst_index, n, D);
  RRT_CUDA_CHECK_LAUNCH();
}
}  // namespace

void gather_rows(const bf16* src, const int32_t* index, bf16* dst, int64_t n, int64_t D,
                 cudaStream_t stream) {
  copy_rows("gather_rows", src, index, dst, nullptr, n, D, stream);
}

void scatter_rows(const bf16* src, const int32_t* index, bf16* dst, int64_t n, int64_t D,
                  cudaStream_t stream) {
  copy_rows("scatter_rows", src, nullptr, dst, index, n, D, stream);
}

void logits_argmax_max_prob(const float* logits, int64_t n, int64_t V, int32_t* argmax,
                            float* max_prob, cudaStream_t stream) {
  RRT_CHECK(n >= 0 && V >= 1 && V < INT_MAX && n <= INT_MAX, "logits_argmax_max_prob",
            "bad shape n=", n, " V=", V);
  if (n == 0) return;
  argmax_max_prob_kernel<<<static_cast<unsigned>(n), kLogitThreads, 0, stream>>>(logits, V, argmax,
                                                                                 max_prob);
  RRT_CUDA_CHECK_LAUNCH();
}

}  // namespace rrt::ops::cuda
