// Encoding and decoding of a TokenizerJson, step by step as the tokenizers library does them
// (the steps are listed in data/tokenizer_json.h).
#include <cstdio>
#include <utility>

#include "core/error.h"
#include "data/bpe_merge.h"
#include "data/tokenizer_json.h"
#include "data/tokenizer_json_impl.h"
#include "data/tokenizer_json_text.h"

namespace rrt {

namespace {

using Added = TokenizerJson::Impl::Added;

// A piece of text or an added token found in it.
struct Segment {
  std::string_view text;
  size_t offset;  // in the string that was searched
  int32_t token;  // >= 0: an added token
};

// Cuts the added tokens of `table` out of `text`: at the leftmost position where one starts,
// the longest (the library's Aho-Corasick, LeftmostLongest).
std::vector<Segment> cut_added_tokens(std::string_view text,
                                      const std::array<std::vector<Added>, 256>& table) {
  std::vector<Segment> out;
  size_t start = 0;
  for (size_t pos = 0; pos < text.size(); ++pos) {
    for (const Added& a : table[static_cast<unsigned char>(text[pos])]) {
      if (text.compare(pos, a.content.size(), a.content) != 0) continue;
      if (pos > start) out.push_back({text.substr(start, pos - start), start, -1});
      out.push_back({text.substr(pos, a.content.size()), pos, a.id});
      pos += a.content.size() - 1;
      start = pos + 1;
      break;
    }
  }
  if (start < text.size()) out.push_back({text.substr(start), start, -1});
  return out;
}

}  // namespace

// The BPE model on one pre-tokenized piece: characters (or their byte tokens, or the unknown
// token) merged by rank, lowest first, ties to the left (data/bpe_merge.h, as the library's
// Word::merge_all).
void TokenizerJson::Impl::merge_word(const std::string& piece, std::vector<int32_t>& out) const {
  std::vector<int32_t> id;
  id.reserve(piece.size());
  int32_t pending_unk = -1;  // the library fuses unknown characters and flushes them late
  for (size_t pos = 0; pos < piece.size();) {
    const size_t length = tokjson::utf8_length(piece, pos);
    const std::string_view ch(piece.data() + pos, length);
    pos += length;
    const auto it = vocab.find(ch);
    if (it != vocab.end()) {
      if (pending_unk >= 0) id.push_back(pending_unk);
      pending_unk = -1;
      id.push_back(it->second);
      continue;
    }
    if (byte_fallback) {
      bool all = true;
      for (char b : ch) all = all && byte_tokens[static_cast<unsigned char>(b)] >= 0;
      if (all) {
        for (char b : ch) id.push_back(byte_tokens[static_cast<unsigned char>(b)]);
        continue;
      }
    }
    if (unk >= 0) {
      if (pending_unk >= 0 && !fuse_unk) id.push_back(pending_unk);
      pending_unk = unk;
    }
    // Without an unknown token the library drops the character.
  }
  if (pending_unk >= 0) id.push_back(pending_unk);

  bpe_merge(std::move(id), merges, out);
}

void TokenizerJson::Impl::encode_piece(const std::string& piece, std::vector<int32_t>& out) const {
  if (ignore_merges) {
    const auto it = vocab.find(piece);
    if (it != vocab.end()) {
      out.push_back(it->second);
      return;
    }
  }
  if (cache.lookup(piece, out)) return;
  const size_t first = out.size();
  merge_word(piece, out);
  cache.insert(piece, std::span<const int32_t>(out).subspan(first));
}

void TokenizerJson::Impl::encode_text(std::string_view raw, std::vector<int32_t>& ids) const {
  const std::string lossy = tokjson::valid_utf8(raw) ? std::string() : tokjson::utf8_lossy(raw);
  const std::string_view text = lossy.empty() ? raw : std::string_view(lossy);
  for (const Segment& segment : cut_added_tokens(text, raw_by_byte)) {
    if (segment.token >= 0) {
      ids.push_back(segment.token);
      continue;
    }
    const std::string normalized = normalizer(std::string(segment.text));
    for (const Segment& part : cut_added_tokens(normalized, normalized_by_byte)) {
      if (part.token >= 0) {
        ids.push_back(part.token);
        continue;
      }
      std::vector<tokjson::Piece> pieces{
          {std::string(part.text), segment.offset == 0 && part.offset == 0}};
      pre_tokenizer(pieces);
      for (const tokjson::Piece& p : pieces) encode_piece(p.text, ids);
    }
  }
}

std::vector<int32_t> TokenizerJson::encode(std::string_view text) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 8);
  impl_->encode_text(text, ids);
  return ids;
}

std::vector<int32_t> TokenizerJson::encode_with_special_tokens(std::string_view text) const {
  std::vector<int32_t> ids = impl_->prefix;
  impl_->encode_text(text, ids);
  ids.insert(ids.end(), impl_->suffix.begin(), impl_->suffix.end());
  return ids;
}

std::string TokenizerJson::decode(const std::vector<int32_t>& ids) const {
  return decode(ids, /*skip_special_tokens=*/true);
}

std::string TokenizerJson::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  const Impl& m = *impl_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    RRT_CHECK(id >= 0 && id < m.vocab_size, name(), "id ", id, " is outside the vocabulary [0, ",
              m.vocab_size, ")");
    const auto added = m.added_of_id.find(id);
    if (added != m.added_of_id.end()) {
      const Added& a = m.added[added->second];
      if (!(skip_special && a.special)) tokens.push_back(a.original);
    } else if (static_cast<size_t>(id) < m.id_token.size() && m.has_model_token[id]) {
      tokens.push_back(m.id_token[id]);
    }
    // An id with no token (a gap in the vocabulary) decodes to nothing, as in the library.
  }
  std::string text;
  for (const std::string& t : m.decoder(std::move(tokens))) text += t;
  return text;
}

}  // namespace rrt
