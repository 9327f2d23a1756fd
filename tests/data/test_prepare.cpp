// `prepare`: which files become documents and in what order, JSONL, EOS, shard attributes and
// dtype, several shards, refusal of a used output directory, cleanup after an error.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "data/loader.h"
#include "data/prepare.h"
#include "data/tokenizer.h"
#include "tests/data/data_test_util.h"

namespace rrt {
namespace {

using test::contains;
using test::error_message;
using test::TempDir;
namespace fs = std::filesystem;

// Appends encode(doc) + EOS for each document.
std::vector<int64_t> expected_stream(const Tokenizer& tokenizer,
                                     const std::vector<std::string>& documents) {
  std::vector<int64_t> stream;
  for (const std::string& document : documents) {
    for (int32_t id : tokenizer.encode(document)) stream.push_back(id);
    stream.push_back(tokenizer.eos_id());
  }
  return stream;
}

std::vector<int64_t> concatenated_shards(const fs::path& dir) {
  std::vector<int64_t> stream;
  for (const std::string& shard : test::shard_files(dir)) {
    const std::vector<int64_t> tokens = test::read_raw_tokens(shard);
    stream.insert(stream.end(), tokens.begin(), tokens.end());
  }
  return stream;
}

bool has_temporary_files(const fs::path& dir) {
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().filename().string().find(".tmp") != std::string::npos) return true;
  return false;
}

TEST(DataPrepare, FilesDirectoriesAndJsonlBecomeOneShard) {
  TempDir dir;
  const std::string in = dir / "in";
  test::write_text(in + "/a.txt", "alpha document\nwith two lines\n");
  test::write_text(in + "/sub/b.md", "# beta\n\nmarkdown \xC3\xA9t\xC3\xA9");
  test::write_text(in + "/c", "gamma, no extension");
  // Binary (a NUL byte), so skipped and reported; a text file is never skipped for its name.
  test::write_text(in + "/d.bin", std::string("skipped: \0 binary", 17));
  test::write_text(in + "/.hidden.txt", "skipped: hidden");
  test::write_text(in + "/.git/config", "skipped: hidden directory");
  test::write_text(in + "/e.jsonl",
                   "{\"text\": \"first json line\", \"source\": \"x\"}\n"
                   "\n"
                   "{\"text\": \"second \\u00e9 \\n line\"}\n"
                   "{\"text\": \"\"}\n"
                   "  \r\n"
                   "{\"text\": \"third\"}");
  test::write_text(dir / "explicit.dat", "named explicitly, any extension");
  test::write_text(in + "/empty.txt", "");

  PrepareOptions options;
  options.inputs = {in, dir / "explicit.dat"};
  options.out_dir = dir / "out";
  options.progress = false;
  options.skip_bad = true;  // the two empty documents are skipped and counted
  const PrepareSummary summary = prepare_shards(options);

  // Directory order is sorted by path: a.txt, c, e.jsonl (3 documents), empty.txt (skipped),
  // sub/b.md; then the explicit file.
  EXPECT_EQ(summary.skipped_documents.at("empty document"), 2);
  EXPECT_EQ(summary.skipped_files, 3);  // d.bin, .hidden.txt, .git
  const std::vector<std::string> documents = {"alpha document\nwith two lines\n",
                                              "gamma, no extension",
                                              "first json line",
                                              "second \xC3\xA9 \n line",
                                              "third",
                                              "# beta\n\nmarkdown \xC3\xA9t\xC3\xA9",
                                              "named explicitly, any extension"};
  ByteTokenizer tokenizer;
  const std::vector<int64_t> expected = expected_stream(tokenizer, documents);
  EXPECT_EQ(summary.documents, 7);
  EXPECT_EQ(summary.tokens, static_cast<int64_t>(expected.size()));
  EXPECT_EQ(summary.shards, 1);
  EXPECT_EQ(summary.dtype, "uint16");

  const std::vector<std::string> shards = test::shard_files(options.out_dir);
  ASSERT_EQ(shards.size(), 1u);
  EXPECT_EQ(fs::path(shards[0]).filename(), "shard_00000.h5");
  EXPECT_FALSE(has_temporary_files(options.out_dir));
  EXPECT_TRUE(test::raw_dtype_is(shards[0], H5T_STD_U16LE));
  EXPECT_EQ(test::read_raw_tokens(shards[0]), expected);
  EXPECT_EQ(test::read_raw_string_attribute(shards[0], "format"), "rrt-tokens");
  EXPECT_EQ(test::read_raw_int_attribute(shards[0], "format_version"), 1);
  EXPECT_EQ(test::read_raw_string_attribute(shards[0], "tokenizer"), "byte");
  EXPECT_EQ(test::read_raw_int_attribute(shards[0], "vocab_size"), 257);
  EXPECT_EQ(test::read_raw_int_attribute(shards[0], "eos_id"), 256);
  EXPECT_EQ(test::read_raw_int_attribute(shards[0], "documents"), 7);
  EXPECT_EQ(test::read_raw_int_attribute(shards[0], "tokens"),
            static_cast<int64_t>(expected.size()));
  EXPECT_EQ(std::count(expected.begin(), expected.end(), 256), 7);

  const ShardInfo info = read_shard_info(shards[0]);
  EXPECT_EQ(info.dtype, "uint16");
  EXPECT_EQ(info.documents, 7);
}

TEST(DataPrepare, SentencePieceShardsHoldEncodedDocumentsAndEos) {
  TempDir dir;
  const std::string model = test::train_sentencepiece(dir);
  std::string jsonl;
  std::vector<std::string> documents;
  for (const char* sentence : test::kSentences) {
    jsonl += std::string("{\"text\": \"") + sentence + "\"}\n";
    documents.push_back(sentence);
  }
  test::write_text(dir / "in/docs.jsonl", jsonl);
  PrepareOptions options;
  options.inputs = {dir / "in"};
  options.out_dir = dir / "out";
  options.tokenizer = model;
  options.progress = false;
  const PrepareSummary summary = prepare_shards(options);

  const auto tokenizer = make_tokenizer(model);
  const std::vector<int64_t> expected = expected_stream(*tokenizer, documents);
  EXPECT_EQ(summary.documents, 5);
  EXPECT_EQ(summary.tokens, static_cast<int64_t>(expected.size()));
  EXPECT_EQ(summary.dtype, "uint16");
  EXPECT_EQ(concatenated_shards(options.out_dir), expected);
  const std::string shard = test::shard_files(options.out_dir).at(0);
  EXPECT_EQ(test::read_raw_string_attribute(shard, "tokenizer"), "sentencepiece:m.model");
  EXPECT_EQ(test::read_raw_int_attribute(shard, "eos_id"), tokenizer->eos_id());
  EXPECT_EQ(test::read_raw_int_attribute(shard, "vocab_size"), tokenizer->vocab_size());
}

TEST(DataPrepare, SmallShardTokensMakesSeveralShardsAndLoaderWindowsCrossThem) {
  TempDir dir;
  std::vector<std::string> documents;
  for (int d = 0; d < 9; ++d) {
    documents.push_back("document " + std::to_string(d) +
                        std::string(static_cast<size_t>(d) * 3, static_cast<char>('a' + d)));
    test::write_text(dir / ("in/doc" + std::to_string(d) + ".txt"), documents.back());
  }
  PrepareOptions options;
  options.inputs = {dir / "in"};
  options.out_dir = dir / "out";
  options.shard_tokens = 10;
  options.progress = false;
  const PrepareSummary summary = prepare_shards(options);

  const std::vector<int64_t> expected = expected_stream(ByteTokenizer(), documents);
  const int64_t total = static_cast<int64_t>(expected.size());
  EXPECT_EQ(summary.tokens, total);
  EXPECT_EQ(summary.shards, (total + 9) / 10);
  const std::vector<std::string> shards = test::shard_files(options.out_dir);
  ASSERT_EQ(static_cast<int64_t>(shards.size()), summary.shards);
  int64_t documents_in_shards = 0;
  for (size_t s = 0; s < shards.size(); ++s) {
    const int64_t tokens = test::read_raw_int_attribute(shards[s], "tokens");
    EXPECT_EQ(tokens, std::min<int64_t>(10, total - 10 * static_cast<int64_t>(s))) << shards[s];
    const std::vector<int64_t> stored = test::read_raw_tokens(shards[s]);
    EXPECT_EQ(static_cast<int64_t>(stored.size()), tokens);
    // `documents` counts the EOS tokens stored in the shard.
    EXPECT_EQ(test::read_raw_int_attribute(shards[s], "documents"),
              std::count(stored.begin(), stored.end(), 256));
    documents_in_shards += test::read_raw_int_attribute(shards[s], "documents");
  }
  EXPECT_EQ(documents_in_shards, 9);
  EXPECT_EQ(concatenated_shards(options.out_dir), expected);

  // Validation reads in order: check every window of 8 tokens (T = 7), most of which cross a
  // shard boundary, against the concatenated stream.
  LoaderOptions loader_options;
  loader_options.path = options.out_dir;
  loader_options.seq_len = 7;
  loader_options.val_fraction = 0.9;
  TokenLoader validation(loader_options, Split::validation);
  const int64_t S = (total - 1) / 7, V = validation.sequences();
  EXPECT_EQ(V, static_cast<int64_t>(std::ceil(0.9 * S - 1e-9)));
  std::vector<int32_t> inputs(7), targets(7);
  for (int64_t k = 0; k < V; ++k) {
    validation.next_batch(1, inputs.data(), targets.data());
    const int64_t start = (S - V + k) * 7;
    for (int64_t t = 0; t < 7; ++t) {
      ASSERT_EQ(inputs[t], expected[start + t]) << "sequence " << S - V + k << " t " << t;
      ASSERT_EQ(targets[t], expected[start + t + 1]) << "sequence " << S - V + k << " t " << t;
    }
  }
}

TEST(DataPrepare, Uint32ForLargeVocabularies) {
  // A tokenizer with 70000 ids: byte b -> 69000 + b, EOS 69999.
  class WideTokenizer final : public Tokenizer {
   public:
    std::vector<int32_t> encode(std::string_view text) const override {
      std::vector<int32_t> ids;
      for (unsigned char c : text) ids.push_back(69000 + c);
      return ids;
    }
    std::string decode(const std::vector<int32_t>&) const override { return ""; }
    int64_t vocab_size() const override { return 70000; }
    int32_t eos_id() const override { return 69999; }
    std::string name() const override { return "wide"; }
  };
  TempDir dir;
  test::write_text(dir / "in/a.txt", "0123456789abcdefghij");
  PrepareOptions options;
  options.inputs = {dir / "in/a.txt"};
  options.out_dir = dir / "out";
  options.progress = false;
  const PrepareSummary summary = prepare_shards(options, WideTokenizer());
  EXPECT_EQ(summary.dtype, "uint32");
  const std::string shard = test::shard_files(options.out_dir).at(0);
  EXPECT_TRUE(test::raw_dtype_is(shard, H5T_STD_U32LE));
  EXPECT_EQ(test::read_raw_string_attribute(shard, "tokenizer"), "wide");
  EXPECT_EQ(test::read_raw_tokens(shard),
            expected_stream(WideTokenizer(), {"0123456789abcdefghij"}));

  LoaderOptions loader_options;
  loader_options.path = options.out_dir;
  loader_options.seq_len = 20;
  loader_options.val_fraction = 0.0;
  TokenLoader loader(loader_options, Split::train);
  EXPECT_EQ(loader.vocab_size(), 70000);
  EXPECT_EQ(loader.eos_id(), 69999);
  EXPECT_EQ(loader.tokenizer(), "wide");
  std::vector<int32_t> inputs(20), targets(20);
  loader.next_batch(1, inputs.data(), targets.data());
  EXPECT_EQ(inputs[0], 69000 + '0');
  EXPECT_EQ(targets[19], 69999);
}

TEST(DataPrepare, RefusesAnOutputDirectoryThatHoldsShards) {
  TempDir dir;
  test::write_text(dir / "in/a.txt", "some text");
  test::write_text(dir / "out/README", "an unrelated file does not block prepare");
  PrepareOptions options;
  options.inputs = {dir / "in"};
  options.out_dir = dir / "out";
  options.progress = false;
  prepare_shards(options);
  const std::string message = error_message([&] { prepare_shards(options); });
  EXPECT_TRUE(contains(message, "[" + options.out_dir + "]")) << message;
  EXPECT_TRUE(contains(message, "already holds")) << message;
  EXPECT_TRUE(contains(message, "shard_00000.h5")) << message;
}

TEST(DataPrepare, InputErrorsNameTheFileAndLeaveNoShards) {
  TempDir dir;
  PrepareOptions options;
  options.out_dir = dir / "out";
  options.progress = false;
  options.shard_tokens = 4;  // the good file fills shards before the bad line is reached

  options.inputs = {dir / "missing.txt"};
  std::string message = error_message([&] { prepare_shards(options); });
  EXPECT_TRUE(contains(message, "[" + options.inputs[0] + "]")) << message;

  test::write_text(dir / "only_bin/x.bin", std::string("bin\0ary", 7));
  options.inputs = {dir / "only_bin"};
  message = error_message([&] { prepare_shards(options); });
  EXPECT_TRUE(contains(message, "no input files")) << message;

  test::write_text(dir / "good.txt", "a good document that fills a few shards");
  test::write_text(dir / "bad.jsonl", "{\"text\": \"fine\"}\n{\"text\": \"broken\"\n");
  options.inputs = {dir / "good.txt", dir / "bad.jsonl"};
  message = error_message([&] { prepare_shards(options); });
  EXPECT_TRUE(contains(message, test::bracketed(dir / "bad.jsonl:2"))) << message;
  EXPECT_TRUE(fs::is_directory(options.out_dir));
  EXPECT_TRUE(test::shard_files(options.out_dir).empty());
  EXPECT_FALSE(has_temporary_files(options.out_dir));

  test::write_text(dir / "no_text.jsonl", "{\"body\": \"no text field\"}\n");
  options.inputs = {dir / "no_text.jsonl"};
  message = error_message([&] { prepare_shards(options); });
  EXPECT_TRUE(contains(message, test::bracketed(dir / "no_text.jsonl:1"))) << message;
  EXPECT_TRUE(contains(message, "\"text\"")) << message;

  options.inputs = {dir / "good.txt"};
  options.tokenizer = dir / "missing.model";
  message = error_message([&] { prepare_shards(options); });
  EXPECT_TRUE(contains(message, "missing.model")) << message;
}

TEST(DataPrepare, ReportsProgressToStderr) {
  TempDir dir;
  test::write_text(dir / "a.txt", "hello");
  PrepareOptions options;
  options.inputs = {dir / "a.txt"};
  options.out_dir = dir / "out";
  ::testing::internal::CaptureStderr();
  prepare_shards(options);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(contains(err, "[prepare] done: 1 documents")) << err;
  EXPECT_TRUE(contains(err, "MB/s")) << err;
}

}  // namespace
}  // namespace rrt
