// The rules and text of config values: checking a value against its field's rule, the rule and
// type in words, values as YAML text, and the edit distance behind "did you mean".
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "config/config_fields.h"
#include "config/config_sources.h"

namespace rrt {

namespace {

// Shortest decimal that reads back as the same double, in fixed notation for everyday
// magnitudes, and always recognisable as a float ("10000.0", "1.0e-08").
std::string format_double(double x) {
  if (std::isnan(x)) return ".nan";
  if (std::isinf(x)) return x > 0 ? ".inf" : "-.inf";
  char buf[64];
  const double magnitude = std::fabs(x);
  const auto format = magnitude == 0 || (magnitude >= 1e-4 && magnitude < 1e16)
                          ? std::chars_format::fixed
                          : std::chars_format::scientific;
  std::string s(buf, std::to_chars(buf, buf + sizeof buf, x, format).ptr);
  const size_t e = s.find('e');
  if (s.find('.') == std::string::npos) s.insert(e == std::string::npos ? s.size() : e, ".0");
  return s;
}

bool reads_as_other_type(const std::string& s) {
  if (s.empty()) return true;
  YAML::Node node(s);
  std::string lower = s;
  std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
  if (lower == "null" || lower == "~") return true;
  for (auto probe :
       {+[](const YAML::Node& n) { n.as<double>(); }, +[](const YAML::Node& n) { n.as<bool>(); }}) {
    try {
      probe(node);
      return true;
    } catch (const YAML::Exception&) {
    }
  }
  return false;
}

std::string format_string(const std::string& s) {
  YAML::Emitter out;
  if (reads_as_other_type(s)) out << YAML::DoubleQuoted;
  out << s;
  return out.c_str();
}

double as_double(const FieldValue& v) {
  if (auto* i = std::get_if<int64_t>(&v)) return static_cast<double>(*i);
  if (auto* u = std::get_if<uint64_t>(&v)) return static_cast<double>(*u);
  return std::get<double>(v);
}

std::string format_bound(double b) {
  std::string s = format_double(b);
  if (s.size() > 2 && s.ends_with(".0")) s.resize(s.size() - 2);
  return s;
}

}  // namespace

std::string check_field(const Field& f, const FieldValue& v) {
  switch (f.type) {
    case FieldType::integer:
    case FieldType::unsigned_integer:
    case FieldType::number: {
      const double x = as_double(v);
      if (!std::isfinite(x)) return "must be a finite number, got " + format_value(v);
      const bool low = f.lo && (f.lo_open ? x <= *f.lo : x < *f.lo);
      const bool high = f.hi && (f.hi_open ? x >= *f.hi : x > *f.hi);
      if (low || high) {
        const std::string rule = describe_rule(f);
        return (f.lo && f.hi ? "must be in " : "must be ") + rule + ", got " + format_value(v);
      }
      return "";
    }
    case FieldType::choice: {
      const std::string& s = std::get<std::string>(v);
      if (std::find(f.choices.begin(), f.choices.end(), s) != f.choices.end()) return "";
      std::string error = "unknown value '" + s + "'; expected one of " + describe_rule(f);
      const std::string* closest = nullptr;
      int best = suggestion_tolerance(s) + 1;  // suggest only near misses
      for (const std::string& c : f.choices)
        if (int d = edit_distance(s, c); d < best) best = d, closest = &c;
      return closest ? error + "; did you mean '" + *closest + "'?" : error;
    }
    case FieldType::list: {
      const auto& items = std::get<std::vector<std::string>>(v);
      if (f.check_items) return f.check_items(items);
      for (size_t i = 0; i < items.size(); ++i) {
        if (std::find(f.choices.begin(), f.choices.end(), items[i]) == f.choices.end())
          return "unknown item '" + items[i] + "'; items are " + describe_rule(f);
        if (std::find(items.begin(), items.begin() + i, items[i]) != items.begin() + i)
          return "item '" + items[i] + "' appears twice";
      }
      return "";
    }
    case FieldType::string:
      return f.non_empty && std::get<std::string>(v).empty() ? "must not be empty" : "";
    case FieldType::boolean:
      return "";
    case FieldType::sources:
      return check_sources(std::get<std::vector<MixtureSource>>(v));
  }
  return "";
}

std::string describe_rule(const Field& f) {
  auto join = [](const std::vector<std::string>& items, const char* sep) {
    std::string s;
    for (size_t i = 0; i < items.size(); ++i) s += (i ? sep : "") + items[i];
    return s;
  };
  if (!f.rule_text.empty()) return f.rule_text;
  switch (f.type) {
    case FieldType::choice:
      return join(f.choices, ", ");
    case FieldType::list:
      return "any of " + join(f.choices, ", ");
    case FieldType::string:
      return f.non_empty ? "not empty" : "";
    case FieldType::boolean:
      return "";
    case FieldType::sources:
      return sources_rule_text();
    default:
      break;
  }
  if (f.lo && f.hi)
    return std::string(f.lo_open ? "(" : "[") + format_bound(*f.lo) + ", " + format_bound(*f.hi) +
           (f.hi_open ? ")" : "]");
  if (f.lo) return std::string(f.lo_open ? "> " : ">= ") + format_bound(*f.lo);
  if (f.hi) return std::string(f.hi_open ? "< " : "<= ") + format_bound(*f.hi);
  return f.type == FieldType::unsigned_integer ? ">= 0" : "";
}

std::string type_name(FieldType type) {
  switch (type) {
    case FieldType::integer:
    case FieldType::unsigned_integer:
      return "integer";
    case FieldType::number:
      return "number";
    case FieldType::boolean:
      return "bool";
    case FieldType::string:
      return "string";
    case FieldType::choice:
      return "choice";
    case FieldType::list:
      return "list";
    case FieldType::sources:
      return "sources";
  }
  return "?";
}

std::string format_value(const FieldValue& v) {
  struct Formatter {
    std::string operator()(int64_t x) const { return std::to_string(x); }
    std::string operator()(uint64_t x) const { return std::to_string(x); }
    std::string operator()(double x) const { return format_double(x); }
    std::string operator()(bool x) const { return x ? "true" : "false"; }
    std::string operator()(const std::string& s) const { return format_string(s); }
    std::string operator()(const std::vector<std::string>& items) const {
      std::string s = "[";
      for (size_t i = 0; i < items.size(); ++i) s += (i ? ", " : "") + format_string(items[i]);
      return s + "]";
    }
    std::string operator()(const std::vector<MixtureSource>& sources) const {
      return format_sources(sources);
    }
  };
  return std::visit(Formatter{}, v);
}

int edit_distance(const std::string& a, const std::string& b) {
  // Levenshtein with adjacent transpositions ("optimal string alignment"): "trian" -> "train" is 1.
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<int>> d(n + 1, std::vector<int>(m + 1));
  for (size_t i = 0; i <= n; ++i) d[i][0] = static_cast<int>(i);
  for (size_t j = 0; j <= m; ++j) d[0][j] = static_cast<int>(j);
  for (size_t i = 1; i <= n; ++i)
    for (size_t j = 1; j <= m; ++j) {
      d[i][j] = std::min(
          {d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[n][m];
}

int suggestion_tolerance(const std::string& typed) {
  const int n = static_cast<int>(typed.size());
  return n <= 2 ? 0 : std::max(1, n / 3);  // one- and two-letter names: exact aliases only
}

}  // namespace rrt
