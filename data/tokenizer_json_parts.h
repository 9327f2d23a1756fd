// The pipeline stages of a tokenizer.json (data/tokenizer_json.h) built from their JSON:
// normalizers, pre-tokenizers and decoders, each as the `tokenizers` library runs it. Any type
// or option rrt does not implement is an error naming the JSON field.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace rrt::tokjson {

// A piece of text on its way to the model. at_start: it begins at offset 0 of the original
// text (Metaspace's prepend_scheme "first" prepends only there).
struct Piece {
  std::string text;
  bool at_start = false;
};

using Normalizer = std::function<std::string(std::string)>;
using PreTokenizer = std::function<void(std::vector<Piece>&)>;
using Decoder = std::function<std::vector<std::string>(std::vector<std::string>)>;

// `field` names where `node` sits in the file ("normalizer", "pre_tokenizer.pretokenizers[1]",
// ...). A null node is no stage: the normalizer and pre-tokenizer leave text as it is; the
// decoder joins tokens with spaces (as the library does without one).
Normalizer make_normalizer(const nlohmann::json& node, const std::string& field);
PreTokenizer make_pre_tokenizer(const nlohmann::json& node, const std::string& field);
Decoder make_decoder(const nlohmann::json& node, const std::string& field);

// GPT-2's byte -> character map (bytes_to_unicode) as UTF-8, and its inverse (-1: none).
const std::vector<std::string>& byte_level_chars();
int byte_of_byte_level_char(int32_t code_point);

}  // namespace rrt::tokjson
