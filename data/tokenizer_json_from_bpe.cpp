// A GGUF byte-level BPE vocabulary written as an HF tokenizer.json (data/tokenizer_json.h).
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/bpe_tokenizer.h"
#include "data/tokenizer_json.h"
#include "data/tokenizer_json_parts.h"
#include "data/tokenizer_json_text.h"

namespace rrt {

namespace {

using nlohmann::json;

// True when every character of `token` is one of GPT-2's byte characters.
bool in_byte_alphabet(const std::string& token) {
  for (size_t pos = 0; pos < token.size(); pos += tokjson::utf8_length(token, pos)) {
    if (tokjson::byte_of_byte_level_char(tokjson::code_point_at(token, pos)) < 0) return false;
  }
  return !token.empty();
}

json byte_level() {
  return {{"type", "ByteLevel"},
          {"add_prefix_space", false},
          {"trim_offsets", true},
          {"use_regex", true}};
}

}  // namespace

std::string tokenizer_json_from_bpe(const BpeVocab& vocab) {
  const std::string where = vocab.source.empty() ? "bpe vocabulary" : vocab.source;
  RRT_CHECK(vocab.model == "gpt2", where, "tokenizer model '", vocab.model,
            "' is not byte-level BPE; only 'gpt2' vocabularies are written as tokenizer.json");
  json pre;
  if (vocab.pre == "gpt2") {
    pre = byte_level();
  } else if (vocab.pre == "smollm" || vocab.pre == "starcoder") {
    pre = {{"type", "Sequence"},
           {"pretokenizers",
            json::array({{{"type", "Digits"}, {"individual_digits", true}}, byte_level()})}};
  } else {
    RRT_FAIL(where, "pre-tokenizer '", vocab.pre, "' has no tokenizer.json spelling in rrt");
  }
  json tokens = json::object();
  json added = json::array();
  for (size_t id = 0; id < vocab.tokens.size(); ++id) {
    const std::string& token = vocab.tokens[id];
    tokens[token] = id;
    const auto type = vocab.token_types.empty() ? BpeTokenType::normal
                                                : static_cast<BpeTokenType>(vocab.token_types[id]);
    // As BpeTokenizer cuts them out of text: control tokens in the byte alphabet (transformers
    // skips the others) and user-defined tokens.
    const bool control = type == BpeTokenType::control && in_byte_alphabet(token);
    if (control || type == BpeTokenType::user_defined) {
      added.push_back({{"id", id},
                       {"content", token},
                       {"single_word", false},
                       {"lstrip", false},
                       {"rstrip", false},
                       {"normalized", false},
                       {"special", control}});
    }
  }
  json merges = json::array();
  for (const std::string& line : vocab.merges) {
    const size_t space = line.find(' ');
    RRT_CHECK(space != std::string::npos, where, "merge '", line, "' has no space");
    merges.push_back({line.substr(0, space), line.substr(space + 1)});
  }
  const json file = {{"version", "1.0"},
                     {"truncation", nullptr},
                     {"padding", nullptr},
                     {"added_tokens", added},
                     {"normalizer", nullptr},
                     {"pre_tokenizer", pre},
                     {"post_processor", nullptr},
                     {"decoder", byte_level()},
                     {"model",
                      {{"type", "BPE"},
                       {"dropout", nullptr},
                       {"unk_token", nullptr},
                       {"continuing_subword_prefix", nullptr},
                       {"end_of_word_suffix", nullptr},
                       {"fuse_unk", false},
                       {"byte_fallback", false},
                       {"ignore_merges", false},
                       {"vocab", tokens},
                       {"merges", merges}}}};
  return file.dump(-1, ' ', false, json::error_handler_t::strict);
}

std::string tokenizer_config_from_bpe(const BpeVocab& vocab) {
  const auto token = [&](int32_t id) -> json {
    if (id < 0 || id >= static_cast<int32_t>(vocab.tokens.size())) return nullptr;
    return vocab.tokens[id];
  };
  const json config = {{"tokenizer_class", "PreTrainedTokenizerFast"},
                       {"bos_token", token(vocab.bos)},
                       {"eos_token", token(vocab.eos)},
                       {"add_bos_token", false},
                       {"clean_up_tokenization_spaces", false}};
  return config.dump(1);
}

}  // namespace rrt
