// The Hugging Face `tokenizers` library's tokenizer.json, read and run as that library runs it
// (docs/conversion.md lists what is supported and what is refused). Encoding, as
// Tokenizer::encode does there:
//   1. added tokens with normalized=false are cut out of the raw text (leftmost, longest);
//   2. every other piece is normalized (Sequence, Prepend, Replace, NFC/NFD/NFKC/NFKD, Strip),
//      then added tokens with normalized=true are cut out of it;
//   3. the pre-tokenizer splits the pieces (ByteLevel with GPT-2's regex, Split with a string or
//      an Oniguruma regex run by PCRE2, Digits, Metaspace, Sequence);
//   4. the BPE model encodes each piece: its characters, byte fallback (<0xAB>) or the unknown
//      token for characters it lacks, then merges by rank (ignore_merges: a piece that is a
//      token is that token);
//   5. encode_with_special_tokens adds the post-processor's TemplateProcessing tokens (BOS).
// Decoding maps ids to token strings (added tokens by their content, special ones skipped) and
// runs the decoder (ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence).
// Any field rrt does not implement is an error that names it: never a silently different
// tokenizer.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "data/tokenizer.h"

namespace rrt {

class TokenizerJson final : public Tokenizer {
 public:
  // Reads `path` (a tokenizer.json). BOS and EOS come from tokenizer_config.json beside it
  // (bos_token, eos_token) when it names them; otherwise BOS from the post-processor's
  // template and EOS from the first added token among </s>, <eos>, <|endoftext|>,
  // <|end_of_text|>. A tokenizer without an EOS is refused (rrt ends every document with it).
  explicit TokenizerJson(const std::string& path);
  // The same from the file's text; `config_text` is tokenizer_config.json's ("" for none).
  TokenizerJson(const std::string& json_text, const std::string& config_text,
                const std::string& source);
  ~TokenizerJson() override;

  // The library's encode(text, add_special_tokens=False): what rrt prepare stores (each
  // document is followed by EOS). Text that is not valid UTF-8 is read with U+FFFD for each
  // invalid sequence, as Python's errors="replace" and Rust's from_utf8_lossy do.
  std::vector<int32_t> encode(std::string_view text) const override;
  // encode(text, add_special_tokens=True): the template's tokens around the text's (BOS).
  std::vector<int32_t> encode_with_special_tokens(std::string_view text) const;
  // decode(ids, skip_special_tokens=True): special added tokens (EOS, BOS, ...) decode to
  // nothing, as Tokenizer::decode promises. Ids outside [0, vocab_size) throw.
  std::string decode(const std::vector<int32_t>& ids) const override;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const;
  // One more than the largest id of the model's vocabulary and of the added tokens.
  int64_t vocab_size() const override;
  int32_t eos_id() const override;
  int32_t bos_id() const override;  // -1: none
  // "hf:<file name>".
  std::string name() const override;
  // The id of a token (model vocabulary or added token), -1 if it has none.
  int32_t token_to_id(std::string_view token) const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// True for a path whose file name ends in .json (the tokenizer.json spelling of a tokenizer).
bool is_tokenizer_json_path(const std::string& spec);

struct BpeVocab;

// A GGUF byte-level BPE vocabulary (data/bpe_tokenizer.h) as tokenizer.json and
// tokenizer_config.json texts, for `rrt export`: the tokenizers library (and TokenizerJson)
// encode with them as BpeTokenizer does. Control tokens spelled in the byte alphabet become
// special added tokens, user-defined ones added tokens; the pre-tokenizer is ByteLevel
// ("gpt2") or Digits(individual_digits) then ByteLevel ("smollm", "starcoder"); no template
// (rrt adds no BOS). The config names bos_token and eos_token.
std::string tokenizer_json_from_bpe(const BpeVocab& vocab);
std::string tokenizer_config_from_bpe(const BpeVocab& vocab);

struct SpmVocab;

// A GGUF SentencePiece vocabulary (data/spm_tokenizer.h) as tokenizer.json and
// tokenizer_config.json texts, in Llama 2's tokenizer.json form: Prepend("▁") (with
// add_space_prefix) and Replace(" " -> "▁") normalizers, BPE with byte fallback and merges
// ranked by the merged piece's score, control / unknown tokens special added tokens and
// user-defined ones added tokens (all matched in the raw text), a Replace / ByteFallback / Fuse
// (/ Strip) decoder, a TemplateProcessing with BOS (EOS) as add_bos (add_eos) say. Text without
// added tokens encodes as SpmTokenizer does; the library prefixes "▁" after each added token
// too (tokenizer_json_from_spm.cpp lists the differences). The config names bos, eos and unk.
std::string tokenizer_json_from_spm(const SpmVocab& vocab);
std::string tokenizer_config_from_spm(const SpmVocab& vocab);

}  // namespace rrt
