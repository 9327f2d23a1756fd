// The `rrt sweep` commands as a user types them, through the binary: dry run, local launch,
// summary, plot and a bad file; Ctrl-C stopping a sweep resumably, and a second signal killing
// the run in training at once.
#include <gtest/gtest.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "checkpoint/checkpoint.h"
#include "tests/png_decode.h"
#include "tests/trainer/sweep/sweep_test_fixture.h"
#include "trainer/sweep/launch.h"
#include "trainer/sweep/process.h"

namespace rrt {
namespace {

using namespace sweep_test;

// The rrt binary with ARGS, one OpenMP thread, as a user runs it.
ProcessResult rrt(std::vector<std::string> args) {
  args.insert(args.begin(), RRT_CLI_PATH);
  return run_process(args, {{"OMP_NUM_THREADS", "1"}}, "");
}

// The commands as a user types them: dry run, local launch, summary, plot, and a bad file.
TEST(SweepCli, CommandsThroughTheBinary) {
  const fs::path dir = temp("cli");
  const std::string file = (dir / "s.yaml").string();
  std::ofstream(file) << base_config() << "grid:\n  lora.rank: [0, 2]\n";
  const std::string out = (dir / "out").string();
  ProcessResult r = rrt({"sweep", file, "--dry-run", "--out", out});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "2 runs in " + out)) << r.output;
  EXPECT_TRUE(contains(r.output, "rank-2")) << r.output;
  EXPECT_FALSE(fs::exists(out)) << "a dry run writes nothing";
  r = rrt({"sweep", file, "--launch", "local", "--out", out});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "2 trained, 0 finished before, 0 failed")) << r.output;
  for (const char* f : {"summary.md", "summary.csv", "loss.png", "sweep.json", "runs.txt"})
    EXPECT_TRUE(fs::exists(fs::path(out) / f)) << f;
  r = rrt({"sweep", "summary", out});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "| rank-2 | 2 |")) << r.output;
  r = rrt({"plot", out + "/rank-0", out + "/rank-2", "--x", "tokens", "--out",
           (dir / "p.png").string()});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(testing::read_png((dir / "p.png").string()).height, 420u);
  r = rrt({"sweep", file, "--launch", "print", "--out", out});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "# rank-0: finished")) << r.output;
  const std::string fresh = (dir / "fresh").string();
  r = rrt({"sweep", file, "--launch", "print", "--ranks", "3", "--out", fresh});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "RRT=" + std::string(RRT_CLI_PATH) + " ")) << r.output;
  EXPECT_TRUE(contains(r.output, "launch/mpirun.sh 3 " + fresh + "/rank-2/config.yaml"))
      << r.output;
  EXPECT_TRUE(fs::exists(fresh + "/rank-2/config.yaml"));
  r = rrt({"sweep", file, "--launch", "local", "--out", out, "train.steps=8"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "was started with another config ('train.steps: 6' there"))
      << r.output;
  std::ofstream(file) << base_config() << "grid:\n  lora.rnak: [0, 2]\n";
  r = rrt({"sweep", file, "--dry-run"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.output, "rrt: [" + file + ":")) << r.output;
  EXPECT_TRUE(contains(r.output, "did you mean 'lora.rank'?")) << r.output;
}

// --only: one run of a sweep trained alone (as a study trains the arm that fits in the time it
// has); the others are left unwritten, and a name that is no run is an error listing the names.
TEST(SweepCli, OnlyTrainsTheRunsNamed) {
  const fs::path dir = temp("only");
  const std::string file = (dir / "s.yaml").string();
  std::ofstream(file) << base_config() << "grid:\n  lora.rank: [0, 2, 4]\n";
  const std::string out = (dir / "out").string();
  ProcessResult r = rrt({"sweep", file, "--dry-run", "--out", out, "--only", "rank-4,rank-0"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "2 runs in " + out)) << r.output;
  EXPECT_FALSE(contains(r.output, "rank-2")) << r.output;
  r = rrt({"sweep", file, "--launch", "local", "--out", out, "--only", "rank-2"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "1 trained, 0 finished before, 0 failed")) << r.output;
  EXPECT_TRUE(fs::exists(fs::path(out) / "rank-2" / "status.json"));
  EXPECT_FALSE(fs::exists(fs::path(out) / "rank-0")) << "a run not named is not written";
  r = rrt({"sweep", file, "--launch", "local", "--out", out, "--only", "rank-3"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "--only rank-3: no run of sweep")) << r.output;
  EXPECT_TRUE(contains(r.output, "(its runs: rank-0, rank-2, rank-4)")) << r.output;
}

// Ctrl-C of `rrt sweep --launch local`: the terminal sends SIGINT to every process of its
// foreground group. The hook sends it to the sweep's group in the middle of the first run's
// step 2 (the sweep runs in a session of its own, as in a terminal) and holds the run there
// until the sweep has passed the signal on (group-wait: on a loaded machine the run's tiny steps
// could otherwise reach the end before the sweep is scheduled, seen once). The sweep passes the
// signal on to the run once (the run is in a process group of its own, so it does not get a second
// one from the terminal and quit without a checkpoint), which finishes its step, writes a
// checkpoint and exits 3; the sweep launches nothing more, says what finished, what was
// interrupted and what never started, and exits 3. Rerunning the same command finishes both.
TEST(SweepCli, CtrlCStopsTheSweepResumably) {
  const fs::path dir = temp("ctrl_c");
  const std::string file = (dir / "s.yaml").string();
  std::ofstream(file) << base_config() << "grid:\n  lora.rank: [0, 2]\n";
  const std::string out = (dir / "out").string();
  const std::vector<std::string> cmd = {"setsid",   "--wait", RRT_CLI_PATH, "sweep", file,
                                        "--launch", "local",  "--out",      out};
  ProcessResult r = run_process(
      cmd, {{"OMP_NUM_THREADS", "1"}, {"RRT_TEST_SIGNAL", "INT:step:2:group-wait"}}, "");
  EXPECT_EQ(r.exit_code, 3) << r.output;
  const fs::path first = fs::path(out) / "rank-0", second = fs::path(out) / "rank-2";
  const std::string log = read_file(first / "train.log");
  EXPECT_TRUE(contains(log, "stopped by SIGINT after step")) << log;
  EXPECT_FALSE(contains(log, "second signal: exiting now")) << log;
  const std::vector<std::string> saved = list_checkpoints(first.string());
  ASSERT_FALSE(saved.empty()) << log;
  EXPECT_FALSE(fs::exists(checkpoint_path(first.string(), 6))) << "the run was not stopped";
  EXPECT_EQ(read_run_status(first.string(), 6).state, RunState::interrupted);
  EXPECT_FALSE(fs::exists(second / "train.log")) << "the second run started: " << r.output;
  EXPECT_EQ(read_run_status(second.string(), 6).state, RunState::not_started);
  EXPECT_TRUE(contains(r.output, "rank-0")) << r.output;
  EXPECT_TRUE(contains(r.output, "interrupted")) << r.output;
  EXPECT_TRUE(contains(r.output, "not started")) << r.output;
  EXPECT_TRUE(contains(r.output, "rerun")) << r.output;

  r = run_process(cmd, {{"OMP_NUM_THREADS", "1"}}, "");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "2 trained, 0 finished before, 0 failed")) << r.output;
  const std::string resumed = read_file(first / "train.log").substr(log.size());
  EXPECT_TRUE(contains(resumed, "resuming from")) << resumed;
  EXPECT_TRUE(fs::exists(checkpoint_path(first.string(), 6)));
  EXPECT_TRUE(fs::exists(checkpoint_path(second.string(), 6)));
}

// A second signal to the sweep kills the running run at once (SIGKILL: no waiting for its
// step or checkpoint) and exits 128 + the signal's number; nothing further starts. The first
// SIGTERM comes from the run's step 2; the second from the run when it acts on the forwarded
// first (after step 2, or a later step on a loaded machine), so it is sent only after the sweep
// has handled the first (two signals pending at once merge), and the run then waits to be
// killed (parent-wait) rather than racing to its checkpoint and a clean exit. (It used to come
// from a checkpoint write; step 3's periodic one could precede the forwarding, and the two
// signals merged: seen under load.)
TEST(SweepCli, ASecondSignalKillsTheRunAtOnce) {
  const fs::path dir = temp("second_signal");
  const std::string file = (dir / "s.yaml").string();
  std::ofstream(file) << base_config() << "grid:\n  lora.rank: [0, 2]\n";
  const std::string out = (dir / "out").string();
  const ProcessResult r =
      run_process({RRT_CLI_PATH, "sweep", file, "--launch", "local", "--out", out},
                  {{"OMP_NUM_THREADS", "1"},
                   {"RRT_TEST_SIGNAL",
                    "TERM:step:2:parent,TERM:stopping:2:parent-wait,"
                    "TERM:stopping:3:parent-wait,TERM:stopping:4:parent-wait,"
                    "TERM:stopping:5:parent-wait"}},
                  "");
  EXPECT_EQ(r.exit_code, 128 + SIGTERM) << r.output;
  EXPECT_TRUE(contains(r.output, "second signal: killed the run in training")) << r.output;
  const fs::path first = fs::path(out) / "rank-0";
  const auto status = nlohmann::json::parse(read_file(first / "status.json"));
  const int pid = status.value("pid", 0);
  ASSERT_GT(pid, 0);
  // Killed, not left training: the pid is gone (or a zombie of no parent for a moment).
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    std::getline(stat, line);
    gone = !stat || line.find(") Z") != std::string::npos;
    if (!gone) ::usleep(20000);
  }
  EXPECT_TRUE(gone) << "the run (pid " << pid << ") outlived the sweep";
  EXPECT_EQ(read_run_status(first.string(), 6).state, RunState::interrupted);
  EXPECT_FALSE(fs::exists(fs::path(out) / "rank-2" / "train.log")) << r.output;
}

}  // namespace
}  // namespace rrt
