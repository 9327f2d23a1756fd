// Shared by the GGUF export tests (test_gguf_export.cpp, test_gguf_gemma_export.cpp): fixture
// and temporary paths, a model's logits from its parameter values, bitwise equality.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "model/parameters.h"
#include "model/recursive_model.h"

namespace rrt::testing {

inline std::string fixture(const std::string& name) {
  return std::string(RRT_FIXTURE_DIR) + "/" + name;
}

// <tmp>/rrt_<prefix>_<tag>_<pid>.gguf: one file per test and process.
inline std::string temp_gguf(const std::string& prefix, const std::string& tag) {
  return (std::filesystem::temp_directory_path() /
          ("rrt_" + prefix + "_" + tag + "_" + std::to_string(::getpid()) + ".gguf"))
      .string();
}

// The logits of the model `spec` with the values of `params` (copied by name, so any registry
// holding the spec's parameters will do) on N x T fixed tokens, (i * 37 + 11) mod vocab.
inline std::vector<float> logits_of(const ModelSpec& spec, const ParameterSet& params, int64_t N,
                                    int64_t T) {
  RecursiveModel model(spec, ModelCapacity{.max_batch = N, .max_seq = T, .threads = 1});
  for (int i = 0; i < params.registry().size(); ++i) {
    const int j = model.params().registry().index(params.registry()[i].name);
    std::memcpy(model.params().value(j), params.value(i), params.numel(i) * sizeof(float));
  }
  std::vector<int32_t> tokens(N * T);
  for (int64_t i = 0; i < N * T; ++i)
    tokens[i] = static_cast<int32_t>((i * 37 + 11) % spec.model.vocab);
  std::vector<float> out(N * T * spec.model.vocab);
  model.logits(tokens.data(), N, T, out.data());
  return out;
}

inline bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace rrt::testing
