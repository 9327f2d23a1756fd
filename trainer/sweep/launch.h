// Running a sweep's runs: one after another on this machine, as mpirun commands, or as a Slurm
// job array (docs/sweeps.md). And the state of a run directory, which the summary reports.
//
// A run is finished when its final checkpoint (step train.steps) exists. `--launch local` keeps
// <run>/status.json up to date:
//   {"status": "running", "pid": 1234, "host": "node1", "started": "2025-01-31T12:00:00Z"}
//   {"status": "finished", "seconds": 71.5, ...}
//   {"status": "failed", "error": "[train] non-finite loss at step 40; ...", "exit_code": 1, ...}
//   {"status": "stopped", ...}   rrt train exited cleanly before train.steps: the next launch
//                                resumes it (reported as interrupted)
// and sends each run's output to <run>/train.log (appended, so a resumed run keeps its history).
// A finished run is then evaluated at every exit (rrt eval's report, evaluation/eval_report.h) into
// <run>/eval.json; a run that starts from a converted model gets <run>/init_eval.json (the
// validation loss before training).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "trainer/sweep/sweep.h"

namespace rrt {

enum class RunState { not_started, running, interrupted, failed, finished };
std::string to_string(RunState s);

struct RunStatus {
  RunState state = RunState::not_started;
  std::string error;      // failed: the run's last "rrt: ..." line, or how it ended
  std::string detail;     // e.g. "checkpoint at step 40/100, metrics at step 57, pid 1234"
  int64_t last_step = 0;  // newest checkpoint's step
  // The newest step in metrics.jsonl (-1: none), ahead of last_step between checkpoints; the
  // detail of a run that is not finished names both, each for what it is.
  int64_t logged_step = -1;
};

// The state of a run directory whose run ends at final_step:
//   finished     its final checkpoint exists
//   failed       status.json says so (and the final checkpoint is missing)
//   running      status.json says running and its process is alive (or on another host); or,
//                without status.json (Slurm), it has checkpoints or metrics but no final one
//   interrupted  status.json says running but its process on this host is gone
//   not started  nothing of the above
RunStatus read_run_status(const std::string& dir, int64_t final_step);

struct LocalLaunch {
  std::string rrt_binary;  // the rrt executable that trains each run
  bool keep_going = true;  // after a failed run, go on with the next
  bool quiet = false;      // no progress lines on stdout
};

struct LaunchCounts {
  int skipped = 0;  // finished before this launch
  int trained = 0;  // finished by this launch
  int failed = 0;
  int busy = 0;     // status.json says another launch is training it (its process is alive)
  int stopped = 0;  // rrt train ended cleanly before train.steps (a time budget, a signal)
  // A stop signal ended the launch (trainer/shutdown.h): the sweep's own (passed on to the run
  // in training; stop_signal() is its number), or one that reached a run directly (it exited
  // 3). Nothing was launched after it.
  bool stopped_on_signal = false;
};

// Trains every unfinished run in order: converts its starting weights if needed (prepare_run),
// then runs `rrt train <dir>/config.yaml` as a child process (resuming from its newest
// checkpoint), recording status.json and train.log. Finished runs are not touched, nor runs
// that another launch is training (status.json running, its process alive or on another host).
// With StopSignals(StopMode::forward_to_child) alive (rrt sweep does that), a stop signal is
// passed on to the run in training, which checkpoints and exits 3; the run is recorded as
// stopped and no further run starts (stopped_on_signal). A signal between runs (a conversion,
// an evaluation) starts nothing more.
LaunchCounts launch_local(const Sweep& sweep, const LocalLaunch& options);

// One line per unfinished run: `RRT=<rrt> <launch>/mpirun.sh RANKS <dir>/config.yaml`.
std::string mpirun_commands(const Sweep& sweep, const std::string& launch_dir,
                            const std::string& rrt_binary, int ranks);

struct SlurmArray {
  std::string list;                  // file of the unfinished runs' directories, one a line
  int64_t tasks = 0;                 // its lines
  std::vector<std::string> command;  // sbatch ... (empty when every run is finished)
  std::string shell;                 // the command as one shell line, environment included
};

// Makes the conversions the runs need (they happen here, before submission), writes
// <out>/slurm_runs.txt and builds `sbatch --array=0-(n-1) [args] <launch>/slurm_array.sbatch
// LIST` with --output=<out>/slurm-%A_%a.out, RRT and RRT_LAUNCH_DIR set for the tasks.
SlurmArray slurm_array(const Sweep& sweep, const std::string& launch_dir,
                       const std::string& rrt_binary, const std::vector<std::string>& sbatch_args);
// Runs the command (RRT and RRT_LAUNCH_DIR in its environment); returns sbatch's exit code and
// its output in `output`.
int submit_slurm_array(const SlurmArray& array, const std::string& launch_dir,
                       const std::string& rrt_binary, std::string& output);

}  // namespace rrt
