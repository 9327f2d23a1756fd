// cuBLASLt GEMMs on row-major operands: bf16 A and B, fp32 accumulation (CUBLAS_COMPUTE_32F),
// output bf16 or fp32. The CUDA twin of ops/matmul.h; backward functions ADD into gradients.
//   gemm:    C = alpha op(A) op(B) + beta C     A: [M, K] (or [K, M] if trans_a),
//                                               B: [K, N] (or [N, K] if trans_b), C: [M, N]
//   linear:  y (+)= x W^T + bias                x: [M, in], W: [out, in], bias: [out], y: [M, out]
//   linear backward: dx += dy W (bf16), dW += dy^T x (fp32), dbias += sum_rows dy (fp32)
// The tied block's weight gradients are fp32 and accumulate with beta = 1 across loops.
//
// What the wrapper requires (checked; a violation throws rrt::Error naming the operand):
//   - dense row-major operands (leading dimension = row length), sizes >= 0 (0 rows: no-op);
//   - every pointer aligned to its element size (2 bytes bf16, 4 bytes fp32). Odd sizes are
//     allowed: each call tells cuBLASLt the pointers' real alignment, so it picks a kernel that
//     can read them (16-byte aligned pointers and sizes that are multiples of 8 get the fast
//     tensor-core kernels; anything else runs, more slowly);
//   - a bias for the fused epilogue must be 16-byte aligned; otherwise the bias is added by a
//     separate kernel after the product (same result).
// If cuBLASLt offers no algorithm for a shape, the call throws rrt::Error with the shape.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <memory>

namespace rrt::ops::cuda {

using bf16 = __nv_bfloat16;

// One cuBLASLt handle, its workspace and the matmul plans (descriptors, layouts and the chosen
// algorithm) cached per (transa, transb, M, N, K, output type, epilogue, alignment). Create once
// and reuse; not thread-safe (one per stream/thread). Work is enqueued on `stream`.
class GemmContext {
 public:
  // 32 MiB of workspace: what NVIDIA recommends for Hopper; Ampere needs less.
  static constexpr size_t kDefaultWorkspaceBytes = size_t(32) << 20;

  explicit GemmContext(cudaStream_t stream = nullptr,
                       size_t workspace_bytes = kDefaultWorkspaceBytes);
  ~GemmContext();
  GemmContext(const GemmContext&) = delete;
  GemmContext& operator=(const GemmContext&) = delete;

  cudaStream_t stream() const;
  void set_stream(cudaStream_t stream);
  size_t cached_plans() const;  // how many shapes have a plan (tests check the cache)

  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// C (bf16) = alpha op(A) op(B) + beta C (+ bias[N] broadcast over rows, when bias != null).
// beta = 0 never reads C (it may hold garbage or NaN).
void gemm(GemmContext& ctx, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
          float alpha, const bf16* A, const bf16* B, float beta, bf16* C,
          const bf16* bias = nullptr);
// C (fp32) = alpha op(A) op(B) + beta C: fp32 outputs (gradients of weights, logits).
void gemm(GemmContext& ctx, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
          float alpha, const bf16* A, const bf16* B, float beta, float* C);

// y = x W^T (+ bias); accumulate adds onto y instead of overwriting it.
void linear_forward(GemmContext& ctx, const bf16* x, const bf16* W, const bf16* bias, bf16* y,
                    int64_t M, int64_t in, int64_t out, bool accumulate);
// dx += dy W, dW += dy^T x, dbias += sum over rows of dy. A null gradient is skipped.
void linear_backward(GemmContext& ctx, const bf16* x, const bf16* W, const bf16* dy, bf16* dx,
                     float* dW, float* dbias, int64_t M, int64_t in, int64_t out);

// dbias[j] += sum_i dy[i, j] (fp32 accumulation, deterministic order), on ctx's stream.
void bias_grad_accumulate(GemmContext& ctx, const bf16* dy, float* dbias, int64_t M, int64_t out);

}  // namespace rrt::ops::cuda
