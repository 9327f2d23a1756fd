// Causal attention on bf16 operands (ops/cpu_bf16/attention.h): ops/cpu/attention.cpp's blocks,
// each widened to fp32 panels before its products (OpenBLAS sgemm on the panels: the products
// here are per-thread and small, and their fp32 inputs are exactly the bf16 values).
#include "ops/cpu_bf16/attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "ops/cpu_bf16/convert.h"
#include "ops/cpu_bf16/vector_exp.h"
#include "ops/matmul.h"

namespace rrt::ops::cpu_bf16 {

int64_t attention_workspace_elems(const AttentionShape& s) {
  // Backward: K, V, dK, dV of a kv head and Q, O, dO, dQ of one query head ([T, Dh] each), the
  // probabilities and their gradient of one query block, the block's row dots. Forward: K, V,
  // one block's Q and out, its scores.
  // (and the soft-cap's derivative of the block).
  const int64_t backward = 8 * s.T * s.Dh + 3 * kAttnBlock * s.T + kAttnBlock;
  const int64_t forward = 2 * s.T * s.Dh + 2 * kAttnBlock * s.Dh + kAttnBlock * s.T;
  return std::max(forward, backward);
}

namespace {

void check_shape(const AttentionShape& s) {
  RRT_CHECK(s.H > 0 && s.Hkv > 0 && s.H % s.Hkv == 0, "attention", "heads ", s.H,
            " must be a multiple of kv heads ", s.Hkv);
}

// rows [t0, t1) of head `head` of a [N, T, heads, Dh] tensor, widened into dst [t1 - t0, Dh].
void widen_rows(const bf16* x, const AttentionShape& s, int64_t heads, int64_t n, int64_t head,
                int64_t t0, int64_t t1, float* dst) {
  for (int64_t t = t0; t < t1; ++t)
    to_float(x + ((n * s.T + t) * heads + head) * s.Dh, dst + (t - t0) * s.Dh, s.Dh);
}
// The same rows of a bf16 tensor += src (one rounding per element).
void add_rows(const float* src, const AttentionShape& s, int64_t heads, int64_t n, int64_t head,
              int64_t t0, int64_t t1, bf16* x) {
  for (int64_t t = t0; t < t1; ++t)
    add_into(src + (t - t0) * s.Dh, x + ((n * s.T + t) * heads + head) * s.Dh, s.Dh);
}

// scores [rows, cols] = scale Q K^T for query rows [i0, i1) against keys [c0, i1) (kf: the
// panel's rows from key c0 on), soft-capped, -inf outside each row's keys (ops/cpu/attention.cpp).
int64_t block_scores(const float* qb, const float* kf, const AttentionShape& s,
                     const AttentionMask& m, int64_t n, int64_t i0, int64_t i1, int64_t c0,
                     float scale, float* scores) {
  const int64_t cols = i1 - c0;
  gemm<float>(false, true, i1 - i0, cols, s.Dh, scale, qb, s.Dh, kf, s.Dh, 0.f, scores, cols);
  const float inf = std::numeric_limits<float>::infinity();
  for (int64_t r = 0; r < i1 - i0; ++r) {
    float* row = scores + r * cols;
    if (m.softcap > 0) {
      const float cap = static_cast<float>(m.softcap);
      for (int64_t j = 0; j <= i0 + r - c0; ++j) row[j] = cap * std::tanh(row[j] / cap);
    }
    if (!m.plain()) std::fill(row, row + attention_first_key(m, s.T, n, i0 + r) - c0, -inf);
    std::fill(row + i0 + r + 1 - c0, row + cols, -inf);
  }
  return cols;
}

// row[j] = exp(row[j] - shift) for j < n, 16 lanes at a time; returns their sum.
float exp_shifted(float* row, int64_t n, float shift) {
  F16 acc{};
  for (int64_t j = 0; j < n; j += kLanes) {
    const int64_t w = std::min(kLanes, n - j);
    const F16 e = exp_lanes(load(row + j, w) - shift);
    store(row + j, e, w);
    acc += lanes_below(w) ? e : splat(0.f);
  }
  return sum(acc);
}

float scale_of(const AttentionShape& s) {
  return static_cast<float>(1.0 / std::sqrt(static_cast<double>(s.Dh)));
}

}  // namespace

void attention_forward(const bf16* q, const bf16* k, const bf16* v, bf16* out, float* lse,
                       const AttentionShape& s, float* workspace, int threads,
                       const AttentionMask& mask) {
  check_shape(s);
  check_attention_mask(mask, s);
  const int64_t blocks = (s.T + kAttnBlock - 1) / kAttnBlock, tasks = s.N * s.H * blocks;
  const int64_t per_thread = attention_workspace_elems(s), group = s.H / s.Hkv;
  const float scale = scale_of(s);
#pragma omp parallel num_threads(threads)
  {
    float* kf = workspace + omp_get_thread_num() * per_thread;
    float* vf = kf + s.T * s.Dh;
    float* qb = vf + s.T * s.Dh;
    float* ob = qb + kAttnBlock * s.Dh;
    float* scores = ob + kAttnBlock * s.Dh;
#pragma omp for schedule(dynamic)
    for (int64_t task = 0; task < tasks; ++task) {
      // Later query blocks see more keys; walking blocks last-first balances the dynamic queue.
      const int64_t blk = blocks - 1 - task % blocks, nh = task / blocks;
      const int64_t n = nh / s.H, h = nh % s.H, kvh = h / group;
      const int64_t i0 = blk * kAttnBlock, i1 = std::min(s.T, i0 + kAttnBlock);
      const int64_t c0 = attention_first_key(mask, s.T, n, i0);
      widen_rows(q, s, s.H, n, h, i0, i1, qb);
      widen_rows(k, s, s.Hkv, n, kvh, c0, i1, kf);
      widen_rows(v, s, s.Hkv, n, kvh, c0, i1, vf);
      const int64_t cols = block_scores(qb, kf, s, mask, n, i0, i1, c0, scale, scores);
      for (int64_t r = 0; r < i1 - i0; ++r) {
        float* row = scores + r * cols;
        const int64_t lo = attention_first_key(mask, s.T, n, i0 + r) - c0, valid = i0 + r + 1 - c0;
        float m = row[lo];
        for (int64_t j = lo + 1; j < valid; ++j) m = std::max(m, row[j]);
        const float sum = exp_shifted(row + lo, valid - lo, m);
        const float inv = 1.f / sum;
        std::fill(row, row + lo, 0.f);
        for (int64_t j = lo; j < valid; ++j) row[j] *= inv;
        for (int64_t j = valid; j < cols; ++j) row[j] = 0;
        lse[(n * s.H + h) * s.T + i0 + r] = m + std::log(sum);
      }
      gemm<float>(false, false, i1 - i0, s.Dh, cols, 1.f, scores, cols, vf, s.Dh, 0.f, ob, s.Dh);
      for (int64_t r = 0; r < i1 - i0; ++r)
        to_bf16(ob + r * s.Dh, out + ((n * s.T + i0 + r) * s.H + h) * s.Dh, s.Dh);
    }
  }
}

void attention_backward(const bf16* q, const bf16* k, const bf16* v, const bf16* out,
                        const float* lse, const bf16* dout, bf16* dq, bf16* dk, bf16* dv,
                        const AttentionShape& s, float* workspace, int threads,
                        const AttentionMask& mask) {
  check_shape(s);
  check_attention_mask(mask, s);
  const int64_t blocks = (s.T + kAttnBlock - 1) / kAttnBlock, group = s.H / s.Hkv;
  const int64_t per_thread = attention_workspace_elems(s), panel = s.T * s.Dh;
  const float scale = scale_of(s);
  // One task per (n, kv head): dk and dv of a kv head have one writer.
#pragma omp parallel num_threads(threads)
  {
    float* kf = workspace + omp_get_thread_num() * per_thread;
    float *vf = kf + panel, *dkf = vf + panel, *dvf = dkf + panel;
    float *qf = dvf + panel, *of = qf + panel, *dof = of + panel, *dqf = dof + panel;
    float* probs = dqf + panel;
    float* dprobs = probs + kAttnBlock * s.T;
    float* dcap = dprobs + kAttnBlock * s.T;  // 1 - tanh^2 of the soft-cap
    float* row_dot = dcap + kAttnBlock * s.T;
#pragma omp for schedule(dynamic) collapse(2)
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t kvh = 0; kvh < s.Hkv; ++kvh) {
        widen_rows(k, s, s.Hkv, n, kvh, 0, s.T, kf);
        widen_rows(v, s, s.Hkv, n, kvh, 0, s.T, vf);
        std::fill(dkf, dkf + 2 * panel, 0.f);  // dK, dV
        for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
          widen_rows(q, s, s.H, n, h, 0, s.T, qf);
          widen_rows(out, s, s.H, n, h, 0, s.T, of);
          widen_rows(dout, s, s.H, n, h, 0, s.T, dof);
          std::fill(dqf, dqf + panel, 0.f);
          for (int64_t blk = 0; blk < blocks; ++blk) {
            const int64_t i0 = blk * kAttnBlock, i1 = std::min(s.T, i0 + kAttnBlock);
            const int64_t rows = i1 - i0, off = i0 * s.Dh;
            const int64_t c0 = attention_first_key(mask, s.T, n, i0), koff = c0 * s.Dh;
            const int64_t cols =
                block_scores(qf + off, kf + koff, s, mask, n, i0, i1, c0, scale, probs);
            if (mask.softcap > 0) {
              const float cap = static_cast<float>(mask.softcap);
              for (int64_t j = 0; j < rows * cols; ++j) {
                const float t = probs[j] / cap;
                dcap[j] = std::isfinite(t) ? 1.f - t * t : 0.f;
              }
            }
            for (int64_t r = 0; r < rows; ++r) {
              const float l = lse[(n * s.H + h) * s.T + i0 + r];
              // Masked probabilities are 0: left of the first key and right of the diagonal.
              const int64_t lo = attention_first_key(mask, s.T, n, i0 + r) - c0;
              const int64_t valid = i0 + r + 1 - c0;
              std::fill(probs + r * cols, probs + r * cols + lo, 0.f);
              exp_shifted(probs + r * cols + lo, valid - lo, l);
              std::fill(probs + r * cols + valid, probs + (r + 1) * cols, 0.f);
              float dot = 0;  // D_i = dO_i . O_i = sum_j P_ij dP_ij
              for (int64_t d = 0; d < s.Dh; ++d)
                dot += dof[off + r * s.Dh + d] * of[off + r * s.Dh + d];
              row_dot[r] = dot;
            }
            // dP = dO V^T, then dS = P (dP - D) in place.
            gemm<float>(false, true, rows, cols, s.Dh, 1.f, dof + off, s.Dh, vf + koff, s.Dh, 0.f,
                        dprobs, cols);
            for (int64_t r = 0; r < rows; ++r)
              for (int64_t j = 0; j < cols; ++j)
                dprobs[r * cols + j] = probs[r * cols + j] * (dprobs[r * cols + j] - row_dot[r]);
            if (mask.softcap > 0)
              for (int64_t j = 0; j < rows * cols; ++j) dprobs[j] *= dcap[j];
            gemm<float>(false, false, rows, s.Dh, cols, scale, dprobs, cols, kf + koff, s.Dh, 1.f,
                        dqf + off, s.Dh);  // dQ += s dS K
            gemm<float>(true, false, cols, s.Dh, rows, scale, dprobs, cols, qf + off, s.Dh, 1.f,
                        dkf + koff, s.Dh);  // dK += s dS^T Q
            gemm<float>(true, false, cols, s.Dh, rows, 1.f, probs, cols, dof + off, s.Dh, 1.f,
                        dvf + koff, s.Dh);  // dV += P^T dO
          }
          add_rows(dqf, s, s.H, n, h, 0, s.T, dq);
        }
        add_rows(dkf, s, s.Hkv, n, kvh, 0, s.T, dk);
        add_rows(dvf, s, s.Hkv, n, kvh, 0, s.T, dv);
      }
  }
}

}  // namespace rrt::ops::cpu_bf16
