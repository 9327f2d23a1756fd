// rrt's own causal GQA attention (see ops/cuda/attention_fallback.h), the row-by-row twin of
// ops/cpu/attention.cpp:
//   forward:  s_ij = scale q_i . k_j (j <= i), lse_i = log sum_j exp(s_ij), out_i = sum_j p_ij v_j
//   backward: p_ij = exp(s_ij - lse_i), D_i = dO_i . O_i, dS_ij = p_ij (dO_i . v_j - D_i)
//             dq_i += scale sum_j dS_ij k_j, dk_j += scale sum_i dS_ij q_i, dv_j += sum_i p_ij dO_i
// A block is kRowsPerBlock warps, each warp one row (a query row, or a key row for dk/dv), all of
// the same (n, head), so that they share the other side's rows in shared-memory tiles of kTile
// rows. A lane holds elements d = lane + 32 c of a row (c < kPerLane) in fp32 registers; dot
// products are lane-partial sums reduced across the warp by shuffles.
//
// Masks (ops/attention.h): query i sees keys [first_key(i), i]; first keys never decrease along
// a sequence, so a query block starts its key tiles at its first row's first key and a key block
// stops at the first query tile whose first row no longer sees the block's last key. Soft-capped
// scores t = cap tanh(s / cap) replace s in the softmax, and dS is multiplied by 1 - (t / cap)^2.
//
// dk/dv come from a second pass over KEY rows (one warp per key row walks the query rows i >= j of
// every query head of its group) instead of atomicAdd from the query-row pass: every gradient
// element then has exactly one writer, so the sums are deterministic and add straight into the
// bf16 dk, dv (no fp32 scratch of kv size, no conversion pass). The price is computing the
// scores a second time, acceptable for a path taken only where cuDNN cannot serve the shape.
#include <cmath>
#include <type_traits>

#include "core/cuda/cuda_check.h"
#include "core/error.h"
#include "ops/cuda/attention_fallback.h"

namespace rrt::ops::cuda {

namespace {

constexpr int kWarp = 32;
constexpr int kRowsPerBlock = 4;  // warps a block: 4 rows share each tile
constexpr int kTile = 16;         // rows a shared-memory tile: 2 x 16 x 512 bf16 = 32 KiB at most

struct Dims {
  int64_t N, T, H, Hkv, Dh, group;  // group = H / Hkv query heads per kv head
  float scale;
  const int32_t* doc_start;  // [N, T] on the device, or null (one document)
  int64_t window;            // 0: none
  float softcap;             // 0: none
};

// The first key query i of sequence n sees (ops/attention.h's attention_first_key).
__device__ __forceinline__ int64_t first_key(const Dims& s, int64_t n, int64_t i) {
  int64_t lo = s.doc_start ? static_cast<int64_t>(s.doc_start[n * s.T + i]) : 0;
  if (s.window > 0 && i - s.window + 1 > lo) lo = i - s.window + 1;
  return lo;
}
// The scaled score q.k, soft-capped when the mask says so.
__device__ __forceinline__ float cap_score(const Dims& s, float score) {
  return s.softcap > 0.f ? s.softcap * tanhf(score / s.softcap) : score;
}
// d(capped) / d(score) from the capped score t: 1 - (t / cap)^2 (1 without a cap).
__device__ __forceinline__ float cap_grad(const Dims& s, float capped) {
  if (s.softcap <= 0.f) return 1.f;
  const float t = capped / s.softcap;
  return 1.f - t * t;
}

// Offsets of row t of head `head` in a [N, T, heads, Dh] tensor and of (n, h, t) in [N, H, T].
__device__ __forceinline__ int64_t row_offset(const Dims& s, int64_t n, int64_t t, int64_t heads,
                                              int64_t head) {
  return ((n * s.T + t) * heads + head) * s.Dh;
}
__device__ __forceinline__ int64_t stat_offset(const Dims& s, int64_t n, int64_t h, int64_t t) {
  return (n * s.H + h) * s.T + t;
}

__device__ __forceinline__ float warp_sum(float x) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2)
    x += __shfl_xor_sync(0xffffffffu, x, offset);
  return x;  // every lane holds the sum
}

// A row of Dh elements in the lanes' registers (zero past Dh).
template <int kPerLane>
__device__ __forceinline__ void load_row(const bf16* src, int64_t Dh, int lane,
                                         float (&row)[kPerLane]) {
#pragma unroll
  for (int c = 0; c < kPerLane; ++c) {
    const int64_t d = lane + kWarp * c;
    row[c] = d < Dh ? __bfloat162float(src[d]) : 0.f;
  }
}
// row . other (other a bf16 row, in shared or global memory), the full sum in every lane.
template <int kPerLane>
__device__ __forceinline__ float dot(const float (&row)[kPerLane], const bf16* other, int64_t Dh,
                                     int lane) {
  float partial = 0.f;
#pragma unroll
  for (int c = 0; c < kPerLane; ++c) {
    const int64_t d = lane + kWarp * c;
    if (d < Dh) partial += row[c] * __bfloat162float(other[d]);
  }
  return warp_sum(partial);
}
// acc += f * other.
template <int kPerLane>
__device__ __forceinline__ void axpy(float f, const bf16* other, int64_t Dh, int lane,
                                     float (&acc)[kPerLane]) {
#pragma unroll
  for (int c = 0; c < kPerLane; ++c) {
    const int64_t d = lane + kWarp * c;
    if (d < Dh) acc[c] += f * __bfloat162float(other[d]);
  }
}
// dst += acc, one bf16 rounding (rrt's backwards add).
template <int kPerLane>
__device__ __forceinline__ void add_row(bf16* dst, int64_t Dh, int lane,
                                        const float (&acc)[kPerLane]) {
#pragma unroll
  for (int c = 0; c < kPerLane; ++c) {
    const int64_t d = lane + kWarp * c;
    if (d < Dh) dst[d] = __float2bfloat16(__bfloat162float(dst[d]) + acc[c]);
  }
}

// Rows [t0, t0 + rows) of head `head` of a [N, T, heads, Dh] tensor into tile [rows, Dh], by the
// whole block. Element loads: any alignment.
__device__ void load_tile(const Dims& s, const bf16* src, int64_t n, int64_t heads, int64_t head,
                          int64_t t0, int64_t rows, bf16* tile) {
  for (int64_t idx = threadIdx.x; idx < rows * s.Dh; idx += blockDim.x) {
    const int64_t r = idx / s.Dh, d = idx % s.Dh;
    tile[idx] = src[row_offset(s, n, t0 + r, heads, head) + d];
  }
}

// Grid (query row blocks, H, N). Warp w: query row i = blockIdx.x * kRowsPerBlock + w.
template <int kPerLane>
__global__ void forward_kernel(const bf16* q, const bf16* k, const bf16* v, bf16* out, float* lse,
                               Dims s) {
  extern __shared__ bf16 shared[];
  bf16* k_tile = shared;                 // [kTile, Dh]
  bf16* v_tile = shared + kTile * s.Dh;  // [kTile, Dh]
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  const int64_t n = blockIdx.z, h = blockIdx.y, kvh = h / s.group;
  const int64_t first = int64_t(blockIdx.x) * kRowsPerBlock, i = first + warp;
  const int64_t last = min(s.T - 1, first + kRowsPerBlock - 1);  // the block's last query row
  const bool active = i < s.T;

  float q_row[kPerLane], acc[kPerLane];
  if (active) load_row(q + row_offset(s, n, i, s.H, h), s.Dh, lane, q_row);
#pragma unroll
  for (int c = 0; c < kPerLane; ++c) acc[c] = 0.f;
  float running_max = -INFINITY, running_sum = 0.f;
  const int64_t lo = active ? first_key(s, n, i) : 0;

  for (int64_t j0 = first_key(s, n, first); j0 <= last; j0 += kTile) {
    const int64_t rows = min(int64_t(kTile), last + 1 - j0);
    __syncthreads();  // the previous tile is consumed
    load_tile(s, k, n, s.Hkv, kvh, j0, rows, k_tile);
    load_tile(s, v, n, s.Hkv, kvh, j0, rows, v_tile);
    __syncthreads();
    if (!active) continue;
    const int64_t end = min(j0 + rows, i + 1);  // causal: keys j <= i
    for (int64_t j = max(j0, lo); j < end; ++j) {
      const float score = cap_score(s, s.scale * dot(q_row, k_tile + (j - j0) * s.Dh, s.Dh, lane));
      // Online softmax: rescale what was summed under the old maximum (exp(-inf) = 0 at first).
      const float new_max = fmaxf(running_max, score);
      const float correction = expf(running_max - new_max), p = expf(score - new_max);
      running_sum = running_sum * correction + p;
#pragma unroll
      for (int c = 0; c < kPerLane; ++c) acc[c] *= correction;
      axpy(p, v_tile + (j - j0) * s.Dh, s.Dh, lane, acc);
      running_max = new_max;
    }
  }
  if (!active) return;
  bf16* o = out + row_offset(s, n, i, s.H, h);
  const float inv = 1.f / running_sum;
#pragma unroll
  for (int c = 0; c < kPerLane; ++c) {
    const int64_t d = lane + kWarp * c;
    if (d < s.Dh) o[d] = __float2bfloat16(acc[c] * inv);
  }
  if (lane == 0) lse[stat_offset(s, n, h, i)] = running_max + logf(running_sum);
}

// Backward, pass 1, over query rows (grid as the forward): D_i into row_dot, dq_i.
template <int kPerLane>
__global__ void backward_query_kernel(const bf16* q, const bf16* k, const bf16* v, const bf16* out,
                                      const float* lse, const bf16* dout, bf16* dq, float* row_dot,
                                      Dims s) {
  extern __shared__ bf16 shared[];
  bf16* k_tile = shared;
  bf16* v_tile = shared + kTile * s.Dh;
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  const int64_t n = blockIdx.z, h = blockIdx.y, kvh = h / s.group;
  const int64_t first = int64_t(blockIdx.x) * kRowsPerBlock, i = first + warp;
  const int64_t last = min(s.T - 1, first + kRowsPerBlock - 1);
  const bool active = i < s.T;

  float q_row[kPerLane], dout_row[kPerLane], dq_acc[kPerLane];
  float D = 0.f, row_lse = 0.f;
  if (active) {
    const int64_t off = row_offset(s, n, i, s.H, h);
    load_row(q + off, s.Dh, lane, q_row);
    load_row(dout + off, s.Dh, lane, dout_row);
    D = dot(dout_row, out + off, s.Dh, lane);  // D_i = dO_i . O_i = sum_j p_ij dP_ij
    row_lse = lse[stat_offset(s, n, h, i)];
    if (lane == 0) row_dot[stat_offset(s, n, h, i)] = D;
  }
#pragma unroll
  for (int c = 0; c < kPerLane; ++c) dq_acc[c] = 0.f;
  const int64_t lo = active ? first_key(s, n, i) : 0;

  for (int64_t j0 = first_key(s, n, first); j0 <= last; j0 += kTile) {
    const int64_t rows = min(int64_t(kTile), last + 1 - j0);
    __syncthreads();
    load_tile(s, k, n, s.Hkv, kvh, j0, rows, k_tile);
    load_tile(s, v, n, s.Hkv, kvh, j0, rows, v_tile);
    __syncthreads();
    if (!active) continue;
    const int64_t end = min(j0 + rows, i + 1);
    for (int64_t j = max(j0, lo); j < end; ++j) {
      const bf16* k_row = k_tile + (j - j0) * s.Dh;
      const float score = cap_score(s, s.scale * dot(q_row, k_row, s.Dh, lane));
      const float p = expf(score - row_lse);
      const float dscore =
          p * (dot(dout_row, v_tile + (j - j0) * s.Dh, s.Dh, lane) - D) * cap_grad(s, score);
      axpy(s.scale * dscore, k_row, s.Dh, lane, dq_acc);
    }
  }
  if (active) add_row(dq + row_offset(s, n, i, s.H, h), s.Dh, lane, dq_acc);
}

// Backward, pass 2, over key rows: grid (key row blocks, Hkv, N), warp w: key row
// j = blockIdx.x * kRowsPerBlock + w, which sees query rows i >= j of the group's query heads.
template <int kPerLane>
__global__ void backward_key_kernel(const bf16* q, const bf16* k, const bf16* v, const float* lse,
                                    const bf16* dout, const float* row_dot, bf16* dk, bf16* dv,
                                    Dims s) {
  extern __shared__ bf16 shared[];
  bf16* q_tile = shared;                                                  // [kTile, Dh]
  bf16* dout_tile = shared + kTile * s.Dh;                                // [kTile, Dh]
  float* lse_tile = reinterpret_cast<float*>(shared + 2 * kTile * s.Dh);  // [kTile]
  float* dot_tile = lse_tile + kTile;                                     // [kTile]
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  const int64_t n = blockIdx.z, kvh = blockIdx.y;
  const int64_t first = int64_t(blockIdx.x) * kRowsPerBlock, j = first + warp;
  const bool active = j < s.T;

  float k_row[kPerLane], v_row[kPerLane], dk_acc[kPerLane], dv_acc[kPerLane];
  if (active) {
    load_row(k + row_offset(s, n, j, s.Hkv, kvh), s.Dh, lane, k_row);
    load_row(v + row_offset(s, n, j, s.Hkv, kvh), s.Dh, lane, v_row);
  }
#pragma unroll
  for (int c = 0; c < kPerLane; ++c) dk_acc[c] = dv_acc[c] = 0.f;

  const int64_t last = min(s.T - 1, first + kRowsPerBlock - 1);  // the block's last key row
  for (int64_t h = kvh * s.group; h < (kvh + 1) * s.group; ++h)
    // Query tiles until one whose first row no longer sees the block's last key (the same for
    // every thread of the block, so the barriers inside stay uniform).
    for (int64_t i0 = first; i0 < s.T && first_key(s, n, i0) <= last; i0 += kTile) {
      const int64_t rows = min(int64_t(kTile), s.T - i0);
      __syncthreads();
      load_tile(s, q, n, s.H, h, i0, rows, q_tile);
      load_tile(s, dout, n, s.H, h, i0, rows, dout_tile);
      for (int64_t r = threadIdx.x; r < rows; r += blockDim.x) {
        lse_tile[r] = lse[stat_offset(s, n, h, i0 + r)];
        dot_tile[r] = row_dot[stat_offset(s, n, h, i0 + r)];
      }
      __syncthreads();
      if (!active) continue;
      for (int64_t i = max(i0, j); i < i0 + rows; ++i) {  // causal: queries i >= j
        if (first_key(s, n, i) > j) break;  // this query and every later one start after j
        const int64_t r = i - i0;
        const bf16* q_row = q_tile + r * s.Dh;
        const bf16* dout_row = dout_tile + r * s.Dh;
        const float score = cap_score(s, s.scale * dot(k_row, q_row, s.Dh, lane));
        const float p = expf(score - lse_tile[r]);
        const float dscore =
            p * (dot(v_row, dout_row, s.Dh, lane) - dot_tile[r]) * cap_grad(s, score);
        axpy(p, dout_row, s.Dh, lane, dv_acc);
        axpy(s.scale * dscore, q_row, s.Dh, lane, dk_acc);
      }
    }
  if (!active) return;
  add_row(dk + row_offset(s, n, j, s.Hkv, kvh), s.Dh, lane, dk_acc);
  add_row(dv + row_offset(s, n, j, s.Hkv, kvh), s.Dh, lane, dv_acc);
}

// Calls f(std::integral_constant<int, P>) with the smallest P in {1, 2, 4, 8, 16} for which
// 32 P >= Dh: registers for short heads stay few.
template <typename F>
void with_lanes_for(int64_t Dh, F&& f) {
  if (Dh <= 32) return f(std::integral_constant<int, 1>{});
  if (Dh <= 64) return f(std::integral_constant<int, 2>{});
  if (Dh <= 128) return f(std::integral_constant<int, 4>{});
  if (Dh <= 256) return f(std::integral_constant<int, 8>{});
  return f(std::integral_constant<int, 16>{});
}

Dims check_and_describe(const AttentionShape& s, const AttentionMask& m) {
  RRT_CHECK(s.N >= 1 && s.T >= 1 && s.H >= 1 && s.Hkv >= 1 && s.Dh >= 1, "attention fallback",
            "every size must be at least 1 (N=", s.N, " T=", s.T, " H=", s.H, " Hkv=", s.Hkv,
            " Dh=", s.Dh, ")");
  RRT_CHECK(s.H % s.Hkv == 0, "attention fallback", "H=", s.H, " is not a multiple of Hkv=", s.Hkv);
  RRT_CHECK(s.Dh <= kFallbackMaxHeadDim, "attention fallback", "Dh=", s.Dh, " is above ",
            kFallbackMaxHeadDim, " (the registers a lane holds)");
  RRT_CHECK(s.H <= 65535 && s.Hkv <= 65535 && s.N <= 65535, "attention fallback",
            "N and H index grid dimensions y and z (at most 65535): N=", s.N, " H=", s.H);
  RRT_CHECK(m.window >= 0 && m.softcap >= 0, "attention fallback", "window ", m.window,
            " and softcap ", m.softcap, " must be >= 0 (0: off)");
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(s.Dh)));
  return Dims{s.N,         s.T,   s.H,         s.Hkv,    s.Dh,
              s.H / s.Hkv, scale, m.doc_start, m.window, static_cast<float>(m.softcap)};
}

size_t row_tiles_bytes(const Dims& s) { return 2 * kTile * s.Dh * sizeof(bf16); }
unsigned row_blocks(const Dims& s) {
  return static_cast<unsigned>((s.T + kRowsPerBlock - 1) / kRowsPerBlock);
}

}  // namespace

int64_t attention_fallback_scratch_elems(const AttentionShape& s) { return s.N * s.H * s.T; }

void attention_fallback_forward(const bf16* q, const bf16* k, const bf16* v, bf16* out, float* lse,
                                const AttentionShape& shape, cudaStream_t stream,
                                const AttentionMask& mask) {
  const Dims s = check_and_describe(shape, mask);
  const dim3 grid(row_blocks(s), static_cast<unsigned>(s.H), static_cast<unsigned>(s.N));
  with_lanes_for(s.Dh, [&](auto lanes) {
    forward_kernel<decltype(lanes)::value>
        <<<grid, kRowsPerBlock * kWarp, row_tiles_bytes(s), stream>>>(q, k, v, out, lse, s);
  });
  RRT_CUDA_CHECK_LAUNCH();
}

void attention_fallback_backward(const bf16* q, const bf16* k, const bf16* v, const bf16* out,
                                 const float* lse, const bf16* dout, bf16* dq, bf16* dk, bf16* dv,
                                 float* scratch, const AttentionShape& shape, cudaStream_t stream,
                                 const AttentionMask& mask) {
  const Dims s = check_and_describe(shape, mask);
  const dim3 query_grid(row_blocks(s), static_cast<unsigned>(s.H), static_cast<unsigned>(s.N));
  const dim3 key_grid(row_blocks(s), static_cast<unsigned>(s.Hkv), static_cast<unsigned>(s.N));
  with_lanes_for(s.Dh, [&](auto lanes) {
    constexpr int P = decltype(lanes)::value;
    backward_query_kernel<P><<<query_grid, kRowsPerBlock * kWarp, row_tiles_bytes(s), stream>>>(
        q, k, v, out, lse, dout, dq, scratch, s);
    RRT_CUDA_CHECK_LAUNCH();
    backward_key_kernel<P>
        <<<key_grid, kRowsPerBlock * kWarp, row_tiles_bytes(s) + 2 * kTile * sizeof(float),
           stream>>>(q, k, v, lse, dout, scratch, dk, dv, s);
    RRT_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace rrt::ops::cuda
