// The field list of the run configuration: every YAML key once, with its type, doc string and
// rule (range, choices), bound to one RunConfig. Parsing, validation, printing, key=value
// overrides and the docs table are all loops over this list (config/config_io.cpp).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "config/run_config.h"

namespace rrt {

// sources: data.sources, a list of maps (config/config_sources.h).
enum class FieldType { integer, unsigned_integer, number, boolean, string, choice, list, sources };

// What a field holds, whatever its C++ type: choices (enums included) travel as their name.
using FieldValue = std::variant<int64_t, uint64_t, double, bool, std::string,
                                std::vector<std::string>, std::vector<MixtureSource>>;

enum class FieldRole {
  normal,      // read, validated, printed
  input_only,  // a shorthand that sets other fields (lora.rank); not printed
  derived,     // computed from other fields (recursion.block_layers); printed as a comment only
};

struct Field {
  std::string section, name;
  FieldType type = FieldType::integer;
  std::string doc;
  std::function<FieldValue()> get;
  std::function<void(const FieldValue&)> set;  // empty for derived fields

  // Rule. Numbers: lo/hi bounds (open or closed). choice: the allowed values. list: the allowed
  // items (each at most once). string: non_empty.
  std::optional<double> lo, hi;
  bool lo_open = false, hi_open = false;
  std::vector<std::string> choices;
  bool non_empty = false;
  FieldRole role = FieldRole::normal;
  // Names other trainers use for this field; only for "did you mean" suggestions.
  std::vector<std::string> aliases;
  // Lists of free items (no choices): a check of the items ("" when fine, else what is wrong)
  // and the rule in words for errors and docs.
  std::function<std::string(const std::vector<std::string>&)> check_items;
  std::string rule_text;

  std::string key() const { return section + "." + name; }

  Field& at_least(double v) {
    lo = v;
    lo_open = false;
    return *this;
  }
  Field& above(double v) {
    lo = v;
    lo_open = true;
    return *this;
  }
  Field& at_most(double v) {
    hi = v;
    hi_open = false;
    return *this;
  }
  Field& below(double v) {
    hi = v;
    hi_open = true;
    return *this;
  }
  Field& required() {
    non_empty = true;
    return *this;
  }
  Field& also_called(std::vector<std::string> names) {
    aliases = std::move(names);
    return *this;
  }
  Field& items(std::function<std::string(const std::vector<std::string>&)> check,
               std::string text) {
    check_items = std::move(check);
    rule_text = std::move(text);
    return *this;
  }
  Field& only_input() {
    role = FieldRole::input_only;
    return *this;
  }
};

struct SectionInfo {
  std::string name, doc;
  std::vector<std::string> aliases;  // for suggestions only
};

// The sections in file order.
const std::vector<SectionInfo>& config_sections();

// Every field of every section, in file order, bound to `config` (the closures hold references
// into it: keep it alive while the list is used).
std::vector<Field> config_fields(RunConfig& config);

// "" when `value` satisfies the field's rule, else what is wrong ("must be > 0, got -1").
std::string check_field(const Field& field, const FieldValue& value);

// The rule in words: "> 0", "[0, 1)", "llama, gemma, neox" (the choices), "".
std::string describe_rule(const Field& field);
// "integer", "number", "bool", "string", "choice", "list", "sources".
std::string type_name(FieldType type);

// The value as YAML text: numbers round-trip exactly, strings are quoted when they would read
// as something else, lists in flow style "[q, k, v]".
std::string format_value(const FieldValue& value);

// For "did you mean": the edit distance (adjacent transpositions count 1), and the largest
// distance from what was typed at which a suggestion is still offered.
int edit_distance(const std::string& a, const std::string& b);
int suggestion_tolerance(const std::string& typed);

}  // namespace rrt
