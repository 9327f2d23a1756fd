#include "trainer/sweep/metrics.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

namespace rrt {

namespace {

// A metrics line's step, or NaN for a line that is not a logged step (half a line, no step).
double step_of_line(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("step") || !j["step"].is_number()) return NAN;
  return j["step"].get<double>();
}

// How much of the end of metrics.jsonl newest_logged_step reads: many lines of any width rrt
// writes, and a constant cost however long the run has logged.
constexpr std::streamoff kTailBytes = 64 * 1024;

}  // namespace

RunMetrics read_metrics(const std::string& dir) {
  RunMetrics m;
  std::ifstream in(std::filesystem::path(dir) / "metrics.jsonl");
  static const std::regex exit_ce(R"(exit(\d+)_ce)");
  static const std::regex exit_val(R"((?:val_exit(\d+)_loss|exit(\d+)_val_loss))");
  std::string line;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    const double step = step_of_line(j);
    if (std::isnan(step)) continue;
    m.last_step = std::max<int64_t>(m.last_step, static_cast<int64_t>(step));
    auto number = [&j](const char* key) {
      return j.contains(key) && j[key].is_number() ? j[key].get<double>() : NAN;
    };
    std::smatch match;
    if (j.contains("val_loss")) {
      m.val_loss.emplace_back(step, number("val_loss"));
      for (const auto& [key, value] : j.items()) {
        if (value.is_number() && std::regex_match(key, match, exit_val))
          m.exit_val_loss[std::stoi(match[1].matched ? match[1].str() : match[2].str())]
              .emplace_back(step, value.get<double>());
        if (value.is_number() && key.starts_with("val_loss/"))
          m.source_val_loss[key.substr(9)] = value.get<double>();
      }
      continue;
    }
    if (!j.contains("loss")) continue;
    m.loss.emplace_back(step, number("loss"));
    if (j.contains("tokens_per_s")) m.tokens_per_s.emplace_back(step, number("tokens_per_s"));
    if (const double tokens = number("tokens"); std::isfinite(tokens) && step > 0)
      m.tokens_per_step = tokens / step;
    for (const auto& [key, value] : j.items()) {
      if (value.is_number() && std::regex_match(key, match, exit_ce))
        m.exit_ce[std::stoi(match[1].str())].emplace_back(step, value.get<double>());
      if (value.is_number() && key.starts_with("source_tokens/"))
        m.source_tokens[key.substr(14)] = value.get<double>();
    }
  }
  std::ifstream init(std::filesystem::path(dir) / "init_eval.json");
  const auto j = nlohmann::json::parse(init, nullptr, false, true);
  if (j.is_object() && j.contains("val_loss") && j["val_loss"].is_number())
    m.init_val_loss = j["val_loss"].get<double>();
  std::ifstream eval(std::filesystem::path(dir) / "eval.json");
  const auto e = nlohmann::json::parse(eval, nullptr, false, true);
  if (e.is_object() && e.contains("exits") && e["exits"].is_array())
    for (const auto& x : e["exits"])
      if (x.is_object() && x.value("loop", 0) > 0 && x.contains("loss") && x["loss"].is_number())
        m.final_exit_val_loss[x.value("loop", 0)] = x["loss"].get<double>();
  return m;
}

int64_t newest_logged_step(const std::string& dir) {
  std::ifstream in(std::filesystem::path(dir) / "metrics.jsonl", std::ios::binary | std::ios::ate);
  if (!in) return -1;
  const std::streamoff size = in.tellg();
  const std::streamoff from = std::max<std::streamoff>(0, size - kTailBytes);
  in.seekg(from);
  std::string line;
  if (from > 0) std::getline(in, line);  // the tail starts inside a line
  int64_t newest = -1;
  while (std::getline(in, line)) {
    const double step = step_of_line(nlohmann::json::parse(line, nullptr, false));
    if (!std::isnan(step)) newest = std::max<int64_t>(newest, static_cast<int64_t>(step));
  }
  return newest;
}

double tail_mean(const Curve& curve, double fraction) {
  if (curve.empty()) return NAN;
  const size_t n = std::max<size_t>(1, static_cast<size_t>(std::ceil(curve.size() * fraction)));
  double sum = 0;
  for (size_t i = curve.size() - n; i < curve.size(); ++i) sum += curve[i].second;
  return sum / static_cast<double>(n);
}

double median(const Curve& curve) {
  if (curve.empty()) return NAN;
  std::vector<double> v;
  for (const auto& p : curve) v.push_back(p.second);
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace rrt
