#include "ops/attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "ops/matmul.h"

namespace rrt::ops {

int64_t attention_workspace_elems(const AttentionShape& s, int threads) {
  // Scores, their gradient and the soft-cap's derivative of one block; the block's row dots.
  return static_cast<int64_t>(threads) * (3 * kAttnBlock * s.T + kAttnBlock);
}

void check_attention_mask(const AttentionMask& m, const AttentionShape& s) {
  RRT_CHECK(m.window >= 0 && m.softcap >= 0, "attention", "window ", m.window, " and softcap ",
            m.softcap, " must be >= 0 (0: off)");
  if (!m.doc_start) return;
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t i = 0; i < s.T; ++i) {
      const int32_t d = m.doc_start[n * s.T + i];
      const int32_t prev = i > 0 ? m.doc_start[n * s.T + i - 1] : 0;
      RRT_CHECK(d >= prev && d <= i, "attention", "doc_start[", n, ", ", i, "] = ", d,
                " must lie in [doc_start of the token before (", prev, "), ", i,
                "]: each token's document starts at or before it, in order");
    }
}

namespace {
void check_shape(const AttentionShape& s) {
  RRT_CHECK(s.H > 0 && s.Hkv > 0 && s.H % s.Hkv == 0, "attention", "heads ", s.H,
            " must be a multiple of kv heads ", s.Hkv);
}

// Scores of query rows [i0, i1) against keys [c0, i1), c0 the first key row i0 sees (the rows
// after it see no earlier key: first keys never decrease): S = scale * Q K^T, soft-capped, and
// -inf outside each row's keys [first_key, i]. The plain mask has c0 = 0 and only the causal
// fill. Returns the number of key columns, i1 - c0.
template <typename S>
int64_t block_scores(const S* q, const S* k, const AttentionShape& s, const AttentionMask& m,
                     int64_t n, int64_t h, int64_t i0, int64_t i1, int64_t c0, S* scores) {
  const int64_t group = s.H / s.Hkv, kvh = h / group, cols = i1 - c0;
  const S scale = static_cast<S>(1.0 / std::sqrt(static_cast<double>(s.Dh)));
  const S* qb = q + ((n * s.T + i0) * s.H + h) * s.Dh;
  const S* kb = k + ((n * s.T + c0) * s.Hkv + kvh) * s.Dh;
  gemm<S>(false, true, i1 - i0, cols, s.Dh, scale, qb, s.H * s.Dh, kb, s.Hkv * s.Dh, S(0), scores,
          cols);
  const S inf = std::numeric_limits<S>::infinity();
  for (int64_t r = 0; r < i1 - i0; ++r) {
    S* row = scores + r * cols;
    if (m.softcap > 0) {
      const S cap = static_cast<S>(m.softcap);
      for (int64_t j = 0; j <= i0 + r - c0; ++j) row[j] = cap * std::tanh(row[j] / cap);
    }
    if (!m.plain()) std::fill(row, row + attention_first_key(m, s.T, n, i0 + r) - c0, -inf);
    std::fill(row + i0 + r + 1 - c0, row + cols, -inf);
  }
  return cols;
}
}  // namespace

template <typename S>
void attention_forward(const S* q, const S* k, const S* v, S* out, S* lse, const AttentionShape& s,
                       S* workspace, int threads, const AttentionMask& mask) {
  check_shape(s);
  check_attention_mask(mask, s);
  const int64_t blocks = (s.T + kAttnBlock - 1) / kAttnBlock;
  const int64_t tasks = s.N * s.H * blocks;
  const int64_t per_thread = attention_workspace_elems(s, 1);
#pragma omp parallel num_threads(threads)
  {
    S* scores = workspace + omp_get_thread_num() * per_thread;
#pragma omp for schedule(dynamic)
    for (int64_t task = 0; task < tasks; ++task) {
      // Later query blocks see more keys; walking blocks last-first balances the dynamic queue.
      const int64_t blk = blocks - 1 - task % blocks, nh = task / blocks;
      const int64_t n = nh / s.H, h = nh % s.H;
      const int64_t i0 = blk * kAttnBlock, i1 = std::min(s.T, i0 + kAttnBlock);
      const int64_t c0 = attention_first_key(mask, s.T, n, i0);
      const int64_t cols = block_scores(q, k, s, mask, n, h, i0, i1, c0, scores);
      for (int64_t r = 0; r < i1 - i0; ++r) {
        S* row = scores + r * cols;
        const int64_t lo = attention_first_key(mask, s.T, n, i0 + r) - c0, valid = i0 + r + 1 - c0;
        S m = row[lo];
        for (int64_t j = lo + 1; j < valid; ++j) m = std::max(m, row[j]);
        S sum = 0;
        for (int64_t j = lo; j < valid; ++j) {
          row[j] = std::exp(row[j] - m);
          sum += row[j];
        }
        const S inv = S(1) / sum;
        std::fill(row, row + lo, S(0));
        for (int64_t j = lo; j < valid; ++j) row[j] *= inv;
        for (int64_t j = valid; j < cols; ++j) row[j] = 0;
        lse[(n * s.H + h) * s.T + i0 + r] = m + std::log(sum);
      }
      const int64_t kvh = h / (s.H / s.Hkv);
      gemm<S>(false, false, i1 - i0, s.Dh, cols, S(1), scores, cols,
              v + ((n * s.T + c0) * s.Hkv + kvh) * s.Dh, s.Hkv * s.Dh, S(0),
              out + ((n * s.T + i0) * s.H + h) * s.Dh, s.H * s.Dh);
    }
  }
}

template <typename S>
void attention_backward(const S* q, const S* k, const S* v, const S* out, const S* lse,
                        const S* dout, S* dq, S* dk, S* dv, const AttentionShape& s, S* workspace,
                        int threads, const AttentionMask& mask) {
  check_shape(s);
  check_attention_mask(mask, s);
  const int64_t blocks = (s.T + kAttnBlock - 1) / kAttnBlock, group = s.H / s.Hkv;
  const int64_t per_thread = attention_workspace_elems(s, 1);
  const int64_t qstride = s.H * s.Dh, kvstride = s.Hkv * s.Dh;
  const S scale = static_cast<S>(1.0 / std::sqrt(static_cast<double>(s.Dh)));
  // One task per (n, kv head): dk and dv of a kv head are written by that task alone.
#pragma omp parallel num_threads(threads)
  {
    S* probs = workspace + omp_get_thread_num() * per_thread;
    S* dprobs = probs + kAttnBlock * s.T;
    S* dcap = dprobs + kAttnBlock * s.T;  // d(capped score) / d(score) = 1 - tanh^2
    S* row_dot = dcap + kAttnBlock * s.T;
#pragma omp for schedule(dynamic) collapse(2)
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t kvh = 0; kvh < s.Hkv; ++kvh) {
        const S* kb = k + (n * s.T * s.Hkv + kvh) * s.Dh;
        const S* vb = v + (n * s.T * s.Hkv + kvh) * s.Dh;
        S* dkb = dk + (n * s.T * s.Hkv + kvh) * s.Dh;
        S* dvb = dv + (n * s.T * s.Hkv + kvh) * s.Dh;
        for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h)
          for (int64_t blk = 0; blk < blocks; ++blk) {
            const int64_t i0 = blk * kAttnBlock, i1 = std::min(s.T, i0 + kAttnBlock);
            const int64_t rows = i1 - i0, off = ((n * s.T + i0) * s.H + h) * s.Dh;
            const int64_t c0 = attention_first_key(mask, s.T, n, i0);
            const int64_t cols = block_scores(q, k, s, mask, n, h, i0, i1, c0, probs);
            if (mask.softcap > 0) {
              const S cap = static_cast<S>(mask.softcap);
              for (int64_t j = 0; j < rows * cols; ++j) {
                const S t = probs[j] / cap;  // -inf where masked: the factor is unused there
                dcap[j] = std::isfinite(t) ? S(1) - t * t : S(0);
              }
            }
            for (int64_t r = 0; r < rows; ++r) {
              const S l = lse[(n * s.H + h) * s.T + i0 + r];
              for (int64_t j = 0; j < cols; ++j)
                probs[r * cols + j] = std::exp(probs[r * cols + j] - l);
              S dot = 0;  // D_i = dO_i . O_i = sum_j P_ij dP_ij
              for (int64_t d = 0; d < s.Dh; ++d)
                dot += dout[off + r * qstride + d] * out[off + r * qstride + d];
              row_dot[r] = dot;
            }
            // dP = dO V^T, then dS = P (dP - D) in place.
            gemm<S>(false, true, rows, cols, s.Dh, S(1), dout + off, qstride, vb + c0 * kvstride,
                    kvstride, S(0), dprobs, cols);
            for (int64_t r = 0; r < rows; ++r)
              for (int64_t j = 0; j < cols; ++j)
                dprobs[r * cols + j] = probs[r * cols + j] * (dprobs[r * cols + j] - row_dot[r]);
            if (mask.softcap > 0)
              for (int64_t j = 0; j < rows * cols; ++j) dprobs[j] *= dcap[j];
            const int64_t kv_off = c0 * kvstride;
            gemm<S>(false, false, rows, s.Dh, cols, scale, dprobs, cols, kb + kv_off, kvstride,
                    S(1), dq + off, qstride);  // dQ += s dS K
            gemm<S>(true, false, cols, s.Dh, rows, scale, dprobs, cols, q + off, qstride, S(1),
                    dkb + kv_off, kvstride);  // dK += s dS^T Q
            gemm<S>(true, false, cols, s.Dh, rows, S(1), probs, cols, dout + off, qstride, S(1),
                    dvb + kv_off, kvstride);  // dV += P^T dO
          }
      }
  }
}

template void attention_forward<float>(const float*, const float*, const float*, float*, float*,
                                       const AttentionShape&, float*, int, const AttentionMask&);
template void attention_forward<double>(const double*, const double*, const double*, double*,
                                        double*, const AttentionShape&, double*, int,
                                        const AttentionMask&);
template void attention_backward<float>(const float*, const float*, const float*, const float*,
                                        const float*, const float*, float*, float*, float*,
                                        const AttentionShape&, float*, int, const AttentionMask&);
template void attention_backward<double>(const double*, const double*, const double*, const double*,
                                         const double*, const double*, double*, double*, double*,
                                         const AttentionShape&, double*, int, const AttentionMask&);

}  // namespace rrt::ops
