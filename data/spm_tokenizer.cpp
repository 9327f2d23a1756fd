#include "data/spm_tokenizer.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <queue>
#include <unordered_map>
#include <utility>

#include "core/error.h"
#include "core/gguf.h"
#include "data/bpe_tokenizer.h"

namespace rrt {

namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";             // U+2581, SentencePiece's space
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";       // U+FFFD
constexpr std::string_view kUnknownSurface = " \xE2\x81\x87 ";  // " ⁇ ", sentencepiece's

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TokenIds = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

// The length of the UTF-8 sequence a lead byte starts (1 for a stray continuation byte), as
// llama.cpp's symbol split counts it; a sequence cut by the end of the text is shorter.
size_t utf8_length(unsigned char lead) {
  if (lead < 0x80 || (lead >> 6) == 0x2) return 1;
  if ((lead >> 5) == 0x6) return 2;
  if ((lead >> 4) == 0xE) return 3;
  return (lead >> 3) == 0x1E ? 4 : 1;
}

// The length of the valid UTF-8 character at text[pos] (no overlong forms, surrogates or code
// points past U+10FFFF), or 0: what sentencepiece's decoder accepts from byte tokens.
size_t valid_utf8_at(std::string_view text, size_t pos) {
  const auto b = [&](size_t i) { return static_cast<unsigned char>(text[pos + i]); };
  const unsigned char lead = b(0);
  if (lead < 0x80) return 1;
  size_t n = 0;
  uint32_t cp = 0, min = 0;
  if ((lead >> 5) == 0x6)
    n = 2, cp = lead & 0x1F, min = 0x80;
  else if ((lead >> 4) == 0xE)
    n = 3, cp = lead & 0x0F, min = 0x800;
  else if ((lead >> 3) == 0x1E)
    n = 4, cp = lead & 0x07, min = 0x10000;
  else
    return 0;
  if (pos + n > text.size()) return 0;
  for (size_t i = 1; i < n; ++i) {
    if ((b(i) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b(i) & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

// "<0xAB>" -> 0xAB; -1 for any other spelling.
int byte_of(std::string_view token) {
  if (token.size() != 6 || token.substr(0, 3) != "<0x" || token[5] != '>') return -1;
  int value = 0;
  for (char c : token.substr(3, 2)) {
    const int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (digit < 0) return -1;
    value = value * 16 + digit;
  }
  return value;
}

}  // namespace

SpmVocab spm_vocab_from_gguf(const GgufFile& file) {
  const std::string& path = file.path();
  const auto id_or = [&](const std::string& key, int32_t fallback) -> int32_t {
    if (!file.has(key)) return fallback;
    const int64_t id = file.get_i64(key);
    RRT_CHECK(id >= 0 && id <= INT32_MAX, path, key, " = ", id, " is not a token id");
    return static_cast<int32_t>(id);
  };
  RRT_CHECK(file.has("tokenizer.ggml.model"), path,
            "has no tokenizer (no tokenizer.ggml.model key); is this a model GGUF?");
  const std::string model = file.get_string("tokenizer.ggml.model");
  RRT_CHECK(model == "llama", path, "tokenizer.ggml.model is '", model,
            "', not 'llama' (a SentencePiece vocabulary)");
  SpmVocab vocab;
  vocab.source = path;
  RRT_CHECK(file.has("tokenizer.ggml.tokens"), path, "has no tokenizer.ggml.tokens");
  vocab.tokens = file.get_string_array("tokenizer.ggml.tokens");
  RRT_CHECK(file.has("tokenizer.ggml.scores"), path,
            "has no tokenizer.ggml.scores: a SentencePiece BPE vocabulary merges by its pieces' "
            "scores, and without them the model's tokenization is unknown");
  vocab.scores = file.get_f32_array("tokenizer.ggml.scores");
  if (file.has("tokenizer.ggml.token_type")) {
    for (int64_t type : file.get_int_array("tokenizer.ggml.token_type")) {
      RRT_CHECK(type >= INT32_MIN && type <= INT32_MAX, path, "token type ", type);
      vocab.token_types.push_back(static_cast<int32_t>(type));
    }
  }
  // llama.cpp's defaults for the "llama" model when the file names no ids.
  vocab.bos = id_or("tokenizer.ggml.bos_token_id", 1);
  vocab.eos = id_or("tokenizer.ggml.eos_token_id", 2);
  vocab.unk = id_or("tokenizer.ggml.unknown_token_id", 0);
  if (file.has("tokenizer.ggml.add_space_prefix"))
    vocab.add_space_prefix = file.get_bool("tokenizer.ggml.add_space_prefix");
  RRT_CHECK(!file.has("tokenizer.ggml.remove_extra_whitespaces") ||
                !file.get_bool("tokenizer.ggml.remove_extra_whitespaces"),
            path,
            "tokenizer.ggml.remove_extra_whitespaces is true: the model was trained on text with "
            "whitespace runs collapsed, which rrt's SentencePiece tokenizer does not do; use the "
            "model's tokenizer.model (sentencepiece) instead");
  if (file.has("tokenizer.ggml.add_bos_token"))
    vocab.add_bos = file.get_bool("tokenizer.ggml.add_bos_token");
  if (file.has("tokenizer.ggml.add_eos_token"))
    vocab.add_eos = file.get_bool("tokenizer.ggml.add_eos_token");
  if (file.has("tokenizer.ggml.pre")) vocab.pre = file.get_string("tokenizer.ggml.pre");
  return vocab;
}

struct SpmTokenizer::Impl {
  struct Special {
    std::string text;
    int32_t id;
  };
  TokenIds mergeable;  // normal, user-defined and unused tokens: what a merge may make
  std::vector<bool> unused;
  std::array<int32_t, 256> byte_token{};
  std::array<std::vector<Special>, 256> specials_by_first_byte;  // longest first
  std::vector<std::string> text;                                 // [V] what each id decodes to
  std::vector<int16_t> byte_value;                               // [V] byte tokens' byte, or -1
  std::vector<bool> control;
};

SpmTokenizer::SpmTokenizer(SpmVocab vocab)
    : vocab_(std::move(vocab)), impl_(std::make_unique<Impl>()) {
  const std::string where = vocab_.source.empty() ? "spm tokenizer" : vocab_.source;
  const auto v = static_cast<int64_t>(vocab_.tokens.size());
  RRT_CHECK(v > 0 && v <= INT32_MAX, where, "vocabulary of ", v, " tokens");
  RRT_CHECK(vocab_.scores.size() == vocab_.tokens.size(), where, vocab_.scores.size(),
            " scores for ", v, " tokens (tokenizer.ggml.scores)");
  RRT_CHECK(vocab_.token_types.empty() || vocab_.token_types.size() == vocab_.tokens.size(), where,
            vocab_.token_types.size(), " token types for ", v, " tokens");
  RRT_CHECK(vocab_.eos >= 0 && vocab_.eos < v, where, "EOS id ", vocab_.eos,
            " is outside the vocabulary [0, ", v, "); rrt ends every document with EOS");
  for (const auto& [name, id] : {std::pair{"BOS", vocab_.bos}, std::pair{"unknown", vocab_.unk}})
    RRT_CHECK(id >= -1 && id < v, where, name, " id ", id, " is outside the vocabulary [0, ", v,
              ")");

  Impl& m = *impl_;
  m.byte_token.fill(-1);
  m.text.resize(v);
  m.byte_value.assign(v, -1);
  m.unused.assign(v, false);
  m.control.assign(v, false);
  for (int32_t id = 0; id < v; ++id) {
    const std::string& token = vocab_.tokens[id];
    RRT_CHECK(!std::isnan(vocab_.scores[id]), where, "token ", id, " '", token,
              "' has a NaN score");
    const int byte = byte_of(token);
    const auto type = vocab_.token_types.empty()
                          ? (byte >= 0 ? BpeTokenType::byte : BpeTokenType::normal)
                          : static_cast<BpeTokenType>(vocab_.token_types[id]);
    // The file's unknown_token_id is the unknown token whatever its type says.
    const bool unknown = type == BpeTokenType::unknown || id == vocab_.unk;
    if (type == BpeTokenType::byte && byte >= 0) {
      if (m.byte_token[byte] < 0) m.byte_token[byte] = id;
      m.byte_value[id] = static_cast<int16_t>(byte);
      continue;
    }
    const bool special = type == BpeTokenType::control || type == BpeTokenType::user_defined;
    if ((special || unknown) && !token.empty()) {
      m.specials_by_first_byte[static_cast<unsigned char>(token[0])].push_back({token, id});
    }
    if (unknown) {
      m.text[id] = kUnknownSurface;
    } else if (type == BpeTokenType::control) {
      m.control[id] = true;  // decodes to nothing, as EOS and BOS do
    } else {
      // Normal, user-defined and unused pieces merge (sentencepiece's pieces); unused ones are
      // split again into the pair that made them.
      m.mergeable.emplace(token, id);
      m.unused[id] = type == BpeTokenType::unused;
      m.text[id] = token;
    }
  }
  for (auto& specials : m.specials_by_first_byte) {
    std::stable_sort(specials.begin(), specials.end(),
                     [](const auto& a, const auto& b) { return a.text.size() > b.text.size(); });
  }
  m.control[vocab_.eos] = true;  // EOS decodes to nothing whatever its type, as in every rrt
                                 // tokenizer
}

SpmTokenizer::~SpmTokenizer() = default;

std::string SpmTokenizer::name() const {
  if (vocab_.source.empty()) return "bpe";
  return "bpe:" + std::filesystem::path(vocab_.source).filename().string();
}

// Merging of one piece of escaped text (no special tokens in it): symbols are its characters;
// a heap of adjacent pairs whose concatenation is a token, best score first, then leftmost;
// entries made stale by an earlier merge are skipped.
void SpmTokenizer::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
  if (piece.empty()) return;
  const Impl& m = *impl_;
  struct Symbol {
    size_t start, size;
    int prev, next;
  };
  std::vector<Symbol> symbols;
  for (size_t pos = 0; pos < piece.size();) {
    const size_t n =
        std::min(utf8_length(static_cast<unsigned char>(piece[pos])), piece.size() - pos);
    const int index = static_cast<int>(symbols.size());
    symbols.push_back({pos, n, index - 1, pos + n == piece.size() ? -1 : index + 1});
    pos += n;
  }
  struct Pair {
    float score;
    int left, right;
    size_t size;
    bool operator<(const Pair& o) const {
      return score < o.score || (score == o.score && left > o.left);
    }
  };
  std::priority_queue<Pair> queue;
  // Where each unused token a merge made splits (its left symbol's size), keyed by its start
  // and size: sentencepiece splits unused pieces back into the pair that made them.
  std::unordered_map<uint64_t, size_t> split_of;
  const auto key = [](size_t start, size_t size) { return (uint64_t{start} << 32) | size; };
  const auto try_pair = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const std::string_view text =
        piece.substr(symbols[left].start, symbols[left].size + symbols[right].size);
    const auto it = m.mergeable.find(text);
    if (it == m.mergeable.end()) return;
    queue.push({vocab_.scores[it->second], left, right, text.size()});
  };
  for (int i = 1; i < static_cast<int>(symbols.size()); ++i) try_pair(i - 1, i);
  while (!queue.empty()) {
    const Pair pair = queue.top();
    queue.pop();
    Symbol& left = symbols[pair.left];
    Symbol& right = symbols[pair.right];
    if (left.size == 0 || right.size == 0 || left.size + right.size != pair.size) continue;
    if (m.unused[m.mergeable.find(piece.substr(left.start, pair.size))->second])
      split_of[key(left.start, pair.size)] = left.size;
    left.size += right.size;
    right.size = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = pair.left;
    try_pair(left.prev, pair.left);
    try_pair(pair.left, left.next);
  }

  // A final symbol: its token; an unused token a merge made split into that merge's pair; any
  // other text (an unused single character too) its bytes' tokens.
  const auto emit = [&](auto&& self, size_t start, size_t size) -> void {
    const std::string_view text = piece.substr(start, size);
    const auto it = m.mergeable.find(text);
    if (it != m.mergeable.end() && !m.unused[it->second]) return out.push_back(it->second);
    if (const auto split = split_of.find(key(start, size)); split != split_of.end()) {
      self(self, start, split->second);
      self(self, start + split->second, size - split->second);
      return;
    }
    for (char c : text) {
      const int32_t byte = m.byte_token[static_cast<unsigned char>(c)];
      if (byte >= 0) {
        out.push_back(byte);
      } else if (vocab_.unk >= 0) {
        // No byte tokens: one unknown token for the symbol, as sentencepiece without byte
        // fallback gives.
        out.push_back(vocab_.unk);
        return;
      }
    }
  };
  for (int i = 0; i >= 0; i = symbols[i].next) emit(emit, symbols[i].start, symbols[i].size);
}

std::vector<int32_t> SpmTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids;
  if (text.empty()) return ids;
  // The escaped text: a leading "▁" (add_space_prefix), every ' ' as "▁".
  std::string escaped;
  escaped.reserve(text.size() + text.size() / 4 + 3);
  if (vocab_.add_space_prefix) escaped += kSpace;
  for (char c : text) {
    if (c == ' ') {
      escaped += kSpace;
    } else {
      escaped.push_back(c);
    }
  }
  ids.reserve(escaped.size() / 3 + 8);
  const std::string_view view(escaped);
  // Special tokens first: at each position the longest one that starts there.
  size_t start = 0;
  for (size_t pos = 0; pos < view.size(); ++pos) {
    const auto& candidates = impl_->specials_by_first_byte[static_cast<unsigned char>(view[pos])];
    for (const auto& special : candidates) {
      if (view.compare(pos, special.text.size(), special.text) != 0) continue;
      encode_piece(view.substr(start, pos - start), ids);
      ids.push_back(special.id);
      pos += special.text.size() - 1;
      start = pos + 1;
      break;
    }
  }
  encode_piece(view.substr(start), ids);
  return ids;
}

std::string SpmTokenizer::decode(const std::vector<int32_t>& ids) const {
  const Impl& m = *impl_;
  std::string text;
  std::string bytes;  // a run of byte tokens, decoded as UTF-8 when it ends
  const auto flush_bytes = [&] {
    for (size_t pos = 0; pos < bytes.size();) {
      const size_t n = valid_utf8_at(bytes, pos);
      if (n == 0) {
        text += kReplacement;
        ++pos;
      } else {
        text.append(bytes, pos, n);
        pos += n;
      }
    }
    bytes.clear();
  };
  bool first = true;  // no text piece yet: its leading space is the added prefix
  for (int32_t id : ids) {
    RRT_CHECK(id >= 0 && id < vocab_size(), name(), "id ", id, " is outside the vocabulary [0, ",
              vocab_size(), ")");
    if (m.control[id]) continue;
    if (m.byte_value[id] >= 0) {
      bytes.push_back(static_cast<char>(m.byte_value[id]));
      first = false;
      continue;
    }
    flush_bytes();
    std::string_view piece = m.text[id];
    if (first && vocab_.add_space_prefix && piece.substr(0, kSpace.size()) == kSpace &&
        id != vocab_.unk) {
      piece.remove_prefix(kSpace.size());
    }
    first = false;
    for (size_t pos = 0; pos < piece.size();) {
      if (piece.compare(pos, kSpace.size(), kSpace) == 0) {
        text.push_back(' ');
        pos += kSpace.size();
      } else {
        text.push_back(piece[pos++]);
      }
    }
  }
  flush_bytes();
  return text;
}

std::unique_ptr<Tokenizer> gguf_tokenizer(const std::string& path) {
  const GgufFile file(path);
  RRT_CHECK(file.has("tokenizer.ggml.model"), path,
            "has no tokenizer (no tokenizer.ggml.model key); is this a model GGUF?");
  const std::string model = file.get_string("tokenizer.ggml.model");
  if (model == "llama") return std::make_unique<SpmTokenizer>(spm_vocab_from_gguf(file));
  return std::make_unique<BpeTokenizer>(bpe_vocab_from_gguf(file));
}

}  // namespace rrt
