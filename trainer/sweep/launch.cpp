#include "trainer/sweep/launch.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "checkpoint/checkpoint.h"
#include "core/durable_file.h"
#include "core/error.h"
#include "core/progress.h"
#include "evaluation/eval_report.h"
#include "evaluation/evaluate.h"
#include "evaluation/log_format.h"
#include "trainer/shutdown.h"
#include "trainer/sweep/metrics.h"
#include "trainer/sweep/process.h"

namespace rrt {

namespace fs = std::filesystem;

std::string to_string(RunState s) {
  switch (s) {
    case RunState::not_started:
      return "not started";
    case RunState::running:
      return "running";
    case RunState::interrupted:
      return "interrupted";
    case RunState::failed:
      return "failed";
    case RunState::finished:
      return "finished";
  }
  return "?";
}

namespace {

std::string host_name() {
  char buf[256] = {};
  ::gethostname(buf, sizeof buf - 1);
  return buf;
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// The claim of one run by one launch: an exclusive flock on RUN_DIR/.launch.lock, held while
// the launch trains it. Two launches that read status.json at the same moment cannot both
// start the run; the kernel drops the lock when the launch exits, so no claim goes stale.
// (status.json with its pid still covers a trainer that outlives its launch.)
class RunClaim {
 public:
  explicit RunClaim(const fs::path& dir) {
    fs::create_directories(dir);
    fd_ = ::open((dir / ".launch.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    RRT_CHECK(fd_ >= 0, dir.string(), "cannot open ", (dir / ".launch.lock").string(), ": ",
              std::strerror(errno));
    // Only "another process holds it" means busy; a file system without flock support (some
    // network mounts answer ENOLCK or EINVAL) leaves status.json as the only guard.
    held_ = ::flock(fd_, LOCK_EX | LOCK_NB) == 0 || errno != EWOULDBLOCK;
  }
  ~RunClaim() {
    if (fd_ >= 0) ::close(fd_);  // releases the lock
  }
  RunClaim(const RunClaim&) = delete;
  RunClaim& operator=(const RunClaim&) = delete;
  bool held() const { return held_; }

 private:
  int fd_ = -1;
  bool held_ = false;
};

int64_t step_of(const std::string& checkpoint) {
  const std::string stem = fs::path(checkpoint).stem().string();  // step_00000040
  return std::stoll(stem.substr(stem.find('_') + 1));
}

void write_status(const std::string& dir, const nlohmann::json& status) {
  const fs::path path = fs::path(dir) / "status.json";
  const std::string tmp = temporary_path(path.string());
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << status.dump(2) << "\n";
    out.close();
    RRT_CHECK(out.good(), path.string(), "cannot write the run's status");
  }
  commit_temporary_file(tmp, path.string(), path.string());
}

// A process with this pid exists and runs rrt (not a reused pid of something else).
bool rrt_process_alive(int pid) {
  if (pid <= 0 || (::kill(pid, 0) != 0 && errno != EPERM)) return false;
  std::ifstream cmdline("/proc/" + std::to_string(pid) + "/cmdline");
  if (!cmdline) return true;  // no /proc: trust kill()
  std::string args((std::istreambuf_iterator<char>(cmdline)), {});
  return args.find("rrt") != std::string::npos;
}

// The last "rrt: ..." line a run printed after byte `from` of its log, else "".
std::string last_error_line(const std::string& log, std::streamoff from) {
  std::ifstream in(log);
  in.seekg(from);
  std::string line, error;
  while (std::getline(in, line))
    if (line.starts_with("rrt: ")) error = line.substr(5);
  return error;
}

// <run>/eval.json: `rrt eval --json` of the final checkpoint (evaluation/eval_report.h), for the
// summary's per-exit validation perplexity. Made once per finished run; a failure is reported
// and left for the next launch.
void evaluate_exits(const SweepRun& run, bool quiet) {
  const fs::path out = fs::path(run.dir) / "eval.json";
  if (fs::exists(out) || !run_finished(run)) return;
  try {
    const EvalReport r =
        evaluate_checkpoint_exits(checkpoint_path(run.dir, run.config.train.steps), {});
    std::ofstream(out) << eval_report_json(r).dump(2) << "\n";
  } catch (const Error& e) {
    if (!quiet) std::printf("        per-exit evaluation failed: %s\n", e.what());
  }
}

}  // namespace

RunStatus read_run_status(const std::string& dir, int64_t final_step) {
  RunStatus s;
  const std::vector<std::string> checkpoints =
      fs::is_directory(dir) ? list_checkpoints(dir) : std::vector<std::string>{};
  if (!checkpoints.empty()) s.last_step = step_of(checkpoints.back());
  s.logged_step = newest_logged_step(dir);
  // Where a resume would start (the checkpoint) and how far the run got (its metrics), each
  // named, so neither reads as the other (the summary's steps column shows the metrics' step
  // until the first checkpoint).
  std::string progress =
      checkpoints.empty()
          ? "no checkpoint yet of " + std::to_string(final_step) + " steps"
          : "checkpoint at step " + std::to_string(s.last_step) + "/" + std::to_string(final_step);
  if (s.logged_step >= 0) progress += ", metrics at step " + std::to_string(s.logged_step);
  if (fs::exists(checkpoint_path(dir, final_step))) {
    s.state = RunState::finished;
    s.last_step = final_step;
    return s;
  }
  const fs::path status_path = fs::path(dir) / "status.json";
  if (fs::exists(status_path)) {
    std::ifstream in(status_path);
    const auto j = nlohmann::json::parse(in, nullptr, false);
    const std::string state = j.is_object() ? j.value("status", "") : "";
    if (state == "failed") {
      s.state = RunState::failed;
      s.error = j.value("error", "(no message)");
      s.detail = progress;
      return s;
    }
    if (state == "stopped") {  // rrt train ended cleanly before train.steps
      s.state = RunState::interrupted;
      s.detail = progress + ", stopped cleanly";
      return s;
    }
    if (state == "running") {
      const int pid = j.value("pid", 0);
      const std::string host = j.value("host", "");
      const bool here = host.empty() || host == host_name();
      s.state = !here || rrt_process_alive(pid) ? RunState::running : RunState::interrupted;
      s.detail = progress + ", pid " + std::to_string(pid);
      if (!here) s.detail.append(" on ").append(host);
      return s;
    }
  }
  if (!checkpoints.empty() || fs::exists(fs::path(dir) / "metrics.jsonl")) {
    // Started outside `--launch local` (Slurm, mpirun): no status file to tell more.
    s.state = RunState::running;
    s.detail = progress + " (no status.json: running, or stopped)";
  }
  return s;
}

LaunchCounts launch_local(const Sweep& sweep, const LocalLaunch& o) {
  write_sweep(sweep);
  LaunchCounts counts;
  const size_t n = sweep.runs.size();
  auto say = [&](const char* fmt, auto... args) {
    if (o.quiet) return;
    std::printf(fmt, args...);
    std::fflush(stdout);
  };
  for (size_t i = 0; i < n; ++i) {
    const SweepRun& run = sweep.runs[i];
    if (stop_signal() != 0) {  // came during a conversion, an evaluation, between runs
      counts.stopped_on_signal = true;
      break;
    }
    if (run_finished(run)) {
      evaluate_exits(run, o.quiet);  // runs trained elsewhere (Slurm) or before eval.json
      ++counts.skipped;
      say("[%zu/%zu] %s: finished before, skipped\n", i + 1, n, run.name.c_str());
      continue;
    }
    if (const RunStatus now = read_run_status(run.dir, run.config.train.steps);
        now.state == RunState::running && fs::exists(fs::path(run.dir) / "status.json")) {
      ++counts.busy;  // another `rrt sweep --launch local` is training it right now
      say("[%zu/%zu] %s: running elsewhere (%s), skipped\n", i + 1, n, run.name.c_str(),
          now.detail.c_str());
      continue;
    }
    const RunClaim claim(run.dir);
    if (!claim.held()) {
      ++counts.busy;  // another launch claimed it between its status check and ours
      say("[%zu/%zu] %s: claimed by another launch, skipped\n", i + 1, n, run.name.c_str());
      continue;
    }
    if (run_finished(run)) {  // the other launch finished it while we looked
      ++counts.skipped;
      continue;
    }
    const std::string log = (fs::path(run.dir) / "train.log").string();
    const auto t0 = std::chrono::steady_clock::now();
    nlohmann::json status{
        {"status", "running"}, {"host", host_name()}, {"started", utc_now()}, {"log", "train.log"}};
    auto fail = [&](const std::string& error, int exit_code) {
      ++counts.failed;
      status["status"] = "failed";
      status["error"] = error;
      if (exit_code != 0) status["exit_code"] = exit_code;
      status["seconds"] =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      write_status(run.dir, status);
      say("[%zu/%zu] %s: FAILED: %s\n", i + 1, n, run.name.c_str(), error.c_str());
    };
    const int64_t resume_from =
        list_checkpoints(run.dir).empty() ? 0 : step_of(list_checkpoints(run.dir).back());
    say("[%zu/%zu] %s: %s (log: %s)\n", i + 1, n, run.name.c_str(),
        resume_from > 0 ? ("resuming at step " + std::to_string(resume_from)).c_str() : "training",
        log.c_str());
    try {
      bool shared = false;
      if (prepare_run(run, &shared))
        say("        %s %s -> %s/init.h5 (%s init, %s LoRA)\n",
            shared ? "shared the conversion of" : "converted", run.convert->from.c_str(),
            run.dir.c_str(), run.convert->init.c_str(), run.convert->lora_init.c_str());
      // The converted model's validation loss before any training: the init ablations'
      // first point (summary column "init val ppl", step 0 of the plot).
      const fs::path init_eval = fs::path(run.dir) / "init_eval.json";
      if (run.convert && resume_from == 0 && !fs::exists(init_eval)) {
        // init.h5 may be shared with runs whose data or batch shape differ: its stored config
        // is the first run's, so evaluate with this run's.
        const RunConfig& c = run.config;
        char fraction[32];
        std::snprintf(fraction, sizeof(fraction), "%.17g", c.data.val_fraction);
        const EvalResult e = evaluate_checkpoint(
            (fs::path(run.dir) / "init.h5").string(), "", 0,
            {"data.path=" + c.data.path, "data.val_fraction=" + std::string(fraction),
             "data.seed=" + std::to_string(c.data.seed),
             "train.micro_batch=" + std::to_string(c.train.micro_batch),
             "train.seq_len=" + std::to_string(c.train.seq_len),
             "train.eval_batches=" + std::to_string(c.train.eval_batches)});
        std::ofstream(init_eval) << nlohmann::json{{"step", 0},
                                                   {"val_loss", e.loss},
                                                   {"val_ppl", e.perplexity},
                                                   {"tokens", e.tokens}}
                                 << "\n";
        say("        converted model: val loss %.4f, val ppl %s before training\n", e.loss,
            format_perplexity(e.perplexity, 3).c_str());
      }
      const std::string& init_from = run.config.train.init_from;
      RRT_CHECK(resume_from > 0 || init_from.empty() || fs::exists(init_from), run.name,
                "train.init_from ", init_from,
                " does not exist; if another sweep makes it (see before: in ", sweep.file,
                "), run that one first");
    } catch (const Error& e) {
      fail(e.what(), 0);
      if (!o.keep_going) break;
      continue;
    }
    fs::remove(fs::path(run.dir) / "eval.json");  // of an earlier final checkpoint, if any
    std::streamoff log_start = 0;
    if (fs::exists(log)) log_start = static_cast<std::streamoff>(fs::file_size(log));
    ProcessResult r;
    try {
      r = run_process({o.rrt_binary, "train", (fs::path(run.dir) / "config.yaml").string()}, {},
                      log, [&](int pid) {
                        status["pid"] = pid;
                        write_status(run.dir, status);
                      });
    } catch (const Error& e) {
      fail(e.what(), 0);
      if (!o.keep_going) break;
      continue;
    }
    if (!r.started) {  // a stop signal came before the launch: nothing of this run changed
      counts.stopped_on_signal = true;
      break;
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // Our own stop signal, passed on to the run: whatever way it ended short of its final
    // checkpoint (3 after a checkpoint; killed by the signal before its handlers were in place)
    // it is resumable, not failed.
    const bool asked_to_stop = stop_signal() != 0;
    if (r.exit_code == 0 && run_finished(run)) {
      ++counts.trained;
      status["status"] = "finished";
      status["seconds"] = seconds;
      write_status(run.dir, status);
      say("[%zu/%zu] %s: finished in %.1f s\n", i + 1, n, run.name.c_str(), seconds);
      if (asked_to_stop) {  // the evaluation waits for the next launch
        counts.stopped_on_signal = true;
        break;
      }
      evaluate_exits(run, o.quiet);
      continue;
    }
    // A clean stop before train.steps, resumable: a time budget (0), or a signal (3), after
    // which the sweep stops too: someone asked rrt to stop.
    if (r.exit_code == 0 || r.exit_code == kExitStoppedOnSignal ||
        (asked_to_stop && (r.signal != 0 || r.exit_code > 128))) {
      ++counts.stopped;
      status["status"] = "stopped";
      status["seconds"] = seconds;
      write_status(run.dir, status);
      say("[%zu/%zu] %s: stopped before its final step%s; the next launch resumes it\n", i + 1, n,
          run.name.c_str(), r.exit_code == 0 && !asked_to_stop ? "" : " on a signal");
      if (r.exit_code == 0 && !asked_to_stop) continue;
      counts.stopped_on_signal = true;
      break;
    }
    std::string error = last_error_line(log, log_start);
    if (error.empty())
      error = r.signal ? "killed by signal " + std::to_string(r.signal) +
                             (r.signal == SIGKILL ? " (out of memory?)" : "")
                       : "exit code " + std::to_string(r.exit_code);
    fail(error, r.exit_code);
    if (asked_to_stop) {
      counts.stopped_on_signal = true;
      break;
    }
    if (!o.keep_going) break;
  }
  return counts;
}

namespace {

// Before a command is printed or submitted, every run's starting weights are made: minutes
// for large models. One stderr line per run that converts (prepare_run adds its stages), so
// that the wait is visible; stdout keeps only the commands.
void prepare_with_progress(const SweepRun& run, size_t i, size_t n) {
  if (!run.convert) return;
  const auto t0 = ProgressClock::now();
  bool shared = false;
  if (prepare_run(run, &shared))
    std::fprintf(stderr, "sweep: [%zu/%zu] %s: starting weights %s in %s\n", i + 1, n,
                 run.name.c_str(), shared ? "shared" : "converted",
                 format_duration(seconds_since(t0)).c_str());
  std::fflush(stderr);
}

}  // namespace

std::string mpirun_commands(const Sweep& sweep, const std::string& launch_dir,
                            const std::string& rrt_binary, int ranks) {
  write_sweep(sweep);
  std::string out;
  for (size_t i = 0; i < sweep.runs.size(); ++i) {
    const SweepRun& run = sweep.runs[i];
    if (run_finished(run)) {
      out += "# " + run.name + ": finished\n";
      continue;
    }
    prepare_with_progress(run, i, sweep.runs.size());
    out += "RRT=" + shell_quote(rrt_binary) + " " +
           shell_quote((fs::path(launch_dir) / "mpirun.sh").string()) + " " +
           std::to_string(ranks) + " " + shell_quote((fs::path(run.dir) / "config.yaml").string()) +
           "\n";
  }
  return out;
}

SlurmArray slurm_array(const Sweep& sweep, const std::string& launch_dir,
                       const std::string& rrt_binary, const std::vector<std::string>& sbatch_args) {
  write_sweep(sweep);
  SlurmArray a;
  const fs::path out = fs::absolute(sweep.out_dir).lexically_normal();
  a.list = (out / "slurm_runs.txt").string();
  std::string lines;
  for (size_t i = 0; i < sweep.runs.size(); ++i) {
    const SweepRun& run = sweep.runs[i];
    if (run_finished(run)) continue;
    prepare_with_progress(run, i, sweep.runs.size());
    lines += fs::absolute(run.dir).lexically_normal().string() + "\n";
    ++a.tasks;
  }
  {
    std::ofstream list(a.list, std::ios::trunc);
    list << lines;
    RRT_CHECK(list.good(), a.list, "cannot write the run list");
  }
  if (a.tasks == 0) return a;
  a.command = {"sbatch", "--array=0-" + std::to_string(a.tasks - 1),
               "--output=" + (out / "slurm-%A_%a.out").string()};
  a.command.insert(a.command.end(), sbatch_args.begin(), sbatch_args.end());
  a.command.push_back(
      (fs::absolute(launch_dir) / "slurm_array.sbatch").lexically_normal().string());
  a.command.push_back(a.list);
  a.shell = "RRT=" + shell_quote(rrt_binary) +
            " RRT_LAUNCH_DIR=" + shell_quote(fs::absolute(launch_dir).lexically_normal().string());
  for (const std::string& w : a.command) a.shell.append(" ").append(shell_quote(w));
  return a;
}

int submit_slurm_array(const SlurmArray& array, const std::string& launch_dir,
                       const std::string& rrt_binary, std::string& output) {
  RRT_CHECK(!array.command.empty(), "sweep", "nothing to submit: every run is finished");
  const ProcessResult r =
      run_process(array.command,
                  {{"RRT", rrt_binary},
                   {"RRT_LAUNCH_DIR", fs::absolute(launch_dir).lexically_normal().string()}},
                  "");
  output = r.output;
  return r.exit_code;
}

}  // namespace rrt
