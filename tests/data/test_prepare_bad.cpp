// Malformed inputs of `rrt prepare`: each class is an error naming the file and line (or row),
// leaving no shard, temporary, journal or marker behind; with skip_bad the bad documents are
// skipped and counted (summary and manifest), except truncated or corrupt files, which are
// always errors.
#include <string>
#include <vector>

#include "data/input_parquet.h"
#include "data/prepare.h"
#include "data/tokenizer.h"
#include "tests/data/prepare_test_util.h"

namespace rrt {
namespace {

using test::contains;
using test::error_message;
using test::TempDir;
namespace fs = std::filesystem;

PrepareOptions options_for(const TempDir& dir, const std::string& input) {
  PrepareOptions options;
  options.inputs = {dir / "good.txt", input};  // a good file first: shards exist before the error
  options.out_dir = dir / "out";
  options.progress = false;
  options.threads = 2;
  options.shard_tokens = 64;
  return options;
}

void expect_error(const TempDir& dir, const std::string& input, const std::string& where,
                  const std::string& what, bool skippable) {
  SCOPED_TRACE(input);
  PrepareOptions options = options_for(dir, input);
  std::string message = error_message([&] { prepare_shards(options); });
  EXPECT_TRUE(contains(message, test::bracketed(where))) << message;
  EXPECT_TRUE(contains(message, what)) << message;
  test::expect_nothing_left(options.out_dir);
  if (skippable) {
    EXPECT_TRUE(contains(message, "--skip-bad")) << message;
  } else {
    options.skip_bad = true;  // a truncated or corrupt file is an error all the same
    message = error_message([&] { prepare_shards(options); });
    EXPECT_TRUE(contains(message, test::bracketed(where))) << message;
    test::expect_nothing_left(options.out_dir);
  }
}

class PrepareBad : public ::testing::Test {
 protected:
  void SetUp() override { test::write_text(dir / "good.txt", std::string(200, 'g')); }
  TempDir dir;
};

TEST_F(PrepareBad, TruncatedAndCorruptCompressedFiles) {
  std::string jsonl;
  for (int i = 0; i < 300; ++i) jsonl += "{\"text\": \"line " + std::to_string(i) + "\"}\n";
  test::write_zstd(dir / "whole.jsonl.zst", jsonl);
  std::string bytes = test::read_bytes(dir / "whole.jsonl.zst");
  test::write_text(dir / "cut.jsonl.zst", bytes.substr(0, bytes.size() / 2));
  expect_error(dir, dir / "cut.jsonl.zst", dir / "cut.jsonl.zst", "truncated zstd stream", false);
  bytes[bytes.size() / 2] ^= 0x55;
  bytes[bytes.size() / 2 + 1] ^= 0x55;
  test::write_text(dir / "flipped.jsonl.zst", bytes);
  {
    // Damaged data may decode to a bad line before the frame's checksum fails: either way the
    // error names the file (and the line), and nothing is left.
    PrepareOptions options = options_for(dir, dir / "flipped.jsonl.zst");
    for (bool skip : {false, true}) {
      options.skip_bad = skip;
      const std::string message = error_message([&] { prepare_shards(options); });
      EXPECT_TRUE(contains(message, "[" + dir / "flipped.jsonl.zst")) << message;
      test::expect_nothing_left(options.out_dir);
    }
  }

  test::write_gzip(dir / "whole.jsonl.gz", jsonl);
  bytes = test::read_bytes(dir / "whole.jsonl.gz");
  test::write_text(dir / "cut.jsonl.gz", bytes.substr(0, bytes.size() - 20));
  expect_error(dir, dir / "cut.jsonl.gz", dir / "cut.jsonl.gz", "truncated gzip stream", false);
  test::write_text(dir / "empty.jsonl.zst", "");
  expect_error(dir, dir / "empty.jsonl.zst", dir / "empty.jsonl.zst", "zstd", false);
}

TEST_F(PrepareBad, JsonLinesWithoutTheFieldOrNotJson) {
  test::write_text(dir / "nofield.jsonl", "{\"text\": \"ok\"}\n\n{\"body\": \"x\"}\n");
  expect_error(dir, dir / "nofield.jsonl", dir / "nofield.jsonl:3", "string field \"text\"", true);
  test::write_text(dir / "null.jsonl", "{\"text\": null}\n");
  expect_error(dir, dir / "null.jsonl", dir / "null.jsonl:1", "string field \"text\"", true);
  test::write_text(dir / "notjson.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"unterminated}\n");
  expect_error(dir, dir / "notjson.jsonl", dir / "notjson.jsonl:2", "not valid JSON", true);
  test::write_text(dir / "array.jsonl", "[\"text\"]\n");
  expect_error(dir, dir / "array.jsonl", dir / "array.jsonl:1", "JSON object", true);
}

TEST_F(PrepareBad, InvalidUtf8AndEmptyDocuments) {
  test::write_text(dir / "utf8.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"caf\xE9\"}\n");
  expect_error(dir, dir / "utf8.jsonl", dir / "utf8.jsonl:2", "invalid UTF-8 at byte 13", true);
  // A text file: its line is named.
  test::write_text(dir / "latin1.txt", "line one\ncaf\xE9\n");
  expect_error(dir, dir / "latin1.txt", dir / "latin1.txt", "invalid UTF-8 at byte 12 (line 2)",
               true);
  test::write_text(dir / "late.txt", std::string(70000, 'a') + "\nb\n\xFF");
  expect_error(dir, dir / "late.txt", dir / "late.txt", "invalid UTF-8 at byte 70003 (line 3)",
               true);
  test::write_zstd(dir / "late.txt.zst", "ok\n\xC3(");
  expect_error(dir, dir / "late.txt.zst", dir / "late.txt.zst", "(line 2)", true);
  test::write_text(dir / "empty.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"\"}\n");
  expect_error(dir, dir / "empty.jsonl", dir / "empty.jsonl:2", "empty", true);
  test::write_text(dir / "empty.txt", "");
  expect_error(dir, dir / "empty.txt", dir / "empty.txt", "empty", true);
}

TEST_F(PrepareBad, ParquetWithoutTheColumnNullsAndTruncation) {
  if (!parquet_supported()) GTEST_SKIP() << "built without Parquet: " << parquet_library();
  write_parquet_texts(dir / "body.parquet", "body", {"x", "y"});
  expect_error(dir, dir / "body.parquet", dir / "body.parquet",
               "has no column \"text\"; its columns are: body (string)", false);
  write_parquet_texts(dir / "nulls.parquet", "text", {"a", "b", std::nullopt, "d"}, 2);
  expect_error(dir, dir / "nulls.parquet", dir / "nulls.parquet: row 2", "is null", true);
  write_parquet_texts(dir / "whole.parquet", "text", {"a", "b", "c"});
  const std::string bytes = test::read_bytes(dir / "whole.parquet");
  test::write_text(dir / "cut.parquet", bytes.substr(0, bytes.size() - 30));
  expect_error(dir, dir / "cut.parquet", dir / "cut.parquet", "Parquet", false);
}

TEST_F(PrepareBad, SkipBadSkipsAndCountsEveryClass) {
  test::write_text(dir / "mixed.jsonl",
                   "{\"text\": \"one\"}\n"
                   "not json\n"
                   "{\"other\": 1}\n"
                   "{\"text\": \"bad \xFF utf8\"}\n"
                   "{\"text\": \"\"}\n"
                   "\n"
                   "{\"text\": \"two\"}\n");
  std::vector<std::string> inputs = {dir / "mixed.jsonl"};
  std::vector<std::string> good = {"one", "two"};
  if (parquet_supported()) {
    write_parquet_texts(dir / "p.parquet", "text", {"three", std::nullopt, "", "four"});
    inputs.push_back(dir / "p.parquet");
    good.push_back("three");
    good.push_back("four");
  }
  PrepareOptions options;
  options.inputs = inputs;
  options.out_dir = dir / "out";
  options.progress = false;
  options.skip_bad = true;
  const PrepareSummary summary = prepare_shards(options);
  EXPECT_EQ(test::concatenated_shards(options.out_dir),
            test::expected_stream(ByteTokenizer(), good));
  const int64_t parquet = parquet_supported() ? 1 : 0;
  const std::map<std::string, int64_t> expected = {{"empty document", 1 + parquet},
                                                   {"invalid JSON", 1},
                                                   {"invalid UTF-8", 1},
                                                   {"missing field", 1 + parquet}};
  EXPECT_EQ(summary.skipped_documents, expected);
  const auto manifest = nlohmann::json::parse(test::read_bytes(options.out_dir + "/manifest.json"));
  EXPECT_EQ(manifest["skipped_documents"]["invalid JSON"], 1);
  EXPECT_EQ(manifest["skipped_examples"][0], dir / "mixed.jsonl:2: invalid JSON");
  EXPECT_EQ(manifest["documents"], good.size());
}

}  // namespace
}  // namespace rrt
