// SentencePiece-style GGUF vocabularies (tokenizer.ggml.model "llama": Llama 2, TinyLlama, the
// Gemmas) through data/spm_tokenizer.h, against the sentencepiece library and transformers'
// GGUF loader on a BPE model trained with byte fallback (tests/fixtures/spm_gguf, from
// tools/make_spm_gguf_fixtures.py), the merge rules on hand-made vocabularies, and the refusals.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "core/gguf.h"
#include "core/gguf_writer.h"
#include "data/bpe_tokenizer.h"
#include "data/spm_tokenizer.h"
#include "tests/data/data_test_util.h"
#include "tests/data/spm_fixture.h"

namespace rrt {
namespace {

using nlohmann::json;
using test::contains;
using test::error_message;

using namespace test::spm_fixture;  // kDir, kLlama, kGemma, expected(), ids_of

TEST(SpmTokenizer, ReadsTheVocabularyFromGguf) {
  const SpmVocab vocab = spm_vocab_from_gguf(GgufFile(kLlama));
  EXPECT_EQ(static_cast<int64_t>(vocab.tokens.size()), expected()["vocab_size"].get<int64_t>());
  EXPECT_EQ(vocab.scores.size(), vocab.tokens.size());
  EXPECT_EQ(vocab.token_types.size(), vocab.tokens.size());
  EXPECT_EQ(vocab.bos, expected()["bos_id"].get<int32_t>());
  EXPECT_EQ(vocab.eos, expected()["eos_id"].get<int32_t>());
  EXPECT_EQ(vocab.unk, expected()["unk_id"].get<int32_t>());
  EXPECT_TRUE(vocab.add_space_prefix);
  EXPECT_EQ(vocab.tokens[4], "<0x00>");  // after <unk> <s> </s> and the user-defined <sep>
  const int32_t user = expected()["user_defined_id"];
  EXPECT_EQ(vocab.token_types[user], static_cast<int32_t>(BpeTokenType::user_defined));

  const SpmVocab gemma = spm_vocab_from_gguf(GgufFile(kGemma));
  EXPECT_FALSE(gemma.add_space_prefix);
  EXPECT_EQ(gemma.pre, "default");

  // Every GGUF tokenizer is "bpe:<file>", so the shards' name needs no look into the file.
  const auto tokenizer = make_tokenizer(kLlama);
  EXPECT_NE(dynamic_cast<const SpmTokenizer*>(tokenizer.get()), nullptr);
  EXPECT_EQ(tokenizer->name(), "bpe:spm_tokenizer.gguf");
  EXPECT_EQ(tokenizer_name_for(kLlama), tokenizer->name());
  EXPECT_EQ(make_tokenizer("bpe:" + kLlama)->name(), tokenizer->name());
  EXPECT_EQ(tokenizer->vocab_size(), expected()["vocab_size"].get<int64_t>());
  EXPECT_EQ(tokenizer->eos_id(), expected()["eos_id"].get<int32_t>());
  EXPECT_EQ(tokenizer->bos_id(), expected()["bos_id"].get<int32_t>());
}

// The sentencepiece library's ids and decodings, with a dummy prefix (Llama 2) and without
// (Gemma): whitespace runs, code, digits, emoji and scripts the vocabulary lacks (byte
// fallback), the user-defined symbol.
void expect_sentencepiece(const std::string& path, const json& samples) {
  const auto tokenizer = make_tokenizer(path);
  size_t tokens = 0, byte_tokens = 0;
  for (const json& s : samples) {
    const std::string text = s["text"];
    const auto want = ids_of(s["ids"]);
    EXPECT_EQ(tokenizer->encode(text), want) << path << ": " << text;
    EXPECT_EQ(tokenizer->decode(want), s["decoded"].get<std::string>()) << path << ": " << text;
    tokens += want.size();
    for (int32_t id : want) byte_tokens += id >= 4 && id < 4 + 256;  // <0x00>..<0xFF>
  }
  EXPECT_GE(samples.size(), 20u);
  EXPECT_GE(tokens, 500u);
  EXPECT_GE(byte_tokens, 30u);  // the samples exercise byte fallback
}

TEST(SpmTokenizer, EncodesAndDecodesAsSentencePieceWithSpacePrefix) {
  expect_sentencepiece(kLlama, expected()["samples"]);
}

TEST(SpmTokenizer, EncodesAndDecodesAsSentencePieceWithoutSpacePrefix) {
  expect_sentencepiece(kGemma, expected()["gemma_samples"]);
}

// transformers' GGUF loader agrees except where its Metaspace pre-tokenizer departs from
// sentencepiece: no prefix before a text that starts with "▁" or a special token, and a prefix
// swallowed by the space that follows it.
TEST(SpmTokenizer, MatchesTransformersGgufLoaderWhereItFollowsSentencePiece) {
  const auto tokenizer = make_tokenizer(kLlama);
  const std::set<std::string> differs = {"  two leading spaces, and three trailing   ", " ",
                                         "<sep>at the start", "\u2581already escaped \u2581\u2581"};
  size_t compared = 0;
  for (const json& s : expected()["samples"]) {
    ASSERT_TRUE(s.contains("hf_ids")) << "transformers could not load the fixture's GGUF";
    const std::string text = s["text"];
    const auto ours = tokenizer->encode(text);
    EXPECT_EQ(ours == ids_of(s["hf_ids"]), differs.count(text) == 0) << text;
    ++compared;
  }
  EXPECT_EQ(compared, expected()["samples"].size());
}

// Control and unknown tokens' texts are cut out as the tokens (llama.cpp's parse_special,
// transformers), the dummy prefix staying the text's (sentencepiece's rule for user-defined
// symbols); the sentencepiece library itself spells them out.
TEST(SpmTokenizer, ControlAndUnknownTextsAreTheirTokens) {
  const auto tokenizer = make_tokenizer(kLlama);
  for (const json& s : expected()["special_samples"]) {
    const std::string text = s["text"];
    const auto ids = tokenizer->encode(text);
    EXPECT_EQ(ids, ids_of(s["ids"])) << text;
    EXPECT_NE(ids, ids_of(s["sentencepiece_ids"])) << text;
    EXPECT_EQ(tokenizer->decode(ids), s["decoded"].get<std::string>()) << text;
  }
  // transformers agrees where the text does not start with the special token.
  const json& specials = expected()["special_samples"];
  EXPECT_EQ(tokenizer->encode(specials[1]["text"].get<std::string>()),
            ids_of(specials[1]["hf_ids"]));
  EXPECT_EQ(tokenizer->encode(specials[2]["text"].get<std::string>()),
            ids_of(specials[2]["hf_ids"]));
}

TEST(SpmTokenizer, DecodesAsSentencePiece) {
  const auto tokenizer = make_tokenizer(kLlama);
  for (const json& c : expected()["decode_cases"]) {
    EXPECT_EQ(tokenizer->decode(ids_of(c["ids"])), c["decoded"].get<std::string>()) << c["ids"];
  }
  const std::string msg =
      error_message([&] { tokenizer->decode({static_cast<int32_t>(tokenizer->vocab_size())}); });
  EXPECT_TRUE(contains(msg, "outside the vocabulary")) << msg;
}

TEST(SpmTokenizer, EmptyTextIsNoTokens) {
  EXPECT_TRUE(make_tokenizer(kLlama)->encode("").empty());
  EXPECT_EQ(make_tokenizer(kLlama)->decode({}), "");
}

// Bytes that are no UTF-8 still encode (each its byte token) and decode to U+FFFD.
TEST(SpmTokenizer, MalformedUtf8FallsBackToBytes) {
  const auto tokenizer = make_tokenizer(kGemma);
  const auto ids = tokenizer->encode("a\xFF\xC3");
  ASSERT_EQ(ids.size(), 3u);
  const auto& tokens = dynamic_cast<const SpmTokenizer&>(*tokenizer).vocab().tokens;
  EXPECT_EQ(tokens.at(ids[1]), "<0xFF>");
  EXPECT_EQ(tokens.at(ids[2]), "<0xC3>");
  EXPECT_EQ(tokenizer->decode(ids), "a\xEF\xBF\xBD\xEF\xBF\xBD");
}

// ---------------------------------------------------------------------------------------------
// The rules on hand-made vocabularies: <unk> <s> </s>, then the pieces given.

SpmVocab tiny(const std::vector<std::pair<std::string, float>>& pieces,
              const std::vector<int32_t>& types = {}) {
  SpmVocab v;
  v.tokens = {"<unk>", "<s>", "</s>"};
  v.scores = {0, 0, 0};
  v.token_types = {2, 3, 3};
  for (size_t i = 0; i < pieces.size(); ++i) {
    v.tokens.push_back(pieces[i].first);
    v.scores.push_back(pieces[i].second);
    v.token_types.push_back(i < types.size() ? types[i] : 1);
  }
  v.unk = 0, v.bos = 1, v.eos = 2;
  v.add_space_prefix = false;
  return v;
}

TEST(SpmTokenizer, HighestScoreMergesFirst) {
  // "abc": ab (-1) beats bc (-2) -> ab c; with the scores swapped, a bc.
  const SpmTokenizer ab(tiny({{"a", -9}, {"b", -9}, {"c", -9}, {"ab", -1}, {"bc", -2}}));
  EXPECT_EQ(ab.encode("abc"), (std::vector<int32_t>{6, 5}));
  const SpmTokenizer bc(tiny({{"a", -9}, {"b", -9}, {"c", -9}, {"ab", -2}, {"bc", -1}}));
  EXPECT_EQ(bc.encode("abc"), (std::vector<int32_t>{3, 7}));
}

TEST(SpmTokenizer, EqualScoresMergeLeftFirst) {
  const SpmTokenizer t(tiny({{"a", -9}, {"aa", -1}}));
  EXPECT_EQ(t.encode("aaa"), (std::vector<int32_t>{4, 3}));
}

TEST(SpmTokenizer, WithoutByteTokensAnUnknownCharacterIsTheUnknownToken) {
  const SpmTokenizer t(tiny({{"a", -9}}));
  EXPECT_EQ(t.encode("a\xC3\xA9"
                     "a"),
            (std::vector<int32_t>{3, 0, 3}));
  EXPECT_EQ(t.decode({3, 0, 3}), "a \xE2\x81\x87 a");
}

TEST(SpmTokenizer, SpacesAreEscapedAndThePrefixIsStrippedOnDecode) {
  SpmVocab v = tiny({{"\xE2\x96\x81", -9},
                     {"a", -9},
                     {"\xE2\x96\x81"
                      "a",
                      -1}});
  v.add_space_prefix = true;
  const SpmTokenizer t(v);
  EXPECT_EQ(t.encode("a a"), (std::vector<int32_t>{5, 5}));
  EXPECT_EQ(t.decode({5, 5}), "a a");
  EXPECT_EQ(t.decode({1, 5, 2}), "a");  // BOS and EOS are nothing; the prefix still goes
  EXPECT_EQ(t.decode({3, 5}), " a");    // only the first piece's leading space goes
}

// An unused piece merges (it may lead to a longer token) but is never output: it splits back
// into the pair that made it, as sentencepiece does.
TEST(SpmTokenizer, UnusedPiecesSplitBack) {
  const SpmTokenizer t(
      tiny({{"a", -9}, {"b", -9}, {"c", -9}, {"ab", -1}, {"abc", -2}}, {1, 1, 1, 5, 1}));
  EXPECT_EQ(t.encode("abc"), (std::vector<int32_t>{7}));
  EXPECT_EQ(t.encode("ab"), (std::vector<int32_t>{3, 4}));
}

TEST(SpmTokenizer, LongestSpecialMatches) {
  SpmVocab v = tiny({{"a", -9}, {"<x>", 0}, {"<x><y>", 0}}, {1, 4, 4});
  const SpmTokenizer t(v);
  EXPECT_EQ(t.encode("a<x><y>a<x>"), (std::vector<int32_t>{3, 5, 3, 4}));
  EXPECT_EQ(t.encode("<s>a</s>"), (std::vector<int32_t>{1, 3, 2}));
  EXPECT_EQ(t.decode({1, 3, 5, 2}), "a<x><y>");
}

TEST(SpmTokenizer, EosDecodesToNothingWhateverItsType) {
  SpmVocab v = tiny({{"a", -9}, {"<end>", 0}});
  v.eos = 4;  // a normal token
  const SpmTokenizer t(v);
  EXPECT_EQ(t.decode({3, 4, 3}), "aa");
}

// ---------------------------------------------------------------------------------------------
// Refusals

GgufValue scalar(GgufType type, uint64_t bits) {
  GgufValue v;
  v.type = type;
  v.bits = bits;
  return v;
}

// A copy of the fixture with its metadata edited by `edit`.
std::string edited(const std::string& tag,
                   const std::function<void(std::map<std::string, GgufValue>&)>& edit) {
  const GgufFile in(kLlama);
  std::map<std::string, GgufValue> metadata = in.metadata();
  edit(metadata);
  GgufWriter w;
  for (const auto& [key, value] : metadata) w.add_value(key, value);
  const std::string path =
      ::testing::TempDir() + "rrt_spm_" + tag + "_" + std::to_string(::getpid()) + ".gguf";
  w.write(path);
  return path;
}

std::string refusal(const std::string& tag,
                    const std::function<void(std::map<std::string, GgufValue>&)>& edit) {
  const std::string path = edited(tag, edit);
  const std::string msg = error_message([&] { make_tokenizer(path); });
  std::remove(path.c_str());
  return msg;
}

TEST(SpmTokenizer, RefusesAVocabularyWithoutScores) {
  const std::string msg = refusal("noscores", [](auto& kv) { kv.erase("tokenizer.ggml.scores"); });
  EXPECT_TRUE(contains(msg, "has no tokenizer.ggml.scores")) << msg;
}

TEST(SpmTokenizer, RefusesScoresThatDoNotMatchTheTokens) {
  const std::string msg = refusal("fewscores", [](auto& kv) {
    GgufValue& scores = kv.at("tokenizer.ggml.scores");
    scores.count -= 1;
    scores.raw.resize(scores.raw.size() - 4);
  });
  EXPECT_TRUE(contains(msg, "scores for")) << msg;
}

TEST(SpmTokenizer, RefusesCollapsedWhitespace) {
  const std::string msg = refusal("extraws", [](auto& kv) {
    kv["tokenizer.ggml.remove_extra_whitespaces"] = scalar(GgufType::boolean, 1);
  });
  EXPECT_TRUE(contains(msg, "remove_extra_whitespaces")) << msg;
}

TEST(SpmTokenizer, RefusesAnEosOutsideTheVocabulary) {
  const std::string msg = refusal(
      "eos", [](auto& kv) { kv["tokenizer.ggml.eos_token_id"] = scalar(GgufType::uint32, 5000); });
  EXPECT_TRUE(contains(msg, "EOS id 5000")) << msg;
}

TEST(SpmTokenizer, RefusesOtherTokenizerModelsByName) {
  const std::string msg = refusal("bert", [](auto& kv) {
    GgufValue model;
    model.type = GgufType::string;
    model.str = "bert";
    kv["tokenizer.ggml.model"] = model;
  });
  EXPECT_TRUE(contains(msg, "tokenizer.ggml.model is 'bert'")) << msg;
  EXPECT_TRUE(contains(msg, "'llama' (SentencePiece)")) << msg;
  // The byte-level reader names the SentencePiece one.
  const std::string bpe = error_message([] { bpe_vocab_from_gguf(kLlama); });
  EXPECT_TRUE(contains(bpe, "tokenizer.ggml.model is 'llama'")) << bpe;
  EXPECT_TRUE(contains(bpe, "SentencePiece")) << bpe;
}

TEST(SpmTokenizer, RefusesNaNScores) {
  SpmVocab v = tiny({{"a", std::nanf("")}});
  const std::string msg = error_message([&] { SpmTokenizer t(v); });
  EXPECT_TRUE(contains(msg, "NaN score")) << msg;
}

}  // namespace
}  // namespace rrt
