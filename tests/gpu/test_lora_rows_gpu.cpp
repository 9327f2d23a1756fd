// The batched per-row LoRA (ops/cuda/lora_rows.h) against a reference in double written here.
// Inputs are random and rounded to bf16 first, so the reference sees exactly what the kernels
// read. y starts from random values (the op accumulates); u starts poisoned (NaN), so a read of
// a u element the down kernel never wrote shows. Every adapter has its own allocations, so a read
// past the end of its A or B faults under tests/gpu/simulate.sh (guard pages). The adapter table
// has decoy adapters between the groups' entries (stride 3), so a wrong entry gives wrong values.
// Tolerances, relative L2 (||gpu - ref|| / ||ref||):
//   y (bf16 storage of the sum)                kBf16Tol = 1e-2  (bf16 storage alone: ~2e-3)
//   u (fp32, never rounded to bf16)            kF32Tol  = 1e-4  (fp32 sums of up to 8192 terms;
//                                                                 bf16 rounding would be ~2e-3)
//   rows in no tile, rows of absent adapters   bit for bit (y), untouched poison (u)
// The shape checks run without a GPU: they throw before any CUDA call.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "ops/cuda/lora_rows.h"
#include "tests/gpu/gpu_test.h"

namespace rrt::testing {
namespace {

using ops::cuda::append_lora_row_tiles;
using ops::cuda::bf16;
using ops::cuda::kLoraRowTileMax;
using ops::cuda::LoraAdapter;
using ops::cuda::LoraRowTile;

constexpr double kBf16Tol = 1e-2;
constexpr double kF32Tol = 1e-4;

std::vector<uint16_t> bf16_bits(const std::vector<bf16>& v) {
  std::vector<uint16_t> b(v.size());
  std::memcpy(b.data(), v.data(), 2 * v.size());
  return b;
}

// One adapter: host values and its device copy (its own allocations). `offset` elements in front
// of A and B misalign them (the kernels' scalar path for this adapter only); `absent` passes null
// pointers with the given rank; rank 0 passes real pointers with rank 0.
struct HostAdapter {
  int64_t rank = 0;
  float scale = 0.f;
  bool absent = false;
  std::vector<float> a, b;  // [rank, in], [out, rank]
  std::unique_ptr<DeviceBuffer<bf16>> d_a, d_b;
  int64_t offset = 0;

  HostAdapter(int64_t rank_, int64_t in, int64_t out, uint32_t seed, bool absent_ = false,
              int64_t offset_ = 0)
      : rank(rank_), absent(absent_), offset(offset_) {
    a = random_bf16(static_cast<size_t>(rank * in), seed);
    b = random_bf16(static_cast<size_t>(out * rank), seed + 1000);
    // y's LoRA term of standard deviation ~3 for x, A, B uniform in (-1, 1): it dominates y0.
    scale = rank > 0 ? static_cast<float>(3.0 / std::sqrt(rank * in / 27.0)) : 0.5f;
    const size_t off = static_cast<size_t>(offset);
    d_a = std::make_unique<DeviceBuffer<bf16>>(a.size() + off);
    d_b = std::make_unique<DeviceBuffer<bf16>>(b.size() + off);
    std::vector<float> pa(off, 0.f), pb(off, 0.f);
    pa.insert(pa.end(), a.begin(), a.end());
    pb.insert(pb.end(), b.begin(), b.end());
    upload(*d_a, to_bf16(pa));
    upload(*d_b, to_bf16(pb));
  }
  LoraAdapter device() const {
    if (absent) return {nullptr, nullptr, static_cast<int32_t>(rank), scale};
    return {d_a->get() + offset, d_b->get() + offset, static_cast<int32_t>(rank), scale};
  }
  bool applies() const { return !absent && rank > 0; }
};

struct Case {
  std::string name;
  int64_t in, out, rows;
  int64_t xy_offset;           // elements in front of x and y: 1 misaligns them (scalar loads of x)
  std::vector<int64_t> ranks;  // adapter g at table entry g * stride; -1: absent (null, rank 16)
  std::vector<int64_t> misaligned;  // groups whose A and B sit one element off 16-byte alignment
  std::vector<LoraRowTile> tiles;   // in launch order (not sorted by begin)
};

void run_case(const Case& c) {
  SCOPED_TRACE(c.name);
  const int64_t stride = 3;  // like the engine's [position][projection] table: entries in between
  const int64_t groups = static_cast<int64_t>(c.ranks.size());
  for (const LoraRowTile& t : c.tiles) ASSERT_LT(t.group, groups) << "a case names no such group";
  std::vector<std::unique_ptr<HostAdapter>> table;
  int64_t max_rank = 0;
  for (int64_t e = 0; e < groups * stride; ++e) {
    const uint32_t seed = static_cast<uint32_t>(100 + 10 * e);
    if (e % stride != 0) {  // a decoy between the groups' entries: picking it gives other values
      table.push_back(std::make_unique<HostAdapter>(8, c.in, c.out, seed));
      continue;
    }
    const int64_t g = e / stride, r = c.ranks[static_cast<size_t>(g)];
    bool off = false;
    for (int64_t m : c.misaligned) off |= m == g;
    table.push_back(
        std::make_unique<HostAdapter>(r < 0 ? 16 : r, c.in, c.out, seed, r < 0, off ? 1 : 0));
    max_rank = std::max(max_rank, table.back()->rank);
  }
  std::vector<LoraAdapter> d_table_host;
  for (const auto& ad : table) d_table_host.push_back(ad->device());

  const size_t off = static_cast<size_t>(c.xy_offset);
  const auto x = random_bf16(static_cast<size_t>(c.rows * c.in) + off, 1);
  const auto y0 = random_bf16(static_cast<size_t>(c.rows * c.out) + off, 2);
  const size_t u_count = static_cast<size_t>(c.rows * max_rank);

  // The reference in double: y = y0 + s B (A x) for the rows of each tile.
  std::vector<double> y_ref(y0.begin(), y0.end());
  std::vector<double> u_ref(u_count, 0.0);
  std::vector<bool> applied(static_cast<size_t>(c.rows), false);
  for (const LoraRowTile& t : c.tiles) {
    const HostAdapter& ad = *table[static_cast<size_t>(t.group * stride)];
    if (!ad.applies()) continue;
    for (int64_t i = t.begin; i < t.end; ++i) {
      applied[static_cast<size_t>(i)] = true;
      for (int64_t k = 0; k < ad.rank; ++k) {
        double dot = 0;
        for (int64_t col = 0; col < c.in; ++col)
          dot += double(x[off + i * c.in + col]) * ad.a[k * c.in + col];
        u_ref[i * max_rank + k] = dot;
      }
      for (int64_t o = 0; o < c.out; ++o) {
        double dot = 0;
        for (int64_t k = 0; k < ad.rank; ++k)
          dot += u_ref[i * max_rank + k] * ad.b[o * ad.rank + k];
        y_ref[off + i * c.out + o] += double(ad.scale) * dot;
      }
    }
  }

  DeviceBuffer<bf16> d_x(x.size()), d_y(y0.size());
  DeviceBuffer<float> d_u(u_count);
  DeviceBuffer<LoraAdapter> d_adapters(d_table_host.size());
  DeviceBuffer<LoraRowTile> d_tiles(c.tiles.size());
  upload(d_x, to_bf16(x));
  upload(d_y, to_bf16(y0));
  poison(d_u);
  upload(d_adapters, d_table_host);
  upload(d_tiles, c.tiles);
  ops::cuda::lora_rows_forward(d_x.get() + off, c.in, d_y.get() + off, c.out, d_adapters.get(),
                               stride, d_tiles.get(), static_cast<int64_t>(c.tiles.size()),
                               max_rank, d_u.get(), nullptr);
  const auto y_bits = bf16_bits(download(d_y));
  const auto y = download_f32(d_y);
  const auto u = download(d_u);
  const auto y0_bits = bf16_bits(to_bf16(y0));

  // Rows the LoRA applies to: relative L2 of y and u; all other rows: unchanged bits.
  std::vector<float> y_got, y_want, u_got, u_want;
  for (int64_t i = 0; i < c.rows; ++i) {
    const size_t y_row = off + static_cast<size_t>(i * c.out);
    const size_t u_row = static_cast<size_t>(i * max_rank);
    if (!applied[static_cast<size_t>(i)]) {
      for (int64_t o = 0; o < c.out; ++o)
        ASSERT_EQ(y_bits[y_row + o], y0_bits[y_row + o]) << "untouched row " << i << ", out " << o;
      for (int64_t k = 0; k < max_rank; ++k)
        ASSERT_TRUE(std::isnan(u[u_row + k])) << "u of untouched row " << i << " written at " << k;
      continue;
    }
    for (int64_t o = 0; o < c.out; ++o) {
      y_got.push_back(y[y_row + o]);
      y_want.push_back(static_cast<float>(y_ref[y_row + o]));
    }
    for (const LoraRowTile& t : c.tiles)
      if (i >= t.begin && i < t.end)
        for (int64_t k = 0; k < table[static_cast<size_t>(t.group * stride)]->rank; ++k) {
          u_got.push_back(u[u_row + k]);
          u_want.push_back(static_cast<float>(u_ref[u_row + k]));
        }
  }
  // The padding in front of a misaligned y is not touched either.
  for (size_t e = 0; e < off; ++e) ASSERT_EQ(y_bits[e], y0_bits[e]) << "y padding";
  ASSERT_FALSE(y_got.empty());
  const double y_err = relative_l2(y_got, y_want), u_err = relative_l2(u_got, u_want);
  std::printf("[lora_rows] %s: in=%ld out=%ld max_rank=%ld tiles=%zu: y relative L2 %.2e, u %.2e\n",
              c.name.c_str(), long(c.in), long(c.out), long(max_rank), c.tiles.size(), y_err,
              u_err);
  EXPECT_LE(y_err, kBf16Tol);
  EXPECT_LE(u_err, kF32Tol);
}

// Tiles of every size 1..8 over 40 rows, groups mixed and out of order; rows 10, 11, 38, 39 in
// no tile; groups 2 (absent: null pointers) and 5 (rank 0, real pointers) change nothing.
std::vector<LoraRowTile> mixed_tiles() {
  std::vector<LoraRowTile> tiles = {{12, 13, 1}, {0, 8, 0},   {30, 33, 2}, {8, 10, 3},
                                    {33, 38, 5}, {13, 17, 4}, {23, 30, 0}, {17, 23, 1}};
  append_lora_row_tiles(20, 20, 3, tiles);  // an empty range adds nothing
  return tiles;
}

// Group ranks: 512, 3 (scalar B loads), absent, 16, 600 (two u stages of 512), rank 0.
const std::vector<int64_t> kMixedRanks = {512, 3, -1, 16, 600, 0};

TEST(GpuLoraRows, MixedAdaptersMatchDoubleReference) {
  RRT_REQUIRE_GPU();
  // in, out multiples of 8 (16-byte loads); group 3's A and B misaligned (scalar for it only).
  run_case({"aligned", 64, 80, 40, 0, kMixedRanks, {3}, mixed_tiles()});
}

TEST(GpuLoraRows, ScalarPathsMatchDoubleReference) {
  RRT_REQUIRE_GPU();
  // in, out not multiples of 8: scalar loads of x and A everywhere.
  run_case({"in, out % 8 != 0", 37, 29, 40, 0, kMixedRanks, {}, mixed_tiles()});
  // x and y one element off alignment: scalar x and A although in % 8 == 0.
  run_case({"x, y misaligned", 64, 80, 40, 1, kMixedRanks, {}, mixed_tiles()});
}

TEST(GpuLoraRows, FewTilesSplitEachDotProduct) {
  RRT_REQUIRE_GPU();
  // Decode-like: 3 tiles and a long input row, so the down kernel splits each row of A over
  // warps (4 or 8 parts) and the up kernel over lanes; a rank of 3 and an absent adapter.
  std::vector<LoraRowTile> tiles;
  append_lora_row_tiles(3, 11, 0, tiles);  // 8 rows
  append_lora_row_tiles(11, 12, 1, tiles);
  append_lora_row_tiles(12, 14, 2, tiles);
  run_case({"long rows", 8192, 72, 16, 0, {128, 3, -1}, {}, tiles});
  run_case({"long rows, in % 8 != 0", 4100, 24, 16, 0, {16, 3, -1}, {}, tiles});
}

TEST(GpuLoraRows, AppendTilesCoversTheRangeInPiecesOfAtMostEight) {  // host only
  std::vector<LoraRowTile> tiles = {{0, 1, 9}};
  append_lora_row_tiles(5, 22, 4, tiles);
  append_lora_row_tiles(30, 38, 1, tiles);
  append_lora_row_tiles(40, 40, 2, tiles);
  ASSERT_EQ(tiles.size(), 5u);
  const int32_t want[][3] = {{0, 1, 9}, {5, 13, 4}, {13, 21, 4}, {21, 22, 4}, {30, 38, 1}};
  for (size_t t = 0; t < tiles.size(); ++t) {
    EXPECT_EQ(tiles[t].begin, want[t][0]) << "tile " << t;
    EXPECT_EQ(tiles[t].end, want[t][1]) << "tile " << t;
    EXPECT_EQ(tiles[t].group, want[t][2]) << "tile " << t;
    EXPECT_LE(tiles[t].end - tiles[t].begin, kLoraRowTileMax);
  }
}

TEST(GpuLoraRows, RejectsBadShapes) {  // host checks: no GPU needed
  const bf16* nx = nullptr;
  bf16* ny = nullptr;
  const LoraAdapter* na = nullptr;
  const LoraRowTile* nt = nullptr;
  float* nu = nullptr;
  using ops::cuda::lora_rows_forward;
  EXPECT_THROW(lora_rows_forward(nx, 0, ny, 8, na, 1, nt, 1, 8, nu, nullptr), Error);
  EXPECT_THROW(lora_rows_forward(nx, 8, ny, 0, na, 1, nt, 1, 8, nu, nullptr), Error);
  EXPECT_THROW(lora_rows_forward(nx, 8, ny, 8, na, 1, nt, -1, 8, nu, nullptr), Error);
  EXPECT_THROW(lora_rows_forward(nx, 8, ny, 8, na, 1, nt, 1, -1, nu, nullptr), Error);
  EXPECT_THROW(lora_rows_forward(nx, 8, ny, 8, na, -1, nt, 1, 8, nu, nullptr), Error);
  // No tiles or no rank launches nothing, so null pointers are fine.
  EXPECT_NO_THROW(lora_rows_forward(nx, 8, ny, 8, na, 1, nt, 0, 8, nu, nullptr));
  EXPECT_NO_THROW(lora_rows_forward(nx, 8, ny, 8, na, 1, nt, 3, 0, nu, nullptr));
}

}  // namespace
}  // namespace rrt::testing
