// The batched per-row LoRA (ops/cuda/lora_rows.h): a down kernel u = A x and an up kernel
// y += s B u, each over all tiles of rows at once, every tile with its own adapter.
//
// Both kernels split one dot product over `parts` warps (down) or lanes (up) when the grid would
// otherwise be too small to fill the GPU: at decode sizes there are few tiles (8 rows each), so
// one warp per adapter row or one thread per output leaves most SMs idle and each warp walking a
// long row one load after another; `parts` grows (1, 2, 4, 8) until about kTargetBlocks blocks
// run, as long as every lane keeps at least two 8-element chunks. The parts' partial sums add in
// a fixed order: the same call gives the same bits whatever the timing.
#include "core/cuda/cuda_check.h"
#include "core/error.h"
#include "ops/cuda/elementwise_util.cuh"
#include "ops/cuda/lora_rows.h"

namespace rrt::ops::cuda {

namespace {

using detail::kWarp;
using detail::load8;

constexpr int kThreads = 256;             // both kernels
constexpr int kWarps = kThreads / kWarp;  // warps of a down block
constexpr int kRows = kLoraRowTileMax;    // accumulators per thread: one per row of the tile
// About two blocks per SM of an A100 (108 SMs) or H100 (132): below this the work is split further.
constexpr int64_t kTargetBlocks = 256;
constexpr int kMaxParts = 8;
// Ranks of u the up kernel stages in shared memory at a time: 8 rows x 512 fp32 = 16 KiB, the
// whole of u at the ranks the paper uses (64..512); higher ranks loop over stages.
constexpr int kRankStage = 512;

// The adapters' pointers are known on the device only, so the kernels pick the load width there
// (block-uniform branches).
__device__ __forceinline__ bool aligned16(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

// A tile's rows and its adapter, read once by every thread (the same addresses: broadcast loads).
// rank 0 when the adapter is absent (null A or B, rank <= 0).
struct TileWork {
  const bf16* a;
  const bf16* b;
  int64_t rank;      // the ranks used: the adapter's, at most max_rank
  int64_t b_stride;  // elements per row of B: the adapter's rank
  float scale;
  int64_t begin;
  int rows;
};

__device__ __forceinline__ TileWork tile_work(const LoraAdapter* adapters, int64_t adapter_stride,
                                              const LoraRowTile* tiles, int64_t max_rank) {
  const LoraRowTile tile = tiles[blockIdx.x];
  const LoraAdapter* ad = adapters + static_cast<int64_t>(tile.group) * adapter_stride;
  TileWork w;
  w.a = ad->a;
  w.b = ad->b;
  w.scale = ad->scale;
  const int64_t rank = ad->rank < max_rank ? ad->rank : max_rank;  // u holds max_rank columns
  w.rank = w.a && w.b && rank > 0 ? rank : 0;
  w.b_stride = ad->rank;
  w.begin = tile.begin;
  const int32_t rows = tile.end - tile.begin;
  w.rows = rows < 0 ? 0 : (rows > kRows ? kRows : rows);
  return w;
}

// ---- down: u[i, k] = A[k, :] . x[i, :] --------------------------------------------------------
// acc[r] += the part of A row k . x row r over the chunks first, first + step, ... (8 elements
// each). kVec: 16-byte loads (in % 8 == 0, x and A 16-byte aligned).
template <bool kVec>
__device__ __forceinline__ void down_dot(const bf16* __restrict__ x_rows,
                                         const bf16* __restrict__ a_row, int64_t in, int rows,
                                         int64_t first, int64_t step, float (&acc)[kRows]) {
  const int64_t chunks = (in + 7) / 8;
  for (int64_t c = first; c < chunks; c += step) {
    float a[8];
    load8<kVec>(a_row, c * 8, in, a);
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      if (r >= rows) break;
      float xv[8];
      load8<kVec>(x_rows + r * in, c * 8, in, xv);
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[r] = fmaf(xv[e], a[e], acc[r]);
    }
  }
}

// Grid (tiles, ceil(max_rank * parts / kWarps)). Warp w of block (t, j) computes adapter row
// k = j * (kWarps / parts) + w / parts over the chunks c = part * 32 + lane (mod parts * 32), part
// = w % parts, for all rows of tile t at once: A row k is read once (16 bytes per lane, coalesced)
// for up to 8 rows of x, which the block's warps share through L1. Blocks whose rows k all lie
// past the adapter's rank return at once (adapters of lower rank than max_rank, absent ones).
__global__ void __launch_bounds__(kThreads)
    lora_down_kernel(const bf16* __restrict__ x, int64_t in, const LoraAdapter* adapters,
                     int64_t adapter_stride, const LoraRowTile* tiles, int64_t max_rank,
                     float* __restrict__ u, int parts) {
  __shared__ float partial[kWarps][kRows];
  const TileWork w = tile_work(adapters, adapter_stride, tiles, max_rank);
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  const int k_per_block = kWarps / parts;
  const int64_t k_first = static_cast<int64_t>(blockIdx.y) * k_per_block;
  if (k_first >= w.rank) return;  // the whole block: uniform
  const int64_t k = k_first + warp / parts;
  const int part = warp % parts;
  float acc[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) acc[r] = 0.f;
  if (k < w.rank) {
    const bf16* x_rows = x + w.begin * in;
    const bf16* a_row = w.a + k * in;
    const int64_t first = static_cast<int64_t>(part) * kWarp + lane;
    const int64_t step = static_cast<int64_t>(parts) * kWarp;
    if (in % 8 == 0 && aligned16(x) && aligned16(w.a))
      down_dot<true>(x_rows, a_row, in, w.rows, first, step, acc);
    else
      down_dot<false>(x_rows, a_row, in, w.rows, first, step, acc);
  }
#pragma unroll
  for (int r = 0; r < kRows; ++r) acc[r] = detail::warp_sum(acc[r]);  // every lane: every sum
  if (parts == 1) {  // uniform: the kernel argument
    // Lane r writes row r (a constant index per unrolled step keeps acc in registers).
#pragma unroll
    for (int r = 0; r < kRows; ++r)
      if (lane == r && r < w.rows && k < w.rank) u[(w.begin + r) * max_rank + k] = acc[r];
    return;
  }
#pragma unroll
  for (int r = 0; r < kRows; ++r)
    if (lane == r) partial[warp][r] = acc[r];  // zeros for rows past the tile and k past rank
  __syncthreads();
  // Thread (kk, r) adds row r's parts of adapter row k_first + kk in the order of the parts.
  const int kk = threadIdx.x / kRows, r = threadIdx.x % kRows;
  if (kk < k_per_block && r < w.rows && k_first + kk < w.rank) {
    float sum = 0.f;
    for (int p = 0; p < parts; ++p) sum += partial[kk * parts + p][r];
    u[(w.begin + r) * max_rank + k_first + kk] = sum;
  }
}

// ---- up: y[i, o] += s * B[o, :] . u[i, :] -----------------------------------------------------
// acc[r] += the part of B row o . u row r (staged, ranks k0 .. k0 + 8 * chunks) over the chunks
// part, part + parts, ... kVec: 16-byte loads of B (rank % 8 == 0, B 16-byte aligned).
template <bool kVec>
__device__ __forceinline__ void up_dot(const bf16* __restrict__ b_row, int64_t k0, int64_t rank,
                                       int chunks, int part, int parts, int rows,
                                       const float (*stage)[kRankStage], float (&acc)[kRows]) {
  for (int c = part; c < chunks; c += parts) {
    float bv[8];
    load8<kVec>(b_row, k0 + c * 8, rank, bv);
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      if (r >= rows) break;
      // Every thread of a part reads the same 32 bytes: shared-memory broadcasts.
      const float4* s = reinterpret_cast<const float4*>(&stage[r][c * 8]);
      const float4 lo = s[0], hi = s[1];
      float sum = acc[r];
      sum = fmaf(lo.x, bv[0], sum);
      sum = fmaf(lo.y, bv[1], sum);
      sum = fmaf(lo.z, bv[2], sum);
      sum = fmaf(lo.w, bv[3], sum);
      sum = fmaf(hi.x, bv[4], sum);
      sum = fmaf(hi.y, bv[5], sum);
      sum = fmaf(hi.z, bv[6], sum);
      acc[r] = fmaf(hi.w, bv[7], sum);
    }
  }
}

// Grid (tiles, ceil(out * parts / kThreads)). `parts` adjacent lanes share output o (parts
// divides 32, so they sit in one warp), each walking every parts-th 8-element chunk of B row o
// (the group reads neighbouring 16-byte chunks of one row), against the tile's u rows staged in
// shared memory (one fp32 read from L2 per block instead of one per thread), then sum over the
// group with xor shuffles. Lane `part` writes the rows r with r % parts == part.
__global__ void __launch_bounds__(kThreads)
    lora_up_kernel(bf16* __restrict__ y, int64_t out, const LoraAdapter* adapters,
                   int64_t adapter_stride, const LoraRowTile* tiles, int64_t max_rank,
                   const float* __restrict__ u, int parts) {
  __shared__ __align__(16) float stage[kRows][kRankStage];
  const TileWork w = tile_work(adapters, adapter_stride, tiles, max_rank);
  if (w.rank == 0) return;  // the whole block: uniform
  const int part = threadIdx.x % parts;
  const int64_t o = static_cast<int64_t>(blockIdx.y) * (kThreads / parts) + threadIdx.x / parts;
  const bool vec = w.b_stride % 8 == 0 && aligned16(w.b);
  const bf16* b_row = w.b + (o < out ? o : 0) * w.b_stride;
  float acc[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) acc[r] = 0.f;
  for (int64_t k0 = 0; k0 < w.rank; k0 += kRankStage) {
    const int len = static_cast<int>(w.rank - k0 < kRankStage ? w.rank - k0 : kRankStage);
    const int chunks = (len + 7) / 8;
    __syncthreads();  // the previous stage's readers are done
    // Zeros past the rank up to the chunk's end: B's scalar path reads zeros there too.
    for (int idx = threadIdx.x; idx < w.rows * chunks * 8; idx += kThreads) {
      const int r = idx / (chunks * 8), kk = idx % (chunks * 8);
      stage[r][kk] = kk < len ? u[(w.begin + r) * max_rank + k0 + kk] : 0.f;
    }
    __syncthreads();
    if (o < out) {
      if (vec)
        up_dot<true>(b_row, k0, w.rank, chunks, part, parts, w.rows, stage, acc);
      else
        up_dot<false>(b_row, k0, w.rank, chunks, part, parts, w.rows, stage, acc);
    }
  }
  for (int offset = parts / 2; offset > 0; offset /= 2)
#pragma unroll
    for (int r = 0; r < kRows; ++r) acc[r] += __shfl_xor_sync(0xffffffffu, acc[r], offset);
  if (o >= out) return;
#pragma unroll
  for (int r = 0; r < kRows; ++r)
    if (r < w.rows && r % parts == part) {
      bf16* yp = y + (w.begin + r) * out + o;
      *yp = __float2bfloat16_rn(__bfloat162float(*yp) + w.scale * acc[r]);
    }
}

// The smallest split (1, 2, 4, 8) that gives about kTargetBlocks blocks for `units` (adapter rows
// or outputs) at `units_per_block`, doubling only while each part keeps at least two of the
// `chunks` steps that one unsplit thread takes.
int choose_parts(int64_t n_tiles, int64_t units, int64_t units_per_block, int64_t chunks) {
  int parts = 1;
  while (parts < kMaxParts &&
         n_tiles * ((units * parts + units_per_block - 1) / units_per_block) < kTargetBlocks &&
         chunks >= 2 * 2 * parts)
    parts *= 2;
  return parts;
}

}  // namespace

void lora_rows_forward(const bf16* x, int64_t in, bf16* y, int64_t out, const LoraAdapter* adapters,
                       int64_t adapter_stride, const LoraRowTile* tiles, int64_t n_tiles,
                       int64_t max_rank, float* u, cudaStream_t stream) {
  RRT_CHECK(in >= 1 && out >= 1 && n_tiles >= 0 && max_rank >= 0 && adapter_stride >= 0,
            "lora_rows", "bad shape in=", in, " out=", out, " n_tiles=", n_tiles,
            " max_rank=", max_rank, " adapter_stride=", adapter_stride);
  RRT_CHECK(n_tiles <= INT32_MAX, "lora_rows", n_tiles, " tiles exceed the grid");
  if (n_tiles == 0 || max_rank == 0) return;
  // The down kernel's warps split a row of A (in / 8 chunks, 32 lanes each); the up kernel's
  // lanes split a row of B (max_rank / 8 chunks).
  const int down_parts = choose_parts(n_tiles, max_rank, kWarps, (in + 7) / 8 / kWarp);
  const int up_parts = choose_parts(n_tiles, out, kThreads, (max_rank + 7) / 8);
  const int64_t down_blocks = (max_rank * down_parts + kWarps - 1) / kWarps;
  const int64_t up_blocks = (out * up_parts + kThreads - 1) / kThreads;
  RRT_CHECK(down_blocks <= 65535 && up_blocks <= 65535, "lora_rows", "max_rank=", max_rank,
            " or out=", out, " exceeds the grid");
  const dim3 down_grid(static_cast<unsigned>(n_tiles), static_cast<unsigned>(down_blocks));
  const dim3 up_grid(static_cast<unsigned>(n_tiles), static_cast<unsigned>(up_blocks));
  lora_down_kernel<<<down_grid, kThreads, 0, stream>>>(x, in, adapters, adapter_stride, tiles,
                                                       max_rank, u, down_parts);
  RRT_CUDA_CHECK_LAUNCH();
  lora_up_kernel<<<up_grid, kThreads, 0, stream>>>(y, out, adapters, adapter_stride, tiles,
                                                   max_rank, u, up_parts);
  RRT_CUDA_CHECK_LAUNCH();
}

}  // namespace rrt::ops::cuda
