// rrt sweep FILE.yaml [key=value ...] [--dry-run] [--launch local|print|slurm] [--out DIR]
// rrt sweep summary DIR
// Expands an ablation sweep into run directories and runs them (docs/sweeps.md).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>

#include "cli/commands.h"
#include "core/error.h"
#include "trainer/shutdown.h"
#include "trainer/sweep/launch.h"
#include "trainer/sweep/process.h"
#include "trainer/sweep/run_plot.h"
#include "trainer/sweep/summary.h"
#include "trainer/sweep/sweep.h"

#ifndef RRT_SOURCE_DIR
#define RRT_SOURCE_DIR "."
#endif

namespace rrt::cli {

namespace fs = std::filesystem;

namespace {

struct SweepOpts {
  std::string file, out, launch, source = RRT_SOURCE_DIR;
  std::vector<std::string> overrides, sbatch_args, only;
  bool dry_run = false, submit = false, stop_on_failure = false;
  int ranks = 2;
};

std::string self_binary() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("rrt") : self.string();
}

// Writes DIR/summary.md and DIR/summary.csv; returns the Markdown.
std::string write_summary(const std::string& dir) {
  const SummaryTable t = sweep_summary(dir);
  const std::string md = to_markdown(t);
  std::ofstream(fs::path(dir) / "summary.md") << md;
  std::ofstream(fs::path(dir) / "summary.csv") << to_csv(t);
  return md;
}

void list_runs(const Sweep& s) {
  std::printf("sweep %s (%s): %zu run%s in %s\n", s.name.c_str(), s.file.c_str(), s.runs.size(),
              s.runs.size() == 1 ? "" : "s", s.out_dir.c_str());
  for (const std::string& b : s.before) std::printf("  before: %s\n", b.c_str());
  size_t width = 0;
  for (const SweepRun& r : s.runs) width = std::max(width, r.name.size());
  for (const SweepRun& r : s.runs) {
    std::string values;
    for (const auto& [k, v] : r.values) values += " " + k + "=" + v;
    const RunStatus st = read_run_status(r.dir, r.config.train.steps);
    std::printf("  %-*s %-12s%s\n", static_cast<int>(width), r.name.c_str(),
                to_string(st.state).c_str(), values.c_str());
  }
}

// The same command again, which resumes the sweep: finished runs are skipped, interrupted ones
// resume from their newest checkpoint.
std::string resume_command(const SweepOpts& o) {
  std::string cmd = "rrt sweep " + shell_quote(o.file);
  for (const std::string& kv : o.overrides) cmd += " " + shell_quote(kv);
  if (!o.out.empty()) cmd += " --out " + shell_quote(o.out);
  for (const std::string& name : o.only) cmd += " --only " + shell_quote(name);
  cmd += " --launch local";
  if (o.stop_on_failure) cmd += " --stop-on-failure";
  return cmd;
}

// After a stop signal: every run's state (finished, interrupted with its step, not started,
// failed), how to resume, and exit status 3 (as rrt train's: stopped, resumable).
[[noreturn]] void report_stop(const Sweep& s, const SweepOpts& o) {
  std::fflush(stderr);
  const int signal = stop_signal();
  std::printf("== sweep %s stopped%s%s; no further run was started\n", s.name.c_str(),
              signal != 0 ? " by " : " after a run was stopped by a signal",
              signal != 0 ? signal_name(signal) : "");
  size_t width = 0;
  for (const SweepRun& r : s.runs) width = std::max(width, r.name.size());
  int finished = 0, interrupted = 0, not_started = 0, failed = 0;
  for (const SweepRun& r : s.runs) {
    const RunStatus st = read_run_status(r.dir, r.config.train.steps);
    std::string detail;
    switch (st.state) {
      case RunState::finished:
        ++finished;
        break;
      case RunState::interrupted:
      case RunState::running:  // ours has exited: whatever status.json says, it resumes
        ++interrupted;
        detail = "at step " + std::to_string(st.last_step) + "/" +
                 std::to_string(r.config.train.steps) +
                 (st.last_step > 0 ? "" : " (no checkpoint)");
        break;
      case RunState::not_started:
        ++not_started;
        break;
      case RunState::failed:
        ++failed;
        detail = st.error;
        break;
    }
    const std::string state =
        st.state == RunState::running ? std::string("interrupted") : to_string(st.state);
    std::printf(
        "  %-*s %s%s%s\n", static_cast<int>(width), r.name.c_str(), state.c_str(),
        detail.empty() ? "" : std::string(12 - std::min<size_t>(state.size(), 11), ' ').c_str(),
        detail.c_str());
  }
  std::printf("== %d finished, %d interrupted, %d not started%s\n", finished, interrupted,
              not_started, failed ? (", " + std::to_string(failed) + " failed").c_str() : "");
  std::printf(
      "to resume, rerun the same command (finished runs are skipped, interrupted ones "
      "resume from their newest checkpoint):\n  %s\n",
      resume_command(o).c_str());
  std::fflush(stdout);
  throw CLI::RuntimeError(kExitStoppedOnSignal);  // main returns 3
}

// The prerequisite sweeps, depth first, each once; `--launch local` runs them, the other
// launchers need them finished.
void run_before(const Sweep& s, const SweepOpts& o, std::set<std::string>& done, int depth) {
  RRT_CHECK(depth < 16, s.file, "before: sweeps depend on each other in a cycle");
  for (const std::string& file : s.before) {
    const std::string key = fs::weakly_canonical(file).string();
    if (done.count(key)) continue;
    const Sweep before = load_sweep(file);
    run_before(before, o, done, depth + 1);
    done.insert(key);
    if (o.launch == "local") {
      std::printf("== before %s: sweep %s\n", s.name.c_str(), before.name.c_str());
      const LaunchCounts c = launch_local(before, {self_binary(), !o.stop_on_failure, false});
      if (c.stopped_on_signal) report_stop(before, o);
      RRT_CHECK(c.failed == 0, file, c.failed,
                " run(s) of this prerequisite failed; see rrt sweep "
                "summary ",
                before.out_dir);
      write_summary(before.out_dir);
    } else {
      int unfinished = 0;
      for (const SweepRun& r : before.runs) unfinished += !run_finished(r);
      RRT_CHECK(unfinished == 0, file, unfinished, " run(s) of ", before.name, " (before: of ",
                s.file, ") are not finished; run that sweep first (rrt sweep ", file,
                " --launch local, or submit it and wait)");
    }
  }
}

// --only NAME...: the sweep narrowed to the runs named, in the sweep's order. A name that is no
// run of the sweep is an error that lists the names (a typo must not quietly run nothing).
Sweep only_runs(Sweep s, const std::vector<std::string>& only) {
  if (only.empty()) return s;
  std::string names;
  for (const SweepRun& r : s.runs) names += (names.empty() ? "" : ", ") + r.name;
  for (const std::string& name : only) {
    const bool known = std::any_of(s.runs.begin(), s.runs.end(),
                                   [&](const SweepRun& r) { return r.name == name; });
    RRT_CHECK(known, s.file, "--only ", name, ": no run of sweep ", s.name,
              " has that name (its runs: ", names, ")");
  }
  std::erase_if(s.runs, [&](const SweepRun& r) {
    return std::find(only.begin(), only.end(), r.name) == only.end();
  });
  return s;
}

void run_sweep(const SweepOpts& o) {
  RRT_CHECK(!o.file.empty(), "sweep",
            "give a sweep file (rrt sweep FILE.yaml) or rrt sweep summary DIR");
  const Sweep all = load_sweep(o.file, o.out, o.overrides);
  const Sweep s = only_runs(all, o.only);
  if (o.dry_run) {
    list_runs(s);
    return;
  }
  const std::string launch_dir = (fs::path(o.source) / "launch").string();
  if (o.launch.empty()) {
    write_sweep(s);
    list_runs(s);
    std::printf("wrote %zu run directories; run them with --launch local|print|slurm\n",
                s.runs.size());
    return;
  }
  // --launch local: a stop signal (Ctrl-C, SIGTERM, SIGUSR1) goes on to the run in training,
  // which checkpoints; nothing further starts; a second one kills it at once.
  std::optional<StopSignals> signals;
  if (o.launch == "local") signals.emplace(StopMode::forward_to_child);
  std::set<std::string> done;
  run_before(s, o, done, 0);
  if (o.launch == "local") {
    std::printf("== sweep %s: %zu runs in %s\n", s.name.c_str(), s.runs.size(), s.out_dir.c_str());
    const LaunchCounts c = launch_local(s, {self_binary(), !o.stop_on_failure, false});
    if (c.stopped_on_signal) {
      write_summary(s.out_dir);
      report_stop(s, o);
    }
    std::printf("== %d trained, %d finished before, %d failed", c.trained, c.skipped, c.failed);
    if (c.busy) std::printf(", %d running elsewhere", c.busy);
    if (c.stopped) std::printf(", %d stopped early (rerun to resume)", c.stopped);
    std::printf("\n");
    std::printf("%s", write_summary(s.out_dir).c_str());
    try {
      const std::string png = (fs::path(s.out_dir) / "loss.png").string();
      std::vector<std::string> dirs;
      for (const SweepRun& r : all.runs) dirs.push_back(r.dir);  // with --only, all the same
      plot_runs(dirs, png, {.smooth = 5, .title = "sweep " + s.name});
      std::printf("summary: %s/summary.md, summary.csv; curves: %s\n", s.out_dir.c_str(),
                  png.c_str());
    } catch (const Error&) {
      // nothing logged yet: no plot
    }
    RRT_CHECK(c.failed == 0, "sweep", c.failed, " of ", s.runs.size(),
              " runs failed (status.json and train.log in each); rerunning the command retries "
              "them and skips the finished ones");
  } else if (o.launch == "print") {
    std::printf("%s", mpirun_commands(s, launch_dir, self_binary(), o.ranks).c_str());
  } else {
    const SlurmArray a = slurm_array(s, launch_dir, self_binary(), o.sbatch_args);
    if (a.tasks == 0) {
      std::printf("every run of %s is finished: nothing to submit\n", s.name.c_str());
      return;
    }
    std::printf("# %lld unfinished run(s) listed in %s; one array task each:\n%s\n",
                static_cast<long long>(a.tasks), a.list.c_str(), a.shell.c_str());
    if (o.submit) {
      std::string output;
      const int rc = submit_slurm_array(a, launch_dir, self_binary(), output);
      std::printf("%s", output.c_str());
      RRT_CHECK(rc == 0, "sweep", "sbatch failed with exit code ", rc);
    }
  }
}

}  // namespace

void add_sweep_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "sweep", "Expand an ablation sweep (YAML) into run directories and run them");
  auto o = std::make_shared<SweepOpts>();
  cmd->add_option("file", o->file, "sweep file (configs/sweeps/*.yaml; format in docs/sweeps.md)")
      ->check(CLI::ExistingFile);
  cmd->add_option("overrides", o->overrides,
                  "key=value overrides for every run, e.g. train.steps=20 (not a swept key)");
  cmd->add_flag("--dry-run", o->dry_run, "list the runs, their values and status; write nothing");
  cmd->add_option("--only", o->only,
                  "only the runs of these names (as --dry-run lists them; repeatable, or "
                  "comma-separated), e.g. to train one arm of a sweep in the time there is")
      ->delimiter(',')
      ->allow_extra_args(false);
  cmd->add_option(
         "--launch", o->launch,
         "local: train the unfinished runs one after another here (resuming "
         "interrupted ones, skipping finished ones; before: sweeps first); print: the "
         "launch/mpirun.sh command of each; slurm: a job array of launch/slurm_array.sbatch")
      ->check(CLI::IsMember({"local", "print", "slurm"}));
  cmd->add_option("--out", o->out, "directory of the run directories (default runs/sweeps/<name>)");
  cmd->add_option("--ranks", o->ranks, "--launch print: MPI ranks per run")->capture_default_str();
  cmd->add_flag("--submit", o->submit, "--launch slurm: run the sbatch command too");
  cmd->add_option("--sbatch-arg", o->sbatch_args,
                  "--launch slurm: an sbatch option for the array, e.g. --sbatch-arg=-n2 "
                  "--sbatch-arg=--time=1:00:00 (repeatable)")
      ->allow_extra_args(false);
  cmd->add_flag("--stop-on-failure", o->stop_on_failure,
                "--launch local: stop at the first failed run instead of going on");
  cmd->add_option("--source", o->source, "rrt source tree (holds launch/)")->capture_default_str();
  cmd->footer(
      "A run is finished when its final checkpoint (step train.steps) exists. --launch local\n"
      "writes <run>/status.json and <run>/train.log, then summary.md, summary.csv and loss.png\n"
      "in the sweep directory. Without --launch the run directories are written and listed.");
  auto* summary = cmd->add_subcommand(
      "summary",
      "Table of a sweep's runs: swept values, parameters, perplexities, tokens/s, status");
  auto dir = std::make_shared<std::string>();
  summary->add_option("dir", *dir, "the sweep's directory (--out of rrt sweep)")
      ->required()
      ->check(CLI::ExistingDirectory);
  summary->footer("Prints the Markdown table and writes DIR/summary.md and DIR/summary.csv.");
  summary->callback([dir] { std::printf("%s", write_summary(*dir).c_str()); });
  cmd->callback([o, summary] {
    if (summary->parsed()) return;
    run_sweep(*o);
  });
}

}  // namespace rrt::cli
