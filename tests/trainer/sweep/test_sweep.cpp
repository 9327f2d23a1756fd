// Sweeps (trainer/sweep/): expansion of grid and zip axes (counts, order, names, each run's
// resolved config), validation of sweep files (errors at the sweep file's line), the refusal to
// rewrite a started run, and conversion of each run's starting weights. Launching is in
// test_sweep_launch.cpp, the `rrt sweep` commands in test_sweep_cli.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "checkpoint/checkpoint.h"
#include "config/config_io.h"
#include "core/error.h"
#include "tests/trainer/sweep/sweep_test_fixture.h"
#include "trainer/sweep/summary.h"
#include "trainer/sweep/sweep.h"
#include "trainer/trainer.h"

namespace rrt {
namespace {

using namespace sweep_test;

// Lines of base_config(): the sweep text after it starts at line base_lines() + 1.
int base_lines() {
  const std::string text = base_config();
  return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

TEST(SweepExpand, GridAndZipCountsNamesAndConfigs) {
  const fs::path out = temp("expand");
  const std::string text = base_config() +
                           "grid:\n"
                           "  lora.rank: [0, 4]\n"
                           "  train.seed: [1, 2, 3]\n"
                           "zip:\n"
                           "  label: [fast, slow]\n"
                           "  optim.lr: [3e-3, 1e-3]\n"
                           "  optim.warmup_steps: [1, 4]\n";
  const Sweep s = parse(text, out);
  ASSERT_EQ(s.runs.size(), 12u);  // 2 x 3 x 2, the first axis outermost
  EXPECT_EQ(s.swept_keys, (std::vector<std::string>{"lora.rank", "train.seed", "optim.lr",
                                                    "optim.warmup_steps"}));
  std::vector<std::string> names;
  for (const SweepRun& r : s.runs) names.push_back(r.name);
  EXPECT_EQ(names, (std::vector<std::string>{
                       "rank-0_seed-1_fast", "rank-0_seed-1_slow", "rank-0_seed-2_fast",
                       "rank-0_seed-2_slow", "rank-0_seed-3_fast", "rank-0_seed-3_slow",
                       "rank-4_seed-1_fast", "rank-4_seed-1_slow", "rank-4_seed-2_fast",
                       "rank-4_seed-2_slow", "rank-4_seed-3_fast", "rank-4_seed-3_slow"}));
  for (size_t i = 0; i < s.runs.size(); ++i) {
    const SweepRun& r = s.runs[i];
    const int64_t rank = i < 6 ? 0 : 4;
    const uint64_t seed = 1 + (i / 2) % 3;
    const bool fast = i % 2 == 0;
    EXPECT_EQ(r.config.model.lora.rank_attention, rank) << r.name;
    EXPECT_EQ(r.config.model.lora.rank_mlp, rank) << r.name;
    EXPECT_EQ(r.config.train.seed, seed) << r.name;
    EXPECT_DOUBLE_EQ(r.config.optim.lr, fast ? 3e-3 : 1e-3) << r.name;
    EXPECT_EQ(r.config.optim.warmup_steps, fast ? 1 : 4) << r.name;
    EXPECT_EQ(r.config.train.run_dir, (out / r.name).string());
    EXPECT_EQ(r.config.model.recursion.block_layers, 2);  // the base's derived values too
    EXPECT_EQ(r.values, (std::vector<std::pair<std::string, std::string>>{
                            {"lora.rank", std::to_string(rank)},
                            {"train.seed", std::to_string(seed)},
                            {"optim.lr", fast ? "3e-3" : "1e-3"},
                            {"optim.warmup_steps", fast ? "1" : "4"}}));
  }
  // Written: each run's resolved config reads back to the same config; the manifest and list.
  write_sweep(s);
  for (const SweepRun& r : s.runs) {
    const RunConfig back = load_run_config((out / r.name / "config.yaml").string());
    EXPECT_EQ(to_yaml(back), to_yaml(r.config)) << r.name;
  }
  std::ifstream manifest(out / "sweep.json");
  const auto j = nlohmann::json::parse(manifest);
  EXPECT_EQ(j["runs"].size(), 12u);
  EXPECT_EQ(j["runs"][11]["name"], "rank-4_seed-3_slow");
  std::ifstream list(out / "runs.txt");
  int lines = 0;
  for (std::string l; std::getline(list, l); ++lines) EXPECT_TRUE(fs::path(l).is_absolute()) << l;
  EXPECT_EQ(lines, 12);
  // Complete: no INCOMPLETE marker. One left by a killed `rrt sweep` makes readers refuse.
  EXPECT_FALSE(fs::exists(out / "INCOMPLETE"));
  std::ofstream(out / "INCOMPLETE") << "x";
  EXPECT_TRUE(contains(error_message([&] { sweep_summary(out.string()); }), "incomplete sweep"));
  fs::remove(out / "INCOMPLETE");
}

TEST(SweepExpand, ListValuesSeveralZipGroupsAndNoAxes) {
  const fs::path out = temp("lists");
  const std::string text = base_config() +
                           "set:\n"
                           "  early_exit.exits: all\n"
                           "grid:\n"
                           "  early_exit.weights: [aggressive(0.1), weighted, [0.3, 0.7]]\n"
                           "zip:\n"
                           "  - early_exit.self_distill: [false, true]\n"
                           "  - train.seed: [7, 8]\n"
                           "    data.seed: [1, 2]\n";
  const Sweep s = parse(text, out);
  ASSERT_EQ(s.runs.size(), 12u);
  EXPECT_EQ(s.runs[0].name, "weights-aggressive-0.1_self_distill-false_train.seed-7_data.seed-1");
  // Two keys end in "seed": their segments spell the whole key.
  const Sweep named = parse(base_config() + "grid:\n  train.seed: [1]\n  data.seed: [2]\n", out);
  EXPECT_EQ(named.runs[0].name, "train.seed-1_data.seed-2");
  EXPECT_EQ(s.runs[11].name, "weights-0.3-0.7_self_distill-true_train.seed-8_data.seed-2");
  EXPECT_EQ(s.runs[11].config.early_exit.weights, (std::vector<std::string>{"0.3", "0.7"}));
  EXPECT_TRUE(s.runs[11].config.early_exit.self_distill);
  EXPECT_EQ(s.runs[11].config.data.seed, 2u);
  EXPECT_EQ(s.runs[4].config.early_exit.weights, (std::vector<std::string>{"weighted"}));

  const Sweep one = parse("name: only\n" + base_config(), out);
  ASSERT_EQ(one.runs.size(), 1u);
  EXPECT_EQ(one.runs[0].name, "only");
  EXPECT_EQ(one.out_dir, out.string());
  EXPECT_EQ(parse_sweep(base_config(), "dir/ablation.yaml", ".").out_dir, "runs/sweeps/ablation");
  EXPECT_EQ(name_segment("aggressive(0.1)"), "aggressive-0.1");
  EXPECT_EQ(name_segment("[0.3, 0.7]"), "0.3-0.7");
  EXPECT_EQ(name_segment("runs/a b/c"), "runs-a-b-c");
}

TEST(SweepExpand, BaseFileAndOverrides) {
  const fs::path dir = temp("base_file");
  {
    // The inline config as a run config file: its lines without the two-space indent.
    std::stringstream in(base_config());
    std::ofstream f(dir / "run.yaml");
    std::string line;
    std::getline(in, line);
    while (std::getline(in, line)) f << line.substr(2) << "\n";
  }
  std::ofstream(dir / "s.yaml") << "base: run.yaml\ngrid:\n  lora.rank: [0, 2]\n";
  const Sweep s = load_sweep((dir / "s.yaml").string(), (dir / "out").string(), {"train.steps=9"});
  ASSERT_EQ(s.runs.size(), 2u);
  EXPECT_EQ(s.runs[1].config.model.lora.rank_attention, 2);
  EXPECT_EQ(s.runs[1].config.train.steps, 9);
  EXPECT_EQ(s.name, "s");
  const std::string e =
      error_message([&] { load_sweep((dir / "s.yaml").string(), "", {"lora.rank=4"}); });
  EXPECT_TRUE(contains(e, "[command line: lora.rank=4] lora.rank is an axis of")) << e;
}

TEST(SweepValidate, ErrorsNameTheSweepFileLineAndAxis) {
  const fs::path out = temp("validate");
  auto error_of = [&](const std::string& tail) {
    return error_message([&] { parse(base_config() + tail, out, "abl.yaml"); });
  };
  auto expect = [&](const std::string& tail, int line, const std::string& part) {
    SCOPED_TRACE(tail);
    const std::string e = error_of(tail);
    EXPECT_TRUE(contains(e, "[abl.yaml:" + std::to_string(base_lines() + line) + "]")) << e;
    EXPECT_TRUE(contains(e, part)) << e;
  };
  expect("grid:\n  optim.lerning_rate: [1e-3]\n", 2,
         "axis optim.lerning_rate: unknown key 'optim.lerning_rate'; did you mean 'optim.lr'?");
  expect("grid:\n  lora.rank: []\n", 2, "axis lora.rank is empty");
  expect("grid:\n  lora.rank:\n", 2, "axis lora.rank is empty");
  expect("zip:\n  lora.rank: []\n  optim.lr: []\n", 2, "zip axis lora.rank is empty");
  expect("grid:\n  lora.rank: 4\n", 2, "axis lora.rank: expected a list of values");
  expect("grid:\n  optim.lr: [1e-3,\n    fast]\n", 3,
         "axis optim.lr: expected a number, got 'fast'");
  expect("zip:\n  lora.rank: [0, 2, 4]\n  optim.lr: [1e-3, 2e-3]\n", 3,
         "zip axis optim.lr has 2 values but lora.rank has 3");
  expect("set:\n  train.stepz: 5\n", 2,
         "set train.stepz: unknown key 'train.stepz'; did you mean 'train.steps'?");
  expect("set:\n  train.run_dir: x\n", 2, "the sweep sets each run's directory");
  expect("gird:\n  lora.rank: [0]\n", 1,
         "unknown key 'gird' in a sweep file; did you mean 'grid'?");
  expect("grid:\n  lora.rank: [0]\ngrid:\n  optim.lr: [1e-3]\n", 3,
         "'grid' appears twice (first at abl.yaml:" + std::to_string(base_lines() + 1) + ")");
  expect("grid:\n  convert.int: [average]\n", 2, "did you mean 'convert.init'?");
  expect("convert:\n  from: x\ngrid:\n  convert.init: [avg]\n", 4,
         "unknown init rule 'avg'; expected one of stepwise, average, lower, upper, random");
  expect("convert:\n  from: x\ngrid:\n  convert.lora_init: [svd, pissa]\n", 4,
         "expected svd, svd_balanced or zero, got 'pissa'");
  expect("grid:\n  lora.rank: [0]\n  optim.lr: [1e-3]\nset:\n  lora.rank: 2\n", 2,
         "axis lora.rank is swept twice, or also fixed under set:");
  // A combination that only fails as a whole run names the run and the value's line.
  expect("grid:\n  recursion.loops: [2, 3]\n", 2,
         "run 'loops-3' (recursion.loops=3): recursion.loops: loops 3 does not divide "
         "model.n_layers 4");
  // Values that make the same directory name.
  const std::string clash = error_of("zip:\n  label: [a b, a-b]\n  lora.rank: [0, 2]\n");
  EXPECT_TRUE(contains(clash,
                       "[abl.yaml] runs (lora.rank=0) and (lora.rank=2) would both be "
                       "named 'a-b'"))
      << clash;
  // The inline config's own errors point at the sweep file's lines.
  const std::string bad = "name: x\nconfig:\n  optim:\n    lr: fast\n";
  const std::string e = error_message([&] { parse(bad, out, "abl.yaml"); });
  EXPECT_TRUE(contains(e, "[abl.yaml:4] optim.lr: expected a number, got 'fast'")) << e;
  const std::string none =
      error_message([&] { parse("grid:\n  lora.rank: [0]\n", out, "abl.yaml"); });
  EXPECT_TRUE(contains(none, "no base config")) << none;
}

TEST(SweepWrite, RefusesAStartedRunWhoseConfigChanged) {
  const fs::path out = temp("changed");
  const Sweep s = parse(base_config() + "grid:\n  lora.rank: [0]\n", out);
  write_sweep(s);
  std::ofstream(out / "rank-0" / "step_00000003.h5") << "started";
  write_sweep(s);  // the same config again is fine
  const Sweep changed =
      parse(base_config() + "set:\n  optim.lr: 1e-3\ngrid:\n  lora.rank: [0]\n", out);
  const std::string e = error_message([&] { write_sweep(changed); });
  EXPECT_TRUE(contains(e,
                       "run 'rank-0' was started with another config ('optim.lr: 0.003' there, "
                       "'optim.lr: 0.001' in sweep.yaml)"))
      << e;
}

// What a resume of the run would accept is accepted here too: keys that do not change what the
// run computes (logging, evaluation cadence, retention), and a result-changing key the config
// allows (checkpoint.allow_config_change); config.yaml then says what the run goes on with.
TEST(SweepWrite, AcceptsAChangeTheRunsResumeAccepts) {
  const fs::path out = temp("resumable_change");
  const std::string grid = "grid:\n  lora.rank: [0]\n";
  write_sweep(parse(base_config() + grid, out));
  std::ofstream(out / "rank-0" / "step_00000003.h5") << "started";
  const auto config_of_run = [&] {
    return load_run_config((out / "rank-0" / "config.yaml").string());
  };

  write_sweep(
      parse(base_config() + "set:\n  log.every: 2\n  checkpoint.keep_last: 7\n" + grid, out));
  EXPECT_EQ(config_of_run().log.every, 2);
  EXPECT_EQ(config_of_run().checkpoint.keep_last, 7);

  const Sweep lr = parse(base_config() + "set:\n  optim.lr: 1e-3\n" + grid, out);
  const std::string e = error_message([&] { write_sweep(lr); });
  EXPECT_TRUE(contains(e, "allow it with checkpoint.allow_config_change=[optim.lr]")) << e;
  EXPECT_DOUBLE_EQ(config_of_run().optim.lr, 3e-3) << "a refused change leaves config.yaml";
  write_sweep(parse(base_config() +
                        "set:\n  optim.lr: 1e-3\n  checkpoint.allow_config_change: [optim.lr]\n" +
                        grid,
                    out));
  EXPECT_DOUBLE_EQ(config_of_run().optim.lr, 1e-3);
}

// A plain 4-layer model trained for two steps: the source that conversions start from.
std::string train_plain_model(const fs::path& dir) {
  RunConfig c =
      parse_run_config(base_config().substr(8), "base",
                       {"recursion.loops=1", "train.steps=2", "train.run_dir=" + dir.string()});
  Trainer(c).run();
  return dir.string();
}

TEST(SweepConvert, EachRunStartsFromItsConvertedModel) {
  const fs::path root = temp("convert");
  const std::string base = train_plain_model(root / "plain");
  const Sweep s = parse(base_config() + "convert:\n  from: " + base +
                            "\ngrid:\n  convert.init: [stepwise, average]\n  lora.rank: [0, 2]\n",
                        root / "sweep");
  ASSERT_EQ(s.runs.size(), 4u);
  EXPECT_EQ(s.runs[1].name, "init-stepwise_rank-2");
  RunConfig plain_cfg = load_run_config(base + "/config.yaml");
  ParameterSet plain(plain_cfg.model, ParameterSet::Grads::without);
  load_checkpoint(checkpoint_path(base, 2), plain, nullptr);
  for (const SweepRun& r : s.runs) {
    ASSERT_TRUE(r.convert.has_value());
    EXPECT_EQ(r.config.train.init_from, (fs::path(r.dir) / "init.h5").string());
    EXPECT_TRUE(prepare_run(r)) << r.name;
    EXPECT_FALSE(prepare_run(r)) << "made once";
    ParameterSet made(r.config.model, ParameterSet::Grads::without);
    load_checkpoint(r.config.train.init_from, made, nullptr);
    // L = 4, B = 2: stepwise takes layers {0, 3}; average the mean of {0, 2} and of {1, 3}.
    const int64_t n = made.numel(made.registry().index("block.1.attn.q.weight"));
    const float* q1 = made.value("block.1.attn.q.weight");
    const float* l1 = plain.value("block.1.attn.q.weight");
    const float* l3 = plain.value("block.3.attn.q.weight");
    for (int64_t i = 0; i < n; i += 97) {
      const float want = r.convert->init == "stepwise" ? l3[i] : 0.5f * (l1[i] + l3[i]);
      ASSERT_NEAR(q1[i], want, 1e-6) << r.name << " element " << i;
    }
  }
  // A source run that has not finished, and a model that does not fit.
  RunConfig unfinished = plain_cfg;
  unfinished.train.steps = 50;
  std::ofstream(root / "plain" / "config.yaml") << to_yaml(unfinished);
  const Sweep waiting = parse(base_config() + "convert:\n  from: " + base + "\n", root / "w");
  std::string e = error_message([&] { prepare_run(waiting.runs[0]); });
  EXPECT_TRUE(contains(e, "has not finished (no step_00000050.h5)")) << e;
  const Sweep wider = parse(
      base_config(4, 64) + "convert:\n  from: " + base + "/step_00000002.h5\n", root / "wide");
  e = error_message([&] { prepare_run(wider.runs[0]); });
  EXPECT_TRUE(contains(e, "differs from the run's model ('model.d_model: 64' in the run")) << e;
}

// Runs that differ only in training keys convert the same way: one conversion, shared.
TEST(SweepConvert, IdenticalConversionsAreMadeOnce) {
  const fs::path root = temp("convert_shared");
  const std::string base = train_plain_model(root / "plain");
  const Sweep s = parse(base_config() + "convert:\n  from: " + base +
                            "\ngrid:\n  convert.init: [stepwise, average]\n"
                            "  optim.lr: [1e-3, 2e-3]\n",
                        root / "sweep");
  ASSERT_EQ(s.runs.size(), 4u);
  // Runs 0 and 1 differ only in optim.lr (so do 2 and 3): equal keys, one file per init.
  EXPECT_EQ(conversion_key_text(s.runs[0]), conversion_key_text(s.runs[1]));
  EXPECT_NE(conversion_key_text(s.runs[0]), conversion_key_text(s.runs[2]));
  EXPECT_EQ(shared_conversion_path(s.runs[2]), shared_conversion_path(s.runs[3]));
  std::vector<bool> was_shared;
  for (const SweepRun& r : s.runs) {
    bool shared = true;
    EXPECT_TRUE(prepare_run(r, &shared)) << r.name;
    was_shared.push_back(shared);
    EXPECT_TRUE(fs::exists(r.config.train.init_from)) << r.name;
  }
  EXPECT_EQ(was_shared, (std::vector<bool>{false, true, false, true}));
  int made = 0;
  for (const auto& e : fs::directory_iterator(root / "sweep" / "_converted"))
    made += e.path().extension() == ".h5";
  EXPECT_EQ(made, 2) << "one conversion per distinct init";
  EXPECT_TRUE(fs::equivalent(s.runs[0].config.train.init_from, s.runs[1].config.train.init_from))
      << "the second run's init.h5 is the first's file (hard link)";
  EXPECT_FALSE(fs::equivalent(s.runs[0].config.train.init_from, s.runs[2].config.train.init_from));
  ParameterSet a(s.runs[0].config.model, ParameterSet::Grads::without);
  ParameterSet b(s.runs[1].config.model, ParameterSet::Grads::without);
  load_checkpoint(s.runs[0].config.train.init_from, a, nullptr);
  load_checkpoint(s.runs[1].config.train.init_from, b, nullptr);
  const int64_t n = a.numel(a.registry().index("block.1.attn.q.weight"));
  for (int64_t i = 0; i < n; ++i)
    ASSERT_EQ(a.value("block.1.attn.q.weight")[i], b.value("block.1.attn.q.weight")[i]) << i;
  // A run whose init.h5 exists already is left alone, shared or not.
  bool shared = true;
  EXPECT_FALSE(prepare_run(s.runs[1], &shared));
  EXPECT_FALSE(shared);
}

}  // namespace
}  // namespace rrt
