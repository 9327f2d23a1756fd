// `rrt prepare` inputs: the same documents as .jsonl, .jsonl.zst, .jsonl.gz and Parquet give the
// same token stream; every file is read by its format (name and magic bytes) or refused by
// name; a directory walk reports what it skipped and why and never skips text for its name.
#include <string>
#include <vector>

#include "data/input_format.h"
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

// Documents with the characters JSON must escape, multi-byte UTF-8 and a long one.
std::vector<std::string> sample_documents() {
  std::vector<std::string> documents = {
      "plain ascii",
      "quotes \" and backslash \\ and tab \t and newline \n inside",
      "caf\xC3\xA9 \xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x98\x80",
      std::string(5000, 'x') + " long",
  };
  for (int i = 0; i < 50; ++i) documents.push_back("document number " + std::to_string(i));
  return documents;
}

std::string jsonl_of(const std::vector<std::string>& documents, const std::string& field) {
  std::string text;
  for (const std::string& d : documents)
    text += nlohmann::json({{"id", 1}, {field, d}}).dump() + "\n";
  return text;
}

PrepareOptions options_for(const TempDir& dir, std::vector<std::string> inputs,
                           const std::string& out) {
  PrepareOptions options;
  options.inputs = std::move(inputs);
  options.out_dir = dir / out;
  options.progress = false;
  options.threads = 1;
  return options;
}

TEST(PrepareInputs, JsonlZstdGzipAndParquetGiveTheSameTokens) {
  TempDir dir;
  const std::vector<std::string> documents = sample_documents();
  const std::string jsonl = jsonl_of(documents, "text");
  test::write_text(dir / "docs.jsonl", jsonl);
  test::write_zstd(dir / "docs.jsonl.zst", jsonl);
  test::write_zstd(dir / "frames.jsonl.zst", jsonl, 7);  // several frames, cut mid-line
  test::write_gzip(dir / "docs.jsonl.gz", jsonl);
  test::write_gzip(dir / "members.jsonl.gz", jsonl, 5);
  std::vector<std::string> inputs = {"docs.jsonl", "docs.jsonl.zst", "frames.jsonl.zst",
                                     "docs.jsonl.gz", "members.jsonl.gz"};
  if (parquet_supported()) {
    std::vector<std::optional<std::string>> values(documents.begin(), documents.end());
    write_parquet_texts(dir / "docs.parquet", "text", values, 7);  // 8 row groups
    inputs.push_back("docs.parquet");
  } else {
    std::fprintf(stderr, "this build reads no Parquet (%s): that case is not run\n",
                 parquet_library().c_str());
  }
  const std::vector<int64_t> expected = test::expected_stream(ByteTokenizer(), documents);
  for (const std::string& input : inputs) {
    SCOPED_TRACE(input);
    const PrepareOptions options = options_for(dir, {dir / input}, "out_" + input);
    const PrepareSummary summary = prepare_shards(options);
    EXPECT_EQ(summary.documents, static_cast<int64_t>(documents.size()));
    EXPECT_EQ(test::concatenated_shards(options.out_dir), expected);
    if (input.find(".parquet") == std::string::npos) {
      EXPECT_EQ(summary.text_bytes, static_cast<int64_t>(jsonl.size()));
    }
    const auto manifest =
        nlohmann::json::parse(test::read_bytes(options.out_dir + "/manifest.json"));
    ASSERT_EQ(manifest["inputs"].size(), 1u);
    EXPECT_EQ(manifest["inputs"][0]["path"], dir / input);
    EXPECT_EQ(manifest["inputs"][0]["bytes"], fs::file_size(dir / input));
    char crc[16];
    const std::string bytes = test::read_bytes(dir / input);
    std::snprintf(crc, sizeof(crc), "%08lx",
                  crc32(0, reinterpret_cast<const Bytef*>(bytes.data()), bytes.size()));
    EXPECT_EQ(manifest["inputs"][0]["crc32"], crc);
    EXPECT_EQ(manifest["documents"], documents.size());
  }
}

TEST(PrepareInputs, TextFieldChoosesTheJsonFieldAndTheParquetColumn) {
  TempDir dir;
  const std::vector<std::string> documents = {"first", "second"};
  test::write_zstd(dir / "a.jsonl.zst", jsonl_of(documents, "content"));
  PrepareOptions options = options_for(dir, {dir / "a.jsonl.zst"}, "out");
  options.text_field = "content";
  prepare_shards(options);
  EXPECT_EQ(test::concatenated_shards(options.out_dir),
            test::expected_stream(ByteTokenizer(), documents));

  options.out_dir = dir / "out2";
  options.text_field = "text";
  const std::string message = error_message([&] { prepare_shards(options); });
  EXPECT_TRUE(contains(message, test::bracketed(dir / "a.jsonl.zst:1"))) << message;
  EXPECT_TRUE(contains(message, "\"text\"")) << message;
  EXPECT_TRUE(contains(message, "--text-field")) << message;

  if (!parquet_supported()) return;
  write_parquet_texts(dir / "b.parquet", "content", {"first", "second"});
  options.inputs = {dir / "b.parquet"};
  options.out_dir = dir / "out3";
  options.text_field = "content";
  prepare_shards(options);
  EXPECT_EQ(test::concatenated_shards(options.out_dir),
            test::expected_stream(ByteTokenizer(), documents));
}

TEST(PrepareInputs, CompressedTextIsOneDocumentAndMagicBytesDecide) {
  TempDir dir;
  // A compressed text file is one document; so is one whose name hides its compression.
  test::write_zstd(dir / "a.txt.zst", "zstd text\nwith lines");
  test::write_gzip(dir / "b.md.gz", "gzip text");
  test::write_zstd(dir / "renamed.txt", "compressed, named as text");
  PrepareOptions options =
      options_for(dir, {dir / "a.txt.zst", dir / "b.md.gz", dir / "renamed.txt"}, "out");
  prepare_shards(options);
  EXPECT_EQ(test::concatenated_shards(options.out_dir),
            test::expected_stream(ByteTokenizer(), {"zstd text\nwith lines", "gzip text",
                                                    "compressed, named as text"}));
}

TEST(PrepareInputs, NamesThatContradictTheBytesAreRefusedByName) {
  TempDir dir;
  const PrepareOptions base = options_for(dir, {}, "out");
  struct Case {
    std::string name, content, expected;
  };
  const std::vector<Case> cases = {
      {"plain.jsonl.zst", "{\"text\": \"not compressed\"}\n", "zstd"},
      {"plain.jsonl.gz", "{\"text\": \"not compressed\"}\n", "gzip"},
      {"fake.parquet", "text, not parquet", "PAR1"},
      {"archive.xz",
       std::string("\xFD"
                   "7zXZ\0rest",
                   10),
       "xz-compressed"},
      {"data.bin", std::string("ab\0cd", 5), "NUL byte at offset 2"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    test::write_text(dir / c.name, c.content);
    PrepareOptions options = base;
    options.inputs = {dir / c.name};
    const std::string message = error_message([&] { prepare_shards(options); });
    EXPECT_TRUE(contains(message, test::bracketed(dir / c.name))) << message;
    EXPECT_TRUE(contains(message, c.expected)) << message;
    test::expect_nothing_left(options.out_dir);
  }
}

TEST(PrepareInputs, DirectoryWalkReportsSkipsAndKeepsTextOfAnyName) {
  TempDir dir;
  const std::string in = dir / "in";
  test::write_text(in + "/a_script.py", "print('text of any name is text')");
  test::write_text(in + "/b_table.csv", "a,b\n1,2");
  test::write_text(in + "/c_README", "no extension");
  test::write_zstd(in + "/d.jsonl.zst", "{\"text\": \"compressed jsonl\"}\n");
  for (int i = 0; i < 7; ++i)
    test::write_text(in + "/bin/blob" + std::to_string(i) + ".dat", std::string("x\0y", 3));
  test::write_text(in + "/e.xz", std::string("\xFD"
                                             "7zXZ\0rest",
                                             10));
  test::write_text(in + "/.hidden", "hidden text");
  PrepareOptions options = options_for(dir, {in}, "out");
  options.progress = true;
  ::testing::internal::CaptureStderr();
  const PrepareSummary summary = prepare_shards(options);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(test::concatenated_shards(options.out_dir),
            test::expected_stream(ByteTokenizer(), {"print('text of any name is text')", "a,b\n1,2",
                                                    "no extension", "compressed jsonl"}));
  EXPECT_EQ(summary.skipped_files, 9);
  // One line per reason: the count and the first five names.
  EXPECT_TRUE(contains(err, "skipped 7 file(s): binary (" + in + "/bin/blob0.dat, ")) << err;
  EXPECT_TRUE(contains(err, "blob4.dat, ...)")) << err;
  EXPECT_FALSE(contains(err, "blob5.dat")) << err;
  EXPECT_TRUE(contains(err, "skipped 1 file(s): xz-compressed data")) << err;
  EXPECT_TRUE(contains(err, "skipped 1 file(s): hidden (" + in + "/.hidden)")) << err;
  const auto manifest = nlohmann::json::parse(test::read_bytes(options.out_dir + "/manifest.json"));
  EXPECT_EQ(manifest["skipped_files"].size(), 9u);
  EXPECT_EQ(manifest["inputs"].size(), 4u);
}

TEST(PrepareInputs, AnOutputDirectoryInsideTheInputsIsNotReadBack) {
  TempDir dir;
  test::write_text(dir / "in/a.txt", "first run");
  PrepareOptions options = options_for(dir, {dir / "in"}, "in/tokens");
  prepare_shards(options);
  options.out_dir = dir / "in/tokens2";
  const PrepareSummary summary = prepare_shards(options);
  EXPECT_EQ(summary.documents, 1);  // not the first run's shards and manifest
}

TEST(PrepareInputs, ParquetWithoutArrowIsAnErrorNamingWhatToInstall) {
  if (parquet_supported()) GTEST_SKIP() << "this build reads Parquet (" << parquet_library() << ")";
  TempDir dir;
  test::write_text(dir / "a.parquet", std::string("PAR1\0\0\0\0PAR1", 12));
  const std::string message =
      error_message([&] { prepare_shards(options_for(dir, {dir / "a.parquet"}, "out")); });
  EXPECT_TRUE(contains(message, test::bracketed(dir / "a.parquet"))) << message;
  EXPECT_TRUE(contains(message, "without Parquet support")) << message;
  EXPECT_TRUE(contains(message, "tools/fetch_arrow.sh")) << message;
}

TEST(PrepareInputs, ProgressLinesGiveTokensPerSecondAndEta) {
  TempDir dir;
  std::string jsonl;
  for (int i = 0; i < 9000; ++i) jsonl += "{\"text\": \"document " + std::to_string(i) + "\"}\n";
  test::write_zstd(dir / "a.jsonl.zst", jsonl);
  test::write_text(dir / "b.txt", "second file");
  PrepareOptions options = options_for(dir, {dir / "a.jsonl.zst", dir / "b.txt"}, "out");
  options.progress = true;
  ::setenv("RRT_PROGRESS_SECONDS", "0", 1);  // a line after every batch
  ::testing::internal::CaptureStderr();
  prepare_shards(options);
  const std::string err = ::testing::internal::GetCapturedStderr();
  ::unsetenv("RRT_PROGRESS_SECONDS");
  EXPECT_TRUE(contains(err, "% of ")) << err;
  EXPECT_TRUE(contains(err, "M tokens/s, ETA ")) << err;
  EXPECT_TRUE(contains(err, "[prepare] done: 9001 documents")) << err;
  EXPECT_TRUE(contains(err, "2 thread(s)") || contains(err, "1 thread(s)")) << err;
}

TEST(PrepareInputs, Utf8Validation) {
  EXPECT_EQ(find_invalid_utf8("plain ascii text that is long enough"), -1);
  EXPECT_EQ(find_invalid_utf8("caf\xC3\xA9 \xF0\x9F\x98\x80 \xE4\xB8\xAD"), -1);
  EXPECT_EQ(find_invalid_utf8("ab\xC3"), 2);            // cut short
  EXPECT_EQ(find_invalid_utf8("abcdefgh\x80"), 8);      // a lone continuation byte
  EXPECT_EQ(find_invalid_utf8("\xC0\xAF"), 0);          // overlong
  EXPECT_EQ(find_invalid_utf8("x\xED\xA0\x80"), 1);     // a UTF-16 surrogate
  EXPECT_EQ(find_invalid_utf8("\xF4\x90\x80\x80"), 0);  // above U+10FFFF
  EXPECT_EQ(find_invalid_utf8("\xE0\x80\x80"), 0);      // overlong 3-byte
}

}  // namespace
}  // namespace rrt
