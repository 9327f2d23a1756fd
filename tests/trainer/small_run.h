// A small run for the tests of the run directory and of signals: a 4-layer relaxed recursive
// model on a few KB of text, one OpenMP thread, a checkpoint every 2 steps (the newest 2 kept).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "config/run_config.h"
#include "model/parameters.h"
#include "tests/text_shards.h"

namespace rrt::testing {

inline const std::string& small_run_shards() {
  static const std::string dir = rrt::prepare_test_shards(
      std::filesystem::path(::testing::TempDir()) /
          ("rrt_small_run_data_" + std::to_string(::getpid())),
      4, 40, [](int d, int i) {
        return "Run " + std::to_string(d) + " line " + std::to_string(i) + ": one block, looped.";
      });
  return dir;
}

// Six documents of 40 lines, prepared once per test binary: the training loop's and the
// observability tests' text (the trainers of one binary share it).
inline const std::string& document_shards() {
  static const std::string dir = rrt::prepare_test_shards(
      std::filesystem::path(::testing::TempDir()) / ("rrt_documents_" + std::to_string(::getpid())),
      6, 40, [](int d, int i) {
        return "Document " + std::to_string(d) + " line " + std::to_string(i) +
               ": the loop runs the block again.";
      });
  return dir;
}

// The trainer tests' model: 4 layers as a block of 2 looped twice, a rank-4 LoRA on every
// position, grouped-query attention (4 heads, 2 kv heads), the byte vocabulary.
inline ModelSpec tiny_relaxed_model() {
  ModelSpec m;
  m.model = {.n_layers = 4,
             .vocab = 257,
             .d_model = 32,
             .n_heads = 4,
             .n_kv_heads = 2,
             .ffn = 48,
             .max_seq_len = 32};
  m.recursion = {.block_layers = 2, .loops = 2};
  m.lora = {.rank_attention = 4, .rank_mlp = 4};
  return m;
}

inline RunConfig small_run(const std::string& run_dir, int64_t steps = 8) {
  RunConfig c;
  c.model = tiny_relaxed_model();
  c.data.path = small_run_shards();
  c.data.val_fraction = 0.1;
  c.optim.lr = 3e-3;
  c.optim.warmup_steps = 2;
  c.train.steps = steps;
  c.train.micro_batch = 2;
  c.train.seq_len = 32;
  c.train.threads = 1;
  c.train.eval_every = 1000;
  c.train.eval_batches = 1;
  c.train.run_dir = run_dir;
  c.checkpoint.every = 2;
  c.checkpoint.keep_last = 2;
  c.log.every = 1000;
  return c;
}

// A fresh (deleted) directory under the test temp dir, unique per process.
inline std::filesystem::path fresh_run_dir(const std::string& name) {
  const auto p = std::filesystem::path(::testing::TempDir()) /
                 ("rrt_run_" + std::to_string(::getpid()) + "_" + name);
  std::filesystem::remove_all(p);
  return p;
}

// Every parameter of a checkpoint, flat, for bit-exact comparisons.
inline std::vector<float> checkpoint_values(const std::string& path, const RunConfig& c) {
  ParameterSet p(c.model);
  load_checkpoint(path, p, nullptr);
  std::vector<float> out;
  for (int i = 0; i < p.registry().size(); ++i)
    out.insert(out.end(), p.value(i), p.value(i) + p.numel(i));
  return out;
}

inline bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace rrt::testing
