// `rrt sweep --launch local` through the library: resuming an interrupted sweep without rerunning
// anything finished, the summary table and the loss plot (decoded with zlib) of its runs,
// recording failures, runs that another launch trains or has claimed, runs stopped early or by a
// signal, and the status of a run (its checkpoint and its metrics).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "checkpoint/checkpoint.h"
#include "plot/plot.h"
#include "tests/png_decode.h"
#include "tests/trainer/sweep/sweep_test_fixture.h"
#include "trainer/sweep/launch.h"
#include "trainer/sweep/metrics.h"
#include "trainer/sweep/run_plot.h"
#include "trainer/sweep/summary.h"
#include "trainer/sweep/sweep.h"

namespace rrt {
namespace {

using namespace sweep_test;

int dead_pid() {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  int status;
  ::waitpid(pid, &status, 0);
  return pid;
}

TEST(SweepLaunch, ResumesAnInterruptedSweepAndRerunsNothingFinished) {
  const fs::path out = temp("resume");
  const Sweep s = parse(base_config() + "grid:\n  lora.rank: [0, 2, 4, 8]\n", out);
  const LocalLaunch launch{RRT_CLI_PATH, true, true};
  LaunchCounts c = launch_local(s, launch);
  EXPECT_EQ(c.trained, 4);
  EXPECT_EQ(c.failed, 0);
  for (const SweepRun& r : s.runs)
    ASSERT_TRUE(run_finished(r)) << read_file(fs::path(r.dir) / "train.log");

  // The sweep is cut short: run 2 stopped after its step-3 checkpoint (its process gone), run 3
  // never started.
  const SweepRun& cut = s.runs[2];
  fs::remove(checkpoint_path(cut.dir, 6));
  std::ofstream(fs::path(cut.dir) / "status.json") << nlohmann::json{
      {"status", "running"}, {"pid", dead_pid()}, {"host", [] {
                                                     char b[256] = {};
                                                     ::gethostname(b, 255);
                                                     return std::string(b);
                                                   }()}}.dump();
  fs::remove_all(s.runs[3].dir);
  EXPECT_EQ(read_run_status(cut.dir, 6).state, RunState::interrupted);
  EXPECT_EQ(read_run_status(cut.dir, 6).last_step, 3);
  EXPECT_EQ(read_run_status(s.runs[3].dir, 6).state, RunState::not_started);
  EXPECT_EQ(read_run_status(s.runs[0].dir, 6).state, RunState::finished);

  std::map<std::string, fs::file_time_type> stamps;
  std::map<std::string, std::string> logs;
  for (const SweepRun& r : s.runs) {
    if (!fs::exists(r.dir)) continue;
    for (const auto& e : fs::directory_iterator(r.dir))
      if (e.path().extension() == ".h5") stamps[e.path().string()] = fs::last_write_time(e.path());
    logs[r.name] = read_file(fs::path(r.dir) / "train.log");
  }
  c = launch_local(s, launch);
  EXPECT_EQ(c.skipped, 2);
  EXPECT_EQ(c.trained, 2);
  EXPECT_EQ(c.failed, 0);
  for (const auto& [path, stamp] : stamps)
    EXPECT_EQ(fs::last_write_time(path), stamp) << path << " was rewritten";
  for (int i : {0, 1})
    EXPECT_EQ(read_file(fs::path(s.runs[i].dir) / "train.log"), logs[s.runs[i].name])
        << s.runs[i].name << " ran again";
  const std::string resumed =
      read_file(fs::path(cut.dir) / "train.log").substr(logs[cut.name].size());
  EXPECT_TRUE(contains(resumed, "resuming from")) << resumed;
  EXPECT_TRUE(contains(resumed, "step_00000003.h5 (step 3)")) << resumed;
  EXPECT_FALSE(contains(resumed, "step      1/6")) << "restarted from scratch";
  for (const SweepRun& r : s.runs) {
    EXPECT_TRUE(run_finished(r)) << r.name;
    EXPECT_EQ(read_run_status(r.dir, 6).state, RunState::finished);
    const auto status = nlohmann::json::parse(read_file(fs::path(r.dir) / "status.json"));
    EXPECT_EQ(status["status"], "finished") << r.name;
  }
  c = launch_local(s, launch);  // all done: nothing runs
  EXPECT_EQ(c.skipped, 4);
  EXPECT_EQ(c.trained, 0);

  // The summary: swept values, parameters growing with the rank, perplexities, status.
  const SummaryTable t = sweep_summary(out.string());
  // Every finished run was evaluated at each exit (eval.json): the final exit's validation
  // perplexity is the trainer's own last evaluation of the same batches.
  const std::vector<std::string> header = {
      "run",     "lora.rank",      "params",         "LoRA params", "steps",
      "val ppl", "val ppl exit 1", "val ppl exit 2", "tokens/s",    "status"};
  EXPECT_EQ(t.header, header);
  ASSERT_EQ(t.rows.size(), 4u);
  int64_t last_params = 0;
  for (size_t i = 0; i < 4; ++i) {
    const auto& row = t.rows[i];
    EXPECT_EQ(row[0], s.runs[i].name);
    EXPECT_EQ(row[1], s.runs[i].values[0].second);
    EXPECT_GT(std::stoll(row[2]), last_params);
    last_params = std::stoll(row[2]);
    EXPECT_EQ(row[4], "6/6");
    EXPECT_GT(std::stod(row[5]), 1.0);
    EXPECT_LT(std::stod(row[5]), 257.0 * 2);
    EXPECT_GT(std::stod(row[6]), 1.0);
    EXPECT_NEAR(std::stod(row[7]), std::stod(row[5]), 2e-3 * std::stod(row[5]));
    EXPECT_GT(std::stod(row[8]), 0);
    EXPECT_EQ(row[9], "finished");
  }
  EXPECT_EQ(t.rows[0][3], "0");
  const std::string md = to_markdown(t), csv = to_csv(t);
  EXPECT_TRUE(contains(md, "| run | lora.rank | params |")) << md;
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 5);

  // The plot of the four runs: the PNG has the figure's size and every run's colour.
  const std::string png_path = (out / "loss.png").string();
  EXPECT_EQ(plot_runs(expand_run_dirs({out.string()}), png_path, {}), 4);
  const testing::DecodedPng png = testing::read_png(png_path);
  const int legend_w = 16 * 2 + 3 * 2 + Canvas::text_width("rank-0", 2) + 2 * 16;
  EXPECT_EQ(png.width, static_cast<uint32_t>(2 * 560 + legend_w));
  EXPECT_EQ(png.height, 420u);
  std::map<uint32_t, int> count;
  for (uint32_t y = 0; y < png.height; ++y)
    for (uint32_t x = 0; x < png.width; ++x) ++count[png.pixel(x, y)];
  EXPECT_LT(count[0xFFFFFF], static_cast<int>(png.width * png.height * 0.97)) << "almost blank";
  for (int run = 0; run < 4; ++run) {
    const Rgb c = palette(run);
    EXPECT_GT(count[(uint32_t{c.r} << 16) | (uint32_t{c.g} << 8) | c.b], 100) << "run " << run;
  }
}

// A run that fails is recorded (status.json, the summary) and the others still run.
TEST(SweepLaunch, RecordsAFailedRunAndGoesOn) {
  const fs::path out = temp("failed");
  const Sweep s =
      parse(base_config() + "zip:\n  label: [missing, good]\n  data.path: [/nonexistent/shards, " +
                shards() + "]\n",
            out);
  const LaunchCounts c = launch_local(s, {RRT_CLI_PATH, true, true});
  EXPECT_EQ(c.failed, 1);
  EXPECT_EQ(c.trained, 1);
  const RunStatus failed = read_run_status(s.runs[0].dir, 6);
  EXPECT_EQ(failed.state, RunState::failed);
  EXPECT_TRUE(contains(failed.error, "/nonexistent/shards")) << failed.error;
  const SummaryTable t = sweep_summary(out.string());
  EXPECT_TRUE(contains(t.rows[0].back(), "failed: ")) << t.rows[0].back();
  EXPECT_EQ(t.rows[1].back(), "finished");
}

// Two launches of one sweep (two terminals, two nodes): a run that the other is training is
// left alone.
TEST(SweepLaunch, SkipsARunAnotherLaunchIsTraining) {
  const fs::path out = temp("busy");
  const Sweep s = parse(base_config() + "grid:\n  lora.rank: [0]\n", out);
  write_sweep(s);
  std::ofstream(fs::path(s.runs[0].dir) / "status.json")
      << R"({"status": "running", "pid": 1, "host": "another-node"})";
  EXPECT_EQ(read_run_status(s.runs[0].dir, 6).state, RunState::running);
  const LaunchCounts c = launch_local(s, {RRT_CLI_PATH, true, true});
  EXPECT_EQ(c.busy, 1);
  EXPECT_EQ(c.trained, 0);
  EXPECT_TRUE(list_checkpoints(s.runs[0].dir).empty());
}

// A run's status names the newest checkpoint's step and the newest logged step each for what it
// is: "step 0/6" beside a steps column of 5/6 read as two answers to one question.
TEST(SweepStatus, NamesTheCheckpointStepAndTheLoggedStepApart) {
  const fs::path out = temp("status_steps");
  const Sweep s = parse(base_config() + "grid:\n  lora.rank: [0]\n", out);
  write_sweep(s);
  const std::string dir = s.runs[0].dir;
  fs::create_directories(dir);
  std::ofstream(fs::path(dir) / "status.json")
      << R"({"status": "running", "pid": 1, "host": "another-node"})";
  {
    std::ofstream metrics(fs::path(dir) / "metrics.jsonl");
    for (int step = 1; step <= 5; ++step)
      metrics << R"({"step": )" << step << R"(, "loss": 3.5, "tokens": )" << 64 * step << "}\n";
  }
  RunStatus st = read_run_status(dir, 6);
  EXPECT_EQ(st.state, RunState::running);
  EXPECT_EQ(st.last_step, 0);
  EXPECT_EQ(st.logged_step, 5);
  EXPECT_EQ(st.detail, "no checkpoint yet of 6 steps, metrics at step 5, pid 1 on another-node");

  std::ofstream(checkpoint_path(dir, 0)) << "";  // only its name is read
  st = read_run_status(dir, 6);
  EXPECT_EQ(st.detail, "checkpoint at step 0/6, metrics at step 5, pid 1 on another-node");
  const SummaryTable t = sweep_summary(out.string());
  ASSERT_EQ(t.rows.size(), 1u);
  EXPECT_EQ(t.rows[0].back(),
            "running (checkpoint at step 0/6, metrics at step 5, pid 1 on another-node)");
  const auto steps = std::find(t.header.begin(), t.header.end(), "steps") - t.header.begin();
  EXPECT_EQ(t.rows[0][steps], "5/6");

  // No metrics yet: the checkpoint alone.
  fs::remove(fs::path(dir) / "metrics.jsonl");
  EXPECT_EQ(read_run_status(dir, 6).detail, "checkpoint at step 0/6, pid 1 on another-node");
}

// The newest logged step comes from the end of metrics.jsonl, past a line the tail starts
// inside, and not from a half-written last line.
TEST(SweepStatus, NewestLoggedStepReadsTheTailOfALongLog) {
  const fs::path dir = temp("status_tail");
  fs::create_directories(dir);
  EXPECT_EQ(newest_logged_step(dir.string()), -1);
  {
    std::ofstream metrics(dir / "metrics.jsonl");
    for (int step = 1; step <= 3000; ++step)  // about 150 KiB: more than the tail it reads
      metrics << R"({"step": )" << step << R"(, "loss": 3.25, "tokens_per_s": 1234.5})"
              << "\n";
    metrics << R"({"step": 3000, "val_loss": 3.5})"
            << "\n"
            << R"({"step": 30)";
  }
  ASSERT_GT(fs::file_size(dir / "metrics.jsonl"), 128u * 1024);
  EXPECT_EQ(newest_logged_step(dir.string()), 3000);
}

// Two launches that check status.json at the same moment: the one that claims the run (an
// exclusive flock on RUN_DIR/.launch.lock, here held by the test) trains it, the other skips it.
// Once the claim is dropped, the next launch trains the run.
TEST(SweepLaunch, ARunClaimedByAnotherLaunchIsSkipped) {
  const fs::path out = temp("claimed");
  const Sweep s = parse(base_config() + "grid:\n  lora.rank: [0]\n", out);
  write_sweep(s);
  fs::create_directories(s.runs[0].dir);
  const int fd = ::open((fs::path(s.runs[0].dir) / ".launch.lock").c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  LaunchCounts c = launch_local(s, {RRT_CLI_PATH, true, true});
  EXPECT_EQ(c.busy, 1);
  EXPECT_EQ(c.trained, 0);
  EXPECT_TRUE(list_checkpoints(s.runs[0].dir).empty());
  ::close(fd);
  c = launch_local(s, {RRT_CLI_PATH, true, true});
  EXPECT_EQ(c.busy, 0);
  EXPECT_EQ(c.trained, 1);
}

// A trainer that ends cleanly before train.steps (a time budget) leaves a resumable run, not a
// failed one; a stand-in script plays the rrt binary.
TEST(SweepLaunch, ACleanEarlyStopIsResumableNotFailed) {
  const fs::path out = temp("stopped");
  const fs::path fake = out / "fake_rrt.sh";
  std::ofstream(fake) << "#!/bin/sh\necho \"time budget reached\"\nexit 0\n";
  fs::permissions(fake, fs::perms::owner_all);
  const Sweep s = parse(base_config() + "grid:\n  lora.rank: [0]\n", out / "sweep");
  const LaunchCounts c = launch_local(s, {fake.string(), true, true});
  EXPECT_EQ(c.stopped, 1);
  EXPECT_EQ(c.failed, 0);
  EXPECT_EQ(read_run_status(s.runs[0].dir, 6).state, RunState::interrupted);
  EXPECT_TRUE(contains(read_file(fs::path(s.runs[0].dir) / "train.log"), "time budget reached"));
}

// rrt train stopped by a signal (exit 3, a checkpoint written): the run is stopped, resumable,
// not failed, and the sweep launches nothing more (someone asked rrt to stop).
TEST(SweepLaunch, ARunStoppedOnASignalEndsTheSweepResumably) {
  const fs::path out = temp("signal");
  const fs::path fake = out / "fake_rrt.sh";
  std::ofstream(fake) << "#!/bin/sh\necho \"stopped by SIGTERM after step 2\"\nexit 3\n";
  fs::permissions(fake, fs::perms::owner_all);
  const Sweep s = parse(base_config() + "grid:\n  lora.rank: [0, 2]\n", out / "sweep");
  const LaunchCounts c = launch_local(s, {fake.string(), true, true});
  EXPECT_EQ(c.stopped, 1);
  EXPECT_EQ(c.failed, 0);
  EXPECT_EQ(read_run_status(s.runs[0].dir, 6).state, RunState::interrupted);
  EXPECT_FALSE(fs::exists(fs::path(s.runs[1].dir) / "train.log")) << "the sweep went on";
}

}  // namespace
}  // namespace rrt
