// Causal GQA attention through rrt's cuDNN wrapper (ops/cuda/attention.h), forward and backward,
// at TinyLlama's attention shape (32 heads, 4 kv heads, Dh 64) with T = 2048 and N = 1, 2, 4.
// Each time is the median of 20 runs timed with CUDA events after 3 warm-up runs (the first
// builds the cuDNN graph), on random data. The backward time includes adding cuDNN's gradients
// into dq, dk, dv (rrt's backward adds).
//   bench_gpu_attention [--repeats N] [--quick]
// FLOPs count the useful work of causal attention: QK^T and PV over the T(T+1)/2 visible
// (query, key) pairs, 2 * N*H*Dh*T*(T+1) for the forward, and the backward as twice the forward
// (dQ, dK, dV; the recomputed QK^T is not counted) -- the convention of the MFU formula in
// docs/benchmarks.md. FlashAttention's papers count the backward as 2.5x and report higher figures.
// A second table times rrt's own kernels (ops/cuda/attention_fallback.h, which run only where
// cuDNN cannot) against cuDNN on shapes both serve, N = 1: the "measured against it".
// Its RESULT lines carry the fallback / cuDNN time ratios (tests/gpu/run.sh prints them).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/cuda/cuda_check.h"
#include "core/device.h"
#include "ops/cuda/attention.h"

namespace {

using rrt::ops::AttentionShape;
using rrt::ops::cuda::AttentionContext;
using rrt::ops::cuda::bf16;

// Fills a device buffer with values uniform in [-1, 1) (a small LCG on the host).
void fill_random(bf16* d, size_t n, uint64_t seed) {
  std::vector<bf16> h(n);
  uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
  for (size_t i = 0; i < n; ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    const float u = static_cast<float>((s >> 40) & 0xFFFFFF) / 16777216.0f;
    h[i] = __float2bfloat16(2.f * u - 1.f);
  }
  RRT_CUDA_CHECK(cudaMemcpy(d, h.data(), n * sizeof(bf16), cudaMemcpyHostToDevice));
}

template <typename T>
T* device_alloc(size_t n) {
  T* p = nullptr;
  RRT_CUDA_CHECK(cudaMalloc(&p, n * sizeof(T)));
  return p;
}

// Median milliseconds of `run` over `repeats` timed runs on `stream`, after 3 warm-up runs.
template <typename Run>
double median_ms(Run run, int repeats, cudaStream_t stream) {
  for (int i = 0; i < 3; ++i) run();
  RRT_CUDA_CHECK(cudaStreamSynchronize(stream));
  cudaEvent_t start, stop;
  RRT_CUDA_CHECK(cudaEventCreate(&start));
  RRT_CUDA_CHECK(cudaEventCreate(&stop));
  std::vector<float> ms(repeats);
  for (int i = 0; i < repeats; ++i) {
    RRT_CUDA_CHECK(cudaEventRecord(start, stream));
    run();
    RRT_CUDA_CHECK(cudaEventRecord(stop, stream));
    RRT_CUDA_CHECK(cudaEventSynchronize(stop));
    RRT_CUDA_CHECK(cudaEventElapsedTime(&ms[i], start, stop));
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(ms.begin(), ms.end());
  return repeats % 2 ? ms[repeats / 2] : 0.5 * (ms[repeats / 2 - 1] + ms[repeats / 2]);
}

}  // namespace

int main(int argc, char** argv) {
  int repeats = 20;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--repeats" && i + 1 < argc) {
      repeats = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--quick") {
      quick = true;
    } else {
      std::fprintf(stderr, "usage: %s [--repeats N] [--quick]\n", argv[0]);
      return 2;
    }
  }
  if (rrt::cuda_device_count() == 0) {
    std::printf("bench_gpu_attention: no CUDA GPU visible, nothing to measure\n");
    return 0;
  }
  try {
    int dev = 0;
    RRT_CUDA_CHECK(cudaGetDevice(&dev));
    cudaDeviceProp prop{};
    RRT_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
    std::printf("device: %s (compute capability %d.%d, %d SMs)\n", prop.name, prop.major,
                prop.minor, prop.multiProcessorCount);

    std::vector<AttentionShape> shapes = {
        {1, 2048, 32, 4, 64}, {2, 2048, 32, 4, 64}, {4, 2048, 32, 4, 64}};
    // Shapes cuDNN and rrt's fallback both serve, for the second table.
    std::vector<AttentionShape> both_serve = {
        {1, 2048, 32, 4, 64}, {1, 2048, 16, 16, 128}, {1, 1024, 8, 1, 256}};
    if (quick) shapes.resize(1), both_serve.resize(1);
    size_t q_max = 0, kv_max = 0, lse_max = 0;  // the buffers fit every shape of both tables
    for (const auto* list : {&shapes, &both_serve})
      for (const AttentionShape& s : *list) {
        q_max = std::max<size_t>(q_max, s.N * s.T * s.H * s.Dh);
        kv_max = std::max<size_t>(kv_max, s.N * s.T * s.Hkv * s.Dh);
        lse_max = std::max<size_t>(lse_max, s.N * s.H * s.T);
      }
    bf16 *q = device_alloc<bf16>(q_max), *k = device_alloc<bf16>(kv_max),
         *v = device_alloc<bf16>(kv_max), *out = device_alloc<bf16>(q_max),
         *dout = device_alloc<bf16>(q_max), *dq = device_alloc<bf16>(q_max),
         *dk = device_alloc<bf16>(kv_max), *dv = device_alloc<bf16>(kv_max);
    float* lse = device_alloc<float>(lse_max);
    fill_random(q, q_max, 1);
    fill_random(k, kv_max, 2);
    fill_random(v, kv_max, 3);
    fill_random(dout, q_max, 4);
    RRT_CUDA_CHECK(cudaMemset(dq, 0, q_max * sizeof(bf16)));
    RRT_CUDA_CHECK(cudaMemset(dk, 0, kv_max * sizeof(bf16)));
    RRT_CUDA_CHECK(cudaMemset(dv, 0, kv_max * sizeof(bf16)));

    AttentionContext ctx;
    ctx.set_force_fallback(false);  // cuDNN, whatever RRT_ATTENTION_FALLBACK says
    std::printf("\n%-26s %9s %9s %9s %9s %12s\n", "attention (causal, bf16)", "fwd ms", "fwd TF/s",
                "bwd ms", "bwd TF/s", "fwd+bwd TF/s");
    for (const AttentionShape& s : shapes) {
      const double fwd_ms =
          median_ms([&] { rrt::ops::cuda::attention_forward(ctx, q, k, v, out, lse, s); }, repeats,
                    ctx.stream());
      const double bwd_ms = median_ms(
          [&] { rrt::ops::cuda::attention_backward(ctx, q, k, v, out, lse, dout, dq, dk, dv, s); },
          repeats, ctx.stream());
      const double fwd_flops = 2.0 * s.N * s.H * s.Dh * double(s.T) * double(s.T + 1);
      const double fwd_tflops = fwd_flops / (fwd_ms * 1e-3) / 1e12;
      const double bwd_tflops = 2 * fwd_flops / (bwd_ms * 1e-3) / 1e12;
      const double total_tflops = 3 * fwd_flops / ((fwd_ms + bwd_ms) * 1e-3) / 1e12;
      char label[64];
      std::snprintf(label, sizeof(label), "N=%lld T=%lld H=%lld/%lld Dh=%lld",
                    static_cast<long long>(s.N), static_cast<long long>(s.T),
                    static_cast<long long>(s.H), static_cast<long long>(s.Hkv),
                    static_cast<long long>(s.Dh));
      std::printf("%-26s %9.3f %9.1f %9.3f %9.1f %12.1f\n", label, fwd_ms, fwd_tflops, bwd_ms,
                  bwd_tflops, total_tflops);
      // One machine-readable line per case for tests/gpu/run.sh's summary.
      std::printf(
          "RESULT attention \"%s\" fwd_ms=%.3f bwd_ms=%.3f fwd_tflops=%.1f bwd_tflops=%.1f "
          "tflops=%.1f\n",
          label, fwd_ms, bwd_ms, fwd_tflops, bwd_tflops, total_tflops);
    }

    // rrt's fallback against cuDNN (a context forced to the fallback, one left to cuDNN).
    AttentionContext fallback_ctx;
    fallback_ctx.set_force_fallback(true);
    std::printf("\n%-26s %9s %9s %7s %9s %9s %7s\n", "fallback vs cuDNN", "cuDNN fwd", "own fwd",
                "ratio", "cuDNN bwd", "own bwd", "ratio");
    for (const AttentionShape& s : both_serve) {
      auto time_path = [&](AttentionContext& c, bool backward) {
        return median_ms(
            [&] {
              if (backward)
                rrt::ops::cuda::attention_backward(c, q, k, v, out, lse, dout, dq, dk, dv, s);
              else
                rrt::ops::cuda::attention_forward(c, q, k, v, out, lse, s);
            },
            repeats, c.stream());
      };
      const double cudnn_fwd = time_path(ctx, false), cudnn_bwd = time_path(ctx, true);
      const double own_fwd = time_path(fallback_ctx, false),
                   own_bwd = time_path(fallback_ctx, true);
      char label[64];
      std::snprintf(label, sizeof(label), "N=%lld T=%lld H=%lld/%lld Dh=%lld",
                    static_cast<long long>(s.N), static_cast<long long>(s.T),
                    static_cast<long long>(s.H), static_cast<long long>(s.Hkv),
                    static_cast<long long>(s.Dh));
      std::printf("%-26s %9.3f %9.3f %6.1fx %9.3f %9.3f %6.1fx\n", label, cudnn_fwd, own_fwd,
                  own_fwd / cudnn_fwd, cudnn_bwd, own_bwd, own_bwd / cudnn_bwd);
      std::printf(
          "RESULT attention_fallback \"%s\" fwd_ratio=%.1f bwd_ratio=%.1f cudnn_fwd_ms=%.3f "
          "own_fwd_ms=%.3f cudnn_bwd_ms=%.3f own_bwd_ms=%.3f\n",
          label, own_fwd / cudnn_fwd, own_bwd / cudnn_bwd, cudnn_fwd, own_fwd, cudnn_bwd, own_bwd);
    }
    if (fallback_ctx.fallback_calls() == 0 || ctx.fallback_calls() != 0) {
      std::fprintf(stderr, "bench_gpu_attention: the forced and unforced paths were mixed up\n");
      return 1;
    }

    for (void* p : {static_cast<void*>(q), static_cast<void*>(k), static_cast<void*>(v),
                    static_cast<void*>(out), static_cast<void*>(dout), static_cast<void*>(dq),
                    static_cast<void*>(dk), static_cast<void*>(dv), static_cast<void*>(lse)})
      cudaFree(p);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_gpu_attention: %s\n", e.what());
    return 1;
  }
  return 0;
}
