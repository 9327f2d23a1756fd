#include "trainer/sweep/summary.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "config/config_io.h"
#include "core/durable_file.h"
#include "core/error.h"
#include "core/json_file.h"
#include "evaluation/log_format.h"
#include "model/registry.h"
#include "trainer/sweep/launch.h"
#include "trainer/sweep/metrics.h"

namespace rrt {

namespace fs = std::filesystem;

namespace {

struct RunEntry {
  std::string name, dir;
  std::map<std::string, std::string> values;
};

std::string fixed(double v, int decimals) {
  if (!std::isfinite(v)) return "";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

// Perplexities in scientific notation from 1e5 on (log_format.h); "" when not finite.
std::string perplexity(double v) { return std::isfinite(v) ? format_perplexity(v, 3) : ""; }

// key -> value of every line of a resolved config ("optim.lr" -> "0.003").
std::map<std::string, std::string> flat_config(const std::string& yaml) {
  std::map<std::string, std::string> out;
  std::stringstream in(yaml);
  std::string line, section;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (line[0] != ' ') {
      section = line.substr(0, line.find(':'));
      continue;
    }
    const size_t b = line.find_first_not_of(' '), colon = line.find(": ", b);
    if (line[b] == '#' || colon == std::string::npos) continue;
    out[section + "." + line.substr(b, colon - b)] = line.substr(colon + 2);
  }
  return out;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

SummaryTable sweep_summary(const std::string& dir) {
  RRT_CHECK(fs::is_directory(dir), dir, "no such sweep directory");
  refuse_incomplete_output(dir, "sweep tree", "run `rrt sweep` again");
  std::vector<std::string> keys;
  std::vector<RunEntry> runs;
  const fs::path manifest = fs::path(dir) / "sweep.json";
  if (fs::exists(manifest)) {
    const auto j = read_json_file(manifest.string(), "; run `rrt sweep` again to rewrite it");
    RRT_CHECK(j.is_object() && j.contains("runs"), manifest.string(),
              "not a sweep manifest (written by rrt sweep)");
    for (const auto& k : j.value("swept_keys", nlohmann::json::array())) keys.push_back(k);
    for (const auto& r : j["runs"]) {
      RunEntry e;
      e.name = r.value("name", "");
      e.dir = (fs::path(dir) / e.name).string();  // wherever the sweep directory is now
      for (const auto& kv : r.value("values", nlohmann::json::array()))
        e.values[kv[0].get<std::string>()] = kv[1].get<std::string>();
      runs.push_back(std::move(e));
    }
  } else {
    std::vector<std::map<std::string, std::string>> configs;
    for (const auto& entry : fs::directory_iterator(dir))
      if (entry.is_directory() && fs::exists(entry.path() / "config.yaml"))
        runs.push_back({entry.path().filename().string(), entry.path().string(), {}});
    std::sort(runs.begin(), runs.end(),
              [](const RunEntry& a, const RunEntry& b) { return a.name < b.name; });
    RRT_CHECK(!runs.empty(), dir,
              "no sweep.json and no run directories (with config.yaml) inside; give the --out "
              "directory of rrt sweep");
    for (const RunEntry& r : runs)
      configs.push_back(flat_config(read_file(fs::path(r.dir) / "config.yaml")));
    for (const auto& [key, value] : configs[0]) {
      if (key == "train.run_dir" || key == "train.init_from") continue;
      bool differs = false;
      for (const auto& c : configs) differs |= !c.count(key) || c.at(key) != value;
      if (differs) keys.push_back(key);
    }
    for (size_t i = 0; i < runs.size(); ++i)
      for (const std::string& k : keys)
        if (configs[i].count(k)) runs[i].values[k] = configs[i].at(k);
  }

  // Which exits any run logged, to size the per-exit columns.
  std::vector<RunMetrics> metrics;
  std::set<int> train_exits, val_exits;
  std::set<std::string> sources;  // names of mixture sources any run logged
  bool any_init = false;
  for (const RunEntry& r : runs) {
    metrics.push_back(read_metrics(r.dir));
    for (const auto& [k, c] : metrics.back().exit_ce) train_exits.insert(k);
    for (const auto& [k, c] : metrics.back().exit_val_loss) val_exits.insert(k);
    for (const auto& [k, v] : metrics.back().final_exit_val_loss) val_exits.insert(k);
    any_init |= std::isfinite(metrics.back().init_val_loss);
    for (const auto& [name, v] : metrics.back().source_val_loss) sources.insert(name);
    for (const auto& [name, v] : metrics.back().source_tokens) sources.insert(name);
  }
  SummaryTable t;
  t.header = {"run"};
  t.header.insert(t.header.end(), keys.begin(), keys.end());
  t.header.insert(t.header.end(), {"params", "LoRA params", "steps"});
  if (any_init) t.header.push_back("init val ppl");
  t.header.push_back("val ppl");
  if (val_exits.empty()) t.header.push_back("val ppl per exit");
  for (int k : val_exits) t.header.push_back("val ppl exit " + std::to_string(k));
  for (int k : train_exits) t.header.push_back("train ppl exit " + std::to_string(k));
  for (const std::string& name : sources) t.header.push_back("val ppl " + name);
  for (const std::string& name : sources) t.header.push_back("tokens " + name);
  t.header.insert(t.header.end(), {"tokens/s", "status"});

  for (size_t i = 0; i < runs.size(); ++i) {
    const RunEntry& r = runs[i];
    const RunMetrics& m = metrics[i];
    std::vector<std::string> row = {r.name};
    for (const std::string& k : keys) row.push_back(r.values.count(k) ? r.values.at(k) : "");
    int64_t steps = 0;
    std::string params, lora;
    const fs::path config = fs::path(r.dir) / "config.yaml";
    if (fs::exists(config)) {
      try {
        const RunConfig c = load_run_config(config.string());
        steps = c.train.steps;
        const ParamRegistry registry(c.model);
        params = std::to_string(registry.total_numel());
        lora = std::to_string(registry.numel_of(ParamKind::lora_a) +
                              registry.numel_of(ParamKind::lora_b));
      } catch (const Error& e) {
        params = "config error";
      }
    }
    const RunStatus s = read_run_status(r.dir, steps);
    row.insert(row.end(), {params, lora,
                           std::to_string(s.last_step > 0 ? s.last_step : m.last_step) + "/" +
                               std::to_string(steps)});
    if (any_init) row.push_back(perplexity(std::exp(m.init_val_loss)));
    row.push_back(m.val_loss.empty() ? "" : perplexity(std::exp(m.val_loss.back().second)));
    if (val_exits.empty()) row.push_back("not logged");
    for (int k : val_exits) {
      auto final_eval = m.final_exit_val_loss.find(k);
      auto logged = m.exit_val_loss.find(k);
      if (final_eval != m.final_exit_val_loss.end())
        row.push_back(perplexity(std::exp(final_eval->second)));
      else if (logged != m.exit_val_loss.end() && !logged->second.empty())
        row.push_back(perplexity(std::exp(logged->second.back().second)));
      else
        row.push_back("");
    }
    for (int k : train_exits) {
      auto it = m.exit_ce.find(k);
      row.push_back(it == m.exit_ce.end() ? "" : perplexity(std::exp(tail_mean(it->second, 0.1))));
    }
    double all_tokens = 0;
    for (const auto& [name, tokens] : m.source_tokens) all_tokens += tokens;
    for (const std::string& name : sources) {
      auto it = m.source_val_loss.find(name);
      row.push_back(it == m.source_val_loss.end() ? "" : perplexity(std::exp(it->second)));
    }
    for (const std::string& name : sources) {  // the realised share of the run's tokens
      auto it = m.source_tokens.find(name);
      row.push_back(it == m.source_tokens.end() || all_tokens <= 0
                        ? ""
                        : fixed(100.0 * it->second / all_tokens, 1) + "%");
    }
    row.push_back(fixed(median(m.tokens_per_s), 0));
    std::string status = to_string(s.state);
    if (s.state == RunState::failed)
      status += ": " + s.error;
    else if (!s.detail.empty() && s.state != RunState::finished)
      status += " (" + s.detail + ")";
    row.push_back(status);
    t.rows.push_back(std::move(row));
  }
  return t;
}

std::string to_markdown(const SummaryTable& t) {
  auto cell = [](std::string s) {
    std::string out;
    for (char c : s)
      out += c == '|' ? std::string("\\|") : c == '\n' ? std::string(" ") : std::string(1, c);
    return out;
  };
  std::string out = "|";
  for (const std::string& h : t.header) out.append(" ").append(cell(h)).append(" |");
  out += "\n|";
  for (size_t i = 0; i < t.header.size(); ++i) out += "---|";
  out += "\n";
  for (const auto& row : t.rows) {
    out += "|";
    for (const std::string& c : row) out.append(" ").append(cell(c)).append(" |");
    out += "\n";
  }
  return out;
}

std::string to_csv(const SummaryTable& t) {
  auto cell = [](const std::string& s) {
    if (s.find_first_of(",\"\n") == std::string::npos) return s;
    std::string out = "\"";
    for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
    return out + "\"";
  };
  std::string out;
  auto line = [&](const std::vector<std::string>& cells) {
    for (size_t i = 0; i < cells.size(); ++i) {
      if (i) out += ',';
      out += cell(cells[i]);
    }
    out += "\n";
  };
  line(t.header);
  for (const auto& row : t.rows) line(row);
  return out;
}

}  // namespace rrt
