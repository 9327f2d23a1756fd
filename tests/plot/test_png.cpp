// plot/png and plot/plot: the PNG decodes (with zlib, by tests/png_decode.h) to the pixels
// written; ticks and labels; a rendered figure has the planned size and draws its curves, its
// frame and its text.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "core/error.h"
#include "plot/plot.h"
#include "plot/png.h"
#include "tests/error_helpers.h"
#include "tests/png_decode.h"

namespace rrt {
namespace {

namespace fs = std::filesystem;
using testing::decode_png;
using testing::read_png;

uint32_t packed(Rgb c) { return (uint32_t{c.r} << 16) | (uint32_t{c.g} << 8) | c.b; }

TEST(Png, DecodesToThePixelsWritten) {
  for (auto [w, h] : {std::pair{1, 1}, std::pair{7, 3}, std::pair{64, 33}}) {
    std::vector<uint8_t> rgb(static_cast<size_t>(w) * h * 3);
    for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = static_cast<uint8_t>(i * 37 + i / 5);
    const testing::DecodedPng png = decode_png(encode_png(w, h, rgb));
    EXPECT_EQ(png.width, static_cast<uint32_t>(w));
    EXPECT_EQ(png.height, static_cast<uint32_t>(h));
    EXPECT_EQ(png.bit_depth, 8);
    EXPECT_EQ(png.color_type, 2);
    EXPECT_EQ(png.chunks, (std::vector<std::string>{"IHDR", "IDAT", "IEND"}));
    EXPECT_EQ(png.rgb, rgb) << w << " x " << h;
  }
}

TEST(Png, RejectsWrongSizes) {
  EXPECT_TRUE(
      testing::contains(testing::error_message([] { encode_png(2, 2, std::vector<uint8_t>(11)); }),
                        "expected 12 bytes"));
  EXPECT_TRUE(
      testing::contains(testing::error_message([] { encode_png(0, 2, {}); }), "out of range"));
  const std::string path = (fs::path(::testing::TempDir()) / "rrt_png_no_dir" / "x.png").string();
  EXPECT_TRUE(testing::contains(testing::error_message([&] {
                                  write_png(path, 1, 1, {0, 0, 0});
                                }),
                                "cannot write"));
}

TEST(Plot, NiceTicksAndLabels) {
  EXPECT_EQ(nice_ticks(0, 10, 5), (std::vector<double>{0, 2, 4, 6, 8, 10}));
  EXPECT_EQ(tick_label(nice_ticks(0, 300, 5)[0], 100), "0");  // not "-0"
  const std::vector<double> small = nice_ticks(1.3, 2.05, 6);
  ASSERT_EQ(small.size(), 4u);
  for (size_t i = 0; i < 4; ++i) EXPECT_NEAR(small[i], 1.4 + 0.2 * i, 1e-12);
  const std::vector<double> big = nice_ticks(0, 2.4e6, 5);
  EXPECT_EQ(big.front(), 0);
  EXPECT_NEAR(big[1], 5e5, 1e-6);
  EXPECT_EQ(tick_label(5e5, 5e5), "500k");
  EXPECT_EQ(tick_label(2e6, 1e6), "2M");
  EXPECT_EQ(tick_label(1.25, 0.25), "1.25");
  EXPECT_EQ(tick_label(3, 1), "3");
  // An axis of loops 1..2: fifths without a minimum step, whole numbers with one.
  EXPECT_EQ(nice_ticks(1, 2, 5).size(), 6u);
  EXPECT_EQ(nice_ticks(1, 2, 5, 1.0), (std::vector<double>{1, 2}));
  EXPECT_EQ(nice_ticks(0, 40, 5, 1.0), nice_ticks(0, 40, 5));  // a larger step is kept
  EXPECT_EQ(tick_label(0.5, 0.1), "0.5");
}

TEST(Plot, TextAndLines) {
  Canvas c(40, 20);
  c.text(1, 1, "Ag", kBlack, 1);
  int ink = 0;
  for (int y = 0; y < 20; ++y)
    for (int x = 0; x < 40; ++x) ink += c.at(x, y) == kBlack;
  EXPECT_GT(ink, 20);  // 'A' alone has 20 pixels
  EXPECT_EQ(Canvas::text_width("Ag", 2), 22);
  Canvas d(10, 10);
  d.line(0, 0, 9, 9, kBlack);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(d.at(i, i), kBlack);
  Canvas e(30, 3);
  double phase = 0;
  e.line(0, 1, 29, 1, kBlack, 1, LineStyle::dashed, &phase);
  int on = 0;
  for (int x = 0; x < 30; ++x) on += e.at(x, 1) == kBlack;
  EXPECT_GT(on, 10);
  EXPECT_LT(on, 25);
}

TEST(Plot, FigureHasItsSizeCurvesFrameAndText) {
  Figure fig;
  fig.title = "a test figure";
  Chart left, right;
  left.title = "training loss";
  left.x_label = right.x_label = "step";
  left.y_label = "loss";
  for (int run = 0; run < 3; ++run) {
    Series s;
    s.label = "run " + std::to_string(run);
    s.color = palette(run);
    for (int step = 0; step <= 100; step += 5)
      s.points.emplace_back(step, 5.0 * std::exp(-step / 30.0) + 1 + 0.3 * run);
    left.series.push_back(s);
    s.style = LineStyle::dashed;
    s.markers = true;
    right.series.push_back(s);
    fig.legend.push_back({s.label, s.color, LineStyle::solid});
  }
  fig.charts = {left, right};
  const std::string path =
      (fs::path(::testing::TempDir()) / ("rrt_plot_" + std::to_string(::getpid()) + ".png"))
          .string();
  render_figure(fig).save_png(path);
  const testing::DecodedPng png = read_png(path);
  fs::remove(path);
  const int legend_w = 16 * 2 + 3 * 2 + Canvas::text_width("run 0", 2) + 2 * 16;
  EXPECT_EQ(png.width, static_cast<uint32_t>(2 * fig.chart_width + legend_w));
  EXPECT_EQ(png.height, static_cast<uint32_t>(Canvas::text_height(2) + 2 * 16 + fig.chart_height));
  std::map<uint32_t, int> count;
  for (uint32_t y = 0; y < png.height; ++y)
    for (uint32_t x = 0; x < png.width; ++x) ++count[png.pixel(x, y)];
  const int background = count[packed(kWhite)];
  EXPECT_LT(background, static_cast<int>(png.width * png.height * 0.97)) << "almost blank";
  for (int run = 0; run < 3; ++run)
    EXPECT_GT(count[packed(palette(run))], 500) << "curve of run " << run;
  EXPECT_GT(count[packed(kBlack)], 2000) << "frame, ticks and text";
  EXPECT_GT(count[packed(kLightGrey)], 500) << "grid lines";
}

}  // namespace
}  // namespace rrt
