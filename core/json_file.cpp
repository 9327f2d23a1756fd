#include "core/json_file.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace rrt {
namespace {

template <typename Json>
Json read_as(const std::string& path, const std::string& what_to_do) {
  // A directory opens as a stream and reads as nothing, which the parser would call invalid.
  std::error_code ec;
  RRT_CHECK(!std::filesystem::is_directory(path, ec), path, "is a directory, not a JSON file",
            what_to_do);
  std::ifstream in(path, std::ios::binary);
  RRT_CHECK(in, path, "cannot open: ", std::strerror(errno), what_to_do);
  std::ostringstream text;
  text << in.rdbuf();
  RRT_CHECK(!in.bad(), path, "cannot read: ", std::strerror(errno), what_to_do);
  try {
    return Json::parse(text.str());
  } catch (const nlohmann::json::exception& e) {
    // e.what() names the byte where the JSON breaks: enough to find a truncated write.
    RRT_FAIL(path, "is not valid JSON (", e.what(), ")", what_to_do);
  }
}

}  // namespace

nlohmann::json read_json_file(const std::string& path, const std::string& what_to_do) {
  return read_as<nlohmann::json>(path, what_to_do);
}

nlohmann::ordered_json read_ordered_json_file(const std::string& path,
                                              const std::string& what_to_do) {
  return read_as<nlohmann::ordered_json>(path, what_to_do);
}

}  // namespace rrt
