// Tokenizers: the byte tokenizer on UTF-8 and arbitrary bytes, and a SentencePiece model trained
// here (no network, no checked-in model).
#include <sentencepiece_processor.h>

#include <string>
#include <vector>

#include "data/tokenizer.h"
#include "tests/data/data_test_util.h"

namespace rrt {
namespace {

using test::contains;
using test::error_message;
using test::TempDir;

TEST(DataTokenizer, ByteRoundTripsUtf8AndArbitraryBytes) {
  const auto tokenizer = make_tokenizer("byte");
  EXPECT_EQ(tokenizer->name(), "byte");
  EXPECT_EQ(tokenizer->vocab_size(), 257);
  EXPECT_EQ(tokenizer->eos_id(), 256);

  const std::string text =
      "h\xC3\xA9llo, w\xC3\xB6rld \xE2\x80\x94 \xE6\x97\xA5\xE6\x9C\xAC "
      "\xF0\x9F\x99\x82\n\t";
  const std::vector<int32_t> ids = tokenizer->encode(text);
  ASSERT_EQ(ids.size(), text.size());  // one id per byte, not per code point
  EXPECT_EQ(ids[0], 'h');
  EXPECT_EQ(ids[1], 0xC3);
  EXPECT_EQ(ids[2], 0xA9);
  for (int32_t id : ids) EXPECT_TRUE(id >= 0 && id < 256);
  EXPECT_EQ(tokenizer->decode(ids), text);

  // Not UTF-8, with a NUL inside: still every byte round trips.
  const std::string bytes("\xFF\x00\x80zz\xFE", 6);
  EXPECT_EQ(tokenizer->encode(bytes), (std::vector<int32_t>{255, 0, 128, 'z', 'z', 254}));
  EXPECT_EQ(tokenizer->decode(tokenizer->encode(bytes)), bytes);
  EXPECT_TRUE(tokenizer->encode("").empty());
}

TEST(DataTokenizer, ByteDecodeSkipsEosAndRejectsOutOfRange) {
  ByteTokenizer tokenizer;
  EXPECT_EQ(tokenizer.decode({'a', 256, 'b', 256}), "ab");
  EXPECT_TRUE(contains(error_message([&] { tokenizer.decode({'a', 257}); }), "257"));
  EXPECT_TRUE(contains(error_message([&] { tokenizer.decode({-1}); }), "-1"));
}

TEST(DataTokenizer, SentencePieceTrainedHereRoundTrips) {
  TempDir dir;
  const std::string model = test::train_sentencepiece(dir);
  const auto tokenizer = make_tokenizer(model);
  EXPECT_EQ(tokenizer->name(), "sentencepiece:m.model");

  sentencepiece::SentencePieceProcessor reference;
  ASSERT_TRUE(reference.Load(model).ok());
  EXPECT_EQ(tokenizer->vocab_size(), reference.GetPieceSize());
  EXPECT_EQ(tokenizer->eos_id(), reference.eos_id());
  EXPECT_EQ(tokenizer->eos_id(), 2);  // SentencePiece's default: unk 0, bos 1, eos 2
  EXPECT_GT(tokenizer->vocab_size(), 30);

  for (const char* sentence : test::kSentences) {
    const std::vector<int32_t> ids = tokenizer->encode(sentence);
    ASSERT_FALSE(ids.empty());
    EXPECT_LT(ids.size(), std::string(sentence).size());  // merges happened
    for (int32_t id : ids) {
      EXPECT_GE(id, 0);
      EXPECT_LT(id, tokenizer->vocab_size());
      EXPECT_NE(id, tokenizer->eos_id());
    }
    EXPECT_EQ(tokenizer->decode(ids), sentence);
    // EOS decodes to nothing.
    std::vector<int32_t> with_eos = ids;
    with_eos.push_back(tokenizer->eos_id());
    EXPECT_EQ(tokenizer->decode(with_eos), sentence);
  }
  const std::string spaced = "the  lazy   fox";  // identity normalisation keeps the spaces
  EXPECT_EQ(tokenizer->decode(tokenizer->encode(spaced)), spaced);
  EXPECT_TRUE(contains(error_message([&] { tokenizer->decode({100000}); }), "100000"));
}

// An HF model folder stands for the tokenizer.model inside it (rrt prepare --tokenizer HF_DIR).
TEST(DataTokenizer, ModelFolderMeansItsTokenizerModel) {
  TempDir dir;
  const std::string model = test::train_sentencepiece(dir);
  const std::string folder = dir / "hf";
  std::filesystem::create_directories(folder);
  std::filesystem::copy_file(model, folder + "/tokenizer.model");
  const auto from_folder = make_tokenizer(folder);
  EXPECT_EQ(from_folder->name(), "sentencepiece:tokenizer.model");
  EXPECT_EQ(from_folder->encode(test::kSentences[0]), make_tokenizer(model)->encode(test::kSentences[0]));
  std::filesystem::create_directories(dir / "empty");
  const std::string message = error_message([&] { make_tokenizer(dir / "empty"); });
  EXPECT_TRUE(contains(message, "without tokenizer.model")) << message;
}

TEST(DataTokenizer, SentencePieceWithoutEosIsRefused) {
  TempDir dir;
  const std::string model = test::train_sentencepiece(dir, "--eos_id=-1");
  const std::string message = error_message([&] { make_tokenizer(model); });
  EXPECT_TRUE(contains(message, model)) << message;
  EXPECT_TRUE(contains(message, "no EOS")) << message;
}

TEST(DataTokenizer, MissingOrInvalidModelFileIsAClearError) {
  TempDir dir;
  const std::string missing = dir / "nope.model";
  std::string message = error_message([&] { make_tokenizer(missing); });
  EXPECT_TRUE(contains(message, "[" + missing + "]")) << message;
  EXPECT_TRUE(contains(message, "'byte'")) << message;

  const std::string garbage = dir / "garbage.model";
  test::write_text(garbage, "this is not a protobuf");
  message = error_message([&] { make_tokenizer(garbage); });
  EXPECT_TRUE(contains(message, "[" + garbage + "]")) << message;
  EXPECT_TRUE(contains(message, "SentencePiece")) << message;
}

}  // namespace
}  // namespace rrt
