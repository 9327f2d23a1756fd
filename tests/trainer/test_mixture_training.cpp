// Training on data.sources (data/mixture.h, trainer/mixture_data.h): a mixture resumes bit for
// bit after an interruption, metrics.jsonl carries the realised tokens and the validation loss
// of every source, and the run refuses epoch caps that cannot feed train.steps.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "config/config_io.h"
#include "core/error.h"
#include "evaluation/evaluate.h"
#include "tests/error_helpers.h"
#include "tests/trainer/small_run.h"
#include "trainer/sweep/summary.h"
#include "trainer/trainer.h"

namespace rrt {
namespace {

namespace fs = std::filesystem;
using testing::bit_equal;
using testing::checkpoint_values;
using testing::contains;
using testing::error_message;
using testing::fresh_run_dir;

// Two sources of different text, prepared once per test binary.
const std::string& source(int which) {
  static const std::string prose = prepare_test_shards(
      fs::path(::testing::TempDir()) / ("rrt_mix_prose_" + std::to_string(::getpid())), 4, 40,
      [](int d, int i) {
        return "Prose " + std::to_string(d) + " line " + std::to_string(i) + ": one block, looped.";
      });
  static const std::string code = prepare_test_shards(
      fs::path(::testing::TempDir()) / ("rrt_mix_code_" + std::to_string(::getpid())), 3, 30,
      [](int d, int i) {
        return "int f" + std::to_string(d) + "_" + std::to_string(i) + "(int x) { return x; }";
      });
  return which == 0 ? prose : code;
}

RunConfig mixture_run(const fs::path& dir, int64_t steps = 12) {
  RunConfig c = testing::small_run(dir.string(), steps);
  c.data.path = "";
  c.data.sources = {{.path = source(0), .weight = 3, .name = "prose"},
                    {.path = source(1), .weight = 1, .name = "code"}};
  c.data.seed = 9;
  c.train.grad_accum = 2;
  c.train.eval_every = 4;
  c.train.eval_batches = 1;
  c.checkpoint.every = 1000;
  c.log.every = 2;
  return c;
}

std::vector<nlohmann::json> metrics(const fs::path& dir) {
  std::ifstream in(dir / "metrics.jsonl");
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    for (const char* timing : {"elapsed_s", "tokens_per_s", "gflops", "peak_rss_gib"})
      j.erase(timing);
    lines.push_back(j);
  }
  return lines;
}

// 12 steps straight against 6, an interruption and the remaining 6: the same losses, the same
// final weights bit for bit, the same metrics lines (source tokens and validation losses).
TEST(MixtureTraining, ResumeIsBitExact) {
  const fs::path straight_dir = fresh_run_dir("mix_straight"),
                 resumed_dir = fresh_run_dir("mix_resumed");
  const RunConfig straight_cfg = mixture_run(straight_dir);
  const TrainSummary straight = Trainer(straight_cfg).run();
  ASSERT_EQ(straight.losses.size(), 12u);

  const RunConfig resumed_cfg = mixture_run(resumed_dir);
  const TrainSummary first = Trainer(resumed_cfg).run(/*stop_after=*/6);
  ASSERT_EQ(first.last_step, 6);
  const CheckpointContents middle = read_checkpoint_header(first.last_checkpoint);
  ASSERT_EQ(middle.mixture_counts.size(), 2u);
  EXPECT_EQ(middle.mixture_counts[0] + middle.mixture_counts[1], 6 * 2 * 2);  // steps x accum x N
  const TrainSummary second = Trainer(resumed_cfg).run();
  EXPECT_EQ(second.first_step, 7);
  for (size_t i = 0; i < 12; ++i) {
    const double got = i < 6 ? first.losses[i] : second.losses[i - 6];
    EXPECT_EQ(std::memcmp(&got, &straight.losses[i], sizeof(double)), 0) << "step " << i + 1;
  }
  EXPECT_TRUE(bit_equal(checkpoint_values(straight.last_checkpoint, straight_cfg),
                        checkpoint_values(second.last_checkpoint, resumed_cfg)));
  EXPECT_EQ(read_checkpoint_header(second.last_checkpoint).mixture_counts,
            read_checkpoint_header(straight.last_checkpoint).mixture_counts);
  EXPECT_EQ(metrics(resumed_dir), metrics(straight_dir));
  // The resolved config reads back with its sources.
  EXPECT_EQ(load_run_config((resumed_dir / "config.yaml").string()).data.sources,
            resumed_cfg.data.sources);
}

// Training lines carry each source's tokens so far (summing to the tokens seen, in the ratio
// of the weights); validation lines each source's loss and their weighted mean as val_loss.
TEST(MixtureTraining, MetricsCarryTokensAndValidationPerSource) {
  const fs::path root = fresh_run_dir("mix_metrics"), dir = root / "run";
  const RunConfig c = mixture_run(dir, 8);
  Trainer trainer(c);
  trainer.run();
  int training = 0, validation = 0;
  double last_prose = 0;
  for (const nlohmann::json& j : metrics(dir)) {
    if (j.contains("loss")) {
      ++training;
      const int64_t prose = j.at("source_tokens/prose"), code = j.at("source_tokens/code");
      EXPECT_EQ(prose + code, j.at("tokens").get<int64_t>());
      const int64_t sequences = (prose + code) / 32;
      EXPECT_NEAR(static_cast<double>(prose) / 32, 0.75 * sequences, 1.0) << j.dump();
    }
    if (j.contains("val_loss")) {
      ++validation;
      const double prose = j.at("val_loss/prose"), code = j.at("val_loss/code");
      EXPECT_NE(prose, code);
      last_prose = prose;
      EXPECT_NEAR(j.at("val_loss").get<double>(), (3 * prose + code) / 4, 1e-12);
    }
  }
  EXPECT_EQ(training, 4);
  EXPECT_EQ(validation, 2);
  const std::vector<double> losses = trainer.validation_losses();
  ASSERT_EQ(losses.size(), 2u);
  EXPECT_DOUBLE_EQ(trainer.evaluate(), (3 * losses[0] + losses[1]) / 4);
  // rrt eval without --data scores the first source's validation split.
  const EvalResult eval = evaluate_checkpoint(checkpoint_path(dir.string(), 8), "", 0);
  EXPECT_NEAR(eval.loss, last_prose, 1e-9);
  // rrt sweep summary shows each source's validation perplexity and realised share.
  const SummaryTable t = sweep_summary(root.string());
  ASSERT_EQ(t.rows.size(), 1u);
  auto column = [&t](const std::string& name) {
    const auto it = std::find(t.header.begin(), t.header.end(), name);
    EXPECT_NE(it, t.header.end()) << name;
    return it == t.header.end() ? std::string() : t.rows[0][it - t.header.begin()];
  };
  EXPECT_EQ(column("tokens prose"), "75.0%");
  EXPECT_EQ(column("tokens code"), "25.0%");
  EXPECT_NEAR(std::stod(column("val ppl prose")), std::exp(last_prose), 0.01);
  EXPECT_FALSE(column("val ppl code").empty());
}

// Caps that cannot feed train.steps are refused before the first step, naming the numbers; a
// single-epoch cap that fits trains through.
TEST(MixtureTraining, EpochCapsMustHoldTheRun) {
  RunConfig c = mixture_run(fresh_run_dir("mix_caps"), 400);
  c.data.sources[0].epochs = 1;
  c.data.sources[1].epochs = 1;
  const std::string message = error_message([&] { Trainer trainer(c); });
  EXPECT_TRUE(contains(message, "[data.sources]") && contains(message, "lower train.steps to"))
      << message;
  c.data.sources[0].epochs = 0;  // one source without a cap: never exhausted
  c.train.steps = 2;
  EXPECT_EQ(Trainer(c).run().last_step, 2);
}

}  // namespace
}  // namespace rrt
