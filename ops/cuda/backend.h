// The CUDA bf16 backend of the one model code (ops/backend.h): bf16 activations and compute
// weights, fp32 weight gradients (the tied block's accumulate over loops in fp32, cuBLASLt
// beta = 1), fp32 norm statistics and attention lse; cuBLASLt GEMMs, cuDNN attention (rrt's own
// kernels where cuDNN cannot serve a shape) and rrt's kernels, all on one stream. CUDA builds
// only; header-only, so the host emulation and the kernel simulation compile it as they compile
// the model.
#pragma once

#include <cuda_runtime.h>

#include <memory>

#include "core/cuda/cuda_check.h"
#include "ops/backend.h"
#include "ops/cuda/attention.h"
#include "ops/cuda/cross_entropy.h"
#include "ops/cuda/elementwise.h"
#include "ops/cuda/exit_loss.h"
#include "ops/cuda/gemm.h"
#include "ops/cuda/lora.h"

namespace rrt {

class CudaBackend {
 public:
  using Act = ops::cuda::bf16;
  using Grad = float;
  using Stat = float;
  static constexpr size_t kAlign = 256;
  static constexpr const char* kName = "cuda";

  // The legacy default stream: host copies order with the kernels.
  CudaBackend() : gemm_(nullptr), attention_(nullptr) {}

  void prepare(const BackendPlan& plan) {
    // Shapes no attention path can run fail here, before any memory is taken.
    ops::cuda::check_attention_shape(plan.max_attention, plan.backward);
    rope_ = std::make_unique<ops::cuda::DeviceRopeTable>(
        ops::RopeTable(plan.max_attention.T, plan.rot_dim, plan.rope_theta));
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
                     const float* rstd, const Act* dy, Act* dx, float* dw, float* dbias,
                     int64_t M, int64_t D, bool unit_offset) const {
    if (layer_norm)
      ops::cuda::layernorm_backward(x, w, mean, rstd, dy, dx, dw, dbias, M, D, stream_);
    else
      ops::cuda::rmsnorm_backward(x, w, rstd, dy, dx, dw, M, D, unit_offset, stream_);
  }

  void rope_forward(Act* x, int64_t N, int64_t T, int64_t H, int64_t Dh) const {
    ops::cuda::rope_forward(x, *rope_, N, T, H, Dh, stream_);
  }
  void rope_backward(Act* dx, int64_t N, int64_t T, int64_t H, int64_t Dh) const {
    ops::cuda::rope_backward(dx, *rope_, N, T, H, Dh, stream_);
  }
  void attention_forward(const Act* q, const Act* k, const Act* v, Act* out, float* lse,
                         const ops::AttentionShape& shape) {
    ops::cuda::attention_forward(attention_, q, k, v, out, lse, shape);
  }
  void attention_backward(const Act* q, const Act* k, const Act* v, const Act* out,
                          const float* lse, const Act* dout, Act* dq, Act* dk, Act* dv,
                          const ops::AttentionShape& shape) {
    ops::cuda::attention_backward(attention_, q, k, v, out, lse, dout, dq, dk, dv, shape);
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
  ops::CrossEntropyResult lm_head_cross_entropy(const Act* h, const Act* W,
                                                const int32_t* targets, Act* dh, float* dW,
                                                int64_t M, int64_t D, int64_t V,
                                                int32_t ignore_index, float weight,
                                                void* workspace, size_t bytes, int64_t chunk) {
    return ops::cuda::lm_head_cross_entropy(gemm_, h, W, targets, dh, dW, M, D, V, ignore_index,
                                            weight, workspace, bytes, chunk);
  }
  ops::ExitLossResult exit_loss(const HeadLossArgs<Act>& in) {
    ops::cuda::ExitLossArgs a;
    a.M = in.M;
    a.D = in.D;
    a.V = in.V;
    a.exits = in.exits;
    a.h = in.h;
    a.exit_weights = in.exit_weights;
    a.W = in.W;
    a.targets = in.targets;
    a.ignore_index = in.ignore_index;
    a.head_lora_rank = in.head_lora_rank;
    a.lora_A = in.lora_A;
    a.lora_B = in.lora_B;
    a.teacher_h = in.teacher_h;
    a.teacher_W = in.teacher_W;
    a.teacher_D = in.teacher_D;
    a.divergence = in.divergence;
    a.temperature = in.temperature;
    a.alpha = in.alpha;
    a.self_distill = in.self_distill;
    a.dh = in.dh;
    a.dW = in.dW;
    a.dA = in.dA;
    a.dB = in.dB;
    a.weight = in.weight;
    a.workspace = in.workspace;
    a.workspace_bytes = in.workspace_bytes;
    a.chunk = in.chunk;
    a.exit_ce = in.exit_ce;
    a.exit_kd = in.exit_kd;
    a.exit_sd = in.exit_sd;
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

 private:
  cudaStream_t stream_ = nullptr;
  ops::cuda::GemmContext gemm_;
  ops::cuda::AttentionContext attention_;
  std::unique_ptr<ops::cuda::DeviceRopeTable> rope_;
};

}  // namespace rrt
