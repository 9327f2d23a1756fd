// Replays the kept fuzz corpus (tests/fuzz/corpus_gguf) through the GGUF reader and
// dequantisation: every input must end in success or an rrt::Error. New crashes found by
// tools/fuzz_gguf.sh are added to the corpus and stay fixed through this test.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "tests/fuzz/gguf_target.h"

namespace {

TEST(GgufFuzzCorpus, EveryInputEndsCleanly) {
  const std::filesystem::path dir = std::filesystem::path(RRT_FIXTURE_DIR) / "../fuzz/corpus_gguf";
  int inputs = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(entry.path(), std::ios::binary);
    const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), {});
    rrt::fuzz::run_gguf_input(bytes.data(), bytes.size());
    ++inputs;
  }
  EXPECT_GE(inputs, 20) << "the corpus should be kept, not emptied";
}

}  // namespace
