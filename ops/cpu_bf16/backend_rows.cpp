// CpuBf16Backend's row ops for the serving engine (ops/cpu_bf16/backend.h): rows at their own
// sequence slots, positions and stages; bf16 states and KV cache, fp32 scores, softmax and logits.
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "ops/cpu_bf16/backend.h"
#include "ops/cpu_bf16/convert.h"
#include "ops/logits.h"

namespace rrt {

using ops::cpu_bf16::F16;
using ops::cpu_bf16::gemm;
using ops::cpu_bf16::kLanes;
using ops::cpu_bf16::load;
using ops::cpu_bf16::store;

void CpuBf16Backend::kv_store(const Act* k, const Act* v, Act* k_cache, Act* v_cache,
                              const int32_t* slot, const int32_t* pos, int64_t n, int64_t max_seq,
                              int64_t kv_dim, const int32_t* cache, int64_t cache_stride) const {
  const size_t bytes = static_cast<size_t>(kv_dim) * sizeof(Act);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t at = (cache ? cache[i] * cache_stride : 0) +
                       (static_cast<int64_t>(slot[i]) * max_seq + pos[i]) * kv_dim;
    std::memcpy(static_cast<void*>(k_cache + at), k + i * kv_dim, bytes);
    std::memcpy(static_cast<void*>(v_cache + at), v + i * kv_dim, bytes);
  }
}

// Per (row, head): fp32 scores against keys 0..pos, fp32 softmax, fp32 P V, one rounding.
void CpuBf16Backend::kv_attention(const Act* q, const Act* k_cache, const Act* v_cache,
                                  const int32_t* slot, const int32_t* pos, Act* out, int64_t n,
                                  int64_t H, int64_t Hkv, int64_t Dh, int64_t max_seq,
                                  const int32_t* cache, int64_t cache_stride,
                                  const ops::AttentionMask& mask) {
  const int64_t kvd = Hkv * Dh, qd = H * Dh, group = H / Hkv;
  const float scale = 1.0f / std::sqrt(static_cast<float>(Dh));
  const float cap = static_cast<float>(mask.softcap);
  RRT_CHECK(mask.doc_start == nullptr, "CpuBf16Backend", "kv_attention serves one document a row");
  // Per thread: the scores [max_seq], the query and the output row [Dh] in fp32.
  const int64_t per_thread = max_seq + 2 * Dh;
  RRT_CHECK(static_cast<int64_t>(attn_ws_.size()) >= threads_ * per_thread, "CpuBf16Backend",
            "kv_attention needs prepare() for ", max_seq, " positions");
  float* workspace = attn_ws_.data();
#pragma omp parallel for collapse(2) schedule(static) num_threads(threads_)
  for (int64_t i = 0; i < n; ++i)
    for (int64_t h = 0; h < H; ++h) {
      float* sc = workspace + static_cast<int64_t>(omp_get_thread_num()) * per_thread;
      float* qf = sc + max_seq;
      float* o = qf + Dh;
      ops::cpu_bf16::to_float(q + i * qd + h * Dh, qf, Dh);
      // Keys first..pos[i]: the window's last keys (ops/attention.h's rule), else all.
      const int64_t first = ops::attention_first_key(mask, 0, 0, pos[i]);
      const int64_t kvh = h / group, len = pos[i] + 1 - first;
      const int64_t base = (cache ? cache[i] * cache_stride : 0) +
                           (static_cast<int64_t>(slot[i]) * max_seq + first) * kvd + kvh * Dh;
      const Act* keys = k_cache + base;
      const Act* vals = v_cache + base;
      float mx = -INFINITY;
      for (int64_t t = 0; t < len; ++t) {
        F16 dot{};
        for (int64_t d = 0; d < Dh; d += kLanes) {
          const int64_t w = std::min(kLanes, Dh - d);
          dot += load(qf + d, w) * load(keys + t * kvd + d, w);
        }
        sc[t] = ops::cpu_bf16::sum(dot) * scale;
        if (cap > 0) sc[t] = cap * std::tanh(sc[t] / cap);
        mx = std::max(mx, sc[t]);
      }
      float sum = 0;
      for (int64_t t = 0; t < len; ++t) {
        sc[t] = std::exp(sc[t] - mx);
        sum += sc[t];
      }
      std::fill(o, o + Dh, 0.0f);
      for (int64_t t = 0; t < len; ++t) {
        const float p = sc[t] / sum;
        for (int64_t d = 0; d < Dh; d += kLanes) {
          const int64_t w = std::min(kLanes, Dh - d);
          store(o + d, load(o + d, w) + p * load(vals + t * kvd + d, w), w);
        }
      }
      ops::cpu_bf16::to_bf16(o, out + i * qd + h * Dh, Dh);
    }
}

void CpuBf16Backend::gather_rows(const Act* src, const int32_t* index, Act* dst, int64_t n,
                                 int64_t D) const {
  for (int64_t i = 0; i < n; ++i)
    std::memcpy(static_cast<void*>(dst + i * D), src + static_cast<int64_t>(index[i]) * D,
                static_cast<size_t>(D) * sizeof(Act));
}

void CpuBf16Backend::scatter_rows(const Act* src, const int32_t* index, Act* dst, int64_t n,
                                  int64_t D) const {
  for (int64_t i = 0; i < n; ++i)
    std::memcpy(static_cast<void*>(dst + static_cast<int64_t>(index[i]) * D), src + i * D,
                static_cast<size_t>(D) * sizeof(Act));
}

void CpuBf16Backend::lora_add(const Act* x, const Act* A, const Act* B, Act* u, Act* y, int64_t M,
                              int64_t in, int64_t out, int64_t R, float scale) const {
  if (R == 0 || A == nullptr) return;
  gemm(false, true, M, R, in, 1.f, x, in, A, in, 0.f, u, R);     // u = x A^T
  gemm(false, true, M, out, R, scale, u, R, B, R, 1.f, y, out);  // y += s u B^T
}

void CpuBf16Backend::lora_rows(const Act* x, int64_t in, Act* y, int64_t out,
                               const RowAdapter<Act>* adapters, int64_t stride,
                               const RowGroup* groups, int64_t n_groups, int64_t B, float* u,
                               int64_t /*max_rank*/) const {
  Act* u16 = reinterpret_cast<Act*>(u);
  for (int64_t g = 0; g < n_groups; ++g) {
    const RowAdapter<Act>& a = adapters[groups[g].position / B * stride];
    lora_add(x + groups[g].begin * in, a.a, a.b, u16, y + groups[g].begin * out,
             groups[g].end - groups[g].begin, in, out, a.rank, a.scale);
  }
}

void CpuBf16Backend::head_results(const float* logits, int64_t n, int64_t V, int32_t*, float*,
                                  int32_t* argmax, double* max_prob) const {
  for (int64_t i = 0; i < n; ++i) {
    argmax[i] = ops::argmax(logits + i * V, V);
    max_prob[i] = ops::max_probability(logits + i * V, V);
  }
}

}  // namespace rrt
