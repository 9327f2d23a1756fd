// Fused AdamW on the GPU; the CPU twin is ops/cpu/adamw.cpp. The step's constants are computed
// on the host in double exactly as there, then cast to fp32; one pass reads param, grad, m, v and
// writes param, m, v and the bf16 compute copy of param.
#include <cmath>

#include "core/cuda/cuda_check.h"
#include "ops/cuda/elementwise.h"
#include "ops/cuda/elementwise_util.cuh"

namespace rrt::ops::cuda {

namespace {
struct AdamWConstants {
  float shrink, step_size, inv_sqrt_bc2, b1, b2, eps;
};

__device__ __forceinline__ void adamw_one(float& p, float g, float& m, float& v,
                                          const AdamWConstants& c) {
  m = c.b1 * m + (1.f - c.b1) * g;
  v = c.b2 * v + (1.f - c.b2) * g * g;
  p = p * c.shrink - c.step_size * m / (sqrtf(v) * c.inv_sqrt_bc2 + c.eps);
}

// kVec: 4 elements per thread per step with 16-byte loads (n % 4 == 0, all pointers aligned).
template <bool kVec>
__global__ void adamw_kernel(float* param, const float* grad, float* m, float* v, bf16* param_bf16,
                             int64_t n, AdamWConstants c) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if constexpr (kVec) {
    for (int64_t q = first; q < n / 4; q += stride) {
      float4 p4 = reinterpret_cast<const float4*>(param)[q];
      const float4 g4 = reinterpret_cast<const float4*>(grad)[q];
      float4 m4 = reinterpret_cast<const float4*>(m)[q];
      float4 v4 = reinterpret_cast<const float4*>(v)[q];
      adamw_one(p4.x, g4.x, m4.x, v4.x, c);
      adamw_one(p4.y, g4.y, m4.y, v4.y, c);
      adamw_one(p4.z, g4.z, m4.z, v4.z, c);
      adamw_one(p4.w, g4.w, m4.w, v4.w, c);
      reinterpret_cast<float4*>(param)[q] = p4;
      reinterpret_cast<float4*>(m)[q] = m4;
      reinterpret_cast<float4*>(v)[q] = v4;
      if (param_bf16 != nullptr) {
        __nv_bfloat162 pairs[2] = {__floats2bfloat162_rn(p4.x, p4.y),
                                   __floats2bfloat162_rn(p4.z, p4.w)};
        reinterpret_cast<uint2*>(param_bf16)[q] = *reinterpret_cast<const uint2*>(pairs);
      }
    }
  } else {
    for (int64_t i = first; i < n; i += stride) {
      float p = param[i], mi = m[i], vi = v[i];
      adamw_one(p, grad[i], mi, vi, c);
      param[i] = p;
      m[i] = mi;
      v[i] = vi;
      if (param_bf16 != nullptr) param_bf16[i] = __float2bfloat16_rn(p);
    }
  }
}
}  // namespace

void adamw_step(float* param, const float* grad, float* m, float* v, bf16* param_bf16, int64_t n,
                const AdamWHyper& hp, bool decay, int64_t step, cudaStream_t stream) {
  RRT_CHECK(step >= 1, "adamw", "step counts from 1, got ", step);
  RRT_CHECK(n >= 0, "adamw", "bad size ", n);
  if (n == 0) return;
  const double bc1 = 1.0 - std::pow(hp.beta1, static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(hp.beta2, static_cast<double>(step));
  AdamWConstants c{};
  c.shrink = static_cast<float>(1.0 - hp.lr * (decay ? hp.weight_decay : 0.0));
  c.step_size = static_cast<float>(hp.lr / bc1);
  c.inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
  c.b1 = static_cast<float>(hp.beta1);
  c.b2 = static_cast<float>(hp.beta2);
  c.eps = static_cast<float>(hp.eps);
  // The bf16 copy is written 4 at a time (8 bytes): it needs 8-byte alignment.
  const bool vec = n % 4 == 0 && detail::aligned16(param) && detail::aligned16(grad) &&
                   detail::aligned16(m) && detail::aligned16(v) &&
                   reinterpret_cast<uintptr_t>(param_bf16) % 8 == 0;
  constexpr int kThreads = 256;
  if (vec)
    adamw_kernel<true><<<detail::grid_for(n / 4, kThreads), kThreads, 0, stream>>>(
        param, grad, m, v, param_bf16, n, c);
  else
    adamw_kernel<false><<<detail::grid_for(n, kThreads), kThreads, 0, stream>>>(param, grad, m, v,
                                                                                param_bf16, n, c);
  RRT_CUDA_CHECK_LAUNCH();
}

}  // namespace rrt::ops::cuda
