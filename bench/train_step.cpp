// Training-step throughput of the CPU path against this machine's GEMM rate, same run.
//
//   bench_train_step [--repeats R] [--warmup W] [--small] [--precision fp32|bf16]
//                    [--profile FILE]
//
// --profile writes a Chrome trace of the timed steps (core/trace.h: the model's spans per
// position, projection, attention and head) and prints the time per span name.
// --precision bf16 runs the step on the CPU bf16 backend (model/cpu_bf16_model.h: fp32 masters
// in the host set, AdamW over them, then the bf16 copy refreshed) and compares it with the bf16
// GEMM (ops/cpu_bf16/gemm.h) instead of OpenBLAS's sgemm.
//
// Config (issue #2): d=512, 8 heads / 4 kv, ffn 1408, B=4 block layers, K=2 loops, LoRA r=32 on
// all seven projections, vocab 8192, T=256, N=8. One step = zero grads + forward + backward +
// AdamW. The sgemm reference is a 2048^3 product, plus the model's largest GEMM shape
// (tokens x ffn x d), each the median of R runs. --small shrinks everything for a smoke run.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/trace.h"
#include "model/cpu_bf16_model.h"
#include "model/optimizer.h"
#include "model/presets.h"
#include "model/recursive_model.h"
#include "ops/blas_kernels.h"
#include "ops/cpu_bf16/gemm.h"
#include "ops/matmul.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Median GFLOP/s of C = A B^T with A [M, K], B [N, K] (the layout of a linear layer).
double sgemm_gflops(int64_t M, int64_t N, int64_t K, int repeats) {
  std::vector<float> a(M * K), b(N * K), c(M * N);
  rrt::fill_normal(a.data(), M * K, 0.0, 1.0, 1, 0);
  rrt::fill_normal(b.data(), N * K, 0.0, 1.0, 1, 1);
  rrt::ops::gemm<float>(false, true, M, N, K, 1.0f, a.data(), K, b.data(), K, 0.0f, c.data(), N);
  std::vector<double> rates;
  for (int r = 0; r < repeats; ++r) {
    auto t0 = Clock::now();
    rrt::ops::gemm<float>(false, true, M, N, K, 1.0f, a.data(), K, b.data(), K, 0.0f, c.data(), N);
    rates.push_back(2.0 * M * N * K / seconds_since(t0) / 1e9);
  }
  return median(rates);
}

// The same through the bf16 GEMM (fp32 accumulation, bf16 result).
double bf16_gemm_gflops(int64_t M, int64_t N, int64_t K, int repeats) {
  std::vector<float> af(M * K), bf(N * K);
  rrt::fill_normal(af.data(), M * K, 0.0, 1.0, 1, 0);
  rrt::fill_normal(bf.data(), N * K, 0.0, 1.0, 1, 1);
  std::vector<rrt::bf16> a(M * K), b(N * K), c(M * N);
  for (size_t i = 0; i < a.size(); ++i) a[i] = rrt::bf16::from_float(af[i]);
  for (size_t i = 0; i < b.size(); ++i) b[i] = rrt::bf16::from_float(bf[i]);
  auto run = [&] {
    rrt::ops::cpu_bf16::gemm(false, true, M, N, K, 1.0f, a.data(), K, b.data(), K, 0.0f, c.data(),
                             N);
  };
  run();
  std::vector<double> rates;
  for (int r = 0; r < repeats; ++r) {
    auto t0 = Clock::now();
    run();
    rates.push_back(2.0 * M * N * K / seconds_since(t0) / 1e9);
  }
  return median(rates);
}

// Seconds per step in each span name (spans nest: a layer's time includes its projections').
void print_profile(const std::string& path, int steps) {
  std::map<std::string, double> total;
  for (const rrt::trace::Event& e : rrt::trace::events()) total[e.name] += e.dur_ns * 1e-9;
  std::printf("profile (%s), seconds per step by span:\n", path.c_str());
  for (const auto& [name, seconds] : total)
    std::printf("  %-20s %8.3f\n", name.c_str(), seconds / steps);
}

}  // namespace

int main(int argc, char** argv) {
  rrt::ops::select_openblas_kernels(argv);  // the kernels rrt itself runs on
  int repeats = 5, warmup = 1;
  bool small = false;
  std::string precision = "fp32", profile;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--repeats") && i + 1 < argc)
      repeats = std::stoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--warmup") && i + 1 < argc)
      warmup = std::stoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--small"))
      small = true;
    else if (!std::strcmp(argv[i], "--precision") && i + 1 < argc)
      precision = argv[++i];
    else if (!std::strcmp(argv[i], "--profile") && i + 1 < argc)
      profile = argv[++i];
    else {
      std::fprintf(stderr,
                   "usage: %s [--repeats R] [--warmup W] [--small] [--precision fp32|bf16] "
                   "[--profile FILE]\n",
                   argv[0]);
      return 2;
    }
  }
  const bool bf16 = precision == "bf16";
  if (!bf16 && precision != "fp32") {
    std::fprintf(stderr, "--precision: fp32 or bf16, not '%s'\n", precision.c_str());
    return 2;
  }
  std::string why;
  if (bf16 && !rrt::cpu_bf16_supported(&why)) {
    std::fprintf(stderr, "--precision bf16: %s\n", why.c_str());
    return 3;
  }

  // The "bench" / "bench-small" presets (model/presets.h).
  const rrt::ModelSpec spec = rrt::presets::bench(small);
  const rrt::ModelConfig& m = spec.model;
  const int64_t N = small ? 2 : 8, T = m.max_seq_len;

  // bf16: the host model is planned for one token and holds the masters and gradients only.
  rrt::RecursiveModel model(spec, {.max_batch = bf16 ? 1 : N, .max_seq = bf16 ? 1 : T});
  model.params().init({.seed = 7, .std = 0.02, .lora_b_zero = false});
  std::unique_ptr<rrt::CpuBf16Model> low;
  if (bf16)
    low = std::make_unique<rrt::CpuBf16Model>(model.params(), spec,
                                              rrt::ModelCapacity{.max_batch = N, .max_seq = T});
  rrt::AdamW optimizer(model.params(),
                       {.lr = 1e-4, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1});
  std::vector<int32_t> tokens(N * T), targets(N * T);
  rrt::CounterRng rng(3, 0);
  for (int64_t i = 0; i < N * T; ++i) {
    tokens[i] = static_cast<int32_t>(rng.below(2 * i, static_cast<uint32_t>(m.vocab)));
    targets[i] = static_cast<int32_t>(rng.below(2 * i + 1, static_cast<uint32_t>(m.vocab)));
  }

  auto step = [&] {
    model.params().zero_grads();
    const double loss = low ? low->forward_backward(tokens.data(), targets.data(), N, T)
                            : model.forward_backward(tokens.data(), targets.data(), N, T);
    RRT_TRACE_SPAN("optimizer");
    optimizer.step();
    if (low) low->refresh();
    return loss;
  };
  const int64_t big = small ? 512 : 2048;
  for (int w = 0; w < warmup; ++w) step();
  if (!profile.empty()) rrt::trace::start();
  auto gemm_gflops = bf16 ? bf16_gemm_gflops : sgemm_gflops;
  const char* gemm_name = bf16 ? "bf16 gemm" : "sgemm";
  // Steps and GEMM runs alternate so that both see the same machine conditions.
  std::vector<double> times, peaks, shapeds;
  double loss = 0;
  for (int r = 0; r < repeats; ++r) {
    auto t0 = Clock::now();
    loss = step();
    times.push_back(seconds_since(t0));
    peaks.push_back(gemm_gflops(big, big, big, 1));
    shapeds.push_back(gemm_gflops(N * T, m.ffn, m.d_model, 1));
  }
  if (!profile.empty()) {
    rrt::trace::stop();
    rrt::trace::write_chrome_trace(profile);
  }
  const double t = median(times), peak = median(peaks), shaped = median(shapeds);
  const double flops = model.train_flops(N, T);
  const double step_gflops = flops / t / 1e9;
  // This machine's speed drifts (shared cores): each step is compared with the sgemm run right
  // after it, and the median of those paired ratios is the headline figure.
  std::vector<double> ratios;
  for (int r = 0; r < repeats; ++r) ratios.push_back(flops / times[r] / 1e9 / peaks[r]);

  std::printf("rrt train-step benchmark (CPU %s, %d OpenMP threads, OpenBLAS kernels %s)\n",
              precision.c_str(), omp_get_max_threads(), rrt::ops::openblas_core().c_str());
  if (bf16) std::printf("bf16 GEMMs: %s\n", rrt::ops::cpu_bf16::gemm_path().c_str());
  std::printf("config: d=%ld heads=%ld/%ld ffn=%ld B=%ld K=%ld lora_r=%ld vocab=%ld T=%ld N=%ld\n",
              m.d_model, m.n_heads, m.n_kv_heads, m.ffn, spec.recursion.block_layers,
              spec.recursion.loops, spec.lora.rank_attention, m.vocab, T, N);
  std::printf("params: %.2f M   model FLOPs per step: %.1f GFLOP\n",
              model.params().registry().total_numel() / 1e6, flops / 1e9);
  std::printf("step (fwd+bwd+AdamW), median of %d: %.3f s   loss %.4f\n", repeats, t, loss);
  std::printf("throughput: %.0f tokens/s   %.1f GFLOP/s\n", N * T / t, step_gflops);
  std::printf("%s %ldx%ldx%ld: %.1f GFLOP/s   %s %ldx%ldx%ld (MLP shape): %.1f GFLOP/s\n",
              gemm_name, big, big, big, peak, gemm_name, N * T, m.ffn, m.d_model, shaped);
  std::printf("ratio step / %s(%ld^3): %.1f%% of medians, %.1f%% median of paired runs\n",
              gemm_name, big, 100.0 * step_gflops / peak, 100.0 * median(ratios));
  if (!profile.empty()) print_profile(profile, repeats);
  return 0;
}
