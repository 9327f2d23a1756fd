// YAML in, YAML out, key=value overrides and the docs table: loops over config_fields().
#include "config/config_io.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "config/config_fields.h"
#include "config/config_sources.h"
#include "config/objective.h"
#include "core/error.h"

namespace rrt {

namespace {

// Where each key got its value, so that a check between fields can point at the line (or the
// override) responsible.
struct Origin {
  std::string where;
  int order = 0;  // later settings have larger numbers
  bool command_line = false;
};
struct Origins {
  std::map<std::string, Origin> of;  // key or section name -> origin
  int next = 0;
  void note(const std::string& key, const std::string& where, bool command_line) {
    of[key] = {where, next++, command_line};
  }
};

std::string at(const std::string& source, const YAML::Mark& mark) {
  return source + ":" + std::to_string(mark.line + 1);
}

// "'fast'", "a list", "a map", "nothing": what the user wrote, for "expected X, got Y".
std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return "'" + node.Scalar() + "'";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map (key: value lines)";
    default:
      return "nothing";
  }
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> items;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    const size_t b = item.find_first_not_of(" \t"), e = item.find_last_not_of(" \t");
    if (b != std::string::npos) items.push_back(item.substr(b, e - b + 1));
  }
  return items;
}

// Converts `node` to the field's type; on failure returns false with "expected ..., got ..."
// and, where the node is a collection, `mark` at the offending item.
bool read_value(const Field& f, const YAML::Node& node, FieldValue& out, std::string& error,
                YAML::Mark* mark = nullptr) {
  const std::string got = ", got " + describe(node);
  auto scalar_as = [&node]<typename T>(T& x) {
    if (!node.IsScalar()) return false;
    try {
      x = node.as<T>();
      return true;
    } catch (const YAML::Exception&) {
      return false;
    }
  };
  // Integers also accept an exact float ("steps: 1e5").
  auto whole_number = [&](double limit_lo, double limit_hi, double& x) {
    return scalar_as(x) && std::isfinite(x) && x == std::floor(x) && x >= limit_lo && x < limit_hi;
  };
  switch (f.type) {
    case FieldType::integer: {
      int64_t i;
      double x;
      if (scalar_as(i)) return out = i, true;
      if (whole_number(-0x1p63, 0x1p63, x)) return out = static_cast<int64_t>(x), true;
      error = "expected an integer" + got;
      return false;
    }
    case FieldType::unsigned_integer: {
      uint64_t u;
      double x;
      const bool negative = node.IsScalar() && node.Scalar().starts_with("-");
      if (!negative && scalar_as(u)) return out = u, true;
      if (whole_number(0, 0x1p64, x)) return out = static_cast<uint64_t>(x), true;
      error = "expected an integer >= 0" + got;
      return false;
    }
    case FieldType::number: {
      double x;
      if (scalar_as(x)) return out = x, true;
      error = "expected a number" + got;
      return false;
    }
    case FieldType::boolean: {
      bool b;
      if (scalar_as(b)) return out = b, true;
      error = "expected true or false" + got;
      return false;
    }
    case FieldType::string:
      if (node.IsNull()) return out = std::string(), true;
      if (node.IsScalar()) return out = node.Scalar(), true;
      error = "expected a string" + got;
      return false;
    case FieldType::choice:
      if (node.IsScalar()) return out = node.Scalar(), true;
      error = "expected one of " + describe_rule(f) + got;
      return false;
    case FieldType::list: {
      std::vector<std::string> items;
      if (node.IsNull()) return out = items, true;
      if (node.IsScalar()) return out = split_list(node.Scalar()), true;  // "q, v"
      if (node.IsSequence()) {
        for (const YAML::Node& item : node) {
          if (!item.IsScalar()) {
            error = "expected a list of names (" + describe_rule(f) + "), got an item that is " +
                    describe(item);
            return false;
          }
          items.push_back(item.Scalar());
        }
        return out = items, true;
      }
      error = "expected a list like [q, v] (" + describe_rule(f) + ")" + got;
      return false;
    }
    case FieldType::sources: {
      std::vector<MixtureSource> sources;
      YAML::Mark at_item;
      if (!read_sources(node, sources, error, at_item)) {
        if (mark) *mark = at_item;
        return false;
      }
      return out = sources, true;
    }
  }
  return false;
}

// "did you mean 'optim.lr'?" or the valid keys of the section. `section` may be unknown or
// empty (a key given at the top level).
std::string suggest_key(const std::string& section, const std::string& name,
                        const std::vector<Field>& fields) {
  auto same_section = [&section](const std::string& s) {
    if (s == section) return true;
    for (const SectionInfo& info : config_sections())
      if (info.name == s)
        for (const std::string& alias : info.aliases)
          if (alias == section) return true;
    return false;
  };
  // The nearest name or alias; between equals, one in the section the user wrote wins.
  const Field* best = nullptr;
  int best_distance = 0, best_score = 0;
  for (const Field& f : fields) {
    if (f.role == FieldRole::derived) continue;
    int distance = edit_distance(name, f.name);
    for (const std::string& alias : f.aliases)
      distance = std::min(distance, edit_distance(name, alias));
    const int score = 2 * distance + (same_section(f.section) ? 0 : 1);
    if (!best || score < best_score) best = &f, best_score = score, best_distance = distance;
  }
  if (best && best_distance <= suggestion_tolerance(name))
    return "did you mean '" + best->key() + "'?";
  std::string keys;
  for (const Field& f : fields)
    if (f.section == section && f.role != FieldRole::derived)
      keys += (keys.empty() ? "" : ", ") + f.name;
  if (!keys.empty()) return "the keys of " + section + " are " + keys;
  std::string all;
  for (const SectionInfo& info : config_sections()) all += (all.empty() ? "" : ", ") + info.name;
  return "the sections are " + all;
}

const SectionInfo* find_section(const std::string& name) {
  for (const SectionInfo& info : config_sections())
    if (info.name == name) return &info;
  return nullptr;
}

std::string unknown_section_message(const std::string& name, const std::vector<Field>& fields) {
  std::string message = "unknown section '" + name + "'; ";
  // A key written at the top level instead of inside its section ("lr: 1e-3").
  for (const Field& f : fields) {
    bool match = f.name == name && f.role != FieldRole::derived;
    for (const std::string& alias : f.aliases) match = match || alias == name;
    if (match) return message + "keys go inside their section: did you mean '" + f.key() + "'?";
  }
  const SectionInfo* best = nullptr;
  int best_cost = 0;
  for (const SectionInfo& info : config_sections()) {
    int cost = edit_distance(name, info.name);
    for (const std::string& alias : info.aliases) cost = std::min(cost, edit_distance(name, alias));
    if (!best || cost < best_cost) best = &info, best_cost = cost;
  }
  if (best_cost <= suggestion_tolerance(name))
    return message + "did you mean '" + best->name + "'?";
  return message + suggest_key("", name, fields);
}

Field* find_field(std::vector<Field>& fields, const std::string& key) {
  for (Field& f : fields)
    if (f.key() == key) return &f;
  return nullptr;
}

std::string derived_message(const Field& f) { return f.key() + " is derived, not set: " + f.doc; }

// block_layers = n_layers / loops; left alone when that is not whole (validation reports it).
void derive(RunConfig& c) {
  const int64_t layers = c.model.model.n_layers, loops = c.model.recursion.loops;
  if (layers > 0 && loops > 0 && layers % loops == 0)
    c.model.recursion.block_layers = layers / loops;
  derive_exit_head(c);
}

void read_yaml(RunConfig& config, const std::string& text, const std::string& source,
               Origins& origins) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    RRT_FAIL(at(source, e.mark), "YAML syntax error: ", e.msg,
             " (check the indentation and the ': ' after each key)");
  }
  if (root.IsNull()) return;  // an empty file: all defaults
  RRT_CHECK(root.IsMap(), at(source, root.Mark()),
            "expected sections (model:, optim:, ...) at the top level, got ", describe(root));

  std::vector<Field> fields = config_fields(config);
  std::map<std::string, std::pair<YAML::Node, YAML::Node>> given;  // key -> (key node, value)
  for (const auto& section : root) {
    const std::string where = at(source, section.first.Mark());
    const std::string name = section.first.as<std::string>("");
    RRT_CHECK(find_section(name), where, unknown_section_message(name, fields));
    RRT_CHECK(!origins.of.count(name), where, "section '", name, "' appears twice (first at ",
              origins.of[name].where, "); merge the two");
    origins.note(name, where, false);
    const YAML::Node& body = section.second;
    if (body.IsNull()) continue;
    RRT_CHECK(body.IsMap(), at(source, body.Mark()), "section '", name,
              "' must hold indented 'key: value' lines, got ", describe(body));
    for (const auto& entry : body) {
      const std::string key_where = at(source, entry.first.Mark());
      const std::string key = name + "." + entry.first.as<std::string>("");
      const Field* f = find_field(fields, key);
      RRT_CHECK(f, key_where, "unknown key '", key, "'; ",
                suggest_key(name, entry.first.as<std::string>(""), fields));
      RRT_CHECK(f->role != FieldRole::derived, key_where, derived_message(*f));
      RRT_CHECK(!given.count(key), key_where, "key '", key, "' appears twice (first at ",
                at(source, given[key].first.Mark()), "); keep one");
      given[key] = {entry.first, entry.second};
    }
  }
  // In field order, so that a shorthand (lora.rank) comes before the keys that refine it.
  for (Field& f : fields) {
    auto it = given.find(f.key());
    if (it == given.end()) continue;
    const std::string where = at(source, it->second.first.Mark());
    FieldValue value;
    std::string error;
    YAML::Mark mark = it->second.first.Mark();
    if (read_value(f, it->second.second, value, error, &mark)) error = check_field(f, value);
    RRT_CHECK(error.empty(), at(source, mark), f.key(), ": ", error);
    f.set(value);
    origins.note(f.key(), where, false);
  }
}

void override_one(RunConfig& config, const std::string& arg, Origins* origins) {
  const std::string where = "command line: " + arg;
  const size_t eq = arg.find('=');
  RRT_CHECK(eq != std::string::npos && eq > 0, where,
            "expected section.key=value, e.g. optim.lr=1e-3");
  const std::string key = arg.substr(0, eq), text = arg.substr(eq + 1);
  const size_t dot = key.find('.');
  const std::string section = dot == std::string::npos ? "" : key.substr(0, dot);
  const std::string name = dot == std::string::npos ? key : key.substr(dot + 1);

  std::vector<Field> fields = config_fields(config);
  Field* f = find_field(fields, key);
  RRT_CHECK(f, where, "unknown key '", key, "'; ", suggest_key(section, name, fields));
  RRT_CHECK(f->role != FieldRole::derived, where, derived_message(*f));

  FieldValue value;
  std::string error;
  bool ok;
  if (f->type == FieldType::string) {
    value = text;  // verbatim: paths may hold ':' or '#'
    ok = true;
  } else if ((f->type == FieldType::list || f->type == FieldType::sources) &&
             text.starts_with("[")) {
    try {
      ok = read_value(*f, YAML::Load(text), value, error);
    } catch (const YAML::Exception&) {
      ok = false;
      error = "expected a list like [q, v] or q,v, got '" + text + "'";
    }
  } else {
    ok = read_value(*f, YAML::Node(text), value, error);
  }
  if (ok) error = check_field(*f, value);
  RRT_CHECK(error.empty(), where, key, ": ", error);
  f->set(value);
  derive(config);
  if (origins) origins->note(key, where, true);
}

// Keys whose values take part in the check named by an error's where(), besides that key.
const std::map<std::string, std::vector<std::string>>& related_keys() {
  static const std::map<std::string, std::vector<std::string>> related = {
      {"recursion.loops", {"model.n_layers"}},
      {"recursion.block_layers", {"recursion.loops", "model.n_layers"}},
      {"model.n_kv_heads", {"model.n_heads"}},
      {"model.n_heads", {"model.d_model", "model.head_dim"}},
      {"model.head_dim", {"model.d_model", "model.n_heads"}},
      {"model.rotary_fraction", {"model.head_dim", "model.d_model", "model.n_heads"}},
      {"lora.rank", {"lora.rank_attention", "lora.rank_mlp"}},
      {"lora.rank_attention",
       {"lora.rank", "lora.targets", "model.n_kv_heads", "model.head_dim", "model.d_model"}},
      {"lora.rank_mlp", {"lora.rank", "lora.targets", "model.ffn", "model.d_model"}},
      {"train.seq_len", {"model.max_seq_len"}},
      {"data.sources", {"data.path"}},
      {"model.vocab", {"data.tokenizer"}},
      {"recursion", {"recursion.loops", "model.n_layers"}},
      {"early_exit.exits", {"recursion.loops", "recursion.sharing", "model.n_layers"}},
      {"early_exit.weights", {"early_exit.exits"}},
      {"early_exit.self_distill", {"early_exit.exits"}},
      {"early_exit.train",
       {"lora.rank", "lora.rank_attention", "lora.rank_mlp", "early_exit.head_lora_rank"}},
      {"early_exit.head_lora_rank", {"early_exit.exits"}},
  };
  return related;
}

// Validates and, on failure, rethrows with where() pointing at the line or override that set
// the offending value: the newest override among the keys involved, else the key itself, else
// a related key, else its section, else the file.
void validate_at_origin(const RunConfig& config, const Origins& origins,
                        const std::string& source) {
  try {
    validate_run_config(config);
  } catch (const Error& e) {
    const std::string& key = e.where();
    const std::string message = std::string(e.what()).substr(key.size() + 3);  // "[key] "
    std::vector<std::string> candidates = {key};
    if (auto it = related_keys().find(key); it != related_keys().end())
      candidates.insert(candidates.end(), it->second.begin(), it->second.end());
    const Origin* chosen = nullptr;
    for (const std::string& k : candidates) {
      auto it = origins.of.find(k);
      if (it == origins.of.end()) continue;
      const Origin& o = it->second;
      const bool newer_override =
          o.command_line && (!chosen || !chosen->command_line || o.order > chosen->order);
      if (!chosen || newer_override) chosen = &o;
    }
    if (!chosen) {
      auto it = origins.of.find(key.substr(0, key.find('.')));
      if (it != origins.of.end()) chosen = &it->second;
    }
    const std::string where = chosen ? chosen->where : source;
    throw Error(where, key + ": " + message);
  }
}

}  // namespace

RunConfig parse_run_config(const std::string& yaml_text, const std::string& source_name,
                           const std::vector<std::string>& overrides) {
  RunConfig config;
  Origins origins;
  read_yaml(config, yaml_text, source_name, origins);
  derive(config);
  for (const std::string& arg : overrides) override_one(config, arg, &origins);
  validate_at_origin(config, origins, source_name);
  return config;
}

RunConfig read_run_config_unchecked(const std::string& yaml_text, const std::string& source_name) {
  RunConfig config;
  Origins origins;
  read_yaml(config, yaml_text, source_name, origins);
  derive(config);
  return config;
}

RunConfig load_run_config(const std::string& yaml_path, const std::vector<std::string>& overrides) {
  std::ifstream in(yaml_path);
  RRT_CHECK(in, yaml_path, "cannot open the config file (", std::strerror(errno),
            "); check the path, e.g. configs/tiny.yaml");
  std::stringstream text;
  text << in.rdbuf();
  return parse_run_config(text.str(), yaml_path, overrides);
}

void apply_override(RunConfig& config, const std::string& key_equals_value) {
  override_one(config, key_equals_value, nullptr);
}

std::string to_yaml(const RunConfig& config) {
  RunConfig copy = config;
  std::string out = "# rrt run config, resolved: every key with the value the run used.\n";
  std::string section;
  for (const Field& f : config_fields(copy)) {
    if (f.section != section) {
      section = f.section;
      out += section + ":\n";
    }
    if (f.role == FieldRole::input_only) continue;
    const std::string line = f.name + ": " + format_value(f.get());
    out += f.role == FieldRole::derived ? "  # " + line + "  (derived, not a key)\n"
                                        : "  " + line + "\n";
  }
  return out;
}

std::vector<std::string> all_config_keys() {
  RunConfig config;
  std::vector<std::string> keys;
  for (const Field& f : config_fields(config))
    if (f.role != FieldRole::derived) keys.push_back(f.key());
  return keys;
}

std::string config_reference_markdown() {
  RunConfig defaults;
  std::string out;
  std::string section;
  for (const Field& f : config_fields(defaults)) {
    if (f.section != section) {
      section = f.section;
      for (const SectionInfo& info : config_sections())
        if (info.name == section)
          out +=
              std::string(out.empty() ? "" : "\n") + "### " + section + "\n\n" + info.doc + ".\n\n";
      out += "| key | type | default | allowed | meaning |\n|---|---|---|---|---|\n";
    }
    const bool derived = f.role == FieldRole::derived;
    out.append("| `").append(f.key()).append("` | ").append(type_name(f.type)).append(" | ");
    if (derived)
      out.append("derived | ");
    else
      out.append("`").append(format_value(f.get())).append("` | ");
    out.append(describe_rule(f)).append(" | ");
    if (f.role == FieldRole::input_only) out.append("(input only) ");
    if (derived) out.append("(not a key: printed as a comment) ");
    out.append(f.doc).append(" |\n");
  }
  return out;
}

}  // namespace rrt
