// Rotary position embedding on the GPU, in place; the CPU twin is ops/cpu/rope.cpp.
#include <vector>

#include "core/cuda/cuda_check.h"
#include "ops/cuda/elementwise.h"
#include "ops/cuda/elementwise_util.cuh"

namespace rrt::ops::cuda {

DeviceRopeTable::DeviceRopeTable(const RopeTable& table)
    : max_positions_(table.max_positions), rot_dim_(table.rot_dim) {
  const size_t count = table.cos.size();
  RRT_CHECK(
      count == static_cast<size_t>(max_positions_ * (rot_dim_ / 2)) && table.sin.size() == count,
      "rope", "table of ", count, " angles does not match ", max_positions_,
      " positions x rotary dim ", rot_dim_);
  // The table is computed in double once; the kernel multiplies in fp32.
  const std::vector<float> cos_f(table.cos.begin(), table.cos.end());
  const std::vector<float> sin_f(table.sin.begin(), table.sin.end());
  const size_t bytes = sizeof(float) * (count ? count : 1);
  try {
    RRT_CUDA_CHECK(cudaMalloc(&cos_, bytes));
    RRT_CUDA_CHECK(cudaMalloc(&sin_, bytes));
    RRT_CUDA_CHECK(cudaMemcpy(cos_, cos_f.data(), sizeof(float) * count, cudaMemcpyHostToDevice));
    RRT_CUDA_CHECK(cudaMemcpy(sin_, sin_f.data(), sizeof(float) * count, cudaMemcpyHostToDevice));
  } catch (...) {  // the destructor does not run for a constructor that throws
    cudaFree(cos_);
    cudaFree(sin_);
    throw;
  }
}

DeviceRopeTable::~DeviceRopeTable() {
  cudaFree(cos_);
  cudaFree(sin_);
}

namespace {
// One thread per rotated pair (i, i + half) of one head: rows = N*T*H heads, half pairs each.
// dir = +1 rotates by the angle, -1 by minus the angle (the inverse, for the gradient).
__global__ void rope_kernel(bf16* x, const float* cos, const float* sin, int64_t heads, int64_t T,
                            int64_t H, int64_t Dh, int64_t half, float dir, const int32_t* pos) {
  const int64_t pairs = heads * half;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < pairs;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = idx % half, head = idx / half;
    const int64_t token = head / H, t = pos ? pos[token] : token % T;
    bf16* v = x + head * Dh;
    const float c = cos[t * half + i], s = dir * sin[t * half + i];
    const float a = __bfloat162float(v[i]), b = __bfloat162float(v[i + half]);
    v[i] = __float2bfloat16_rn(a * c - b * s);
    v[i + half] = __float2bfloat16_rn(b * c + a * s);
  }
}

// pos values are the caller's to keep below max_positions (the model derives them from
// document starts, which lie within the sequence).
void rotate(bf16* x, const DeviceRopeTable& table, int64_t N, int64_t T, int64_t H, int64_t Dh,
            float dir, cudaStream_t stream, const int32_t* pos) {
  RRT_CHECK(N >= 0 && T >= 0 && H >= 0 && Dh > 0, "rope", "bad shape N=", N, " T=", T, " H=", H,
            " Dh=", Dh);
  RRT_CHECK(T <= table.max_positions(), "rope", "sequence of ", T, " exceeds the table's ",
            table.max_positions(), " positions");
  RRT_CHECK(table.rot_dim() <= Dh, "rope", "rotary dim ", table.rot_dim(), " exceeds head dim ",
            Dh);
  const int64_t half = table.rot_dim() / 2, heads = N * T * H;
  if (heads == 0 || half == 0) return;
  constexpr int kThreads = 256;
  rope_kernel<<<detail::grid_for(heads * half, kThreads), kThreads, 0, stream>>>(
      x, table.cos(), table.sin(), heads, T, H, Dh, half, dir, pos);
  RRT_CUDA_CHECK_LAUNCH();
}
}  // namespace

void rope_forward(bf16* x, const DeviceRopeTable& table, int64_t N, int64_t T, int64_t H,
                  int64_t Dh, cudaStream_t stream, const int32_t* pos) {
  rotate(x, table, N, T, H, Dh, +1.f, stream, pos);
}

void rope_backward(bf16* dx, const DeviceRopeTable& table, int64_t N, int64_t T, int64_t H,
                   int64_t Dh, cudaStream_t stream, const int32_t* pos) {
  rotate(dx, table, N, T, H, Dh, -1.f, stream, pos);
}

}  // namespace rrt::ops::cuda
