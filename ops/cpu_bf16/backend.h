// The CPU bf16 backend of the one model code (ops/backend.h): the CUDA backend's mixed-precision
// scheme on the host. bf16 activations and compute weights; fp32 weight gradients (the tied
// block's accumulate over loops in fp32), fp32 norm statistics and attention log-sum-exp, fp32
// logits and losses. Buffers are host memory.
//
//   GEMMs (projections, LoRA, the engine's head)   ops/cpu_bf16/gemm.h only: bf16 operands, fp32
//                                                  accumulation, bf16 or fp32 results
//   element-wise ops, norms, RoPE, embedding       bf16 read, fp32 arithmetic, one rounding on
//                                                  store (ops/cpu_bf16/convert.h), OpenMP
//   attention                                      flash-style blocks widened to fp32, fp32
//                                                  softmax, lse and accumulators (attention.cpp)
//   chunked CE head (head_loss.cpp)                the CUDA scheme: per chunk, fp32 logits by the
//                                                  bf16 GEMM, fp32 softmax and loss, bf16 dlogits
//                                                  into dh (bf16) and dW (fp32) by bf16 GEMMs
//   exit / distillation loss (head_loss.cpp)       each chunk of rows widened to fp32 and scored
//                                                  by the fp32 op with an fp32 copy of the head
//                                                  made once per call
//
// Like the CUDA backend, a backward that adds into a bf16 gradient rounds the sum once per GEMM
// or op (dx += dy W, then += du A for a LoRA), and LoRA's u and du are stored in bf16.
#pragma once

#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "ops/backend.h"
#include "ops/cpu_bf16/gemm.h"
#include "ops/cross_entropy.h"
#include "ops/exit_loss.h"

namespace rrt {

class CpuBf16Backend {
 public:
  using Act = bf16;
  using Grad = float;
  using Stat = float;
  static constexpr size_t kAlign = 64;
  static constexpr bool kHostMemory = true;
  static constexpr const char* kName = "cpu-bf16";

  // threads: OpenMP threads of the attention (0: omp_get_max_threads()).
  explicit CpuBf16Backend(int threads = 0);

  void prepare(const BackendPlan& plan);
  int threads() const { return threads_; }

  BackendBlock allocate(size_t bytes, const char* what) const;
  template <typename T>
  void zero(T* x, int64_t n) const {
    std::memset(static_cast<void*>(x), 0, static_cast<size_t>(n) * sizeof(T));
  }
  template <typename T>
  void upload(T* dst, const T* host, int64_t n) const {
    std::memcpy(static_cast<void*>(dst), host, static_cast<size_t>(n) * sizeof(T));
  }
  // dst [n] = bf16(host [n]): the compute copy of fp32 weights (as CudaBackend::upload_bf16).
  void upload_bf16(Act* dst, const float* host, int64_t n, const char* what) const;

  // y = x W^T + bias + s B (A x); u [M, R] keeps A x (bf16) for backward. The LoRA term is
  // written first and the tied GEMM adds onto it (CudaBackend's order).
  void project(const Act* x, const Act* W, const Act* bias, const Act* A, const Act* B, Act* u,
               Act* y, int64_t M, int64_t in, int64_t out, int64_t R, float scale) const;
  void project_backward(const Act* x, const Act* W, const Act* A, const Act* B, const Act* u,
                        const Act* dy, Act* dx, float* dW, float* dbias, float* dA, float* dB,
                        Act* du, int64_t M, int64_t in, int64_t out, int64_t R, float scale) const;

  void norm_forward(bool layer_norm, const Act* x, const Act* w, const Act* bias, Act* y,
                    float* mean, float* rstd, int64_t M, int64_t D, float eps,
                    bool unit_offset) const;
  void norm_backward(bool layer_norm, const Act* x, const Act* w, const float* mean,
                     const float* rstd, const Act* dy, Act* dx, float* dw, float* dbias, int64_t M,
                     int64_t D, bool unit_offset) const;

  // pos: [N, T] token positions (host); null: 0..T-1. local: the table of
  // BackendPlan::rope_local_theta (Gemma 3's sliding layers).
  void rope_forward(Act* x, int64_t N, int64_t T, int64_t H, int64_t Dh,
                    const int32_t* pos = nullptr, bool local = false) const;
  void rope_backward(Act* dx, int64_t N, int64_t T, int64_t H, int64_t Dh,
                     const int32_t* pos = nullptr, bool local = false) const;
  void scale(Act* x, float factor, int64_t n) const;
  // mask.doc_start in host memory.
  void attention_forward(const Act* q, const Act* k, const Act* v, Act* out, float* lse,
                         const ops::AttentionShape& shape, const ops::AttentionMask& mask = {});
  void attention_backward(const Act* q, const Act* k, const Act* v, const Act* out,
                          const float* lse, const Act* dout, Act* dq, Act* dk, Act* dv,
                          const ops::AttentionShape& shape, const ops::AttentionMask& mask = {});

  void add(const Act* a, const Act* b, Act* out, int64_t n) const;
  void swiglu_forward(const Act* gate, const Act* up, Act* out, int64_t n) const;
  void swiglu_backward(const Act* gate, const Act* up, const Act* dout, Act* dgate, Act* dup,
                       int64_t n) const;
  void geglu_forward(const Act* gate, const Act* up, Act* out, int64_t n) const;
  void geglu_backward(const Act* gate, const Act* up, const Act* dout, Act* dgate, Act* dup,
                      int64_t n) const;
  void gelu_forward(const Act* x, Act* out, int64_t n, bool tanh_approx) const;
  void gelu_backward(const Act* x, const Act* dout, Act* dx, int64_t n, bool tanh_approx) const;

  void embedding_forward(const int32_t* tokens, const Act* table, Act* out, int64_t M, int64_t D,
                         int64_t V, float scale) const;
  void embedding_backward(const int32_t* tokens, const Act* dout, float* dtable, int64_t M,
                          int64_t D, int64_t V, float scale) const;

  // The plain CE's workspace: a chunk's fp32 logits, then its bf16 dlogits (the CUDA layout).
  size_t lm_head_workspace_bytes(int64_t V, int64_t chunk) const {
    return logits_bytes(V, chunk) + sizeof(bf16) * static_cast<size_t>(V * chunk);
  }
  static size_t logits_bytes(int64_t V, int64_t chunk) {
    return (sizeof(float) * static_cast<size_t>(V * chunk) + kAlign - 1) / kAlign * kAlign;
  }
  // The exit loss's (ops/cpu_bf16/exit_loss.cpp): a chunk's fp32 logits and bf16 dlogits, the
  // teacher's and the final exit's fp32 log-probabilities where used, the adapters' bf16 rows.
  size_t exit_loss_workspace_bytes(int64_t V, int64_t chunk, int64_t exits, bool teacher,
                                   bool self_distill, int64_t head_lora_rank) const;
  ops::CrossEntropyResult lm_head_cross_entropy(const Act* h, const Act* W, const int32_t* targets,
                                                Act* dh, float* dW, int64_t M, int64_t D, int64_t V,
                                                int32_t ignore_index, float weight, void* workspace,
                                                size_t bytes, int64_t chunk, double softcap = 0);
  ops::ExitLossResult exit_loss(const HeadLossArgs<Act>& a);
  // z = cap tanh(z / cap) over n fp32 logits in 16 lanes (ops/logit_softcap.h); cap <= 0: nothing.
  void softcap_logits(float* z, int64_t n, double cap) const;

  // out [rows, V] (host fp32) = h W^T.
  void logits(const Act* h, const Act* W, int64_t rows, int64_t D, int64_t V, float* out) const {
    head_logits(h, W, rows, D, V, out);
  }

  // ---- the serving engine's row ops (ops/cpu_bf16/backend_rows.cpp); host memory throughout.
  template <typename T>
  void copy(T* dst, const T* src, int64_t n) const {
    std::memcpy(static_cast<void*>(dst), src, static_cast<size_t>(n) * sizeof(T));
  }
  template <typename T>
  void download(T* host, const T* src, int64_t n) const {
    std::memcpy(static_cast<void*>(host), src, static_cast<size_t>(n) * sizeof(T));
  }
  void synchronize() const {}
  void rope_rows(Act* x, const int32_t* pos, int64_t n, int64_t H, int64_t Dh,
                 bool local = false) const;
  void kv_store(const Act* k, const Act* v, Act* k_cache, Act* v_cache, const int32_t* slot,
                const int32_t* pos, int64_t n, int64_t max_seq, int64_t kv_dim,
                const int32_t* cache, int64_t cache_stride) const;
  void kv_attention(const Act* q, const Act* k_cache, const Act* v_cache, const int32_t* slot,
                    const int32_t* pos, Act* out, int64_t n, int64_t H, int64_t Hkv, int64_t Dh,
                    int64_t max_seq, const int32_t* cache, int64_t cache_stride,
                    const ops::AttentionMask& mask = {});
  void gather_rows(const Act* src, const int32_t* index, Act* dst, int64_t n, int64_t D) const;
  void scatter_rows(const Act* src, const int32_t* index, Act* dst, int64_t n, int64_t D) const;
  // y += s B (A x) for M rows of one adapter (u [M, R] scratch).
  void lora_add(const Act* x, const Act* A, const Act* B, Act* u, Act* y, int64_t M, int64_t in,
                int64_t out, int64_t R, float scale) const;
  // Each group's rows get the adapter adapters[stage * stride]; u: fp32 scratch [rows, max rank]
  // (used here as bf16 storage for u = x A^T, which it holds twice over).
  void lora_rows(const Act* x, int64_t in, Act* y, int64_t out, const RowAdapter<Act>* adapters,
                 int64_t stride, const RowGroup* groups, int64_t n_groups, int64_t B, float* u,
                 int64_t max_rank) const;
  void head_logits(const Act* h, const Act* W, int64_t rows, int64_t D, int64_t V,
                   float* out) const {
    ops::cpu_bf16::gemm(false, true, rows, V, D, 1.f, h, D, W, D, 0.f, out, V);
  }
  void head_adapter(const Act* h, const Act* A, const Act* B, Act* u, int64_t rows, int64_t D,
                    int64_t V, int64_t R, float* out) const {
    ops::cpu_bf16::gemm(false, true, rows, R, D, 1.f, h, D, A, D, 0.f, u, R);
    ops::cpu_bf16::gemm(false, true, rows, V, R, 1.f, u, R, B, R, 1.f, out, V);
  }
  void head_results(const float* logits, int64_t n, int64_t V, int32_t* /*argmax_scratch*/,
                    float* /*max_prob_scratch*/, int32_t* argmax, double* max_prob) const;

 private:
  int threads_;
  int64_t rope_half_ = 0, rope_positions_ = 0;
  // [positions, rot_dim / 2], ops::RopeTable rounded; [1]: the local table (empty unless
  // BackendPlan::rope_local_theta is set).
  std::vector<float> rope_cos_[2], rope_sin_[2];
  const float* rope_cos(bool local) const;
  const float* rope_sin(bool local) const { return rope_sin_[local ? 1 : 0].data(); }
  std::vector<float> attn_ws_;  // per-thread fp32 panels, sized for the largest call
};

}  // namespace rrt
