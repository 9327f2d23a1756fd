// SentencePiece BPE from a GGUF file's vocabulary (tokenizer.ggml.model = "llama": Llama 2,
// TinyLlama, Gemma, Gemma 2, Gemma 3), encoding as the sentencepiece library does with its BPE
// model and llama.cpp's SPM tokenizer does:
//   - spaces become U+2581 ("▁"), and the text gets a leading "▁" when add_space_prefix is set
//     (tokenizer.ggml.add_space_prefix; llama.cpp's default true);
//   - user-defined, control and unknown tokens' texts are cut out of that text whole (longest at
//     the leftmost position); the pieces between them are merged separately;
//   - a piece's symbols are its UTF-8 characters; the adjacent pair whose concatenation is a
//     normal (or user-defined / unused) token with the highest score merges, ties to the left,
//     until no pair is a token;
//   - a symbol that is no token becomes its bytes' <0xXX> tokens (byte fallback), or the
//     unknown token where the vocabulary has no byte tokens.
// The sentencepiece library spells control tokens' texts ("<s>") out instead; llama.cpp (with
// parse_special) and transformers cut them out, and so does rrt, as its other tokenizers do.
// llama.cpp also prefixes "▁" to the text after every special token; sentencepiece and rrt do
// not (the prefix is the text's, not each piece's).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "data/tokenizer.h"

namespace rrt {

class GgufFile;

struct SpmVocab {
  std::vector<std::string> tokens;       // [V] pieces, spaces spelled U+2581, bytes as <0xXX>
  std::vector<float> scores;             // [V] merge priority: the higher, the earlier
  std::vector<int32_t> token_types;      // [V] BpeTokenType values (llama.cpp's); empty: all normal
  int32_t bos = -1, eos = -1, unk = -1;  // -1: none
  bool add_space_prefix = true;          // a "▁" before the text
  // tokenizer.ggml.add_bos_token / add_eos_token (llama.cpp's defaults for this model: BOS yes,
  // EOS no): what a model's prompts start / end with. rrt's encode() adds neither; an exported
  // tokenizer.json's post-processor does (data/tokenizer_json.h).
  bool add_bos = true, add_eos = false;
  std::string pre;     // tokenizer.ggml.pre, if any (not used by SPM)
  std::string source;  // file it came from: for name() and error messages
};

// The vocabulary of a GGUF file's tokenizer.ggml.* metadata ("llama" model). Absent BOS / EOS /
// unknown ids take llama.cpp's defaults for this model (1, 2, 0). Refuses a file without
// scores, with tokenizer.ggml.remove_extra_whitespaces set (llama.cpp ignores it for SPM; the
// model would have been trained on collapsed whitespace), or of another model.
SpmVocab spm_vocab_from_gguf(const GgufFile& file);

class SpmTokenizer final : public Tokenizer {
 public:
  // Throws for sizes that disagree, ids outside the vocabulary, no EOS, or NaN scores.
  explicit SpmTokenizer(SpmVocab vocab);
  ~SpmTokenizer() override;

  // Never fails: any byte string encodes (malformed UTF-8 falls back to byte tokens).
  std::vector<int32_t> encode(std::string_view text) const override;
  // As the sentencepiece library decodes: "▁" becomes a space, the first text piece loses its
  // leading space when add_space_prefix is set, runs of byte tokens are UTF-8 (U+FFFD for each
  // byte that is not), control tokens (BOS, EOS, ...) are nothing, the unknown token " ⁇ ".
  std::string decode(const std::vector<int32_t>& ids) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(vocab_.tokens.size()); }
  int32_t eos_id() const override { return vocab_.eos; }
  int32_t bos_id() const override { return vocab_.bos; }
  // "bpe:<file name>", the name of every GGUF tokenizer ("bpe" without a source file), so
  // tokenizer_name_for() needs no look into the file.
  std::string name() const override;
  const SpmVocab& vocab() const { return vocab_; }

 private:
  struct Impl;
  void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;
  SpmVocab vocab_;
  std::unique_ptr<Impl> impl_;
};

// The tokenizer of a GGUF file: BpeTokenizer for "gpt2" vocabularies, SpmTokenizer for "llama"
// ones; other models refused by name.
std::unique_ptr<Tokenizer> gguf_tokenizer(const std::string& path);

}  // namespace rrt
