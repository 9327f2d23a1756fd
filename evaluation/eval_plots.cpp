#include "evaluation/eval_plots.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <tuple>

#include "core/error.h"

namespace rrt {

namespace {

Chart chart(const std::string& title, const std::string& x_label, const std::string& y_label) {
  Chart c;
  c.title = title;
  c.x_label = x_label;
  c.y_label = y_label;
  return c;
}

Series series(const std::string& label, int color, LineStyle style = LineStyle::solid) {
  Series s;
  s.label = label;
  s.color = palette(color);
  s.style = style;
  s.markers = true;
  return s;
}

// The plot module clips a large start of a linear y range away (made for training curves);
// exit 1's perplexity is usually the largest value and must show, so the limits are given. A
// log axis (values spanning decades, unless the chart is linear) clips nothing and pads itself.
void fit_y(Chart& c) {
  double lo = INFINITY, hi = -INFINITY;
  for (const Series& s : c.series)
    for (auto [x, y] : s.points)
      if (std::isfinite(y)) lo = std::min(lo, y), hi = std::max(hi, y);
  if (!(hi >= lo)) return;
  if (c.y_scale != AxisScale::linear && wants_log_axis(lo, hi)) return;
  const double pad = hi > lo ? 0.05 * (hi - lo) : std::max(1e-3, 0.05 * std::abs(hi));
  c.y_min = lo - pad;
  c.y_max = hi + pad;
}

// "0.9", "0.95", "0.999": a threshold as the user typed it.
std::string threshold_label(double t) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", t);
  return buf;
}

// Labels s's points (in order of mean loops) with their thresholds. Points that coincide (low
// thresholds at which every token exits at the same loop) share one label, "0.1-0.4", instead of
// a stack of labels on one spot.
void label_thresholds(Series& s, const std::vector<double>& thresholds) {
  s.point_labels.assign(s.points.size(), "");
  for (size_t first = 0; first < s.points.size();) {
    size_t last = first;
    while (last + 1 < s.points.size() && s.points[last + 1] == s.points[first]) ++last;
    const auto [lo, hi] =
        std::minmax_element(thresholds.begin() + static_cast<ptrdiff_t>(first),
                            thresholds.begin() + static_cast<ptrdiff_t>(last) + 1);
    std::string& label = s.point_labels[first];
    label = threshold_label(*lo);
    if (last > first) label.append("-").append(threshold_label(*hi));
    first = last + 1;
  }
}

// The two charts of a trade-off figure: perplexity and agreement against mean loops per token.
std::vector<Chart> tradeoff_charts() {
  Chart agree =
      chart("agreement with the final exit", "mean loops per token", "fraction of tokens");
  agree.y_scale = AxisScale::linear;  // a fraction: 0.01 to 1 reads better linear
  return {chart("perplexity vs loops used", "mean loops per token", "perplexity"), agree};
}

struct TradeoffColors {
  int confidence, fixed, oracle;
};

// Adds v's trade-off to charts (tradeoff_charts): the confidence points, joined in order of mean
// loops and labelled with their thresholds; the fixed exits (every token at loop k, dashed);
// the oracle exit. Series labels start with prefix ("" for a figure of one report).
void add_tradeoff(std::vector<Chart>& charts, const ExitEvaluation& v, const std::string& prefix,
                  TradeoffColors colors) {
  std::vector<const ConfidenceExit*> by_loops;
  for (const ConfidenceExit& c : v.confidence) by_loops.push_back(&c);
  std::stable_sort(by_loops.begin(), by_loops.end(), [](const auto* a, const auto* b) {
    return std::tie(a->mean_loops, a->perplexity) < std::tie(b->mean_loops, b->perplexity);
  });
  Series cp = series(prefix + "confidence", colors.confidence), ca = cp;
  std::vector<double> thresholds;
  for (const ConfidenceExit* c : by_loops) {
    cp.points.emplace_back(c->mean_loops, c->perplexity);
    ca.points.emplace_back(c->mean_loops, c->agreement);
    thresholds.push_back(c->threshold);
  }
  label_thresholds(cp, thresholds);
  label_thresholds(ca, thresholds);
  Series fp = series(prefix + "fixed exit", colors.fixed, LineStyle::dashed), fa = fp;
  for (const ExitScore& e : v.exits) {
    fp.points.emplace_back(static_cast<double>(e.loop), e.perplexity);
    fa.points.emplace_back(static_cast<double>(e.loop), e.agreement);
  }
  Series op = series(prefix + "oracle", colors.oracle), oa = op;
  op.points = {{v.oracle.mean_loops, v.oracle.perplexity}};
  oa.points = {{v.oracle.mean_loops, 1.0}};
  for (Series* s : {&fp, &cp, &op}) charts[0].series.push_back(std::move(*s));
  for (Series* s : {&fa, &ca, &oa}) charts[1].series.push_back(std::move(*s));
}

void finish_tradeoff(std::vector<Chart>& charts) {
  fit_y(charts[0]);
  fit_y(charts[1]);
  charts[1].y_max = std::max(charts[1].y_max, 1.0);
}

}  // namespace

std::vector<std::pair<std::string, Figure>> eval_figures(const EvalReport& r) {
  std::vector<std::pair<std::string, Figure>> figures;
  const std::string name = std::filesystem::path(r.checkpoint).filename().string() + " (step " +
                           std::to_string(r.step) + ")";
  Figure exits;
  exits.title = name;
  if (r.has_validation) {
    const ExitEvaluation& v = r.validation;
    Chart ppl = chart("validation perplexity per exit", "exit (loop)", "perplexity");
    ppl.x_integer = true;
    Chart oracle = chart("oracle exit", "exit (loop)", "fraction of tokens");
    oracle.x_integer = true;
    Series p = series("perplexity", 0), f = series("oracle exit", 1);
    for (size_t e = 0; e < v.exits.size(); ++e) {
      p.points.emplace_back(static_cast<double>(v.exits[e].loop), v.exits[e].perplexity);
      f.points.emplace_back(static_cast<double>(v.exits[e].loop), v.oracle.fractions[e]);
    }
    ppl.series = {p};
    oracle.series = {f};
    fit_y(ppl);
    oracle.y_min = 0;
    oracle.y_max = 1;
    exits.charts = {ppl, oracle};
  }
  if (r.has_choices) {
    Chart acc = chart("multiple choice", "exit (loop)", "accuracy");
    acc.x_integer = true;
    acc.y_min = 0;
    acc.y_max = 1;
    Series a = series("acc", 2), an = series("acc_norm", 3, LineStyle::dashed);
    for (const ChoiceExitScore& e : r.choices.exits) {
      a.points.emplace_back(static_cast<double>(e.loop), e.acc);
      an.points.emplace_back(static_cast<double>(e.loop), e.acc_norm);
    }
    acc.series = {a, an};
    exits.charts.push_back(acc);
    exits.legend = {{"acc", palette(2), LineStyle::solid},
                    {"acc_norm", palette(3), LineStyle::dashed}};
  }
  figures.emplace_back("exits.png", std::move(exits));
  if (!r.has_validation) return figures;

  // The trade-off: each threshold is one point (mean loops, quality); the fixed exits and the
  // oracle for reference.
  Figure trade;
  trade.title = "confidence exit: " + name;
  trade.charts = tradeoff_charts();
  add_tradeoff(trade.charts, r.validation, "", {0, 1, 3});
  finish_tradeoff(trade.charts);
  trade.legend = {{"confidence (a point per threshold)", palette(0), LineStyle::solid},
                  {"fixed exit at loop k", palette(1), LineStyle::dashed},
                  {"oracle exit", palette(3), LineStyle::solid}};
  figures.emplace_back("confidence.png", std::move(trade));
  return figures;
}

Figure exit_comparison_figure(const std::vector<std::string>& labels,
                              const std::vector<EvalReport>& reports, const std::string& title) {
  RRT_CHECK(labels.size() == reports.size(), "plot-exits", labels.size(), " labels for ",
            reports.size(), " reports");
  RRT_CHECK(!reports.empty(), "plot-exits", "no reports to compare");
  Figure f;
  f.title = title.empty() ? "confidence exits" : title;
  f.charts = tradeoff_charts();
  for (size_t i = 0; i < reports.size(); ++i) {
    RRT_CHECK(reports[i].has_validation, "plot-exits", labels[i],
              " has no validation scores (a report of `rrt eval --no-validation`)");
    const int color = static_cast<int>(i);
    add_tradeoff(f.charts, reports[i].validation, labels[i] + ": ", {color, color, color});
    f.legend.push_back({labels[i], palette(color), LineStyle::solid});
  }
  finish_tradeoff(f.charts);
  // The styles once, in black: a colour per report, a style per kind of line (the oracle exit
  // is each colour's lone marker, joined to nothing).
  f.legend.push_back({"confidence (a point per threshold)", Rgb{0, 0, 0}, LineStyle::solid});
  f.legend.push_back({"fixed exit at loop k", Rgb{0, 0, 0}, LineStyle::dashed});
  return f;
}

std::vector<std::string> write_eval_plots(const EvalReport& r, const std::string& dir) {
  std::filesystem::create_directories(dir);
  std::vector<std::string> written;
  for (const auto& [file, figure] : eval_figures(r)) {
    written.push_back((std::filesystem::path(dir) / file).string());
    render_figure(figure).save_png(written.back());
  }
  return written;
}

}  // namespace rrt
