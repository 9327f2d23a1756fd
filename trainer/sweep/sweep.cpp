#include "trainer/sweep/sweep.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "checkpoint/checkpoint.h"
#include "config/config_fields.h"
#include "config/config_io.h"
#include "config/resume_check.h"
#include "core/durable_file.h"
#include "core/error.h"
#include "model/convert.h"

namespace rrt {

namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kTopKeys = {"name",   "base",    "config", "set",
                                           "before", "convert", "grid",   "zip"};
const std::vector<std::string> kConvertKeys = {"from", "init", "lora_init", "seed"};

std::string at(const std::string& source, const YAML::Mark& mark) {
  return source + ":" + std::to_string(mark.line + 1);
}

std::string read_text(const std::string& path, const std::string& what) {
  std::ifstream in(path);
  RRT_CHECK(in, path, "cannot open the ", what, " (", std::strerror(errno), ")");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// "[where] message" -> "message"
std::string message_of(const Error& e) {
  const std::string all = e.what();
  return all.substr(std::min(all.size(), e.where().size() + 3));
}

std::string closest(const std::string& name, const std::vector<std::string>& candidates) {
  std::string best;
  int best_d = 1 << 30;
  for (const std::string& c : candidates)
    if (int d = edit_distance(name, c); d < best_d) best_d = d, best = c;
  return best_d <= std::max<int>(2, static_cast<int>(name.size()) / 3) ? best : "";
}

// A YAML value as override text: scalars as written, lists as "[a, b]".
std::string value_text(const YAML::Node& node, const std::string& where, const std::string& key) {
  if (node.IsNull()) return "";
  if (node.IsScalar()) return node.Scalar();
  if (node.IsSequence()) {
    std::string out = "[";
    for (size_t i = 0; i < node.size(); ++i) {
      RRT_CHECK(node[i].IsScalar(), where, key, ": a list value holds only plain items, got ",
                node[i].IsSequence() ? "a nested list" : "a map");
      if (i) out += ", ";
      out += node[i].Scalar();
    }
    return out + "]";
  }
  RRT_FAIL(where, key, ": expected a value or a list, got a map");
}

struct Setting {
  std::string key, text, where;
};

struct Axis {
  std::vector<std::string> keys;
  std::vector<std::vector<Setting>> positions;  // positions[i]: one Setting per key
  std::vector<std::string> labels;              // zip labels (empty: derived from the values)
  std::string where;
};

struct Parsed {
  std::string name, base_text, base_source;
  std::vector<Setting> set;
  std::vector<Axis> axes;
  std::optional<ConvertStep> convert;
  std::vector<std::string> convert_where;  // where each convert.* key was set
  std::vector<std::string> before;
};

bool is_convert_key(const std::string& key) { return key.starts_with("convert."); }

// Checks one key=value against the base config (or the convert rules) and throws at `where`.
void check_setting(const RunConfig& base, const Setting& s, const std::string& what) {
  const std::string prefix = what + " " + s.key + ": ";
  if (is_convert_key(s.key)) {
    const std::string name = s.key.substr(8);
    if (name == "init") {
      const auto& rules = init_rule_names();
      RRT_CHECK(std::count(rules.begin(), rules.end(), s.text), s.where, prefix,
                "unknown init rule '", s.text, "'; expected one of ", init_rule_choices());
    } else if (name == "lora_init") {
      const auto& names = lora_init_names();
      RRT_CHECK(std::count(names.begin(), names.end(), s.text), s.where, prefix, "expected ",
                lora_init_choices(), ", got '", s.text, "'");
    } else if (name == "seed") {
      RRT_CHECK(!s.text.empty() && s.text.find_first_not_of("0123456789") == std::string::npos,
                s.where, prefix, "expected an integer >= 0, got '", s.text, "'");
    } else if (name == "from") {
      RRT_CHECK(!s.text.empty(), s.where, prefix,
                "give a run directory, an rrt checkpoint, an HF directory or a .gguf file");
    } else {
      const std::string near = closest(name, kConvertKeys);
      RRT_FAIL(s.where, what, " ", s.key, ": unknown key '", s.key, "'; ",
               near.empty() ? "convert takes from, init, lora_init, seed"
                            : "did you mean 'convert." + near + "'?");
    }
    return;
  }
  RRT_CHECK(s.key != "train.run_dir", s.where, prefix,
            "the sweep sets each run's directory (<out>/<run name>); choose the out directory "
            "with --out");
  RunConfig probe = base;
  try {
    apply_override(probe, s.key + "=" + s.text);
  } catch (const Error& e) {
    std::string message = message_of(e);  // "optim.lr: expected ..." -> "expected ..."
    if (message.starts_with(s.key + ": ")) message = message.substr(s.key.size() + 2);
    throw Error(s.where, what + " " + s.key + ": " + message);
  }
}

// The lines of an inline `config:` block, at their own line numbers (blank lines before them),
// dedented, so that errors in it point at the sweep file's lines.
std::string inline_config_text(const std::string& text, const YAML::Node& key,
                               const YAML::Node& body) {
  if (body.Mark().line == key.Mark().line || !body.IsMap())  // flow style: {model: {...}}
    return YAML::Dump(body);
  std::vector<std::string> lines;
  std::stringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  const size_t first = static_cast<size_t>(body.Mark().line);
  const size_t indent = static_cast<size_t>(body.Mark().column);
  std::string out(first, '\n');
  for (size_t i = first; i < lines.size(); ++i) {
    const std::string& l = lines[i];
    const size_t content = l.find_first_not_of(' ');
    if (content != std::string::npos && content < indent && l[content] != '#') break;
    out += (l.size() >= indent ? l.substr(indent) : std::string()) + "\n";
  }
  return out;
}

Parsed parse_file(const std::string& text, const std::string& source, const std::string& base_dir) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    RRT_FAIL(at(source, e.mark), "YAML syntax error: ", e.msg,
             " (check the indentation and the ': ' after each key)");
  }
  RRT_CHECK(root.IsMap(), source,
            "a sweep file holds base: (or config:), set:, grid: and zip: at the top level");
  Parsed p;
  p.name = fs::path(source).stem().string();
  bool have_base = false;
  std::map<std::string, std::string> seen_keys;
  for (const auto& entry : root) {
    const std::string key = entry.first.as<std::string>("");
    const std::string where = at(source, entry.first.Mark());
    RRT_CHECK(!seen_keys.count(key), where, "'", key, "' appears twice (first at ", seen_keys[key],
              "); merge them into one");
    seen_keys[key] = where;
    const YAML::Node& v = entry.second;
    if (key == "name") {
      RRT_CHECK(v.IsScalar() && !name_segment(v.Scalar()).empty(), where,
                "name: expected a short name for the sweep");
      p.name = name_segment(v.Scalar());
    } else if (key == "base" || key == "config") {
      RRT_CHECK(!have_base, where, "give the base config once: base: FILE or config: (inline)");
      have_base = true;
      if (key == "base") {
        RRT_CHECK(v.IsScalar() && !v.Scalar().empty(), where,
                  "base: expected the path of a run config, relative to the sweep file");
        const fs::path path = fs::path(v.Scalar()).is_absolute() ? fs::path(v.Scalar())
                                                                 : fs::path(base_dir) / v.Scalar();
        p.base_source = path.lexically_normal().string();
        p.base_text = read_text(p.base_source, "base config named at " + where);
      } else {
        RRT_CHECK(v.IsMap(), where, "config: expected the sections of a run config (model:, ...)");
        p.base_text = inline_config_text(text, entry.first, v);
        p.base_source = source;
      }
    } else if (key == "set") {
      RRT_CHECK(v.IsMap() || v.IsNull(), where,
                "set: expected 'section.key: value' lines (e.g. train.steps: 100)");
      for (const auto& kv : v) {
        const std::string k = kv.first.as<std::string>("");
        const std::string w = at(source, kv.first.Mark());
        RRT_CHECK(!kv.second.IsMap(), w, "set ", k,
                  ": expected a value; write keys in full, e.g. train.steps: 100");
        p.set.push_back({k, value_text(kv.second, w, k), w});
      }
    } else if (key == "before") {
      RRT_CHECK(v.IsSequence() || v.IsScalar(), where,
                "before: expected a list of sweep files, relative to this file");
      std::vector<std::string> files;
      if (v.IsScalar()) files.push_back(v.Scalar());
      for (const auto& item : v)
        if (item.IsScalar()) files.push_back(item.Scalar());
      for (const std::string& f : files)
        p.before.push_back(
            (fs::path(f).is_absolute() ? fs::path(f) : fs::path(base_dir) / f).lexically_normal());
    } else if (key == "convert") {
      RRT_CHECK(v.IsMap(), where, "convert: expected from:, init:, lora_init:, seed: lines");
      p.convert = ConvertStep{};
      for (const auto& kv : v) {
        const std::string k = "convert." + kv.first.as<std::string>("");
        const std::string w = at(source, kv.first.Mark());
        p.set.push_back({k, value_text(kv.second, w, k), w});
      }
    } else if (key == "grid") {
      RRT_CHECK(v.IsMap(), where, "grid: expected 'section.key: [values]' lines");
      for (const auto& kv : v) {
        Axis axis;
        const std::string k = kv.first.as<std::string>("");
        axis.where = at(source, kv.first.Mark());
        axis.keys = {k};
        RRT_CHECK(kv.second.IsSequence() || kv.second.IsNull(), axis.where, "axis ", k,
                  ": expected a list of values, e.g. ", k, ": [a, b]");
        for (const auto& item : kv.second)
          axis.positions.push_back(
              {{k, value_text(item, at(source, item.Mark()), k), at(source, item.Mark())}});
        RRT_CHECK(!axis.positions.empty(), axis.where, "axis ", k,
                  " is empty: give it at least one value, or remove it");
        p.axes.push_back(std::move(axis));
      }
    } else if (key == "zip") {
      std::vector<YAML::Node> groups;
      if (v.IsMap())
        groups.push_back(v);
      else if (v.IsSequence())
        for (const auto& g : v) groups.push_back(g);
      RRT_CHECK(!groups.empty(), where,
                "zip: expected 'section.key: [values]' lines (or a list of such groups)");
      for (const YAML::Node& g : groups) {
        RRT_CHECK(g.IsMap(), at(source, g.Mark()),
                  "zip: each group holds 'section.key: [values]' lines");
        Axis axis;
        axis.where = at(source, g.Mark());
        std::vector<std::pair<std::string, YAML::Node>> lists;
        for (const auto& kv : g) {
          const std::string k = kv.first.as<std::string>("");
          const std::string w = at(source, kv.first.Mark());
          RRT_CHECK(kv.second.IsSequence() || kv.second.IsNull(), w, "zip axis ", k,
                    ": expected a list of values, e.g. ", k, ": [a, b]");
          RRT_CHECK(kv.second.size() > 0, w, "zip axis ", k,
                    " is empty: give it one value per position of the group");
          if (k == "label") {
            for (const auto& item : kv.second) axis.labels.push_back(value_text(item, w, k));
            continue;
          }
          lists.emplace_back(k, kv.second);
          axis.keys.push_back(k);
        }
        RRT_CHECK(!lists.empty(), axis.where, "zip: a group needs at least one key");
        const size_t n = lists[0].second.size();
        for (const auto& [k, list] : lists)
          RRT_CHECK(list.size() == n, at(source, list.Mark()), "zip axis ", k, " has ", list.size(),
                    " values but ", lists[0].first, " has ", n,
                    ": the keys of a zip group move together, so they need equally many");
        RRT_CHECK(axis.labels.empty() || axis.labels.size() == n, axis.where, "zip: label has ",
                  axis.labels.size(), " names for ", n, " positions");
        for (size_t i = 0; i < n; ++i) {
          std::vector<Setting> position;
          for (const auto& [k, list] : lists)
            position.push_back({k, value_text(list[i], at(source, list[i].Mark()), k),
                                at(source, list[i].Mark())});
          axis.positions.push_back(std::move(position));
        }
        p.axes.push_back(std::move(axis));
      }
    } else {
      const std::string near = closest(key, kTopKeys);
      RRT_FAIL(where, "unknown key '", key, "' in a sweep file; ",
               near.empty() ? "expected name, base, config, set, before, convert, grid, zip"
                            : "did you mean '" + near + "'?");
    }
  }
  RRT_CHECK(have_base, source,
            "no base config: add base: FILE (a run config, relative to the sweep file) or an "
            "inline config: section");
  return p;
}

}  // namespace

std::string name_segment(const std::string& text) {
  std::string out;
  for (char c : text) {
    const bool keep =
        std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '+' || c == '-' || c == '_';
    const char put = keep ? c : '-';
    if (put == '-' && !out.empty() && out.back() == '-') continue;
    out += put;
  }
  while (!out.empty() && (out.back() == '-' || out.back() == '.')) out.pop_back();
  while (!out.empty() && (out.front() == '-' || out.front() == '.')) out.erase(out.begin());
  return out;
}

Sweep parse_sweep(const std::string& yaml_text, const std::string& source,
                  const std::string& base_dir, const std::string& out_dir,
                  const std::vector<std::string>& overrides) {
  const Parsed p = parse_file(yaml_text, source, base_dir);
  const RunConfig base = parse_run_config(p.base_text, p.base_source);
  Sweep sweep;
  sweep.file = source;
  sweep.name = p.name;
  sweep.out_dir = out_dir.empty() ? (fs::path("runs/sweeps") / p.name).string() : out_dir;
  sweep.before = p.before;

  // Every key and value on its own first, so that the error names the line that set it.
  std::set<std::string> seen;
  for (const Setting& s : p.set) {
    RRT_CHECK(seen.insert(s.key).second, s.where, "key ", s.key, " is set twice; keep one");
    check_setting(base, s, "set");
  }
  bool convert = p.convert.has_value();
  std::map<std::string, std::string> short_names;
  for (const Axis& a : p.axes) {
    for (const std::string& k : a.keys) {
      RRT_CHECK(seen.insert(k).second, a.where, "axis ", k,
                " is swept twice, or also fixed under set:/convert:; keep one");
      if (is_convert_key(k)) convert = true;
      sweep.swept_keys.push_back(k);
    }
    for (const auto& position : a.positions)
      for (const Setting& s : position) check_setting(base, s, "axis");
  }
  RRT_CHECK(!convert || !seen.count("train.init_from"), source,
            "a sweep with convert: makes each run's train.init_from (<run>/init.h5); do not set "
            "train.init_from too");
  RRT_CHECK(!convert || seen.count("convert.from"), source,
            "convert: needs from: (a run directory, an rrt checkpoint, an HF directory or a "
            ".gguf file)");
  for (const std::string& o : overrides) {
    const std::string key = o.substr(0, o.find('='));
    RRT_CHECK(
        std::find(sweep.swept_keys.begin(), sweep.swept_keys.end(), key) == sweep.swept_keys.end(),
        "command line: " + o, key, " is an axis of ", source,
        "; an override would make its runs identical");
  }
  // Name segments: the key's last part, or the whole key where two axes share a last part.
  std::map<std::string, int> last_parts;
  for (const std::string& k : sweep.swept_keys) ++last_parts[k.substr(k.rfind('.') + 1)];
  auto segment_of = [&](const Setting& s) {
    const std::string last = s.key.substr(s.key.rfind('.') + 1);
    const std::string label = last_parts[last] > 1 ? name_segment(s.key) : last;
    std::string value = name_segment(s.text);
    return label + "-" + (value.empty() ? "empty" : value);
  };

  // Odometer over the axes, the first outermost.
  std::vector<size_t> index(p.axes.size(), 0);
  std::map<std::string, std::string> names;  // run name -> its values, to report clashes
  while (true) {
    SweepRun run;
    std::vector<Setting> settings = p.set;
    std::vector<std::string> segments;
    for (size_t a = 0; a < p.axes.size(); ++a) {
      const Axis& axis = p.axes[a];
      const auto& position = axis.positions[index[a]];
      std::string seg;
      for (const Setting& s : position) {
        settings.push_back(s);
        run.values.emplace_back(s.key, s.text);
        if (!seg.empty()) seg += '_';
        seg += segment_of(s);
      }
      if (!axis.labels.empty()) seg = name_segment(axis.labels[index[a]]);
      segments.push_back(seg.empty() ? "empty" : seg);
    }
    for (const std::string& s : segments) {
      if (!run.name.empty()) run.name += '_';
      run.name += s;
    }
    if (run.name.empty()) run.name = p.name;
    std::string described;
    for (const auto& [k, v] : run.values) {
      if (!described.empty()) described += ", ";
      described.append(k).append("=").append(v);
    }
    RRT_CHECK(!names.count(run.name), source, "runs (", names[run.name], ") and (", described,
              ") would both be named '", run.name,
              "': their values differ only in characters a directory name drops; add a zip "
              "label");
    names[run.name] = described;
    run.dir = (fs::path(sweep.out_dir) / run.name).string();

    std::vector<std::string> args;
    std::map<std::string, std::string> where_of;  // override text -> sweep file line
    for (const Setting& s : settings) {
      if (is_convert_key(s.key)) {
        if (!run.convert) run.convert = ConvertStep{};
        const std::string name = s.key.substr(8);
        if (name == "from") run.convert->from = s.text;
        if (name == "init") run.convert->init = s.text;
        if (name == "lora_init") run.convert->lora_init = s.text;
        if (name == "seed") run.convert->seed = std::stoull(s.text);
        continue;
      }
      args.push_back(s.key + "=" + s.text);
      where_of["command line: " + args.back()] = s.where;
    }
    args.insert(args.end(), overrides.begin(), overrides.end());
    args.push_back("train.run_dir=" + run.dir);
    if (run.convert) args.push_back("train.init_from=" + (fs::path(run.dir) / "init.h5").string());
    try {
      run.config = parse_run_config(p.base_text, p.base_source, args);
    } catch (const Error& e) {
      auto it = where_of.find(e.where());
      throw Error(it != where_of.end() ? it->second : e.where(),
                  "run '" + run.name + "' (" + (described.empty() ? "no axes" : described) +
                      "): " + message_of(e));
    }
    sweep.runs.push_back(std::move(run));

    bool done = true;  // advance the odometer: the last axis fastest
    for (size_t a = p.axes.size(); a-- > 0;) {
      if (++index[a] < p.axes[a].positions.size()) {
        done = false;
        break;
      }
      index[a] = 0;
    }
    if (done) break;
  }
  return sweep;
}

Sweep load_sweep(const std::string& path, const std::string& out_dir,
                 const std::vector<std::string>& overrides) {
  const std::string text = read_text(path, "sweep file");
  return parse_sweep(text, path, fs::path(path).parent_path().string(), out_dir, overrides);
}

bool run_finished(const SweepRun& run) {
  return fs::exists(checkpoint_path(run.dir, run.config.train.steps));
}

namespace {

void write_text_atomically(const fs::path& path, const std::string& text) {
  const std::string tmp = temporary_path(path.string());
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    out.close();
    RRT_CHECK(out.good(), path.string(), "cannot write (disk full, or no permission?)");
  }
  commit_temporary_file(tmp, path.string(), path.string());
}

}  // namespace

std::pair<std::string, std::string> first_config_difference(const std::string& a,
                                                            const std::string& b) {
  std::stringstream sa(a), sb(b);
  std::string la, lb, section;
  while (true) {
    const bool ga = static_cast<bool>(std::getline(sa, la));
    const bool gb = static_cast<bool>(std::getline(sb, lb));
    if (!ga && !gb) return {};
    if (!ga) la.clear();
    if (!gb) lb.clear();
    if (!la.empty() && la[0] != ' ' && la[0] != '#') section = la.substr(0, la.find(':'));
    auto key = [&section](std::string l) {
      const size_t b = l.find_first_not_of(' ');
      return b == std::string::npos ? l : section + "." + l.substr(b);
    };
    if (la != lb) return {key(la), key(lb)};
  }
}

void write_sweep(const Sweep& sweep) {
  const fs::path out(sweep.out_dir);
  fs::create_directories(out);
  // The tree is complete once sweep.json and runs.txt are written; readers refuse it until then.
  mark_output_incomplete(out.string(), "rrt sweep");
  nlohmann::json manifest{{"name", sweep.name},
                          {"file", sweep.file},
                          {"swept_keys", sweep.swept_keys},
                          {"runs", nlohmann::json::array()}};
  std::string list;
  for (const SweepRun& run : sweep.runs) {
    const fs::path dir(run.dir);
    fs::create_directories(dir);
    const std::string yaml = to_yaml(run.config);
    const fs::path config = dir / "config.yaml";
    if (!list_checkpoints(run.dir).empty() && fs::exists(config)) {
      // Where and on how many threads it runs may differ (the Slurm array passes an absolute
      // train.run_dir, mpirun.sh train.threads=0): they do not change the run's results.
      RunConfig started =
          parse_run_config(read_text(config.string(), "run config"), config.string());
      started.train.run_dir = run.config.train.run_dir;
      started.train.threads = run.config.train.threads;
      if (to_yaml(started) != yaml) {
        // What `rrt train` would refuse on its resume is refused here, before anything runs;
        // the rest (logging, evaluation cadence, retention) does not change what the run
        // computes: accepted, and config.yaml says what it runs with now.
        const std::vector<ConfigDifference> breaking =
            resume_breaking_differences(started, 1, run.config, 1);
        if (!breaking.empty()) {
          std::string list, keys;
          for (const ConfigDifference& d : breaking) {
            list += (list.empty() ? "'" : "; '") + d.key + ": " + d.was + "' there, '" + d.key +
                    ": " + d.is + "' in " + sweep.file;
            keys += (keys.empty() ? "" : ",") + d.key;
          }
          RRT_FAIL(config.string(), "run '", run.name, "' was started with another config (", list,
                   "); restore the sweep file (or its overrides) to finish it as it was, "
                   "delete ",
                   run.dir,
                   " to start it over, or, if the change is intended, allow "
                   "it with checkpoint.allow_config_change=[",
                   keys, "]");
        }
        std::string same_results, allowed;  // the two kinds of accepted change
        for (const ConfigDifference& d : config_differences(started, run.config)) {
          std::string& to =
              breaks_bit_exact_resume(d.key, started, run.config) ? allowed : same_results;
          to += (to.empty() ? "" : ", ") + d.key + " " + d.was + " -> " + d.is;
        }
        if (!same_results.empty()) same_results += " (no change to what it computes)";
        if (!allowed.empty()) allowed += " (allowed by checkpoint.allow_config_change)";
        if (!same_results.empty() || !allowed.empty())  // else only derived comment lines moved
          std::printf("run '%s' changed since it started: %s%s%s\n", run.name.c_str(),
                      same_results.c_str(), same_results.empty() || allowed.empty() ? "" : "; ",
                      allowed.c_str());
      }
    }
    write_text_atomically(config, yaml);
    nlohmann::json values = nlohmann::json::array();
    for (const auto& [k, v] : run.values) values.push_back({k, v});
    manifest["runs"].push_back({{"name", run.name}, {"dir", run.dir}, {"values", values}});
    list += fs::absolute(dir).lexically_normal().string() + "\n";
  }
  write_text_atomically(out / "sweep.json", manifest.dump(2) + "\n");
  write_text_atomically(out / "runs.txt", list);
  mark_output_complete(out.string());
}

}  // namespace rrt
