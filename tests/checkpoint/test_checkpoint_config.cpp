// checkpoint/checkpoint_config.h: a checkpoint records the directory it was written from, and
// its config's relative paths (data.path, data.sources, data.tokenizer, train.init_from,
// distill.teacher) are read from there when they name nothing from the current directory, so
// `rrt generate`/`eval` on a sweep run's checkpoint work from anywhere.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "checkpoint/checkpoint.h"
#include "checkpoint/checkpoint_config.h"
#include "config/config_io.h"

namespace rrt {
namespace {

namespace fs = std::filesystem;

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) /
                       ("rrt_ckpt_config_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return fs::canonical(dir);
}

void touch(const fs::path& p) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << "x";
}

// Runs the test body in `dir` and returns to the previous directory, whatever happens.
struct InDirectory {
  fs::path before = fs::current_path();
  explicit InDirectory(const fs::path& dir) { fs::current_path(dir); }
  ~InDirectory() { fs::current_path(before); }
};

ModelSpec tiny_spec() {
  ModelSpec s;
  s.model = {.n_layers = 4,
             .vocab = 61,
             .d_model = 16,
             .n_heads = 2,
             .n_kv_heads = 1,
             .ffn = 24,
             .max_seq_len = 8};
  s.recursion = {.block_layers = 2, .loops = 2};
  return s;
}

// The run's config as a checkpoint launched in `launch` gives it, read from this directory.
RunConfig resolved_from(const RunConfig& run, const fs::path& launch) {
  return parse_run_config(resolve_launch_relative_paths(to_yaml(run), launch.string()), "test");
}

// A run launched in <root>/launch with every path relative, as `rrt sweep` writes its runs'.
RunConfig relative_run() {
  RunConfig run;
  run.model = tiny_spec();
  run.train.seq_len = 8;
  run.data.path = "data/shards";
  run.data.tokenizer = "bpe:model/tok.gguf";
  run.train.init_from = "init/start.h5";
  run.distill.teacher = "init/teacher.h5";
  return run;
}

TEST(CheckpointConfig, RelativePathsResolveFromTheLaunchDirectory) {
  const fs::path root = fresh_dir("resolve");
  const fs::path launch = root / "launch", elsewhere = root / "elsewhere";
  for (const char* f : {"data/shards", "model/tok.gguf", "init/start.h5", "init/teacher.h5"})
    touch(launch / f);
  fs::create_directories(elsewhere);
  ParameterSet params(tiny_spec());
  params.init({.seed = 1});
  const fs::path ckpt = launch / "run" / "step_00000001.h5";
  fs::create_directories(ckpt.parent_path());
  {
    InDirectory in(launch);
    save_checkpoint(ckpt.string(), to_yaml(relative_run()), params, nullptr, {.step = 1});
  }
  const CheckpointContents header = read_checkpoint_header(ckpt.string());
  EXPECT_EQ(header.launch_dir, launch.string());

  InDirectory in(elsewhere);
  const RunConfig cfg = checkpoint_run_config(header, ckpt.string());
  EXPECT_EQ(cfg.data.path, (launch / "data/shards").string());
  EXPECT_EQ(cfg.data.tokenizer, "bpe:" + (launch / "model/tok.gguf").string());
  EXPECT_EQ(cfg.train.init_from, (launch / "init/start.h5").string());
  EXPECT_EQ(cfg.distill.teacher, (launch / "init/teacher.h5").string());
  // The model and every other field are what was stored.
  RunConfig got, want;  // compared through their YAML: every model field
  got.model = cfg.model;
  want.model = tiny_spec();
  EXPECT_EQ(to_yaml(got), to_yaml(want));
  EXPECT_EQ(cfg.train.seq_len, 8);

  // Overrides are the user's, relative to here: applied after, never rewritten.
  const RunConfig over =
      checkpoint_run_config(header, ckpt.string(), {"data.tokenizer=mine.model"});
  EXPECT_EQ(over.data.tokenizer, "mine.model");
}

TEST(CheckpointConfig, APathThatExistsHereOrNowhereIsKept) {
  const fs::path root = fresh_dir("keep");
  const fs::path launch = root / "launch", here = root / "here";
  touch(launch / "data/shards");
  touch(launch / "model/tok.model");
  touch(here / "data/shards");  // also exists from here: this directory's wins, as before
  RunConfig run = relative_run();
  run.data.tokenizer = "model/tok.model";
  run.train.init_from = "";
  run.distill.teacher = "init/gone.h5";  // exists nowhere: left for its reader to report
  InDirectory in(here);
  const RunConfig cfg = resolved_from(run, launch);
  EXPECT_EQ(cfg.data.path, "data/shards");
  EXPECT_EQ(cfg.data.tokenizer, (launch / "model/tok.model").string());
  EXPECT_EQ(cfg.train.init_from, "");
  EXPECT_EQ(cfg.distill.teacher, "init/gone.h5");
}

TEST(CheckpointConfig, MixtureSourcesResolveToo) {
  const fs::path root = fresh_dir("sources");
  const fs::path launch = root / "launch", here = root / "here";
  touch(launch / "web");
  touch(launch / "code");
  fs::create_directories(here);
  RunConfig run = relative_run();
  run.data.path = "";
  run.data.sources = {{.path = "web", .weight = 3}, {.path = "code"}};
  InDirectory in(here);
  const RunConfig cfg = resolved_from(run, launch);
  ASSERT_EQ(cfg.data.sources.size(), 2u);
  EXPECT_EQ(cfg.data.sources[0].path, (launch / "web").string());
  EXPECT_EQ(cfg.data.sources[0].weight, 3);
  EXPECT_EQ(cfg.data.sources[1].path, (launch / "code").string());
}

TEST(CheckpointConfig, NoLaunchDirectoryLeavesTheTextAlone) {
  const std::string yaml = to_yaml(relative_run());
  EXPECT_EQ(resolve_launch_relative_paths(yaml, ""), yaml);
  // Nothing to resolve: the stored text itself, not a re-emitted copy.
  EXPECT_EQ(resolve_launch_relative_paths(yaml, fresh_dir("none").string()), yaml);
}

}  // namespace
}  // namespace rrt
