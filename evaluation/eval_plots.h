// The PNG plots of `rrt eval --plot DIR` (docs/evaluation.md): exits.png (perplexity per exit,
// the oracle-exit distribution, multiple-choice accuracy per exit) and confidence.png (the
// confidence-exit trade-off, every point labelled with its threshold), and the figure of
// `rrt plot-exits` (several reports' trade-offs compared). Perplexities that span decades get a
// log axis (plot/axis.h).
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

// `rrt plot-exits`: the confidence-exit trade-off of several reports (the same model
// post-trained with different exit weightings, say) on one figure, one colour per report: its
// confidence points (solid, labelled with their thresholds), its fixed exits (dashed) and its
// oracle exit; perplexity and agreement with the final exit against mean loops per token. Each
// report needs validation (`rrt eval` without --no-validation); labels name them in the legend.
Figure exit_comparison_figure(const std::vector<std::string>& labels,
                              const std::vector<EvalReport>& reports, const std::string& title);

}  // namespace rrt
