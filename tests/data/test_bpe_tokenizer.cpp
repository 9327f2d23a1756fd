// Byte-level BPE: parity with transformers on SmolLM2's vocabulary (tests/fixtures/
// smollm2_tokenizer.gguf and bpe_parity.json, from tools/make_bpe_fixtures.py), with the
// tokenizers library on Llama 3 and Qwen2 style vocabularies in GGUF, round trips of any bytes,
// and the rules themselves on a hand-made vocabulary.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "data/bpe_tokenizer.h"
#include "data/prepare.h"
#include "data/shard.h"
#include "tests/data/data_test_util.h"

namespace rrt {
namespace {

using test::contains;
using test::error_message;

const std::string kGguf = std::string(RRT_FIXTURE_DIR) + "/smollm2_tokenizer.gguf";
const std::string kParity = std::string(RRT_FIXTURE_DIR) + "/bpe_parity.json";

const nlohmann::json& parity() {
  static const nlohmann::json fixture = [] {
    std::ifstream in(kParity);
    EXPECT_TRUE(in.good()) << kParity;
    return nlohmann::json::parse(in);
  }();
  return fixture;
}

const BpeVocab& smollm_vocab() {
  static const BpeVocab vocab = bpe_vocab_from_gguf(kGguf);
  return vocab;
}

// The text with every occurrence of `part` removed.
std::string without(std::string text, const std::string& part) {
  for (size_t at; (at = text.find(part)) != std::string::npos;) text.erase(at, part.size());
  return text;
}

TEST(BpeTokenizer, ReadsSmolLM2VocabularyFromGguf) {
  const BpeVocab& vocab = smollm_vocab();
  EXPECT_EQ(vocab.model, "gpt2");
  EXPECT_EQ(vocab.pre, "smollm");
  EXPECT_EQ(vocab.tokens.size(), 49152u);
  EXPECT_EQ(vocab.token_types.size(), 49152u);
  EXPECT_EQ(vocab.merges.size(), 48900u);
  EXPECT_EQ(vocab.bos, parity()["bos_id"].get<int32_t>());
  EXPECT_EQ(vocab.eos, parity()["eos_id"].get<int32_t>());
  EXPECT_EQ(vocab.tokens[1], "<|im_start|>");
  EXPECT_EQ(vocab.merges[0], "\xC4\xA0 t");  // "Ġ t"

  const auto tokenizer = make_tokenizer(kGguf);
  EXPECT_EQ(tokenizer->name(), "bpe:smollm2_tokenizer.gguf");
  EXPECT_EQ(tokenizer->vocab_size(), parity()["vocab_size"].get<int64_t>());
  EXPECT_EQ(tokenizer->eos_id(), 2);
  EXPECT_EQ(make_tokenizer("bpe:" + kGguf)->name(), "bpe:smollm2_tokenizer.gguf");
}

// The file's own pre-tokenizer, "smollm": llama.cpp's meaning (numbers split into single
// characters, then the GPT-2 regex), which SmolLM2's tokenizer.json also has.
TEST(BpeTokenizer, SmolLM2MatchesTransformersWithSmolLMPreTokenizer) {
  const auto tokenizer = make_tokenizer(kGguf);
  size_t samples = 0, tokens = 0;
  for (const auto& sample : parity()["samples"]) {
    const std::string text = sample["text"];
    const auto expected = sample["smollm_ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(tokenizer->encode(text), expected) << text;
    ++samples;
    tokens += expected.size();
  }
  EXPECT_GE(samples, 30u);
  EXPECT_GE(tokens, 1000u);
}

// transformers' GGUF loader does not know "smollm" and keeps the plain GPT-2 ByteLevel regex;
// with pre = "gpt2" rrt gives exactly its ids (the two differ on a few samples).
TEST(BpeTokenizer, SmolLM2MatchesTransformersGgufLoaderWithGpt2PreTokenizer) {
  BpeVocab vocab = smollm_vocab();
  vocab.pre = "gpt2";
  const BpeTokenizer tokenizer(std::move(vocab));
  size_t differ = 0;
  for (const auto& sample : parity()["samples"]) {
    const std::string text = sample["text"];
    const auto expected = sample["hf_gguf_ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(tokenizer.encode(text), expected) << text;
    differ += expected != sample["smollm_ids"].get<std::vector<int32_t>>();
  }
  EXPECT_GT(differ, 0u);  // the fixture exercises the difference
}

TEST(BpeTokenizer, SmolLM2DecodeRoundTripsEverySample) {
  const auto tokenizer = make_tokenizer(kGguf);
  const std::string eos_text = smollm_vocab().tokens[tokenizer->eos_id()];
  for (const auto& sample : parity()["samples"]) {
    const std::string text = sample["text"];
    // EOS decodes to nothing, as for every rrt tokenizer; any other text comes back whole.
    EXPECT_EQ(tokenizer->decode(tokenizer->encode(text)), without(text, eos_text)) << text;
    EXPECT_EQ(tokenizer->decode(sample["hf_gguf_ids"].get<std::vector<int32_t>>()),
              without(sample["hf_decoded"].get<std::string>(), eos_text));
  }
}

// The bytes SmolLM2's vocabulary has no token for (transformers drops them too).
std::string without_untokenized_bytes(const std::string& text) {
  const auto& tokens = smollm_vocab().tokens;
  std::string kept;
  for (char c : text) {
    const std::string& spelled = BpeTokenizer::byte_alphabet()[static_cast<unsigned char>(c)];
    if (std::find(tokens.begin(), tokens.end(), spelled) != tokens.end()) kept.push_back(c);
  }
  return kept;
}

TEST(BpeTokenizer, AnyBytesRoundTripExceptBytesWithoutToken) {
  std::vector<int> missing;
  for (int b = 0; b < 256; ++b) {
    if (without_untokenized_bytes(std::string(1, static_cast<char>(b))).empty())
      missing.push_back(b);
  }
  // As transformers reports for this vocabulary (tools/make_bpe_fixtures.py's vocabulary).
  EXPECT_EQ(missing, (std::vector<int>{4,   6,   19,  20,  22,  29,  192, 193, 241, 242, 245,
                                       246, 247, 248, 249, 250, 251, 252, 253, 254, 255}));
  const auto tokenizer = make_tokenizer(kGguf);
  const std::vector<std::string> texts = {
      "",
      std::string("nul\0inside", 10),
      "invalid utf-8: \xFF\xFE \xC3 \xE2\x82 \xF0\x9F\x98 \xC0\xAF \xED\xA0\x80 end",
      "\x80\x81\x82",
      std::string(100000, ' ') + "x" + std::string(70000, '\n'),  // long runs: one piece each
      std::string(50000, '7'),
      "<|im_start|><|im_start|><|im_start",
  };
  for (const auto& text : texts) {
    const std::vector<int32_t> ids = tokenizer->encode(text);
    for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < tokenizer->vocab_size());
    EXPECT_EQ(tokenizer->decode(ids), without_untokenized_bytes(text));
  }
  // Every single byte, between two letters.
  for (int b = 0; b < 256; ++b) {
    std::string text = "a_b";
    text[1] = static_cast<char>(b);
    EXPECT_EQ(tokenizer->decode(tokenizer->encode(text)), without_untokenized_bytes(text)) << b;
  }
}

TEST(BpeTokenizer, EncodesConcurrently) {
  const auto tokenizer = make_tokenizer(kGguf);
  std::string text;
  for (const auto& sample : parity()["samples"]) text += sample["text"].get<std::string>();
  const std::vector<int32_t> expected = tokenizer->encode(text);
  std::vector<std::vector<int32_t>> results(4);
  std::vector<std::thread> threads;
  for (auto& result : results) {
    threads.emplace_back([&] { result = tokenizer->encode(text); });
  }
  for (auto& t : threads) t.join();
  for (const auto& result : results) EXPECT_EQ(result, expected);
}

// `rrt prepare` with a .gguf tokenizer: every document's ids, then EOS, in a shard that names it.
TEST(BpeTokenizer, PrepareWritesShardsWithTheGgufTokenizer) {
  test::TempDir dir;
  const std::string corpus = dir / "corpus.jsonl";
  std::vector<std::string> texts;
  {
    std::ofstream out(corpus);
    for (const auto& sample : parity()["samples"]) {
      const std::string text = sample["text"];
      if (text.empty()) continue;
      texts.push_back(text);
      out << nlohmann::json{{"text", text}}.dump() << "\n";
    }
  }
  PrepareOptions options;
  options.inputs = {corpus};
  options.out_dir = dir / "tokens";
  options.tokenizer = kGguf;
  options.progress = false;
  const PrepareSummary summary = prepare_shards(options);
  EXPECT_EQ(summary.documents, static_cast<int64_t>(texts.size()));
  EXPECT_EQ(summary.dtype, "uint16");

  std::vector<int32_t> expected;
  for (const auto& sample : parity()["samples"]) {
    if (sample["text"].get<std::string>().empty()) continue;
    const auto ids = sample["smollm_ids"].get<std::vector<int32_t>>();
    expected.insert(expected.end(), ids.begin(), ids.end());
    expected.push_back(2);  // EOS
  }
  ShardReader shard(dir / "tokens/shard_00000.h5");
  EXPECT_EQ(shard.info().tokenizer, "bpe:smollm2_tokenizer.gguf");
  EXPECT_EQ(shard.info().vocab_size, 49152);
  EXPECT_EQ(shard.info().eos_id, 2);
  ASSERT_EQ(shard.info().tokens, static_cast<int64_t>(expected.size()));
  std::vector<int32_t> stored(expected.size());
  shard.read(0, static_cast<int64_t>(stored.size()), stored.data());
  EXPECT_EQ(stored, expected);
}

// ---------------------------------------------------------------------------------------------
// A hand-made vocabulary: the 256 byte tokens (id = byte), then `extra`, then an EOS "<eos>".

BpeVocab tiny_vocab(const std::vector<std::string>& extra, const std::vector<std::string>& merges,
                    const std::vector<int32_t>& extra_types = {}) {
  BpeVocab vocab;
  for (const auto& spelled : BpeTokenizer::byte_alphabet()) vocab.tokens.push_back(spelled);
  vocab.token_types.assign(256, static_cast<int32_t>(BpeTokenType::byte));
  for (size_t i = 0; i < extra.size(); ++i) {
    vocab.tokens.push_back(extra[i]);
    vocab.token_types.push_back(
        i < extra_types.size() ? extra_types[i] : static_cast<int32_t>(BpeTokenType::normal));
  }
  vocab.tokens.push_back("<eos>");
  vocab.token_types.push_back(static_cast<int32_t>(BpeTokenType::control));
  vocab.eos = static_cast<int32_t>(vocab.tokens.size()) - 1;
  vocab.merges = merges;
  vocab.pre = "gpt2";
  return vocab;
}

int32_t id_of(const BpeTokenizer& tokenizer, const std::string& spelled) {
  const auto& tokens = tokenizer.vocab().tokens;
  return static_cast<int32_t>(std::find(tokens.begin(), tokens.end(), spelled) - tokens.begin());
}

TEST(BpeTokenizer, ByteAlphabetIsGpt2s) {
  const auto& alphabet = BpeTokenizer::byte_alphabet();
  EXPECT_EQ(alphabet['a'], "a");
  EXPECT_EQ(alphabet[' '], "\xC4\xA0");   // Ġ U+0120
  EXPECT_EQ(alphabet['\n'], "\xC4\x8A");  // Ċ U+010A
  EXPECT_EQ(alphabet[0], "\xC4\x80");     // Ā U+0100
  EXPECT_EQ(alphabet[0xAD], "\xC5\x83");  // soft hyphen is not printable: U+0143
  EXPECT_EQ(alphabet[0xE9], "\xC3\xA9");  // é stays é
}

TEST(BpeTokenizer, MergesApplyByRankNotByPosition) {
  const std::vector<std::string> extra = {"ab", "bc", "abc"};
  const BpeTokenizer bc_first(tiny_vocab(extra, {"b c", "a b", "ab c"}));
  EXPECT_EQ(bc_first.encode("abc"), (std::vector<int32_t>{'a', id_of(bc_first, "bc")}));
  const BpeTokenizer ab_first(tiny_vocab(extra, {"a b", "b c", "ab c"}));
  EXPECT_EQ(ab_first.encode("abc"), (std::vector<int32_t>{id_of(ab_first, "abc")}));
  EXPECT_EQ(ab_first.decode(ab_first.encode("abc")), "abc");
}

TEST(BpeTokenizer, EqualRanksMergeLeftFirst) {
  const BpeTokenizer tokenizer(tiny_vocab({"aa", "aaaa"}, {"a a", "aa aa"}));
  const int32_t aa = id_of(tokenizer, "aa"), aaaa = id_of(tokenizer, "aaaa");
  EXPECT_EQ(tokenizer.encode("aaa"), (std::vector<int32_t>{aa, 'a'}));
  EXPECT_EQ(tokenizer.encode("aaaaa"), (std::vector<int32_t>{aaaa, 'a'}));
  EXPECT_EQ(tokenizer.encode("aaaaaa"), (std::vector<int32_t>{aaaa, aa}));
}

TEST(BpeTokenizer, UnmergedBytesStaySingleByteTokens) {
  const BpeTokenizer tokenizer(tiny_vocab({"\xC4\xA0"
                                           "a"},
                                          {"\xC4\xA0 a"}));  // "Ġa"
  // "é" is two bytes with no merge between them; " a" merges through its spelled form "Ġa".
  EXPECT_EQ(tokenizer.encode("\xC3\xA9 a"), (std::vector<int32_t>{0xC3, 0xA9,
                                                                  id_of(tokenizer,
                                                                        "\xC4\xA0"
                                                                        "a")}));
  EXPECT_EQ(tokenizer.decode(tokenizer.encode("\xC3\xA9 a")), "\xC3\xA9 a");
  // The pre-tokenizer keeps " a" and "x" apart, so no merge crosses the word boundary.
  EXPECT_EQ(tokenizer.encode("x a"), (std::vector<int32_t>{'x', id_of(tokenizer,
                                                                      "\xC4\xA0"
                                                                      "a")}));
}

TEST(BpeTokenizer, SpecialTokensAreCutOutBeforePreTokenization) {
  const auto control = static_cast<int32_t>(BpeTokenType::control);
  const auto user = static_cast<int32_t>(BpeTokenType::user_defined);
  const auto normal = static_cast<int32_t>(BpeTokenType::normal);
  // "<\xE2\x82\xAC>" is "<€>": a control token spelled outside the byte alphabet, never matched.
  const BpeTokenizer tokenizer(tiny_vocab({"<x>", "<xy>", "<u>", "<n>", "<\xE2\x82\xAC>", "ab"},
                                          {"a b"}, {control, control, user, normal, control}));
  const int32_t x = id_of(tokenizer, "<x>"), xy = id_of(tokenizer, "<xy>");
  const int32_t u = id_of(tokenizer, "<u>"), ab = id_of(tokenizer, "ab");
  EXPECT_EQ(tokenizer.encode("ab<x>ab"), (std::vector<int32_t>{ab, x, ab}));
  EXPECT_EQ(tokenizer.encode("<xy><x><u>"), (std::vector<int32_t>{xy, x, u}));  // longest first
  EXPECT_EQ(tokenizer.encode("a<x>b"), (std::vector<int32_t>{'a', x, 'b'}));    // no merge across
  EXPECT_EQ(tokenizer.encode("<n>"), (std::vector<int32_t>{'<', 'n', '>'}));    // normal: bytes
  EXPECT_EQ(tokenizer.encode("<x"), (std::vector<int32_t>{'<', 'x'}));
  EXPECT_EQ(tokenizer.encode("<\xE2\x82\xAC>").size(), 5u);
  // Control tokens decode to their text (so text holding them round-trips), EOS to nothing.
  EXPECT_EQ(tokenizer.decode({x, 'a', u, tokenizer.eos_id(), xy}), "<x>a<u><xy>");
  EXPECT_EQ(tokenizer.encode("<eos>"), (std::vector<int32_t>{tokenizer.eos_id()}));
  EXPECT_EQ(tokenizer.decode(tokenizer.encode("a<eos>b")), "ab");
}

TEST(BpeTokenizer, SmolLMPreTokenizerSplitsDigits) {
  BpeVocab vocab = tiny_vocab({"12",
                               "\xC4\xA0"
                               "1",
                               "\xC4\xA0\xC4\xA0"},
                              {"1 2", "\xC4\xA0 1", "\xC4\xA0 \xC4\xA0"});
  const BpeTokenizer gpt2(vocab);
  vocab.pre = "smollm";
  const BpeTokenizer smollm(vocab);
  const int32_t twelve = id_of(gpt2, "12"), space_one = id_of(gpt2,
                                                              "\xC4\xA0"
                                                              "1");
  const int32_t two_spaces = id_of(gpt2, "\xC4\xA0\xC4\xA0");
  EXPECT_EQ(gpt2.encode("12"), (std::vector<int32_t>{twelve}));
  EXPECT_EQ(smollm.encode("12"), (std::vector<int32_t>{'1', '2'}));
  // GPT-2: "a", " ", " 1"; smollm: "a", "  ", "1".
  EXPECT_EQ(gpt2.encode("a  1"), (std::vector<int32_t>{'a', ' ', space_one}));
  EXPECT_EQ(smollm.encode("a  1"), (std::vector<int32_t>{'a', two_spaces, '1'}));
  EXPECT_EQ(smollm.decode(smollm.encode("a  12 \xD9\xA3")), "a  12 \xD9\xA3");  // Arabic-Indic 3
}

// ---------------------------------------------------------------------------------------------
// Llama 3 and Qwen2 vocabularies in GGUF (llama.cpp's pre "llama-bpe" and "qwen2"): the
// tokenizer.json fixtures of those styles written to GGUF (tools/make_gguf_fixtures.py) encode
// every sample as the `tokenizers` library encoded it from the tokenizer.json: Llama 3's regex
// with whole-token pieces kept (ignore_merges), Qwen2's with NFC first (one sample is not NFC),
// special and added tokens cut out whole.

class GgufStyleParity : public ::testing::TestWithParam<std::string> {};

TEST_P(GgufStyleParity, EncodesAsTheTokenizersLibrary) {
  const std::string style = GetParam();
  const std::string dir = std::string(RRT_FIXTURE_DIR);
  std::ifstream in(dir + "/tokenizer_json/expected.json");
  const nlohmann::json fixture = nlohmann::json::parse(in);
  const nlohmann::json& want = fixture["styles"][style];
  ASSERT_FALSE(want.is_null()) << style;
  const BpeTokenizer tokenizer(bpe_vocab_from_gguf(dir + "/gguf/tokenizer_" + style + ".gguf"));
  EXPECT_EQ(tokenizer.vocab_size(), want["vocab_size"].get<int64_t>());
  int samples = 0;
  for (const auto& sample : want["samples"]) {
    const std::string text = sample["text"];
    EXPECT_EQ(tokenizer.encode(text), sample["ids"].get<std::vector<int32_t>>()) << text;
    ++samples;
  }
  EXPECT_GE(samples, 10);
}

INSTANTIATE_TEST_SUITE_P(Styles, GgufStyleParity, ::testing::Values("llama3", "qwen2"));

TEST(BpeTokenizer, Llama3StyleNeedsIgnoreMergesAndQwen2StyleNeedsNfc) {
  // The two rules have teeth: read with a plain regex-only spec, some sample encodes otherwise.
  const std::string dir = std::string(RRT_FIXTURE_DIR);
  std::ifstream in(dir + "/tokenizer_json/expected.json");
  const nlohmann::json styles = nlohmann::json::parse(in)["styles"];
  for (const auto& [style, other_pre] :
       {std::pair<std::string, std::string>{"llama3", "qwen2"}, {"qwen2", "llama-bpe"}}) {
    SCOPED_TRACE(style);
    BpeVocab vocab = bpe_vocab_from_gguf(dir + "/gguf/tokenizer_" + style + ".gguf");
    vocab.pre = other_pre;
    const BpeTokenizer tokenizer(vocab);
    int differ = 0;
    for (const auto& sample : styles[style]["samples"])
      differ += tokenizer.encode(sample["text"].get<std::string>()) !=
                sample["ids"].get<std::vector<int32_t>>();
    EXPECT_GT(differ, 0);
  }
}

// Errors

TEST(BpeTokenizer, RejectsUnknownPreTokenizerListingSupportedOnes) {
  BpeVocab vocab = tiny_vocab({}, {});
  vocab.pre = "deepseek-llm";
  vocab.source = "model.gguf";
  const std::string message = error_message([&] { BpeTokenizer{vocab}; });
  EXPECT_TRUE(contains(message, "[model.gguf]")) << message;
  EXPECT_TRUE(contains(message, "unknown pre-tokenizer 'deepseek-llm'")) << message;
  for (const auto& name : bpe_pre_tokenizers()) EXPECT_TRUE(contains(message, name)) << message;
  EXPECT_TRUE(contains(message, "smollm")) << message;
}

TEST(BpeTokenizer, RejectsMalformedMerges) {
  for (const std::string merge : {"ab", "a  b", " a", "a ", "a b c", ""}) {
    const std::string message = error_message([&] {
      BpeTokenizer{tiny_vocab({"ab"}, {"a b", merge})};
    });
    EXPECT_TRUE(contains(message, "merge 1 '" + merge + "' is not two tokens")) << message;
  }
}

TEST(BpeTokenizer, RejectsMergesOutsideTheVocabulary) {
  std::string message = error_message([&] { BpeTokenizer{tiny_vocab({"ab"}, {"a zz"})}; });
  EXPECT_TRUE(
      contains(message, "merge 0 'a zz' names a token that is not in the vocabulary ('zz')"))
      << message;
  message = error_message([&] { BpeTokenizer{tiny_vocab({"ab"}, {"a b", "b a"})}; });
  EXPECT_TRUE(contains(message, "merge 1 'b a' makes 'ba', which is not in the vocabulary"))
      << message;
}

TEST(BpeTokenizer, BytesWithoutTokenAreDroppedBeforeMerging) {
  BpeVocab vocab = tiny_vocab({"xy"}, {"x y"});
  vocab.tokens['A'] = "A?";  // no token for byte 'A' any more
  const BpeTokenizer tokenizer(vocab);
  EXPECT_EQ(tokenizer.encode("xAy"), (std::vector<int32_t>{id_of(tokenizer, "xy")}));
  EXPECT_EQ(tokenizer.encode("A"), (std::vector<int32_t>{}));
  EXPECT_EQ(tokenizer.decode(tokenizer.encode("xAy A!")), "xy !");
}

TEST(BpeTokenizer, RejectsBrokenVocabularies) {
  BpeVocab vocab = tiny_vocab({}, {});
  vocab.eos = -1;
  EXPECT_TRUE(contains(error_message([&] { BpeTokenizer{vocab}; }), "EOS id -1"));
  vocab.eos = 100000;
  EXPECT_TRUE(contains(error_message([&] { BpeTokenizer{vocab}; }), "EOS id 100000"));

  vocab = tiny_vocab({}, {});
  vocab.model = "llama";
  EXPECT_TRUE(contains(error_message([&] { BpeTokenizer{vocab}; }), "'llama' is not byte-level"));

  vocab = tiny_vocab({}, {});
  vocab.token_types.pop_back();
  EXPECT_TRUE(contains(error_message([&] { BpeTokenizer{vocab}; }), "token types for"));

  const BpeTokenizer tokenizer(tiny_vocab({}, {}));
  EXPECT_TRUE(contains(error_message([&] { tokenizer.decode({257}); }), "id 257 is outside"));
  EXPECT_TRUE(contains(error_message([&] { tokenizer.decode({-1}); }), "id -1 is outside"));
}

TEST(BpeTokenizer, RejectsMissingFilesAndNonGgufFiles) {
  test::TempDir dir;
  std::string message = error_message([&] { make_tokenizer(dir / "absent.gguf"); });
  EXPECT_TRUE(contains(message, "tokenizer GGUF file not found")) << message;
  const std::string not_gguf = dir / "text.gguf";
  std::ofstream(not_gguf) << "this is not a GGUF file at all, just some text";
  message = error_message([&] { make_tokenizer(not_gguf); });
  EXPECT_TRUE(contains(message, not_gguf)) << message;
}

}  // namespace
}  // namespace rrt
