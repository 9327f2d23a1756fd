// Text helpers of the tokenizer.json reader (data/tokenizer_json.h): UTF-8 as Rust reads it,
// the Oniguruma regexes of tokenizer.json files run by PCRE2, Unicode normalization forms
// (utf8proc) and the `tokenizers` library's split behaviours.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

struct pcre2_real_code_8;

namespace rrt::tokjson {

// Rust's String::from_utf8_lossy: each maximal invalid subsequence becomes one U+FFFD.
std::string utf8_lossy(std::string_view bytes);
bool valid_utf8(std::string_view bytes);
// The length in bytes of the UTF-8 character starting at text[pos] (text is valid UTF-8).
size_t utf8_length(std::string_view text, size_t pos);
// The code point at text[pos] (valid UTF-8).
int32_t code_point_at(std::string_view text, size_t pos);
std::string utf8_encode(int32_t cp);
// Unicode's White_Space property (Rust's char::is_whitespace).
bool is_white_space(int32_t cp);

// "NFC", "NFD", "NFKC" or "NFKD" of valid UTF-8 text, by utf8proc.
std::string unicode_normalize(std::string_view text, std::string_view form);

// A regex from a tokenizer.json file. The library runs them with Oniguruma (Ruby syntax,
// UTF-8); PCRE2 runs them here, with \s and \S spelled as Oniguruma means them (tab .. CR,
// U+0085 and the Z categories). Constructs PCRE2 would read otherwise (\w, \b, nested classes,
// \S inside a class) are refused with `field` in the message.
class Regex {
 public:
  // literal: `pattern` is a plain string to find (the {"String": ...} form).
  Regex(const std::string& pattern, bool literal, const std::string& field);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Every non-overlapping match, left to right, as [begin, end) byte offsets.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view subject) const;
  // `subject` with every match replaced by `content`.
  std::string replace_all(std::string_view subject, std::string_view content) const;

 private:
  pcre2_real_code_8* code_ = nullptr;
  std::string literal_;
  bool is_literal_ = false;
};

// The library's SplitDelimiterBehavior.
enum class SplitBehavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };
SplitBehavior parse_split_behavior(const std::string& name, const std::string& field);

// A piece [begin, end) of a string and whether a pattern matched it.
struct Span {
  size_t begin, end;
  bool match;
};
// The pieces of a string of `size` bytes, given the pattern's matches (sorted, disjoint): the
// library's Pattern::find_matches (gaps and matches, no empty gap).
std::vector<Span> spans_of_matches(const std::vector<std::pair<size_t, size_t>>& matches,
                                   size_t size);
// The pieces that remain after applying `behavior` to the spans (NormalizedString::split).
std::vector<std::pair<size_t, size_t>> split_spans(std::vector<Span> spans, SplitBehavior behavior,
                                                   bool invert);

}  // namespace rrt::tokjson
