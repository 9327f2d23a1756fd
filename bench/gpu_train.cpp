// Training throughput of the whole model on one GPU (model/cuda/device_model.h): tokens/s and MFU
// for a TinyLlama-shaped relaxed model (22 layers as B = 11 block layers x K = 2 loops, LoRA
// r = 64 on every projection, vocab 32000, d_model 2048, 32 heads / 4 kv heads, ffn 5632,
// T = 2048) and the same shape without recursion (22 layers, no LoRA). A step is what the
// trainer runs on cuda: zero the gradients, forward + backward with the chunked LM head, the
// global gradient norm, the fused AdamW on the fp32 masters. Random weights and tokens (the
// speed does not depend on them; never zeros, which would run faster).
//   bench_gpu_train [--batch N] [--seq T] [--steps S] [--warmup W] [--recompute MODE]
//                   [--peak-tflops X] [--only relaxed|plain]
// Without --only or --recompute it also runs the relaxed model with every position recomputed
// (train.recompute: all), to show what recomputation saves in memory and costs in time.
// MFU = model_train_flops (docs/benchmarks.md: the matmul FLOPs of every unrolled position, LoRA
// and causal attention included, recomputation not counted) / (step time x dense bf16 peak).
// The peak comes from a table keyed by compute capability; an unknown card prints 'peak unknown'
// (pass --peak-tflops) and the MFU as n/a, never a failure.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "bench/tinyllama.h"
#include "core/cuda/cuda_check.h"
#include "core/device.h"
#include "model/cuda/device_model.h"
#include "model/parameters.h"

namespace {

using Clock = std::chrono::steady_clock;

// Dense (no sparsity) bf16 tensor-core peak in TFLOP/s, from the vendor's datasheets (the same
// table as bench_gpu_gemm's).
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

struct Options {
  int64_t batch = 8, seq = 2048, steps = 8, warmup = 2;
  std::string recompute = "none", only;
  double peak_override = 0;
};

// Runs one model; returns tokens/s (0 when it could not run).
double run_model(const char* label, bool relaxed, const Options& o, double peak) {
  const rrt::ModelSpec spec = rrt::bench::tinyllama(relaxed);
  const int64_t N = o.batch, T = o.seq;
  std::printf("--- %s: %ld positions (B=%ld x K=%ld), LoRA r=%ld, N=%ld x T=%ld, recompute %s\n",
              label, static_cast<long>(spec.positions()),
              static_cast<long>(spec.recursion.block_layers),
              static_cast<long>(spec.recursion.loops), static_cast<long>(spec.lora.rank_attention),
              static_cast<long>(N), static_cast<long>(T), o.recompute.c_str());
  std::fflush(stdout);
  const auto t_setup = Clock::now();
  rrt::ParameterSet host(spec, rrt::ParameterSet::Grads::without);
  rrt::bench::fill_weights(host);
  const double params = static_cast<double>(host.registry().total_numel());
  rrt::DeviceModel model(spec, {.max_batch = N,
                                .max_seq = T,
                                .head_chunk = 4096,
                                .recompute = rrt::parse_recompute(o.recompute, spec.positions())});
  model.upload(host);
  size_t free_bytes = 0, total_bytes = 0;
  RRT_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  std::printf("GPU memory in use after setup: %.1f of %.1f GiB\n",
              (total_bytes - free_bytes) / 1073741824.0, total_bytes / 1073741824.0);
  std::printf(
      "parameters %.1f M; device memory: %.2f GiB parameters + optimizer, %.2f GiB "
      "activations (setup %.1f s)\n",
      params / 1e6, model.parameter_bytes() / 1073741824.0, model.activation_bytes() / 1073741824.0,
      std::chrono::duration<double>(Clock::now() - t_setup).count());
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(spec.model.vocab - 1));
  std::vector<int32_t> tokens(N * T), targets(N * T);
  for (auto& t : tokens) t = token(rng);
  for (auto& t : targets) t = token(rng);
  const rrt::ops::AdamWHyper hyper{1e-4, 0.9, 0.95, 1e-8, 0.1};
  std::vector<double> times;
  double loss = 0;
  for (int64_t step = 0; step < o.warmup + o.steps; ++step) {
    RRT_CUDA_CHECK(cudaDeviceSynchronize());
    const auto t0 = Clock::now();
    model.zero_grads();
    loss = model.forward_backward(tokens.data(), targets.data(), N, T);
    const double norm = model.grad_norm();  // synchronises, as the trainer's step does
    if (norm > 1.0) model.scale_grads(static_cast<float>(1.0 / norm));
    model.adamw_step(hyper);
    RRT_CUDA_CHECK(cudaDeviceSynchronize());
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (step >= o.warmup) times.push_back(s);
    std::printf("step %ld: %.3f s, loss %.4f%s\n", static_cast<long>(step), s, loss,
                step < o.warmup ? " (warm-up)" : "");
    std::fflush(stdout);
  }
  std::sort(times.begin(), times.end());
  const double median = times[times.size() / 2];
  const double tok_s = static_cast<double>(N * T) / median;
  const double flops = rrt::model_train_flops(spec, N, T);
  const double tflops = flops / median / 1e12;
  char mfu[32] = "n/a";
  if (peak > 0) std::snprintf(mfu, sizeof(mfu), "%.1f%%", 100.0 * tflops / peak);
  std::printf("%s: median step %.3f s, %.0f tokens/s, %.1f model TFLOP/s, MFU %s\n", label, median,
              tok_s, tflops, mfu);
  std::printf(
      "RESULT train \"%s N=%ld T=%ld\" tokens_per_s=%.0f tflops=%.1f mfu=%s activations_gib=%.1f\n",
      label, static_cast<long>(N), static_cast<long>(T), tok_s, tflops, mfu,
      model.activation_bytes() / 1073741824.0);
  std::fflush(stdout);
  return tok_s;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--batch") {
      o.batch = std::max(1, std::atoi(next()));
    } else if (a == "--seq") {
      o.seq = std::clamp(std::atoi(next()), 2, 2048);
    } else if (a == "--steps") {
      o.steps = std::max(1, std::atoi(next()));
    } else if (a == "--warmup") {
      o.warmup = std::max(0, std::atoi(next()));
    } else if (a == "--recompute") {
      o.recompute = next();
    } else if (a == "--peak-tflops") {
      o.peak_override = std::atof(next());
    } else if (a == "--only") {
      o.only = next();
    } else {
      std::fprintf(stderr,
                   "usage: %s [--batch N] [--seq T] [--steps S] [--warmup W] [--recompute "
                   "none|all|0,1,...] [--peak-tflops X] [--only relaxed|plain]\n",
                   argv[0]);
      return 2;
    }
  }
  if (rrt::cuda_device_count() == 0) {
    std::printf("no CUDA GPU visible: nothing to measure\n");
    return 0;
  }
  try {
    cudaDeviceProp prop{};
    RRT_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    const double table = table_peak_tflops(prop.major, prop.minor);
    const double peak = o.peak_override > 0 ? o.peak_override : table;
    std::printf("GPU: %s (compute capability %d.%d, %.0f GiB)\n", prop.name, prop.major, prop.minor,
                prop.totalGlobalMem / 1073741824.0);
    if (peak > 0)
      std::printf("bf16 dense peak: %.0f TFLOP/s (%s)\n", peak,
                  o.peak_override > 0 ? "--peak-tflops" : "table");
    else
      std::printf(
          "bf16 dense peak: peak unknown for compute capability %d.%d (pass "
          "--peak-tflops); MFU is printed as n/a\n",
          prop.major, prop.minor);
    // A model that fails (out of memory, a shape a library refuses) is reported and the other
    // still runs; the exit status says that one failed.
    bool failed = false;
    auto measure = [&](const char* label, bool relaxed_model, const Options& opts) {
      try {
        return run_model(label, relaxed_model, opts, peak);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_gpu_train: %s: %s\n", label, e.what());
        std::printf("RESULT train \"%s\" FAILED (see the log)\n", label);
        failed = true;
        return 0.0;
      }
    };
    double relaxed = 0, plain = 0;
    if (o.only.empty() || o.only == "relaxed")
      relaxed = measure("tinyllama relaxed B=11 K=2 r=64", true, o);
    if (o.only.empty() || o.only == "plain") plain = measure("tinyllama plain 22 layers", false, o);
    // What activation recomputation costs and saves: the relaxed model again with every position
    // recomputed (its activation memory and tokens/s beside the stored run's).
    if (o.only.empty() && o.recompute == "none") {
      Options all = o;
      all.recompute = "all";
      measure("tinyllama relaxed B=11 K=2 r=64 recompute=all", true, all);
    }
    if (relaxed > 0 && plain > 0) {
      const double ratio = relaxed / plain;
      std::printf("relaxed / plain tokens/s: %.3f (goal: at least 0.90)\n", ratio);
      std::printf("RESULT train_ratio \"relaxed / plain tokens/s\" ratio=%.3f goal=0.90 %s\n",
                  ratio, ratio >= 0.9 ? "met" : "missed");
    }
    if (failed) return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_gpu_train: %s\n", e.what());
    return 1;
  }
  return 0;
}
