// What the sweep tests share: a fresh temporary directory, token shards prepared once per test
// binary, the tiny model's run config as the start of a sweep file, and parsing a sweep text.
// A test file's `using namespace sweep_test;` also brings `fs` and the error helpers.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>

#include "tests/error_helpers.h"
#include "tests/text_shards.h"
#include "trainer/sweep/sweep.h"

namespace rrt::sweep_test {

namespace fs = std::filesystem;
using testing::contains;
using testing::error_message;

inline fs::path temp(const std::string& name) {
  const fs::path p =
      fs::path(::testing::TempDir()) / ("rrt_sweep_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

// Token shards of a few KB of text, prepared once per test binary.
inline const std::string& shards() {
  static const std::string dir = rrt::prepare_test_shards(temp("data"), 6, 40, [](int d, int i) {
    return "Document " + std::to_string(d) + " line " + std::to_string(i) +
           ": the loop runs the block again.";
  });
  return dir;
}

// A tiny model trained for 6 steps, inline in the sweep file; line 1 is "config:".
inline std::string base_config(int n_layers = 4, int d_model = 32) {
  std::string text = R"(config:
  model:
    n_layers: @LAYERS
    vocab: 257
    d_model: @WIDTH
    n_heads: 4
    n_kv_heads: 2
    ffn: 48
    max_seq_len: 32
  recursion:
    loops: 2
  data:
    path: @DATA
    val_fraction: 0.1
  optim:
    lr: 3.0e-3
    warmup_steps: 2
  train:
    steps: 6
    micro_batch: 2
    seq_len: 32
    eval_every: 3
    eval_batches: 2
    threads: 1
  checkpoint:
    every: 3
  log:
    every: 1
)";
  for (const auto& [key, value] :
       {std::pair<std::string, std::string>{"@LAYERS", std::to_string(n_layers)},
        {"@WIDTH", std::to_string(d_model)},
        {"@DATA", shards()}})
    text.replace(text.find(key), key.size(), value);
  return text;
}

inline Sweep parse(const std::string& text, const fs::path& out,
                   const std::string& source = "sweep.yaml") {
  return parse_sweep(text, source, ".", out.string());
}

inline std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace rrt::sweep_test
