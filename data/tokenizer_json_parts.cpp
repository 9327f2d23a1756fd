#include "data/tokenizer_json_parts.h"

#include <memory>

#include "core/error.h"
#include "data/bpe_tokenizer.h"
#include "data/tokenizer_json_text.h"

namespace rrt::tokjson {

namespace {

using nlohmann::json;

// GPT-2's split, as the library's ByteLevel spells it (Oniguruma syntax; Regex translates).
constexpr const char* kByteLevelRegex =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

// Refuses keys rrt does not know: a new option of the library must not be silently ignored.
void check_keys(const json& node, const std::string& field,
                std::initializer_list<const char*> known) {
  RRT_CHECK(node.is_object(), field, "is not a JSON object");
  for (const auto& [key, value] : node.items()) {
    bool ok = key == "type";
    for (const char* k : known) ok = ok || key == k;
    RRT_CHECK(ok, field + "." + key, "is an option rrt does not implement (", field, " of type ",
              node.value("type", std::string("?")),
              "); rrt refuses the tokenizer rather than "
              "tokenize differently from the tokenizers library");
  }
}

template <typename T>
T get_or(const json& node, const char* key, T fallback) {
  if (!node.contains(key) || node[key].is_null()) return fallback;
  return node[key].get<T>();
}

std::string type_of(const json& node, const std::string& field) {
  RRT_CHECK(node.is_object() && node.contains("type") && node["type"].is_string(), field,
            "has no \"type\"");
  return node["type"].get<std::string>();
}

// {"String": s} or {"Regex": r}.
std::shared_ptr<Regex> make_pattern(const json& node, const std::string& field) {
  RRT_CHECK(node.is_object() && node.size() == 1, field,
            "is not a pattern ({\"String\": ...} or {\"Regex\": ...})");
  if (node.contains("String"))
    return std::make_shared<Regex>(node["String"].get<std::string>(), true, field + ".String");
  RRT_CHECK(node.contains("Regex"), field,
            "is not a pattern ({\"String\": ...} or {\"Regex\": ...})");
  return std::make_shared<Regex>(node["Regex"].get<std::string>(), false, field + ".Regex");
}

// Splits every piece by `split` (piece text -> [begin, end) ranges), keeping at_start on the
// first part and dropping empty parts, as PreTokenizedString::split does.
template <typename F>
void split_pieces(std::vector<Piece>& pieces, F&& split) {
  std::vector<Piece> out;
  out.reserve(pieces.size());
  for (Piece& piece : pieces) {
    bool first = true;
    for (const auto& [begin, end] : split(piece.text)) {
      if (end > begin)
        out.push_back({piece.text.substr(begin, end - begin), piece.at_start && first});
      first = false;
    }
  }
  pieces = std::move(out);
}

std::string to_byte_level(const std::string& text) {
  std::string out;
  out.reserve(text.size() * 2);
  for (char c : text) out += byte_level_chars()[static_cast<unsigned char>(c)];
  return out;
}

std::string replace_all(const std::string& text, const std::string& from, const std::string& to) {
  std::string out;
  size_t pos = 0;
  for (size_t at; (at = text.find(from, pos)) != std::string::npos; pos = at + from.size()) {
    out.append(text, pos, at - pos);
    out += to;
  }
  out.append(text, pos, std::string::npos);
  return out;
}

// Metaspace's prepend_scheme, or the legacy add_prefix_space that stood for it.
std::string prepend_scheme(const json& node, const std::string& field) {
  std::string scheme = get_or<std::string>(node, "prepend_scheme", "");
  if (scheme.empty()) scheme = get_or<bool>(node, "add_prefix_space", true) ? "always" : "never";
  RRT_CHECK(scheme == "always" || scheme == "first" || scheme == "never", field + ".prepend_scheme",
            "is '", scheme, "'; the library knows always, first, never");
  return scheme;
}

std::string single_char(const json& node, const char* key, const std::string& field) {
  const std::string s = node.at(key).get<std::string>();
  RRT_CHECK(!s.empty() && utf8_length(s, 0) == s.size(), field + "." + key, "'", s,
            "' is not a single character");
  return s;
}

}  // namespace

const std::vector<std::string>& byte_level_chars() {
  static const std::vector<std::string> chars(BpeTokenizer::byte_alphabet().begin(),
                                              BpeTokenizer::byte_alphabet().end());
  return chars;
}

int byte_of_byte_level_char(int32_t code_point) {
  static const std::vector<int> table = [] {
    std::vector<int> t(324, -1);
    for (int b = 0; b < 256; ++b) t[code_point_at(byte_level_chars()[b], 0)] = b;
    return t;
  }();
  return code_point >= 0 && code_point < static_cast<int32_t>(table.size()) ? table[code_point]
                                                                            : -1;
}

Normalizer make_normalizer(const json& node, const std::string& field) {
  if (node.is_null()) return [](std::string s) { return s; };
  const std::string type = type_of(node, field);
  if (type == "Sequence") {
    check_keys(node, field, {"normalizers"});
    std::vector<Normalizer> parts;
    const json& list = node.at("normalizers");
    for (size_t i = 0; i < list.size(); ++i)
      parts.push_back(make_normalizer(list[i], field + ".normalizers[" + std::to_string(i) + "]"));
    return [parts](std::string s) {
      for (const auto& p : parts) s = p(std::move(s));
      return s;
    };
  }
  if (type == "Prepend") {
    check_keys(node, field, {"prepend"});
    const std::string prepend = node.at("prepend").get<std::string>();
    return [prepend](std::string s) { return s.empty() ? s : prepend + s; };
  }
  if (type == "Replace") {
    check_keys(node, field, {"pattern", "content"});
    const auto pattern = make_pattern(node.at("pattern"), field + ".pattern");
    const std::string content = node.at("content").get<std::string>();
    return [pattern, content](std::string s) { return pattern->replace_all(s, content); };
  }
  if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    check_keys(node, field, {});
    return [type](std::string s) { return unicode_normalize(s, type); };
  }
  if (type == "Strip") {
    check_keys(node, field, {"strip_left", "strip_right"});
    const bool left = get_or<bool>(node, "strip_left", true);
    const bool right = get_or<bool>(node, "strip_right", true);
    return [left, right](std::string s) {
      size_t begin = 0, end = s.size();
      while (left && begin < end && is_white_space(code_point_at(s, begin)))
        begin += utf8_length(s, begin);
      while (right && end > begin) {
        size_t last = end - 1;
        while (last > begin && (static_cast<unsigned char>(s[last]) & 0xC0) == 0x80) --last;
        if (!is_white_space(code_point_at(s, last))) break;
        end = last;
      }
      return s.substr(begin, end - begin);
    };
  }
  RRT_FAIL(field + ".type", "normalizer '", type,
           "' is not implemented by rrt (it reads Sequence, Prepend, Replace, NFC, NFD, NFKC, "
           "NFKD and Strip)");
}

PreTokenizer make_pre_tokenizer(const json& node, const std::string& field) {
  if (node.is_null()) return [](std::vector<Piece>&) {};
  const std::string type = type_of(node, field);
  if (type == "Sequence") {
    check_keys(node, field, {"pretokenizers"});
    std::vector<PreTokenizer> parts;
    const json& list = node.at("pretokenizers");
    for (size_t i = 0; i < list.size(); ++i) {
      parts.push_back(
          make_pre_tokenizer(list[i], field + ".pretokenizers[" + std::to_string(i) + "]"));
    }
    return [parts](std::vector<Piece>& pieces) {
      for (const auto& p : parts) p(pieces);
    };
  }
  if (type == "ByteLevel") {
    check_keys(node, field, {"add_prefix_space", "trim_offsets", "use_regex"});
    const bool prefix = get_or<bool>(node, "add_prefix_space", true);
    const bool use_regex = get_or<bool>(node, "use_regex", true);
    const auto regex = std::make_shared<Regex>(kByteLevelRegex, false, field);
    return [prefix, use_regex, regex](std::vector<Piece>& pieces) {
      for (Piece& p : pieces)
        if (prefix && p.text[0] != ' ') p.text.insert(0, 1, ' ');
      if (use_regex) {
        split_pieces(pieces, [&](const std::string& s) {
          return split_spans(spans_of_matches(regex->find_all(s), s.size()),
                             SplitBehavior::isolated, false);
        });
      }
      for (Piece& p : pieces) p.text = to_byte_level(p.text);
    };
  }
  if (type == "Split") {
    check_keys(node, field, {"pattern", "behavior", "invert"});
    const auto pattern = make_pattern(node.at("pattern"), field + ".pattern");
    const SplitBehavior behavior =
        parse_split_behavior(node.at("behavior").get<std::string>(), field + ".behavior");
    const bool invert = get_or<bool>(node, "invert", false);
    return [pattern, behavior, invert](std::vector<Piece>& pieces) {
      split_pieces(pieces, [&](const std::string& s) {
        return split_spans(spans_of_matches(pattern->find_all(s), s.size()), behavior, invert);
      });
    };
  }
  if (type == "Digits") {
    check_keys(node, field, {"individual_digits"});
    const bool individual = get_or<bool>(node, "individual_digits", false);
    // Rust's char::is_numeric: the N categories, one character at a time.
    const auto digit = std::make_shared<Regex>("\\p{N}", false, field);
    return [digit, individual](std::vector<Piece>& pieces) {
      split_pieces(pieces, [&](const std::string& s) {
        return split_spans(spans_of_matches(digit->find_all(s), s.size()),
                           individual ? SplitBehavior::isolated : SplitBehavior::contiguous, false);
      });
    };
  }
  if (type == "Metaspace") {
    check_keys(node, field,
               {"replacement", "prepend_scheme", "split", "add_prefix_space", "str_rep"});
    const std::string replacement = single_char(node, "replacement", field);
    const std::string scheme = prepend_scheme(node, field);
    const bool split = get_or<bool>(node, "split", true);
    const auto pattern = std::make_shared<Regex>(replacement, true, field);
    return [replacement, scheme, split, pattern](std::vector<Piece>& pieces) {
      for (Piece& p : pieces) {
        p.text = replace_all(p.text, " ", replacement);
        const bool starts = p.text.rfind(replacement, 0) == 0;
        if (!starts && (scheme == "always" || (scheme == "first" && p.at_start)))
          p.text.insert(0, replacement);
      }
      if (split) {
        split_pieces(pieces, [&](const std::string& s) {
          return split_spans(spans_of_matches(pattern->find_all(s), s.size()),
                             SplitBehavior::merged_with_next, false);
        });
      }
    };
  }
  RRT_FAIL(field + ".type", "pre-tokenizer '", type,
           "' is not implemented by rrt (it reads Sequence, ByteLevel, Split, Digits and "
           "Metaspace)");
}

Decoder make_decoder(const json& node, const std::string& field) {
  using Tokens = std::vector<std::string>;
  if (node.is_null()) {
    return [](Tokens tokens) {
      std::string joined;
      for (size_t i = 0; i < tokens.size(); ++i) joined += (i ? " " : "") + tokens[i];
      return Tokens{joined};
    };
  }
  const std::string type = type_of(node, field);
  if (type == "Sequence") {
    check_keys(node, field, {"decoders"});
    std::vector<Decoder> parts;
    const json& list = node.at("decoders");
    for (size_t i = 0; i < list.size(); ++i)
      parts.push_back(make_decoder(list[i], field + ".decoders[" + std::to_string(i) + "]"));
    return [parts](Tokens tokens) {
      for (const auto& p : parts) tokens = p(std::move(tokens));
      return tokens;
    };
  }
  if (type == "ByteLevel") {
    check_keys(node, field, {"add_prefix_space", "trim_offsets", "use_regex"});
    // Each token's characters back to bytes (a token with a character outside the alphabet
    // stays as its UTF-8), all joined and read as UTF-8 with U+FFFD for invalid sequences.
    return [](Tokens tokens) {
      std::string bytes, token_bytes;
      for (const std::string& t : tokens) {
        token_bytes.clear();
        bool mapped = true;
        for (size_t pos = 0; pos < t.size() && mapped; pos += utf8_length(t, pos)) {
          const int b = byte_of_byte_level_char(code_point_at(t, pos));
          mapped = b >= 0;
          token_bytes.push_back(static_cast<char>(b));
        }
        bytes += mapped ? token_bytes : t;
      }
      return Tokens{utf8_lossy(bytes)};
    };
  }
  if (type == "Metaspace") {
    check_keys(node, field,
               {"replacement", "prepend_scheme", "split", "add_prefix_space", "str_rep"});
    const std::string replacement = single_char(node, "replacement", field);
    const bool strip_first = prepend_scheme(node, field) != "never";
    return [replacement, strip_first](Tokens tokens) {
      for (size_t i = 0; i < tokens.size(); ++i)
        tokens[i] = replace_all(tokens[i], replacement, i == 0 && strip_first ? "" : " ");
      return tokens;
    };
  }
  if (type == "Replace") {
    check_keys(node, field, {"pattern", "content"});
    const auto pattern = make_pattern(node.at("pattern"), field + ".pattern");
    const std::string content = node.at("content").get<std::string>();
    return [pattern, content](Tokens tokens) {
      for (std::string& t : tokens) t = pattern->replace_all(t, content);
      return tokens;
    };
  }
  if (type == "ByteFallback") {
    check_keys(node, field, {});
    // Runs of <0xAB> tokens become their bytes when those are valid UTF-8, else one U+FFFD
    // per byte.
    return [](Tokens tokens) {
      Tokens out;
      std::string run;
      const auto flush = [&] {
        if (run.empty()) return;
        if (valid_utf8(run)) {
          out.push_back(run);
        } else {
          for (size_t i = 0; i < run.size(); ++i) out.emplace_back("\xEF\xBF\xBD");
        }
        run.clear();
      };
      for (std::string& t : tokens) {
        const bool is_byte = t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' &&
                             std::isxdigit(static_cast<unsigned char>(t[3])) &&
                             std::isxdigit(static_cast<unsigned char>(t[4]));
        if (is_byte) {
          run.push_back(static_cast<char>(std::stoi(t.substr(3, 2), nullptr, 16)));
        } else {
          flush();
          out.push_back(std::move(t));
        }
      }
      flush();
      return out;
    };
  }
  if (type == "Fuse") {
    check_keys(node, field, {});
    return [](Tokens tokens) {
      std::string joined;
      for (const std::string& t : tokens) joined += t;
      return Tokens{joined};
    };
  }
  if (type == "Strip") {
    check_keys(node, field, {"content", "start", "stop"});
    const int32_t content = code_point_at(single_char(node, "content", field), 0);
    const size_t start = node.at("start").get<size_t>(), stop = node.at("stop").get<size_t>();
    return [content, start, stop](Tokens tokens) {
      for (std::string& t : tokens) {
        std::vector<size_t> offsets;  // of each character, then the end
        for (size_t pos = 0; pos < t.size(); pos += utf8_length(t, pos)) offsets.push_back(pos);
        const size_t n = offsets.size();
        offsets.push_back(t.size());
        size_t first = 0, last = n;
        for (size_t i = 0; i < std::min(start, n) && code_point_at(t, offsets[i]) == content; ++i)
          first = i + 1;
        for (size_t i = 0; i < std::min(stop, n) && code_point_at(t, offsets[n - 1 - i]) == content;
             ++i)
          last = n - 1 - i;
        t = first < last ? t.substr(offsets[first], offsets[last] - offsets[first]) : "";
      }
      return tokens;
    };
  }
  RRT_FAIL(field + ".type", "decoder '", type,
           "' is not implemented by rrt (it reads Sequence, ByteLevel, Metaspace, Replace, "
           "ByteFallback, Fuse and Strip)");
}

}  // namespace rrt::tokjson
