// The CUDA runtime and cuBLASLt as the kernel simulation (tests/gpu/simulate.sh) needs them on a
// machine without a GPU: "device" memory is host memory that ends at a guard page
// (sim_memory.cpp), copies and memsets are memcpy / memset, one "GPU" is visible, and the GEMMs
// (and the LoRA products built on them) are computed on the host in double from the bf16 inputs,
// rounded where cuBLASLt rounds. rrt's own kernels are not here: simulate.sh runs their
// unmodified source. Not part of the CMake build: it replaces libcudart and cuBLASLt.
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/error.h"
#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/cross_entropy.h"
#include "ops/cuda/attention.h"
#include "ops/cuda/cross_entropy.h"
#include "ops/cuda/elementwise.h"
#include "ops/cuda/exit_loss.h"
#include "ops/cuda/gemm.h"
#include "ops/cuda/kv_ops.h"
#include "ops/cuda/lora.h"
#include "ops/cuda/lora_rows.h"
#include "ops/cuda/vector_ops.h"
#include "ops/embedding.h"
#include "ops/exit_loss.h"
#include "ops/norm.h"

namespace rrt_sim {
void* device_alloc(size_t bytes);
void device_free(void* p);
}  // namespace rrt_sim

extern "C" {
cudaError_t cudaMalloc(void** p, size_t n) {
  *p = rrt_sim::device_alloc(n);
  return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaFree(void* p) {
  rrt_sim::device_free(p);
  return cudaSuccess;
}
cudaError_t cudaMemcpy(void* d, const void* s, size_t n, cudaMemcpyKind) {
  std::memcpy(d, s, n);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t n, cudaMemcpyKind, cudaStream_t) {
  std::memcpy(d, s, n);
  return cudaSuccess;
}
cudaError_t cudaMemset(void* d, int v, size_t n) {
  std::memset(d, v, n);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* d, int v, size_t n, cudaStream_t) {
  std::memset(d, v, n);
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
cudaError_t cudaGetLastError() { return cudaSuccess; }
const char* cudaGetErrorString(cudaError_t) { return "emulated"; }
cudaError_t cudaMemGetInfo(size_t* f, size_t* t) {
  *f = 0;
  *t = 0;
  return cudaSuccess;
}
}

namespace rrt {
bool cuda_compiled() { return true; }
int cuda_device_count() { return 1; }
std::string cuda_device_name(int) { return "host emulation"; }
// An emulated 16 GiB device, all of it free: the trainer's GPU memory check runs against it
// (tests/gpu/test_trainer_gpu.cpp refuses a plan far beyond any GPU) while every real test fits.
DeviceMemoryInfo cuda_memory_info() { return {0, int64_t{16} << 30, int64_t{16} << 30}; }
}  // namespace rrt

namespace rrt::ops::cuda {
// ---- gemm ----
struct GemmContext::Impl {};
GemmContext::GemmContext(cudaStream_t, size_t) : impl_(std::make_unique<Impl>()) {}
GemmContext::~GemmContext() = default;
cudaStream_t GemmContext::stream() const { return nullptr; }  // the simulated ops ask
namespace {
// C[M,N] = alpha op(A) op(B) + beta C in double
template <typename Out>
void gemm_host(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A,
               const bf16* B, float beta, Out* C, const bf16* bias) {
  RRT_CHECK(C != nullptr, "emu gemm", "null C");
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) {
        const float a = __bfloat162float(ta ? A[k * M + i] : A[i * K + k]);
        const float b = __bfloat162float(tb ? B[j * K + k] : B[k * N + j]);
        s += double(a) * b;
      }
      double c = alpha * s;
      if (beta != 0.f) {
        if constexpr (std::is_same_v<Out, float>)
          c += beta * double(C[i * N + j]);
        else
          c += beta * double(__bfloat162float(C[i * N + j]));
      }
      if (bias) c += __bfloat162float(bias[j]);
      if constexpr (std::is_same_v<Out, float>)
        C[i * N + j] = float(c);
      else
        C[i * N + j] = __float2bfloat16(float(c));
    }
}
}  // namespace
void gemm(GemmContext&, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
          const bf16* A, const bf16* B, float beta, bf16* C, const bf16* bias) {
  gemm_host(ta, tb, M, N, K, alpha, A, B, beta, C, bias);
}
void gemm(GemmContext&, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
          const bf16* A, const bf16* B, float beta, float* C) {
  gemm_host<float>(ta, tb, M, N, K, alpha, A, B, beta, C, nullptr);
}
void linear_forward(GemmContext& c, const bf16* x, const bf16* W, const bf16* bias, bf16* y,
                    int64_t M, int64_t in, int64_t out, bool accumulate) {
  gemm(c, false, true, M, out, in, 1.f, x, W, accumulate ? 1.f : 0.f, y, bias);
}
void linear_backward(GemmContext& c, const bf16* x, const bf16* W, const bf16* dy, bf16* dx,
                     float* dW, float* dbias, int64_t M, int64_t in, int64_t out) {
  if (dx) gemm(c, false, false, M, in, out, 1.f, dy, W, 1.f, dx);
  if (dW) gemm(c, true, false, out, in, M, 1.f, dy, x, 1.f, dW);
  if (dbias)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < out; ++j) dbias[j] += __bfloat162float(dy[i * out + j]);
}
void lora_forward(GemmContext& ctx, const bf16* x, const bf16* A, const bf16* B, bf16* u, bf16* y,
                  int64_t M, int64_t in, int64_t out, int64_t R, float scale) {
  if (R == 0) return;
  gemm(ctx, false, true, M, R, in, 1.f, x, A, 0.f, u);
  gemm(ctx, false, true, M, out, R, scale, u, B, 1.f, y);
}
void lora_forward_overwrite(GemmContext& ctx, const bf16* x, const bf16* A, const bf16* B, bf16* u,
                            bf16* y, int64_t M, int64_t in, int64_t out, int64_t R, float scale) {
  if (R == 0) return;
  gemm(ctx, false, true, M, R, in, 1.f, x, A, 0.f, u);
  gemm(ctx, false, true, M, out, R, scale, u, B, 0.f, y);
}
void lora_backward(GemmContext& ctx, const bf16* x, const bf16* A, const bf16* B, const bf16* u,
                   const bf16* dy, bf16* dx, float* dA, float* dB, bf16* du, int64_t M, int64_t in,
                   int64_t out, int64_t R, float scale) {
  if (R == 0) return;
  gemm(ctx, false, false, M, R, out, scale, dy, B, 0.f, du);
  if (dB) gemm(ctx, true, false, out, R, M, scale, dy, u, 1.f, dB);
  if (dA) gemm(ctx, true, false, R, in, M, 1.f, du, x, 1.f, dA);
  if (dx) gemm(ctx, false, false, M, in, R, 1.f, du, A, 1.f, dx);
}

}  // namespace rrt::ops::cuda
