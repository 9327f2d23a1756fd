#include "data/tokenizer_json.h"

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <queue>
#include <sstream>
#include <unordered_map>

#include "core/error.h"
#include "data/tokenizer_json_impl.h"
#include "data/tokenizer_json_parts.h"
#include "data/tokenizer_json_text.h"

namespace rrt {

namespace fs = std::filesystem;
using nlohmann::json;
using tokjson::Piece;

namespace {

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  RRT_CHECK(in.good(), path, "cannot open the tokenizer file");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

json parse_json(const std::string& text, const std::string& where) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    RRT_FAIL(where, "is not valid JSON: ", e.what());
  }
}

void refuse_unknown_keys(const json& node, const std::string& field,
                         std::initializer_list<const char*> known) {
  RRT_CHECK(node.is_object(), field, "is not a JSON object");
  for (const auto& [key, value] : node.items()) {
    bool ok = false;
    for (const char* k : known) ok = ok || key == k;
    RRT_CHECK(ok, field.empty() ? key : field + "." + key,
              "is a field rrt does not implement; rrt refuses the tokenizer rather than "
              "tokenize differently from the tokenizers library");
  }
}

// tokenizer_config.json's bos_token / eos_token: a string, an AddedToken object or null.
// Returns false when the key is absent.
bool config_token(const json& config, const char* key, std::string& content, bool& is_null) {
  if (!config.is_object() || !config.contains(key)) return false;
  const json& v = config[key];
  is_null = v.is_null();
  if (v.is_string()) content = v.get<std::string>();
  if (v.is_object() && v.contains("content")) content = v["content"].get<std::string>();
  return true;
}

}  // namespace

int32_t TokenizerJson::Impl::id_of(std::string_view token) const {
  for (const Added& a : added)
    if (a.original == token) return a.id;
  const auto it = vocab.find(token);
  return it == vocab.end() ? -1 : it->second;
}

void TokenizerJson::Impl::read_model(const json& model) {
  RRT_CHECK(model.is_object(), where, "has no \"model\" object");
  const std::string type = model.value("type", model.contains("merges") ? "BPE" : "");
  RRT_CHECK(type == "BPE", "model.type", "is '", type, "' in ", where,
            "; rrt reads BPE models only (WordPiece, WordLevel "
            "and Unigram tokenizers are not implemented)");
  refuse_unknown_keys(
      model, "model",
      {"type", "dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix",
       "fuse_unk", "byte_fallback", "ignore_merges", "vocab", "merges"});
  RRT_CHECK(!model.contains("dropout") || model["dropout"].is_null() ||
                model["dropout"].get<double>() == 0.0,
            "model.dropout",
            "BPE dropout (random merges) is for training only; rrt encodes "
            "deterministically. Set it to null.");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    RRT_CHECK(!model.contains(key) || model[key].is_null() || model[key].get<std::string>().empty(),
              std::string("model.") + key,
              "is not implemented by rrt (BPE with word-piece "
              "prefixes or suffixes); byte-level and SentencePiece-style BPE have none");
  }
  byte_fallback = model.value("byte_fallback", false);
  fuse_unk = model.value("fuse_unk", false);
  ignore_merges = model.value("ignore_merges", false);

  RRT_CHECK(model.contains("vocab") && model["vocab"].is_object(), "model.vocab",
            "is missing or not an object of token -> id");
  int64_t max_id = -1;
  for (const auto& [token, id_node] : model["vocab"].items()) {
    const int64_t id = id_node.get<int64_t>();
    RRT_CHECK(id >= 0 && id < INT32_MAX, "model.vocab", "token '", token, "' has id ", id);
    vocab.emplace(token, static_cast<int32_t>(id));
    max_id = std::max(max_id, id);
  }
  id_token.assign(static_cast<size_t>(max_id + 1), "");
  has_model_token.assign(static_cast<size_t>(max_id + 1), 0);
  for (const auto& [token, id] : vocab) {
    id_token[id] = token;
    has_model_token[id] = 1;
  }
  if (model.contains("unk_token") && !model["unk_token"].is_null()) {
    const std::string name = model["unk_token"].get<std::string>();
    const auto it = vocab.find(name);
    RRT_CHECK(it != vocab.end(), "model.unk_token", "'", name, "' is not in model.vocab");
    unk = it->second;
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    const auto it = vocab.find(name);
    byte_tokens[b] = it == vocab.end() ? -1 : it->second;
  }

  RRT_CHECK(model.contains("merges") && model["merges"].is_array(), "model.merges",
            "is missing or not a list");
  const json& list = model["merges"];
  merges.reserve(list.size());
  for (size_t rank = 0; rank < list.size(); ++rank) {
    std::string left, right;
    const json& m = list[rank];
    if (m.is_string()) {
      const std::string line = m.get<std::string>();
      const size_t space = line.find(' ');
      RRT_CHECK(space != std::string::npos, "model.merges", "merge ", rank, " '", line,
                "' is not two tokens separated by a space");
      left = line.substr(0, space);
      right = line.substr(space + 1);
    } else {
      RRT_CHECK(m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string(),
                "model.merges", "merge ", rank, " is neither \"a b\" nor [\"a\", \"b\"]");
      left = m[0].get<std::string>();
      right = m[1].get<std::string>();
    }
    const auto l = vocab.find(left), r = vocab.find(right), merged = vocab.find(left + right);
    RRT_CHECK(l != vocab.end() && r != vocab.end() && merged != vocab.end(), "model.merges",
              "merge ", rank, " ('", left, "', '", right,
              "') names or makes a token that is not "
              "in model.vocab ('",
              l == vocab.end()   ? left
              : r == vocab.end() ? right
                                 : left + right,
              "')");
    // The library collects merges into a map: a repeated pair takes its last rank.
    merges.insert_or_assign(bpe_pair_key(l->second, r->second),
                            BpeMerge{static_cast<int32_t>(rank), merged->second});
  }
  vocab_size = max_id + 1;
}

void TokenizerJson::Impl::read_added_tokens(const json& list) {
  if (list.is_null()) return;
  RRT_CHECK(list.is_array(), "added_tokens", "is not a list");
  // The library ignores the ids written here: a token the model has keeps the model's id, the
  // others are numbered on from the model's vocabulary size in file order (with a warning when
  // that differs from the file). A file where it differs is refused rather than followed.
  int64_t next_id = static_cast<int64_t>(vocab.size());
  tokjson::StringMap<int32_t> seen;
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string field = "added_tokens[" + std::to_string(i) + "]";
    const json& t = list[i];
    refuse_unknown_keys(
        t, field, {"id", "content", "single_word", "lstrip", "rstrip", "normalized", "special"});
    for (const char* key : {"single_word", "lstrip", "rstrip"}) {
      RRT_CHECK(!t.value(key, false), field + "." + key, "is true for '",
                t.value("content", std::string()),
                "'; rrt matches added tokens exactly and does "
                "not implement single_word, lstrip or rstrip");
    }
    const int64_t id = t.at("id").get<int64_t>();
    RRT_CHECK(id >= 0 && id < INT32_MAX, field + ".id", id, " is not a token id");
    const std::string original = t.at("content").get<std::string>();
    RRT_CHECK(!original.empty(), field + ".content", "is empty");
    RRT_CHECK(seen.emplace(original, static_cast<int32_t>(id)).second, field + ".content", "'",
              original, "' is added twice");
    const auto in_model = vocab.find(original);
    const int64_t library_id = in_model != vocab.end() ? in_model->second : next_id++;
    RRT_CHECK(id == library_id, field + ".id", "is ", id, " for '", original,
              "', but the tokenizers library gives it id ", library_id,
              in_model != vocab.end() ? " (its id in model.vocab)"
                                      : " (added tokens the model lacks are numbered on from the "
                                        "model's vocabulary size, in file order)",
              "; rrt refuses an inconsistent file rather than guess");
    std::string content = original;
    const bool special = t.value("special", false);
    // The library's default: special tokens are matched in the raw text, others after the
    // normalizer (their content normalized too).
    const bool normalized = t.value("normalized", !special);
    if (normalized) content = normalizer(content);
    Added a{content, original, static_cast<int32_t>(id), special};
    added_of_id[a.id] = added.size();
    added.push_back(a);
    (normalized ? normalized_by_byte : raw_by_byte)[static_cast<unsigned char>(content[0])]
        .push_back(a);
    vocab_size = std::max<int64_t>(vocab_size, id + 1);
  }
  for (auto* table : {&raw_by_byte, &normalized_by_byte}) {
    for (auto& bucket : *table) {
      std::stable_sort(bucket.begin(), bucket.end(), [](const Added& a, const Added& b) {
        return a.content.size() > b.content.size();
      });
    }
  }
}

void TokenizerJson::Impl::read_post_processor(const json& node, const std::string& field) {
  if (node.is_null()) return;
  const std::string type = node.value("type", "");
  if (type == "Sequence") {
    refuse_unknown_keys(node, field, {"type", "processors"});
    const json& list = node.at("processors");
    for (size_t i = 0; i < list.size(); ++i)
      read_post_processor(list[i], field + ".processors[" + std::to_string(i) + "]");
    return;
  }
  if (type == "ByteLevel") {  // offsets only: the ids stay as they are
    refuse_unknown_keys(node, field, {"type", "add_prefix_space", "trim_offsets", "use_regex"});
    return;
  }
  RRT_CHECK(type == "TemplateProcessing", field + ".type", "post-processor '", type,
            "' is not implemented by rrt (it reads TemplateProcessing, ByteLevel and Sequence)");
  refuse_unknown_keys(node, field, {"type", "single", "pair", "special_tokens"});
  RRT_CHECK(!has_template, field, "a second TemplateProcessing; rrt reads one");
  has_template = true;
  const json& specials = node.at("special_tokens");
  bool seen_a = false;
  for (const json& item : node.at("single")) {
    if (item.contains("Sequence")) {
      RRT_CHECK(item["Sequence"].value("id", "") == "A" && !seen_a, field + ".single",
                "must hold the sequence $A once");
      seen_a = true;
      continue;
    }
    RRT_CHECK(item.contains("SpecialToken"), field + ".single", "holds ", item.dump(),
              ", neither a SpecialToken nor a Sequence");
    const std::string name = item["SpecialToken"].at("id").get<std::string>();
    RRT_CHECK(specials.contains(name), field + ".special_tokens", "has no entry for '", name, "'");
    for (const json& id : specials[name].at("ids"))
      (seen_a ? suffix : prefix).push_back(id.get<int32_t>());
  }
  RRT_CHECK(seen_a, field + ".single", "has no $A sequence");
}

void TokenizerJson::Impl::choose_bos_eos(const json& config, const std::string& config_where) {
  std::string content;
  bool is_null = false;
  if (config_token(config, "eos_token", content, is_null) && !is_null) {
    eos = id_of(content);
    RRT_CHECK(eos >= 0, config_where + ": eos_token", "'", content, "' is not a token of ", source);
  } else {
    for (const char* name : {"</s>", "<eos>", "<|endoftext|>", "<|end_of_text|>"}) {
      for (const Added& a : added) {
        if (eos < 0 && a.original == name) eos = a.id;
      }
    }
  }
  RRT_CHECK(eos >= 0, source,
            "no EOS token: tokenizer_config.json beside it names no "
            "eos_token and no added token is </s>, <eos>, <|endoftext|> or <|end_of_text|>; "
            "rrt ends every document with EOS. Put a tokenizer_config.json with \"eos_token\" "
            "beside the file.");
  content.clear();
  if (config_token(config, "bos_token", content, is_null)) {
    bos = is_null ? -1 : id_of(content);
    RRT_CHECK(is_null || bos >= 0, config_where + ": bos_token", "'", content,
              "' is not a token of ", source);
  } else if (prefix.size() == 1) {
    bos = prefix[0];
  }
}

TokenizerJson::TokenizerJson(const std::string& path)
    : TokenizerJson(
          read_text_file(path),
          [&] {
            const fs::path config = fs::path(path).parent_path() / "tokenizer_config.json";
            std::error_code error;
            return fs::is_regular_file(config, error) ? read_text_file(config.string())
                                                      : std::string();
          }(),
          path) {}

TokenizerJson::TokenizerJson(const std::string& json_text, const std::string& config_text,
                             const std::string& source)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.source = source;
  m.where = source.empty() ? "tokenizer.json" : source;
  const json file = parse_json(json_text, m.where);
  RRT_CHECK(file.is_object(), m.where, "is not a tokenizer.json (not a JSON object)");
  try {
    refuse_unknown_keys(file, "",
                        {"version", "truncation", "padding", "added_tokens", "normalizer",
                         "pre_tokenizer", "model", "post_processor", "decoder"});
    for (const char* key : {"truncation", "padding"}) {
      RRT_CHECK(!file.contains(key) || file[key].is_null(), key,
                "is set; rrt encodes whole documents and neither truncates nor pads. Set it to "
                "null (tokenizer.no_truncation() / no_padding()).");
    }
    m.normalizer = tokjson::make_normalizer(file.value("normalizer", json()), "normalizer");
    m.pre_tokenizer =
        tokjson::make_pre_tokenizer(file.value("pre_tokenizer", json()), "pre_tokenizer");
    m.decoder = tokjson::make_decoder(file.value("decoder", json()), "decoder");
    m.read_model(file.value("model", json()));
    m.read_added_tokens(file.value("added_tokens", json()));
    m.read_post_processor(file.value("post_processor", json()), "post_processor");
    for (int32_t id : m.prefix)
      RRT_CHECK(id >= 0 && id < m.vocab_size, "post_processor", "id ", id);
    for (int32_t id : m.suffix)
      RRT_CHECK(id >= 0 && id < m.vocab_size, "post_processor", "id ", id);
    const std::string config_where =
        (fs::path(source).parent_path() / "tokenizer_config.json").string();
    m.choose_bos_eos(config_text.empty() ? json() : parse_json(config_text, config_where),
                     config_where);
  } catch (const json::exception& e) {
    RRT_FAIL(m.where, "unexpected JSON in the tokenizer: ", e.what());
  }
}

TokenizerJson::~TokenizerJson() = default;

int64_t TokenizerJson::vocab_size() const { return impl_->vocab_size; }
int32_t TokenizerJson::eos_id() const { return impl_->eos; }
int32_t TokenizerJson::bos_id() const { return impl_->bos; }
int32_t TokenizerJson::token_to_id(std::string_view token) const { return impl_->id_of(token); }

std::string TokenizerJson::name() const {
  return "hf:" +
         fs::path(impl_->source.empty() ? "tokenizer.json" : impl_->source).filename().string();
}

bool is_tokenizer_json_path(const std::string& spec) {
  std::string extension = fs::path(spec).extension().string();
  for (char& c : extension) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return extension == ".json";
}

}  // namespace rrt
