// bf16 GEMM throughput through the CPU bf16 backend's GEMMs (ops/cpu_bf16/gemm.h, oneDNN) against
// fp32 OpenBLAS sgemm on the same shapes: 2048^3 and the products of the bench model's training
// step (bench/train_step.cpp's config: d 512, 8 heads / 4 kv heads of 64, ffn 1408, vocab 8192,
// LoRA r 32, N x T = 8 x 256 = 2048 rows). Forward and input-gradient products write bf16 (what
// the backend's activations are); weight gradients accumulate into fp32 with beta = 1.
//
// Each repetition runs the bf16 product and then the fp32 one, so that both see the same load on
// a shared machine; the figures are medians of the repetitions, after two warm-up runs (which
// also create and cache the oneDNN primitive), on random data.
//   bench_gemm_bf16 [--repeats N] [--quick]
// Threads: OMP_NUM_THREADS, as for every rrt program (both libraries use OpenMP).
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "ops/blas_kernels.h"
#include "ops/cpu_bf16/gemm.h"

namespace {

using rrt::bf16;
namespace bf = rrt::ops::cpu_bf16;

struct Shape {
  const char* name;
  bool ta, tb;
  int64_t M, N, K;
  bool weight_grad;  // fp32 C, beta = 1 (else bf16 C, beta = 0)
};

const Shape kShapes[] = {
    {"square 2048^3", false, false, 2048, 2048, 2048, false},
    {"q, o proj fwd", false, true, 2048, 512, 512, false},
    {"k, v proj fwd", false, true, 2048, 256, 512, false},
    {"gate, up fwd", false, true, 2048, 1408, 512, false},
    {"down fwd", false, true, 2048, 512, 1408, false},
    {"lm head fwd", false, true, 2048, 8192, 512, false},
    {"lora A fwd (r 32)", false, true, 2048, 32, 512, false},
    {"lora B fwd (r 32)", false, true, 2048, 512, 32, false},
    {"gate, up dx", false, false, 2048, 512, 1408, false},
    {"down dx", false, false, 2048, 1408, 512, false},
    {"lm head dx", false, false, 2048, 512, 8192, false},
    {"gate, up dW", true, false, 1408, 512, 2048, true},
    {"down dW", true, false, 512, 1408, 2048, true},
    {"lm head dW", true, false, 8192, 512, 2048, true},
    {"lora A dW", true, false, 32, 512, 2048, true},
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

int main(int argc, char** argv) {
  rrt::ops::select_openblas_kernels(argv);  // the fp32 kernels rrt itself runs on
  int repeats = 15;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--repeats") && i + 1 < argc) {
      repeats = std::max(1, std::atoi(argv[++i]));
    } else if (!std::strcmp(argv[i], "--quick")) {
      quick = true;
    } else {
      std::fprintf(stderr, "usage: %s [--repeats N] [--quick]\n", argv[0]);
      return 2;
    }
  }
  if (quick) repeats = std::min(repeats, 3);
  std::printf("bf16 GEMMs: %s\n", bf::gemm_path().c_str());
  std::printf("fp32 GEMMs: OpenBLAS %s kernels\n", rrt::ops::openblas_core().c_str());
  std::printf("CPU: %s; bf16 flags: %s; %d OpenMP threads; medians of %d paired runs\n",
              rrt::cpu_features().vendor.c_str(),
              rrt::describe_bf16_features(rrt::cpu_features()).c_str(), omp_get_max_threads(),
              repeats);
  if (!bf::gemm_available()) {
    std::printf("bf16 GEMMs unavailable here: nothing to compare\n");
    return 0;
  }

  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::printf("\n%-18s %2s %5s %5s %5s %9s %9s %7s\n", "product", "op", "M", "N", "K", "bf16 GF/s",
              "fp32 GF/s", "ratio");
  for (const Shape& s : kShapes) {
    if (quick && s.M * s.N * s.K > int64_t(2048) * 2048 * 512) continue;
    const int64_t a_n = s.M * s.K, b_n = s.K * s.N, c_n = s.M * s.N;
    std::vector<float> Af(a_n), Bf(b_n), Cf(c_n, 0.f);
    for (float& x : Af) x = bf16::from_float(u(rng)).to_float();
    for (float& x : Bf) x = bf16::from_float(u(rng)).to_float();
    std::vector<bf16> A(a_n), B(b_n), Cb(c_n);
    for (int64_t i = 0; i < a_n; ++i) A[i] = bf16::from_float(Af[i]);
    for (int64_t i = 0; i < b_n; ++i) B[i] = bf16::from_float(Bf[i]);
    std::vector<float> Cacc(c_n, 0.f);  // the bf16 path's fp32 accumulator (weight gradients)
    const int64_t lda = s.ta ? s.M : s.K, ldb = s.tb ? s.K : s.N;
    const float beta = s.weight_grad ? 1.f : 0.f;
    auto run_bf16 = [&] {
      if (s.weight_grad)
        bf::gemm(s.ta, s.tb, s.M, s.N, s.K, 1.f, A.data(), lda, B.data(), ldb, beta, Cacc.data(),
                 s.N);
      else
        bf::gemm(s.ta, s.tb, s.M, s.N, s.K, 1.f, A.data(), lda, B.data(), ldb, beta, Cb.data(),
                 s.N);
    };
    auto run_f32 = [&] {
      cblas_sgemm(CblasRowMajor, s.ta ? CblasTrans : CblasNoTrans, s.tb ? CblasTrans : CblasNoTrans,
                  s.M, s.N, s.K, 1.f, Af.data(), lda, Bf.data(), ldb, beta, Cf.data(), s.N);
    };
    for (int w = 0; w < 2; ++w) {
      run_bf16();
      run_f32();
    }
    std::vector<double> t_bf, t_f32;
    for (int r = 0; r < repeats; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      run_bf16();
      t_bf.push_back(seconds_since(t0));
      t0 = std::chrono::steady_clock::now();
      run_f32();
      t_f32.push_back(seconds_since(t0));
    }
    const double flop = 2.0 * s.M * s.N * s.K;
    const double g_bf = flop / median(t_bf) * 1e-9, g_f32 = flop / median(t_f32) * 1e-9;
    const char op[3] = {s.ta ? 'T' : 'N', s.tb ? 'T' : 'N', 0};
    std::printf("%-18s %2s %5lld %5lld %5lld %9.1f %9.1f %6.2fx\n", s.name, op,
                static_cast<long long>(s.M), static_cast<long long>(s.N),
                static_cast<long long>(s.K), g_bf, g_f32, g_bf / g_f32);
    std::fflush(stdout);
  }

  // What a cached call costs beyond its arithmetic: the primitive lookup, memory objects, launch.
  std::vector<bf16> a(64, bf16::from_float(1.f)), b(64, bf16::from_float(1.f));
  std::vector<bf16> c(64);
  for (int w = 0; w < 10; ++w)
    bf::gemm(false, true, 8, 8, 8, 1.f, a.data(), 8, b.data(), 8, 0.f, c.data(), 8);
  std::vector<double> t;
  for (int r = 0; r < 200; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    bf::gemm(false, true, 8, 8, 8, 1.f, a.data(), 8, b.data(), 8, 0.f, c.data(), 8);
    t.push_back(seconds_since(t0));
  }
  const bf::GemmCacheStats st = bf::gemm_cache_stats();
  std::printf(
      "\ncached call, 8x8x8: %.1f us (median of 200); cache %lld entries, %lld hits, "
      "%lld misses\n",
      median(t) * 1e6, static_cast<long long>(st.entries), static_cast<long long>(st.hits),
      static_cast<long long>(st.misses));
  return 0;
}
