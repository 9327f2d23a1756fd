// A SentencePiece GGUF vocabulary written as tokenizer.json (tokenizer_json_from_spm, what
// `rrt export --format hf` writes for a model whose data.tokenizer is a Llama 2 / Gemma GGUF),
// read back by TokenizerJson: it encodes and decodes the fixture samples (tests/fixtures/spm_gguf,
// tools/make_spm_gguf_fixtures.py) as SpmTokenizer and the sentencepiece library do, except
// after an added token, where the library prefixes the next stretch of text with its own "▁"
// (as llama.cpp does). tools/check_spm_tokenizer_json.py runs the same file through the
// tokenizers library itself.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "core/gguf.h"
#include "data/spm_tokenizer.h"
#include "data/tokenizer_json.h"
#include "tests/data/data_test_util.h"
#include "tests/data/spm_fixture.h"

namespace rrt {
namespace {

using nlohmann::json;
using test::contains;
using test::error_message;

using namespace test::spm_fixture;  // kDir, kLlama, kGemma, expected(), ids_of

TokenizerJson exported(const SpmVocab& vocab) {
  return TokenizerJson(tokenizer_json_from_spm(vocab), tokenizer_config_from_spm(vocab),
                       "export/tokenizer.json");
}

// What the library gives: the text cut at the added tokens' texts (longest at the leftmost
// position), each stretch between them encoded on its own (its own "▁" prefix).
std::vector<int32_t> per_stretch(const SpmTokenizer& spm, const std::string& text) {
  const std::vector<std::pair<std::string, int32_t>> added = {
      {"<unk>", 0}, {"<s>", 1}, {"</s>", 2}, {"<sep>", 3}};
  std::vector<int32_t> ids;
  size_t start = 0;
  for (size_t pos = 0; pos < text.size(); ++pos) {
    for (const auto& [content, id] : added) {
      if (text.compare(pos, content.size(), content) != 0) continue;
      const auto part = spm.encode(text.substr(start, pos - start));
      ids.insert(ids.end(), part.begin(), part.end());
      ids.push_back(id);
      start = pos + content.size();
      pos = start - 1;
      break;
    }
  }
  const auto part = spm.encode(text.substr(start));
  ids.insert(ids.end(), part.begin(), part.end());
  return ids;
}

bool has_added_token(const std::string& text) {
  for (const char* t : {"<unk>", "<s>", "</s>", "<sep>"})
    if (text.find(t) != std::string::npos) return true;
  return false;
}

// Every sample: the same ids as SpmTokenizer (= the sentencepiece library) when no added token
// is followed by text; the per-stretch ids otherwise. Decoding agrees everywhere.
void expect_as_gguf(const std::string& path, const json& samples, bool prefix) {
  const SpmVocab vocab = spm_vocab_from_gguf(GgufFile(path));
  const SpmTokenizer spm(vocab);
  const TokenizerJson tok = exported(vocab);
  EXPECT_EQ(tok.vocab_size(), spm.vocab_size());
  EXPECT_EQ(tok.eos_id(), spm.eos_id());
  EXPECT_EQ(tok.bos_id(), spm.bos_id());
  size_t same = 0, differ = 0, tokens = 0;
  for (const json& s : samples) {
    const std::string text = s["text"];
    const auto want = s.contains("ids") ? ids_of(s["ids"]) : spm.encode(text);
    ASSERT_EQ(spm.encode(text), want) << text;
    const auto ours = tok.encode(text);
    if (prefix && has_added_token(text) && per_stretch(spm, text) != want) {
      EXPECT_EQ(ours, per_stretch(spm, text)) << path << ": " << text;
      ++differ;
    } else {
      EXPECT_EQ(ours, want) << path << ": " << text;
      ++same;
    }
    EXPECT_EQ(tok.decode(want), spm.decode(want)) << path << ": " << text;
    EXPECT_EQ(tok.decode(want), s["decoded"].get<std::string>()) << path << ": " << text;
    tokens += want.size();
  }
  // With the prefix: "<sep>at the start" and "...symbol<sep>in the middle <sep>".
  EXPECT_EQ(differ, prefix ? 2u : 0u);
  EXPECT_EQ(same + differ, samples.size());
  EXPECT_GE(samples.size(), 20u);
  EXPECT_GE(tokens, 500u);
}

TEST(TokenizerJsonFromSpm, EncodesAndDecodesAsTheGgufTokenizerWithSpacePrefix) {
  expect_as_gguf(kLlama, expected()["samples"], true);
}

TEST(TokenizerJsonFromSpm, EncodesAndDecodesAsTheGgufTokenizerWithoutSpacePrefix) {
  // No "▁" prefix: every stretch is encoded as in the whole text, so no sample differs.
  expect_as_gguf(kGemma, expected()["gemma_samples"], false);
  const SpmVocab vocab = spm_vocab_from_gguf(GgufFile(kGemma));
  const SpmTokenizer spm(vocab);
  const TokenizerJson tok = exported(vocab);
  for (const json& s : expected()["samples"]) {
    const std::string text = s["text"];
    EXPECT_EQ(tok.encode(text), spm.encode(text)) << text;
  }
}

// Control and unknown tokens' texts are those tokens, as in SpmTokenizer; only the "▁" after
// them differs.
TEST(TokenizerJsonFromSpm, ControlAndUnknownTextsAreTheirTokens) {
  const SpmVocab vocab = spm_vocab_from_gguf(GgufFile(kLlama));
  const SpmTokenizer spm(vocab);
  const TokenizerJson tok = exported(vocab);
  for (const json& s : expected()["special_samples"]) {
    const std::string text = s["text"];
    EXPECT_EQ(tok.encode(text), per_stretch(spm, text)) << text;
  }
  EXPECT_EQ(tok.encode("start</s>"), spm.encode("start</s>"));
  // The tokenizers library's own ids for the same file (tools/check_spm_tokenizer_json.py).
  EXPECT_EQ(tok.encode("<sep>at the start"), (std::vector<int32_t>{3, 420, 269, 366, 421}));
  EXPECT_EQ(tok.encode("a <unk> b"), (std::vector<int32_t>{263, 904, 0, 260, 925}));
  EXPECT_EQ(tok.encode("<s>Hello</s>").front(), 1);
}

// Decodings as sentencepiece's, except that the unknown token is special (skipped) where
// sentencepiece spells it " ⁇ ".
TEST(TokenizerJsonFromSpm, DecodesAsSentencePieceButSkipsTheUnknownToken) {
  const SpmVocab vocab = spm_vocab_from_gguf(GgufFile(kLlama));
  const SpmTokenizer spm(vocab);
  const TokenizerJson tok = exported(vocab);
  size_t compared = 0;
  for (const json& c : expected()["decode_cases"]) {
    std::vector<int32_t> ids = ids_of(c["ids"]);
    if (std::find(ids.begin(), ids.end(), vocab.unk) != ids.end()) {
      EXPECT_NE(tok.decode(ids), c["decoded"].get<std::string>()) << c["ids"];
      std::erase(ids, vocab.unk);
      EXPECT_EQ(tok.decode(ids_of(c["ids"])), spm.decode(ids)) << c["ids"];
      continue;
    }
    EXPECT_EQ(tok.decode(ids), c["decoded"].get<std::string>()) << c["ids"];
    ++compared;
  }
  EXPECT_GE(compared, 6u);
  EXPECT_EQ(tok.decode({vocab.unk}, false), "<unk>");
}

TEST(TokenizerJsonFromSpm, WritesLlamaStyleFields) {
  const SpmVocab vocab = spm_vocab_from_gguf(GgufFile(kLlama));
  const json file = json::parse(tokenizer_json_from_spm(vocab));
  const json& model = file["model"];
  EXPECT_EQ(model["type"], "BPE");
  EXPECT_EQ(model["byte_fallback"], true);
  EXPECT_EQ(model["fuse_unk"], true);
  EXPECT_EQ(model["unk_token"], "<unk>");
  EXPECT_EQ(model["vocab"].size(), vocab.tokens.size());
  EXPECT_EQ(model["vocab"]["<0x0A>"], 4 + 0x0A);
  EXPECT_EQ(file["normalizer"]["normalizers"][0]["type"], "Prepend");
  EXPECT_TRUE(file["pre_tokenizer"].is_null());
  EXPECT_EQ(file["decoder"]["decoders"].back()["type"], "Strip");
  // <unk> <s> </s> special, the user-defined <sep> not; none normalized.
  ASSERT_EQ(file["added_tokens"].size(), 4u);
  for (const json& a : file["added_tokens"]) {
    EXPECT_EQ(a["special"], a["content"] != "<sep>") << a;
    EXPECT_EQ(a["normalized"], false) << a;
  }
  // Merges by the merged piece's score, highest first; no byte or control token in them.
  float last = 1e30f;
  for (const json& m : model["merges"]) {
    const std::string merged = m[0].get<std::string>() + m[1].get<std::string>();
    const int32_t id = model["vocab"].at(merged);
    EXPECT_LE(vocab.scores[id], last) << merged;
    last = vocab.scores[id];
    EXPECT_EQ(vocab.token_types[id], 1) << merged;
  }
  EXPECT_GE(model["merges"].size(), 500u);

  // add_bos_token: BOS before the text, as the GGUF says.
  const TokenizerJson tok = exported(vocab);
  const auto with = tok.encode_with_special_tokens("Hello world");
  ASSERT_FALSE(with.empty());
  EXPECT_EQ(with.front(), vocab.bos);
  EXPECT_EQ(std::vector<int32_t>(with.begin() + 1, with.end()), tok.encode("Hello world"));
  const json config = json::parse(tokenizer_config_from_spm(vocab));
  EXPECT_EQ(config["bos_token"], "<s>");
  EXPECT_EQ(config["eos_token"], "</s>");
  EXPECT_EQ(config["unk_token"], "<unk>");
  EXPECT_EQ(config["add_bos_token"], true);

  SpmVocab no_bos = vocab;
  no_bos.add_bos = false;
  EXPECT_TRUE(json::parse(tokenizer_json_from_spm(no_bos))["post_processor"].is_null());
  EXPECT_EQ(exported(no_bos).encode_with_special_tokens("Hello world"), tok.encode("Hello world"));

  const json gemma = json::parse(tokenizer_json_from_spm(spm_vocab_from_gguf(GgufFile(kGemma))));
  EXPECT_EQ(gemma["normalizer"]["normalizers"].size(), 1u);  // Replace only
  EXPECT_EQ(gemma["decoder"]["decoders"].back()["type"], "Fuse");
}

// ---------------------------------------------------------------------------------------------
// The merge order on hand-made vocabularies: <unk> <s> </s>, then the pieces given.

SpmVocab tiny(const std::vector<std::pair<std::string, float>>& pieces) {
  SpmVocab v;
  v.tokens = {"<unk>", "<s>", "</s>"};
  v.scores = {0, 0, 0};
  v.token_types = {2, 3, 3};
  for (const auto& [piece, score] : pieces) {
    v.tokens.push_back(piece);
    v.scores.push_back(score);
    v.token_types.push_back(1);
  }
  v.unk = 0, v.bos = 1, v.eos = 2;
  v.add_space_prefix = false;
  return v;
}

json merges_of(const SpmVocab& v) {
  return json::parse(tokenizer_json_from_spm(v))["model"]["merges"];
}

TEST(TokenizerJsonFromSpm, MergesFollowScoresAsSentencePieceDoes) {
  for (const bool ab_first : {true, false}) {
    const SpmVocab v = tiny({{"a", -9},
                             {"b", -9},
                             {"c", -9},
                             {"ab", ab_first ? -1.f : -2.f},
                             {"bc", ab_first ? -2.f : -1.f}});
    const json want = ab_first ? json::parse(R"([["a","b"],["b","c"]])")
                               : json::parse(R"([["b","c"],["a","b"]])");
    EXPECT_EQ(merges_of(v), want);
    EXPECT_EQ(exported(v).encode("abc"), SpmTokenizer(v).encode("abc"));
    EXPECT_EQ(exported(v).encode("abcab"), SpmTokenizer(v).encode("abcab"));
  }
  // Two splits of one piece: the longer left piece first (transformers' generate_merges).
  const SpmVocab two = tiny({{"a", -9}, {"b", -9}, {"c", -9}, {"ab", -1}, {"bc", -2}, {"abc", -3}});
  EXPECT_EQ(merges_of(two), json::parse(R"([["a","b"],["b","c"],["ab","c"],["a","bc"]])"));
  for (const char* text : {"abc", "abcabc", "bcab", "cabca"})
    EXPECT_EQ(exported(two).encode(text), SpmTokenizer(two).encode(text)) << text;
  // Multi-byte characters split by character, never inside one.
  const SpmVocab utf8 = tiny({{"\xC3\xA9", -9}, {"x", -9}, {"\xC3\xA9x", -1}});
  EXPECT_EQ(merges_of(utf8), json::parse("[[\"\xC3\xA9\",\"x\"]]"));
  // Control tokens make no merges, nor take part in them.
  SpmVocab control = tiny({{"<", -9}, {"s>", -9}, {"<s>x", -9}, {"x", -9}});
  EXPECT_TRUE(merges_of(control).empty());
}

TEST(TokenizerJsonFromSpm, RefusesWhatATokenizerJsonCannotHold) {
  SpmVocab dup = tiny({{"a", -1}, {"a", -2}});
  std::string msg = error_message([&] { tokenizer_json_from_spm(dup); });
  EXPECT_TRUE(contains(msg, "'a' is also token 3")) << msg;
  SpmVocab bad = tiny({{"a\xFF", -1}});
  msg = error_message([&] { tokenizer_json_from_spm(bad); });
  EXPECT_TRUE(contains(msg, "not valid UTF-8")) << msg;
  SpmVocab nan = tiny({{"a", std::nanf("")}});
  msg = error_message([&] { tokenizer_json_from_spm(nan); });
  EXPECT_TRUE(contains(msg, "NaN")) << msg;
}

}  // namespace
}  // namespace rrt
