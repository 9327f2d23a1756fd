// rrt plot RUN_DIR... --out FILE.png [--x steps|tokens] [--smooth N] [--title TEXT]
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "trainer/sweep/run_plot.h"

namespace rrt::cli {

namespace {

struct PlotOpts {
  std::vector<std::string> dirs;
  std::string out;
  RunPlotOptions plot;
};

}  // namespace

void add_plot_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "plot", "PNG of training and validation loss (per exit when logged) of runs or sweeps");
  auto o = std::make_shared<PlotOpts>();
  cmd->add_option("dirs", o->dirs,
                  "run directories (holding metrics.jsonl), or sweep directories (their runs)")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--out", o->out, "the PNG file to write")->required();
  cmd->add_option("--x", o->plot.x, "x axis: steps or tokens")
      ->check(CLI::IsMember({"steps", "tokens"}))
      ->capture_default_str();
  cmd->add_option("--smooth", o->plot.smooth,
                  "moving average of the training loss over this many log lines")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  cmd->add_option("--title", o->plot.title, "figure title (default: none)");
  cmd->footer(
      "Left: training loss (each exit's CE with early exits: the final exit solid, earlier ones\n"
      "dashed/dotted); right: validation loss at each evaluation. One colour per run. A y axis\n"
      "whose values span more than a decade is logarithmic (ticks 1, 10, 100, 1e3, ...). Drawn\n"
      "by rrt itself (plot/png, plot/plot): no Python, gnuplot or network needed "
      "(docs/sweeps.md).");
  cmd->callback([o] {
    const std::vector<std::string> runs = expand_run_dirs(o->dirs);
    const int drawn = plot_runs(runs, o->out, o->plot);
    std::printf("wrote %s (%d of %zu runs had metrics)\n", o->out.c_str(), drawn, runs.size());
  });
}

}  // namespace rrt::cli
