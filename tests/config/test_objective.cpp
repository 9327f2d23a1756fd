// The distill and early_exit sections: how exits and weights resolve against K, the training
// loss the model gets, and every validation error with the line or override responsible.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/config_io.h"
#include "config/objective.h"
#include "core/error.h"
#include "tests/error_helpers.h"

namespace rrt {
namespace {

using testing::contains;

// 6 layers as 2 shared layers x 3 loops with LoRA; lines 1..14, then the tests' lines.
const std::string kBase =
    "model:\n"              // 1
    "  n_layers: 6\n"       // 2
    "  vocab: 257\n"        // 3
    "  d_model: 64\n"       // 4
    "  n_heads: 4\n"        // 5
    "  n_kv_heads: 2\n"     // 6
    "  ffn: 128\n"          // 7
    "  max_seq_len: 128\n"  // 8
    "recursion:\n"          // 9
    "  loops: 3\n"          // 10
    "lora:\n"               // 11
    "  rank: 4\n"           // 12
    "train:\n"              // 13
    "  seq_len: 64\n";      // 14

RunConfig parse(const std::string& extra, const std::vector<std::string>& overrides = {}) {
  return parse_run_config(kBase + extra, "kd.yaml", overrides);
}

struct Caught {
  std::string where, what;
};

template <typename Fn>
Caught caught(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return {e.where(), e.what()};
  }
  ADD_FAILURE() << "expected rrt::Error";
  return {};
}

TEST(Objective, DefaultsArePlainCrossEntropy) {
  const TrainingLoss loss = training_loss_from(parse(""));
  EXPECT_EQ(loss.exit_loops, (std::vector<int64_t>{3}));
  EXPECT_EQ(loss.exit_weights, (std::vector<double>{1.0}));
  EXPECT_FALSE(loss.teacher);
  EXPECT_TRUE(loss.plain());
}

TEST(Objective, ExitsAndWeightsResolve) {
  TrainingLoss l = training_loss_from(parse("early_exit:\n  exits: all\n"));
  EXPECT_EQ(l.exit_loops, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(l.exit_weights, (std::vector<double>{0.1, 0.1, 1.0}));  // aggressive(0.1)
  l = training_loss_from(parse("early_exit:\n  exits: [1, 3]\n  weights: weighted\n"));
  EXPECT_EQ(l.exit_loops, (std::vector<int64_t>{1, 3}));
  EXPECT_DOUBLE_EQ(l.exit_weights[0], 0.25);
  EXPECT_DOUBLE_EQ(l.exit_weights[1], 0.75);
  l = training_loss_from(parse("early_exit:\n  exits: all\n  weights: uniform\n"));
  EXPECT_EQ(l.exit_weights, (std::vector<double>(3, 1.0 / 3.0)));
  l = training_loss_from(parse("early_exit:\n  exits: all\n  weights: aggressive(0.25)\n"));
  EXPECT_EQ(l.exit_weights, (std::vector<double>{0.25, 0.25, 1.0}));
  l =
      training_loss_from(parse("early_exit:\n  exits: [2, 3]\n  weights: [0.5, 2]\n"
                               "  self_distill: true\n  train: lora\n"));
  EXPECT_EQ(l.exit_weights, (std::vector<double>{0.5, 2.0}));
  EXPECT_TRUE(l.self_distill);
  EXPECT_EQ(l.train, TrainScope::lora);
  // Overrides spell lists with commas.
  l = training_loss_from(parse("", {"early_exit.exits=1,2,3", "early_exit.weights=1,1,1"}));
  EXPECT_EQ(l.exit_weights, (std::vector<double>{1.0, 1.0, 1.0}));
}

TEST(Objective, HeadAdaptersSitOnTheIntermediateExits) {
  RunConfig c = parse("early_exit:\n  exits: all\n  head_lora_rank: 4\n  train: head_lora\n");
  EXPECT_EQ(c.model.exit_head.lora_rank, 4);
  EXPECT_EQ(c.model.exit_head.loops, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(training_loss_from(c).train, TrainScope::head_lora);
  c = parse("early_exit:\n  exits: [2, 3]\n  head_lora_rank: 4\n");
  EXPECT_EQ(c.model.exit_head.loops, (std::vector<int64_t>{2}));
  // The resolved YAML rebuilds the same adapters (rrt eval and export read checkpoints so).
  EXPECT_EQ(parse_run_config(to_yaml(c), "resolved.yaml").model.exit_head.loops,
            (std::vector<int64_t>{2}));
  EXPECT_TRUE(parse("").model.exit_head.loops.empty());

  Caught e = caught([] { parse("early_exit:\n  head_lora_rank: 4\n"); });
  EXPECT_EQ(e.where, "kd.yaml:16");
  EXPECT_TRUE(contains(e.what, "intermediate exits")) << e.what;
  e = caught([] { parse("early_exit:\n  exits: all\n  train: head_lora\n"); });
  EXPECT_EQ(e.where, "kd.yaml:17");
  EXPECT_TRUE(contains(e.what, "head_lora_rank")) << e.what;
  // A config built in code must derive the adapters before use.
  RunConfig by_hand = parse("early_exit:\n  exits: all\n");
  by_hand.model.exit_head.lora_rank = 2;
  EXPECT_THROW(training_loss_from(by_hand), Error);
  derive_exit_head(by_hand);
  EXPECT_NO_THROW(training_loss_from(by_hand));
}

TEST(Objective, DistillSection) {
  const TrainingLoss l =
      training_loss_from(parse("distill:\n  teacher: /models/teacher.h5\n  divergence: reverse_kl\n"
                               "  temperature: 2.0\n  alpha: 0.7\n"));
  EXPECT_TRUE(l.teacher);
  EXPECT_EQ(l.divergence, ops::Divergence::reverse_kl);
  EXPECT_DOUBLE_EQ(l.temperature, 2.0);
  EXPECT_DOUBLE_EQ(l.alpha, 0.7);
  EXPECT_FALSE(l.plain());
}

TEST(Objective, RoundTripsThroughTheResolvedYaml) {
  const RunConfig c = parse(
      "distill:\n  teacher: t.h5\n  divergence: tv\n  temperature: 1.5\n"
      "early_exit:\n  exits: [1, 3]\n  weights: [0.2, 1]\n  self_distill: true\n");
  const RunConfig back = parse_run_config(to_yaml(c), "resolved.yaml");
  EXPECT_EQ(back.early_exit.exits, c.early_exit.exits);
  EXPECT_EQ(back.early_exit.weights, c.early_exit.weights);
  EXPECT_EQ(back.distill.divergence, "tv");
  const RunConfig d = parse("");
  EXPECT_EQ(parse_run_config(to_yaml(d), "resolved.yaml").early_exit.weights,
            (std::vector<std::string>{"aggressive(0.1)"}));
}

TEST(Objective, ErrorsNameTheKeyAndTheLine) {
  // Line 15 is the first line after the base.
  Caught e = caught([] { parse("early_exit:\n  exits: [1, 4]\n"); });
  EXPECT_EQ(e.where, "kd.yaml:16");
  EXPECT_TRUE(contains(e.what, "exit loop 4 is beyond the last loop")) << e.what;

  e = caught([] { parse("early_exit:\n  exits: [1, 2]\n"); });
  EXPECT_TRUE(contains(e.what, "final loop 3 is always an exit")) << e.what;
  EXPECT_TRUE(contains(e.what, "[1, 2, 3]")) << e.what;

  e = caught([] { parse("early_exit:\n  exits: all\n  weights: [0.1, 1]\n"); });
  EXPECT_EQ(e.where, "kd.yaml:17");
  EXPECT_TRUE(contains(e.what, "2 weights for 3 exits")) << e.what;

  e = caught([] { parse("early_exit:\n  exits: [3, 1]\n"); });
  EXPECT_TRUE(contains(e.what, "ascending")) << e.what;

  e = caught([] { parse("early_exit:\n  exits: [1, all]\n"); });
  EXPECT_TRUE(contains(e.what, "stands alone")) << e.what;

  e = caught([] { parse("early_exit:\n  weights: aggressive(x)\n"); });
  EXPECT_EQ(e.where, "kd.yaml:16");
  EXPECT_TRUE(contains(e.what, "aggressive(c)")) << e.what;

  e = caught([] { parse("early_exit:\n  weights: [0, 0, 0]\n  exits: all\n"); });
  EXPECT_TRUE(contains(e.what, "all 0")) << e.what;

  e = caught([] { parse("early_exit:\n  self_distill: true\n"); });
  EXPECT_EQ(e.where, "kd.yaml:16");
  EXPECT_TRUE(contains(e.what, "early_exit.self_distill")) << e.what;

  e = caught([] { parse("early_exit:\n  train: lora\n", {"lora.rank=0"}); });
  EXPECT_EQ(e.where, "command line: lora.rank=0");
  EXPECT_TRUE(contains(e.what, "has none")) << e.what;

  e = caught([] { parse("early_exit:\n  exits: all\n", {"recursion.sharing=sequence"}); });
  EXPECT_EQ(e.where, "command line: recursion.sharing=sequence");
  EXPECT_TRUE(contains(e.what, "cycle")) << e.what;

  e = caught([] { parse("distill:\n  temperature: 0\n"); });
  EXPECT_TRUE(contains(e.what, "distill.temperature")) << e.what;
  e = caught([] { parse("distill:\n  divergence: kl\n"); });
  EXPECT_TRUE(contains(e.what, "forward_kl")) << e.what;
  e = caught([] { parse("", {"distill.alpha=1.5"}); });
  EXPECT_EQ(e.where, "command line: distill.alpha=1.5");

  // Exits beyond K after an override of loops: the override is named.
  e = caught([] { parse("early_exit:\n  exits: [1, 2, 3]\n", {"recursion.loops=2"}); });
  EXPECT_EQ(e.where, "command line: recursion.loops=2");
}

}  // namespace
}  // namespace rrt
