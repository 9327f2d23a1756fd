#include "data/bpe_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <filesystem>
#include <utility>

#include "core/error.h"
#include "core/gguf.h"
#include "data/bpe_merge.h"
#include "data/piece_cache.h"
#include "data/tokenizer_json_text.h"

namespace rrt {

namespace {

// transformers' ByteLevel regex is run by Oniguruma, whose \s is U+0009..U+000D, U+0085 and the
// Z categories. PCRE2's \s under UCP may differ on U+0085, so the class is spelled out.
#define RRT_WS "\\t\\n\\x{0B}\\f\\r\\x{85}\\p{Z}"
// GPT-2's split (its tokenizer.json / tiktoken "r50k" pattern).
constexpr const char* kGpt2Regex = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" RRT_WS
                                   "\\p{L}\\p{N}]+|[" RRT_WS "]+(?![^" RRT_WS "])|[" RRT_WS "]+";
// Llama 3's split (tiktoken "cl100k"-style: case-free contractions, a letter run with one
// leading non-letter, numbers of up to three digits) and Qwen2's, which is the same with single
// digits; \s and \S spelled as above.
#define RRT_LLAMA3_STYLE(DIGITS)                                                           \
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}" DIGITS " ?[^" RRT_WS \
  "\\p{L}\\p{N}]+[\\r\\n]*|[" RRT_WS "]*[\\r\\n]+|[" RRT_WS "]+(?![^" RRT_WS "])|[" RRT_WS "]+"
constexpr const char* kLlama3Regex = RRT_LLAMA3_STYLE("{1,3}|");
constexpr const char* kQwen2Regex = RRT_LLAMA3_STYLE("|");
#undef RRT_LLAMA3_STYLE
#undef RRT_WS
// Every numeric character a piece of its own (llama.cpp's first regex for these vocabularies;
// transformers' Digits(individual_digits=true)).
constexpr const char* kSingleDigitRegex = "\\p{N}";

struct PreTokenizerSpec {
  const char* name;
  std::vector<const char*> regexes;  // applied in turn; each splits every piece of the last
  const char* meaning;
  // A piece that is a token as a whole is that token, merged or not (transformers' BPE
  // ignore_merges, which Llama 3's tokenizer.json sets and llama.cpp follows for it).
  bool ignore_merges = false;
  // Text in Unicode NFC before anything else: the normalizer of Qwen2's tokenizer.json, which
  // the model was trained with (llama.cpp leaves it out; rrt tokenises as the model's own).
  bool nfc = false;
};

const std::vector<PreTokenizerSpec>& pre_tokenizer_specs() {
  static const std::vector<PreTokenizerSpec> specs = {
      {"gpt2", {kGpt2Regex}, "the GPT-2 regex"},
      {"smollm", {kSingleDigitRegex, kGpt2Regex}, "single digits, then the GPT-2 regex"},
      {"starcoder", {kSingleDigitRegex, kGpt2Regex}, "single digits, then the GPT-2 regex"},
      // llama.cpp's names for Llama 3's tokenizer.
      {"llama-bpe", {kLlama3Regex}, "Llama 3's regex, whole-token pieces kept", true},
      {"llama3", {kLlama3Regex}, "Llama 3's regex, whole-token pieces kept", true},
      {"llama-v3", {kLlama3Regex}, "Llama 3's regex, whole-token pieces kept", true},
      {"qwen2", {kQwen2Regex}, "NFC, then Qwen2's regex", false, true},
  };
  return specs;
}

std::string supported_pre_tokenizers() {
  std::string list;
  for (const auto& spec : pre_tokenizer_specs()) {
    list += (list.empty() ? "" : ", ") + std::string(spec.name) + " (" + spec.meaning + ")";
  }
  return list;
}

// The next code point of UTF-8 text at `pos` (advancing it), or -1 for a malformed sequence.
int32_t next_code_point(std::string_view text, size_t& pos) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(pos);
  int length = lead < 0x80           ? 1
               : (lead >> 5) == 0x6  ? 2
               : (lead >> 4) == 0xE  ? 3
               : (lead >> 3) == 0x1E ? 4
                                     : 0;
  if (length == 0 || pos + length > text.size()) {
    ++pos;
    return -1;
  }
  int32_t cp = length == 1 ? lead : lead & (0x7F >> length);
  for (int i = 1; i < length; ++i) {
    if ((byte(pos + i) & 0xC0) != 0x80) {
      ++pos;
      return -1;
    }
    cp = (cp << 6) | (byte(pos + i) & 0x3F);
  }
  pos += length;
  return cp;
}

std::string utf8(int32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return out;
}

// GPT-2's byte <-> character map as code points: byte_to_cp[b], and cp_to_byte[cp] (-1 if none).
struct ByteMap {
  std::array<int32_t, 256> byte_to_cp{};
  std::array<int16_t, 324> cp_to_byte{};
  ByteMap() {
    cp_to_byte.fill(-1);
    int32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      byte_to_cp[b] = printable ? b : next++;
      cp_to_byte[byte_to_cp[b]] = static_cast<int16_t>(b);
    }
  }
};

const ByteMap& byte_map() {
  static const ByteMap map;
  return map;
}

// The bytes a token spelled in GPT-2's alphabet stands for; false if it uses another character.
bool spelled_to_bytes(std::string_view spelled, std::string& bytes) {
  const ByteMap& map = byte_map();
  bytes.clear();
  for (size_t pos = 0; pos < spelled.size();) {
    const int32_t cp = next_code_point(spelled, pos);
    if (cp < 0 || cp >= static_cast<int32_t>(map.cp_to_byte.size()) || map.cp_to_byte[cp] < 0) {
      return false;
    }
    bytes.push_back(static_cast<char>(map.cp_to_byte[cp]));
  }
  return true;
}

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
template <typename V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof(buffer));
  return reinterpret_cast<const char*>(buffer);
}

// One compiled pattern (JIT where available). Matching is thread-safe: match data is per call.
class Regex {
 public:
  explicit Regex(const char* pattern) {
    int error = 0;
    PCRE2_SIZE offset = 0;
    code_ =
        pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern), PCRE2_ZERO_TERMINATED,
                      PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &error, &offset, nullptr);
    RRT_CHECK(code_ != nullptr, "bpe tokenizer", "cannot compile the pre-tokenizer regex ", pattern,
              " at ", offset, ": ", pcre2_message(error));
    jit_ = pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE) == 0;
  }
  ~Regex() { pcre2_code_free(code_); }
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // The first match in subject[start..] as [begin, end); false if none.
  bool find(std::string_view subject, size_t start, pcre2_match_data* data, size_t& begin,
            size_t& end) const {
    const auto* text = reinterpret_cast<PCRE2_SPTR>(subject.data());
    int rc = pcre2_match(code_, text, subject.size(), start, 0, data, nullptr);
    // A very long run (say a megabyte of spaces) can outgrow the JIT stack: the interpreter
    // keeps its backtracking frames on the heap.
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
      rc = pcre2_match(code_, text, subject.size(), start, PCRE2_NO_JIT, data, nullptr);
    }
    if (rc == PCRE2_ERROR_NOMATCH) return false;
    RRT_CHECK(rc >= 0, "bpe tokenizer", "pre-tokenizer regex failed on a text of ", subject.size(),
              " bytes: ", pcre2_message(rc));
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data);
    begin = ovector[0];
    end = ovector[1];
    return true;
  }
  pcre2_code* code() const { return code_; }
  bool jit() const { return jit_; }

 private:
  pcre2_code* code_ = nullptr;
  bool jit_ = false;
};

struct MatchData {
  explicit MatchData(const Regex& regex)
      : data(pcre2_match_data_create_from_pattern(regex.code(), nullptr)) {
    RRT_CHECK(data != nullptr, "bpe tokenizer", "out of memory for PCRE2 match data");
  }
  ~MatchData() { pcre2_match_data_free(data); }
  MatchData(const MatchData&) = delete;
  MatchData& operator=(const MatchData&) = delete;
  pcre2_match_data* data;
};

}  // namespace

// ---------------------------------------------------------------------------------------------

std::vector<std::string> bpe_pre_tokenizers() {
  std::vector<std::string> names;
  for (const auto& spec : pre_tokenizer_specs()) names.emplace_back(spec.name);
  return names;
}

BpeVocab bpe_vocab_from_gguf(const std::string& path) {
  return bpe_vocab_from_gguf(GgufFile(path));
}

BpeVocab bpe_vocab_from_gguf(const GgufFile& file) {
  const std::string& path = file.path();
  const auto optional_id = [&](const std::string& key) -> int32_t {
    if (!file.has(key)) return -1;
    const int64_t id = file.get_i64(key);
    RRT_CHECK(id >= 0 && id <= INT32_MAX, path, key, " = ", id, " is not a token id");
    return static_cast<int32_t>(id);
  };
  RRT_CHECK(file.has("tokenizer.ggml.model"), path,
            "has no tokenizer (no tokenizer.ggml.model key); is this a model GGUF?");
  BpeVocab vocab;
  vocab.source = path;
  vocab.model = file.get_string("tokenizer.ggml.model");
  // "llama" is SentencePiece (Gemma, Llama 2): SpmTokenizer's (data/spm_tokenizer.h).
  RRT_CHECK(vocab.model == "gpt2", path, "tokenizer.ggml.model is '", vocab.model,
            "', not 'gpt2' (byte-level BPE)",
            vocab.model == "llama"
                ? "; this SentencePiece vocabulary is read by gguf_tokenizer() / make_tokenizer()"
                : "; rrt reads 'gpt2' (byte-level BPE) and 'llama' (SentencePiece) vocabularies "
                  "from GGUF; give the model's tokenizer.json (hf:<path>) instead");
  RRT_CHECK(file.has("tokenizer.ggml.pre"), path,
            "has no tokenizer.ggml.pre: which pre-tokenizer the vocabulary wants is unknown; "
            "supported: ",
            supported_pre_tokenizers());
  vocab.pre = file.get_string("tokenizer.ggml.pre");
  vocab.tokens = file.get_string_array("tokenizer.ggml.tokens");
  RRT_CHECK(file.has("tokenizer.ggml.merges"), path, "has no tokenizer.ggml.merges");
  vocab.merges = file.get_string_array("tokenizer.ggml.merges");
  if (file.has("tokenizer.ggml.token_type")) {
    for (int64_t type : file.get_int_array("tokenizer.ggml.token_type")) {
      RRT_CHECK(type >= INT32_MIN && type <= INT32_MAX, path, "token type ", type);
      vocab.token_types.push_back(static_cast<int32_t>(type));
    }
  }
  vocab.bos = optional_id("tokenizer.ggml.bos_token_id");
  vocab.eos = optional_id("tokenizer.ggml.eos_token_id");
  return vocab;
}

const std::array<std::string, 256>& BpeTokenizer::byte_alphabet() {
  static const std::array<std::string, 256> alphabet = [] {
    std::array<std::string, 256> a;
    for (int b = 0; b < 256; ++b) a[b] = utf8(byte_map().byte_to_cp[b]);
    return a;
  }();
  return alphabet;
}

struct BpeTokenizer::Impl {
  struct Special {
    std::string text;
    int32_t id;
  };
  std::vector<std::unique_ptr<Regex>> regexes;
  std::array<int32_t, 256> byte_token{};
  BpeMergeTable merges;
  std::array<std::vector<Special>, 256> specials_by_first_byte;  // longest first
  std::vector<std::string> decoded;                              // [V] the bytes each id decodes to
  bool ignore_merges = false, nfc = false;
  StringMap<int32_t> whole_tokens;  // with ignore_merges: a token's bytes -> its id

  mutable PieceCache cache;  // per-piece results, shared by the threads that encode
};

BpeTokenizer::BpeTokenizer(BpeVocab vocab)
    : vocab_(std::move(vocab)), impl_(std::make_unique<Impl>()) {
  const std::string where = vocab_.source.empty() ? "bpe tokenizer" : vocab_.source;
  const auto vocab_size = static_cast<int64_t>(vocab_.tokens.size());
  RRT_CHECK(vocab_.model == "gpt2", where, "tokenizer model '", vocab_.model,
            "' is not byte-level BPE; BpeTokenizer reads 'gpt2' vocabularies only");
  RRT_CHECK(vocab_size > 0 && vocab_size <= INT32_MAX, where, "vocabulary of ", vocab_size,
            " tokens");
  RRT_CHECK(vocab_.token_types.empty() || vocab_.token_types.size() == vocab_.tokens.size(), where,
            vocab_.token_types.size(), " token types for ", vocab_size, " tokens");
  RRT_CHECK(vocab_.eos >= 0 && vocab_.eos < vocab_size, where, "EOS id ", vocab_.eos,
            " is outside the vocabulary [0, ", vocab_size, "); rrt ends every document with EOS");
  RRT_CHECK(vocab_.bos >= -1 && vocab_.bos < vocab_size, where, "BOS id ", vocab_.bos,
            " is outside the vocabulary [0, ", vocab_size, ")");

  const auto spec = std::find_if(pre_tokenizer_specs().begin(), pre_tokenizer_specs().end(),
                                 [&](const PreTokenizerSpec& s) { return vocab_.pre == s.name; });
  RRT_CHECK(spec != pre_tokenizer_specs().end(), where, "unknown pre-tokenizer '", vocab_.pre,
            "' (tokenizer.ggml.pre); supported: ", supported_pre_tokenizers());
  for (const char* pattern : spec->regexes)
    impl_->regexes.push_back(std::make_unique<Regex>(pattern));
  impl_->ignore_merges = spec->ignore_merges;
  impl_->nfc = spec->nfc;

  // Token spellings -> ids (the first of duplicates), and what each id decodes to.
  StringMap<int32_t> spelled_to_id;
  StringMap<int32_t> bytes_to_id;
  impl_->decoded.resize(vocab_.tokens.size());
  std::string bytes;
  for (int32_t id = 0; id < vocab_size; ++id) {
    const std::string& spelled = vocab_.tokens[id];
    spelled_to_id.emplace(spelled, id);
    const auto type = vocab_.token_types.empty()
                          ? BpeTokenType::normal
                          : static_cast<BpeTokenType>(vocab_.token_types[id]);
    const bool in_alphabet = spelled_to_bytes(spelled, bytes);
    // Control and user-defined tokens are cut out of the text whole, as transformers does; it
    // skips control tokens spelled outside the byte alphabet (llama.cpp mislabels).
    const bool special = !spelled.empty() && (type == BpeTokenType::user_defined ||
                                              (type == BpeTokenType::control && in_alphabet));
    if (special) {
      impl_->specials_by_first_byte[static_cast<unsigned char>(spelled[0])].push_back(
          {spelled, id});
      impl_->decoded[id] = spelled;
    } else {
      impl_->decoded[id] = in_alphabet ? bytes : spelled;
    }
    if (in_alphabet) bytes_to_id.emplace(bytes, id);
  }
  if (impl_->ignore_merges) impl_->whole_tokens = bytes_to_id;
  for (auto& specials : impl_->specials_by_first_byte) {
    std::stable_sort(specials.begin(), specials.end(),
                     [](const auto& a, const auto& b) { return a.text.size() > b.text.size(); });
  }
  // SmolLM2's vocabulary, for one, lacks 21 bytes (rare control characters, bytes that never
  // occur in UTF-8): transformers and llama.cpp drop them from the text, and so do we.
  for (int b = 0; b < 256; ++b) {
    const auto it = bytes_to_id.find(std::string(1, static_cast<char>(b)));
    impl_->byte_token[b] = it == bytes_to_id.end() ? -1 : it->second;
  }

  // Merges: "left right", both tokens and their concatenation in the vocabulary.
  impl_->merges.reserve(vocab_.merges.size());
  for (size_t rank = 0; rank < vocab_.merges.size(); ++rank) {
    const std::string& line = vocab_.merges[rank];
    const size_t space = line.find(' ');
    RRT_CHECK(space != std::string::npos && space > 0 && space + 1 < line.size() &&
                  line.find(' ', space + 1) == std::string::npos,
              where, "merge ", rank, " '", line, "' is not two tokens separated by one space");
    const std::string_view left(line.data(), space),
        right(line.data() + space + 1, line.size() - space - 1);
    const auto l = spelled_to_id.find(left), r = spelled_to_id.find(right);
    const auto merged = spelled_to_id.find(std::string(left) + std::string(right));
    RRT_CHECK(l != spelled_to_id.end() && r != spelled_to_id.end(), where, "merge ", rank, " '",
              line, "' names a token that is not in the vocabulary ('",
              l == spelled_to_id.end() ? left : right, "')");
    RRT_CHECK(merged != spelled_to_id.end(), where, "merge ", rank, " '", line, "' makes '", left,
              right, "', which is not in the vocabulary");
    impl_->merges.emplace(bpe_pair_key(l->second, r->second),
                          BpeMerge{static_cast<int32_t>(rank), merged->second});
  }
}

BpeTokenizer::~BpeTokenizer() = default;

std::string BpeTokenizer::name() const {
  if (vocab_.source.empty()) return "bpe";
  return "bpe:" + std::filesystem::path(vocab_.source).filename().string();
}

// Byte pair merging of one piece (data/bpe_merge.h), its bytes' tokens the symbols; results of
// short pieces cached.
void BpeTokenizer::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
  if (piece.size() == 1) {
    const int32_t id = impl_->byte_token[static_cast<unsigned char>(piece[0])];
    if (id >= 0) out.push_back(id);
    return;
  }
  if (impl_->cache.lookup(piece, out)) return;

  // Symbols: the piece's bytes that have a token (the others are dropped before merging).
  std::vector<int32_t> id;
  id.reserve(piece.size());
  for (char byte : piece) {
    const int32_t token = impl_->byte_token[static_cast<unsigned char>(byte)];
    if (token >= 0) id.push_back(token);
  }
  const size_t first = out.size();
  bpe_merge(std::move(id), impl_->merges, out);

  impl_->cache.insert(piece, std::span<const int32_t>(out).subspan(first));
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text) const {
  std::string normalized;
  if (impl_->nfc) {
    normalized = tokjson::unicode_normalize(text, "NFC");
    text = normalized;
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 8);
  std::vector<std::unique_ptr<MatchData>> match_data;
  for (const auto& regex : impl_->regexes)
    match_data.push_back(std::make_unique<MatchData>(*regex));

  // Splits `piece` by regex `stage` (matches and the gaps between them are pieces), recursing
  // into the next regex; after the last, each piece is merged.
  const auto split = [&](auto&& self, std::string_view piece, size_t stage) -> void {
    if (piece.empty()) return;
    if (stage == impl_->regexes.size()) {
      if (impl_->ignore_merges) {
        const auto whole = impl_->whole_tokens.find(piece);
        if (whole != impl_->whole_tokens.end()) return ids.push_back(whole->second);
      }
      return encode_piece(piece, ids);
    }
    const Regex& regex = *impl_->regexes[stage];
    size_t pos = 0, begin = 0, end = 0;
    while (pos < piece.size() && regex.find(piece, pos, match_data[stage]->data, begin, end)) {
      if (end == begin) end = begin + 1;  // no pattern here matches empty; never loop forever
      self(self, piece.substr(pos, begin - pos), stage + 1);
      self(self, piece.substr(begin, end - begin), stage + 1);
      pos = end;
    }
    self(self, piece.substr(std::min(pos, piece.size())), stage + 1);
  };

  // Special tokens first: at each position the longest one that starts there.
  size_t start = 0;
  for (size_t pos = 0; pos < text.size(); ++pos) {
    const auto& candidates = impl_->specials_by_first_byte[static_cast<unsigned char>(text[pos])];
    for (const auto& special : candidates) {
      if (text.compare(pos, special.text.size(), special.text) != 0) continue;
      split(split, text.substr(start, pos - start), 0);
      ids.push_back(special.id);
      pos += special.text.size() - 1;
      start = pos + 1;
      break;
    }
  }
  split(split, text.substr(start), 0);
  return ids;
}

std::string BpeTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string text;
  for (int32_t id : ids) {
    RRT_CHECK(id >= 0 && id < vocab_size(), name(), "id ", id, " is outside the vocabulary [0, ",
              vocab_size(), ")");
    if (id != vocab_.eos) text += impl_->decoded[id];
  }
  return text;
}

}  // namespace rrt
