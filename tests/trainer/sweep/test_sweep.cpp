// Sweeps (trainer/sweep/): expansion of grid and zip axes (counts, order, names, each run's
// resolved config), validation of sweep files (errors at the sweep file's line), conversion of each
// run's starting weights, `--launch local` resuming an interrupted sweep without rerunning anything
// finished and recording failures, the summary table, and the loss plot (decoded with zlib).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "checkpoint/checkpoint.h"
#include "config/config_io.h"
#include "core/error.h"
#include "data/prepare.h"
#include "plot/plot.h"
#include "tests/error_helpers.h"
#include "tests/png_decode.h"
#include "tests/text_shards.h"
#include "trainer/sweep/launch.h"
#include "trainer/sweep/metrics.h"
#include "trainer/sweep/process.h"
#include "trainer/sweep/run_plot.h"
#include "trainer/sweep/summary.h"
#include "trainer/sweep/sweep.h"
#include "trainer/trainer.h"

namespace rrt {
namespace {

namespace fs = std::filesystem;
using testing::contains;
using testing::error_message;

fs::path temp(const std::string& name) {
  const fs::path p =
      fs::path(::testing::TempDir()) / ("rrt_sweep_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

// Token shards of a few KB of text, prepared once per test binary.
const std::string& shards() {
  static const std::string dir = rrt::prepare_test_shards(temp("data"), 6, 40, [](int d, int i) {
    return "Document " + std::to_string(d) + " line " + std::to_string(i) +
           ": the loop runs the block again.";
  });
  return dir;
}

// A tiny model trained for 6 steps, inline in the sweep file; line 1 is "config:".
std::string base_config(int n_layers = 4, int d_model = 32) {
  std::string text = R"(config:
  model:
    n_layers: @LAYERS
    vocab: 257
    d_model: @WIDTH
    n_heads: 4
    n_kv_heads: 2
    ffn: 48
    max_seq_len: 32
  recursion:
    loops: 2
  data:
    path: @DATA
    val_fraction: 0.1
  optim:
    lr: 3.0e-3
    warmup_steps: 2
  train:
    steps: 6
    micro_batch: 2
    seq_len: 32
    eval_every: 3
    eval_batches: 2
    threads: 1
  checkpoint:
    every: 3
  log:
    every: 1
)";
  for (const auto& [key, value] :
       {std::pair<std::string, std::string>{"@LAYERS", std::to_string(n_layers)},
        {"@WIDTH", std::to_string(d_model)},
        {"@DATA", shards()}})
    text.replace(text.find(key), key.size(), value);
  return text;
}

// Lines of base_config(): the sweep text after it starts at line base_lines() + 1.
int base_lines() {
  const std::string text = base_config();
  return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

Sweep parse(const std::string& text, const fs::path& out,
            const std::string& source = "sweep.yaml") {
  return parse_sweep(text, source, ".", out.string());
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
  expect("convert:\n  from: x\ngrid:\n  convert.init: [avg]\n", 4, "unknown init rule 'avg'");
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

int dead_pid() {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  int status;
  ::waitpid(pid, &status, 0);
  return pid;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
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

// The commands as a user types them: dry run, local launch, summary, plot, and a bad file.
TEST(SweepCli, CommandsThroughTheBinary) {
  const fs::path dir = temp("cli");
  const std::string file = (dir / "s.yaml").string();
  std::ofstream(file) << base_config() << "grid:\n  lora.rank: [0, 2]\n";
  const std::string out = (dir / "out").string();
  auto rrt = [](std::vector<std::string> args) {
    args.insert(args.begin(), RRT_CLI_PATH);
    return run_process(args, {{"OMP_NUM_THREADS", "1"}}, "");
  };
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

// Ctrl-C of `rrt sweep --launch local`: the terminal sends SIGINT to every process of its
// foreground group. The hook sends it to the sweep's group in the middle of the first run's
// step 2 (the sweep runs in a session of its own, as in a terminal). The sweep passes the signal
// on to the run once (the run is in a process group of its own, so it does not get a second
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
  ProcessResult r =
      run_process(cmd, {{"OMP_NUM_THREADS", "1"}, {"RRT_TEST_SIGNAL", "INT:step:2:group"}}, "");
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
// SIGTERM comes from the run's step 2; the second from inside the checkpoint write that the
// forwarded first one caused (step 2's, or step 3's if it arrived after step 2's all-reduce), so
// it is sent only after the sweep has handled the first (two signals pending at once merge).
TEST(SweepCli, ASecondSignalKillsTheRunAtOnce) {
  const fs::path dir = temp("second_signal");
  const std::string file = (dir / "s.yaml").string();
  std::ofstream(file) << base_config() << "grid:\n  lora.rank: [0, 2]\n";
  const std::string out = (dir / "out").string();
  const ProcessResult r =
      run_process({RRT_CLI_PATH, "sweep", file, "--launch", "local", "--out", out},
                  {{"OMP_NUM_THREADS", "1"},
                   {"RRT_TEST_SIGNAL",
                    "TERM:step:2:parent,TERM:commit:step_00000002.h5:parent,"
                    "TERM:commit:step_00000003.h5:parent"}},
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
