#include "data/input_stream.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace rrt {

namespace {

constexpr size_t kBlock = 1 << 20;

int open_for_reading(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  RRT_CHECK(fd >= 0, path, "cannot open: ", std::strerror(errno));
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  return fd;
}

// read(2) until n bytes or the end; throws on an error.
size_t read_fully(int fd, char* out, size_t n, const std::string& path) {
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::read(fd, out + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    RRT_CHECK(r >= 0, path, "read failed: ", std::strerror(errno));
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  return got;
}

}  // namespace

const char* compression_name(Compression compression) {
  switch (compression) {
    case Compression::gzip:
      return "gzip";
    case Compression::zstd:
      return "zstd";
    default:
      return "none";
  }
}

struct ByteReader::Decoder {
  z_stream z{};
  bool z_open = false;
  ZSTD_DCtx* zstd = nullptr;
  // Whether the compressed stream stands at a frame (zstd) or member (gzip) boundary: the only
  // places where the file may end.
  bool at_boundary = true;
  ~Decoder() {
    if (z_open) inflateEnd(&z);
    if (zstd) ZSTD_freeDCtx(zstd);
  }
};

ByteReader::ByteReader(std::string path, Compression compression)
    : path_(std::move(path)), compression_(compression), in_(new char[kBlock]) {
  fd_ = open_for_reading(path_);
  if (compression_ == Compression::none) return;
  decoder_ = std::make_unique<Decoder>();
  if (compression_ == Compression::gzip) {
    // 15 + 32: a zlib or gzip header, detected.
    RRT_CHECK(inflateInit2(&decoder_->z, 15 + 32) == Z_OK, path_, "cannot start zlib's inflate");
    decoder_->z_open = true;
  } else {
    decoder_->zstd = ZSTD_createDCtx();
    RRT_CHECK(decoder_->zstd != nullptr, path_, "cannot create a zstd decompression context");
    // Frames written with --long (windows up to 2 GiB) decode too; a frame only gets the memory
    // its own header asks for.
    ZSTD_DCtx_setParameter(decoder_->zstd, ZSTD_d_windowLogMax, 31);
  }
}

ByteReader::~ByteReader() {
  if (fd_ >= 0) ::close(fd_);
}

size_t ByteReader::fill() {
  in_pos_ = 0;
  in_size_ = eof_ ? 0 : read_fully(fd_, in_.get(), kBlock, path_);
  if (in_size_ < kBlock) eof_ = true;
  file_bytes_ += static_cast<int64_t>(in_size_);
  crc_ = static_cast<uint32_t>(
      crc32(crc_, reinterpret_cast<const Bytef*>(in_.get()), static_cast<uInt>(in_size_)));
  return in_size_;
}

size_t ByteReader::read_plain(char* out, size_t n) {
  size_t got = 0;
  while (got < n) {
    if (in_pos_ == in_size_ && fill() == 0) break;
    const size_t take = std::min(n - got, in_size_ - in_pos_);
    std::memcpy(out + got, in_.get() + in_pos_, take);
    in_pos_ += take;
    got += take;
  }
  return got;
}

size_t ByteReader::read(char* out, size_t n) {
  if (done_ || n == 0) return 0;
  if (compression_ == Compression::none) {
    const size_t got = read_plain(out, n);
    if (got == 0) done_ = true;
    bytes_ += static_cast<int64_t>(got);
    return got;
  }
  Decoder& d = *decoder_;
  size_t got = 0;
  while (got == 0) {
    if (in_pos_ == in_size_ && fill() == 0) {
      // The file ended: fine between frames, a truncation inside one.
      RRT_CHECK(d.at_boundary, path_, "truncated ", compression_name(compression_),
                " stream: the file ends inside a compressed frame, after ", bytes_,
                " decompressed bytes (an interrupted download or copy?); fetch the file again");
      RRT_CHECK(file_bytes_ > 0, path_, "is empty, not ", compression_name(compression_), " data");
      done_ = true;
      return 0;
    }
    if (compression_ == Compression::zstd) {
      ZSTD_inBuffer input{in_.get(), in_size_, in_pos_};
      ZSTD_outBuffer output{out, n, 0};
      const size_t r = ZSTD_decompressStream(d.zstd, &output, &input);
      RRT_CHECK(!ZSTD_isError(r), path_, "corrupt zstd data after ", bytes_,
                " decompressed bytes: ", ZSTD_getErrorName(r));
      in_pos_ = input.pos;
      got = output.pos;
      // r == 0: a frame ended (and was flushed) exactly here.
      d.at_boundary = r == 0;
    } else {
      z_stream& z = d.z;
      z.next_in = reinterpret_cast<Bytef*>(in_.get() + in_pos_);
      z.avail_in = static_cast<uInt>(in_size_ - in_pos_);
      z.next_out = reinterpret_cast<Bytef*>(out);
      z.avail_out = static_cast<uInt>(std::min<size_t>(n, 1u << 30));
      const int r = inflate(&z, Z_NO_FLUSH);
      RRT_CHECK(r == Z_OK || r == Z_STREAM_END || r == Z_BUF_ERROR, path_,
                "corrupt gzip data after ", bytes_,
                " decompressed bytes: ", z.msg ? z.msg : "inflate failed");
      in_pos_ = in_size_ - z.avail_in;
      got = static_cast<size_t>(reinterpret_cast<char*>(z.next_out) - out);
      d.at_boundary = r == Z_STREAM_END;
      // Concatenated members (`cat a.gz b.gz`, pigz) are one stream, as gunzip reads them.
      if (r == Z_STREAM_END) inflateReset(&z);
    }
  }
  bytes_ += static_cast<int64_t>(got);
  return got;
}

LineReader::LineReader(ByteReader& in) : in_(in), buffer_(new char[kBlock]) {}

bool LineReader::next(std::string& line) {
  line.clear();
  bool any = false;
  while (true) {
    if (pos_ == size_) {
      if (end_) break;
      size_ = in_.read(buffer_.get(), kBlock);
      pos_ = 0;
      if (size_ == 0) {
        end_ = true;
        break;
      }
    }
    any = true;
    const char* begin = buffer_.get() + pos_;
    const void* newline = std::memchr(begin, '\n', size_ - pos_);
    if (newline != nullptr) {
      const size_t length = static_cast<size_t>(static_cast<const char*>(newline) - begin);
      line.append(begin, length);
      pos_ += length + 1;
      ++line_number_;
      return true;
    }
    line.append(begin, size_ - pos_);
    pos_ = size_;
  }
  if (!any) return false;
  ++line_number_;  // a last line without '\n'
  return true;
}

std::string read_file_head(const std::string& path, size_t n) {
  const int fd = open_for_reading(path);
  std::string head(n, '\0');
  size_t got = 0;
  try {
    got = read_fully(fd, head.data(), n, path);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  head.resize(got);
  return head;
}

uint32_t file_crc32(const std::string& path, int64_t* size) {
  ByteReader reader(path, Compression::none);
  std::unique_ptr<char[]> block(new char[kBlock]);
  while (reader.read(block.get(), kBlock) > 0) {
  }
  if (size) *size = reader.file_bytes();
  return reader.file_crc32();
}

}  // namespace rrt
