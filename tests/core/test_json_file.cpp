// core/json_file: every JSON file rrt reads with an error names the file, says why, and says
// what to do; what parses comes back whole (and in the file's key order, for ordered_json).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "core/json_file.h"
#include "tests/error_helpers.h"

namespace rrt {
namespace {

namespace fs = std::filesystem;
using testing::contains;
using testing::error_message;

fs::path write_file(const std::string& name, const std::string& text) {
  const fs::path path = fs::path(::testing::TempDir()) / name;
  std::ofstream(path, std::ios::trunc) << text;
  return path;
}

TEST(JsonFile, ReadsTheValueAndKeepsKeyOrderWhenAsked) {
  const fs::path path = write_file("rrt_json_file_ok.json", R"({"zeta": 1, "alpha": [2, "x"]})");
  const nlohmann::json j = read_json_file(path.string(), "; unused");
  EXPECT_EQ(j.at("zeta"), 1);
  EXPECT_EQ(j.at("alpha").at(1), "x");
  const nlohmann::ordered_json o = read_ordered_json_file(path.string(), "");
  ASSERT_EQ(o.size(), 2u);
  EXPECT_EQ(o.begin().key(), "zeta");  // as written, not sorted
}

TEST(JsonFile, MissingFileNamesItTheReasonAndWhatToDo) {
  const std::string path = (fs::path(::testing::TempDir()) / "rrt_json_file_absent.json").string();
  fs::remove(path);
  const std::string msg = error_message([&] { read_json_file(path, "; run the writer again"); });
  EXPECT_TRUE(contains(msg, "[" + path + "]")) << msg;
  EXPECT_TRUE(contains(msg, "cannot open: No such file or directory")) << msg;
  EXPECT_TRUE(contains(msg, "; run the writer again")) << msg;
  EXPECT_TRUE(contains(error_message([&] { read_ordered_json_file(path, ""); }), "cannot open"));
}

TEST(JsonFile, TruncatedFileSaysWhereTheJsonBreaks) {
  // What a writer killed mid-write (without rrt's atomic rename) leaves behind.
  const fs::path path = write_file("rrt_json_file_torn.json", "{\"runs\": [1, 2");
  for (const std::string& msg :
       {error_message([&] { read_json_file(path.string(), "; rewrite it"); }),
        error_message([&] { read_ordered_json_file(path.string(), "; rewrite it"); })}) {
    EXPECT_TRUE(contains(msg, "[" + path.string() + "] is not valid JSON")) << msg;
    // The parser's position, passed on: the end of the 14 bytes, where the array is cut.
    EXPECT_TRUE(contains(msg, "line 1, column 15")) << msg;
    EXPECT_TRUE(contains(msg, "; rewrite it")) << msg;
  }
  const fs::path empty = write_file("rrt_json_file_empty.json", "");
  EXPECT_TRUE(
      contains(error_message([&] { read_json_file(empty.string(), ""); }), "is not valid JSON"));
}

TEST(JsonFile, ADirectoryIsNotAJsonFile) {
  const fs::path dir = fs::path(::testing::TempDir()) / "rrt_json_file_dir";
  fs::create_directories(dir);
  const std::string msg = error_message([&] { read_json_file(dir.string(), ""); });
  EXPECT_TRUE(contains(msg, "[" + dir.string() + "] is a directory, not a JSON file")) << msg;
}

}  // namespace
}  // namespace rrt
