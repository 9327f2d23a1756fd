// Token shards of a small synthetic text for tests that train or load data: `docs` text files
// of `lines` lines each under root/text, prepared with the byte tokenizer into root/shards.
// Callers keep the result in a function-local static, so it is made once per test binary.
#pragma once

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "data/prepare.h"

namespace rrt {

// line(d, i): the text of line i of document d (without the newline).
inline std::string prepare_test_shards(const std::filesystem::path& root, int docs, int lines,
                                       const std::function<std::string(int, int)>& line) {
  std::filesystem::remove_all(root);
  std::filesystem::create_directories(root / "text");
  for (int d = 0; d < docs; ++d) {
    std::ofstream f(root / "text" / ("doc" + std::to_string(d) + ".txt"));
    for (int i = 0; i < lines; ++i) f << line(d, i) << "\n";
  }
  PrepareOptions p;
  p.inputs = {(root / "text").string()};
  p.out_dir = (root / "shards").string();
  p.progress = false;
  prepare_shards(p);
  return p.out_dir;
}

}  // namespace rrt
