// Run-directory safety (trainer/run_directory.h, core/durable_file.h): one trainer per run
// directory, a lock that dies with its process, temporaries unique per process and cleaned up
// after a crash, and a fresh run refused over another run's checkpoints unless asked to archive
// or overwrite them.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <fstream>
#include <nlohmann/json.hpp>

#include "checkpoint/checkpoint.h"
#include "core/durable_file.h"
#include "tests/error_helpers.h"
#include "tests/trainer/small_run.h"
#include "trainer/run_directory.h"
#include "trainer/trainer.h"

namespace rrt {
namespace {

namespace fs = std::filesystem;
using testing::contains;
using testing::error_message;
using testing::fresh_run_dir;
using testing::small_run;

std::string this_host() {
  char buf[256] = {};
  gethostname(buf, sizeof(buf) - 1);
  return buf;
}

TEST(RunSafety, ASecondTrainerIsRefusedWithTheHoldersPidAndHost) {
  const fs::path dir = fresh_run_dir("lock");
  const RunConfig c = small_run(dir.string());
  {
    Trainer first(c);
    const std::string msg = error_message([&] { Trainer second(c); });
    EXPECT_TRUE(contains(msg, "in use by rrt pid " + std::to_string(getpid()))) << msg;
    EXPECT_TRUE(contains(msg, "on host " + this_host())) << msg;
    EXPECT_TRUE(contains(msg, "train.run_dir")) << msg;
  }
  // The lock went with the first trainer.
  EXPECT_EQ(Trainer(c).run().last_step, 8);
}

// kill -9 leaves no stale lock: the kernel drops a flock with its process.
TEST(RunSafety, TheLockDiesWithAKilledProcess) {
  const fs::path dir = fresh_run_dir("lock_kill");
  fs::create_directories(dir);
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    RunLock lock(dir.string());
    const char ok = 'k';
    if (write(ready[1], &ok, 1) != 1) std::_Exit(1);
    for (;;) pause();
  }
  char got = 0;
  ASSERT_EQ(read(ready[0], &got, 1), 1);
  const std::string msg = error_message([&] { RunLock second(dir.string()); });
  EXPECT_TRUE(contains(msg, "pid " + std::to_string(child))) << msg;
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  RunLock after(dir.string());  // does not throw
  close(ready[0]);
  close(ready[1]);
}

TEST(RunSafety, TemporaryNamesAreUniquePerProcessAndWrite) {
  const std::string a = temporary_path("/r/step_00000004.h5");
  const std::string b = temporary_path("/r/step_00000004.h5");
  EXPECT_NE(a, b);
  EXPECT_TRUE(contains(a, "/r/step_00000004.h5.tmp." + std::to_string(getpid()) + ".")) << a;
  // Another process (same counter state after fork) gets another name.
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const std::string name = temporary_path("/r/step_00000004.h5");
    std::_Exit(write(pipefd[1], name.data(), name.size()) == static_cast<ssize_t>(name.size()) ? 0
                                                                                               : 1);
  }
  char buf[256] = {};
  const ssize_t n = read(pipefd[0], buf, sizeof(buf) - 1);
  waitpid(child, nullptr, 0);
  ASSERT_GT(n, 0);
  const std::string theirs(buf, static_cast<size_t>(n));
  EXPECT_NE(theirs, temporary_path("/r/step_00000004.h5"));
  EXPECT_TRUE(contains(theirs, ".tmp." + std::to_string(child) + ".")) << theirs;
  EXPECT_TRUE(is_temporary_of("step_00000004.h5.tmp.123.0", "step_00000004.h5"));
  EXPECT_TRUE(is_temporary_of("step_00000004.h5.tmp", "step_00000004.h5"));
  EXPECT_FALSE(is_temporary_of("step_00000004.h5.tmp.x.0", "step_00000004.h5"));
  EXPECT_FALSE(is_temporary_of("step_00000004.h5", "step_00000004.h5"));
  close(pipefd[0]);
  close(pipefd[1]);
}

// A killed writer's temporaries go when the next trainer takes the lock; nothing else does.
TEST(RunSafety, StaleCheckpointTemporariesAreRemovedUnderTheLock) {
  const fs::path dir = fresh_run_dir("stale_tmp");
  fs::create_directories(dir);
  for (const char* name : {"step_00000004.h5.tmp.4242.0", "step_00000006.h5.tmp", "notes.tmp",
                           "status.json.tmp.4242.1", "step_00000002.h5"})
    std::ofstream(dir / name) << "x";
  RunConfig c = small_run(dir.string());
  claim_run_directory(c);
  EXPECT_FALSE(fs::exists(dir / "step_00000004.h5.tmp.4242.0"));
  EXPECT_FALSE(fs::exists(dir / "step_00000006.h5.tmp"));
  EXPECT_TRUE(fs::exists(dir / "notes.tmp"));
  EXPECT_TRUE(fs::exists(dir / "status.json.tmp.4242.1"));  // a sweep's, not a checkpoint's
  EXPECT_TRUE(fs::exists(dir / "step_00000002.h5"));
}

std::vector<int64_t> steps_in(const fs::path& dir) {
  std::vector<int64_t> out;
  for (const std::string& p : list_checkpoints(dir.string()))
    out.push_back(read_checkpoint_header(p).state.step);
  return out;
}

int64_t first_metrics_step(const fs::path& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return nlohmann::json::parse(line).at("step").get<int64_t>();
}

// The case in small: an old run (checkpoints 6 and 8), then checkpoint.resume=false in
// the same directory. It used to train beside them and prune its own newest checkpoint.
TEST(RunSafety, AFreshRunOverAnotherRunIsRefusedUnlessArchivedOrOverwritten) {
  const fs::path dir = fresh_run_dir("existing");
  RunConfig c = small_run(dir.string());
  c.log.every = 1;
  Trainer(c).run();
  ASSERT_EQ(steps_in(dir), (std::vector<int64_t>{6, 8}));

  RunConfig fresh = small_run(dir.string(), 3);
  fresh.log.every = 1;
  fresh.checkpoint.resume = false;
  const std::string msg = error_message([&] { Trainer t(fresh); });
  EXPECT_TRUE(contains(msg, "step_00000008.h5")) << msg;
  EXPECT_TRUE(contains(msg, "checkpoint.existing=archive")) << msg;
  EXPECT_TRUE(contains(msg, "checkpoint.existing=overwrite")) << msg;
  EXPECT_EQ(steps_in(dir), (std::vector<int64_t>{6, 8}));  // untouched

  fresh.checkpoint.existing = "archive";
  const TrainSummary s = Trainer(fresh).run();
  EXPECT_EQ(s.last_checkpoint, checkpoint_path(dir.string(), 3));
  EXPECT_EQ(steps_in(dir), (std::vector<int64_t>{2, 3}));   // the new run's newest survives
  EXPECT_EQ(first_metrics_step(dir / "metrics.jsonl"), 1);  // its own metrics only
  std::vector<fs::path> archives;
  for (const auto& e : fs::directory_iterator(dir / "archive")) archives.push_back(e.path());
  ASSERT_EQ(archives.size(), 1u);
  EXPECT_EQ(steps_in(archives[0]), (std::vector<int64_t>{6, 8}));
  EXPECT_TRUE(fs::exists(archives[0] / "metrics.jsonl"));
  EXPECT_TRUE(fs::exists(archives[0] / "config.yaml"));

  fresh.checkpoint.existing = "overwrite";
  fresh.train.steps = 2;
  Trainer(fresh).run();
  EXPECT_EQ(steps_in(dir), (std::vector<int64_t>{2}));
  EXPECT_EQ(steps_in(archives[0]), (std::vector<int64_t>{6, 8}));  // archives stay
}

}  // namespace
}  // namespace rrt
