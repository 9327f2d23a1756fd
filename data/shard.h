// Token shard files (docs/data.md): one HDF5 file per shard with a 1-D dataset /tokens (uint16
// or uint32) and scalar attributes on the root group: format "rrt-tokens", format_version 1,
// tokenizer, vocab_size, eos_id, documents, tokens. ShardWriter appends in chunks under a
// temporary name and renames on finish(); ShardReader reads windows by hyperslab.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace rrt {

inline constexpr const char* kShardFormat = "rrt-tokens";
inline constexpr int64_t kShardFormatVersion = 1;
// HDF5 chunk of /tokens: small enough that a random window reads little more than it needs.
inline constexpr int64_t kShardChunkTokens = 1 << 13;

struct ShardInfo {
  std::string path;
  std::string tokenizer;  // Tokenizer::name() of the tokenizer that wrote it
  std::string dtype;  // of /tokens on disk: "uint16", "uint32" (readers also accept int16, int32)
  int64_t vocab_size = 0;
  int64_t eos_id = 0;
  int64_t documents = 0;  // documents whose EOS lies in this shard (a document may span shards)
  int64_t tokens = 0;     // length of /tokens
};

// "uint16" when vocab_size <= 65535, else "uint32".
std::string shard_dtype_for(int64_t vocab_size);

class ShardWriter {
 public:
  // Creates a temporary beside `path` (core/durable_file.h); nothing appears under `path` until
  // finish(). Tokens are buffered and written `chunk_tokens` at a time (also the HDF5 chunk
  // size), so memory stays bounded.
  ShardWriter(std::string path, const std::string& tokenizer, int64_t vocab_size, int32_t eos_id,
              int64_t chunk_tokens = kShardChunkTokens);
  // Without finish(): closes and deletes the temporary file.
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  // ids must already lie in [0, vocab_size).
  void append(const int32_t* ids, int64_t n);
  void end_document() { ++documents_; }
  int64_t tokens() const { return tokens_; }
  int64_t documents() const { return documents_; }
  const std::string& path() const { return path_; }
  // Writes what is buffered and the attributes, closes, fsyncs and renames to `path`.
  void finish();

 private:
  struct Files;
  void create_file(const std::string& tokenizer, int64_t vocab_size, int32_t eos_id);
  void flush();

  std::string path_, temp_path_;
  std::vector<uint32_t> pending_;
  std::vector<uint16_t> narrowed_;  // pending_ in the stored width when that is uint16
  bool narrow_ = false;
  int64_t chunk_tokens_;
  int64_t written_ = 0, tokens_ = 0, documents_ = 0;
  std::unique_ptr<Files> files_;
};

class ShardReader {
 public:
  // Opens the file, checks it is an rrt token shard of a known version whose /tokens holds
  // exactly `tokens` ids, and keeps it open. Every error names the file.
  explicit ShardReader(const std::string& path);
  ~ShardReader();
  ShardReader(ShardReader&&) noexcept;
  ShardReader& operator=(ShardReader&&) noexcept;

  const ShardInfo& info() const { return info_; }
  // out[0 .. n) = tokens [offset, offset + n) of this shard; throws on a token >= vocab_size.
  void read(int64_t offset, int64_t n, int32_t* out) const;

 private:
  struct Files;
  template <typename Stored>
  void widen(const unsigned char* raw, int64_t n, int64_t offset, int32_t* out) const;
  ShardInfo info_;
  std::unique_ptr<Files> files_;
};

// Reads a shard's attributes and checks it as ShardReader does.
ShardInfo read_shard_info(const std::string& path);

}  // namespace rrt
