#include "data/mixture_source.h"

#include <filesystem>

namespace rrt {

namespace fs = std::filesystem;

std::string default_source_name(const std::string& path) {
  fs::path p(path);
  while (!p.empty() && p.filename().empty()) p = p.parent_path();  // "data/web/" -> "data/web"
  std::string name = p.filename().string();
  if (name.ends_with(".h5")) name.resize(name.size() - 3);  // one shard file
  return name.empty() ? path : name;
}

std::string source_name(const MixtureSource& source) {
  return source.name.empty() ? default_source_name(source.path) : source.name;
}

}  // namespace rrt
