#include "data/prepare_state.h"

#include <filesystem>

#include "core/durable_file.h"
#include "core/error.h"
#include "core/json_file.h"

namespace rrt {

namespace fs = std::filesystem;

nlohmann::ordered_json prepare_fingerprint(const std::vector<InputFile>& files,
                                           const std::string& tokenizer, int64_t vocab_size,
                                           int64_t shard_tokens, const std::string& text_field,
                                           bool skip_bad) {
  nlohmann::ordered_json inputs = nlohmann::ordered_json::array();
  for (const InputFile& f : files)
    inputs.push_back({{"path", f.path},
                      {"format", f.description()},
                      {"bytes", f.size},
                      {"mtime_ns", f.mtime_ns}});
  return {{"tokenizer", tokenizer},   {"vocab_size", vocab_size}, {"shard_tokens", shard_tokens},
          {"text_field", text_field}, {"skip_bad", skip_bad},     {"inputs", inputs}};
}

void write_prepare_state(const std::string& dir, const PrepareState& state) {
  nlohmann::ordered_json j;
  j["format"] = "rrt-prepare-state";
  j["format_version"] = 1;
  j["fingerprint"] = state.fingerprint;
  nlohmann::ordered_json shards = nlohmann::ordered_json::array();
  for (const ShardInfo& s : state.shards)
    shards.push_back({{"name", s.path}, {"tokens", s.tokens}, {"documents", s.documents}});
  j["shards"] = shards;
  j["next"] = {{"file", state.next.file},
               {"item", state.next.item},
               {"skip_tokens", state.next.skip_tokens}};
  j["documents"] = state.documents;
  j["tokens"] = state.tokens;
  j["text_bytes"] = state.text_bytes;
  j["skipped"] = state.skipped;
  j["skipped_examples"] = state.skipped_examples;
  j["inputs"] = state.inputs;
  write_file_atomically((fs::path(dir) / kPrepareState).string(), j.dump(1) + "\n");
}

std::optional<PrepareState> read_prepare_state(const std::string& dir) {
  const fs::path path = fs::path(dir) / kPrepareState;
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::nullopt;
  const std::string hint = "; delete the directory (rm -r " + dir + ") and prepare again";
  const auto j = read_ordered_json_file(path.string(), hint);
  PrepareState state;
  try {
    RRT_CHECK(j.value("format", "") == "rrt-prepare-state", path.string(),
              "is not an rrt prepare state file", hint);
    state.fingerprint = j.at("fingerprint");
    for (const auto& s : j.at("shards")) {
      ShardInfo info;
      info.path = s.at("name").get<std::string>();
      info.tokens = s.at("tokens").get<int64_t>();
      info.documents = s.at("documents").get<int64_t>();
      state.shards.push_back(info);
    }
    const auto& next = j.at("next");
    state.next = {next.at("file").get<int64_t>(), next.at("item").get<int64_t>(),
                  next.at("skip_tokens").get<int64_t>()};
    state.documents = j.at("documents").get<int64_t>();
    state.tokens = j.at("tokens").get<int64_t>();
    state.text_bytes = j.at("text_bytes").get<int64_t>();
    state.skipped = j.at("skipped").get<std::map<std::string, int64_t>>();
    state.skipped_examples = j.at("skipped_examples").get<std::vector<std::string>>();
    state.inputs = j.at("inputs");
  } catch (const nlohmann::json::exception& e) {
    RRT_FAIL(path.string(), "is not a readable prepare state (", e.what(), ")", hint);
  }
  return state;
}

std::string fingerprint_difference(const nlohmann::ordered_json& old_one,
                                   const nlohmann::ordered_json& new_one) {
  for (const char* key : {"tokenizer", "vocab_size", "shard_tokens", "text_field", "skip_bad"})
    if (old_one.value(key, nlohmann::ordered_json()) !=
        new_one.value(key, nlohmann::ordered_json()))
      return std::string(key) + " was " + old_one.value(key, nlohmann::ordered_json()).dump() +
             ", now " + new_one.value(key, nlohmann::ordered_json()).dump();
  const auto& a = old_one.at("inputs");
  const auto& b = new_one.at("inputs");
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    const std::string path = b[i].value("path", "");
    if (a[i].value("path", "") != path)
      return "input " + std::to_string(i + 1) + " was " + a[i].value("path", "") + ", now " + path;
    if (a[i].value("bytes", int64_t{-1}) != b[i].value("bytes", int64_t{-1}))
      return "input " + path + " changed size";
    if (a[i].value("mtime_ns", int64_t{-1}) != b[i].value("mtime_ns", int64_t{-1}))
      return "input " + path + " was modified";
    if (a[i].value("format", "") != b[i].value("format", ""))
      return "input " + path + " changed format";
  }
  if (a.size() != b.size())
    return "there were " + std::to_string(a.size()) + " input files, now " +
           std::to_string(b.size());
  return "";
}

}  // namespace rrt
