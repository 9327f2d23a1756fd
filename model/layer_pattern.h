// Checkpoint name patterns with a layer placeholder, shared by the importers' name tables:
// "model.layers.{l}.mlp.up_proj.weight" stands for one tensor per layer, a name without "{l}"
// for a single one.
#pragma once

#include <cstdint>
#include <string>

namespace rrt {

// The pattern with "{l}" replaced by the layer index (a name without it is returned as it is).
inline std::string expand_layer(const std::string& pattern, int64_t layer) {
  std::string s = pattern;
  const auto at = s.find("{l}");
  if (at != std::string::npos) s.replace(at, 3, std::to_string(layer));
  return s;
}

// How many names the pattern stands for in a model of `layers` layers.
inline int64_t layer_count(const std::string& pattern, int64_t layers) {
  return pattern.find("{l}") != std::string::npos ? layers : 1;
}

}  // namespace rrt
