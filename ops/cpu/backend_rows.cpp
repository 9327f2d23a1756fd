// The CPU backend's row ops for the serving engine (ops/cpu/backend.h): rows at their own
// sequence slots, positions and stages, fp32 on the host.
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "ops/cpu/backend.h"
#include "ops/logits.h"

namespace rrt {

void CpuBackend::rope_rows(float* x, const int32_t* pos, int64_t n, int64_t H, int64_t Dh,
                           bool local) const {
  const ops::RopeTable& table = rope(local);
  const int64_t half = table.rot_dim / 2;
  for (int64_t i = 0; i < n; ++i) {
    const double* c = table.cos.data() + pos[i] * half;
    const double* s = table.sin.data() + pos[i] * half;
    for (int64_t h = 0; h < H; ++h) {
      float* v = x + (i * H + h) * Dh;
      for (int64_t t = 0; t < half; ++t) {
        const float ct = static_cast<float>(c[t]), st = static_cast<float>(s[t]);
        const float a = v[t], b = v[t + half];
        v[t] = a * ct - b * st;
        v[t + half] = b * ct + a * st;
      }
    }
  }
}

void CpuBackend::kv_store(const float* k, const float* v, float* k_cache, float* v_cache,
                          const int32_t* slot, const int32_t* pos, int64_t n, int64_t max_seq,
                          int64_t kv_dim, const int32_t* cache, int64_t cache_stride) const {
  const size_t bytes = static_cast<size_t>(kv_dim) * sizeof(float);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t at = (cache ? cache[i] * cache_stride : 0) +
                       (static_cast<int64_t>(slot[i]) * max_seq + pos[i]) * kv_dim;
    std::memcpy(k_cache + at, k + i * kv_dim, bytes);
    std::memcpy(v_cache + at, v + i * kv_dim, bytes);
  }
}

void CpuBackend::kv_attention(const float* q, const float* k_cache, const float* v_cache,
                              const int32_t* slot, const int32_t* pos, float* out, int64_t n,
                              int64_t H, int64_t Hkv, int64_t Dh, int64_t max_seq,
                              const int32_t* cache, int64_t cache_stride,
                              const ops::AttentionMask& mask) {
  const int64_t kvd = Hkv * Dh, qd = H * Dh, group = H / Hkv;
  const float scale = 1.0f / std::sqrt(static_cast<float>(Dh));
  const float cap = static_cast<float>(mask.softcap);
  RRT_CHECK(static_cast<int64_t>(attn_ws_.size()) >= threads_ * max_seq, "CpuBackend",
            "kv_attention needs prepare() for ", max_seq, " positions");
  RRT_CHECK(mask.doc_start == nullptr, "CpuBackend", "kv_attention serves one document a row");
  float* workspace = attn_ws_.data();
#pragma omp parallel for collapse(2) schedule(static) num_threads(threads_)
  for (int64_t i = 0; i < n; ++i)
    for (int64_t h = 0; h < H; ++h) {
      float* sc = workspace + static_cast<int64_t>(omp_get_thread_num()) * max_seq;
      const float* qh = q + i * qd + h * Dh;
      // Keys first..pos[i]: the window's last keys (ops/attention.h's rule), else all.
      const int64_t first = ops::attention_first_key(mask, 0, 0, pos[i]);
      const int64_t kvh = h / group, len = pos[i] + 1 - first;
      const int64_t base = (cache ? cache[i] * cache_stride : 0) +
                           (static_cast<int64_t>(slot[i]) * max_seq + first) * kvd + kvh * Dh;
      const float* keys = k_cache + base;
      const float* vals = v_cache + base;
      float mx = -INFINITY;
      for (int64_t t = 0; t < len; ++t) {
        float dot = 0;
        for (int64_t d = 0; d < Dh; ++d) dot += qh[d] * keys[t * kvd + d];
        sc[t] = dot * scale;
        if (cap > 0) sc[t] = cap * std::tanh(sc[t] / cap);
        mx = std::max(mx, sc[t]);
      }
      float sum = 0;
      for (int64_t t = 0; t < len; ++t) {
        sc[t] = std::exp(sc[t] - mx);
        sum += sc[t];
      }
      float* o = out + i * qd + h * Dh;
      std::fill(o, o + Dh, 0.0f);
      for (int64_t t = 0; t < len; ++t) {
        const float p = sc[t] / sum;
        for (int64_t d = 0; d < Dh; ++d) o[d] += p * vals[t * kvd + d];
      }
    }
}

void CpuBackend::gather_rows(const float* src, const int32_t* index, float* dst, int64_t n,
                             int64_t D) const {
  for (int64_t i = 0; i < n; ++i)
    std::memcpy(dst + i * D, src + static_cast<int64_t>(index[i]) * D,
                static_cast<size_t>(D) * sizeof(float));
}

void CpuBackend::scatter_rows(const float* src, const int32_t* index, float* dst, int64_t n,
                              int64_t D) const {
  for (int64_t i = 0; i < n; ++i)
    std::memcpy(dst + static_cast<int64_t>(index[i]) * D, src + i * D,
                static_cast<size_t>(D) * sizeof(float));
}

void CpuBackend::lora_rows(const float* x, int64_t in, float* y, int64_t out,
                           const RowAdapter<float>* adapters, int64_t stride,
                           const RowGroup* groups, int64_t n_groups, int64_t B, float* u,
                           int64_t /*max_rank*/) {
  for (int64_t g = 0; g < n_groups; ++g) {
    const RowAdapter<float>& a = adapters[groups[g].position / B * stride];
    if (a.a == nullptr || a.rank == 0) continue;
    ops::lora_forward<float>(x + groups[g].begin * in, a.a, a.b, u, y + groups[g].begin * out,
                             groups[g].end - groups[g].begin, in, out, a.rank, a.scale);
  }
}

void CpuBackend::head_adapter(const float* h, const float* A, const float* B, float* u,
                              int64_t rows, int64_t D, int64_t V, int64_t R, float* out) const {
  ops::gemm<float>(false, true, rows, R, D, 1.0f, h, D, A, D, 0.0f, u, R);
  ops::gemm<float>(false, true, rows, V, R, 1.0f, u, R, B, R, 1.0f, out, V);
}

void CpuBackend::head_results(const float* logits, int64_t n, int64_t V, int32_t*, float*,
                              int32_t* argmax, double* max_prob) const {
  for (int64_t i = 0; i < n; ++i) {
    argmax[i] = ops::argmax(logits + i * V, V);
    max_prob[i] = ops::max_probability(logits + i * V, V);
  }
}

}  // namespace rrt
