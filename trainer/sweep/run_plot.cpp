#include "trainer/sweep/run_plot.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "core/durable_file.h"
#include "core/error.h"
#include "plot/plot.h"
#include "trainer/sweep/metrics.h"

namespace rrt {

namespace fs = std::filesystem;

std::vector<std::string> expand_run_dirs(const std::vector<std::string>& dirs) {
  std::vector<std::string> out;
  for (const std::string& d : dirs) {
    RRT_CHECK(fs::is_directory(d), d, "no such run directory");
    refuse_incomplete_output(d, "sweep tree", "run `rrt sweep` again");
    if (fs::exists(fs::path(d) / "metrics.jsonl") || fs::exists(fs::path(d) / "config.yaml")) {
      out.push_back(d);
      continue;
    }
    std::vector<std::string> runs;
    const fs::path manifest = fs::path(d) / "sweep.json";
    if (fs::exists(manifest)) {
      std::ifstream in(manifest);
      const auto j = nlohmann::json::parse(in, nullptr, false);
      if (j.is_object() && j.contains("runs"))
        for (const auto& r : j["runs"])
          runs.push_back((fs::path(d) / r.value("name", "")).string());
    } else {
      for (const auto& e : fs::directory_iterator(d))
        if (e.is_directory() && fs::exists(e.path() / "metrics.jsonl"))
          runs.push_back(e.path().string());
      std::sort(runs.begin(), runs.end());
    }
    RRT_CHECK(!runs.empty(), d, "neither a run directory (metrics.jsonl) nor a sweep directory");
    out.insert(out.end(), runs.begin(), runs.end());
  }
  return out;
}

namespace {

Curve smoothed(const Curve& c, int window) {
  if (window <= 1) return c;
  Curve out;
  double sum = 0;
  for (size_t i = 0; i < c.size(); ++i) {
    sum += c[i].second;
    if (i >= static_cast<size_t>(window)) sum -= c[i - window].second;
    const size_t n = std::min(i + 1, static_cast<size_t>(window));
    out.emplace_back(c[i].first, sum / static_cast<double>(n));
  }
  return out;
}

std::string run_label(const std::string& dir, const std::vector<std::string>& all) {
  const fs::path p = fs::path(dir).lexically_normal();
  const std::string base = (p.has_filename() ? p : p.parent_path()).filename().string();
  int same = 0;
  for (const std::string& other : all) {
    const fs::path q = fs::path(other).lexically_normal();
    same += (q.has_filename() ? q : q.parent_path()).filename().string() == base;
  }
  if (same <= 1) return base;
  return (p.has_filename() ? p : p.parent_path()).parent_path().filename().string() + "/" + base;
}

}  // namespace

int plot_runs(const std::vector<std::string>& dirs, const std::string& png_path,
              const RunPlotOptions& o) {
  RRT_CHECK(o.x == "steps" || o.x == "tokens", "plot", "--x: expected steps or tokens, got '", o.x,
            "'");
  const bool tokens = o.x == "tokens";
  Figure fig;
  fig.title = o.title;
  Chart train, val;
  train.title = "training loss";
  val.title = "validation loss";
  train.x_label = val.x_label = tokens ? "tokens" : "step";
  train.x_integer = val.x_integer = true;  // steps and tokens are counts
  train.y_label = val.y_label = "loss (nats/token)";
  int drawn = 0;
  int max_exits = 0;
  for (const std::string& dir : dirs) {
    const RunMetrics m = read_metrics(dir);
    if (m.empty()) continue;
    const Rgb color = palette(drawn);
    const std::string label = run_label(dir, dirs);
    auto x_of = [&](const Curve& c) {
      Curve out = c;
      if (tokens)
        for (auto& p : out) p.first *= m.tokens_per_step;
      return out;
    };
    // Exits: the last (final) solid, the others dashed then dotted.
    auto style_of = [](int index_from_last) {
      return index_from_last == 0   ? LineStyle::solid
             : index_from_last == 1 ? LineStyle::dashed
                                    : LineStyle::dotted;
    };
    if (m.exit_ce.empty()) {
      train.series.push_back({label, color, LineStyle::solid, x_of(smoothed(m.loss, o.smooth))});
    } else {
      int i = static_cast<int>(m.exit_ce.size()) - 1;
      max_exits = std::max<int>(max_exits, static_cast<int>(m.exit_ce.size()));
      for (const auto& [k, c] : m.exit_ce)
        train.series.push_back({label + " exit " + std::to_string(k), color, style_of(i--),
                                x_of(smoothed(c, o.smooth))});
    }
    if (m.exit_val_loss.empty()) {
      Curve v = m.val_loss;
      if (std::isfinite(m.init_val_loss)) v.insert(v.begin(), {0.0, m.init_val_loss});
      val.series.push_back({label, color, LineStyle::solid, x_of(v), true});
    } else {
      int i = static_cast<int>(m.exit_val_loss.size()) - 1;
      for (const auto& [k, c] : m.exit_val_loss)
        val.series.push_back(
            {label + " exit " + std::to_string(k), color, style_of(i--), x_of(c), true});
    }
    fig.legend.push_back({label, color, LineStyle::solid});
    ++drawn;
  }
  RRT_CHECK(drawn > 0, "plot", "none of the ", dirs.size(),
            " run directories has a metrics.jsonl with training or validation lines yet");
  if (max_exits > 1) {
    fig.legend.push_back({"final exit", kGrey, LineStyle::solid});
    fig.legend.push_back({"exit before it", kGrey, LineStyle::dashed});
    if (max_exits > 2) fig.legend.push_back({"earlier exits", kGrey, LineStyle::dotted});
  }
  if (o.smooth > 1) train.title += " (mean of " + std::to_string(o.smooth) + " logs)";
  // One x range for both charts, from 0, so that evaluations line up with training.
  double x_max = 0;
  for (const Chart* c : {&train, &val})
    for (const Series& s : c->series)
      for (const auto& p : s.points) x_max = std::max(x_max, p.first);
  train.x_min = val.x_min = 0;
  if (x_max > 0) train.x_max = val.x_max = x_max;
  fig.charts = {train, val};
  const fs::path parent = fs::path(png_path).parent_path();
  if (!parent.empty()) fs::create_directories(parent);
  render_figure(fig).save_png(png_path);
  return drawn;
}

}  // namespace rrt
