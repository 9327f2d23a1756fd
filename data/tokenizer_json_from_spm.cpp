// A GGUF SentencePiece vocabulary (tokenizer.ggml.model "llama") written as an HF
// tokenizer.json (data/tokenizer_json.h), in the form of Llama 2's own tokenizer.json
// (transformers' LlamaConverter with legacy=true):
//   - normalizer Prepend("▁") (with add_space_prefix) then Replace(" " -> "▁"), no
//     pre-tokenizer: the whole text is one word, prefixed once, as sentencepiece escapes it. The
//     Metaspace pre-tokenizer (prepend_scheme "first") that transformers' GGUF loader writes
//     instead adds no "▁" before a text that starts with a space or "▁" (" " becomes "▁", not
//     sentencepiece's "▁▁"), so plain text would encode differently;
//   - a BPE model with byte fallback whose merges are every split of a token into two tokens,
//     ranked by the merged token's score, highest first (transformers' generate_merges): the
//     library's lowest-rank-first merging is then sentencepiece's highest-score-first;
//   - control, unknown and user-defined tokens as added tokens matched in the raw text
//     (normalized false), control and unknown ones special.
// Where the two still differ: the library normalizes each stretch of text between added tokens
// on its own, so the text after an added token gets a "▁" of its own (as llama.cpp's SPM
// tokenizer does), where sentencepiece prefixes the whole text once; unused pieces stay unused
// tokens where sentencepiece splits them back; the unknown token decodes to nothing (it is
// special) where sentencepiece gives " ⁇ ".
#include <algorithm>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "core/error.h"
#include "data/bpe_tokenizer.h"
#include "data/spm_tokenizer.h"
#include "data/tokenizer_json.h"
#include "data/tokenizer_json_text.h"

namespace rrt {

namespace {

using nlohmann::json;

constexpr const char* kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's space

BpeTokenType type_of(const SpmVocab& vocab, size_t id) {
  if (!vocab.token_types.empty()) return static_cast<BpeTokenType>(vocab.token_types[id]);
  const std::string& t = vocab.tokens[id];
  const bool byte = t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>';
  return byte ? BpeTokenType::byte : BpeTokenType::normal;
}

// What sentencepiece merges into and out of: normal, user-defined and unused pieces.
bool mergeable(BpeTokenType type) {
  return type == BpeTokenType::normal || type == BpeTokenType::user_defined ||
         type == BpeTokenType::unused;
}

json replace(const std::string& from, const std::string& to) {
  return {{"type", "Replace"}, {"pattern", {{"String", from}}}, {"content", to}};
}

// Every split of a mergeable token into two mergeable tokens, in transformers'
// generate_merges(vocab, scores) order: by the merged token's score, highest first, then the
// longer left piece (in characters), then the longer right piece; equal keys keep the order of
// the merged token's id, then the pieces' ids.
json spm_merges(const SpmVocab& vocab, const std::unordered_map<std::string, int32_t>& ids) {
  struct Merge {
    float score;
    size_t left_chars, right_chars;
    int32_t left, right;
  };
  std::vector<Merge> merges;
  std::vector<size_t> cuts;  // byte offsets of a token's characters after the first
  for (size_t id = 0; id < vocab.tokens.size(); ++id) {
    if (!mergeable(type_of(vocab, id))) continue;
    const std::string& token = vocab.tokens[id];
    cuts.clear();
    for (size_t pos = tokjson::utf8_length(token, 0); pos < token.size();
         pos += tokjson::utf8_length(token, pos))
      cuts.push_back(pos);
    std::vector<Merge> local;
    for (size_t k = 0; k < cuts.size(); ++k) {
      const auto l = ids.find(token.substr(0, cuts[k])), r = ids.find(token.substr(cuts[k]));
      if (l == ids.end() || r == ids.end()) continue;
      if (!mergeable(type_of(vocab, l->second)) || !mergeable(type_of(vocab, r->second))) continue;
      local.push_back({vocab.scores[id], k + 1, cuts.size() - k, l->second, r->second});
    }
    std::sort(local.begin(), local.end(), [](const Merge& a, const Merge& b) {
      return std::pair(a.left, a.right) < std::pair(b.left, b.right);
    });
    merges.insert(merges.end(), local.begin(), local.end());
  }
  std::stable_sort(merges.begin(), merges.end(), [](const Merge& a, const Merge& b) {
    if (a.score != b.score) return a.score > b.score;
    if (a.left_chars != b.left_chars) return a.left_chars > b.left_chars;
    return a.right_chars > b.right_chars;
  });
  json out = json::array();
  for (const Merge& m : merges) out.push_back({vocab.tokens[m.left], vocab.tokens[m.right]});
  return out;
}

// TemplateProcessing with BOS before / EOS after each sequence, as the GGUF asks; null when
// it asks for neither.
json post_processor(const SpmVocab& vocab) {
  const bool bos = vocab.add_bos && vocab.bos >= 0, eos = vocab.add_eos && vocab.eos >= 0;
  if (!bos && !eos) return nullptr;
  json specials = json::object();
  const auto special = [&](int32_t id, int type_id) -> json {
    const std::string& name = vocab.tokens[id];
    specials[name] = {{"id", name}, {"ids", {id}}, {"tokens", {name}}};
    return {{"SpecialToken", {{"id", name}, {"type_id", type_id}}}};
  };
  json single = json::array(), pair = json::array();
  for (const auto& [name, type_id] : {std::pair{"A", 0}, std::pair{"B", 1}}) {
    json& seq = type_id == 0 ? single : pair;
    if (type_id == 1) seq = single;  // the pair repeats the single template for B
    if (bos) seq.push_back(special(vocab.bos, type_id));
    seq.push_back({{"Sequence", {{"id", name}, {"type_id", type_id}}}});
    if (eos) seq.push_back(special(vocab.eos, type_id));
  }
  return {{"type", "TemplateProcessing"},
          {"single", single},
          {"pair", pair},
          {"special_tokens", specials}};
}

}  // namespace

std::string tokenizer_json_from_spm(const SpmVocab& vocab) {
  const std::string where = vocab.source.empty() ? "spm vocabulary" : vocab.source;
  const SpmTokenizer check(vocab);  // the same refusals as reading it (sizes, ids, NaN scores)
  std::unordered_map<std::string, int32_t> ids;
  json tokens = json::object();
  json added = json::array();
  bool byte_fallback = false;
  for (size_t id = 0; id < vocab.tokens.size(); ++id) {
    const std::string& token = vocab.tokens[id];
    RRT_CHECK(tokjson::valid_utf8(token), where, "token ", id,
              " is not valid UTF-8; tokenizer.json holds text only");
    RRT_CHECK(ids.emplace(token, static_cast<int32_t>(id)).second, where, "token ", id, " '", token,
              "' is also token ", ids[token],
              "; a tokenizer.json vocabulary maps each piece to one id");
    tokens[token] = id;
    const BpeTokenType type = type_of(vocab, id);
    byte_fallback = byte_fallback || type == BpeTokenType::byte;
    // As SpmTokenizer cuts them out of the text: control, unknown and user-defined tokens.
    const bool special = type == BpeTokenType::control || type == BpeTokenType::unknown ||
                         static_cast<int32_t>(id) == vocab.unk;
    if ((special || type == BpeTokenType::user_defined) && !token.empty()) {
      added.push_back({{"id", id},
                       {"content", token},
                       {"single_word", false},
                       {"lstrip", false},
                       {"rstrip", false},
                       {"normalized", false},
                       {"special", special}});
    }
  }
  json normalizers = json::array();
  if (vocab.add_space_prefix) normalizers.push_back({{"type", "Prepend"}, {"prepend", kSpace}});
  normalizers.push_back(replace(" ", kSpace));
  json decoders =
      json::array({replace(kSpace, " "), {{"type", "ByteFallback"}}, {{"type", "Fuse"}}});
  if (vocab.add_space_prefix)
    decoders.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
  const json unk = vocab.unk >= 0 ? json(vocab.tokens[vocab.unk]) : json(nullptr);
  const json file = {{"version", "1.0"},
                     {"truncation", nullptr},
                     {"padding", nullptr},
                     {"added_tokens", added},
                     {"normalizer", {{"type", "Sequence"}, {"normalizers", normalizers}}},
                     {"pre_tokenizer", nullptr},
                     {"post_processor", post_processor(vocab)},
                     {"decoder", {{"type", "Sequence"}, {"decoders", decoders}}},
                     {"model",
                      {{"type", "BPE"},
                       {"dropout", nullptr},
                       {"unk_token", unk},
                       {"continuing_subword_prefix", nullptr},
                       {"end_of_word_suffix", nullptr},
                       {"fuse_unk", true},
                       {"byte_fallback", byte_fallback},
                       {"ignore_merges", false},
                       {"vocab", tokens},
                       {"merges", spm_merges(vocab, ids)}}}};
  return file.dump(-1, ' ', false, json::error_handler_t::strict);
}

std::string tokenizer_config_from_spm(const SpmVocab& vocab) {
  const auto token = [&](int32_t id) -> json {
    if (id < 0 || id >= static_cast<int32_t>(vocab.tokens.size())) return nullptr;
    return vocab.tokens[id];
  };
  const json config = {{"tokenizer_class", "PreTrainedTokenizerFast"},
                       {"bos_token", token(vocab.bos)},
                       {"eos_token", token(vocab.eos)},
                       {"unk_token", token(vocab.unk)},
                       {"add_bos_token", vocab.add_bos && vocab.bos >= 0},
                       {"add_eos_token", vocab.add_eos && vocab.eos >= 0},
                       {"clean_up_tokenization_spaces", false}};
  return config.dump(1);
}

}  // namespace rrt
