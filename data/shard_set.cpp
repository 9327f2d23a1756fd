#include "data/shard_set.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/durable_file.h"
#include "core/error.h"
#include "core/json_file.h"

namespace rrt {

namespace fs = std::filesystem;

namespace {

std::string hint(const std::string& dir) {
  return "; delete the directory (rm -r " + dir + ") and run `rrt prepare` again";
}

nlohmann::json read_manifest(const std::string& dir) {
  const fs::path path = fs::path(dir) / kShardSetManifest;
  const auto j = read_json_file(path.string(), hint(dir));
  RRT_CHECK(j.is_object() && j.contains("shards") && j["shards"].is_array(), path.string(),
            "is not a shard-set manifest (JSON with a \"shards\" list)", hint(dir));
  return j;
}

}  // namespace

void mark_shard_set_incomplete(const std::string& dir) {
  mark_output_incomplete(dir, "rrt prepare");
}

void mark_shard_set_complete(const std::string& dir, const std::vector<ShardInfo>& shards,
                             const nlohmann::ordered_json& extra) {
  nlohmann::ordered_json manifest;
  manifest["format"] = "rrt-shard-set";
  manifest["format_version"] = 1;
  int64_t tokens = 0, documents = 0;
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const ShardInfo& s : shards) {
    list.push_back({{"name", fs::path(s.path).filename().string()},
                    {"tokens", s.tokens},
                    {"documents", s.documents}});
    tokens += s.tokens;
    documents += s.documents;
  }
  manifest["tokenizer"] = shards.empty() ? "" : shards.front().tokenizer;
  manifest["tokens"] = tokens;
  manifest["documents"] = documents;
  manifest["shards"] = list;
  if (extra.is_object())
    for (const auto& [key, value] : extra.items()) manifest[key] = value;
  write_file_atomically((fs::path(dir) / kShardSetManifest).string(), manifest.dump(2) + "\n");
  mark_output_complete(dir);
}

bool check_shard_set(const std::string& dir, const std::vector<std::string>& shard_names) {
  refuse_incomplete_output(dir, "shard set", "run `rrt prepare` again");
  std::error_code ec;
  if (!fs::exists(fs::path(dir) / kShardSetManifest, ec)) return false;
  const nlohmann::json manifest = read_manifest(dir);
  std::vector<std::string> listed;
  for (const auto& s : manifest["shards"])
    if (s.is_object() && s.contains("name") && s["name"].is_string())
      listed.push_back(s["name"].get<std::string>());
  std::vector<std::string> present = shard_names;
  std::sort(listed.begin(), listed.end());
  std::sort(present.begin(), present.end());
  for (const std::string& name : listed)
    RRT_CHECK(std::binary_search(present.begin(), present.end(), name), dir, "is missing shard ",
              name, ", which its ", kShardSetManifest, " lists", hint(dir));
  for (const std::string& name : present)
    RRT_CHECK(std::binary_search(listed.begin(), listed.end(), name), dir, "holds shard ", name,
              ", which its ", kShardSetManifest,
              " does not list (left from another prepare?); remove it or prepare again");
  return true;
}

void check_shard_set_tokens(const std::string& dir, const std::vector<ShardInfo>& shards) {
  std::error_code ec;
  if (!fs::exists(fs::path(dir) / kShardSetManifest, ec)) return;
  const nlohmann::json manifest = read_manifest(dir);
  for (const auto& s : manifest["shards"]) {
    const std::string name = s.value("name", "");
    for (const ShardInfo& info : shards)
      if (fs::path(info.path).filename() == name)
        RRT_CHECK(s.value("tokens", int64_t{-1}) == info.tokens, info.path, "holds ", info.tokens,
                  " tokens but ", kShardSetManifest, " says ", s.value("tokens", int64_t{-1}),
                  hint(dir));
  }
}

}  // namespace rrt
