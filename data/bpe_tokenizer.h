// Byte-level BPE (GPT-2 style) from a vocabulary and merge list, as GGUF files store them under
// tokenizer.ggml.* ("gpt2" model). Encoding: control and user-defined tokens are cut out of the
// text first (longest match at the leftmost position, as transformers' added tokens are); the
// rest is split by the pre-tokenizer's regexes (PCRE2, UTF + UCP); each piece's bytes start as
// single-byte tokens and adjacent pairs merge by rank until no listed merge applies.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "data/tokenizer.h"

namespace rrt {

class GgufFile;

// llama.cpp's token types (tokenizer.ggml.token_type).
enum class BpeTokenType : int32_t {
  normal = 1,
  unknown = 2,
  control = 3,
  user_defined = 4,
  unused = 5,
  byte = 6,
};

struct BpeVocab {
  std::vector<std::string> tokens;   // [V] as spelled in the file: bytes in GPT-2's alphabet
  std::vector<int32_t> token_types;  // [V] BpeTokenType values; empty: all normal
  std::vector<std::string> merges;   // "left right"; the rank is the index
  int32_t bos = -1, eos = -1;        // -1: none
  std::string model = "gpt2";        // tokenizer.ggml.model; only "gpt2" is byte-level BPE
  std::string pre;                   // pre-tokenizer name (tokenizer.ggml.pre)
  std::string source;                // file it came from: for name() and error messages
};

// Pre-tokenizer names BpeTokenizer knows, with what they mean (docs/data.md).
std::vector<std::string> bpe_pre_tokenizers();

// The vocabulary of a GGUF file's tokenizer.ggml.* metadata. Refuses files whose
// tokenizer.ggml.model is not "gpt2" (SentencePiece "llama" vocabularies are SpmTokenizer's,
// data/spm_tokenizer.h; gguf_tokenizer() there picks the right one).
BpeVocab bpe_vocab_from_gguf(const std::string& path);
BpeVocab bpe_vocab_from_gguf(const GgufFile& file);

class BpeTokenizer final : public Tokenizer {
 public:
  // Throws for an unknown pre-tokenizer, a malformed merge, a merge naming tokens (or making a
  // token) outside the vocabulary, or no EOS.
  explicit BpeTokenizer(BpeVocab vocab);
  ~BpeTokenizer() override;

  // Never fails: any byte string encodes (invalid UTF-8 bytes become pieces of their own).
  // Bytes the vocabulary has no token for are dropped, as transformers and llama.cpp do.
  std::vector<int32_t> encode(std::string_view text) const override;
  // Control tokens other than EOS decode to their text (they are matched in text on encode),
  // so decode(encode(text)) == text unless the text holds the EOS token's own text or a byte
  // without a token (SmolLM2 lacks 21: six ASCII control characters, and lead bytes that valid
  // UTF-8 never uses or uses only for unassigned planes).
  std::string decode(const std::vector<int32_t>& ids) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(vocab_.tokens.size()); }
  int32_t eos_id() const override { return vocab_.eos; }
  int32_t bos_id() const override { return vocab_.bos; }
  // "bpe:<file name>" ("bpe" without a source file).
  std::string name() const override;
  const BpeVocab& vocab() const { return vocab_; }

  // GPT-2's byte -> character map (bytes_to_unicode): printable Latin-1 bytes are themselves,
  // the other 68 bytes go to U+0100.. in byte order. As UTF-8.
  static const std::array<std::string, 256>& byte_alphabet();

 private:
  struct Impl;
  void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;
  BpeVocab vocab_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rrt
