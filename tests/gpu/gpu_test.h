// Helpers for the `gpu`-labelled tests: skip with a clear message where no GPU is visible, and
// move host vectors to and from device memory (bf16 or fp32) for comparisons with the CPU path.
#pragma once

#include <cuda_bf16.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "core/cuda/cuda_check.h"
#include "core/device.h"

#define RRT_REQUIRE_GPU()                                                                 \
  do {                                                                                    \
    if (::rrt::cuda_device_count() == 0)                                                  \
      GTEST_SKIP() << "no CUDA GPU visible: the gpu-labelled tests need one (they compare " \
                      "the CUDA ops with the CPU path); run tests/gpu/run.sh on a GPU host"; \
  } while (0)

namespace rrt::testing {

// Device memory freed at scope end.
template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t n) : n_(n) { RRT_CUDA_CHECK(cudaMalloc(&p_, sizeof(T) * (n ? n : 1))); }
  ~DeviceBuffer() { cudaFree(p_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  T* get() const { return p_; }
  size_t size() const { return n_; }

 private:
  T* p_ = nullptr;
  size_t n_;
};

inline std::vector<__nv_bfloat16> to_bf16(const std::vector<float>& x) {
  std::vector<__nv_bfloat16> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = __float2bfloat16(x[i]);
  return y;
}
// The values a bf16 round trip leaves: the CPU reference runs on these, so the comparison
// measures the kernel's arithmetic, not the storage rounding of its inputs.
inline std::vector<float> round_bf16(const std::vector<float>& x) {
  std::vector<float> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = __bfloat162float(__float2bfloat16(x[i]));
  return y;
}

template <typename T>
void upload(DeviceBuffer<T>& d, const std::vector<T>& h) {
  RRT_CUDA_CHECK(cudaMemcpy(d.get(), h.data(), sizeof(T) * h.size(), cudaMemcpyHostToDevice));
}
template <typename T>
std::vector<T> download(const DeviceBuffer<T>& d) {
  std::vector<T> h(d.size());
  RRT_CUDA_CHECK(cudaDeviceSynchronize());
  RRT_CUDA_CHECK(cudaMemcpy(h.data(), d.get(), sizeof(T) * h.size(), cudaMemcpyDeviceToHost));
  return h;
}
inline std::vector<float> download_f32(const DeviceBuffer<__nv_bfloat16>& d) {
  const auto h = download(d);
  std::vector<float> y(h.size());
  for (size_t i = 0; i < h.size(); ++i) y[i] = __bfloat162float(h[i]);
  return y;
}
// Poisons a buffer (0xFF bytes: NaN in fp32 and bf16) so an unwritten element fails.
template <typename T>
void poison(DeviceBuffer<T>& d) {
  RRT_CUDA_CHECK(cudaMemset(d.get(), 0xFF, sizeof(T) * d.size()));
}

// Uniform(-scale, scale) from a seeded generator: never all zeros, the same on every run.
inline std::vector<float> random_uniform(size_t n, uint32_t seed, float scale = 1.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// Uniform values already rounded to bf16: what a kernel reads is exactly what the reference sees.
inline std::vector<float> random_bf16(size_t n, uint32_t seed, float scale = 1.f) {
  return round_bf16(random_uniform(n, seed, scale));
}

// ||a - b|| / ||b||, NaN-aware (a NaN anywhere gives infinity).
inline double relative_l2(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) || std::isnan(b[i])) return INFINITY;
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num / (den > 0 ? den : 1.0));
}

}  // namespace rrt::testing
