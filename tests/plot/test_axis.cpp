// plot/axis and the y axis of plot/plot: a linear axis for a narrow range, a log axis with ticks
// at powers of ten where the values span decades (placing values by their logarithm), and point
// labels drawn beside their points.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "plot/axis.h"
#include "plot/plot.h"

namespace rrt {
namespace {

std::vector<std::string> labels(const YAxisPlan& plan) {
  std::vector<std::string> out;
  for (const auto& [v, label] : plan.ticks) out.push_back(label);
  return out;
}

Chart chart_of(const std::vector<double>& ys) {
  Chart c;
  Series s;
  s.color = palette(0);
  s.markers = true;
  for (size_t i = 0; i < ys.size(); ++i) s.points.emplace_back(static_cast<double>(i + 1), ys[i]);
  c.series.push_back(s);
  return c;
}

TEST(PlotAxis, LogOnlyWhereTheValuesSpanMoreThanADecade) {
  EXPECT_FALSE(wants_log_axis(1.3, 2.05));
  EXPECT_FALSE(wants_log_axis(5, 49));
  EXPECT_TRUE(wants_log_axis(5, 51));
  EXPECT_TRUE(wants_log_axis(49.6, 4.8e6));
  EXPECT_FALSE(wants_log_axis(0, 100));   // zero has no logarithm
  EXPECT_FALSE(wants_log_axis(-1, 100));  // nor has a negative value
  EXPECT_FALSE(wants_log_axis(1, INFINITY));
}

TEST(PlotAxis, LogTicksAndLabels) {
  EXPECT_EQ(log_ticks(49.6, 4.8e6), (std::vector<double>{1e2, 1e3, 1e4, 1e5, 1e6}));
  // One power of ten inside: 2 and 5 x 10^k join it.
  EXPECT_EQ(log_ticks(3, 60), (std::vector<double>{5, 10, 20, 50}));
  // Many decades: every second (or fifth) power, at most `target` ticks.
  const std::vector<double> wide = log_ticks(1e-3, 1e12, 7);
  EXPECT_LE(wide.size(), 7u);
  EXPECT_GE(wide.size(), 3u);
  for (double v : wide) EXPECT_NEAR(std::log10(v), std::round(std::log10(v)), 1e-12) << v;
  EXPECT_EQ(log_tick_label(1e2), "100");
  EXPECT_EQ(log_tick_label(1e3), "1e3");
  EXPECT_EQ(log_tick_label(1e6), "1e6");
  EXPECT_EQ(log_tick_label(2e5), "2e5");
  EXPECT_EQ(log_tick_label(1), "1");
  EXPECT_EQ(log_tick_label(0.02), "0.02");
  EXPECT_EQ(log_tick_label(1e-3), "1e-3");
}

TEST(PlotAxis, ChartChoosesItsScaleFromTheValues) {
  const YAxisPlan narrow = plan_y_axis(chart_of({1.3, 1.7, 2.05}));
  EXPECT_FALSE(narrow.log);
  EXPECT_EQ(labels(narrow), (std::vector<std::string>{"1.4", "1.6", "1.8", "2.0"}));

  // Perplexities of a converted model's early exits and its final exit.
  const YAxisPlan wide = plan_y_axis(chart_of({4.8e6, 3.1e3, 49.6}));
  EXPECT_TRUE(wide.log);
  EXPECT_LT(wide.lo, 49.6);
  EXPECT_GT(wide.lo, 10);  // padded by a fraction of the decades, not by 5% of 4.8e6
  EXPECT_GT(wide.hi, 4.8e6);
  EXPECT_LT(wide.hi, 1e7);
  EXPECT_EQ(labels(wide), (std::vector<std::string>{"100", "1e3", "1e4", "1e5", "1e6"}));

  Chart zero = chart_of({4.8e6, 49.6});
  zero.y_min = 0;  // an explicit limit of 0: linear
  EXPECT_FALSE(plan_y_axis(zero).log);
  Chart forced = chart_of({4.8e6, 49.6});
  forced.y_scale = AxisScale::linear;
  EXPECT_FALSE(plan_y_axis(forced).log);
  Chart log = chart_of({2, 3});
  log.y_scale = AxisScale::log;
  EXPECT_TRUE(plan_y_axis(log).log);
  EXPECT_FALSE(plan_y_axis(log).ticks.empty());
}

// Rows where a colour appears, as the centre of its first run of rows.
double centre_row(const Canvas& c, Rgb color, int x0, int x1) {
  int first = -1, last = -1;
  for (int y = 0; y < c.height(); ++y)
    for (int x = x0; x <= x1; ++x)
      if (c.at(x, y) == color) {
        if (first < 0) first = y;
        last = y;
      }
  return first < 0 ? NAN : 0.5 * (first + last);
}

TEST(PlotAxis, LogAxisPlacesValuesByTheirLogarithm) {
  // Markers at 10, 1e3 and 1e5 on separate x positions: on a log axis the middle one sits
  // half way between the others (on a linear one it would be next to the lowest).
  Chart c;
  for (int i = 0; i < 3; ++i) {
    Series s;
    s.color = palette(i);
    s.markers = true;
    s.points = {{static_cast<double>(i), std::pow(10.0, 1 + 2 * i)}};
    c.series.push_back(s);
  }
  Canvas canvas(400, 300);
  draw_chart(canvas, c, 0, 0, 400, 300, 1);
  const double y10 = centre_row(canvas, palette(0), 0, 399);
  const double y1e3 = centre_row(canvas, palette(1), 0, 399);
  const double y1e5 = centre_row(canvas, palette(2), 0, 399);
  ASSERT_TRUE(std::isfinite(y10) && std::isfinite(y1e3) && std::isfinite(y1e5));
  EXPECT_GT(y10, y1e3);
  EXPECT_NEAR(y1e3, 0.5 * (y10 + y1e5), 1.5);
}

int black_pixels(const Canvas& c, int x0, int y0, int x1, int y1) {
  int n = 0;
  for (int y = std::max(0, y0); y <= std::min(c.height() - 1, y1); ++y)
    for (int x = std::max(0, x0); x <= std::min(c.width() - 1, x1); ++x) n += c.at(x, y) == kBlack;
  return n;
}

TEST(PlotAxis, EveryLabelledPointGetsItsLabelBesideIt) {
  // A trade-off curve: thresholds 0.5 ... 0.99 at increasing mean loops.
  const std::vector<std::pair<double, double>> points = {
      {1.2, 80}, {1.5, 60}, {1.9, 52}, {2.6, 50}, {2.7, 49.8}};
  const std::vector<std::string> thresholds = {"0.5", "0.7", "0.9", "0.95", "0.99"};
  Chart plain;
  Series s;
  s.color = palette(0);
  s.markers = true;
  s.points = points;
  plain.series.push_back(s);
  plain.y_min = 45;  // as rrt eval gives them: no clipping of the first point
  plain.y_max = 85;
  Chart labelled = plain;
  labelled.series[0].point_labels = thresholds;

  const int scale = 2;
  Canvas a(560, 420), b(560, 420);
  draw_chart(a, plain, 0, 0, 560, 420, scale);
  draw_chart(b, labelled, 0, 0, 560, 420, scale);
  // The ink the labels added: every glyph pixel of every label, once (no label covers another,
  // none is cut by the plot area).
  int added = 0;
  for (int y = 0; y < b.height(); ++y)
    for (int x = 0; x < b.width(); ++x) added += b.at(x, y) == kBlack && !(a.at(x, y) == kBlack);
  int expected = 0;
  for (const std::string& t : thresholds) {
    Canvas glyphs(200, 40);
    glyphs.text(0, 0, t, kBlack, scale);
    expected += black_pixels(glyphs, 0, 0, 199, 39);
  }
  EXPECT_EQ(added, expected);
  // Each label beside its own point: drawn alone, its ink is one label's size and lies just
  // off that point's marker (found by drawing the point again in another colour).
  const int gap = 3 * scale, w = Canvas::text_width("0.99", scale), h = Canvas::text_height(scale);
  for (size_t i = 0; i < points.size(); ++i) {
    Chart marked = plain;
    Series mark = s;
    mark.color = palette(5);
    mark.points = {points[i]};
    marked.series.push_back(mark);
    Canvas m(560, 420);
    draw_chart(m, marked, 0, 0, 560, 420, scale);
    int mx0 = 1 << 20, my0 = 1 << 20, mx1 = -1, my1 = -1;
    for (int y = 0; y < m.height(); ++y)
      for (int x = 0; x < m.width(); ++x)
        if (m.at(x, y) == palette(5))
          mx0 = std::min(mx0, x), mx1 = std::max(mx1, x), my0 = std::min(my0, y),
          my1 = std::max(my1, y);
    ASSERT_GE(mx1, 0) << "point " << i << " not drawn";
    const double cx = 0.5 * (mx0 + mx1), cy = 0.5 * (my0 + my1);

    Chart one = plain;
    one.series[0].point_labels.assign(points.size(), "");
    one.series[0].point_labels[i] = thresholds[i];
    Canvas c(560, 420);
    draw_chart(c, one, 0, 0, 560, 420, scale);
    int x0 = 1 << 20, y0 = 1 << 20, x1 = -1, y1 = -1;
    for (int y = 0; y < c.height(); ++y)
      for (int x = 0; x < c.width(); ++x)
        if (c.at(x, y) == kBlack && !(a.at(x, y) == kBlack))
          x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
    ASSERT_GE(x1, 0) << "label " << thresholds[i] << " drew nothing";
    EXPECT_LE(x1 - x0 + 1, w) << thresholds[i];
    EXPECT_LE(y1 - y0 + 1, h) << thresholds[i];
    // Distance from the point's centre to the label's box, along each axis.
    const double dx = std::max({0.0, x0 - cx, cx - x1}), dy = std::max({0.0, y0 - cy, cy - y1});
    EXPECT_LE(std::max(dx, dy), gap + 2 * scale + 1) << thresholds[i] << " is not beside its point";
    EXPECT_GE(std::max(dx, dy), 2 * scale) << thresholds[i] << " covers its point";
  }
}

}  // namespace
}  // namespace rrt
