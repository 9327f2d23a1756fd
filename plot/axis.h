// Axis scales and ticks for plot/plot: "nice" linear ticks (1, 2 or 5 x 10^k) and, for values
// that span decades (perplexities from 50 to 5e6 on one chart), a logarithmic axis with ticks at
// powers of ten, so that the small values are not flattened into the bottom pixel row.
#pragma once

#include <string>
#include <vector>

namespace rrt {

// How a chart's y axis maps values: linear, logarithmic (base 10), or chosen from the values
// by wants_log_axis().
enum class AxisScale { automatic, linear, log };

// A log axis is chosen automatically when hi / lo exceeds this (more than one decade), with
// lo > 0: below it a linear axis reads better.
constexpr double kLogAxisMinRatio = 10.0;

// Whether the values [lo, hi] call for a log axis: all positive, spanning more than a decade.
bool wants_log_axis(double lo, double hi);

// Tick positions for [lo, hi]: multiples of 1, 2 or 5 x 10^k, about `target` of them, and
// at least min_step apart (1 for an axis of whole numbers).
std::vector<double> nice_ticks(double lo, double hi, int target = 6, double min_step = 0);
// A tick label: "0.5", "12", "1.5k", "2M".
std::string tick_label(double value, double step);

// Ticks of a log axis over [lo, hi] (0 < lo < hi): the powers of ten inside, every second or
// fifth one when there would be more than `target`; with fewer than two powers of ten inside,
// also 2 and 5 x 10^k, so that a short axis still has labelled ticks.
std::vector<double> log_ticks(double lo, double hi, int target = 7);
// A log axis's tick label: plain for 0.01 <= v < 1000 ("0.02", "5", "200"), otherwise
// mantissa-e-exponent ("1e3", "2e5", "1e-3").
std::string log_tick_label(double value);

}  // namespace rrt
