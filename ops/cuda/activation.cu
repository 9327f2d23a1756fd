// Element-wise activations on the GPU; the CPU twin is ops/cpu/activation.cpp (same formulas).
// Each thread handles 8 consecutive elements per step of a grid-stride loop: one 16-byte load
// per operand where n % 8 == 0 and every pointer is 16-byte aligned, scalar loads otherwise.
#include <initializer_list>

#include "core/cuda/cuda_check.h"
#include "ops/cuda/elementwise.h"
#include "ops/cuda/elementwise_util.cuh"

namespace rrt::ops::cuda {

namespace {
using detail::load8;
using detail::store8;

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluCubic = 0.044715f;
constexpr float kSqrtHalf = 0.7071067811865476f;
constexpr float kInvSqrt2Pi = 0.3989422804014327f;

__device__ __forceinline__ float sigmoid(float x) { return 1.f / (1.f + expf(-x)); }
__device__ __forceinline__ float gelu_tanh(float x) {
  const float u = kSqrt2OverPi * (x + kGeluCubic * x * x * x);
  return 0.5f * x * (1.f + tanhf(u));
}
__device__ __forceinline__ float gelu_tanh_grad(float x) {
  const float u = kSqrt2OverPi * (x + kGeluCubic * x * x * x);
  const float t = tanhf(u);
  const float du = kSqrt2OverPi * (1.f + 3.f * kGeluCubic * x * x);
  return 0.5f * (1.f + t) + 0.5f * x * (1.f - t * t) * du;
}
__device__ __forceinline__ float gelu_erf(float x) {
  return 0.5f * x * (1.f + erff(x * kSqrtHalf));
}
__device__ __forceinline__ float gelu_erf_grad(float x) {
  const float cdf = 0.5f * (1.f + erff(x * kSqrtHalf));
  const float pdf = expf(-0.5f * x * x) * kInvSqrt2Pi;
  return cdf + x * pdf;
}

constexpr int kThreads = 256;

#define RRT_GRID_STRIDE_8(base, n)                                                       \
  for (int64_t base = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * 8; \
       base < (n); base += static_cast<int64_t>(gridDim.x) * blockDim.x * 8)

// Gated units: out = act(gate) * up. kind 0: swiglu (silu), 1: geglu (gelu tanh).
template <bool kVec, int kKind>
__global__ void glu_forward_kernel(const bf16* gate, const bf16* up, bf16* out, int64_t n) {
  RRT_GRID_STRIDE_8(base, n) {
    float g[8], u[8], o[8];
    load8<kVec>(gate, base, n, g);
    load8<kVec>(up, base, n, u);
#pragma unroll
    for (int k = 0; k < 8; ++k) o[k] = (kKind == 0 ? g[k] * sigmoid(g[k]) : gelu_tanh(g[k])) * u[k];
    store8<kVec>(out, base, n, o);
  }
}

// dgate += dout * up * act'(gate),  dup += dout * act(gate)
template <bool kVec, int kKind>
__global__ void glu_backward_kernel(const bf16* gate, const bf16* up, const bf16* dout, bf16* dgate,
                                    bf16* dup, int64_t n) {
  RRT_GRID_STRIDE_8(base, n) {
    float g[8], u[8], d[8], act[8], grad[8];
    load8<kVec>(gate, base, n, g);
    load8<kVec>(up, base, n, u);
    load8<kVec>(dout, base, n, d);
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      if (kKind == 0) {
        const float sg = sigmoid(g[k]);
        act[k] = g[k] * sg;
        grad[k] = sg * (1.f + g[k] * (1.f - sg));
      } else {
        act[k] = gelu_tanh(g[k]);
        grad[k] = gelu_tanh_grad(g[k]);
      }
    }
    if (dgate != nullptr) {
      float acc[8];
      load8<kVec>(dgate, base, n, acc);
#pragma unroll
      for (int k = 0; k < 8; ++k) acc[k] += d[k] * u[k] * grad[k];
      store8<kVec>(dgate, base, n, acc);
    }
    if (dup != nullptr) {
      float acc[8];
      load8<kVec>(dup, base, n, acc);
#pragma unroll
      for (int k = 0; k < 8; ++k) acc[k] += d[k] * act[k];
      store8<kVec>(dup, base, n, acc);
    }
  }
}

template <bool kVec, bool kTanh>
__global__ void gelu_forward_kernel(const bf16* x, bf16* out, int64_t n) {
  RRT_GRID_STRIDE_8(base, n) {
    float v[8];
    load8<kVec>(x, base, n, v);
#pragma unroll
    for (int k = 0; k < 8; ++k) v[k] = kTanh ? gelu_tanh(v[k]) : gelu_erf(v[k]);
    store8<kVec>(out, base, n, v);
  }
}

template <bool kVec, bool kTanh>
__global__ void gelu_backward_kernel(const bf16* x, const bf16* dout, bf16* dx, int64_t n) {
  RRT_GRID_STRIDE_8(base, n) {
    float v[8], d[8], acc[8];
    load8<kVec>(x, base, n, v);
    load8<kVec>(dout, base, n, d);
    load8<kVec>(dx, base, n, acc);
#pragma unroll
    for (int k = 0; k < 8; ++k)
      acc[k] += d[k] * (kTanh ? gelu_tanh_grad(v[k]) : gelu_erf_grad(v[k]));
    store8<kVec>(dx, base, n, acc);
  }
}

template <bool kVec>
__global__ void add_forward_kernel(const bf16* a, const bf16* b, bf16* out, int64_t n) {
  RRT_GRID_STRIDE_8(base, n) {
    float va[8], vb[8];
    load8<kVec>(a, base, n, va);
    load8<kVec>(b, base, n, vb);
#pragma unroll
    for (int k = 0; k < 8; ++k) va[k] += vb[k];
    store8<kVec>(out, base, n, va);
  }
}

template <bool kVec>
__global__ void scale_kernel(bf16* x, float factor, int64_t n) {
  RRT_GRID_STRIDE_8(base, n) {
    float v[8];
    load8<kVec>(x, base, n, v);
#pragma unroll
    for (int k = 0; k < 8; ++k) v[k] *= factor;
    store8<kVec>(x, base, n, v);
  }
}

template <bool kVec>
__global__ void add_backward_kernel(const bf16* dout, bf16* da, bf16* db, int64_t n) {
  RRT_GRID_STRIDE_8(base, n) {
    float d[8], acc[8];
    load8<kVec>(dout, base, n, d);
    if (da != nullptr) {
      load8<kVec>(da, base, n, acc);
#pragma unroll
      for (int k = 0; k < 8; ++k) acc[k] += d[k];
      store8<kVec>(da, base, n, acc);
    }
    if (db != nullptr) {
      load8<kVec>(db, base, n, acc);
#pragma unroll
      for (int k = 0; k < 8; ++k) acc[k] += d[k];
      store8<kVec>(db, base, n, acc);
    }
  }
}

#undef RRT_GRID_STRIDE_8

bool vectorisable(int64_t n, std::initializer_list<const void*> ptrs) {
  if (n % 8 != 0) return false;
  for (const void* p : ptrs)
    if (!detail::aligned16(p)) return false;  // null counts as aligned
  return true;
}

unsigned grid(int64_t n) { return detail::grid_for((n + 7) / 8, kThreads); }

}  // namespace

void swiglu_forward(const bf16* gate, const bf16* up, bf16* out, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  const bool vec = vectorisable(n, {gate, up, out});
  if (vec)
    glu_forward_kernel<true, 0><<<grid(n), kThreads, 0, stream>>>(gate, up, out, n);
  else
    glu_forward_kernel<false, 0><<<grid(n), kThreads, 0, stream>>>(gate, up, out, n);
  RRT_CUDA_CHECK_LAUNCH();
}

void swiglu_backward(const bf16* gate, const bf16* up, const bf16* dout, bf16* dgate, bf16* dup,
                     int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  const bool vec = vectorisable(n, {gate, up, dout, dgate, dup});
  if (vec)
    glu_backward_kernel<true, 0><<<grid(n), kThreads, 0, stream>>>(gate, up, dout, dgate, dup, n);
  else
    glu_backward_kernel<false, 0><<<grid(n), kThreads, 0, stream>>>(gate, up, dout, dgate, dup, n);
  RRT_CUDA_CHECK_LAUNCH();
}

void geglu_forward(const bf16* gate, const bf16* up, bf16* out, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  const bool vec = vectorisable(n, {gate, up, out});
  if (vec)
    glu_forward_kernel<true, 1><<<grid(n), kThreads, 0, stream>>>(gate, up, out, n);
  else
    glu_forward_kernel<false, 1><<<grid(n), kThreads, 0, stream>>>(gate, up, out, n);
  RRT_CUDA_CHECK_LAUNCH();
}

void geglu_backward(const bf16* gate, const bf16* up, const bf16* dout, bf16* dgate, bf16* dup,
                    int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  const bool vec = vectorisable(n, {gate, up, dout, dgate, dup});
  if (vec)
    glu_backward_kernel<true, 1><<<grid(n), kThreads, 0, stream>>>(gate, up, dout, dgate, dup, n);
  else
    glu_backward_kernel<false, 1><<<grid(n), kThreads, 0, stream>>>(gate, up, dout, dgate, dup, n);
  RRT_CUDA_CHECK_LAUNCH();
}

void gelu_forward(const bf16* x, bf16* out, int64_t n, bool tanh_approx, cudaStream_t stream) {
  if (n <= 0) return;
  const bool vec = vectorisable(n, {x, out});
  if (tanh_approx) {
    if (vec)
      gelu_forward_kernel<true, true><<<grid(n), kThreads, 0, stream>>>(x, out, n);
    else
      gelu_forward_kernel<false, true><<<grid(n), kThreads, 0, stream>>>(x, out, n);
  } else {
    if (vec)
      gelu_forward_kernel<true, false><<<grid(n), kThreads, 0, stream>>>(x, out, n);
    else
      gelu_forward_kernel<false, false><<<grid(n), kThreads, 0, stream>>>(x, out, n);
  }
  RRT_CUDA_CHECK_LAUNCH();
}

void gelu_backward(const bf16* x, const bf16* dout, bf16* dx, int64_t n, bool tanh_approx,
                   cudaStream_t stream) {
  if (n <= 0 || dx == nullptr) return;
  const bool vec = vectorisable(n, {x, dout, dx});
  if (tanh_approx) {
    if (vec)
      gelu_backward_kernel<true, true><<<grid(n), kThreads, 0, stream>>>(x, dout, dx, n);
    else
      gelu_backward_kernel<false, true><<<grid(n), kThreads, 0, stream>>>(x, dout, dx, n);
  } else {
    if (vec)
      gelu_backward_kernel<true, false><<<grid(n), kThreads, 0, stream>>>(x, dout, dx, n);
    else
      gelu_backward_kernel<false, false><<<grid(n), kThreads, 0, stream>>>(x, dout, dx, n);
  }
  RRT_CUDA_CHECK_LAUNCH();
}

void add_forward(const bf16* a, const bf16* b, bf16* out, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  const bool vec = vectorisable(n, {a, b, out});
  if (vec)
    add_forward_kernel<true><<<grid(n), kThreads, 0, stream>>>(a, b, out, n);
  else
    add_forward_kernel<false><<<grid(n), kThreads, 0, stream>>>(a, b, out, n);
  RRT_CUDA_CHECK_LAUNCH();
}

void scale(bf16* x, float factor, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  if (vectorisable(n, {x}))
    scale_kernel<true><<<grid(n), kThreads, 0, stream>>>(x, factor, n);
  else
    scale_kernel<false><<<grid(n), kThreads, 0, stream>>>(x, factor, n);
  RRT_CUDA_CHECK_LAUNCH();
}

void add_backward(const bf16* dout, bf16* da, bf16* db, int64_t n, cudaStream_t stream) {
  if (n <= 0 || (da == nullptr && db == nullptr)) return;
  const bool vec = vectorisable(n, {dout, da, db});
  if (vec)
    add_backward_kernel<true><<<grid(n), kThreads, 0, stream>>>(dout, da, db, n);
  else
    add_backward_kernel<false><<<grid(n), kThreads, 0, stream>>>(dout, da, db, n);
  RRT_CUDA_CHECK_LAUNCH();
}

}  // namespace rrt::ops::cuda
