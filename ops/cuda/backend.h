// The CUDA bf16 backend of the one model code (ops/backend.h): bf16 activations and compute
// weights, fp32 weight gradients (the tied block's accumulate over loops in fp32, cuBLASLt
// beta = 1), fp32 norm statistics and attention lse; cuBLASLt GEMMs, cuDNN attention (rrt's own
// kernels where cuDNN cannot serve a shape) and rrt's kernels, all on one stream. CUDA builds
// only; header-only, so the host emulation and the kernel simulation compile it as they compile
// the model.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "core/cuda/cuda_check.h"
#include "ops/backend.h"
#include "ops/cuda/attention.h"
#include "ops/cuda/cross_entropy.h"
#include "ops/cuda/elementwise.h"
#include "ops/cuda/exit_loss.h"
#include "ops/cuda/gemm.h"
#include "ops/cuda/kv_ops.h"
#include "ops/cuda/lora.h"
#include "ops/cuda/lora_rows.h"
#include "ops/cuda/vector_ops.h"

namespace rrt {

class CudaBackend {
 public:
  using Act = ops::cuda::bf16;
  using Grad = float;
  using Stat = float;
  static constexpr size_t kAlign = 256;
  static constexpr const char* kName = "cuda";

  // The legacy default stream: host copies order with the kernels. (The CPU backend's thread
  // count has no meaning here.)
  explicit CudaBackend(int /*threads*/ = 0) : gemm_(nullptr), attention_(nullptr) {}

  void prepare(const BackendPlan& plan) {
    // Shapes no attention path can run fail here, before any memory is taken.
    ops::cuda::check_attention_shape(plan.max_attention, plan.backward);
    rope_ = std::make_unique<ops::cuda::DeviceRopeTable>(
        ops::RopeTable(plan.max_attention.T, plan.rot_dim, plan.rope_theta, plan.rope_scaling));
    rope_local_.reset();
    if (plan.rope_local_theta > 0)
      rope_local_ = std::make_unique<ops::cuda::DeviceRopeTable>(
          ops::RopeTable(plan.max_attention.T, plan.rot_dim, plan.rope_local_theta));
  }
  ops::cuda::GemmContext& gemm() { return gemm_; }
  ops::cuda::AttentionContext& attention() { return attention_; }
  cudaStream_t stream() const { return stream_; }

  BackendBlock allocate(size_t bytes, const char* what) const {
    void* p = cuda_malloc_or_fail(
        bytes, "DeviceModel", what,
        "Lower train.micro_batch or train.seq_len, or set train.recompute: all");
    RRT_CUDA_CHECK(cudaMemset(p, 0, bytes));
    return BackendBlock(p, [](void* q) { cudaFree(q); });
  }
  template <typename T>
  void zero(T* x, int64_t n) const {
    RRT_CUDA_CHECK(cudaMemsetAsync(x, 0, static_cast<size_t>(n) * sizeof(T), stream_));
  }
  template <typename T>
  void upload(T* dst, const T* host, int64_t n) const {
    RRT_CUDA_CHECK(cudaMemcpyAsync(dst, host, static_cast<size_t>(n) * sizeof(T),
                                   cudaMemcpyHostToDevice, stream_));
  }

  // dst [n] = bf16(host [n]) for weights that keep no fp32 copy on the device: the values pass
  // through an fp32 staging block, a slice of at most 16M floats at a time (synchronous).
  void upload_bf16(Act* dst, const float* host, int64_t n, const char* what) const {
    const int64_t slice = std::min<int64_t>(n, int64_t{1} << 24);
    const BackendBlock staging = allocate(sizeof(float) * static_cast<size_t>(slice), what);
    for (int64_t at = 0; at < n; at += slice) {
      const int64_t count = std::min(slice, n - at);
      RRT_CUDA_CHECK(cudaMemcpy(staging.get(), host + at,
                                sizeof(float) * static_cast<size_t>(count),
                                cudaMemcpyHostToDevice));
      ops::cuda::to_bf16(static_cast<const float*>(staging.get()), dst + at, count, stream_);
      RRT_CUDA_CHECK(cudaStreamSynchronize(stream_));
    }
  }

  // The LoRA term is written first and the tied GEMM adds onto it (beta = 1): that saves a
  // read-modify-write pass over y per adapted projection (the same sum as the CPU's, rounded in
  // another order).
  void project(const Act* x, const Act* W, const Act* bias, const Act* A, const Act* B, Act* u,
               Act* y, int64_t M, int64_t in, int64_t out, int64_t R, float scale) {
    ops::cuda::lora_forward_overwrite(gemm_, x, A, B, u, y, M, in, out, R, scale);
    ops::cuda::linear_forward(gemm_, x, W, bias, y, M, in, out, /*accumulate=*/R > 0);
  }
  void project_backward(const Act* x, const Act* W, const Act* A, const Act* B, const Act* u,
                        const Act* dy, Act* dx, float* dW, float* dbias, float* dA, float* dB,
                        Act* du, int64_t M, int64_t in, int64_t out, int64_t R, float scale) {
    ops::cuda::linear_backward(gemm_, x, W, dy, dx, dW, dbias, M, in, out);
    ops::cuda::lora_backward(gemm_, x, A, B, u, dy, dx, dA, dB, du, M, in, out, R, scale);
  }

  void norm_forward(bool layer_norm, const Act* x, const Act* w, const Act* bias, Act* y,
                    float* mean, float* rstd, int64_t M, int64_t D, float eps,
                    bool unit_offset) const {
    if (layer_norm)
      ops::cuda::layernorm_forward(x, w, bias, y, mean, rstd, M, D, eps, stream_);
    else
      ops::cuda::rmsnorm_forward(x, w, y, rstd, M, D, eps, unit_offset, stream_);
  }
  void norm_backward(bool layer_norm, const Act* x, const Act* w, const float* mean,
                     const float* rstd, const Act* dy, Act* dx, float* dw, float* dbias, int64_t M,
                     int64_t D, bool unit_offset) const {
    if (layer_norm)
      ops::cuda::layernorm_backward(x, w, mean, rstd, dy, dx, dw, dbias, M, D, stream_);
    else
      ops::cuda::rmsnorm_backward(x, w, rstd, dy, dx, dw, M, D, unit_offset, stream_);
  }

  // pos: [N, T] token positions on the device; null: 0..T-1. local: the table of
  // BackendPlan::rope_local_theta (Gemma 3's sliding layers).
  void rope_forward(Act* x, int64_t N, int64_t T, int64_t H, int64_t Dh,
                    const int32_t* pos = nullptr, bool local = false) const {
    ops::cuda::rope_forward(x, rope(local), N, T, H, Dh, stream_, pos);
  }
  void rope_backward(Act* dx, int64_t N, int64_t T, int64_t H, int64_t Dh,
                     const int32_t* pos = nullptr, bool local = false) const {
    ops::cuda::rope_backward(dx, rope(local), N, T, H, Dh, stream_, pos);
  }
  void scale(Act* x, float factor, int64_t n) const { ops::cuda::scale(x, factor, n, stream_); }
  // mask.doc_start on the device.
  void attention_forward(const Act* q, const Act* k, const Act* v, Act* out, float* lse,
                         const ops::AttentionShape& shape, const ops::AttentionMask& mask = {}) {
    ops::cuda::attention_forward(attention_, q, k, v, out, lse, shape, mask);
  }
  void attention_backward(const Act* q, const Act* k, const Act* v, const Act* out,
                          const float* lse, const Act* dout, Act* dq, Act* dk, Act* dv,
                          const ops::AttentionShape& shape, const ops::AttentionMask& mask = {}) {
    ops::cuda::attention_backward(attention_, q, k, v, out, lse, dout, dq, dk, dv, shape, mask);
  }

  void add(const Act* a, const Act* b, Act* out, int64_t n) const {
    ops::cuda::add_forward(a, b, out, n, stream_);
  }
  void swiglu_forward(const Act* gate, const Act* up, Act* out, int64_t n) const {
    ops::cuda::swiglu_forward(gate, up, out, n, stream_);
  }
  void swiglu_backward(const Act* gate, const Act* up, const Act* dout, Act* dgate, Act* dup,
                       int64_t n) const {
    ops::cuda::swiglu_backward(gate, up, dout, dgate, dup, n, stream_);
  }
  void geglu_forward(const Act* gate, const Act* up, Act* out, int64_t n) const {
    ops::cuda::geglu_forward(gate, up, out, n, stream_);
  }
  void geglu_backward(const Act* gate, const Act* up, const Act* dout, Act* dgate, Act* dup,
                      int64_t n) const {
    ops::cuda::geglu_backward(gate, up, dout, dgate, dup, n, stream_);
  }
  void gelu_forward(const Act* x, Act* out, int64_t n, bool tanh_approx) const {
    ops::cuda::gelu_forward(x, out, n, tanh_approx, stream_);
  }
  void gelu_backward(const Act* x, const Act* dout, Act* dx, int64_t n, bool tanh_approx) const {
    ops::cuda::gelu_backward(x, dout, dx, n, tanh_approx, stream_);
  }

  void embedding_forward(const int32_t* tokens, const Act* table, Act* out, int64_t M, int64_t D,
                         int64_t V, float scale) const {
    ops::cuda::embedding_forward(tokens, table, out, M, D, V, scale, stream_);
  }
  void embedding_backward(const int32_t* tokens, const Act* dout, float* dtable, int64_t M,
                          int64_t D, int64_t V, float scale) const {
    ops::cuda::embedding_backward(tokens, dout, dtable, M, D, V, scale, stream_);
  }

  size_t lm_head_workspace_bytes(int64_t V, int64_t chunk) const {
    return ops::cuda::lm_head_workspace_bytes(V, chunk);
  }
  size_t exit_loss_workspace_bytes(int64_t V, int64_t chunk, int64_t exits, bool teacher,
                                   bool self_distill, int64_t head_lora_rank) const {
    return ops::cuda::exit_loss_workspace_bytes(V, chunk, exits, teacher, self_distill,
                                                head_lora_rank);
  }
  ops::CrossEntropyResult lm_head_cross_entropy(const Act* h, const Act* W, const int32_t* targets,
                                                Act* dh, float* dW, int64_t M, int64_t D, int64_t V,
                                                int32_t ignore_index, float weight, void* workspace,
                                                size_t bytes, int64_t chunk, double softcap = 0) {
    return ops::cuda::lm_head_cross_entropy(gemm_, h, W, targets, dh, dW, M, D, V, ignore_index,
                                            weight, workspace, bytes, chunk, softcap);
  }
  ops::ExitLossResult exit_loss(const HeadLossArgs<Act>& in) {
    ops::cuda::ExitLossArgs a;
    copy_head_loss_fields(in, a);
    a.workspace = in.workspace;
    a.workspace_bytes = in.workspace_bytes;
    return ops::cuda::exit_loss(gemm_, a);
  }

  // out [rows, V] (host) = h W^T in fp32, through one device buffer for the call.
  void logits(const Act* h, const Act* W, int64_t rows, int64_t D, int64_t V, float* out) {
    const size_t bytes = sizeof(float) * static_cast<size_t>(rows * V);
    BackendBlock block = allocate(bytes, "logits");
    ops::cuda::gemm(gemm_, false, true, rows, V, D, 1.f, h, W, 0.f,
                    static_cast<float*>(block.get()));
    RRT_CUDA_CHECK(cudaMemcpy(out, block.get(), bytes, cudaMemcpyDeviceToHost));
  }

  // z = cap tanh(z / cap) over n fp32 logits on the device; cap <= 0: nothing.
  void softcap_logits(float* z, int64_t n, double cap) const {
    ops::cuda::softcap_logits(z, n, static_cast<float>(cap), stream_);
  }

  // ---- the serving engine's row ops; pointers are device memory unless named host.
  static constexpr bool kHostMemory = false;
  template <typename T>
  void copy(T* dst, const T* src, int64_t n) const {
    RRT_CUDA_CHECK(cudaMemcpyAsync(dst, src, static_cast<size_t>(n) * sizeof(T),
                                   cudaMemcpyDeviceToDevice, stream_));
  }
  template <typename T>
  void download(T* host, const T* src, int64_t n) const {
    RRT_CUDA_CHECK(cudaMemcpyAsync(host, src, static_cast<size_t>(n) * sizeof(T),
                                   cudaMemcpyDeviceToHost, stream_));
  }
  void synchronize() const { RRT_CUDA_CHECK(cudaStreamSynchronize(stream_)); }
  void rope_rows(Act* x, const int32_t* pos, int64_t n, int64_t H, int64_t Dh,
                 bool local = false) const {
    ops::cuda::rope_rows_forward(x, rope(local), pos, n, H, Dh, stream_);
  }
  void kv_store(const Act* k, const Act* v, Act* k_cache, Act* v_cache, const int32_t* slot,
                const int32_t* pos, int64_t n, int64_t max_seq, int64_t kv_dim,
                const int32_t* cache, int64_t cache_stride) const {
    ops::cuda::kv_store(k, v, k_cache, v_cache, slot, pos, n, max_seq, kv_dim, stream_, cache,
                        cache_stride);
  }
  void kv_attention(const Act* q, const Act* k_cache, const Act* v_cache, const int32_t* slot,
                    const int32_t* pos, Act* out, int64_t n, int64_t H, int64_t Hkv, int64_t Dh,
                    int64_t max_seq, const int32_t* cache, int64_t cache_stride,
                    const ops::AttentionMask& mask = {}) const {
    RRT_CHECK(mask.doc_start == nullptr, "CudaBackend", "kv_attention serves one document a row");
    ops::cuda::kv_attention(q, k_cache, v_cache, slot, pos, out, n, H, Hkv, Dh, max_seq, stream_,
                            cache, cache_stride, mask.window, mask.softcap);
  }
  void gather_rows(const Act* src, const int32_t* index, Act* dst, int64_t n, int64_t D) const {
    ops::cuda::gather_rows(src, index, dst, n, D, stream_);
  }
  void scatter_rows(const Act* src, const int32_t* index, Act* dst, int64_t n, int64_t D) const {
    ops::cuda::scatter_rows(src, index, dst, n, D, stream_);
  }
  // One adapter's two tensor-core GEMMs.
  void lora_add(const Act* x, const Act* A, const Act* B, Act* u, Act* y, int64_t M, int64_t in,
                int64_t out, int64_t R, float scale) {
    ops::cuda::lora_forward(gemm_, x, A, B, u, y, M, in, out, R, scale);
  }
  // Every row's own stage's adapter in two launches (ops/cuda/lora_rows.h), whatever the number
  // of groups. `adapters` is a device table; the groups' tiles are uploaded only when they change
  // (a call's block layers share them). u: fp32 scratch [rows, max rank].
  void lora_rows(const Act* x, int64_t in, Act* y, int64_t out, const RowAdapter<Act>* adapters,
                 int64_t stride, const RowGroup* groups, int64_t n_groups, int64_t B, float* u,
                 int64_t max_rank) {
    static_assert(sizeof(RowAdapter<Act>) == sizeof(ops::cuda::LoraAdapter));
    tiles_.clear();
    for (int64_t g = 0; g < n_groups; ++g)
      ops::cuda::append_lora_row_tiles(static_cast<int32_t>(groups[g].begin),
                                       static_cast<int32_t>(groups[g].end),
                                       static_cast<int32_t>(groups[g].position / B), tiles_);
    const bool same = tiles_.size() == uploaded_tiles_.size() &&
                      std::memcmp(tiles_.data(), uploaded_tiles_.data(),
                                  sizeof(ops::cuda::LoraRowTile) * tiles_.size()) == 0;
    if (!same) {
      if (tiles_.size() > tile_capacity_) {
        tile_capacity_ = tiles_.size() * 2;
        tiles_block_ = allocate(sizeof(ops::cuda::LoraRowTile) * tile_capacity_, "LoRA row tiles");
      }
      upload(static_cast<ops::cuda::LoraRowTile*>(tiles_block_.get()), tiles_.data(),
             static_cast<int64_t>(tiles_.size()));
      uploaded_tiles_ = tiles_;
    }
    ops::cuda::lora_rows_forward(x, in, y, out,
                                 reinterpret_cast<const ops::cuda::LoraAdapter*>(adapters), stride,
                                 static_cast<const ops::cuda::LoraRowTile*>(tiles_block_.get()),
                                 static_cast<int64_t>(tiles_.size()), max_rank, u, stream_);
  }
  void head_logits(const Act* h, const Act* W, int64_t rows, int64_t D, int64_t V, float* out) {
    ops::cuda::gemm(gemm_, false, true, rows, V, D, 1.0f, h, W, 0.0f, out);
  }
  void head_adapter(const Act* h, const Act* A, const Act* B, Act* u, int64_t rows, int64_t D,
                    int64_t V, int64_t R, float* out) {
    ops::cuda::gemm(gemm_, false, true, rows, R, D, 1.0f, h, A, 0.0f, u);
    ops::cuda::gemm(gemm_, false, true, rows, V, R, 1.0f, u, B, 1.0f, out);
  }
  // On the device, then the n results to the host (waits for them).
  void head_results(const float* logits, int64_t n, int64_t V, int32_t* argmax_scratch,
                    float* max_prob_scratch, int32_t* argmax, double* max_prob) {
    ops::cuda::logits_argmax_max_prob(logits, n, V, argmax_scratch, max_prob_scratch, stream_);
    download(argmax, argmax_scratch, n);
    host_max_prob_.resize(static_cast<size_t>(n));
    download(host_max_prob_.data(), max_prob_scratch, n);
    synchronize();
    for (int64_t i = 0; i < n; ++i) max_prob[i] = host_max_prob_[static_cast<size_t>(i)];
  }

 private:
  std::vector<ops::cuda::LoraRowTile> tiles_, uploaded_tiles_;
  BackendBlock tiles_block_;
  size_t tile_capacity_ = 0;
  std::vector<float> host_max_prob_;
  cudaStream_t stream_ = nullptr;
  ops::cuda::GemmContext gemm_;
  ops::cuda::AttentionContext attention_;
  std::unique_ptr<ops::cuda::DeviceRopeTable> rope_, rope_local_;  // rope_local_: Gemma 3 only
  const ops::cuda::DeviceRopeTable& rope(bool local) const {
    RRT_CHECK(local ? rope_local_ != nullptr : rope_ != nullptr, "rope",
              local ? "the local " : "the ",
              "RoPE table was not prepared (BackendPlan::rope_local_theta is 0)");
    return local ? *rope_local_ : *rope_;
  }
};

}  // namespace rrt
