#include "config/config_sources.h"

#include <cmath>

#include "config/config_fields.h"

namespace rrt {

namespace {

constexpr const char* kItemKeys[] = {"path", "weight", "epochs", "name"};

std::string item_label(size_t i, const std::string& path) {
  return "item " + std::to_string(i) + (path.empty() ? "" : " (" + path + ")");
}

// A string inside a flow collection: quoted when plain style would read as something else.
std::string flow_string(const std::string& s) {
  const bool plain = !s.empty() && s.find_first_of(",[]{}#&*!|>'\"%@`:") == std::string::npos &&
                     s.front() != ' ' && s.back() != ' ' && s.front() != '-' && s.front() != '?' &&
                     format_value(FieldValue(s)) == s;
  if (plain) return s;
  YAML::Emitter out;
  out << YAML::DoubleQuoted << s;
  return out.c_str();
}

bool read_number(const YAML::Node& node, double& x) {
  if (!node.IsScalar()) return false;
  try {
    x = node.as<double>();
    return true;
  } catch (const YAML::Exception&) {
    return false;
  }
}

}  // namespace

bool read_sources(const YAML::Node& node, std::vector<MixtureSource>& out, std::string& error,
                  YAML::Mark& mark) {
  out.clear();
  mark = node.Mark();
  if (node.IsNull()) return true;
  if (node.IsScalar()) {  // "a, b": paths of weight 1 (a key=value override)
    const std::string text = node.Scalar();
    size_t start = 0;
    while (start <= text.size()) {
      size_t comma = text.find(',', start);
      if (comma == std::string::npos) comma = text.size();
      std::string item = text.substr(start, comma - start);
      const size_t b = item.find_first_not_of(" \t"), e = item.find_last_not_of(" \t");
      if (b != std::string::npos) out.push_back({.path = item.substr(b, e - b + 1)});
      start = comma + 1;
    }
    return true;
  }
  if (!node.IsSequence()) {
    error = "expected a list of sources, each {path: ..., weight: ...}, got a map";
    return false;
  }
  size_t i = 0;
  for (const YAML::Node& item : node) {
    mark = item.Mark();
    MixtureSource source;
    if (item.IsScalar()) {
      source.path = item.Scalar();
    } else if (item.IsMap()) {
      for (const auto& entry : item) {
        mark = entry.first.Mark();
        const std::string key = entry.first.as<std::string>("");
        const YAML::Node& value = entry.second;
        if (key == "path" || key == "name") {
          if (!value.IsScalar()) {
            error = item_label(i, source.path) + ": " + key + " must be a string";
            return false;
          }
          (key == "path" ? source.path : source.name) = value.Scalar();
        } else if (key == "weight" || key == "epochs") {
          double x;
          if (!read_number(value, x)) {
            error = item_label(i, source.path) + ": " + key + " must be a number, got " +
                    (value.IsScalar() ? "'" + value.Scalar() + "'" : "a collection");
            return false;
          }
          (key == "weight" ? source.weight : source.epochs) = x;
        } else {
          std::string suggestion;
          for (const char* known : kItemKeys)
            if (edit_distance(key, known) <= suggestion_tolerance(key))
              suggestion = std::string("; did you mean '") + known + "'?";
          error = item_label(i, source.path) + ": unknown key '" + key + "'" + suggestion +
                  " (a source has path, weight, epochs and name)";
          return false;
        }
      }
      mark = item.Mark();
    } else {
      error = item_label(i, "") + ": expected {path: ..., weight: ...} or a path";
      return false;
    }
    out.push_back(source);
    // The item's own rule here, where its line is known; names are compared by check_sources.
    const std::string wrong = check_sources({source});
    if (!wrong.empty()) {
      error = item_label(i, source.path) + wrong.substr(wrong.find(':'));
      return false;
    }
    ++i;
  }
  return true;
}

std::string check_sources(const std::vector<MixtureSource>& sources) {
  for (size_t i = 0; i < sources.size(); ++i) {
    const MixtureSource& s = sources[i];
    const std::string label = item_label(i, s.path);
    if (s.path.empty()) return label + ": path must not be empty (a shard set of `rrt prepare`)";
    if (!std::isfinite(s.weight) || s.weight <= 0)
      return label + ": weight must be > 0, got " + format_value(FieldValue(s.weight));
    if (!std::isfinite(s.epochs) || s.epochs < 0)
      return label + ": epochs must be >= 0 (0: no cap), got " + format_value(FieldValue(s.epochs));
    for (size_t j = 0; j < i; ++j)
      if (source_name(sources[j]) == source_name(s))
        return label + ": its name '" + source_name(s) + "' is item " + std::to_string(j) +
               "'s too; give each source its own name: {path: ..., name: ...}";
  }
  return "";
}

std::string sources_rule_text() {
  return "items `{path, weight > 0, epochs >= 0 (0: no cap), name}`, names unique";
}

std::string format_sources(const std::vector<MixtureSource>& sources) {
  std::string out = "[";
  for (size_t i = 0; i < sources.size(); ++i) {
    const MixtureSource& s = sources[i];
    out += (i ? ", " : "") + std::string("{path: ") + flow_string(s.path) +
           ", weight: " + format_value(FieldValue(s.weight));
    if (s.epochs != 0) out += ", epochs: " + format_value(FieldValue(s.epochs));
    if (!s.name.empty()) out += ", name: " + flow_string(s.name);
    out += "}";
  }
  return out + "]";
}

}  // namespace rrt
