// Every way token data can be wrong gives an rrt::Error that names the file and says what to do.
#include <filesystem>
#include <string>
#include <vector>

#include "data/loader.h"
#include "data/prepare.h"
#include "tests/data/data_test_util.h"

namespace rrt {
namespace {

using test::contains;
using test::error_message;
using test::TempDir;
namespace fs = std::filesystem;

LoaderOptions options_for(const std::string& path, int64_t seq_len = 8) {
  LoaderOptions options;
  options.path = path;
  options.seq_len = seq_len;
  options.val_fraction = 0.0;
  return options;
}

std::string loader_error(const std::string& path, int64_t seq_len = 8) {
  return error_message([&] { TokenLoader(options_for(path, seq_len), Split::train); });
}

test::RawShard byte_shard(int64_t n) {
  test::RawShard shard;
  for (int64_t i = 0; i < n; ++i) shard.tokens.push_back(static_cast<uint32_t>('a' + i % 26));
  return shard;
}

TEST(DataErrors, MissingPathAndEmptyDirectory) {
  TempDir dir;
  std::string message = loader_error(dir / "nowhere");
  EXPECT_TRUE(contains(message, "[" + (dir / "nowhere") + "]")) << message;
  EXPECT_TRUE(contains(message, "not found")) << message;

  fs::create_directories(dir / "empty");
  test::write_text(dir / "empty/notes.txt", "not a shard");
  message = loader_error(dir / "empty");
  EXPECT_TRUE(contains(message, "[" + (dir / "empty") + "]")) << message;
  EXPECT_TRUE(contains(message, "no token shards")) << message;
  EXPECT_TRUE(contains(message, "rrt prepare")) << message;
}

TEST(DataErrors, NonHdf5File) {
  TempDir dir;
  test::write_raw_shard(dir / "data/shard_00000.h5", byte_shard(100));
  test::write_text(dir / "data/shard_00001.h5", "plain text pretending to be a shard");
  const std::string message = loader_error(dir / "data");
  EXPECT_TRUE(contains(message, "[" + (dir / "data/shard_00001.h5") + "]")) << message;
  EXPECT_TRUE(contains(message, "not an HDF5 file")) << message;
}

TEST(DataErrors, TruncatedShardFile) {
  TempDir dir;
  test::write_text(dir / "in/a.txt", std::string(50000, 'x'));
  PrepareOptions prepare;
  prepare.inputs = {dir / "in"};
  prepare.out_dir = dir / "data";
  prepare.progress = false;
  prepare_shards(prepare);
  const std::string shard = dir / "data/shard_00000.h5";
  ASSERT_NO_THROW(TokenLoader(options_for(dir / "data"), Split::train));
  fs::resize_file(shard, fs::file_size(shard) / 2);
  const std::string message = loader_error(dir / "data");
  EXPECT_TRUE(contains(message, "[" + shard + "]")) << message;
  EXPECT_TRUE(contains(message, "truncated")) << message;
}

TEST(DataErrors, DatasetShorterThanItsTokensAttribute) {
  TempDir dir;
  test::RawShard shard = byte_shard(50);
  shard.tokens_attribute = 100;
  test::write_raw_shard(dir / "data/shard_00000.h5", shard);
  const std::string message = loader_error(dir / "data");
  EXPECT_TRUE(contains(message, "[" + (dir / "data/shard_00000.h5") + "]")) << message;
  EXPECT_TRUE(contains(message, "holds 50 tokens")) << message;
  EXPECT_TRUE(contains(message, "says 100")) << message;
}

TEST(DataErrors, NotAnRrtShard) {
  TempDir dir;
  test::RawShard no_dataset = byte_shard(10);
  no_dataset.with_dataset = false;
  test::write_raw_shard(dir / "a/x.h5", no_dataset);
  std::string message = loader_error(dir / "a");
  EXPECT_TRUE(contains(message, "[" + (dir / "a/x.h5") + "]")) << message;
  EXPECT_TRUE(contains(message, "/tokens")) << message;

  test::RawShard no_format = byte_shard(10);
  no_format.with_format = false;
  test::write_raw_shard(dir / "b/x.h5", no_format);
  message = loader_error(dir / "b");
  EXPECT_TRUE(contains(message, "[" + (dir / "b/x.h5") + "]")) << message;
  EXPECT_TRUE(contains(message, "lacks the attribute 'format'")) << message;

  test::RawShard other_format = byte_shard(10);
  other_format.format = "something-else";
  test::write_raw_shard(dir / "c/x.h5", other_format);
  message = loader_error(dir / "c");
  EXPECT_TRUE(contains(message, "something-else")) << message;

  test::RawShard newer = byte_shard(10);
  newer.format_version = 2;
  test::write_raw_shard(dir / "d/x.h5", newer);
  message = loader_error(dir / "d");
  EXPECT_TRUE(contains(message, "newer")) << message;
}

TEST(DataErrors, ShardsWithDifferentTokenizers) {
  TempDir dir;
  test::write_raw_shard(dir / "data/shard_00000.h5", byte_shard(100));
  test::RawShard other = byte_shard(100);
  other.vocab_size = 300;
  test::write_raw_shard(dir / "data/shard_00001.h5", other);
  std::string message = loader_error(dir / "data");
  EXPECT_TRUE(contains(message, "[" + (dir / "data/shard_00001.h5") + "]")) << message;
  EXPECT_TRUE(contains(message, "vocab_size 300")) << message;
  EXPECT_TRUE(contains(message, "shard_00000.h5")) << message;

  other.vocab_size = 257;
  other.tokenizer = "sentencepiece:m.model";
  test::write_raw_shard(dir / "data/shard_00001.h5", other);
  message = loader_error(dir / "data");
  EXPECT_TRUE(contains(message, "sentencepiece:m.model")) << message;
}

TEST(DataErrors, TokenOutsideTheVocabulary) {
  TempDir dir;
  test::RawShard shard = byte_shard(20);
  shard.tokens[5] = 300;  // vocab_size is 257
  test::write_raw_shard(dir / "data/shard_00000.h5", shard);
  // T = 19: the one sequence covers every token.
  TokenLoader loader(options_for(dir / "data", 19), Split::train);
  std::vector<int32_t> inputs(19), targets(19);
  const std::string message =
      error_message([&] { loader.next_batch(1, inputs.data(), targets.data()); });
  EXPECT_TRUE(contains(message, "[" + (dir / "data/shard_00000.h5") + "]")) << message;
  EXPECT_TRUE(contains(message, "token id 300 at position 5")) << message;
}

TEST(DataErrors, SeqLenLargerThanTheData) {
  TempDir dir;
  test::write_raw_shard(dir / "data/shard_00000.h5", byte_shard(100));
  const std::string message = loader_error(dir / "data", 100);
  EXPECT_TRUE(contains(message, "[" + (dir / "data") + "]")) << message;
  EXPECT_TRUE(contains(message, "seq_len 100 needs at least 101 tokens")) << message;
}

}  // namespace
}  // namespace rrt
