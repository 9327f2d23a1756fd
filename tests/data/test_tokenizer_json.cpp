// HF tokenizer.json: encode and decode equal to the tokenizers library's on a multilingual
// sample with code, digits, whitespace runs and emoji, for a tokenizer of each kind
// (tests/fixtures/tokenizer_json, from tools/make_tokenizer_json_fixtures.py: GPT-2, SmolLM,
// Llama 3 and Qwen2 byte-level BPE, Llama 2 / Metaspace / Gemma SentencePiece-style BPE with
// byte fallback, and SmolLM2's real tokenizer as transformers writes it from its GGUF file);
// how rrt finds it; and an error naming the field for everything it does not implement.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "data/bpe_tokenizer.h"
#include "data/prepare.h"
#include "data/shard.h"
#include "data/tokenizer_json.h"
#include "tests/data/data_test_util.h"

namespace rrt {
namespace {

using nlohmann::json;
using test::contains;
using test::error_message;
using test::TempDir;

const std::string kDir = std::string(RRT_FIXTURE_DIR) + "/tokenizer_json";

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

const json& expected() {
  static const json fixture = json::parse(read(kDir + "/expected.json"));
  return fixture;
}

const std::vector<std::string> kStyles = {
    "gpt2", "smollm", "llama3", "qwen2", "llama2", "metaspace", "gemma", "smollm2",
    // The options no family's file uses: every split behaviour, NFKC / NFD / NFKD, Strip, regex
    // Replace, normalized added tokens, Metaspace always + split, unknown tokens unfused.
    "options_split", "options_split2", "options_metaspace", "options_unknown"};

class TokenizerJsonParity : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerJsonParity, EncodeAndDecodeEqualTheTokenizersLibrary) {
  const std::string style = GetParam();
  const json& want = expected()["styles"][style];
  ASSERT_FALSE(want.is_null()) << style;
  const auto base = make_tokenizer(kDir + "/" + style + "/tokenizer.json");
  const auto* tok = dynamic_cast<const TokenizerJson*>(base.get());
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->name(), "hf:tokenizer.json");
  EXPECT_EQ(tok->vocab_size(), want["vocab_size"].get<int64_t>());
  size_t samples = 0, tokens = 0;
  for (const json& s : want["samples"]) {
    const std::string text = s["text"];
    const auto ids = s["ids"].get<std::vector<int32_t>>();
    const auto with_special = s["ids_with_special_tokens"].get<std::vector<int32_t>>();
    EXPECT_EQ(tok->encode(text), ids) << style << ": " << text;
    EXPECT_EQ(tok->encode_with_special_tokens(text), with_special) << style << ": " << text;
    EXPECT_EQ(tok->decode(with_special), s["decoded"].get<std::string>()) << style << ": " << text;
    EXPECT_EQ(tok->decode(with_special, /*skip_special_tokens=*/false),
              s["decoded_with_special_tokens"].get<std::string>())
        << style << ": " << text;
    ++samples;
    tokens += ids.size();
  }
  EXPECT_GE(samples, 18u);
  EXPECT_GE(tokens, 500u);
}

INSTANTIATE_TEST_SUITE_P(Styles, TokenizerJsonParity, ::testing::ValuesIn(kStyles),
                         [](const auto& info) { return info.param; });

// BOS and EOS: tokenizer_config.json beside the file when it names them, else the template's
// BOS and the conventional EOS names among the added tokens.
TEST(TokenizerJson, BosAndEos) {
  const auto ids = [](const std::string& style) {
    TokenizerJson tok(kDir + "/" + style + "/tokenizer.json");
    return std::pair{tok.bos_id(), tok.eos_id()};
  };
  TokenizerJson llama3(kDir + "/llama3/tokenizer.json");
  EXPECT_EQ(llama3.bos_id(), llama3.token_to_id("<|begin_of_text|>"));
  EXPECT_EQ(llama3.eos_id(), llama3.token_to_id("<|end_of_text|>"));
  EXPECT_GE(llama3.eos_id(), 800);  // after the model's vocabulary, as in Llama 3
  EXPECT_EQ(ids("llama2"), (std::pair{1, 2}));
  EXPECT_EQ(ids("gemma"), (std::pair{1, 2}));
  TokenizerJson qwen2(kDir + "/qwen2/tokenizer.json");
  EXPECT_EQ(qwen2.bos_id(), -1);  // bos_token: null
  EXPECT_EQ(qwen2.eos_id(), qwen2.token_to_id("<|endoftext|>"));
  // No tokenizer_config.json: EOS by name among the added tokens, no template so no BOS.
  EXPECT_EQ(ids("smollm"), (std::pair{-1, 0}));
  // transformers writes SmolLM2's GGUF tokenizer with eos_token <|im_start|>: taken as written.
  const json& config = expected()["styles"]["smollm2"]["transformers_tokenizer_config"];
  TokenizerJson smollm2(kDir + "/smollm2/tokenizer.json");
  EXPECT_EQ(smollm2.eos_id(), smollm2.token_to_id(config["eos_token"].get<std::string>()));
  EXPECT_EQ(smollm2.bos_id(), 1);
}

TEST(TokenizerJson, InvalidUtf8IsReadWithReplacementCharacters) {
  TokenizerJson tok(kDir + "/llama2/tokenizer.json");
  EXPECT_EQ(tok.encode("a\xFF"
                       "b\xE2\x82"),
            tok.encode("a\xEF\xBF\xBD"
                       "b\xEF\xBF\xBD"));
  EXPECT_THROW(tok.decode({static_cast<int32_t>(tok.vocab_size())}), Error);
  EXPECT_THROW(tok.decode({-1}), Error);
}

// A folder holding only tokenizer.json (an HF checkpoint of a byte-level BPE family) is read
// through it; names are what the shards store.
TEST(TokenizerJson, FoundInAFolderAndNamedForShards) {
  TempDir dir;
  std::filesystem::copy_file(kDir + "/qwen2/tokenizer.json", dir.path() / "tokenizer.json");
  EXPECT_EQ(tokenizer_name_for(dir.path().string()), "hf:tokenizer.json");
  EXPECT_EQ(tokenizer_name_for(kDir + "/qwen2/tokenizer.json"), "hf:tokenizer.json");
  const auto tok = make_tokenizer(dir.path().string());
  EXPECT_EQ(tok->name(), "hf:tokenizer.json");
  EXPECT_EQ(tok->vocab_size(), expected()["styles"]["qwen2"]["vocab_size"].get<int64_t>());
  EXPECT_TRUE(contains(error_message([&] { make_tokenizer(dir.path().string() + "/x.json"); }),
                       "not found"));
}

TEST(TokenizerJson, PrepareWritesShardsWithItsVocabulary) {
  TempDir dir;
  const std::string text_path = (dir.path() / "doc.txt").string();
  std::ofstream(text_path)
      << expected()["styles"]["llama3"]["samples"][0]["text"].get<std::string>();
  PrepareOptions options;
  options.inputs = {text_path};
  options.out_dir = (dir.path() / "shards").string();
  options.tokenizer = kDir + "/llama3/tokenizer.json";
  options.progress = false;
  const PrepareSummary summary = prepare_shards(options);
  const auto want = expected()["styles"]["llama3"]["samples"][0]["ids"].get<std::vector<int32_t>>();
  EXPECT_EQ(summary.tokens, static_cast<int64_t>(want.size()) + 1);  // + EOS
  ShardReader shard((dir.path() / "shards" / "shard_00000.h5").string());
  EXPECT_EQ(shard.info().tokenizer, "hf:tokenizer.json");
  EXPECT_EQ(shard.info().vocab_size, 804);
  EXPECT_EQ(shard.info().eos_id, TokenizerJson(options.tokenizer).eos_id());
}

// A GGUF vocabulary written as tokenizer.json (what rrt export writes for a GGUF-converted
// model) encodes as the GGUF tokenizer does, on SmolLM2's vocabulary and the BPE parity samples.
TEST(TokenizerJson, WrittenFromGgufEncodesAsTheGgufTokenizer) {
  const BpeVocab vocab =
      bpe_vocab_from_gguf(std::string(RRT_FIXTURE_DIR) + "/smollm2_tokenizer.gguf");
  const BpeTokenizer gguf(vocab);
  const TokenizerJson tok(tokenizer_json_from_bpe(vocab), tokenizer_config_from_bpe(vocab),
                          "export/tokenizer.json");
  EXPECT_EQ(tok.vocab_size(), gguf.vocab_size());
  EXPECT_EQ(tok.eos_id(), gguf.eos_id());
  EXPECT_EQ(tok.bos_id(), gguf.bos_id());
  const json parity = json::parse(read(std::string(RRT_FIXTURE_DIR) + "/bpe_parity.json"));
  size_t samples = 0;
  for (const json& sample : parity["samples"]) {
    const std::string text = sample["text"];
    const auto ids = gguf.encode(text);
    EXPECT_EQ(tok.encode(text), ids) << text;
    EXPECT_EQ(tok.encode(text), sample["smollm_ids"].get<std::vector<int32_t>>()) << text;
    ++samples;
  }
  EXPECT_GE(samples, 30u);
  BpeVocab other = vocab;
  other.pre = "gpt2";
  EXPECT_EQ(TokenizerJson(tokenizer_json_from_bpe(other), "", "x/tokenizer.json").encode("a  1"),
            BpeTokenizer(other).encode("a  1"));
}

// ---------------------------------------------------------------------------------------------
// Refusals: each names the JSON field.

std::string refusal(const std::function<void(json&)>& edit, const std::string& style = "gpt2") {
  json file = json::parse(read(kDir + "/" + style + "/tokenizer.json"));
  edit(file);
  return error_message([&] { TokenizerJson(file.dump(), "", "edited/tokenizer.json"); });
}

TEST(TokenizerJson, RefusesWhatItDoesNotImplementNamingTheField) {
  struct Case {
    std::function<void(json&)> edit;
    std::string field;
  };
  const std::vector<Case> cases = {
      {[](json& f) { f["model"]["type"] = "Unigram"; }, "model.type"},
      {[](json& f) { f["model"]["dropout"] = 0.1; }, "model.dropout"},
      {[](json& f) { f["model"]["continuing_subword_prefix"] = "##"; },
       "model.continuing_subword_prefix"},
      {[](json& f) { f["model"]["something_new"] = true; }, "model.something_new"},
      {[](json& f) {
         f["normalizer"] = {{"type", "Lowercase"}};
       },
       "normalizer.type"},
      {[](json& f) {
         f["normalizer"] = {{"type", "Sequence"},
                            {"normalizers", {{{"type", "NFC"}}, {{"type", "BertNormalizer"}}}}};
       },
       "normalizer.normalizers[1].type"},
      {[](json& f) {
         f["pre_tokenizer"] = {{"type", "Whitespace"}};
       },
       "pre_tokenizer.type"},
      {[](json& f) { f["pre_tokenizer"]["new_option"] = 1; }, "pre_tokenizer.new_option"},
      {[](json& f) {
         f["pre_tokenizer"] = {{"type", "Split"},
                               {"pattern", {{"Regex", "\\w+"}}},
                               {"behavior", "Isolated"},
                               {"invert", false}};
       },
       "pre_tokenizer.pattern.Regex"},
      {[](json& f) {
         f["pre_tokenizer"] = {{"type", "Split"},
                               {"pattern", {{"String", " "}}},
                               {"behavior", "Sideways"},
                               {"invert", false}};
       },
       "pre_tokenizer.behavior"},
      {[](json& f) {
         f["decoder"] = {{"type", "WordPiece"}, {"prefix", "##"}};
       },
       "decoder.type"},
      {[](json& f) {
         f["post_processor"] = {{"type", "RobertaProcessing"}};
       },
       "post_processor.type"},
      {[](json& f) { f["added_tokens"][0]["lstrip"] = true; }, "added_tokens[0].lstrip"},
      {[](json& f) {
         f["truncation"] = {{"max_length", 512}};
       },
       "truncation"},
      {[](json& f) {
         f["padding"] = {{"pad_id", 0}};
       },
       "padding"},
      {[](json& f) { f["model"]["merges"][0] = "nospace"; }, "model.merges"},
      {[](json& f) {
         f["model"]["merges"][0] = json::array({"\xC4\xA0", "not-a-token"});
       },
       "model.merges"},
      {[](json& f) { f["model"]["unk_token"] = "<nowhere>"; }, "model.unk_token"},
      {[](json& f) { f["future_section"] = json::object(); }, "future_section"},
      // Ids the library would assign otherwise: a model token's content under another id, a
      // new token on a model token's id, a token added twice.
      {[](json& f) { f["added_tokens"][0]["id"] = 5; }, "added_tokens[0].id"},
      {[](json& f) {
         f["added_tokens"].push_back({{"id", 3}, {"content", "<new>"}, {"special", true}});
       },
       "added_tokens[1].id"},
      {[](json& f) { f["added_tokens"].push_back(f["added_tokens"][0]); },
       "added_tokens[1].content"},
  };
  for (const Case& c : cases) {
    const std::string message = refusal(c.edit);
    EXPECT_TRUE(contains(message, c.field)) << "want '" << c.field << "' in: " << message;
  }
  // No EOS anywhere: refused, saying where to name one.
  const std::string no_eos = refusal([](json& f) { f["added_tokens"] = json::array(); });
  EXPECT_TRUE(contains(no_eos, "eos_token")) << no_eos;
  EXPECT_TRUE(contains(error_message([] { TokenizerJson("{not json", "", "x/tokenizer.json"); }),
                       "not valid JSON"));
  // tokenizer_config.json naming a token the file lacks.
  const std::string file = read(kDir + "/gpt2/tokenizer.json");
  const std::string bad_eos = error_message(
      [&] { TokenizerJson(file, R"({"eos_token": "<missing>"})", "x/tokenizer.json"); });
  EXPECT_TRUE(contains(bad_eos, "eos_token") && contains(bad_eos, "<missing>")) << bad_eos;
}

// The rules behind the parity, on hand-made files: merges by rank and ties to the left, byte
// fallback, unknown tokens fused, ignore_merges, Split behaviours.
TEST(TokenizerJson, HandMadeRules) {
  const auto make = [](const json& model, const json& pre = nullptr) {
    json file = {
        {"version", "1.0"},
        {"added_tokens",
         json::array({{{"id", 0}, {"content", "</s>"}, {"special", true}, {"normalized", false}}})},
        {"normalizer", nullptr},
        {"pre_tokenizer", pre},
        {"post_processor", nullptr},
        {"decoder", {{"type", "Fuse"}}},
        {"model", model}};
    return TokenizerJson(file.dump(), "", "hand/tokenizer.json");
  };
  json model = {{"type", "BPE"},
                {"vocab",
                 {{"</s>", 0},
                  {"<unk>", 1},
                  {"a", 2},
                  {"b", 3},
                  {"ab", 4},
                  {"aa", 5},
                  {"<0x63>", 6},
                  {"aab", 7}}},
                {"merges", json::array({"a a", "a b", "aa b"})},
                {"unk_token", "<unk>"},
                {"fuse_unk", true},
                {"byte_fallback", true}};
  const TokenizerJson bpe = make(model);
  EXPECT_EQ(bpe.encode("aab"), (std::vector<int32_t>{7}));     // "a a" first, then "aa b"
  EXPECT_EQ(bpe.encode("aaa"), (std::vector<int32_t>{5, 2}));  // ties go left
  EXPECT_EQ(bpe.encode("c"), (std::vector<int32_t>{6}));       // byte fallback
  EXPECT_EQ(bpe.encode("dde"), (std::vector<int32_t>{1}));     // unknowns fused into one
  EXPECT_EQ(bpe.encode("a</s>b"), (std::vector<int32_t>{2, 0, 3}));
  EXPECT_EQ(bpe.decode({2, 0, 3}), "ab");
  EXPECT_EQ(bpe.decode({2, 0, 3}, false), "a</s>b");
  model["fuse_unk"] = false;
  EXPECT_EQ(make(model).encode("dd"), (std::vector<int32_t>{1, 1}));
  model["merges"] = json::array({"a b"});
  model["ignore_merges"] = true;
  EXPECT_EQ(make(model).encode("aab"), (std::vector<int32_t>{7}));  // a token as it stands
  model["ignore_merges"] = false;
  EXPECT_EQ(make(model).encode("aab"), (std::vector<int32_t>{2, 4}));
  const json split = {{"type", "Split"},
                      {"pattern", {{"String", "b"}}},
                      {"behavior", "MergedWithPrevious"},
                      {"invert", false}};
  EXPECT_EQ(make(model, split).encode("abab"), (std::vector<int32_t>{4, 4}));
  json removed = split;
  removed["behavior"] = "Removed";
  EXPECT_EQ(make(model, removed).encode("abab"), (std::vector<int32_t>{2, 2}));
}

}  // namespace
}  // namespace rrt
