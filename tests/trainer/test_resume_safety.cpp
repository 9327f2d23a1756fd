// Resume safety: a corrupt newest checkpoint is refused (naming the intact one) or skipped
// (checkpoint.on_corrupt: fallback) with a bit-exact result; a config that changes the model,
// data order or schedule is refused with the keys named unless allowed; shards of another
// tokenizer are refused; metrics.jsonl keeps every line up to the resumed step and loses a
// partial last line only.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "checkpoint/checkpoint.h"
#include "tests/error_helpers.h"
#include "tests/text_shards.h"
#include "trainer/metrics_log.h"
#include "trainer/trainer.h"

namespace rrt {
namespace {

namespace fs = std::filesystem;

const std::string& shards() {
  static const std::string dir = rrt::prepare_test_shards(
      fs::path(::testing::TempDir()) / ("rrt_resume_data_" + std::to_string(::getpid())), 5, 30,
      [](int d, int i) { return "Doc " + std::to_string(d) + " line " + std::to_string(i); });
  return dir;
}

RunConfig small_run(const std::string& run_dir) {
  RunConfig c;
  c.model.model = {.n_layers = 2,
                   .vocab = 257,
                   .d_model = 16,
                   .n_heads = 2,
                   .n_kv_heads = 1,
                   .ffn = 24,
                   .max_seq_len = 16};
  c.model.recursion = {.block_layers = 1, .loops = 2};
  c.model.lora = {.rank_attention = 2, .rank_mlp = 2};
  c.data.path = shards();
  c.data.val_fraction = 0.1;
  c.optim.warmup_steps = 2;
  c.train.steps = 12;
  c.train.micro_batch = 2;
  c.train.seq_len = 16;
  c.train.eval_every = 4;
  c.train.eval_batches = 1;
  c.train.run_dir = run_dir;
  c.checkpoint.every = 4;
  c.checkpoint.keep_last = 5;
  c.log.every = 2;
  return c;
}

fs::path fresh(const std::string& name) {
  const fs::path p =
      fs::path(::testing::TempDir()) / ("rrt_resume_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(p);
  return p;
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void flip_parameter_byte(const std::string& path) {
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  const hid_t set = H5Dopen2(file, "/params/embed.weight", H5P_DEFAULT);
  const haddr_t at = H5Dget_offset(set);
  H5Dclose(set);
  H5Fclose(file);
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(at) + 7);
  char c = 0;
  f.read(&c, 1);
  c ^= 0x01;
  f.seekp(static_cast<std::streamoff>(at) + 7);
  f.write(&c, 1);
}

std::vector<float> weights(const std::string& checkpoint, const RunConfig& c) {
  ParameterSet p(c.model);
  load_checkpoint(checkpoint, p, nullptr);
  std::vector<float> out;
  for (int i = 0; i < p.registry().size(); ++i)
    out.insert(out.end(), p.value(i), p.value(i) + p.numel(i));
  return out;
}

TEST(ResumeSafety, CorruptNewestCheckpointIsRefusedOrSkipped) {
  const fs::path straight_dir = fresh("straight"), dir = fresh("corrupt");
  const RunConfig straight_cfg = small_run(straight_dir.string());
  const TrainSummary straight = Trainer(straight_cfg).run();

  RunConfig c = small_run(dir.string());
  Trainer(c).run(/*stop_after=*/8);  // checkpoints at 4 and 8
  const std::string newest = checkpoint_path(dir.string(), 8);
  flip_parameter_byte(newest);

  const std::string refused = testing::error_message([&] { Trainer t(c); });
  EXPECT_TRUE(testing::contains(refused, newest)) << refused;
  EXPECT_TRUE(testing::contains(refused, "/params/embed.weight")) << refused;
  EXPECT_TRUE(testing::contains(refused, checkpoint_path(dir.string(), 4))) << refused;
  EXPECT_TRUE(testing::contains(refused, "on_corrupt=fallback")) << refused;
  EXPECT_TRUE(fs::exists(newest));  // refusing changes nothing

  c.checkpoint.on_corrupt = "fallback";
  ::testing::internal::CaptureStderr();
  Trainer resumed(c);
  const std::string warning = ::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(testing::contains(warning, newest)) << warning;
  EXPECT_FALSE(fs::exists(newest));
  EXPECT_TRUE(fs::exists(newest + ".corrupt"));
  const TrainSummary rest = resumed.run();
  EXPECT_EQ(rest.first_step, 5);
  const auto a = weights(straight.last_checkpoint, straight_cfg);
  const auto b = weights(rest.last_checkpoint, c);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
  // metrics.jsonl holds each step once, as the straight run's does.
  auto steps = [](const fs::path& d) {
    std::ifstream in(d / "metrics.jsonl");
    std::string line, out;
    while (std::getline(in, line)) {
      auto j = nlohmann::json::parse(line);
      out += std::to_string(j["step"].get<int64_t>()) + (j.contains("val_loss") ? "v " : " ");
    }
    return out;
  };
  EXPECT_EQ(steps(dir), steps(straight_dir));
}

TEST(ResumeSafety, ConfigChangesThatBreakResumeAreRefusedWithTheKeys) {
  const fs::path dir = fresh("config");
  RunConfig c = small_run(dir.string());
  Trainer(c).run(/*stop_after=*/4);

  RunConfig changed = c;
  changed.optim.lr = 1e-3;
  changed.model.lora.rank_attention = 1;
  changed.data.seed = 9;
  changed.train.steps = 20;  // cosine: the learning rate of every later step moves
  changed.log.every = 3;     // free to change
  changed.checkpoint.every = 2;
  changed.train.micro_batch = 3;  // the global batch of one rank
  const std::string msg = testing::error_message([&] { Trainer t(changed); });
  for (const char* key :
       {"optim.lr", "lora.rank_attention", "data.seed", "train.steps", "train.micro_batch"})
    EXPECT_TRUE(testing::contains(msg, key)) << key << " in " << msg;
  EXPECT_FALSE(testing::contains(msg, "log.every")) << msg;
  EXPECT_FALSE(testing::contains(msg, "checkpoint.every")) << msg;
  EXPECT_TRUE(testing::contains(msg, "0.0003 in the checkpoint, 0.001 now")) << msg;
  EXPECT_TRUE(testing::contains(msg, "allow_config_change")) << msg;

  // Allowed keys are not reported; allowing all of them resumes.
  changed.train.micro_batch = c.train.micro_batch;
  changed.checkpoint.allow_config_change = {"optim", "data.seed"};
  const std::string rest = testing::error_message([&] { Trainer t(changed); });
  EXPECT_FALSE(testing::contains(rest, "optim.lr")) << rest;
  EXPECT_TRUE(testing::contains(rest, "lora.rank_attention")) << rest;
  changed.model.lora.rank_attention = c.model.lora.rank_attention;
  changed.checkpoint.allow_config_change = {"optim", "data.seed", "train.steps"};
  EXPECT_EQ(Trainer(changed).run(2).first_step, 5);

  // A constant schedule may be lengthened.
  const fs::path dir2 = fresh("config_constant");
  RunConfig k = small_run(dir2.string());
  k.optim.schedule = "constant";
  Trainer(k).run(4);
  k.train.steps = 30;
  EXPECT_EQ(Trainer(k).run(1).first_step, 5);
}

TEST(ResumeSafety, ShardsOfAnotherTokenizerAreRefused) {
  RunConfig c = small_run(fresh("tokenizer").string());
  c.data.tokenizer = "models/llama/tokenizer.model";
  const std::string msg = testing::error_message([&] { Trainer t(c); });
  EXPECT_TRUE(testing::contains(msg, "'byte'")) << msg;
  EXPECT_TRUE(testing::contains(msg, "sentencepiece:tokenizer.model")) << msg;
}

TEST(MetricsLog, ResumeCutsOnlyLaterLinesAndAPartialLine) {
  const std::string lines =
      "{\"step\":2,\"loss\":1}\n"
      "not json, kept\n"
      "{\"step\":4,\"val_loss\":1}\n"
      "{\"step\":6,\"loss\":1}\n"
      "{\"step\":8,\"lo";
  EXPECT_EQ(metrics_keep_length(lines, 4), lines.find("{\"step\":6"));
  EXPECT_EQ(metrics_keep_length(lines, 100), lines.find("{\"step\":8"));
  EXPECT_EQ(metrics_keep_length("", 3), 0);

  const fs::path dir = fresh("metrics");
  fs::create_directories(dir);
  const fs::path path = dir / "metrics.jsonl";
  std::ofstream(path) << lines;
  {
    MetricsLog log;
    log.open(path.string(), 4);
    log.append({{"step", 5}});
  }
  EXPECT_EQ(read_all(path), lines.substr(0, lines.find("{\"step\":6")) + "{\"step\":5}\n");
}

}  // namespace
}  // namespace rrt
