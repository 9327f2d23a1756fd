// The CPU fp32 backend of the one model code (model/backend.h): every op is the fp32
// instantiation of the ops/ templates (OpenBLAS + OpenMP); buffers are host memory. It is the
// reference backend: the gradient checks and the PyTorch / transformers fixtures run on it.
#pragma once

#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/backend.h"
#include "ops/cross_entropy.h"
#include "ops/embedding.h"
#include "ops/exit_loss.h"
#include "ops/logit_softcap.h"
#include "ops/lora.h"
#include "ops/matmul.h"
#include "ops/norm.h"
#include "ops/rope.h"

namespace rrt {

class CpuBackend {
 public:
  using Act = float;   // activations and compute weights (the fp32 parameters themselves)
  using Grad = float;  // weight gradients
  using Stat = float;  // norm statistics and the attention lse
  static constexpr size_t kAlign = 64;
  static constexpr const char* kName = "cpu";

  // threads: OpenMP threads of the attention (0: omp_get_max_threads()).
  explicit CpuBackend(int threads = 0);

  void prepare(const BackendPlan& plan);
  int threads() const { return threads_; }
  const ops::RopeTable& rope(bool local = false) const {
    RRT_CHECK(!local || rope_local_.rot_dim > 0, "rope",
              "the local RoPE table was not prepared (BackendPlan::rope_local_theta is 0)");
    return local ? rope_local_ : rope_;
  }

  BackendBlock allocate(size_t bytes, const char* what) const;
  template <typename T>
  void zero(T* x, int64_t n) const {
    std::memset(x, 0, static_cast<size_t>(n) * sizeof(T));
  }
  template <typename T>
  void upload(T* dst, const T* host, int64_t n) const {
    std::memcpy(dst, host, static_cast<size_t>(n) * sizeof(T));
  }

  // y = x W^T + bias + s B (A x); u [M, R] keeps A x for backward.
  void project(const float* x, const float* W, const float* bias, const float* A, const float* B,
               float* u, float* y, int64_t M, int64_t in, int64_t out, int64_t R,
               float scale) const {
    ops::linear_forward<float>(x, W, bias, y, M, in, out, false);
    ops::lora_forward<float>(x, A, B, u, y, M, in, out, R, scale);
  }
  // dx += ..., dW += ..., dbias += ..., dA / dB += ... (null gradients are skipped).
  void project_backward(const float* x, const float* W, const float* A, const float* B,
                        const float* u, const float* dy, float* dx, float* dW, float* dbias,
                        float* dA, float* dB, float* du, int64_t M, int64_t in, int64_t out,
                        int64_t R, float scale) const {
    ops::linear_backward<float>(x, W, dy, dx, dW, dbias, M, in, out);
    ops::lora_backward<float>(x, A, B, u, dy, dx, dA, dB, du, M, in, out, R, scale);
  }

  // RMSNorm (bias and mean unused) or LayerNorm over x [M, D].
  void norm_forward(bool layer_norm, const float* x, const float* w, const float* bias, float* y,
                    float* mean, float* rstd, int64_t M, int64_t D, float eps,
                    bool unit_offset) const {
    if (layer_norm)
      ops::layernorm_forward<float>(x, w, bias, y, mean, rstd, M, D, eps);
    else
      ops::rmsnorm_forward<float>(x, w, y, rstd, M, D, eps, unit_offset);
  }
  void norm_backward(bool layer_norm, const float* x, const float* w, const float* mean,
                     const float* rstd, const float* dy, float* dx, float* dw, float* dbias,
                     int64_t M, int64_t D, bool unit_offset) const {
    if (layer_norm)
      ops::layernorm_backward<float>(x, w, mean, rstd, dy, dx, dw, dbias, M, D);
    else
      ops::rmsnorm_backward<float>(x, w, rstd, dy, dx, dw, M, D, unit_offset);
  }

  // pos: [N, T] token positions in this backend's memory; null: 0..T-1. local: the table of
  // BackendPlan::rope_local_theta (Gemma 3's sliding layers).
  void rope_forward(float* x, int64_t N, int64_t T, int64_t H, int64_t Dh,
                    const int32_t* pos = nullptr, bool local = false) const {
    ops::rope_forward<float>(x, rope(local), N, T, H, Dh, pos);
  }
  void rope_backward(float* dx, int64_t N, int64_t T, int64_t H, int64_t Dh,
                     const int32_t* pos = nullptr, bool local = false) const {
    ops::rope_backward<float>(dx, rope(local), N, T, H, Dh, pos);
  }
  void scale(float* x, float factor, int64_t n) const {
    for (int64_t i = 0; i < n; ++i) x[i] *= factor;
  }
  // mask.doc_start in this backend's (host) memory.
  void attention_forward(const float* q, const float* k, const float* v, float* out, float* lse,
                         const ops::AttentionShape& shape, const ops::AttentionMask& mask = {}) {
    ops::attention_forward<float>(q, k, v, out, lse, shape, attn_ws_.data(), threads_, mask);
  }
  void attention_backward(const float* q, const float* k, const float* v, const float* out,
                          const float* lse, const float* dout, float* dq, float* dk, float* dv,
                          const ops::AttentionShape& shape, const ops::AttentionMask& mask = {}) {
    ops::attention_backward<float>(q, k, v, out, lse, dout, dq, dk, dv, shape, attn_ws_.data(),
                                   threads_, mask);
  }

  void add(const float* a, const float* b, float* out, int64_t n) const {
    ops::add_forward<float>(a, b, out, n);
  }
  void swiglu_forward(const float* gate, const float* up, float* out, int64_t n) const {
    ops::swiglu_forward<float>(gate, up, out, n);
  }
  void swiglu_backward(const float* gate, const float* up, const float* dout, float* dgate,
                       float* dup, int64_t n) const {
    ops::swiglu_backward<float>(gate, up, dout, dgate, dup, n);
  }
  void geglu_forward(const float* gate, const float* up, float* out, int64_t n) const {
    ops::geglu_forward<float>(gate, up, out, n);
  }
  void geglu_backward(const float* gate, const float* up, const float* dout, float* dgate,
                      float* dup, int64_t n) const {
    ops::geglu_backward<float>(gate, up, dout, dgate, dup, n);
  }
  void gelu_forward(const float* x, float* out, int64_t n, bool tanh_approx) const {
    ops::gelu_forward<float>(x, out, n, tanh_approx);
  }
  void gelu_backward(const float* x, const float* dout, float* dx, int64_t n,
                     bool tanh_approx) const {
    ops::gelu_backward<float>(x, dout, dx, n, tanh_approx);
  }

  void embedding_forward(const int32_t* tokens, const float* table, float* out, int64_t M,
                         int64_t D, int64_t V, float scale) const {
    ops::embedding_forward<float>(tokens, table, out, M, D, V, scale);
  }
  void embedding_backward(const int32_t* tokens, const float* dout, float* dtable, int64_t M,
                          int64_t D, int64_t /*V*/, float scale) const {
    ops::embedding_backward<float>(tokens, dout, dtable, M, D, scale);
  }

  // Workspace of the head losses (bytes): plain CE, and the exit loss when `exits` is set.
  size_t lm_head_workspace_bytes(int64_t V, int64_t chunk) const {
    return sizeof(float) * static_cast<size_t>(ops::lm_head_workspace_elems(V, chunk));
  }
  size_t exit_loss_workspace_bytes(int64_t V, int64_t chunk, int64_t /*exits*/, bool teacher,
                                   bool self_distill, int64_t head_lora_rank) const {
    return sizeof(float) * static_cast<size_t>(ops::exit_loss_workspace_elems(
                               V, chunk, teacher, self_distill, head_lora_rank));
  }
  ops::CrossEntropyResult lm_head_cross_entropy(const float* h, const float* W,
                                                const int32_t* targets, float* dh, float* dW,
                                                int64_t M, int64_t D, int64_t V,
                                                int32_t ignore_index, float weight, void* workspace,
                                                size_t /*bytes*/, int64_t chunk,
                                                double softcap = 0) const {
    return ops::lm_head_cross_entropy<float>(h, W, targets, dh, dW, M, D, V, ignore_index, weight,
                                             static_cast<float*>(workspace), chunk, softcap);
  }
  ops::ExitLossResult exit_loss(const HeadLossArgs<float>& a) const;

  // Logits of `rows` rows: out [rows, V] = h W^T (+ the exit's head adapter where given).
  void logits(const float* h, const float* W, int64_t rows, int64_t D, int64_t V,
              float* out) const {
    ops::linear_forward<float>(h, W, nullptr, out, rows, D, V, false);
  }
  // z = cap tanh(z / cap) over n fp32 logits (ops/logit_softcap.h); cap <= 0: nothing.
  void softcap_logits(float* z, int64_t n, double cap) const { ops::softcap_logits(z, n, cap); }

  // ---- the serving engine's row ops (ops/cpu/backend_rows.cpp); every pointer is host memory.
  static constexpr bool kHostMemory = true;  // engine buffers are readable on the host as they are
  template <typename T>
  void copy(T* dst, const T* src, int64_t n) const {
    std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(T));
  }
  template <typename T>
  void download(T* host, const T* src, int64_t n) const {
    std::memcpy(host, src, static_cast<size_t>(n) * sizeof(T));
  }
  void synchronize() const {}
  // RoPE at each row's own position pos[i] (ops/rope's table and rounding); x [n, H, Dh].
  void rope_rows(float* x, const int32_t* pos, int64_t n, int64_t H, int64_t Dh,
                 bool local = false) const;
  // Row i's k, v into its cache at (slot[i], pos[i]); the cache of row i is k_cache +
  // cache[i] * cache_stride (cache null: index 0). Caches are [slots, max_seq, kv_dim].
  void kv_store(const float* k, const float* v, float* k_cache, float* v_cache, const int32_t* slot,
                const int32_t* pos, int64_t n, int64_t max_seq, int64_t kv_dim,
                const int32_t* cache, int64_t cache_stride) const;
  // One query row against its slot's keys 0..pos[i]: softmax(q K^T / sqrt(Dh)) V, per head.
  // mask: a window reads only keys pos[i] - window + 1..pos[i]; the soft-cap caps the scores
  // (no doc_start: a served sequence is one document).
  void kv_attention(const float* q, const float* k_cache, const float* v_cache, const int32_t* slot,
                    const int32_t* pos, float* out, int64_t n, int64_t H, int64_t Hkv, int64_t Dh,
                    int64_t max_seq, const int32_t* cache, int64_t cache_stride,
                    const ops::AttentionMask& mask = {});
  void gather_rows(const float* src, const int32_t* index, float* dst, int64_t n, int64_t D) const;
  void scatter_rows(const float* src, const int32_t* index, float* dst, int64_t n, int64_t D) const;
  // y += s B (A x) for M rows of one adapter (u [M, R] scratch).
  void lora_add(const float* x, const float* A, const float* B, float* u, float* y, int64_t M,
                int64_t in, int64_t out, int64_t R, float scale) const {
    ops::lora_forward<float>(x, A, B, u, y, M, in, out, R, scale);
  }
  // Each group's rows get the adapter adapters[stage * stride] (stage = groups[g].position / B).
  void lora_rows(const float* x, int64_t in, float* y, int64_t out,
                 const RowAdapter<float>* adapters, int64_t stride, const RowGroup* groups,
                 int64_t n_groups, int64_t B, float* u, int64_t max_rank);
  // out [rows, V] = h W^T in fp32.
  void head_logits(const float* h, const float* W, int64_t rows, int64_t D, int64_t V,
                   float* out) const {
    ops::linear_forward<float>(h, W, nullptr, out, rows, D, V, false);
  }
  // out [rows, V] += (h A^T) B^T (an exit's head adapter, scale 1; u [rows, R] scratch).
  void head_adapter(const float* h, const float* A, const float* B, float* u, int64_t rows,
                    int64_t D, int64_t V, int64_t R, float* out) const;
  // Per row: the argmax and the max softmax probability, into host memory.
  void head_results(const float* logits, int64_t n, int64_t V, int32_t* /*argmax_scratch*/,
                    float* /*max_prob_scratch*/, int32_t* argmax, double* max_prob) const;

 private:
  int threads_;
  ops::RopeTable rope_, rope_local_;  // rope_local_: rot_dim 0 unless prepared
  std::vector<float> attn_ws_;        // per-thread score blocks, sized for the largest call
};

}  // namespace rrt
