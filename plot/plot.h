// Line plots rasterised into an RGB canvas and written as PNG (plot/png.h): axes with "nice"
// ticks (a log y axis where the values span decades: plot/axis.h), a few colours and dash
// styles, titles, a legend and labelled points, with text in a built-in 5 x 7 bitmap font
// (plot/bitmap_font.h). No plotting library, no Python, no network at run time;
// `rrt plot` draws training curves with it and `rrt eval` can reuse it.
//
//   Figure fig{.title = "loss"};
//   fig.charts.push_back({.title = "training", .x_label = "step", .y_label = "loss"});
//   fig.charts[0].series.push_back({.label = "run a", .color = palette(0), .points = {...}});
//   fig.legend.push_back({"run a", palette(0), LineStyle::solid});
//   render_figure(fig).save_png("loss.png");
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "plot/axis.h"

namespace rrt {

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
  bool operator==(const Rgb&) const = default;
};

constexpr Rgb kWhite{255, 255, 255};
constexpr Rgb kBlack{0, 0, 0};
constexpr Rgb kGrey{150, 150, 150};
constexpr Rgb kLightGrey{228, 228, 228};

// Twenty distinguishable colours (matplotlib's tab10, then the lighter half of tab20), repeated
// for i >= 20.
Rgb palette(int i);

enum class LineStyle { solid, dashed, dotted };

// An RGB raster, top row first; drawing outside the clip rectangle (default: the canvas) is
// ignored.
class Canvas {
 public:
  Canvas(int width, int height, Rgb background = kWhite);

  int width() const { return width_; }
  int height() const { return height_; }
  const std::vector<uint8_t>& rgb() const { return rgb_; }
  Rgb at(int x, int y) const;

  void set_clip(int x0, int y0, int x1, int y1);  // inclusive pixel bounds
  void reset_clip();
  void set(int x, int y, Rgb c);
  void fill_rect(int x0, int y0, int x1, int y1, Rgb c);  // inclusive
  // A line `thickness` pixels wide; dashes are measured along the whole polyline through
  // `dash_phase` (pass the same variable to consecutive segments).
  void line(double x0, double y0, double x1, double y1, Rgb c, int thickness = 1,
            LineStyle style = LineStyle::solid, double* dash_phase = nullptr);
  // Text with its top-left corner at (x, y); scale enlarges each font pixel to scale x scale.
  // vertical: rotated 90 degrees counter-clockwise, read bottom to top, starting at (x, y) as
  // the bottom-left corner.
  void text(int x, int y, const std::string& s, Rgb c, int scale = 1, bool vertical = false);
  static int text_width(const std::string& s, int scale = 1);
  static int text_height(int scale = 1);

  void save_png(const std::string& path) const;

 private:
  int width_, height_;
  int clip_x0_ = 0, clip_y0_ = 0, clip_x1_, clip_y1_;
  std::vector<uint8_t> rgb_;
};

struct Series {
  std::string label;
  Rgb color;
  LineStyle style = LineStyle::solid;
  std::vector<std::pair<double, double>> points;  // (x, y), drawn in order; non-finite y skipped
  bool markers = false;                           // a small square at every point
  // Text drawn beside point i (in black), e.g. the threshold a trade-off point belongs to;
  // empty or missing entries draw nothing. Placed where it overlaps no earlier label if it can.
  std::vector<std::string> point_labels = {};
};

struct Chart {
  std::string title, x_label, y_label;
  std::vector<Series> series;
  // Axis limits; NaN: from the data. With y_max from the data, the y range leaves out the
  // first tenth of the x range when that holds the only large values (the start of training),
  // so that the end of the curves, where runs differ, is not flattened; those values are clipped.
  // On a log y axis (y_scale log, or automatic and the values span more than a decade:
  // wants_log_axis) nothing is clipped, the padding is a fraction of the decades shown, and
  // values <= 0 are not drawn.
  double x_min = NAN, x_max = NAN, y_min = NAN, y_max = NAN;
  AxisScale y_scale = AxisScale::automatic;
  bool x_integer = false;  // x counts something (loops, steps): no tick between whole numbers
};

struct LegendEntry {
  std::string label;
  Rgb color;
  LineStyle style = LineStyle::solid;
};

struct Figure {
  std::string title;
  std::vector<Chart> charts;        // side by side, `columns` per row
  std::vector<LegendEntry> legend;  // one legend for the figure, right of the charts
  int columns = 2;
  int chart_width = 560, chart_height = 420;
  int text_scale = 2;
};

// The y axis draw_chart uses: the scale it chose, its limits (in data units) and labelled ticks.
struct YAxisPlan {
  bool log = false;
  double lo = 0, hi = 1;
  std::vector<std::pair<double, std::string>> ticks;
};
YAxisPlan plan_y_axis(const Chart& chart);

void draw_chart(Canvas& canvas, const Chart& chart, int x, int y, int width, int height,
                int text_scale);
Canvas render_figure(const Figure& figure);

}  // namespace rrt
