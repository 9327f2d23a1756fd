// What a run logged in <run>/metrics.jsonl (docs/runs.md, docs/distillation.md), as series for
// the summary table and the plots.
//   training lines: step, loss, tokens, tokens_per_s, and exit<k>_ce with early exits
//   evaluation lines: step, val_loss, and per-exit validation losses when the trainer logs
//   them: exit<k>_val_loss or val_exit<k>_loss (not logged yet: docs/sweeps.md)
//   mixtures (docs/data.md): source_tokens/<name> in training lines, val_loss/<name> in
//   evaluation lines
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace rrt {

using Curve = std::vector<std::pair<double, double>>;  // (step, value), in log order

struct RunMetrics {
  Curve loss;                    // training loss (the weighted total)
  std::map<int, Curve> exit_ce;  // exit k (1-based loop) -> its training CE
  Curve tokens_per_s;
  Curve val_loss;                             // the final exit's validation loss
  double init_val_loss = NAN;                 // <dir>/init_eval.json: the converted start, step 0
  std::map<int, double> final_exit_val_loss;  // <dir>/eval.json: exit k -> its validation loss
  std::map<int, Curve> exit_val_loss;         // per-exit validation loss, when logged
  double tokens_per_step = 0;                 // from the training lines (tokens / step)
  // Runs on a mixture (data.sources), by source name: the last val_loss/<name> and the last
  // source_tokens/<name> logged.
  std::map<std::string, double> source_val_loss;
  std::map<std::string, double> source_tokens;
  int64_t last_step = 0;
  bool empty() const { return loss.empty() && val_loss.empty(); }
};

// Reads <dir>/metrics.jsonl, and what `rrt sweep --launch local` adds: init_eval.json (runs
// that start from a converted model) and eval.json (every exit of the final checkpoint, in
// rrt eval --json's format: "exits": [{"loop": k, "loss": ...}, ...]); a missing file gives empty
// metrics, an unreadable line is skipped (a run being written may end in half a line).
RunMetrics read_metrics(const std::string& dir);

// The newest step in <dir>/metrics.jsonl, read from the file's last 64 KiB only (a run's status
// asks for it on every `rrt sweep --status`); -1 without a metrics file or a whole logged line.
int64_t newest_logged_step(const std::string& dir);

// Mean of the values over the last `fraction` of the curve's points (at least one); NaN if empty.
double tail_mean(const Curve& curve, double fraction);
// Median of the values; NaN if empty.
double median(const Curve& curve);

}  // namespace rrt
