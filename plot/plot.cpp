#include "plot/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "plot/bitmap_font.h"
#include "plot/png.h"

namespace rrt {

Rgb palette(int i) {
  // matplotlib's tab10, then its lighter tab20 companions.
  static const Rgb colors[20] = {
      {31, 119, 180},  {255, 127, 14},  {44, 160, 44},   {214, 39, 40},   {148, 103, 189},
      {140, 86, 75},   {227, 119, 194}, {127, 127, 127}, {188, 189, 34},  {23, 190, 207},
      {174, 199, 232}, {255, 187, 120}, {152, 223, 138}, {255, 152, 150}, {197, 176, 213},
      {196, 156, 148}, {247, 182, 210}, {199, 199, 199}, {219, 219, 141}, {158, 218, 229}};
  return colors[((i % 20) + 20) % 20];
}

Canvas::Canvas(int width, int height, Rgb background)
    : width_(width), height_(height), clip_x1_(width - 1), clip_y1_(height - 1) {
  RRT_CHECK(width > 0 && height > 0 && width <= 16384 && height <= 16384, "plot", "canvas size ",
            width, " x ", height, " is out of range");
  rgb_.resize(static_cast<size_t>(width) * static_cast<size_t>(height) * 3);
  for (size_t i = 0; i < rgb_.size(); i += 3) {
    rgb_[i] = background.r;
    rgb_[i + 1] = background.g;
    rgb_[i + 2] = background.b;
  }
}

Rgb Canvas::at(int x, int y) const {
  const size_t i =
      (static_cast<size_t>(y) * static_cast<size_t>(width_) + static_cast<size_t>(x)) * 3;
  return {rgb_.at(i), rgb_.at(i + 1), rgb_.at(i + 2)};
}

void Canvas::set_clip(int x0, int y0, int x1, int y1) {
  clip_x0_ = std::max(0, x0);
  clip_y0_ = std::max(0, y0);
  clip_x1_ = std::min(width_ - 1, x1);
  clip_y1_ = std::min(height_ - 1, y1);
}

void Canvas::reset_clip() { set_clip(0, 0, width_ - 1, height_ - 1); }

void Canvas::set(int x, int y, Rgb c) {
  if (x < clip_x0_ || x > clip_x1_ || y < clip_y0_ || y > clip_y1_) return;
  const size_t i =
      (static_cast<size_t>(y) * static_cast<size_t>(width_) + static_cast<size_t>(x)) * 3;
  rgb_[i] = c.r;
  rgb_[i + 1] = c.g;
  rgb_[i + 2] = c.b;
}

void Canvas::fill_rect(int x0, int y0, int x1, int y1, Rgb c) {
  for (int y = std::max(y0, clip_y0_); y <= std::min(y1, clip_y1_); ++y)
    for (int x = std::max(x0, clip_x0_); x <= std::min(x1, clip_x1_); ++x) set(x, y, c);
}

void Canvas::line(double x0, double y0, double x1, double y1, Rgb c, int thickness, LineStyle style,
                  double* dash_phase) {
  if (!std::isfinite(x0) || !std::isfinite(y0) || !std::isfinite(x1) || !std::isfinite(y1)) return;
  // Far outside the canvas: shorten to a box around it so the walk below stays short.
  const double big = 4.0 * std::max(width_, height_);
  auto clamp = [big](double v) { return std::clamp(v, -big, big); };
  x0 = clamp(x0), y0 = clamp(y0), x1 = clamp(x1), y1 = clamp(y1);
  double local_phase = 0;
  double& phase = dash_phase ? *dash_phase : local_phase;
  const double dx = x1 - x0, dy = y1 - y0;
  const double length = std::hypot(dx, dy);
  const int steps = std::max(1, static_cast<int>(std::ceil(std::max(std::abs(dx), std::abs(dy)))));
  const double period = style == LineStyle::dashed ? 12.0 : 6.0;
  const double on = style == LineStyle::dashed ? 7.0 : 2.0;
  const int lo = -(thickness - 1) / 2, hi = thickness / 2;
  for (int i = 0; i <= steps; ++i) {
    const double t = static_cast<double>(i) / steps;
    const double along = phase + t * length;
    if (style != LineStyle::solid && std::fmod(along, period) >= on) continue;
    const int px = static_cast<int>(std::lround(x0 + t * dx));
    const int py = static_cast<int>(std::lround(y0 + t * dy));
    for (int oy = lo; oy <= hi; ++oy)
      for (int ox = lo; ox <= hi; ++ox) set(px + ox, py + oy, c);
  }
  phase += length;
}

void Canvas::text(int x, int y, const std::string& s, Rgb c, int scale, bool vertical) {
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char ch = static_cast<unsigned char>(s[i]);
    if (ch < 32 || ch > 126) ch = '?';
    const uint8_t* glyph = kFont5x7[ch - 32];
    for (int gy = 0; gy < kGlyphHeight; ++gy)
      for (int gx = 0; gx < kGlyphWidth; ++gx) {
        if (!((glyph[gy] >> (kGlyphWidth - 1 - gx)) & 1)) continue;
        const int along = (static_cast<int>(i) * (kGlyphWidth + 1) + gx) * scale;
        if (vertical)
          fill_rect(x + gy * scale, y - along - scale + 1, x + gy * scale + scale - 1, y - along,
                    c);
        else
          fill_rect(x + along, y + gy * scale, x + along + scale - 1, y + gy * scale + scale - 1,
                    c);
      }
  }
}

int Canvas::text_width(const std::string& s, int scale) {
  return s.empty() ? 0 : static_cast<int>(s.size()) * (kGlyphWidth + 1) * scale - scale;
}

int Canvas::text_height(int scale) { return kGlyphHeight * scale; }

void Canvas::save_png(const std::string& path) const { write_png(path, width_, height_, rgb_); }

namespace {

struct Range {
  double lo = INFINITY, hi = -INFINITY;
  void add(double v) {
    if (!std::isfinite(v)) return;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  bool empty() const { return !(hi >= lo); }
};

// The x range: the data's, then the chart's explicit limits.
Range x_range(const Chart& chart) {
  Range xr;
  for (const Series& s : chart.series)
    for (auto [x, y] : s.points)
      if (std::isfinite(y)) xr.add(x);
  if (!std::isnan(chart.x_min)) xr.lo = chart.x_min;
  if (!std::isnan(chart.x_max)) xr.hi = chart.x_max;
  if (xr.empty()) xr = {0, 1};
  if (xr.hi == xr.lo) xr = {xr.lo - 1, xr.hi + 1};
  return xr;
}

// A linear y range: the data's, with the rule of Chart (leave out a start that alone holds the
// large values), then padding, then the chart's explicit limits.
Range linear_y_range(const Chart& chart, const Range& xr) {
  Range yr;
  for (const Series& s : chart.series)
    for (auto [x, y] : s.points) yr.add(y);
  Range late;
  const double cut = xr.lo + 0.1 * (xr.hi - xr.lo);
  for (const Series& s : chart.series)
    for (auto [x, y] : s.points)
      if (x >= cut) late.add(y);
  if (!late.empty() && yr.hi - yr.lo > 2 * (late.hi - yr.lo) && late.hi > yr.lo) yr.hi = late.hi;
  if (yr.empty()) yr = {0, 1};
  const double pad =
      yr.hi > yr.lo ? 0.05 * (yr.hi - yr.lo) : std::max(1e-3, std::abs(yr.hi) * 0.05);
  yr = {yr.lo - pad, yr.hi + pad};
  if (!std::isnan(chart.y_min)) yr.lo = chart.y_min;
  if (!std::isnan(chart.y_max)) yr.hi = chart.y_max;
  if (!(yr.hi > yr.lo)) yr.hi = yr.lo + 1;
  return yr;
}

// A log y range: the positive values' (all of them: a log axis needs no clipping), padded by
// 5% of the decades shown, then the chart's explicit limits where they are positive.
Range log_y_range(const Chart& chart) {
  Range yr;
  for (const Series& s : chart.series)
    for (auto [x, y] : s.points)
      if (y > 0) yr.add(y);
  if (yr.empty()) yr = {1, 10};
  const double decades = std::log10(yr.hi / yr.lo);
  const double pad = std::pow(10.0, decades > 0 ? 0.05 * decades : 0.05);
  yr = {yr.lo / pad, yr.hi * pad};
  if (chart.y_min > 0) yr.lo = chart.y_min;
  if (chart.y_max > 0) yr.hi = chart.y_max;
  if (!(yr.hi > yr.lo)) yr.hi = yr.lo * 10;
  return yr;
}

struct Box {
  int x0, y0, x1, y1;  // inclusive
  bool overlaps(const Box& o) const { return x0 <= o.x1 && o.x0 <= x1 && y0 <= o.y1 && o.y0 <= y1; }
  bool inside(const Box& o) const { return x0 >= o.x0 && x1 <= o.x1 && y0 >= o.y0 && y1 <= o.y1; }
};

// Where a w x h label of the point (x, y) goes: beside the point (above right, below right,
// above left, below left, then further up or down), at the first place inside the plot area
// that overlaps no label placed before; failing that, the first place inside the area.
Box place_label(int x, int y, int w, int h, int gap, const Box& area,
                const std::vector<Box>& placed) {
  std::vector<Box> candidates;
  for (int shift = 0; shift <= 4; ++shift) {
    const int dy = shift * (h + gap);
    for (int x0 : {x + gap, x - gap - w + 1})
      for (int y0 : {y - gap - h + 1 - dy, y + gap + dy})
        candidates.push_back({x0, y0, x0 + w - 1, y0 + h - 1});
  }
  const Box* fallback = nullptr;
  for (const Box& c : candidates) {
    if (!c.inside(area)) continue;
    if (fallback == nullptr) fallback = &c;
    if (std::none_of(placed.begin(), placed.end(), [&](const Box& p) { return p.overlaps(c); }))
      return c;
  }
  return fallback != nullptr ? *fallback : candidates.front();
}

}  // namespace

YAxisPlan plan_y_axis(const Chart& chart) {
  YAxisPlan plan;
  plan.log = chart.y_scale == AxisScale::log;
  if (chart.y_scale == AxisScale::automatic) {
    Range data;
    for (const Series& s : chart.series)
      for (auto [x, y] : s.points) data.add(y);
    if (!std::isnan(chart.y_min)) data.lo = chart.y_min;
    if (!std::isnan(chart.y_max)) data.hi = chart.y_max;
    plan.log = wants_log_axis(data.lo, data.hi);
  }
  const Range yr = plan.log ? log_y_range(chart) : linear_y_range(chart, x_range(chart));
  plan.lo = yr.lo;
  plan.hi = yr.hi;
  if (plan.log) {
    std::vector<double> ticks = log_ticks(yr.lo, yr.hi);
    if (ticks.empty()) ticks = {yr.lo, yr.hi};  // a forced log axis shorter than 2 x
    for (double v : ticks) plan.ticks.emplace_back(v, log_tick_label(v));
  } else {
    const std::vector<double> ticks = nice_ticks(yr.lo, yr.hi, 6);
    const double step = ticks.size() > 1 ? ticks[1] - ticks[0] : 1;
    for (double v : ticks) plan.ticks.emplace_back(v, tick_label(v, step));
  }
  return plan;
}

void draw_chart(Canvas& canvas, const Chart& chart, int x, int y, int width, int height,
                int text_scale) {
  const int s = text_scale, th = Canvas::text_height(s), pad = 6 * s, gap = 3 * s;
  const Range xr = x_range(chart);
  const YAxisPlan yaxis = plan_y_axis(chart);
  const std::vector<double> xticks = nice_ticks(xr.lo, xr.hi, 5, chart.x_integer ? 1.0 : 0.0);
  const double xstep = xticks.size() > 1 ? xticks[1] - xticks[0] : 1;
  int ytick_w = 0;
  for (const auto& [v, label] : yaxis.ticks)
    ytick_w = std::max(ytick_w, Canvas::text_width(label, s));

  const int left = x + pad + (chart.y_label.empty() ? 0 : th + gap) + ytick_w + gap;
  const int right = x + width - pad - Canvas::text_width(tick_label(xticks.back(), xstep), s) / 2;
  const int top = y + pad + (chart.title.empty() ? 0 : th + 2 * gap);
  const int bottom = y + height - pad - (chart.x_label.empty() ? 0 : th + gap) - th - gap;
  if (right - left < 20 || bottom - top < 20) return;  // too small to draw anything useful
  auto px = [&](double v) { return left + (v - xr.lo) / (xr.hi - xr.lo) * (right - left); };
  // On a log axis positions are linear in log10(v); v <= 0 maps to NaN, which is not drawn.
  auto ty = [&](double v) { return yaxis.log ? (v > 0 ? std::log10(v) : NAN) : v; };
  const double ty_lo = ty(yaxis.lo), ty_hi = ty(yaxis.hi);
  auto py = [&](double v) { return bottom - (ty(v) - ty_lo) / (ty_hi - ty_lo) * (bottom - top); };

  if (!chart.title.empty())
    canvas.text(x + (width - Canvas::text_width(chart.title, s)) / 2, y + pad, chart.title, kBlack,
                s);
  for (double v : xticks) {
    const int gx = static_cast<int>(std::lround(px(v)));
    canvas.fill_rect(gx, top, gx, bottom, kLightGrey);
    canvas.fill_rect(gx, bottom, gx, bottom + gap - 1, kBlack);
    const std::string label = tick_label(v, xstep);
    canvas.text(gx - Canvas::text_width(label, s) / 2, bottom + gap + 1, label, kBlack, s);
  }
  for (const auto& [v, label] : yaxis.ticks) {
    const int gy = static_cast<int>(std::lround(py(v)));
    canvas.fill_rect(left, gy, right, gy, kLightGrey);
    canvas.fill_rect(left - gap, gy, left, gy, kBlack);
    canvas.text(left - gap - 1 - Canvas::text_width(label, s), gy - th / 2, label, kBlack, s);
  }
  if (!chart.x_label.empty())
    canvas.text((left + right - Canvas::text_width(chart.x_label, s)) / 2, y + height - pad - th,
                chart.x_label, kBlack, s);
  if (!chart.y_label.empty())
    canvas.text(x + pad, (top + bottom + Canvas::text_width(chart.y_label, s)) / 2, chart.y_label,
                kBlack, s, /*vertical=*/true);

  canvas.set_clip(left + 1, top + 1, right - 1, bottom - 1);
  const int thickness = std::max(1, s);
  for (const Series& series : chart.series) {
    double phase = 0;
    bool have_prev = false;
    double prev_x = 0, prev_y = 0;
    for (auto [vx, vy] : series.points) {
      const double cx = px(vx), cy = py(vy);  // not finite: a gap (so is v <= 0 on a log axis)
      if (!std::isfinite(cx) || !std::isfinite(cy)) {
        have_prev = false;
        continue;
      }
      if (have_prev)
        canvas.line(prev_x, prev_y, cx, cy, series.color, thickness, series.style, &phase);
      else if (series.points.size() == 1 || series.markers)
        canvas.line(cx, cy, cx, cy, series.color, thickness);
      if (series.markers) {
        const int mx = static_cast<int>(std::lround(cx)), my = static_cast<int>(std::lround(cy));
        canvas.fill_rect(mx - 2 * thickness, my - 2 * thickness, mx + 2 * thickness,
                         my + 2 * thickness, series.color);
      }
      have_prev = true;
      prev_x = cx, prev_y = cy;
    }
  }
  // Point labels after every curve, so that no later curve covers one.
  std::vector<Box> placed;
  const Box area{left + 1, top + 1, right - 1, bottom - 1};
  for (const Series& series : chart.series)
    for (size_t i = 0; i < series.point_labels.size() && i < series.points.size(); ++i) {
      const std::string& label = series.point_labels[i];
      const double cx = px(series.points[i].first), cy = py(series.points[i].second);
      if (label.empty() || !std::isfinite(cx) || !std::isfinite(cy)) continue;
      const Box b =
          place_label(static_cast<int>(std::lround(cx)), static_cast<int>(std::lround(cy)),
                      Canvas::text_width(label, s), th, 3 * thickness, area, placed);
      canvas.text(b.x0, b.y0, label, kBlack, s);
      placed.push_back(b);
    }
  canvas.reset_clip();
  // The frame last, over the curves' ends.
  canvas.fill_rect(left, top, right, top, kBlack);
  canvas.fill_rect(left, bottom, right, bottom, kBlack);
  canvas.fill_rect(left, top, left, bottom, kBlack);
  canvas.fill_rect(right, top, right, bottom, kBlack);
}

Canvas render_figure(const Figure& f) {
  RRT_CHECK(!f.charts.empty(), "plot", "a figure needs at least one chart");
  const int s = f.text_scale, th = Canvas::text_height(s), pad = 8 * s;
  const int columns = std::max(1, std::min<int>(f.columns, static_cast<int>(f.charts.size())));
  const int rows = (static_cast<int>(f.charts.size()) + columns - 1) / columns;
  const int title_h = f.title.empty() ? 0 : th + 2 * pad;
  const int sample_w = 16 * s, row_h = th + 3 * s;
  int legend_w = 0;
  for (const LegendEntry& e : f.legend)
    legend_w = std::max(legend_w, sample_w + 3 * s + Canvas::text_width(e.label, s));
  if (legend_w > 0) legend_w += 2 * pad;
  const int charts_h = rows * f.chart_height;
  const int legend_h = static_cast<int>(f.legend.size()) * row_h + 2 * pad;
  const int width = columns * f.chart_width + legend_w;
  const int height = title_h + std::max(charts_h, legend_w > 0 ? legend_h : 0);
  Canvas canvas(width, height);
  if (!f.title.empty())
    canvas.text((columns * f.chart_width - Canvas::text_width(f.title, s)) / 2, pad, f.title,
                kBlack, s);
  for (size_t i = 0; i < f.charts.size(); ++i) {
    const int cx = static_cast<int>(i % columns) * f.chart_width;
    const int cy = title_h + static_cast<int>(i / columns) * f.chart_height;
    draw_chart(canvas, f.charts[i], cx, cy, f.chart_width, f.chart_height, s);
  }
  const int lx = columns * f.chart_width + pad;
  int ly = title_h + pad;
  for (const LegendEntry& e : f.legend) {
    double phase = 0;
    canvas.line(lx, ly + th / 2.0, lx + sample_w, ly + th / 2.0, e.color, std::max(1, s), e.style,
                &phase);
    canvas.text(lx + sample_w + 3 * s, ly, e.label, kBlack, s);
    ly += row_h;
  }
  return canvas;
}

}  // namespace rrt
