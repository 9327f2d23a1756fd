// The bytes of one input file of `rrt prepare`, streamed: read from disk in 1 MiB blocks and
// decompressed on the fly (gzip through zlib, zstd through libzstd), so no file is ever held
// whole. Truncated or corrupt compressed data is an error naming the file and how far it got,
// never a silent end of the input (docs/data.md, "Inputs").
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace rrt {

enum class Compression { none, gzip, zstd };

const char* compression_name(Compression compression);  // "none", "gzip", "zstd"

class ByteReader {
 public:
  // Opens `path`; nothing is read yet. Errors name the path.
  ByteReader(std::string path, Compression compression);
  ~ByteReader();
  ByteReader(const ByteReader&) = delete;
  ByteReader& operator=(const ByteReader&) = delete;

  // Up to n decompressed bytes into out; 0 only at the end of the input. Throws rrt::Error on a
  // read error, corrupt data or a compressed stream that ends before its last frame does.
  size_t read(char* out, size_t n);

  const std::string& path() const { return path_; }
  int64_t file_bytes() const { return file_bytes_; }  // bytes of the file read so far
  int64_t bytes() const { return bytes_; }            // decompressed bytes returned so far
  // CRC-32 (zlib's) of the file bytes read so far: the whole file's once read() returned 0.
  uint32_t file_crc32() const { return crc_; }

 private:
  struct Decoder;
  size_t fill();  // reads the next block of the file into in_; returns its size (0 at EOF)
  size_t read_plain(char* out, size_t n);

  std::string path_;
  Compression compression_;
  int fd_ = -1;
  std::unique_ptr<char[]> in_;
  size_t in_size_ = 0, in_pos_ = 0;
  bool eof_ = false, done_ = false;
  int64_t file_bytes_ = 0, bytes_ = 0;
  uint32_t crc_ = 0;
  std::unique_ptr<Decoder> decoder_;
};

// Lines of a ByteReader, split at '\n' (the '\n' is dropped, a '\r' before it kept: JSON reads
// it as whitespace). A last line without '\n' is a line too.
class LineReader {
 public:
  explicit LineReader(ByteReader& in);
  // The next line into `line`; false at the end of the input.
  bool next(std::string& line);
  int64_t line_number() const { return line_number_; }  // 1-based number of the last line read

 private:
  ByteReader& in_;
  std::unique_ptr<char[]> buffer_;
  size_t size_ = 0, pos_ = 0;
  bool end_ = false;
  int64_t line_number_ = 0;
};

// Reads the first `n` bytes of a file (fewer when it is shorter), for format detection.
std::string read_file_head(const std::string& path, size_t n);

// CRC-32 (zlib's) and size of a whole file, read in blocks.
uint32_t file_crc32(const std::string& path, int64_t* size = nullptr);

}  // namespace rrt
