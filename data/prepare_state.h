// The resume journal of `rrt prepare` (internal to data/prepare*.cpp): out_dir/prepare_state.json,
// rewritten atomically after each shard is committed. It names the inputs and options it was
// made for (the fingerprint), the shards written, where reading resumes and the running totals,
// so a preparation killed at any point (SIGKILL, a crash, a lost node) continues from its last
// whole shard and ends with exactly the shards an uninterrupted one writes.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "data/prepare_read.h"
#include "data/shard.h"

namespace rrt {

inline constexpr const char* kPrepareState = "prepare_state.json";

struct PrepareState {
  nlohmann::ordered_json fingerprint;
  std::vector<ShardInfo> shards;  // path = file name only
  ResumePoint next;
  int64_t documents = 0, tokens = 0, text_bytes = 0;
  std::map<std::string, int64_t> skipped;  // bad documents skipped, by class
  std::vector<std::string> skipped_examples;
  nlohmann::ordered_json inputs = nlohmann::ordered_json::array();  // files completely written
};

// What must match for a resume: the input files (path, size, modification time) in order, the
// tokenizer, shard size, text field and skip_bad. Not the thread count: it changes nothing.
nlohmann::ordered_json prepare_fingerprint(const std::vector<InputFile>& files,
                                           const std::string& tokenizer, int64_t vocab_size,
                                           int64_t shard_tokens, const std::string& text_field,
                                           bool skip_bad);

void write_prepare_state(const std::string& dir, const PrepareState& state);
// nullopt when the file does not exist; throws naming it when it is unreadable.
std::optional<PrepareState> read_prepare_state(const std::string& dir);

// The first difference between two fingerprints, in words ("input 3 (a.jsonl) changed size"),
// or "" when they match.
std::string fingerprint_difference(const nlohmann::ordered_json& old_one,
                                   const nlohmann::ordered_json& new_one);

}  // namespace rrt
