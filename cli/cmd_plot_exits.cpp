// rrt plot-exits REPORT.json... --out FILE.png [--labels A,B,...] [--title TEXT]
// The confidence-exit trade-off of several `rrt eval --json` reports on one figure
// (docs/evaluation.md): early-exit weightings compared without evaluating anything again.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "core/json_file.h"
#include "evaluation/eval_plots.h"

namespace rrt::cli {

namespace {

struct PlotExitsOpts {
  std::vector<std::string> reports, labels;
  std::string out, title;
};

EvalReport read_report(const std::string& path) {
  const nlohmann::json j = read_json_file(path, "; write it with rrt eval --json");
  try {
    return eval_report_from_json(j);
  } catch (const Error& e) {
    RRT_FAIL("plot-exits", path, ": ", e.what());
  }
}

}  // namespace

void add_plot_exits_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "plot-exits",
      "PNG comparing the confidence-exit trade-off of several `rrt eval --json` reports "
      "(docs/evaluation.md)");
  auto o = std::make_shared<PlotExitsOpts>();
  cmd->add_option("reports", o->reports, "JSON reports written by rrt eval --json")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--out", o->out, "the PNG file to write")->required();
  cmd->add_option("--labels", o->labels,
                  "legend names, comma-separated, one per report (default: the file names "
                  "without .json)")
      ->delimiter(',');
  cmd->add_option("--title", o->title, "figure title (default: \"confidence exits\")");
  cmd->footer(
      "One colour per report: its confidence exits (solid, each point labelled with its\n"
      "threshold), its fixed exits at loop 1..K (dashed) and its oracle exit (a lone marker);\n"
      "left perplexity (log axis when it spans decades), right agreement with the final exit,\n"
      "both against mean loops per token. Every report needs validation scores.");
  cmd->callback([o] {
    if (!o->labels.empty() && o->labels.size() != o->reports.size())
      throw CLI::ValidationError("--labels", std::to_string(o->labels.size()) + " labels for " +
                                                 std::to_string(o->reports.size()) + " reports");
    std::vector<EvalReport> reports;
    std::vector<std::string> labels = o->labels;
    for (const std::string& path : o->reports) {
      reports.push_back(read_report(path));
      if (o->labels.empty()) labels.push_back(std::filesystem::path(path).stem().string());
    }
    // Scores of different held-out tokens compare nothing; the count is what a report shows.
    for (size_t i = 1; i < reports.size(); ++i)
      if (reports[i].validation.tokens != reports[0].validation.tokens)
        std::fprintf(stderr,
                     "rrt plot-exits: note: %s scored %lld tokens, %s %lld: were they evaluated "
                     "on the same --data and --batches?\n",
                     labels[i].c_str(), static_cast<long long>(reports[i].validation.tokens),
                     labels[0].c_str(), static_cast<long long>(reports[0].validation.tokens));
    render_figure(exit_comparison_figure(labels, reports, o->title)).save_png(o->out);
    std::printf("wrote %s (%zu reports)\n", o->out.c_str(), reports.size());
  });
}

}  // namespace rrt::cli
