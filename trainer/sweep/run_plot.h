// `rrt plot`: training and validation loss of one or more runs against steps or tokens, as a
// PNG (plot/plot.h). Each run has a colour; with early exits, every exit's CE is drawn in the
// run's colour, the final exit solid and the earlier exits dashed (the first) or dotted.
#pragma once

#include <string>
#include <vector>

namespace rrt {

struct RunPlotOptions {
  std::string x = "steps";  // steps | tokens
  int smooth = 1;           // moving average over this many training log points
  std::string title;        // "" : the runs' common parent directory, or "training curves"
};

// Run directories as given, with a sweep directory (one without metrics.jsonl whose
// subdirectories hold runs) replaced by its runs, in sweep order when it has a sweep.json.
std::vector<std::string> expand_run_dirs(const std::vector<std::string>& dirs);

// Draws the runs that logged something; throws rrt::Error when none did. Returns the number of
// runs drawn.
int plot_runs(const std::vector<std::string>& dirs, const std::string& png_path,
              const RunPlotOptions& options);

}  // namespace rrt
