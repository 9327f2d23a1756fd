// The SentencePiece GGUF fixtures (tests/fixtures/spm_gguf, tools/make_spm_gguf_fixtures.py)
// and what the sentencepiece library gave on them (expected.json), for the tests of
// data/spm_tokenizer.h and of the tokenizer.json written from such a vocabulary.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace rrt::test::spm_fixture {

inline const std::string kDir = std::string(RRT_FIXTURE_DIR) + "/spm_gguf";
inline const std::string kLlama = kDir + "/spm_tokenizer.gguf";  // with the space prefix
inline const std::string kGemma = kDir + "/gemma_style.gguf";    // without it

inline const nlohmann::json& expected() {
  static const nlohmann::json fixture = [] {
    std::ifstream in(kDir + "/expected.json");
    EXPECT_TRUE(in.good()) << kDir;
    return nlohmann::json::parse(in);
  }();
  return fixture;
}

inline std::vector<int32_t> ids_of(const nlohmann::json& j) {
  return j.get<std::vector<int32_t>>();
}

}  // namespace rrt::test::spm_fixture
