// Checkpoints: exact round trip, clear errors for unreadable files, atomic writes that survive
// a full disk (pruning: test_retention.cpp).
#include <gtest/gtest.h>

#include "tests/error_helpers.h"
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "checkpoint/checkpoint.h"
#include "core/error.h"

namespace rrt {
namespace {

namespace fs = std::filesystem;

ModelSpec tiny_spec() {
  ModelSpec s;
  s.model = {.vocab = 61, .d_model = 16, .n_heads = 2, .n_kv_heads = 1, .ffn = 24,
             .max_seq_len = 8};
  s.recursion = {.block_layers = 2, .loops = 2};
  s.lora = {.rank_attention = 2, .rank_mlp = 2};
  return s;
}

// The call must throw an rrt::Error whose message holds `fragment`.
template <typename Fn>
void expect_error_mentions(Fn&& fn, const std::string& fragment) {
  const std::string message = testing::error_message(fn);
  EXPECT_TRUE(testing::contains(message, fragment))
      << "expected '" << fragment << "' in: " << message;
}

fs::path fresh_dir(const std::string& name) {
  fs::path dir = fs::path(::testing::TempDir()) /
               ("rrt_ckpt_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// Whether dir holds a write's temporary (any name: "<file>.tmp.<pid>.<n>").
bool has_temporary(const fs::path& dir) {
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find(".tmp") != std::string::npos) return true;
  return false;
}

TEST(Checkpoint, RoundTripIsExact) {
  const fs::path dir = fresh_dir("roundtrip");
  ParameterSet a(tiny_spec()), b(tiny_spec());
  a.init({.seed = 4, .lora_b_zero = false});
  AdamW opt_a(a, {.lr = 0.01}), opt_b(b, {.lr = 0.01});
  for (int i = 0; i < a.registry().size(); ++i)
    for (int64_t j = 0; j < a.numel(i); ++j) a.grad(i)[j] = 0.001f * static_cast<float>(j % 13);
  opt_a.step();
  opt_a.step();
  const TrainState st{.step = 7, .adam_step = 2, .data_epoch = 1, .data_index = 24,
                      .tokens_seen = 999};
  const std::string path = checkpoint_path(dir.string(), 7);
  save_checkpoint(path, "model:\n  vocab: 61\n", a, &opt_a, st);
  EXPECT_FALSE(has_temporary(dir)) << "the temporary was renamed";

  const CheckpointContents got = load_checkpoint(path, b, &opt_b);
  EXPECT_EQ(got.config_yaml, "model:\n  vocab: 61\n");
  EXPECT_EQ(got.state.step, 7);
  EXPECT_EQ(got.state.data_epoch, 1);
  EXPECT_EQ(got.state.data_index, 24);
  EXPECT_EQ(got.state.tokens_seen, 999);
  EXPECT_EQ(opt_b.steps_taken(), 2);
  for (int i = 0; i < a.registry().size(); ++i) {
    const size_t bytes = a.numel(i) * sizeof(float);
    EXPECT_EQ(std::memcmp(a.value(i), b.value(i), bytes), 0) << a.registry()[i].name;
    EXPECT_EQ(std::memcmp(opt_a.first_moment().view(i).f32(), opt_b.first_moment().view(i).f32(),
                          bytes), 0);
    EXPECT_EQ(std::memcmp(opt_a.second_moment().view(i).f32(),
                          opt_b.second_moment().view(i).f32(), bytes), 0);
  }
  // Weights-only loading needs no optimizer; resuming from a weights-only file is refused.
  save_checkpoint(checkpoint_path(dir.string(), 8), "x", a, nullptr, st);
  EXPECT_NO_THROW(load_checkpoint(checkpoint_path(dir.string(), 8), b, nullptr));
  expect_error_mentions([&] { load_checkpoint(checkpoint_path(dir.string(), 8), b, &opt_b); },
                        "weights only");
}

TEST(Checkpoint, UnreadableFilesGiveClearErrors) {
  const fs::path dir = fresh_dir("unreadable");
  ParameterSet p(tiny_spec());
  p.init({});
  expect_error_mentions([&] { load_checkpoint((dir / "missing.h5").string(), p, nullptr); },
                        "does not exist");
  std::ofstream(dir / "garbage.h5") << "this is not an HDF5 file at all";
  expect_error_mentions([&] { load_checkpoint((dir / "garbage.h5").string(), p, nullptr); },
                        "not an HDF5 file");
  // A truncated copy of a real checkpoint.
  const std::string good = checkpoint_path(dir.string(), 1);
  save_checkpoint(good, "cfg", p, nullptr, {});
  const fs::path cut = dir / "truncated.h5";
  fs::copy_file(good, cut);
  fs::resize_file(cut, fs::file_size(good) / 2);
  expect_error_mentions([&] { load_checkpoint(cut.string(), p, nullptr); }, "truncated.h5");
  // A checkpoint of another model shape names the tensor.
  ModelSpec other = tiny_spec();
  other.lora.rank_mlp = 1;
  ParameterSet q(other);
  expect_error_mentions([&] { load_checkpoint(good, q, nullptr); }, "lora.0.0.gate.A");
}

TEST(Checkpoint, FullDiskDuringWriteKeepsThePreviousCheckpoint) {
  const fs::path dir = fresh_dir("fulldisk");
  ParameterSet p(tiny_spec());
  p.init({.seed = 1});
  const std::string path = checkpoint_path(dir.string(), 5);
  save_checkpoint(path, "first", p, nullptr, {.step = 5});
  const auto size_before = fs::file_size(path);

  // Simulate a disk that fills up: writes past 4 KiB fail with EFBIG (SIGXFSZ ignored). The
  // limit cannot be lifted from inside HDF5's retry, so the failing write runs in a child
  // process, which reports through its exit code: 0 = failed with the expected message.
  p.init({.seed = 2});
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::signal(SIGXFSZ, SIG_IGN);
    rlimit small{};
    getrlimit(RLIMIT_FSIZE, &small);
    small.rlim_cur = 4096;
    setrlimit(RLIMIT_FSIZE, &small);
    int code = 1;  // did not throw
    try {
      save_checkpoint(path, "second", p, nullptr, {.step = 5});
    } catch (const Error& e) {
      code = std::string(e.what()).find("previous checkpoint, if any, is untouched") !=
                     std::string::npos ? 0 : 2;
    }
    std::_Exit(code);  // no exit handlers: HDF5 may still hold the unwritable file
  }
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status)) << "the writer crashed";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: the failed write was not reported, 2: wrong message";
  EXPECT_FALSE(has_temporary(fs::path(path).parent_path())) << "the partial file is cleaned up";
  EXPECT_EQ(fs::file_size(path), size_before);
  EXPECT_EQ(read_checkpoint_header(path).config_yaml, "first");
}

}  // namespace
}  // namespace rrt
