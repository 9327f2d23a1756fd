// The state of a TokenizerJson (data/tokenizer_json.h), shared by its reading
// (tokenizer_json.cpp) and its encoding and decoding (tokenizer_json_encode.cpp).
#pragma once

#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "data/bpe_merge.h"
#include "data/tokenizer_json.h"
#include "data/piece_cache.h"
#include "data/tokenizer_json_parts.h"

namespace rrt {

namespace tokjson {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
template <typename V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

}  // namespace tokjson

struct TokenizerJson::Impl {
  struct Added {
    std::string content;   // as matched: the normalized content for normalized tokens
    std::string original;  // as in the file: what decoding gives
    int32_t id;
    bool special;
  };

  std::string source, where;
  tokjson::StringMap<int32_t> vocab;    // the model's
  std::vector<std::string> id_token;    // [vocab_size] the model's token of each id ("" none)
  std::vector<int8_t> has_model_token;  // [vocab_size]
  BpeMergeTable merges;
  int32_t unk = -1;
  bool byte_fallback = false, fuse_unk = false, ignore_merges = false;
  std::array<int32_t, 256> byte_tokens{};  // <0xAB> ids, -1 where the vocabulary lacks one

  std::vector<Added> added;  // every added token, as in the file
  std::unordered_map<int32_t, size_t> added_of_id;
  std::array<std::vector<Added>, 256> raw_by_byte, normalized_by_byte;  // longest first

  tokjson::Normalizer normalizer;
  tokjson::PreTokenizer pre_tokenizer;
  tokjson::Decoder decoder;
  std::vector<int32_t> prefix, suffix;  // the post-processor's template around the text
  bool has_template = false;
  int32_t bos = -1, eos = -1;
  int64_t vocab_size = 0;

  mutable PieceCache cache;  // per-piece results, shared by the threads that encode

  void read_model(const nlohmann::json& model);
  void read_added_tokens(const nlohmann::json& list);
  void read_post_processor(const nlohmann::json& node, const std::string& field);
  void choose_bos_eos(const nlohmann::json& config, const std::string& config_where);
  int32_t id_of(std::string_view token) const;

  void encode_text(std::string_view text, std::vector<int32_t>& ids) const;
  void encode_piece(const std::string& piece, std::vector<int32_t>& ids) const;
  void merge_word(const std::string& piece, std::vector<int32_t>& ids) const;
};

}  // namespace rrt
