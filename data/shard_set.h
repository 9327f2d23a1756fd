// A shard set (`rrt prepare`'s output directory) is complete or refused (docs/data.md, "A
// complete shard set"). prepare writes INCOMPLETE first, then the shards, then manifest.json
// (every shard's name, tokens and documents, the tokenizer), and removes INCOMPLETE last. A
// reader refuses a directory that still holds INCOMPLETE (a prepare that was killed or ran out of
// disk) or whose shards differ from its manifest; a directory with neither file (shards written
// by an older rrt or another tool) is read with a warning.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/durable_file.h"
#include "data/shard.h"

namespace rrt {

inline constexpr const char* kShardSetIncomplete = kIncompleteMarker;
inline constexpr const char* kShardSetManifest = "manifest.json";

// Writes dir/INCOMPLETE (durably) before the first shard.
void mark_shard_set_incomplete(const std::string& dir);
// Writes dir/manifest.json atomically, then removes dir/INCOMPLETE. `extra` (an object: rrt
// prepare's inputs, totals and skip counts) is added to the manifest after the shard list.
void mark_shard_set_complete(const std::string& dir, const std::vector<ShardInfo>& shards,
                             const nlohmann::ordered_json& extra = {});

// Throws when dir/INCOMPLETE exists, or when manifest.json exists and names other shards than
// `shard_names` (the *.h5 files present, file names only). Returns whether a manifest was found.
bool check_shard_set(const std::string& dir, const std::vector<std::string>& shard_names);
// With the shards read: their token counts must be the manifest's.
void check_shard_set_tokens(const std::string& dir, const std::vector<ShardInfo>& shards);

}  // namespace rrt
