// Replays the kept fuzz corpus (tests/fuzz/corpus_safetensors) through the safetensors reader:
// every input must end in success or an rrt::Error. New crashes found by
// tools/fuzz_safetensors.sh are added to the corpus and stay fixed through this test.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "tests/fuzz/safetensors_target.h"

namespace {

TEST(SafetensorsFuzzCorpus, EveryInputEndsCleanly) {
  const std::filesystem::path dir = std::filesystem::path(RRT_FIXTURE_DIR) / "../fuzz/corpus_safetensors";
  int inputs = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(entry.path(), std::ios::binary);
    const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), {});
    rrt::fuzz::run_safetensors_input(bytes.data(), bytes.size());
    ++inputs;
  }
  EXPECT_GE(inputs, 20) << "the corpus should be kept, not emptied";
}

}  // namespace
