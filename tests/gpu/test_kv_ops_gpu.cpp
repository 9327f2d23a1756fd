// The inference engine's kernels (ops/cuda/kv_ops.h) against plain references in double written
// here. Inputs are random and rounded to bf16 first, so the reference sees exactly what the
// kernel reads; bf16 outputs are poisoned (NaN) first where the kernel writes all of them, so an
// element it forgets fails. Tolerances, relative L2 (||gpu - ref|| / ||ref||):
//   bf16 outputs (rope, attention)          kBf16Tol = 1e-2   (bf16 storage alone: ~2e-3)
//   fp32 max probability                    kF32Tol  = 1e-5   (fp32 sum of V terms)
//   copies (kv_store, gather, scatter)      bit for bit
// The shape checks run without a GPU: they throw before any CUDA call.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "ops/cuda/kv_ops.h"
#include "ops/rope.h"
#include "tests/gpu/gpu_test.h"

namespace rrt::testing {
namespace {

using ops::cuda::bf16;

constexpr double kBf16Tol = 1e-2;
constexpr double kF32Tol = 1e-5;

void put(DeviceBuffer<bf16>& d, const std::vector<float>& h) { upload(d, to_bf16(h)); }
std::vector<float> tail(const std::vector<float>& v, size_t from) {
  return std::vector<float>(v.begin() + static_cast<std::ptrdiff_t>(from), v.end());
}
// The bits of bf16 values, for exact comparisons of copies.
std::vector<uint16_t> bits(const std::vector<float>& v) {
  std::vector<uint16_t> b(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    const bf16 h = __float2bfloat16(v[i]);
    std::memcpy(&b[i], &h, 2);
  }
  return b;
}

// ---- rope_rows_forward ------------------------------------------------------------------------

TEST(GpuKvOps, RopeRowsMatchesDoubleReference) {
  RRT_REQUIRE_GPU();
  struct Shape {
    int64_t H, Dh, rot_dim;
  };
  // Full rotation, partial (NeoX-style 25%), a head dim of no special size with partial rotation.
  const Shape shapes[] = {{4, 64, 64}, {2, 64, 16}, {3, 80, 20}};
  const int64_t max_positions = 50;
  const std::vector<int32_t> pos = {0, 49, 7, 7, 23};  // first and last position, a repeat
  const int64_t n = static_cast<int64_t>(pos.size());
  for (const Shape& s : shapes) {
    SCOPED_TRACE("H=" + std::to_string(s.H) + " Dh=" + std::to_string(s.Dh) +
                 " rot=" + std::to_string(s.rot_dim));
    const ops::RopeTable table(max_positions, s.rot_dim, 10000.0);
    const ops::cuda::DeviceRopeTable d_table(table);
    const size_t count = static_cast<size_t>(n * s.H * s.Dh);
    const auto x = random_bf16(count, 1);

    std::vector<float> ref = x;
    const int64_t half = s.rot_dim / 2;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t h = 0; h < s.H; ++h)
        for (int64_t t = 0; t < half; ++t) {
          const size_t at = static_cast<size_t>((i * s.H + h) * s.Dh + t);
          const double c = table.cos[pos[i] * half + t], sn = table.sin[pos[i] * half + t];
          const double a = x[at], b = x[at + half];
          ref[at] = static_cast<float>(a * c - b * sn);
          ref[at + half] = static_cast<float>(b * c + a * sn);
        }

    DeviceBuffer<bf16> d_x(count);
    DeviceBuffer<int32_t> d_pos(pos.size());
    put(d_x, x);
    upload(d_pos, pos);
    ops::cuda::rope_rows_forward(d_x.get(), d_table, d_pos.get(), n, s.H, s.Dh, nullptr);
    const auto got = download_f32(d_x);
    const double err = relative_l2(got, ref);
    std::printf("[rope_rows] H=%ld Dh=%ld rot=%ld: relative L2 %.2e\n", long(s.H), long(s.Dh),
                long(s.rot_dim), err);
    EXPECT_LE(err, kBf16Tol);
    // Dims past rot_dim are not touched at all.
    for (size_t e = 0; e < count; ++e)
      if (static_cast<int64_t>(e) % s.Dh >= s.rot_dim) ASSERT_EQ(got[e], x[e]) << "element " << e;
  }
}

// ---- kv_store ---------------------------------------------------------------------------------

TEST(GpuKvOps, KvStoreWritesTheNamedCellsOnly) {
  RRT_REQUIRE_GPU();
  const int64_t slots = 3, max_seq = 9;
  const std::vector<int32_t> slot = {0, 2, 2, 1}, pos = {0, 8, 3, 5};
  const int64_t n = static_cast<int64_t>(slot.size());
  struct Case {
    int64_t kv_dim, caches, gap;  // gap: elements between two caches of one allocation
  };
  // 16-byte path; 12 % 8 != 0: scalar path; two caches (rows of two loops in one launch), with a
  // stride that keeps 16-byte alignment and one that does not (scalar path although kv_dim % 8 ==
  // 0).
  const Case cases[] = {{40, 1, 0}, {12, 1, 0}, {40, 2, 8}, {12, 2, 3}, {40, 2, 3}};
  const std::vector<int32_t> cache = {1, 0, 1, 1};
  for (const Case& c : cases) {
    SCOPED_TRACE("kv_dim=" + std::to_string(c.kv_dim) + " caches=" + std::to_string(c.caches) +
                 " gap=" + std::to_string(c.gap));
    const int64_t one_cache = slots * max_seq * c.kv_dim, stride = one_cache + c.gap;
    const size_t cache_count = static_cast<size_t>((c.caches - 1) * stride + one_cache);
    const auto k = random_bf16(static_cast<size_t>(n * c.kv_dim), 2);
    const auto v = random_bf16(static_cast<size_t>(n * c.kv_dim), 3);
    const auto k_cache0 = random_bf16(cache_count, 4), v_cache0 = random_bf16(cache_count, 5);
    auto k_ref = k_cache0, v_ref = v_cache0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t e = 0; e < c.kv_dim; ++e) {
        const int64_t base = c.caches > 1 ? cache[i] * stride : 0;
        const size_t cell = static_cast<size_t>(base + (slot[i] * max_seq + pos[i]) * c.kv_dim + e);
        k_ref[cell] = k[static_cast<size_t>(i * c.kv_dim + e)];
        v_ref[cell] = v[static_cast<size_t>(i * c.kv_dim + e)];
      }
    DeviceBuffer<bf16> d_k(k.size()), d_v(v.size()), d_kc(cache_count), d_vc(cache_count);
    DeviceBuffer<int32_t> d_slot(slot.size()), d_pos(pos.size()), d_cache(cache.size());
    put(d_k, k);
    put(d_v, v);
    put(d_kc, k_cache0);
    put(d_vc, v_cache0);
    upload(d_slot, slot);
    upload(d_pos, pos);
    upload(d_cache, cache);
    ops::cuda::kv_store(d_k.get(), d_v.get(), d_kc.get(), d_vc.get(), d_slot.get(), d_pos.get(), n,
                        max_seq, c.kv_dim, nullptr, c.caches > 1 ? d_cache.get() : nullptr,
                        c.caches > 1 ? stride : 0);
    EXPECT_EQ(bits(download_f32(d_kc)), bits(k_ref)) << "keys";
    EXPECT_EQ(bits(download_f32(d_vc)), bits(v_ref)) << "values";
  }
}

// ---- kv_attention -----------------------------------------------------------------------------

struct AttentionCase {
  int64_t H, Hkv, Dh;
  int64_t offset;  // elements added to every pointer: 1 misaligns them (scalar path)
};

// out[i, h] = softmax(q . K^T / sqrt(Dh)) V over keys 0..pos[i] of slot[i], in double.
std::vector<float> attention_reference(const std::vector<float>& q, const std::vector<float>& kc,
                                       const std::vector<float>& vc,
                                       const std::vector<int32_t>& slot,
                                       const std::vector<int32_t>& pos, int64_t H, int64_t Hkv,
                                       int64_t Dh, int64_t max_seq, int64_t window = 0,
                                       double softcap = 0) {
  const int64_t n = static_cast<int64_t>(slot.size()), kv_dim = Hkv * Dh;
  std::vector<float> out(static_cast<size_t>(n * H * Dh));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t h = 0; h < H; ++h) {
      // Keys first..pos[i]: a window's last ones, else all (soft-capped scores with a cap).
      const int64_t first = window > 0 ? std::max<int64_t>(0, pos[i] + 1 - window) : 0;
      const int64_t kvh = h / (H / Hkv), len = pos[i] + 1 - first;
      const float* qh = q.data() + (i * H + h) * Dh;
      std::vector<double> score(static_cast<size_t>(len));
      for (int64_t t = 0; t < len; ++t) {
        const float* key = kc.data() + (slot[i] * max_seq + first + t) * kv_dim + kvh * Dh;
        double dot = 0;
        for (int64_t d = 0; d < Dh; ++d) dot += double(qh[d]) * key[d];
        score[t] = dot / std::sqrt(double(Dh));
        if (softcap > 0) score[t] = softcap * std::tanh(score[t] / softcap);
      }
      const double mx = *std::max_element(score.begin(), score.end());
      double sum = 0;
      for (double& s : score) sum += (s = std::exp(s - mx));
      for (int64_t d = 0; d < Dh; ++d) {
        double o = 0;
        for (int64_t t = 0; t < len; ++t)
          o += score[t] * vc[(slot[i] * max_seq + first + t) * kv_dim + kvh * Dh + d];
        out[static_cast<size_t>((i * H + h) * Dh + d)] = static_cast<float>(o / sum);
      }
    }
  return out;
}

// kv_attention on the device over q and the caches (every pointer `off` elements in), rows
// optionally sent to caches of one allocation (`cache`, `stride`); returns the output from `off`.
std::vector<float> device_kv_attention(const std::vector<float>& q, const std::vector<float>& kc,
                                       const std::vector<float>& vc,
                                       const std::vector<int32_t>& slot,
                                       const std::vector<int32_t>& pos, int64_t H, int64_t Hkv,
                                       int64_t Dh, int64_t max_seq, size_t off = 0,
                                       const std::vector<int32_t>& cache = {}, int64_t stride = 0,
                                       int64_t window = 0, double softcap = 0) {
  const int64_t n = static_cast<int64_t>(slot.size());
  DeviceBuffer<bf16> d_q(q.size()), d_kc(kc.size()), d_vc(vc.size()), d_out(q.size());
  DeviceBuffer<int32_t> d_slot(slot.size()), d_pos(pos.size()), d_cache(cache.size());
  put(d_q, q);
  put(d_kc, kc);
  put(d_vc, vc);
  poison(d_out);
  upload(d_slot, slot);
  upload(d_pos, pos);
  if (!cache.empty()) upload(d_cache, cache);
  ops::cuda::kv_attention(d_q.get() + off, d_kc.get() + off, d_vc.get() + off, d_slot.get(),
                          d_pos.get(), d_out.get() + off, n, H, Hkv, Dh, max_seq, nullptr,
                          cache.empty() ? nullptr : d_cache.get(), stride, window, softcap);
  return tail(download_f32(d_out), off);
}

// Sliding windows (Gemma 2/3 decode) and soft-capped scores: a row reads only its last `window`
// keys, windows shorter and longer than a block's key round, one key, and a window beyond pos.
TEST(GpuKvOps, KvAttentionWindowAndSoftcapMatchDoubleReference) {
  RRT_REQUIRE_GPU();
  const int64_t H = 4, Hkv = 2, slots = 3, max_seq = 300;
  const std::vector<int32_t> slot = {0, 1, 2, 0, 1, 2}, pos = {0, 299, 17, 128, 1, 200};
  const int64_t n = static_cast<int64_t>(slot.size());
  struct Mask {
    int64_t window;
    double softcap;
  };
  for (int64_t Dh : {int64_t{64}, int64_t{100}})
    for (const Mask m :
         {Mask{1, 0}, Mask{5, 0}, Mask{130, 0}, Mask{1000, 0}, Mask{0, 0.7}, Mask{40, 1.5}}) {
      SCOPED_TRACE("Dh=" + std::to_string(Dh) + " window=" + std::to_string(m.window) +
                   " softcap=" + std::to_string(m.softcap));
      const size_t q_count = static_cast<size_t>(n * H * Dh);
      const size_t cache_count = static_cast<size_t>(slots * max_seq * Hkv * Dh);
      const auto q = random_bf16(q_count, 12, 4.f), kc = random_bf16(cache_count, 13);
      const auto vc = random_bf16(cache_count, 14);
      const auto ref =
          attention_reference(q, kc, vc, slot, pos, H, Hkv, Dh, max_seq, m.window, m.softcap);
      const auto got = device_kv_attention(q, kc, vc, slot, pos, H, Hkv, Dh, max_seq, 0, {}, 0,
                                           m.window, m.softcap);
      EXPECT_LE(relative_l2(got, ref), kBf16Tol);
    }
}

TEST(GpuKvOps, KvAttentionMatchesDoubleReference) {
  RRT_REQUIRE_GPU();
  // GQA H=4 over Hkv=2 at the engine's head dims; Dh = 8 (one lane per key), 100 (not a
  // multiple of 8: scalar path), 512 (16 dims per lane), MHA, and misaligned pointers.
  const AttentionCase cases[] = {{4, 2, 64, 0},  {4, 2, 80, 0},  {4, 2, 128, 0}, {4, 2, 256, 0},
                                 {4, 2, 8, 0},   {4, 2, 100, 0}, {2, 1, 512, 0}, {3, 3, 64, 0},
                                 {4, 2, 128, 1}, {4, 2, 512, 1}};
  const int64_t slots = 3, max_seq = 300;
  // pos 0 (one key), max_seq - 1 (the whole cache), and lengths around the 128 / 16 / 4 key
  // groups of a block; two rows share slot 0.
  const std::vector<int32_t> slot = {0, 1, 2, 0, 1, 2}, pos = {0, 299, 17, 128, 1, 200};
  const int64_t n = static_cast<int64_t>(slot.size());
  for (const AttentionCase& c : cases) {
    SCOPED_TRACE("H=" + std::to_string(c.H) + " Hkv=" + std::to_string(c.Hkv) +
                 " Dh=" + std::to_string(c.Dh) + " offset=" + std::to_string(c.offset));
    const size_t off = static_cast<size_t>(c.offset);
    const size_t q_count = static_cast<size_t>(n * c.H * c.Dh);
    const size_t cache_count = static_cast<size_t>(slots * max_seq * c.Hkv * c.Dh);
    // q scaled up so the softmax is far from uniform (scores of standard deviation ~1.3).
    const auto q = random_bf16(q_count + off, 6, 4.f), kc = random_bf16(cache_count + off, 7);
    const auto vc = random_bf16(cache_count + off, 8);
    const auto ref = attention_reference(tail(q, off), tail(kc, off), tail(vc, off), slot, pos, c.H,
                                         c.Hkv, c.Dh, max_seq);
    const auto got = device_kv_attention(q, kc, vc, slot, pos, c.H, c.Hkv, c.Dh, max_seq, off);
    const double err = relative_l2(got, ref);
    std::printf("[kv_attention] H=%ld Hkv=%ld Dh=%ld offset=%ld: relative L2 %.2e\n", long(c.H),
                long(c.Hkv), long(c.Dh), long(c.offset), err);
    EXPECT_LE(err, kBf16Tol);
    // Row 0 attends to one key: its output is that value row, up to bf16 rounding.
    const int64_t kvh0 = 0;
    for (int64_t d = 0; d < c.Dh; ++d)
      EXPECT_NEAR(got[static_cast<size_t>(d)], vc[off + static_cast<size_t>(kvh0 * c.Dh + d)], 1e-2)
          << "row 0 (pos 0), dim " << d;
  }
}

// Rows of two loops in one launch: each row reads its own cache of one allocation (the engine's
// depth-wise step). The reference runs each cache separately; a kernel that ignored `cache`
// would read cache 0 for every row and miss the rows of cache 1.
TEST(GpuKvOps, KvAttentionReadsEachRowsOwnCache) {
  RRT_REQUIRE_GPU();
  const int64_t H = 4, Hkv = 2, slots = 2, max_seq = 40;
  const std::vector<int32_t> slot = {0, 1, 0, 1, 1}, pos = {3, 39, 17, 0, 20};
  const std::vector<int32_t> cache = {1, 0, 0, 1, 1};
  const int64_t n = static_cast<int64_t>(slot.size());
  for (int64_t Dh : {int64_t{64}, int64_t{100}}) {  // 16-byte and scalar paths
    SCOPED_TRACE("Dh=" + std::to_string(Dh));
    const int64_t one_cache = slots * max_seq * Hkv * Dh, stride = one_cache + 16;
    const size_t q_count = static_cast<size_t>(n * H * Dh), total = static_cast<size_t>(2 * stride);
    const auto q = random_bf16(q_count, 9, 4.f), kc = random_bf16(total, 10);
    const auto vc = random_bf16(total, 11);
    std::vector<float> ref(q_count);
    for (int64_t which = 0; which < 2; ++which) {
      const size_t from = static_cast<size_t>(which * stride);
      const std::vector<float> k_one(kc.begin() + from, kc.begin() + from + one_cache);
      const std::vector<float> v_one(vc.begin() + from, vc.begin() + from + one_cache);
      const auto part = attention_reference(q, k_one, v_one, slot, pos, H, Hkv, Dh, max_seq);
      for (int64_t i = 0; i < n; ++i)
        if (cache[i] == which)
          std::copy_n(part.begin() + i * H * Dh, H * Dh, ref.begin() + i * H * Dh);
    }
    const double err = relative_l2(
        device_kv_attention(q, kc, vc, slot, pos, H, Hkv, Dh, max_seq, 0, cache, stride), ref);
    std::printf("[kv_attention, two caches] Dh=%ld: relative L2 %.2e\n", long(Dh), err);
    EXPECT_LE(err, kBf16Tol);
  }
}

TEST(GpuKvOps, KvAttentionRejectsBadShapes) {  // host checks: no GPU needed
  const int32_t* none = nullptr;
  const bf16* nb = nullptr;
  EXPECT_THROW(ops::cuda::kv_attention(nb, nb, nb, none, none, nullptr, 1, 4, 2, 513, 8, nullptr),
               Error);
  EXPECT_THROW(ops::cuda::kv_attention(nb, nb, nb, none, none, nullptr, 1, 3, 2, 64, 8, nullptr),
               Error);
  EXPECT_THROW(ops::cuda::kv_attention(nb, nb, nb, none, none, nullptr, -1, 4, 2, 64, 8, nullptr),
               Error);
  EXPECT_THROW(ops::cuda::kv_store(nb, nb, nullptr, nullptr, none, none, -1, 8, 64, nullptr),
               Error);
  EXPECT_THROW(
      ops::cuda::kv_store(nb, nb, nullptr, nullptr, none, none, 1, 8, 64, nullptr, none, -8),
      Error);
  EXPECT_THROW(ops::cuda::gather_rows(nb, none, nullptr, 2, -1, nullptr), Error);
  EXPECT_THROW(ops::cuda::logits_argmax_max_prob(nullptr, 1, 0, nullptr, nullptr, nullptr), Error);
  // n = 0 launches nothing, so null pointers are fine.
  EXPECT_NO_THROW(
      ops::cuda::kv_attention(nb, nb, nb, none, none, nullptr, 0, 4, 2, 64, 8, nullptr));
  EXPECT_NO_THROW(ops::cuda::kv_store(nb, nb, nullptr, nullptr, none, none, 0, 8, 64, nullptr));
  EXPECT_NO_THROW(ops::cuda::scatter_rows(nb, none, nullptr, 0, 64, nullptr));
  EXPECT_NO_THROW(ops::cuda::logits_argmax_max_prob(nullptr, 0, 100, nullptr, nullptr, nullptr));
}

// ---- gather_rows, scatter_rows ----------------------------------------------------------------

TEST(GpuKvOps, GatherAndScatterRowsCopyExactly) {
  RRT_REQUIRE_GPU();
  const int64_t rows = 10;
  const std::vector<int32_t> gather_index = {9, 0, 4, 4, 7};   // a repeat is fine for gather
  const std::vector<int32_t> scatter_index = {3, 8, 0, 5, 1};  // distinct
  const int64_t n = static_cast<int64_t>(gather_index.size());
  for (int64_t D : {int64_t{64}, int64_t{13}}) {  // 16-byte path; scalar path
    SCOPED_TRACE("D=" + std::to_string(D));
    const auto table = random_bf16(static_cast<size_t>(rows * D), 9);
    const auto packed = random_bf16(static_cast<size_t>(n * D), 10);
    std::vector<float> gathered(static_cast<size_t>(n * D)), scattered = table;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < D; ++c) {
        gathered[i * D + c] = table[gather_index[i] * D + c];
        scattered[scatter_index[i] * D + c] = packed[i * D + c];
      }
    DeviceBuffer<bf16> d_table(table.size()), d_packed(packed.size()), d_gathered(n * D);
    DeviceBuffer<int32_t> d_gi(gather_index.size()), d_si(scatter_index.size());
    put(d_table, table);
    put(d_packed, packed);
    poison(d_gathered);
    upload(d_gi, gather_index);
    upload(d_si, scatter_index);
    ops::cuda::gather_rows(d_table.get(), d_gi.get(), d_gathered.get(), n, D, nullptr);
    EXPECT_EQ(bits(download_f32(d_gathered)), bits(gathered)) << "gather";
    ops::cuda::scatter_rows(d_packed.get(), d_si.get(), d_table.get(), n, D, nullptr);
    EXPECT_EQ(bits(download_f32(d_table)), bits(scattered)) << "scatter (other rows untouched)";
  }
}

// ---- logits_argmax_max_prob -------------------------------------------------------------------

TEST(GpuKvOps, ArgmaxTakesTheLowestTiedIndexAndMaxProbMatches) {
  RRT_REQUIRE_GPU();
  for (int64_t V : {int64_t{32000}, int64_t{7}}) {
    SCOPED_TRACE("V=" + std::to_string(V));
    const int64_t n = 4;
    auto logits = random_uniform(static_cast<size_t>(n * V), 13, 5.f);
    float* row0 = logits.data();
    float* row1 = logits.data() + V;
    float* row3 = logits.data() + 3 * V;
    if (V > 1025) {
      // Row 0: two equal maxima far apart. Row 1: the lower index (600, thread 88 of 512) sits
      // in a later warp than the higher one (1025, thread 1): the tie survives the block merge.
      row0[100] = row0[3000] = 10.f;
      row1[1025] = row1[600] = 9.f;
    } else {
      row0[2] = row0[5] = 10.f;
      row1[6] = row1[1] = 9.f;
    }
    std::fill(row3, row3 + V, 0.25f);  // all equal: index 0, probability 1/V
    std::vector<int32_t> want_index(n);
    std::vector<float> want_prob(n);
    for (int64_t r = 0; r < n; ++r) {
      const float* l = logits.data() + r * V;
      int64_t best = 0;
      for (int64_t j = 1; j < V; ++j)
        if (l[j] > l[best]) best = j;
      double sum = 0;
      for (int64_t j = 0; j < V; ++j) sum += std::exp(double(l[j]) - l[best]);
      want_index[r] = static_cast<int32_t>(best);
      want_prob[r] = static_cast<float>(1.0 / sum);
    }
    EXPECT_EQ(want_index[0], V > 1025 ? 100 : 2);  // the reference itself keeps the lowest index
    EXPECT_EQ(want_index[1], V > 1025 ? 600 : 1);

    DeviceBuffer<float> d_logits(logits.size()), d_prob(n);
    DeviceBuffer<int32_t> d_index(n);
    upload(d_logits, logits);
    poison(d_prob);
    poison(d_index);
    ops::cuda::logits_argmax_max_prob(d_logits.get(), n, V, d_index.get(), d_prob.get(), nullptr);
    EXPECT_EQ(download(d_index), want_index);
    const double err = relative_l2(download(d_prob), want_prob);
    std::printf("[logits_argmax_max_prob] V=%ld: max_prob relative L2 %.2e\n", long(V), err);
    EXPECT_LE(err, kF32Tol);
  }
}

}  // namespace
}  // namespace rrt::testing
