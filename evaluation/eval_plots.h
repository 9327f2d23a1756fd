// The PNG plots of `rrt eval --plot DIR` (docs/evaluation.md): exits.png (perplexity per exit,
// the oracle-exit distribution, multiple-choice accuracy per exit) and confidence.png (the
// confidence-exit trade-off, every point labelled with its threshold). Perplexities that span
// decades get a log axis (plot/axis.h).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "evaluation/eval_report.h"
#include "plot/plot.h"

namespace rrt {

// The figures write_eval_plots draws, with their file names: exits.png always, confidence.png
// with validation.
std::vector<std::pair<std::string, Figure>> eval_figures(const EvalReport& report);

}  // namespace rrt
