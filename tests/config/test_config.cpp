// Run configs: defaults, the example files in configs/, the to_yaml -> parse round trip, every
// kind of error with its file:line (or command-line) location, overrides, and that
// docs/configs.md holds the key tables generated from the field list.
#include <gtest/gtest.h>

#include "tests/error_helpers.h"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "config/config_fields.h"
#include "config/config_io.h"
#include "config/run_config.h"
#include "core/error.h"

namespace rrt {
namespace {

const std::string kConfigDir = RRT_FIXTURE_DIR "/../../configs";
const std::string kDocsPath = RRT_FIXTURE_DIR "/../../docs/configs.md";

using testing::contains;

struct Caught {
  std::string where, what;
};

// Runs `fn`, which must throw rrt::Error, and returns where() and the full message.
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

// A small valid model, lines 1..12 (train: is open). Tests append after it (line 13 on).
const std::string kSmall =
    "model:\n"              // 1
    "  n_layers: 4\n"       // 2
    "  vocab: 257\n"        // 3
    "  d_model: 64\n"       // 4
    "  n_heads: 4\n"        // 5
    "  n_kv_heads: 2\n"     // 6
    "  ffn: 128\n"          // 7
    "  max_seq_len: 128\n"  // 8
    "recursion:\n"          // 9
    "  loops: 2\n"          // 10
    "train:\n"              // 11
    "  seq_len: 64\n";      // 12

RunConfig small(const std::vector<std::string>& overrides = {}) {
  return parse_run_config(kSmall, "small.yaml", overrides);
}

TEST(Config, Defaults) {
  RunConfig c;
  EXPECT_EQ(c.data.tokenizer, "byte");
  EXPECT_DOUBLE_EQ(c.data.val_fraction, 0.05);
  EXPECT_DOUBLE_EQ(c.optim.lr, 3e-4);
  EXPECT_EQ(c.optim.schedule, "cosine");
  EXPECT_EQ(c.optim.warmup_steps, 100);
  EXPECT_EQ(c.train.steps, 1000);
  EXPECT_EQ(c.train.micro_batch, 8);
  EXPECT_EQ(c.train.run_dir, "runs/default");
  EXPECT_EQ(c.train.device, "cpu");
  EXPECT_EQ(c.checkpoint.every, 500);
  EXPECT_TRUE(c.checkpoint.resume);
  EXPECT_EQ(c.log.every, 10);
  EXPECT_EQ(c.model.recursion.loops, 1);

  // Keys that are not set keep these defaults.
  RunConfig s = small();
  EXPECT_EQ(s.optim.schedule, "cosine");
  EXPECT_DOUBLE_EQ(s.optim.beta2, 0.95);
  EXPECT_EQ(s.model.model.rope_theta, 10000.0);
  EXPECT_EQ(s.model.lora.rank_attention, 0);
  EXPECT_EQ(s.model.recursion.block_layers, 2);

  // The model's n_layers is required: the default 0 does not validate.
  Caught e = caught([&] { validate_run_config(c); });
  EXPECT_EQ(e.where, "model.n_layers");
  EXPECT_TRUE(contains(e.what, "must be >= 1, got 0")) << e.what;
}

TEST(Config, AllKeys) {
  const std::vector<std::string> keys = all_config_keys();
  for (const char* key :
       {"model.family", "model.n_kv_heads", "model.embed_scale", "recursion.loops",
        "recursion.sharing", "lora.rank", "lora.rank_attention", "lora.targets", "data.path",
        "data.seed", "optim.lr", "optim.decay_fraction", "train.steps", "train.init_from",
        "checkpoint.keep_last", "log.every"})
    EXPECT_NE(std::find(keys.begin(), keys.end(), key), keys.end()) << key;
  // Derived, not a key.
  EXPECT_EQ(std::find(keys.begin(), keys.end(), "recursion.block_layers"), keys.end());
  // Unique, each "section.name" in one of the declared sections.
  std::vector<std::string> sections;
  for (const SectionInfo& s : config_sections()) sections.push_back(s.name);
  EXPECT_GE(sections.size(), 8u);
  for (size_t i = 0; i < keys.size(); ++i) {
    const std::string section = keys[i].substr(0, keys[i].find('.'));
    EXPECT_NE(std::find(sections.begin(), sections.end(), section), sections.end()) << keys[i];
    EXPECT_EQ(std::count(keys.begin(), keys.end(), keys[i]), 1) << keys[i];
  }
  EXPECT_GE(keys.size(), 50u);
}

TEST(Config, TinyYaml) {
  RunConfig c = load_run_config(kConfigDir + "/tiny.yaml");
  EXPECT_EQ(c.model.model.family, Family::llama);
  EXPECT_EQ(c.model.model.vocab, 257);
  EXPECT_EQ(c.model.model.n_layers, 4);
  EXPECT_EQ(c.model.recursion.loops, 2);
  EXPECT_EQ(c.model.recursion.block_layers, 2);
  EXPECT_EQ(c.model.lora.rank_attention, 8);
  EXPECT_EQ(c.model.lora.rank_mlp, 8);
  EXPECT_TRUE(c.model.model.tied_head);
  EXPECT_EQ(c.data.tokenizer, "byte");
  EXPECT_DOUBLE_EQ(c.optim.lr, 1e-3);
  EXPECT_EQ(c.train.run_dir, "runs/tiny");
  EXPECT_EQ(c.train.init_from, "");
  EXPECT_LE(c.train.seq_len, c.model.model.max_seq_len);

  RunConfig quick = load_run_config(kConfigDir + "/tiny.yaml", {"train.steps=5", "lora.rank=0"});
  EXPECT_EQ(quick.train.steps, 5);
  EXPECT_EQ(quick.model.lora.rank_mlp, 0);
  EXPECT_EQ(quick.model.model.d_model, c.model.model.d_model);
}

TEST(Config, TinyLlamaRelaxedYaml) {
  RunConfig c = load_run_config(kConfigDir + "/tinyllama_relaxed.yaml");
  const ModelConfig& m = c.model.model;
  EXPECT_EQ(m.n_layers, 22);
  EXPECT_EQ(m.d_model, 2048);
  EXPECT_EQ(m.n_heads, 32);
  EXPECT_EQ(m.n_kv_heads, 4);
  EXPECT_EQ(m.ffn, 5632);
  EXPECT_EQ(m.vocab, 32000);
  EXPECT_EQ(c.model.recursion.loops, 2);
  EXPECT_EQ(c.model.recursion.block_layers, 11);
  EXPECT_EQ(c.model.recursion.sharing, Sharing::cycle);
  EXPECT_EQ(c.model.lora.rank_attention, 64);
  EXPECT_EQ(c.model.lora.rank_mlp, 64);
  EXPECT_EQ(c.optim.schedule, "wsd");
  EXPECT_EQ(c.train.grad_accum, 16);
}

// Every file in configs/ (whoever adds one) parses, and its resolved form reads back the same.
TEST(Config, EveryExampleRoundTrips) {
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(kConfigDir)) {
    if (entry.path().extension() != ".yaml") continue;
    ++files;
    SCOPED_TRACE(entry.path().string());
    RunConfig c = load_run_config(entry.path().string());
    const std::string resolved = to_yaml(c);
    RunConfig again = parse_run_config(resolved, "resolved");
    EXPECT_EQ(to_yaml(again), resolved);
    EXPECT_EQ(again.model.recursion.block_layers, c.model.recursion.block_layers);
  }
  EXPECT_GE(files, 2);
}

TEST(Config, RoundTripKeepsAwkwardValues) {
  RunConfig c = small();
  c.optim.lr = 0.1 + 0.2;  // 0.30000000000000004
  c.optim.eps = 1e-12;
  c.model.model.norm_eps = 1e-6;
  c.model.model.embed_scale = 45.254833995939045;  // sqrt(2048)
  c.data.seed = std::numeric_limits<uint64_t>::max();
  c.train.seed = 0;
  c.train.run_dir = "runs/a: b #c";
  c.train.init_from = "yes";  // would read as a bool unquoted
  c.data.path = "";
  c.data.tokenizer = "/models/x y/tokenizer.model";
  c.model.lora.targets = {false, true, false, true, false, false, true};
  c.model.lora.rank_attention = 3;
  c.model.lora.rank_mlp = 5;
  c.model.lora.alpha = 16;
  c.model.recursion.sharing = Sharing::sequence;
  c.model.recursion.per_loop_norms = true;
  c.model.model.activation = Activation::geglu;
  c.checkpoint.resume = false;
  const std::string yaml = to_yaml(c);
  RunConfig back = parse_run_config(yaml, "resolved");
  EXPECT_EQ(to_yaml(back), yaml);
  EXPECT_EQ(back.optim.lr, 0.1 + 0.2);
  EXPECT_EQ(back.optim.eps, 1e-12);
  EXPECT_EQ(back.model.model.embed_scale, 45.254833995939045);
  EXPECT_EQ(back.data.seed, std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(back.train.run_dir, "runs/a: b #c");
  EXPECT_EQ(back.train.init_from, "yes");
  EXPECT_EQ(back.data.path, "");
  EXPECT_EQ(back.data.tokenizer, "/models/x y/tokenizer.model");
  EXPECT_EQ(back.model.lora.targets, c.model.lora.targets);
  EXPECT_EQ(back.model.lora.rank_attention, 3);
  EXPECT_EQ(back.model.lora.rank_mlp, 5);
  EXPECT_EQ(back.model.recursion.sharing, Sharing::sequence);
  EXPECT_EQ(back.model.model.activation, Activation::geglu);
  EXPECT_FALSE(back.checkpoint.resume);
  // Floats stay floats for other YAML readers (PyYAML needs the dot).
  EXPECT_TRUE(contains(yaml, "eps: 1.0e-12")) << yaml;
  EXPECT_TRUE(contains(yaml, "rope_theta: 10000.0")) << yaml;
  EXPECT_TRUE(contains(yaml, "# block_layers: 2")) << yaml;
  EXPECT_FALSE(contains(yaml, "  rank: ")) << "the shorthand is not printed";
}

TEST(Config, ShorthandAndOrder) {
  // lora.rank sets both ranks; the specific key wins wherever it stands in the file.
  RunConfig c = parse_run_config(kSmall + "lora:\n  rank_mlp: 4\n  rank: 8\n", "t.yaml");
  EXPECT_EQ(c.model.lora.rank_attention, 8);
  EXPECT_EQ(c.model.lora.rank_mlp, 4);
  // Lists: flow, block or comma-separated; integers written as exact floats.
  c = parse_run_config(kSmall + "lora:\n  rank: 2\n  targets:\n    - q\n    - down\n", "t.yaml");
  EXPECT_EQ(c.model.lora_rank(Proj::q), 2);
  EXPECT_EQ(c.model.lora_rank(Proj::k), 0);
  EXPECT_EQ(c.model.lora_rank(Proj::down), 2);
  c = parse_run_config(kSmall + "  steps: 2e3\nlora:\n  targets: q, v\n", "t.yaml");
  EXPECT_EQ(c.train.steps, 2000);
  EXPECT_TRUE(c.model.lora.targets[static_cast<int>(Proj::v)]);
  EXPECT_FALSE(c.model.lora.targets[static_cast<int>(Proj::o)]);
  // Empty text: defaults (which then fail validation on model.n_layers, naming the file).
  Caught e = caught([] { parse_run_config("", "empty.yaml"); });
  EXPECT_EQ(e.where, "empty.yaml");
  EXPECT_TRUE(contains(e.what, "model.n_layers")) << e.what;
}

// ---- Errors: each names file:line, the key, and what to do --------------------------------------

TEST(ConfigErrors, UnknownKeySuggestsClosest) {
  Caught e = caught([] { parse_run_config(kSmall + "optim:\n  lerning_rate: 1e-3\n", "t.yaml"); });
  EXPECT_EQ(e.where, "t.yaml:14");
  EXPECT_TRUE(contains(e.what, "unknown key 'optim.lerning_rate'; did you mean 'optim.lr'?"))
      << e.what;

  e = caught([] { parse_run_config("model:\n  n_layer: 4\n", "t.yaml"); });
  EXPECT_EQ(e.where, "t.yaml:2");
  EXPECT_TRUE(contains(e.what, "did you mean 'model.n_layers'?")) << e.what;

  // A key in the wrong section.
  e = caught([] { parse_run_config("train:\n  lr: 1e-3\n", "t.yaml"); });
  EXPECT_TRUE(contains(e.what, "did you mean 'optim.lr'?")) << e.what;

  // Nothing close: the section's keys are listed.
  e = caught([] { parse_run_config("log:\n  colour: true\n", "t.yaml"); });
  EXPECT_TRUE(contains(e.what, "unknown key 'log.colour'; the keys of log are every")) << e.what;
}

TEST(ConfigErrors, UnknownSection) {
  Caught e = caught([] { parse_run_config(kSmall + "optimizer:\n  lr: 1e-3\n", "t.yaml"); });
  EXPECT_EQ(e.where, "t.yaml:13");
  EXPECT_TRUE(contains(e.what, "unknown section 'optimizer'; did you mean 'optim'?")) << e.what;

  e = caught([] { parse_run_config("lr: 1e-3\n", "t.yaml"); });
  EXPECT_EQ(e.where, "t.yaml:1");
  EXPECT_TRUE(contains(e.what, "keys go inside their section: did you mean 'optim.lr'?")) << e.what;
}

TEST(ConfigErrors, WrongType) {
  Caught e = caught([] { parse_run_config(kSmall + "optim:\n  lr: fast\n", "t.yaml"); });
  EXPECT_EQ(e.where, "t.yaml:14");
  EXPECT_TRUE(contains(e.what, "optim.lr: expected a number, got 'fast'")) << e.what;

  e = caught([] { parse_run_config(kSmall + "  steps: 10.5\n", "t.yaml"); });
  EXPECT_EQ(e.where, "t.yaml:13");
  EXPECT_TRUE(contains(e.what, "train.steps: expected an integer, got '10.5'")) << e.what;

  e = caught([] { parse_run_config(kSmall + "checkpoint:\n  resume: maybe\n", "t.yaml"); });
  EXPECT_TRUE(contains(e.what, "checkpoint.resume: expected true or false, got 'maybe'")) << e.what;

  e = caught([] { parse_run_config(kSmall + "data:\n  seed: -1\n", "t.yaml"); });
  EXPECT_TRUE(contains(e.what, "data.seed: expected an integer >= 0, got '-1'")) << e.what;

  e = caught([] { parse_run_config(kSmall + "data:\n  path: [a, b]\n", "t.yaml"); });
  EXPECT_TRUE(contains(e.what, "data.path: expected a string, got a list")) << e.what;

  e = caught([] { parse_run_config("optim: 3\n", "t.yaml"); });
  EXPECT_EQ(e.where, "t.yaml:1");
  EXPECT_TRUE(contains(e.what, "section 'optim' must hold indented 'key: value' lines")) << e.what;
}

TEST(ConfigErrors, BadEnumValue) {
  Caught e = caught([] { parse_run_config(kSmall + "optim:\n  schedule: cosin\n", "t.yaml"); });
  EXPECT_EQ(e.where, "t.yaml:14");
  EXPECT_TRUE(contains(e.what,
                       "optim.schedule: unknown value 'cosin'; expected one of cosine, "
                       "constant, wsd; did you mean 'cosine'?"))
      << e.what;

  e = caught([] { parse_run_config("model:\n  family: mistral\n", "t.yaml"); });
  EXPECT_EQ(e.where, "t.yaml:2");
  EXPECT_TRUE(contains(e.what, "expected one of llama, gemma, neox")) << e.what;

  e = caught([] { parse_run_config(kSmall + "lora:\n  targets: [q, gate, ffn]\n", "t.yaml"); });
  EXPECT_EQ(e.where, "t.yaml:14");
  EXPECT_TRUE(contains(e.what, "lora.targets: unknown item 'ffn'")) << e.what;

  // The model's own check, mapped to the line that broke it.
  e = caught([] { parse_run_config("model:\n  n_layers: 2\n  family: neox\n  rotary_fraction: 0.01\n", "t.yaml"); });
  EXPECT_EQ(e.where, "t.yaml:4");
  EXPECT_TRUE(contains(e.what, "rotary")) << e.what;

  // cuda is a valid device in any build (the trainer says when this build has no CUDA); a
  // recompute list that names no position is reported at its line.
  EXPECT_EQ(parse_run_config(kSmall + "  device: cuda\n", "t.yaml").train.device, "cuda");
  e = caught([] { parse_run_config(kSmall + "  recompute: 0,99\n", "t.yaml"); });
  EXPECT_EQ(e.where, "t.yaml:13");
  EXPECT_TRUE(contains(e.what, "train.recompute")) << e.what;
}

TEST(ConfigErrors, LoopsNotDividingLayers) {
  std::string text = kSmall;
  text.replace(text.find("loops: 2"), 8, "loops: 3");
  Caught e = caught([&] { parse_run_config(text, "t.yaml"); });
  EXPECT_EQ(e.where, "t.yaml:10");
  EXPECT_TRUE(contains(e.what, "recursion.loops: loops 3 does not divide model.n_layers 4"))
      << e.what;
  EXPECT_TRUE(contains(e.what, "loops can be one of 1, 2, 4")) << e.what;

  e = caught([] { parse_run_config(kSmall + "recursion:\n", "t.yaml"); });
  EXPECT_TRUE(contains(e.what, "section 'recursion' appears twice (first at t.yaml:9)")) << e.what;

  e = caught([] { parse_run_config("recursion:\n  block_layers: 2\n", "t.yaml"); });
  EXPECT_EQ(e.where, "t.yaml:2");
  EXPECT_TRUE(contains(e.what, "recursion.block_layers is derived, not set")) << e.what;
}

TEST(Config, FamilySetsItsStructureAndLaterKeysRefineIt) {
  // Setting the family resets the structure to the family's; what is set after it (here the
  // next override; in a file, any other model key, since family applies first) refines it.
  RunConfig c = parse_run_config(
      kSmall + "lora:\n  rank: 2\n", "t.yaml",
      {"model.family=neox", "model.rotary_fraction=0.5"});
  const ModelConfig& m = c.model.model;
  EXPECT_EQ(m.family, Family::neox);
  EXPECT_EQ(m.norm, Norm::layer);
  EXPECT_TRUE(m.linear_bias && m.parallel_residual);
  EXPECT_EQ(m.activation, Activation::gelu);
  EXPECT_DOUBLE_EQ(m.rotary_fraction, 0.5);
  EXPECT_EQ(c.model.lora_rank(Proj::gate), 0);  // no gate in NeoX's MLP
  RunConfig back = parse_run_config(to_yaml(c), "resolved");
  EXPECT_EQ(to_yaml(back), to_yaml(c));
  EXPECT_DOUBLE_EQ(back.model.model.rotary_fraction, 0.5);

  const std::string gemma = "model:\n  family: gemma\n" + kSmall.substr(kSmall.find('\n') + 1);
  c = parse_run_config(gemma, "g.yaml");
  EXPECT_TRUE(c.model.model.norm_unit_offset && c.model.model.tied_head);
  EXPECT_EQ(c.model.model.activation, Activation::geglu);
  EXPECT_DOUBLE_EQ(c.model.model.embedding_multiplier(), 8.0);  // sqrt(64)
  EXPECT_NO_THROW(check_family_structure(c.model.model));
  // A structure no HF architecture has trains, but export's check names the mismatch.
  c = parse_run_config(gemma, "g.yaml", {"model.activation=swiglu"});
  EXPECT_TRUE(contains(testing::error_message([&] { check_family_structure(c.model.model); }),
                       "GeGLU"));
}

TEST(Config, RankAboveAProjectionsSizeIsCapped) {
  // k and v are 64 x 32 (2 kv heads x 16): rank 40 gives them full rank 32 and q, o rank 40
  // (docs/method.md §2.2: the rank is capped at min(in, out)).
  RunConfig c = parse_run_config(kSmall + "lora:\n  rank: 40\n", "t.yaml");
  EXPECT_EQ(c.model.lora_rank(Proj::q), 40);
  EXPECT_EQ(c.model.lora_rank(Proj::k), 32);
  EXPECT_EQ(c.model.lora_rank(Proj::v), 32);
  c = parse_run_config(kSmall + "lora:\n  rank: 8\n  rank_mlp: 100\n", "t.yaml");
  EXPECT_EQ(c.model.lora_rank(Proj::q), 8);
  EXPECT_EQ(c.model.lora_rank(Proj::down), 64);
  Caught e = caught([] { parse_run_config(kSmall + "lora:\n  rank: -3\n", "t.yaml"); });
  EXPECT_EQ(e.where, "t.yaml:14");
}

TEST(ConfigErrors, KvHeadsNotDividingHeads) {
  std::string text = kSmall;
  text.replace(text.find("n_kv_heads: 2"), 13, "n_kv_heads: 3");
  Caught e = caught([&] { parse_run_config(text, "t.yaml"); });
  EXPECT_EQ(e.where, "t.yaml:6");
  EXPECT_TRUE(contains(e.what, "model.n_kv_heads: n_kv_heads 3 does not divide n_heads 4"))
      << e.what;
  EXPECT_TRUE(contains(e.what, "one of 1, 2, 4")) << e.what;

  // n_kv_heads left at its default (4): the error points at the n_heads line that conflicts.
  e = caught(
      [] { parse_run_config("model:\n  n_layers: 2\n  n_heads: 6\n  d_model: 96\n", "t.yaml"); });
  EXPECT_EQ(e.where, "t.yaml:3");
  EXPECT_TRUE(contains(e.what, "n_kv_heads 4 does not divide n_heads 6")) << e.what;
}

TEST(ConfigErrors, ImpossibleValues) {
  Caught e = caught([] { parse_run_config(kSmall + "  steps: 0\n", "t.yaml"); });
  EXPECT_EQ(e.where, "t.yaml:13");
  EXPECT_TRUE(contains(e.what, "train.steps: must be >= 1, got 0")) << e.what;

  e = caught([] { parse_run_config(kSmall + "  micro_batch: -2\n", "t.yaml"); });
  EXPECT_TRUE(contains(e.what, "train.micro_batch: must be >= 1, got -2")) << e.what;

  e = caught([] { parse_run_config(kSmall + "data:\n  val_fraction: 1\n", "t.yaml"); });
  EXPECT_EQ(e.where, "t.yaml:14");
  EXPECT_TRUE(contains(e.what, "data.val_fraction: must be in [0, 1), got 1.0")) << e.what;

  e = caught([] { parse_run_config(kSmall + "optim:\n  lr: 0\n", "t.yaml"); });
  EXPECT_TRUE(contains(e.what, "optim.lr: must be > 0, got 0.0")) << e.what;

  e = caught([] { parse_run_config(kSmall + "  seq_len: 512\n", "t.yaml"); });
  EXPECT_TRUE(contains(e.what, "key 'train.seq_len' appears twice (first at t.yaml:12)")) << e.what;

  std::string text = kSmall;
  text.replace(text.find("seq_len: 64"), 11, "seq_len: 512");
  e = caught([&] { parse_run_config(text, "t.yaml"); });
  EXPECT_EQ(e.where, "t.yaml:12");
  EXPECT_TRUE(contains(e.what, "train.seq_len: seq_len 512 exceeds model.max_seq_len 128"))
      << e.what;

  text = kSmall;
  text.replace(text.find("vocab: 257"), 10, "vocab: 256");
  e = caught([&] { parse_run_config(text, "t.yaml"); });
  EXPECT_EQ(e.where, "t.yaml:3");
  EXPECT_TRUE(contains(e.what, "too small for the byte tokenizer")) << e.what;
}

TEST(ConfigErrors, SyntaxAndFiles) {
  Caught e = caught([] { parse_run_config("model:\n  n_layers: [1, 2\ntrain:\n", "t.yaml"); });
  EXPECT_EQ(e.where.rfind("t.yaml:", 0), 0u) << e.where;
  EXPECT_TRUE(contains(e.what, "YAML syntax error")) << e.what;

  e = caught([] { load_run_config("/nonexistent/run.yaml"); });
  EXPECT_EQ(e.where, "/nonexistent/run.yaml");
  EXPECT_TRUE(contains(e.what, "cannot open the config file")) << e.what;
}

// ---- Overrides
// ------------------------------------------------------------------------------------

TEST(ConfigOverrides, SetNestedValues) {
  RunConfig c = small({"optim.lr=1e-3", "lora.rank=4", "lora.targets=q,v", "recursion.loops=4",
                       "train.run_dir=runs/a b: c", "optim.schedule=wsd", "model.tied_head=true",
                       "data.seed=7", "train.init_from="});
  EXPECT_DOUBLE_EQ(c.optim.lr, 1e-3);
  EXPECT_EQ(c.model.lora_rank(Proj::q), 4);
  EXPECT_EQ(c.model.lora_rank(Proj::k), 0);
  EXPECT_EQ(c.model.lora_rank(Proj::v), 4);
  EXPECT_EQ(c.model.recursion.loops, 4);
  EXPECT_EQ(c.model.recursion.block_layers, 1);  // re-derived
  EXPECT_EQ(c.train.run_dir, "runs/a b: c");
  EXPECT_EQ(c.optim.schedule, "wsd");
  EXPECT_TRUE(c.model.model.tied_head);
  EXPECT_EQ(c.data.seed, 7u);
  EXPECT_EQ(c.train.init_from, "");

  RunConfig d;
  apply_override(d, "lora.targets=[gate, up]");
  EXPECT_EQ(d.model.lora_rank(Proj::q), 0);
  EXPECT_TRUE(d.model.lora.targets[static_cast<int>(Proj::up)]);
  apply_override(d, "model.n_layers=6");
  apply_override(d, "recursion.loops=3");
  EXPECT_EQ(d.model.recursion.block_layers, 2);

  // The resolved config of an overridden run reads back the same.
  EXPECT_EQ(to_yaml(parse_run_config(to_yaml(c), "resolved")), to_yaml(c));
}

TEST(ConfigOverrides, RejectUnknownKeysAndTypes) {
  RunConfig c;
  Caught e = caught([&] { apply_override(c, "optim.lerning_rate=1e-3"); });
  EXPECT_EQ(e.where, "command line: optim.lerning_rate=1e-3");
  EXPECT_TRUE(contains(e.what, "unknown key 'optim.lerning_rate'; did you mean 'optim.lr'?"))
      << e.what;

  e = caught([&] { apply_override(c, "optimizer.lr=1e-3"); });
  EXPECT_TRUE(contains(e.what, "did you mean 'optim.lr'?")) << e.what;

  e = caught([&] { apply_override(c, "lr=1e-3"); });
  EXPECT_TRUE(contains(e.what, "did you mean 'optim.lr'?")) << e.what;

  e = caught([&] { apply_override(c, "optim.lr=fast"); });
  EXPECT_EQ(e.where, "command line: optim.lr=fast");
  EXPECT_TRUE(contains(e.what, "optim.lr: expected a number, got 'fast'")) << e.what;

  e = caught([&] { apply_override(c, "train.steps=-5"); });
  EXPECT_TRUE(contains(e.what, "train.steps: must be >= 1, got -5")) << e.what;

  e = caught([&] { apply_override(c, "optim.schedule=linear"); });
  EXPECT_TRUE(contains(e.what, "expected one of cosine, constant, wsd")) << e.what;

  e = caught([&] { apply_override(c, "optim.lr"); });
  EXPECT_EQ(e.where, "command line: optim.lr");
  EXPECT_TRUE(contains(e.what, "expected section.key=value")) << e.what;

  e = caught([&] { apply_override(c, "recursion.block_layers=3"); });
  EXPECT_TRUE(contains(e.what, "is derived, not set")) << e.what;
  EXPECT_DOUBLE_EQ(c.optim.lr, 3e-4) << "failed overrides change nothing";
}

TEST(ConfigOverrides, ChecksBetweenFieldsNameTheOverride) {
  Caught e = caught([] { small({"recursion.loops=3"}); });
  EXPECT_EQ(e.where, "command line: recursion.loops=3");
  EXPECT_TRUE(contains(e.what, "loops 3 does not divide model.n_layers 4")) << e.what;

  // The file set loops: 2; the override of n_layers broke it, so the override is named.
  e = caught([] { small({"model.n_layers=5"}); });
  EXPECT_EQ(e.where, "command line: model.n_layers=5");

  e = caught([] { small({"lora.rank=-1"}); });
  EXPECT_EQ(e.where, "command line: lora.rank=-1");
}

// ---- docs/configs.md holds the generated tables
// ----------------------------------------------------

TEST(ConfigDocs, ReferenceTableIsCurrent) {
  const std::string table = config_reference_markdown();
  for (const std::string& key : all_config_keys())
    EXPECT_TRUE(contains(table, "| `" + key + "` |")) << key;
  std::ifstream in(kDocsPath);
  ASSERT_TRUE(in) << kDocsPath;
  std::stringstream docs;
  docs << in.rdbuf();
  if (!contains(docs.str(), table)) {
    std::ofstream("configs_reference.md") << table;
    ADD_FAILURE() << "docs/configs.md is out of date with the field list: paste the tables from "
                     "build/tests/configs_reference.md (written now) into it";
  }
}

}  // namespace
}  // namespace rrt
