// How the field lists of config_fields.cpp and config_fields_run.cpp are built: a Field bound to
// a plain member, to a string restricted to a few values, or to an enum spelled by names; and the
// lists of the run sections, which config_fields.cpp joins. Only those two files include it.
#pragma once

#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "config/config_fields.h"
#include "core/error.h"

namespace rrt::field_lists {

template <typename T>
constexpr FieldType type_of() {
  if constexpr (std::is_same_v<T, int64_t>) return FieldType::integer;
  if constexpr (std::is_same_v<T, uint64_t>) return FieldType::unsigned_integer;
  if constexpr (std::is_same_v<T, double>) return FieldType::number;
  if constexpr (std::is_same_v<T, bool>) return FieldType::boolean;
  if constexpr (std::is_same_v<T, std::string>) return FieldType::string;
  if constexpr (std::is_same_v<T, std::vector<std::string>>) return FieldType::list;
  if constexpr (std::is_same_v<T, std::vector<MixtureSource>>) return FieldType::sources;
}

// A field stored as a plain member.
template <typename T>
Field field(const char* name, T& member, const char* doc) {
  Field f;
  f.name = name;
  f.type = type_of<T>();
  f.doc = doc;
  f.get = [&member] { return FieldValue(member); };
  f.set = [&member](const FieldValue& v) { member = std::get<T>(v); };
  return f;
}

// A string member restricted to a few values.
inline Field choice(const char* name, std::string& member, std::vector<std::string> values,
                    const char* doc) {
  Field f = field(name, member, doc);
  f.type = FieldType::choice;
  f.choices = std::move(values);
  return f;
}

// An enum member, spelled in YAML by the names in `names`.
template <typename E>
Field choice(const char* name, E& member, std::vector<std::pair<std::string, E>> names,
             const char* doc) {
  Field f;
  f.name = name;
  f.type = FieldType::choice;
  f.doc = doc;
  for (const auto& [text, value] : names) f.choices.push_back(text);
  f.get = [&member, names] {
    for (const auto& [text, value] : names)
      if (value == member) return FieldValue(text);
    return FieldValue(std::string("?"));
  };
  f.set = [&member, names, key = std::string(name)](const FieldValue& v) {
    for (const auto& [text, value] : names)
      if (text == std::get<std::string>(v)) {
        member = value;
        return;
      }
    RRT_FAIL(key, "unknown value '", std::get<std::string>(v), "'");
  };
  return f;
}

// The lists of the run sections (config_fields_run.cpp).
std::vector<Field> train_fields(TrainConfig& t);
std::vector<Field> distill_fields(DistillConfig& d);
std::vector<Field> early_exit_fields(EarlyExitConfig& e, ExitHeadConfig& head);
std::vector<Field> checkpoint_fields(CheckpointConfig& c);
std::vector<Field> distributed_fields(DistributedConfig& d);
std::vector<Field> log_fields(LogConfig& l);

}  // namespace rrt::field_lists
