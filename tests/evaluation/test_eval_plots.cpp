// evaluation/eval_plots: the figures of `rrt eval --plot` from a report made by hand (a freshly
// converted model: exit 1 at perplexity 4.8e6, the final exit at 49.6). The perplexity charts
// get a log axis, the fractions stay linear, and every confidence threshold labels its point.
// `rrt plot-exits`'s comparison of several reports, read back from their JSON.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "evaluation/eval_plots.h"
#include "tests/png_decode.h"

namespace rrt {
namespace {

EvalReport converted_model_report() {
  EvalReport r;
  r.checkpoint = "init.h5";
  r.loops = 3;
  r.has_validation = true;
  ExitEvaluation& v = r.validation;
  v.tokens = 1000;
  v.exits = {{1, std::log(4.8e6), 4.8e6, 0.05},
             {2, std::log(3.1e3), 3.1e3, 0.3},
             {3, std::log(49.6), 49.6, 1.0}};
  v.oracle = {{0.2, 0.3, 0.5}, 2.3, std::log(30.0), 30.0};
  // Thresholds in the order given; 0.1 and 0.2 exit every token at loop 1 (the same point).
  const std::vector<std::tuple<double, double, double, double>> rows = {
      {0.9, 2.6, 0.95, 60},  {0.1, 1.0, 0.05, 4.8e6}, {0.5, 1.8, 0.6, 900},
      {0.99, 2.9, 0.99, 50}, {0.2, 1.0, 0.05, 4.8e6},
  };
  for (const auto& [t, loops, agreement, ppl] : rows)
    v.confidence.push_back({t, loops, agreement, std::log(ppl), ppl, {}});
  return r;
}

const Chart& chart_titled(const Figure& f, const std::string& title) {
  for (const Chart& c : f.charts)
    if (c.title == title) return c;
  throw std::runtime_error("no chart " + title);
}

TEST(EvalPlots, PerplexitiesSpanningDecadesGetALogAxis) {
  const auto figures = eval_figures(converted_model_report());
  ASSERT_EQ(figures.size(), 2u);
  EXPECT_EQ(figures[0].first, "exits.png");
  EXPECT_EQ(figures[1].first, "confidence.png");
  const YAxisPlan per_exit =
      plan_y_axis(chart_titled(figures[0].second, "validation perplexity per exit"));
  EXPECT_TRUE(per_exit.log);
  EXPECT_LT(per_exit.lo, 49.6);  // the final exit is on the chart, not clipped or flattened
  EXPECT_GT(per_exit.hi, 4.8e6);
  std::vector<std::string> labels;
  for (const auto& [v, label] : per_exit.ticks) labels.push_back(label);
  EXPECT_EQ(labels, (std::vector<std::string>{"100", "1e3", "1e4", "1e5", "1e6"}));
  EXPECT_TRUE(plan_y_axis(chart_titled(figures[1].second, "perplexity vs loops used")).log);
  EXPECT_FALSE(plan_y_axis(chart_titled(figures[1].second, "agreement with the final exit")).log);
  EXPECT_FALSE(plan_y_axis(chart_titled(figures[0].second, "oracle exit")).log);
}

TEST(EvalPlots, EveryThresholdLabelsItsPoint) {
  const auto figures = eval_figures(converted_model_report());
  for (const char* title : {"perplexity vs loops used", "agreement with the final exit"}) {
    const Chart& c = chart_titled(figures[1].second, title);
    const Series* confidence = nullptr;
    for (const Series& s : c.series)
      if (s.label == "confidence") confidence = &s;
    ASSERT_NE(confidence, nullptr) << title;
    // In order of mean loops; the two thresholds on one point share a label.
    ASSERT_EQ(confidence->points.size(), 5u);
    EXPECT_EQ(confidence->point_labels,
              (std::vector<std::string>{"0.1-0.2", "", "0.5", "0.9", "0.99"}))
        << title;
    EXPECT_EQ(confidence->points[2].first, 1.8);
    EXPECT_EQ(confidence->points[4].first, 2.9);
  }
  // The file itself: written, decodable, with the labels' ink (it differs from the figure
  // drawn without them).
  const std::filesystem::path dir =
      std::filesystem::path(::testing::TempDir()) / ("rrt_eval_plots_" + std::to_string(getpid()));
  const std::vector<std::string> files = write_eval_plots(converted_model_report(), dir.string());
  ASSERT_EQ(files.size(), 2u);
  const testing::DecodedPng png = testing::read_png(files[1]);
  Figure unlabelled = figures[1].second;
  for (Chart& c : unlabelled.charts)
    for (Series& s : c.series) s.point_labels.clear();
  const Canvas plain = render_figure(unlabelled);
  ASSERT_EQ(png.width, static_cast<uint32_t>(plain.width()));
  ASSERT_EQ(png.height, static_cast<uint32_t>(plain.height()));
  int added = 0;
  for (int y = 0; y < plain.height(); ++y)
    for (int x = 0; x < plain.width(); ++x)
      added += png.pixel(x, y) == 0u && !(plain.at(x, y) == kBlack);
  EXPECT_GT(added, 2 * 4 * 60) << "labels of 4 points on 2 charts";
  std::filesystem::remove_all(dir);
}

// Two post-trainings of one model compared: each report's confidence, fixed and oracle series
// in its own colour and named after it, the legend one entry per report plus the two styles.
TEST(EvalPlots, AComparisonDrawsEveryReportInItsOwnColour) {
  EvalReport uniform = converted_model_report();
  for (ConfidenceExit& c : uniform.validation.confidence)
    c.mean_loops = std::min(3.0, c.mean_loops + 0.3);
  const Figure f =
      exit_comparison_figure({"aggressive", "uniform"}, {converted_model_report(), uniform}, "");
  EXPECT_EQ(f.title, "confidence exits");
  for (const char* title : {"perplexity vs loops used", "agreement with the final exit"}) {
    const Chart& c = chart_titled(f, title);
    ASSERT_EQ(c.series.size(), 6u) << title;
    for (size_t i = 0; i < c.series.size(); ++i) {
      const bool first = i < 3;
      EXPECT_EQ(c.series[i].label.rfind(first ? "aggressive: " : "uniform: ", 0), 0u)
          << c.series[i].label;
      EXPECT_EQ(c.series[i].color, palette(first ? 0 : 1)) << c.series[i].label;
    }
    // The confidence series keep their threshold labels, each report's own points.
    EXPECT_EQ(c.series[1].label, "aggressive: confidence");
    EXPECT_EQ(c.series[1].point_labels[3], "0.9");
    EXPECT_EQ(c.series[4].points[3].first, 2.6 + 0.3);
    EXPECT_EQ(c.series[2].points.size(), 1u) << "the oracle: one point";
  }
  ASSERT_EQ(f.legend.size(), 4u);
  EXPECT_EQ(f.legend[0].label, "aggressive");
  EXPECT_EQ(f.legend[1].label, "uniform");
  EXPECT_EQ(f.legend[3].style, LineStyle::dashed);
  EXPECT_TRUE(plan_y_axis(chart_titled(f, "perplexity vs loops used")).log);

  EvalReport task_only;
  task_only.checkpoint = "t.h5";
  EXPECT_THROW(exit_comparison_figure({"t"}, {task_only}, ""), Error);
  EXPECT_THROW(exit_comparison_figure({"a", "b"}, {uniform}, ""), Error);
  EXPECT_THROW(exit_comparison_figure({}, {}, ""), Error);
}

// What `rrt eval --json` wrote is read back as it was; anything else is refused with the key.
TEST(EvalPlots, ReportsAreReadBackFromTheirJson) {
  const nlohmann::json j = nlohmann::json::parse(eval_report_json(converted_model_report()).dump());
  const EvalReport back = eval_report_from_json(j);
  EXPECT_EQ(back.loops, 3);
  ASSERT_TRUE(back.has_validation);
  EXPECT_FALSE(back.has_choices);
  ASSERT_EQ(back.validation.confidence.size(), 5u);
  EXPECT_EQ(back.validation.confidence[3].threshold, 0.99);
  EXPECT_EQ(back.validation.exits[0].perplexity, 4.8e6);
  EXPECT_EQ(back.validation.oracle.fractions, (std::vector<double>{0.2, 0.3, 0.5}));
  EXPECT_EQ(nlohmann::json::parse(eval_report_json(back).dump()), j);  // keys in any order

  nlohmann::json no_oracle = j;
  no_oracle.erase("oracle");
  try {
    eval_report_from_json(no_oracle);
    ADD_FAILURE() << "a report without its oracle was read";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("oracle"), std::string::npos) << e.what();
  }
  nlohmann::json wrong_type = j;
  wrong_type["exits"][0]["loss"] = "low";
  EXPECT_THROW(eval_report_from_json(wrong_type), Error);
  EXPECT_THROW(eval_report_from_json(nlohmann::json::parse(R"({"losses": [1, 2]})")), Error);
  EXPECT_THROW(eval_report_from_json(nlohmann::json::array()), Error);
}

}  // namespace
}  // namespace rrt
