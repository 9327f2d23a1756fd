#include "checkpoint/checkpoint_config.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>

#include "config/config_io.h"

namespace rrt {

namespace fs = std::filesystem;

namespace {

// Rewrites node (a scalar path, after an optional "bpe:" as data.tokenizer allows) when it names
// nothing from here but something from launch_dir.
bool resolve_one(YAML::Node node, const fs::path& launch_dir) {
  if (!node || !node.IsScalar()) return false;
  const std::string text = node.Scalar();
  const std::string prefix = text.rfind("bpe:", 0) == 0 ? "bpe:" : "";
  const fs::path p = text.substr(prefix.size());
  std::error_code ec;
  if (p.empty() || p.is_absolute() || fs::exists(p, ec)) return false;
  const fs::path there = (launch_dir / p).lexically_normal();
  if (!fs::exists(there, ec)) return false;
  node = prefix + there.string();
  return true;
}

}  // namespace

std::string resolve_launch_relative_paths(const std::string& config_yaml,
                                          const std::string& launch_dir) {
  if (launch_dir.empty()) return config_yaml;
  YAML::Node root = YAML::Load(config_yaml);
  bool changed = false;
  const fs::path base = launch_dir;
  if (YAML::Node data = root["data"]) {
    changed |= resolve_one(data["path"], base);
    changed |= resolve_one(data["tokenizer"], base);
    if (YAML::Node sources = data["sources"]; sources && sources.IsSequence())
      for (YAML::Node source : sources)  // {path: ..., weight: ...} or a bare path
        changed |= source.IsMap() ? resolve_one(source["path"], base) : resolve_one(source, base);
  }
  if (YAML::Node train = root["train"]) changed |= resolve_one(train["init_from"], base);
  if (YAML::Node distill = root["distill"]) changed |= resolve_one(distill["teacher"], base);
  // Unchanged text when nothing moved: what parses is then byte for byte what was stored.
  return changed ? YAML::Dump(root) : config_yaml;
}

RunConfig checkpoint_run_config(const CheckpointContents& header, const std::string& where,
                                const std::vector<std::string>& overrides) {
  return parse_run_config(resolve_launch_relative_paths(header.config_yaml, header.launch_dir),
                          where, overrides);
}

}  // namespace rrt
