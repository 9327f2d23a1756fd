// bf16 GEMM throughput through rrt's cuBLASLt wrapper (ops/cuda/gemm.h): TFLOP/s and the
// fraction of the card's dense bf16 peak, at 8192^3 and at the projections of a TinyLlama-shaped
// model (D 2048, F 5632, 32 heads of 64, 4 kv heads, V 32000) with M = 16384 rows (8 x 2048).
// Each figure is the median of 20 runs timed with CUDA events after 5 warm-up runs, on random
// data (never zeros: they run faster than real data).
//   bench_gpu_gemm [--peak-tflops X] [--repeats N] [--quick]
// The peak comes from a table keyed by compute capability; an unknown card prints
// 'peak unknown' (pass --peak-tflops), never fails.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/cuda/cuda_check.h"
#include "core/device.h"
#include "ops/cuda/gemm.h"

namespace {

using rrt::ops::cuda::bf16;
using rrt::ops::cuda::GemmContext;

// Dense (no sparsity) bf16 tensor-core peak in TFLOP/s, from the vendor's datasheets.
double table_peak_tflops(int major, int minor) {
  struct Entry {
    int major, minor;
    double tflops;
  };
  static const Entry kTable[] = {
      {8, 0, 312.0},  // A100 (SXM)
      {9, 0, 989.0},  // H100 / H200 (SXM)
  };
  for (const Entry& e : kTable)
    if (e.major == major && e.minor == minor) return e.tflops;
  return 0.0;
}

struct Case {
  const char* name;
  bool trans_a, trans_b;
  int64_t M, N, K;
  bool f32_out;
};

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

}  // namespace

int main(int argc, char** argv) {
  double peak_override = 0;
  int repeats = 20;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--peak-tflops" && i + 1 < argc) {
      peak_override = std::atof(argv[++i]);
    } else if (a == "--repeats" && i + 1 < argc) {
      repeats = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--quick") {
      quick = true;
    } else {
      std::fprintf(stderr, "usage: %s [--peak-tflops X] [--repeats N] [--quick]\n", argv[0]);
      return 2;
    }
  }
  if (rrt::cuda_device_count() == 0) {
    std::printf("bench_gpu_gemm: no CUDA GPU visible, nothing to measure\n");
    return 0;
  }
  try {
    int dev = 0;
    RRT_CUDA_CHECK(cudaGetDevice(&dev));
    cudaDeviceProp prop{};
    RRT_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
    const double table = table_peak_tflops(prop.major, prop.minor);
    const double peak = peak_override > 0 ? peak_override : table;
    std::printf("device: %s (compute capability %d.%d, %d SMs)\n", prop.name, prop.major,
                prop.minor, prop.multiProcessorCount);
    if (peak > 0)
      std::printf("bf16 dense peak: %.0f TFLOP/s (%s)\n", peak,
                  peak_override > 0 ? "--peak-tflops" : "table");
    else
      std::printf(
          "bf16 dense peak: peak unknown for compute capability %d.%d "
          "(pass --peak-tflops)\n",
          prop.major, prop.minor);

    // y = x W^T is (trans_a, trans_b) = (false, true); dx = dy W is (false, false); dW = dy^T x
    // is (true, false) with an fp32 output.
    const int64_t kRows = 16384;
    std::vector<Case> cases = {
        {"square 8192^3", false, true, 8192, 8192, 8192, false},
        {"qkv   fwd 2048->2560", false, true, kRows, 2560, 2048, false},
        {"o     fwd 2048->2048", false, true, kRows, 2048, 2048, false},
        {"gate+up fwd 2048->11264", false, true, kRows, 11264, 2048, false},
        {"down  fwd 5632->2048", false, true, kRows, 2048, 5632, false},
        {"down  dx  (dy W)", false, false, kRows, 5632, 2048, false},
        {"down  dW  (dy^T x, fp32)", true, false, 2048, 5632, kRows, true},
        {"lm_head fwd 2048->32000 (fp32)", false, true, 4096, 32000, 2048, true},
    };
    if (quick) cases.resize(2);

    size_t max_a = 0, max_b = 0, max_c = 0;
    for (const Case& c : cases) {
      max_a = std::max<size_t>(max_a, c.M * c.K);
      max_b = std::max<size_t>(max_b, c.K * c.N);
      max_c = std::max<size_t>(max_c, c.M * c.N * (c.f32_out ? 2 : 1));  // in bf16 units
    }
    bf16 *A = nullptr, *B = nullptr, *C = nullptr;
    RRT_CUDA_CHECK(cudaMalloc(&A, max_a * sizeof(bf16)));
    RRT_CUDA_CHECK(cudaMalloc(&B, max_b * sizeof(bf16)));
    RRT_CUDA_CHECK(cudaMalloc(&C, max_c * sizeof(bf16)));
    fill_random(A, max_a, 1);
    fill_random(B, max_b, 2);
    RRT_CUDA_CHECK(cudaMemset(C, 0, max_c * sizeof(bf16)));

    GemmContext ctx;
    cudaEvent_t start, stop;
    RRT_CUDA_CHECK(cudaEventCreate(&start));
    RRT_CUDA_CHECK(cudaEventCreate(&stop));
    std::printf("\n%-32s %7s %7s %7s %10s %9s %8s\n", "gemm", "M", "N", "K", "median ms", "TFLOP/s",
                "of peak");
    for (const Case& c : cases) {
      auto run = [&] {
        if (c.f32_out)
          rrt::ops::cuda::gemm(ctx, c.trans_a, c.trans_b, c.M, c.N, c.K, 1.f, A, B, 0.f,
                               reinterpret_cast<float*>(C));
        else
          rrt::ops::cuda::gemm(ctx, c.trans_a, c.trans_b, c.M, c.N, c.K, 1.f, A, B, 0.f, C);
      };
      for (int i = 0; i < 5; ++i) run();
      RRT_CUDA_CHECK(cudaDeviceSynchronize());
      std::vector<float> ms(repeats);
      for (int i = 0; i < repeats; ++i) {
        RRT_CUDA_CHECK(cudaEventRecord(start, ctx.stream()));
        run();
        RRT_CUDA_CHECK(cudaEventRecord(stop, ctx.stream()));
        RRT_CUDA_CHECK(cudaEventSynchronize(stop));
        RRT_CUDA_CHECK(cudaEventElapsedTime(&ms[i], start, stop));
      }
      std::sort(ms.begin(), ms.end());
      const double median =
          repeats % 2 ? ms[repeats / 2] : 0.5 * (ms[repeats / 2 - 1] + ms[repeats / 2]);
      const double tflops = 2.0 * c.M * c.N * c.K / (median * 1e-3) / 1e12;
      char frac[32] = "n/a";
      if (peak > 0) std::snprintf(frac, sizeof(frac), "%.1f%%", 100.0 * tflops / peak);
      std::printf("%-32s %7lld %7lld %7lld %10.3f %9.1f %8s\n", c.name, static_cast<long long>(c.M),
                  static_cast<long long>(c.N), static_cast<long long>(c.K), median, tflops, frac);
      // One machine-readable line per case for tests/gpu/run.sh's summary.
      std::printf("RESULT gemm \"%s\" tflops=%.1f peak_pct=%s\n", c.name, tflops, frac);
    }
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    cudaFree(A);
    cudaFree(B);
    cudaFree(C);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_gpu_gemm: %s\n", e.what());
    return 1;
  }
  return 0;
}
