// The training loop: bit-exact resume (with gradient accumulation and a shuffled loader),
// non-finite loss handling, schedules, logs.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "checkpoint/checkpoint.h"
#include "config/config_io.h"
#include "core/error.h"
#include "data/prepare.h"
#include "evaluation/evaluate.h"
#include "model/recursive_model.h"
#include "tests/trainer/small_run.h"
#include "trainer/schedule.h"
#include "trainer/trainer.h"

namespace rrt {
namespace {

namespace fs = std::filesystem;

RunConfig small_run(const std::string& run_dir) {
  RunConfig c;
  c.model = testing::tiny_relaxed_model();
  c.data.path = testing::document_shards();
  c.data.val_fraction = 0.1;
  c.data.seed = 5;
  c.optim.lr = 3e-3;
  c.optim.warmup_steps = 3;
  c.train.steps = 20;
  c.train.micro_batch = 3;
  c.train.grad_accum = 2;
  c.train.seq_len = 32;
  c.train.eval_every = 1000;
  c.train.eval_batches = 2;
  c.train.run_dir = run_dir;
  c.checkpoint.every = 1000;
  c.checkpoint.keep_last = 2;
  c.log.every = 5;
  return c;
}

fs::path fresh(const std::string& name) {
  const fs::path p =
      fs::path(::testing::TempDir()) / ("rrt_trainer_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(p);
  return p;
}

std::vector<float> final_params(const std::string& checkpoint, const RunConfig& c) {
  ParameterSet p(c.model);
  load_checkpoint(checkpoint, p, nullptr);
  std::vector<float> out;
  for (int i = 0; i < p.registry().size(); ++i)
    out.insert(out.end(), p.value(i), p.value(i) + p.numel(i));
  return out;
}

// train.time_budget_minutes: a budget that runs out at once stops after the first step with a
// validation loss and a checkpoint; the rerun resumes from it.
TEST(Trainer, TimeBudgetStopsWithACheckpoint) {
  const fs::path dir = fresh("budget");
  RunConfig c = small_run(dir.string());
  c.train.time_budget_minutes = 1e-9;
  const TrainSummary first = Trainer(c).run();
  EXPECT_EQ(first.last_step, 1);
  EXPECT_GT(first.last_val_loss, 0);
  ASSERT_EQ(list_checkpoints(dir.string()).size(), 1u);
  EXPECT_EQ(first.last_checkpoint, checkpoint_path(dir.string(), 1));
  c.train.time_budget_minutes = 0;
  const TrainSummary rest = Trainer(c).run();
  EXPECT_EQ(rest.first_step, 2);
  EXPECT_EQ(rest.last_step, 20);
}

TEST(Trainer, ResumeIsBitExact) {
  const fs::path straight_dir = fresh("straight"), resumed_dir = fresh("resumed");
  const RunConfig straight_cfg = small_run(straight_dir.string());
  const TrainSummary straight = Trainer(straight_cfg).run();
  ASSERT_EQ(straight.losses.size(), 20u);
  EXPECT_LT(straight.losses.back(), straight.losses.front());

  const RunConfig resumed_cfg = small_run(resumed_dir.string());
  const TrainSummary first = Trainer(resumed_cfg).run(/*stop_after=*/10);
  ASSERT_EQ(first.last_step, 10);
  const TrainSummary second = Trainer(resumed_cfg).run();  // a new process would do the same
  EXPECT_EQ(second.first_step, 11);
  ASSERT_EQ(first.losses.size() + second.losses.size(), 20u);
  for (size_t i = 0; i < 20; ++i) {
    const double got = i < 10 ? first.losses[i] : second.losses[i - 10];
    EXPECT_EQ(std::memcmp(&got, &straight.losses[i], sizeof(double)), 0)
        << "step " << i + 1 << ": " << got << " vs " << straight.losses[i];
  }
  const auto a = final_params(straight.last_checkpoint, straight_cfg);
  const auto b = final_params(second.last_checkpoint, resumed_cfg);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
  // The run directory holds what docs/runs.md promises.
  EXPECT_TRUE(fs::exists(resumed_dir / "config.yaml"));
  EXPECT_TRUE(fs::exists(resumed_dir / "metrics.jsonl"));
  EXPECT_LE(list_checkpoints(resumed_dir.string()).size(), 2u);  // keep_last
  // metrics.jsonl of the resumed run equals the straight run's, line for line, except timings.
  auto steps_logged = [](const fs::path& dir) {
    std::ifstream in(dir / "metrics.jsonl");
    std::string line, out;
    while (std::getline(in, line)) {
      auto j = nlohmann::json::parse(line);
      j.erase("elapsed_s");
      j.erase("tokens_per_s");
      j.erase("gflops");
      j.erase("peak_rss_gib");  // measurements, like the three above
      out += j.dump() + "\n";
    }
    return out;
  };
  EXPECT_EQ(steps_logged(resumed_dir), steps_logged(straight_dir));
  const RunConfig reread = load_run_config((resumed_dir / "config.yaml").string());
  EXPECT_EQ(to_yaml(reread), to_yaml(resumed_cfg));
}

// A divergence: three healthy steps, then a learning rate whose step-4 update overflows the
// weights, so step 5's loss is not finite. The checkpoint of step 4 holds those weights (its
// perplexity is not finite): the run must name step 3 as the last good one, keep it (keep_last
// is 2), and move step 4 aside so that a plain resume starts from step 3.
TEST(Trainer, NonFiniteLossStopsAndKeepsTheLastGoodCheckpoint) {
  const fs::path dir = fresh("nonfinite");
  RunConfig c = small_run(dir.string());
  c.optim.warmup_steps = 0;
  c.optim.schedule = "constant";
  c.optim.grad_clip = 0;
  c.checkpoint.every = 1;
  c.train.grad_accum = 1;
  ASSERT_EQ(Trainer(c).run(/*stop_after=*/3).last_step, 3);
  RunConfig diverging = c;
  diverging.optim.lr = 1e30;
  diverging.checkpoint.allow_config_change = {"optim.lr"};
  try {
    Trainer(diverging).run();
    FAIL() << "a non-finite loss must stop the run";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("step 5"), std::string::npos) << msg;
    EXPECT_NE(msg.find("last good checkpoint is " + checkpoint_path(dir.string(), 3)),
              std::string::npos)
        << msg;
    EXPECT_NE(msg.find("diverged: step_00000004.h5"), std::string::npos) << msg;
  }
  const auto left = list_checkpoints(dir.string());
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(read_checkpoint_header(left[0]).state.step, 3);
  // The kept checkpoint is healthy, the one moved aside is not.
  for (float x : final_params(left[0], c)) ASSERT_TRUE(std::isfinite(x));
  EXPECT_TRUE(std::isfinite(evaluate_checkpoint(left[0], "", 2).perplexity));
  const std::string blown = (dir / "diverged" / "step_00000004.h5").string();
  ASSERT_TRUE(fs::exists(blown));
  EXPECT_FALSE(std::isfinite(evaluate_checkpoint(blown, "", 2).perplexity));
  // A plain resume with the old learning rate goes on from the good one.
  EXPECT_EQ(Trainer(c).run(/*stop_after=*/1).first_step, 4);
}

TEST(Trainer, EvaluationIsRepeatableAndMetricsAreWritten) {
  const fs::path dir = fresh("eval");
  RunConfig c = small_run(dir.string());
  c.train.steps = 4;
  c.train.eval_every = 2;
  Trainer trainer(c);
  const double before = trainer.evaluate();
  EXPECT_EQ(before, trainer.evaluate());      // the same validation batches every time
  EXPECT_NEAR(before, std::log(257.0), 0.5);  // an untrained model is near uniform
  const TrainSummary s = trainer.run();
  EXPECT_GT(s.last_val_loss, 0);
  std::ifstream metrics(dir / "metrics.jsonl");
  std::string line;
  int evals = 0, logs = 0;
  while (std::getline(metrics, line)) {
    evals += line.find("\"val_loss\"") != std::string::npos;
    logs += line.find("\"tokens_per_s\"") != std::string::npos;
  }
  EXPECT_EQ(evals, 2);  // steps 2 and 4
  EXPECT_GE(logs, 1);
}

TEST(Schedule, WarmupCosineConstantWsd) {
  ScheduleSpec s{
      .kind = "cosine", .lr = 1.0, .min_lr_ratio = 0.1, .warmup_steps = 10, .total_steps = 110};
  EXPECT_DOUBLE_EQ(learning_rate(s, 5), 0.5);
  EXPECT_DOUBLE_EQ(learning_rate(s, 10), 1.0);
  EXPECT_NEAR(learning_rate(s, 60), 0.55, 1e-12);  // halfway: (1 + 0.1) / 2
  EXPECT_NEAR(learning_rate(s, 110), 0.1, 1e-12);
  s.kind = "constant";
  EXPECT_DOUBLE_EQ(learning_rate(s, 100), 1.0);
  s = {.kind = "wsd",
       .lr = 1.0,
       .min_lr_ratio = 0.0,
       .warmup_steps = 0,
       .total_steps = 100,
       .decay_fraction = 0.2};
  EXPECT_DOUBLE_EQ(learning_rate(s, 80), 1.0);
  EXPECT_NEAR(learning_rate(s, 90), 0.5, 1e-12);
  EXPECT_NEAR(learning_rate(s, 100), 0.0, 1e-12);
  s.kind = "linear";
  EXPECT_THROW(learning_rate(s, 1), Error);
}

}  // namespace
}  // namespace rrt
