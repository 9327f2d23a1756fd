#include "data/tokenizer_json_text.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>
#include <memory>

#include "core/error.h"

namespace rrt::tokjson {

namespace {

// The length of the valid UTF-8 sequence at bytes[pos], or 0 with `bad` set to the length of
// its maximal invalid prefix (at least 1): Unicode's "maximal subpart" rule, which Rust's
// from_utf8_lossy and Python's errors="replace" follow.
size_t sequence_at(std::string_view bytes, size_t pos, size_t& bad) {
  const auto at = [&](size_t i) { return static_cast<unsigned char>(bytes[i]); };
  const unsigned char b0 = at(pos);
  bad = 1;
  if (b0 < 0x80) return 1;
  size_t length = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // the range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    length = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    length = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    length = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  for (size_t k = 1; k < length; ++k) {
    if (pos + k >= bytes.size()) {
      bad = k;
      return 0;
    }
    const unsigned char b = at(pos + k);
    const bool ok = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    if (!ok) {
      bad = k;
      return 0;
    }
  }
  return length;
}

// The whitespace of Oniguruma's \s in Unicode mode, as the body of a PCRE2 class.
constexpr const char* kSpaceClass = "\\t\\n\\x{0B}\\f\\r\\x{85}\\p{Z}";

// An Oniguruma pattern as PCRE2 must spell it to match the same.
std::string translate_regex(const std::string& pattern, const std::string& field) {
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char e = pattern[++i];
      if (e == 's') {
        out += in_class ? std::string(kSpaceClass) : "[" + std::string(kSpaceClass) + "]";
      } else if (e == 'S') {
        RRT_CHECK(!in_class, field, "the regex ", pattern,
                  " uses \\S inside a character class, which rrt does not translate");
        out += "[^" + std::string(kSpaceClass) + "]";
      } else if (e == 'w' || e == 'W' || e == 'b' || e == 'B' || e == 'h' || e == 'H') {
        RRT_FAIL(field, "the regex ", pattern, " uses \\", std::string(1, e),
                 ", whose Unicode meaning differs between Oniguruma (the tokenizers library) "
                 "and PCRE2; rrt refuses it rather than split text differently");
      } else {
        out += c;
        out += e;
      }
      continue;
    }
    if (c == '[') {
      if (in_class) {
        RRT_CHECK(i + 1 < pattern.size() && pattern[i + 1] == ':', field, "the regex ", pattern,
                  " nests a character class ([...[...]]), which Oniguruma and PCRE2 read "
                  "differently; rrt refuses it");
      } else {
        in_class = true;
        out += c;
        // A ']' or '^]' right after '[' is a literal ']' in both.
        if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
        if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];
        continue;
      }
    } else if (c == ']' && in_class) {
      in_class = false;
    }
    out += c;
  }
  return out;
}

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof(buffer));
  return reinterpret_cast<const char*>(buffer);
}

}  // namespace

std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (size_t pos = 0; pos < bytes.size();) {
    size_t bad = 0;
    const size_t length = sequence_at(bytes, pos, bad);
    if (length > 0) {
      out.append(bytes.substr(pos, length));
      pos += length;
    } else {
      out += "\xEF\xBF\xBD";
      pos += bad;
    }
  }
  return out;
}

bool valid_utf8(std::string_view bytes) {
  for (size_t pos = 0; pos < bytes.size();) {
    size_t bad = 0;
    const size_t length = sequence_at(bytes, pos, bad);
    if (length == 0) return false;
    pos += length;
  }
  return true;
}

size_t utf8_length(std::string_view text, size_t pos) {
  const auto b = static_cast<unsigned char>(text[pos]);
  return b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
}

int32_t code_point_at(std::string_view text, size_t pos) {
  const size_t n = utf8_length(text, pos);
  const auto b = [&](size_t i) { return static_cast<unsigned char>(text[pos + i]); };
  if (n == 1) return b(0);
  int32_t cp = b(0) & (0x7F >> n);
  for (size_t i = 1; i < n; ++i) cp = (cp << 6) | (b(i) & 0x3F);
  return cp;
}

std::string utf8_encode(int32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return out;
}

bool is_white_space(int32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

std::string unicode_normalize(std::string_view text, std::string_view form) {
  int options = UTF8PROC_STABLE;
  if (form == "NFC") {
    options |= UTF8PROC_COMPOSE;
  } else if (form == "NFD") {
    options |= UTF8PROC_DECOMPOSE;
  } else if (form == "NFKC") {
    options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
  } else if (form == "NFKD") {
    options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
  } else {
    RRT_FAIL("normalizer", "unknown normalization form ", std::string(form));
  }
  utf8proc_uint8_t* result = nullptr;
  const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                          static_cast<utf8proc_ssize_t>(text.size()), &result,
                                          static_cast<utf8proc_option_t>(options));
  RRT_CHECK(n >= 0, "normalizer", std::string(form), " failed: ", utf8proc_errmsg(n));
  std::string out(reinterpret_cast<const char*>(result), static_cast<size_t>(n));
  std::free(result);
  return out;
}

Regex::Regex(const std::string& pattern, bool literal, const std::string& field)
    : literal_(pattern), is_literal_(literal) {
  if (literal) {
    RRT_CHECK(!pattern.empty(), field, "an empty string pattern");
    return;
  }
  const std::string translated = translate_regex(pattern, field);
  int error = 0;
  PCRE2_SIZE offset = 0;
  code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.c_str()), translated.size(),
                        PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
  RRT_CHECK(code_ != nullptr, field, "cannot compile the regex ", pattern,
            " (as PCRE2: ", translated, ") at ", offset, ": ", pcre2_message(error));
  pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);  // the interpreter serves where JIT cannot
}

Regex::~Regex() {
  if (code_ != nullptr) pcre2_code_free(code_);
}

std::vector<std::pair<size_t, size_t>> Regex::find_all(std::string_view subject) const {
  std::vector<std::pair<size_t, size_t>> matches;
  if (is_literal_) {
    for (size_t at = subject.find(literal_); at != std::string_view::npos;
         at = subject.find(literal_, at + literal_.size())) {
      matches.emplace_back(at, at + literal_.size());
    }
    return matches;
  }
  const std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> data(
      pcre2_match_data_create_from_pattern(code_, nullptr), &pcre2_match_data_free);
  RRT_CHECK(data != nullptr, "tokenizer regex", "out of memory for PCRE2 match data");
  const auto* text = reinterpret_cast<PCRE2_SPTR>(subject.data());
  size_t start = 0;
  // PCRE2 checks the whole subject's UTF-8 on every call: once is enough (else a document of n
  // bytes costs O(n^2)).
  uint32_t options = 0;
  while (start <= subject.size()) {
    int rc = pcre2_match(code_, text, subject.size(), start, options, data.get(), nullptr);
    // A very long run can outgrow the JIT stack; the interpreter keeps its frames on the heap.
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
      rc = pcre2_match(code_, text, subject.size(), start, options | PCRE2_NO_JIT, data.get(),
                       nullptr);
    }
    options = PCRE2_NO_UTF_CHECK;
    if (rc == PCRE2_ERROR_NOMATCH) break;
    RRT_CHECK(rc >= 0, "tokenizer regex", "matching failed on a text of ", subject.size(),
              " bytes: ", pcre2_message(rc));
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data.get());
    const size_t begin = ovector[0], end = ovector[1];
    if (end == begin) {
      // An empty match splits nothing; step over one character, as Rust's iterators do.
      if (begin >= subject.size()) break;
      start = begin + utf8_length(subject, begin);
      continue;
    }
    matches.emplace_back(begin, end);
    start = end;
  }
  return matches;
}

std::string Regex::replace_all(std::string_view subject, std::string_view content) const {
  std::string out;
  size_t pos = 0;
  for (const auto& [begin, end] : find_all(subject)) {
    out.append(subject.substr(pos, begin - pos));
    out.append(content);
    pos = end;
  }
  out.append(subject.substr(pos));
  return out;
}

SplitBehavior parse_split_behavior(const std::string& name, const std::string& field) {
  if (name == "Removed") return SplitBehavior::removed;
  if (name == "Isolated") return SplitBehavior::isolated;
  if (name == "MergedWithPrevious") return SplitBehavior::merged_with_previous;
  if (name == "MergedWithNext") return SplitBehavior::merged_with_next;
  if (name == "Contiguous") return SplitBehavior::contiguous;
  RRT_FAIL(field, "unknown split behavior '", name,
           "'; the tokenizers library knows Removed, Isolated, MergedWithPrevious, "
           "MergedWithNext and Contiguous");
}

std::vector<Span> spans_of_matches(const std::vector<std::pair<size_t, size_t>>& matches,
                                   size_t size) {
  std::vector<Span> spans;
  size_t prev = 0;
  for (const auto& [begin, end] : matches) {
    if (prev != begin) spans.push_back({prev, begin, false});
    spans.push_back({begin, end, true});
    prev = end;
  }
  if (prev != size) spans.push_back({prev, size, false});
  return spans;
}

std::vector<std::pair<size_t, size_t>> split_spans(std::vector<Span> spans, SplitBehavior behavior,
                                                   bool invert) {
  if (invert)
    for (Span& s : spans) s.match = !s.match;
  std::vector<std::pair<size_t, size_t>> out;
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::isolated:
      for (const Span& s : spans) out.emplace_back(s.begin, s.end);
      break;
    case SplitBehavior::removed:
      for (const Span& s : spans)
        if (!s.match) out.emplace_back(s.begin, s.end);
      break;
    case SplitBehavior::contiguous:
      for (const Span& s : spans) {
        if (s.match == previous_match && !out.empty()) {
          out.back().second = s.end;
        } else {
          out.emplace_back(s.begin, s.end);
        }
        previous_match = s.match;
      }
      break;
    case SplitBehavior::merged_with_previous:
      for (const Span& s : spans) {
        if (s.match && !previous_match && !out.empty()) {
          out.back().second = s.end;
        } else {
          out.emplace_back(s.begin, s.end);
        }
        previous_match = s.match;
      }
      break;
    case SplitBehavior::merged_with_next:
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->match && !previous_match && !out.empty()) {
          out.back().first = it->begin;
        } else {
          out.emplace_back(it->begin, it->end);
        }
        previous_match = it->match;
      }
      std::reverse(out.begin(), out.end());
      break;
  }
  return out;
}

}  // namespace rrt::tokjson
