// Checkpoint retention (trainer/retention.h): pruning counts this run's history only, so it
// never deletes the checkpoint just written; the newest good checkpoint survives keep_last
// when the run diverges; after a divergence the blown-up checkpoints move aside. (The trainer's
// side: Trainer.NonFiniteLossStopsAndKeepsTheLastGoodCheckpoint.)
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "checkpoint/checkpoint.h"
#include "trainer/retention.h"

namespace rrt {
namespace {

namespace fs = std::filesystem;

fs::path fresh(const std::string& name) {
  const fs::path p =
      fs::path(::testing::TempDir()) / ("rrt_retention_" + std::to_string(getpid()) + "_" + name);
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

// Pruning looks at file names only: empty files stand in for checkpoints.
void write(const fs::path& dir, int64_t step) {
  std::ofstream(checkpoint_path(dir.string(), step)) << "";
}

std::vector<int64_t> steps_in(const fs::path& dir) {
  std::vector<int64_t> out;
  for (const std::string& p : list_checkpoints(dir.string())) out.push_back(checkpoint_step(p));
  return out;
}

using Steps = std::vector<int64_t>;

// The case: an old run left 350 and 400; a new run writes 60 with keep_last 2. Pruning
// by step number alone deleted 60, the run's only checkpoint.
TEST(Retention, PruningNeverDeletesTheRunsNewestCheckpoint) {
  const fs::path dir = fresh("newest");
  for (int64_t s : {350, 400, 60}) write(dir, s);
  prune_checkpoints(dir.string(), 2, /*newest=*/60);
  EXPECT_EQ(steps_in(dir), (Steps{60, 350, 400}));
  // The run goes on from 60 with keep_last 1: 60 stays until step 81 proves 80 usable.
  CheckpointRetention r(dir.string(), 1);
  r.resume((dir / "no_metrics.jsonl").string(), 60);
  for (int64_t step = 61; step <= 80; ++step) r.trained(step);
  write(dir, 80);
  r.saved(80);
  EXPECT_EQ(steps_in(dir), (Steps{60, 80, 350, 400}));
  r.trained(81);
  EXPECT_EQ(steps_in(dir), (Steps{80, 350, 400}));
}

TEST(Retention, PruneKeepsTheNewestKeepLast) {
  const fs::path dir = fresh("keep_last");
  for (int64_t s : {10, 20, 30, 40}) write(dir, s);
  std::ofstream(dir / "notes.txt") << "not a checkpoint";
  prune_checkpoints(dir.string(), 2, 40);
  EXPECT_EQ(steps_in(dir), (Steps{30, 40}));
  EXPECT_TRUE(fs::exists(dir / "notes.txt"));
}

// A run whose validations go non-finite while its training loss stays finite: a checkpoint
// every step, keep_last 2, validations at 2 (finite), 4 (inf) and 6 (NaN). keep_last alone
// would keep 5 and 6, both past the divergence; step 3 (trained on finitely, before any bad
// validation) is the last good one and stays.
TEST(Retention, TheLastCheckpointWithAFiniteValidationSurvivesKeepLast) {
  const fs::path dir = fresh("validation");
  CheckpointRetention r(dir.string(), 2);
  const double inf = std::numeric_limits<double>::infinity();
  for (int64_t step = 1; step <= 6; ++step) {
    r.trained(step);
    if (step == 2) r.validated(step, 3.0);
    if (step == 4) r.validated(step, inf);
    if (step == 6) r.validated(step, std::nan(""));
    write(dir, step);
    r.saved(step);
  }
  EXPECT_EQ(r.last_good(), 3);
  EXPECT_EQ(steps_in(dir), (Steps{3, 5, 6}));
  // A loss whose perplexity overflows (exp(800)) is no better than inf.
  r.trained(7);
  r.validated(7, 800.0);
  write(dir, 7);
  r.saved(7);
  EXPECT_EQ(r.last_good(), 3);
  EXPECT_EQ(steps_in(dir), (Steps{3, 6, 7}));
}

// keep_last 1 keeps the previous good checkpoint beside a pending one until the next step's
// finite loss (or the checkpoint's own finite validation) proves the new one.
TEST(Retention, KeepLastOneHoldsThePreviousUntilTheNewestIsProven) {
  const fs::path dir = fresh("keep_one");
  CheckpointRetention r(dir.string(), 1);
  r.trained(1);
  write(dir, 1);
  r.saved(1);
  r.trained(2);
  write(dir, 2);
  r.saved(2);
  EXPECT_EQ(steps_in(dir), (Steps{1, 2}));
  r.trained(3);
  EXPECT_EQ(steps_in(dir), (Steps{2}));
  r.validated(3, 2.5);
  write(dir, 3);
  r.saved(3);
  EXPECT_EQ(steps_in(dir), (Steps{3}));
}

// Step 4's loss is not finite: the weights after step 3 computed it, so checkpoint 3 moves to
// diverged/ and 2 is the last good one.
TEST(Retention, ADivergenceMovesTheBlownUpCheckpointsAside) {
  const fs::path dir = fresh("diverged");
  CheckpointRetention r(dir.string(), 5);
  for (int64_t step = 1; step <= 3; ++step) {
    r.trained(step);
    write(dir, step);
    r.saved(step);
  }
  EXPECT_EQ(r.last_good(), 2);
  EXPECT_EQ(r.diverged(4), (std::vector<std::string>{"step_00000003.h5"}));
  EXPECT_EQ(r.last_good(), 2);
  EXPECT_EQ(steps_in(dir), (Steps{1, 2}));
  EXPECT_TRUE(fs::exists(dir / "diverged" / "step_00000003.h5"));
}

// A resumed run learns the earlier invocations' validations from metrics.jsonl (a non-finite
// loss is logged as null); lines past the resumed step are ignored.
TEST(Retention, AResumeReadsEarlierValidationsFromMetrics) {
  const fs::path dir = fresh("resume");
  for (int64_t s : {2, 4}) write(dir, s);
  std::ofstream(dir / "metrics.jsonl") << "{\"step\": 1, \"loss\": 3.1}\n"
                                       << "{\"step\": 2, \"val_loss\": 3.0, \"val_ppl\": 20.1}\n"
                                       << "{\"step\": 4, \"val_loss\": null, \"val_ppl\": null}\n"
                                       << "{\"step\": 6, \"val_loss\": 1.0}\n"
                                       << "{\"step\": 7, \"loss\": \n";  // a torn last line
  CheckpointRetention r(dir.string(), 1);
  r.resume((dir / "metrics.jsonl").string(), 4);
  EXPECT_EQ(r.last_good(), 2);
  r.trained(5);  // finite, but 4's own validation was not: 4 stays bad, 2 stays kept
  write(dir, 6);
  r.saved(6);
  EXPECT_EQ(steps_in(dir), (Steps{2, 6}));
}

}  // namespace
}  // namespace rrt
