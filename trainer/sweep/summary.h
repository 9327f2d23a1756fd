// `rrt sweep summary DIR`: one row per run of a sweep directory, as Markdown and CSV.
// Columns: run, the swept keys, parameters (total, LoRA), steps done, validation perplexity
// of the converted starting model (runs of a sweep with convert:), of the final exit (the last
// evaluation), per-exit validation perplexity of the final checkpoint (eval.json, which
// `rrt sweep --launch local` writes; or the last per-exit values the trainer logs), per-exit
// training perplexity (exp of the mean exit<k>_ce over the last 10% of the log lines, for runs with
// early exits), for runs on a mixture (data.sources) each source's validation perplexity and
// realised share of the tokens, tokens/s (median of the logged values) and the status.
#pragma once

#include <string>
#include <vector>

namespace rrt {

struct SummaryTable {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};

// dir: a sweep's output directory (its sweep.json names the runs and their swept values); a
// directory without sweep.json summarises each subdirectory holding a config.yaml, with the
// keys whose values differ between them as the swept columns.
SummaryTable sweep_summary(const std::string& dir);

std::string to_markdown(const SummaryTable& table);
std::string to_csv(const SummaryTable& table);

}  // namespace rrt
