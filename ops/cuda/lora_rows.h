// Batched per-row LoRA for the inference engine (docs/method.md §6.1: each row gathers its own
// loop's A/B): one engine step runs the block over rows at different loop depths, and a
// relaxed model gives each unrolled position its own adapter. Instead of two GEMMs per group of
// rows (launch-bound at decode sizes), lora_rows_forward applies every row's own adapter in two
// kernel launches, whatever the number of adapters:
//   u[i] = A_g x[i]          (fp32, kept in fp32)          x [rows, in], A_g [R_g, in]
//   y[i] += s_g B_g u[i]     (fp32 sum, rounded to bf16)   y [rows, out], B_g [out, R_g]
// for each row i of a tile with group g. Rows go in tiles of at most kLoraRowTileMax rows that
// share one adapter, so each adapter row read serves up to 8 rows.
//
// CUDA cores, not tensor cores: the work per call is rows x R x (in + out) multiply-adds, small
// at decode sizes, where the two launches dominate. For large prefill chunks at high rank
// (hundreds of rows, R 512, in or out 16384) a tensor-core GEMM per group is faster: there the
// caller may keep the per-group GEMMs (ops/cuda/lora.h).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace rrt::ops::cuda {

using bf16 = __nv_bfloat16;

// One adapter as the kernels read it (device pointers).
struct LoraAdapter {
  const bf16* a = nullptr;  // [rank, in]  (nullptr or rank 0: no adapter, rows unchanged)
  const bf16* b = nullptr;  // [out, rank]
  int32_t rank = 0;
  float scale = 0.f;
};

// Rows [begin, end) (end - begin <= kLoraRowTileMax) use adapters[group * adapter_stride].
struct LoraRowTile {
  int32_t begin = 0, end = 0, group = 0;
};

constexpr int32_t kLoraRowTileMax = 8;

// Appends tiles of at most kLoraRowTileMax rows covering [begin, end), all with `group`
// (host only, no CUDA call). begin >= end appends nothing.
inline void append_lora_row_tiles(int32_t begin, int32_t end, int32_t group,
                                  std::vector<LoraRowTile>& tiles) {
  for (int32_t first = begin; first < end; first += kLoraRowTileMax)
    tiles.push_back({first, std::min(end, first + kLoraRowTileMax), group});
}

// For every tile t and row i in [t.begin, t.end), with ad = adapters[t.group * adapter_stride]:
//   u[i, k] = sum_c x[i, c] * ad.a[k, c]                 (fp32, k < ad.rank; u is NOT rounded to
//   bf16) y[i, o] = bf16( float(y[i, o]) + ad.scale * sum_k u[i, k] * ad.b[o, k] )   o < out
// x [rows, in], y [rows, out] bf16 (row-major, rows indexed absolutely); adapters, tiles: DEVICE
// arrays; u: device fp32 scratch [rows, max_rank] (max_rank >= every adapter's rank); rows of
// different tiles are distinct. Rows in no tile, and rows whose adapter is absent (null A or B,
// rank 0), are not touched, neither in y nor in u.
// Launches exactly two kernels (n_tiles = 0 or max_rank = 0: none); nothing synchronises.
// Device-side values are not validated (as in kv_ops.h): a rank above max_rank is clamped to it,
// a tile longer than kLoraRowTileMax is cut to its first kLoraRowTileMax rows.
// 16-byte loads where the row length is a multiple of 8 and the pointers are 16-byte aligned
// (cudaMalloc's are; decided per adapter for A and B), scalar loads otherwise.
// Throws rrt::Error (before any CUDA call) for in < 1, out < 1, n_tiles < 0, max_rank < 0,
// adapter_stride < 0.
void lora_rows_forward(const bf16* x, int64_t in, bf16* y, int64_t out, const LoraAdapter* adapters,
                       int64_t adapter_stride, const LoraRowTile* tiles, int64_t n_tiles,
                       int64_t max_rank, float* u, cudaStream_t stream);

}  // namespace rrt::ops::cuda
