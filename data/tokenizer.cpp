#include "data/tokenizer.h"

#include <sentencepiece_processor.h>

#include <cctype>
#include <filesystem>

#include "core/error.h"
#include "data/spm_tokenizer.h"
#include "data/tokenizer_json.h"

namespace rrt {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// ByteTokenizer

std::vector<int32_t> ByteTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids(text.size());
  for (size_t i = 0; i < text.size(); ++i) ids[i] = static_cast<unsigned char>(text[i]);
  return ids;
}

std::string ByteTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string text;
  text.reserve(ids.size());
  for (int32_t id : ids) {
    if (id == kEos) continue;
    RRT_CHECK(id >= 0 && id < 256, "tokenizer byte", "id ", id,
              " is outside the byte vocabulary [0, 257)");
    text.push_back(static_cast<char>(static_cast<unsigned char>(id)));
  }
  return text;
}

// ---------------------------------------------------------------------------------------------
// SentencePieceTokenizer

struct SentencePieceTokenizer::Model {
  sentencepiece::SentencePieceProcessor processor;
};

SentencePieceTokenizer::SentencePieceTokenizer(const std::string& model_path)
    : path_(model_path), model_(std::make_unique<Model>()) {
  std::error_code error;
  RRT_CHECK(fs::is_regular_file(model_path, error), model_path,
            "tokenizer model not found; give 'byte' or the path of a SentencePiece .model file");
  const auto status = model_->processor.Load(model_path);
  RRT_CHECK(status.ok(), model_path, "cannot load the SentencePiece model: ", status.ToString(),
            "; is this a SentencePiece .model file?");
  RRT_CHECK(model_->processor.eos_id() >= 0, model_path,
            "the SentencePiece model has no EOS piece; retrain it with --eos_id=<id> (>= 0)");
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

std::vector<int32_t> SentencePieceTokenizer::encode(std::string_view text) const {
  std::vector<int> ids;
  const auto status = model_->processor.Encode(text, &ids);
  RRT_CHECK(status.ok(), path_, "SentencePiece encode failed: ", status.ToString());
  return std::vector<int32_t>(ids.begin(), ids.end());
}

std::string SentencePieceTokenizer::decode(const std::vector<int32_t>& ids) const {
  const int64_t vocab = vocab_size();
  for (int32_t id : ids) {
    RRT_CHECK(id >= 0 && id < vocab, path_, "id ", id, " is outside the vocabulary [0, ", vocab,
              ")");
  }
  std::string text;
  const auto status = model_->processor.Decode(std::vector<int>(ids.begin(), ids.end()), &text);
  RRT_CHECK(status.ok(), path_, "SentencePiece decode failed: ", status.ToString());
  return text;
}

int64_t SentencePieceTokenizer::vocab_size() const { return model_->processor.GetPieceSize(); }

int32_t SentencePieceTokenizer::eos_id() const { return model_->processor.eos_id(); }
int32_t SentencePieceTokenizer::bos_id() const { return model_->processor.bos_id(); }

std::string SentencePieceTokenizer::name() const {
  return "sentencepiece:" + fs::path(path_).filename().string();
}

// ---------------------------------------------------------------------------------------------

// The tokenizer file of an HF checkpoint folder: tokenizer.model first (what rrt has always
// read there, so the names stored in existing shards still match), else tokenizer.json.
fs::path tokenizer_in_folder(const fs::path& folder) {
  std::error_code error;
  const fs::path json = folder / "tokenizer.json";
  if (!fs::exists(folder / "tokenizer.model", error) && fs::is_regular_file(json, error))
    return json;
  return folder / "tokenizer.model";
}

std::string tokenizer_name_for(const std::string& spec) {
  if (spec == "byte") return "byte";
  if (is_tokenizer_json_path(spec)) return "hf:" + fs::path(spec).filename().string();
  std::string extension = fs::path(spec).extension().string();
  for (char& c : extension) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const bool bpe_prefix = spec.rfind("bpe:", 0) == 0;
  if (bpe_prefix || extension == ".gguf")
    return "bpe:" + fs::path(bpe_prefix ? spec.substr(4) : spec).filename().string();
  std::error_code error;
  if (fs::is_directory(spec, error)) {
    const fs::path file = tokenizer_in_folder(spec);
    return (file.extension() == ".json" ? "hf:" : "sentencepiece:") + file.filename().string();
  }
  return "sentencepiece:" + fs::path(spec).filename().string();
}

std::unique_ptr<Tokenizer> make_tokenizer(const std::string& spec) {
  if (spec == "byte") return std::make_unique<ByteTokenizer>();
  RRT_CHECK(!spec.empty(), "tokenizer",
            "empty tokenizer; give 'byte', the path of a SentencePiece .model file, of an HF "
            "tokenizer.json or of a GGUF file (.gguf, or bpe:<path>)");
  if (is_tokenizer_json_path(spec)) {
    std::error_code error;
    RRT_CHECK(fs::is_regular_file(spec, error), spec,
              "tokenizer.json not found; give the path of an HF tokenizers file");
    return std::make_unique<TokenizerJson>(spec);
  }
  std::string extension = fs::path(spec).extension().string();
  for (char& c : extension) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const bool bpe_prefix = spec.rfind("bpe:", 0) == 0;
  if (bpe_prefix || extension == ".gguf") {
    const std::string path = bpe_prefix ? spec.substr(4) : spec;
    std::error_code error;
    RRT_CHECK(fs::is_regular_file(path, error), path,
              "tokenizer GGUF file not found; give the path of a GGUF file whose "
              "tokenizer.ggml.* metadata holds a byte-level BPE ('gpt2') or SentencePiece "
              "('llama') vocabulary");
    return gguf_tokenizer(path);
  }
  // A model folder (an HF checkpoint): the tokenizer file beside its weights.
  std::error_code error;
  if (fs::is_directory(spec, error)) {
    const fs::path file = tokenizer_in_folder(spec);
    RRT_CHECK(fs::is_regular_file(file, error), spec,
              "is a folder without tokenizer.model or tokenizer.json; give the tokenizer file "
              "itself (a SentencePiece .model, an HF tokenizer.json or a .gguf)");
    if (file.extension() == ".json") return std::make_unique<TokenizerJson>(file.string());
    return std::make_unique<SentencePieceTokenizer>(file.string());
  }
  return std::make_unique<SentencePieceTokenizer>(spec);
}

void check_tokenizer_fits_model(const Tokenizer& tokenizer, int64_t model_vocab,
                                const std::string& what) {
  const int64_t vocab = tokenizer.vocab_size();
  RRT_CHECK(vocab <= model_vocab && vocab * 2 >= model_vocab, what, "the tokenizer ",
            tokenizer.name(), " has ", vocab, " tokens but the model's vocabulary is ", model_vocab,
            ": it is not the model's tokenizer. Give the model's own (--tokenizer "
            "<its tokenizer.json, tokenizer.model or .gguf>, or data.tokenizer in its config)");
}

}  // namespace rrt
