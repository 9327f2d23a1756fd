// data.sources, the one run-config field that holds a list of maps (docs/data.md, "Mixtures"):
//   sources:
//     - {path: shards/web, weight: 0.7}
//     - {path: shards/code, weight: 0.3, epochs: 2, name: code}
//     - shards/extra            # a bare path: weight 1, no cap
// Reading (with the YAML line of the offending item), the rule of each item, and the flow-style
// text that to_yaml and the resume comparison print. The field list (config_fields.cpp) and
// config_io.cpp call these for FieldType::sources.
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

#include "data/mixture_source.h"

namespace rrt {

// Converts `node` (null, a sequence of maps or paths, or a "a, b" scalar of paths). On failure
// returns false with `error` ("item 2: unknown key 'wieght'; did you mean 'weight'? ...") and
// `mark` where the offending item or key is.
bool read_sources(const YAML::Node& node, std::vector<MixtureSource>& out, std::string& error,
                  YAML::Mark& mark);

// "" when every item is fine, else "item <i> (<path>): <what is wrong>": a path, a weight > 0,
// epochs >= 0, names (defaulted to the path's last component) unique.
std::string check_sources(const std::vector<MixtureSource>& sources);

// The rule in words, for errors and docs/configs.md.
std::string sources_rule_text();

// Flow-style YAML, "[{path: a, weight: 0.7}, {path: b, weight: 0.3, epochs: 2}]" (epochs and
// name only when set); read_sources reads it back to the same list.
std::string format_sources(const std::vector<MixtureSource>& sources);

}  // namespace rrt
