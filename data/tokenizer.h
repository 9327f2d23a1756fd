// Tokenizers: text <-> token ids. The byte tokenizer needs no file (ids 0..255 are the bytes,
// 256 is EOS); the SentencePiece tokenizer loads a .model file through libsentencepiece; a GGUF
// file's tokenizer metadata is byte-level BPE (data/bpe_tokenizer.h) or SentencePiece BPE
// (data/spm_tokenizer.h); an HF tokenizer.json runs as the tokenizers library runs it
// (data/tokenizer_json.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace rrt {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  // EOS (and other control ids) decode to nothing; ids outside [0, vocab_size) throw.
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual int32_t eos_id() const = 0;
  // The id a model's input starts with, where the tokenizer has one (-1: none). rrt adds no
  // BOS itself; exports write it into config.json and generation_config.json.
  virtual int32_t bos_id() const { return -1; }
  // "byte", "sentencepiece:<file name>", "bpe:<file name>" or "hf:<file name>" (a
  // tokenizer.json); stored in every token shard.
  virtual std::string name() const = 0;
};

// ids 0..255 are the bytes of the text (UTF-8 or anything else), EOS = 256, vocab_size = 257.
class ByteTokenizer final : public Tokenizer {
 public:
  static constexpr int32_t kEos = 256;
  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  int64_t vocab_size() const override { return 257; }
  int32_t eos_id() const override { return kEos; }
  std::string name() const override { return "byte"; }
};

// A trained SentencePiece model (.model). EOS is the model's eos piece; a model without one is
// refused. vocab_size is the model's piece count.
class SentencePieceTokenizer final : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::string& model_path);
  ~SentencePieceTokenizer() override;
  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  int64_t vocab_size() const override;
  int32_t eos_id() const override;
  int32_t bos_id() const override;
  std::string name() const override;

 private:
  struct Model;
  std::string path_;
  std::unique_ptr<Model> model_;
};

// "byte" -> ByteTokenizer; "<path>.gguf" or "bpe:<path>" -> the GGUF file's tokenizer.ggml.*
// metadata: BpeTokenizer ("gpt2") or SpmTokenizer ("llama"), both named "bpe:<file name>";
// "<path>.json" -> TokenizerJson (an HF tokenizer.json); a folder (an HF checkpoint) -> its
// tokenizer.model, or its tokenizer.json when it has no tokenizer.model; anything else is the path
// of a SentencePiece .model file.
std::unique_ptr<Tokenizer> make_tokenizer(const std::string& spec);

// The name() the tokenizer make_tokenizer(spec) builds would have, without reading any file
// ("byte", "bpe:model.gguf", "sentencepiece:tokenizer.model", "hf:tokenizer.json"): training
// compares it with the name stored in the shards, on machines that may hold the shards but not
// the tokenizer (a folder is looked into for which of its files it would read).
std::string tokenizer_name_for(const std::string& spec);

// Refuses a tokenizer whose ids a model of `model_vocab` rows cannot embed, or whose vocabulary
// is less than half the model's (not the model's tokenizer). `what` names the command.
void check_tokenizer_fits_model(const Tokenizer& tokenizer, int64_t model_vocab,
                                const std::string& what);

}  // namespace rrt
