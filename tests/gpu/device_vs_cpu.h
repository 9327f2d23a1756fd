// The device model (model/cuda/device_model.h) against the CPU fp32 RecursiveModel on the same
// batch, shared by test_model_gpu.cpp and test_exits_gpu.cpp: the tiny Llama specs, bf16-rounded
// weights, a random batch, one forward-backward pass of each model, and the gradient comparison
// whose measured errors the tests print.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "model/cuda/device_model.h"
#include "model/parameters.h"
#include "model/recursive_model.h"
#include "tests/gpu/gpu_test.h"

namespace rrt::testing {

// A tiny Llama: K loops of B layers, LoRA rank `rank` on attention and rank / 2 on the MLP.
inline ModelSpec llama(int64_t vocab, int64_t D, int64_t H, int64_t Hkv, int64_t F, int64_t B,
                       int64_t K, int64_t rank) {
  ModelSpec s;
  s.model = {
      .vocab = vocab, .d_model = D, .n_heads = H, .n_kv_heads = Hkv, .ffn = F, .max_seq_len = 64};
  s.recursion = {.block_layers = B, .loops = K};
  s.lora = {.rank_attention = rank, .rank_mlp = rank / 2};
  return s;
}

// Seeded random weights (LoRA B non-zero, so that every adapter gets a gradient), rounded to bf16:
// the comparison then measures the GPU's bf16 activations, not the storage rounding of weights.
inline void init_bf16_weights(ParameterSet& p, uint64_t seed) {
  p.init({.seed = seed, .std = 0.05, .lora_b_zero = false});
  float* v = static_cast<float*>(p.values_arena().base());
  const int64_t n = p.values_arena().total_bytes() / static_cast<int64_t>(sizeof(float));
  for (int64_t i = 0; i < n; ++i) v[i] = __bfloat162float(__float2bfloat16(v[i]));
}

inline void random_tokens(int64_t n, int64_t vocab, uint32_t seed, std::vector<int32_t>& tokens,
                          std::vector<int32_t>& targets) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, static_cast<int32_t>(vocab - 1));
  tokens.resize(n);
  targets.resize(n);
  for (auto& t : tokens) t = dist(rng);
  for (auto& t : targets) t = dist(rng);
  targets[1] = RecursiveModel::kIgnoreIndex;  // an ignored row, as padding would be
}

// Relative difference with an absolute floor.
inline double rel(double have, double want, double floor) {
  return std::fabs(have - want) / std::max(std::fabs(want), floor);
}

struct BothLosses {
  double cpu, gpu;
};

// One forward-backward pass of each model on the same batch from zeroed gradients; the device's
// gradients are then downloaded into `got` (a ParameterSet of the same spec).
inline BothLosses forward_backward_both(RecursiveModel& cpu, DeviceModel& gpu,
                                        const std::vector<int32_t>& tokens,
                                        const std::vector<int32_t>& targets, int64_t N, int64_t T,
                                        float weight, ParameterSet& got) {
  cpu.params().zero_grads();
  gpu.zero_grads();
  BothLosses loss;
  loss.cpu = cpu.forward_backward(tokens.data(), targets.data(), N, T, weight);
  loss.gpu = gpu.forward_backward(tokens.data(), targets.data(), N, T, weight);
  gpu.download_grads(got);
  return loss;
}

// The measured errors, for the tests' logs.
struct GradientErrors {
  double arena = 0;        // relative L2 of the whole gradient arena
  double worst = 0;        // the worst trainable tensor's floored relative L2
  std::string worst_name;  // and its name
};

// Every registry parameter's gradient, GPU (`got`) against CPU: a trainable one within
// `tensor_tol` relative L2, its reference norm floored at 5% of what a tensor of its size would
// have at the arena's RMS gradient (a gradient that nearly cancels, such as a norm weight's sum
// over rows, has no meaningful relative error of its own); a frozen one exactly zero on the GPU;
// the whole arena within `arena_tol`. `what` names the case in failures.
inline GradientErrors compare_gradients(const ParameterSet& cpu, const ParameterSet& got,
                                        const std::string& what, double tensor_tol,
                                        double arena_tol) {
  const ParamRegistry& reg = cpu.registry();
  std::vector<float> all_cpu, all_gpu;
  for (int i = 0; i < reg.size(); ++i) {
    const float* g = cpu.grad(i);
    all_cpu.insert(all_cpu.end(), g, g + cpu.numel(i));
    all_gpu.insert(all_gpu.end(), got.grad(i), got.grad(i) + got.numel(i));
  }
  double sq = 0;
  for (float x : all_cpu) sq += double(x) * x;
  const double rms = std::sqrt(sq / static_cast<double>(all_cpu.size()));
  EXPECT_GT(rms, 0) << what << ": the CPU gradients are all zero: the test would prove nothing";
  GradientErrors errors;
  errors.arena = relative_l2(all_gpu, all_cpu);
  EXPECT_LT(errors.arena, arena_tol) << what;
  for (int i = 0; i < reg.size(); ++i) {
    const int64_t n = cpu.numel(i);
    double num = 0, den = 0;
    for (int64_t j = 0; j < n; ++j) {
      const double want = cpu.grad(i)[j], have = got.grad(i)[j];
      num += (have - want) * (have - want);
      den += want * want;
    }
    if (!reg[i].trainable) {
      EXPECT_EQ(num, 0.0) << what << ": frozen " << reg[i].name << " got a gradient on the GPU";
      continue;
    }
    const double floor = 0.05 * rms * std::sqrt(static_cast<double>(n));
    const double err = std::sqrt(num) / std::max(std::sqrt(den), floor);
    if (err > errors.worst) {
      errors.worst = err;
      errors.worst_name = reg[i].name;
    }
    EXPECT_LT(err, tensor_tol) << what << ": gradient of " << reg[i].name << " (|g| "
                               << std::sqrt(den) << ")";
  }
  return errors;
}

}  // namespace rrt::testing
