#include "data/shard.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "core/durable_file.h"
#include "core/error.h"
#include "data/h5.h"

namespace rrt {

namespace fs = std::filesystem;

std::string shard_dtype_for(int64_t vocab_size) {
  return vocab_size <= 65535 ? "uint16" : "uint32";
}

// ---------------------------------------------------------------------------------------------
// ShardWriter

struct ShardWriter::Files {
  h5::Handle file, tokens;  // tokens is closed before file (members die in reverse order)
};

ShardWriter::ShardWriter(std::string path, const std::string& tokenizer, int64_t vocab_size,
                         int32_t eos_id, int64_t chunk_tokens)
    : path_(std::move(path)),
      temp_path_(temporary_path(path_)),
      chunk_tokens_(std::max<int64_t>(1, chunk_tokens)),
      files_(std::make_unique<Files>()) {
  try {
    create_file(tokenizer, vocab_size, eos_id);
  } catch (...) {
    files_.reset();
    std::error_code ignored;
    fs::remove(temp_path_, ignored);
    throw;
  }
  pending_.reserve(static_cast<size_t>(chunk_tokens_));
}

void ShardWriter::create_file(const std::string& tokenizer, int64_t vocab_size, int32_t eos_id) {
  h5::QuietErrors quiet;
  files_->file =
      h5::Handle(H5Fcreate(temp_path_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
  RRT_CHECK(files_->file.valid(), temp_path_, "cannot create the shard file", h5::error_suffix(),
            "; check that the output directory is writable");
  const hsize_t zero = 0, unlimited = H5S_UNLIMITED, chunk = static_cast<hsize_t>(chunk_tokens_);
  h5::Handle space(H5Screate_simple(1, &zero, &unlimited), H5Sclose);
  h5::Handle create(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  H5Pset_chunk(create.get(), 1, &chunk);
  narrow_ = shard_dtype_for(vocab_size) == "uint16";
  const hid_t type = narrow_ ? H5T_STD_U16LE : H5T_STD_U32LE;
  files_->tokens = h5::Handle(H5Dcreate2(files_->file.get(), "tokens", type, space.get(),
                                         H5P_DEFAULT, create.get(), H5P_DEFAULT),
                              H5Dclose);
  RRT_CHECK(files_->tokens.valid(), temp_path_, "cannot create the dataset /tokens",
            h5::error_suffix());
  // Everything but the counts is known now; the counts are written by finish().
  const hid_t root = files_->file.get();
  h5::write_attribute(root, "format", std::string(kShardFormat), temp_path_);
  h5::write_attribute(root, "format_version", kShardFormatVersion, temp_path_);
  h5::write_attribute(root, "tokenizer", tokenizer, temp_path_);
  h5::write_attribute(root, "vocab_size", vocab_size, temp_path_);
  h5::write_attribute(root, "eos_id", static_cast<int64_t>(eos_id), temp_path_);
}

ShardWriter::~ShardWriter() {
  if (!files_) return;  // finished
  h5::QuietErrors quiet;
  files_.reset();
  std::error_code ignored;
  fs::remove(temp_path_, ignored);
}

void ShardWriter::append(const int32_t* ids, int64_t n) {
  RRT_CHECK(files_ != nullptr, path_, "append after finish()");
  tokens_ += n;
  while (n > 0) {
    const int64_t take = std::min(n, chunk_tokens_ - static_cast<int64_t>(pending_.size()));
    pending_.insert(pending_.end(), ids, ids + take);
    ids += take;
    n -= take;
    if (static_cast<int64_t>(pending_.size()) == chunk_tokens_) flush();
  }
}

void ShardWriter::flush() {
  if (pending_.empty()) return;
  h5::QuietErrors quiet;
  const hsize_t start = static_cast<hsize_t>(written_), count = pending_.size();
  const hsize_t extent = start + count;
  const hid_t tokens = files_->tokens.get();
  RRT_CHECK(H5Dset_extent(tokens, &extent) >= 0, temp_path_, "cannot extend /tokens",
            h5::error_suffix(), "; is the disk full?");
  h5::Handle file_space(H5Dget_space(tokens), H5Sclose);
  H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, &start, nullptr, &count, nullptr);
  h5::Handle memory_space(H5Screate_simple(1, &count, nullptr), H5Sclose);
  // Written in the stored width: HDF5's conversion path would allocate and clear 1 MB per call.
  const void* data = pending_.data();
  hid_t memory_type = H5T_NATIVE_UINT32;
  if (narrow_) {
    narrowed_.assign(pending_.begin(), pending_.end());
    data = narrowed_.data();
    memory_type = H5T_NATIVE_UINT16;
  }
  RRT_CHECK(
      H5Dwrite(tokens, memory_type, memory_space.get(), file_space.get(), H5P_DEFAULT, data) >= 0,
      temp_path_, "cannot write tokens", h5::error_suffix(), "; is the disk full?");
  written_ += static_cast<int64_t>(count);
  pending_.clear();
}

void ShardWriter::finish() {
  RRT_CHECK(files_ != nullptr, path_, "finish() called twice");
  flush();
  {
    h5::QuietErrors quiet;
    const hid_t root = files_->file.get();
    h5::write_attribute(root, "documents", documents_, temp_path_);
    h5::write_attribute(root, "tokens", tokens_, temp_path_);
    files_->tokens.reset();
    RRT_CHECK(files_->file.reset(), temp_path_, "cannot close the shard file", h5::error_suffix(),
              "; is the disk full?");
  }
  files_.reset();
  commit_temporary_file(temp_path_, path_, path_);
}

// ---------------------------------------------------------------------------------------------
// ShardReader

struct ShardReader::Files {
  h5::Handle file, tokens;
  h5::Handle memory_type;  // the stored integer type in native byte order
  size_t element_size = 0;
  bool is_signed = false;
  std::vector<unsigned char> scratch;
};

namespace {
std::string dtype_name(hid_t type) {
  const size_t size = H5Tget_size(type);
  const bool is_signed = H5Tget_sign(type) == H5T_SGN_2;
  return std::string(is_signed ? "int" : "uint") + std::to_string(8 * size);
}
}  // namespace

ShardReader::ShardReader(const std::string& path) : files_(std::make_unique<Files>()) {
  info_.path = path;
  const std::string& where = path;
  std::error_code error;
  RRT_CHECK(fs::is_regular_file(path, error), where,
            "shard file not found; give a directory of shards or one shard written by "
            "`rrt prepare`");
  h5::QuietErrors quiet;
  RRT_CHECK(H5Fis_hdf5(path.c_str()) > 0, where,
            "is not an HDF5 file (truncated or corrupt?); token shards are written by "
            "`rrt prepare`");
  h5::Handle access(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
#if H5_VERSION_GE(1, 10, 7)
  // Shards never change once renamed into place; file locks only hurt, e.g. on Lustre or NFS
  // where many ranks open the same files.
  H5Pset_file_locking(access.get(), false, true);
#endif
  files_->file = h5::Handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, access.get()), H5Fclose);
  RRT_CHECK(files_->file.valid(), where, "cannot open the HDF5 file", h5::error_suffix(),
            "; the shard is truncated or corrupt: re-run `rrt prepare`");
  const hid_t root = files_->file.get();

  const std::string format = h5::read_string_attribute(root, "format", where);
  RRT_CHECK(format == kShardFormat, where, "format attribute is '", format, "', expected '",
            kShardFormat, "'; this is not an rrt token shard");
  const int64_t version = h5::read_int_attribute(root, "format_version", where);
  RRT_CHECK(version <= kShardFormatVersion, where, "shard format_version ", version,
            " is newer than this rrt reads (", kShardFormatVersion, "); upgrade rrt");
  RRT_CHECK(version >= 1, where, "invalid format_version ", version);
  info_.tokenizer = h5::read_string_attribute(root, "tokenizer", where);
  info_.vocab_size = h5::read_int_attribute(root, "vocab_size", where);
  info_.eos_id = h5::read_int_attribute(root, "eos_id", where);
  info_.documents = h5::read_int_attribute(root, "documents", where);
  info_.tokens = h5::read_int_attribute(root, "tokens", where);
  RRT_CHECK(info_.vocab_size > 0 && info_.vocab_size <= INT32_MAX, where, "invalid vocab_size ",
            info_.vocab_size);
  RRT_CHECK(info_.eos_id >= 0 && info_.eos_id < info_.vocab_size, where, "eos_id ", info_.eos_id,
            " is outside the vocabulary [0, ", info_.vocab_size, ")");
  RRT_CHECK(info_.tokens >= 0 && info_.documents >= 0, where, "negative tokens or documents");

  RRT_CHECK(H5Lexists(root, "tokens", H5P_DEFAULT) > 0, where,
            "has no dataset /tokens; this is not an rrt token shard");
  files_->tokens = h5::Handle(H5Dopen2(root, "tokens", H5P_DEFAULT), H5Dclose);
  RRT_CHECK(files_->tokens.valid(), where, "cannot open /tokens", h5::error_suffix());
  h5::Handle type(H5Dget_type(files_->tokens.get()), H5Tclose);
  // Any integer width another tool may choose (h5py stores numpy's default int64 as it is);
  // rrt prepare writes uint16 or uint32. Values are range-checked when read.
  const size_t stored_size = H5Tget_size(type.get());
  RRT_CHECK(H5Tget_class(type.get()) == H5T_INTEGER &&
                (stored_size == 1 || stored_size == 2 || stored_size == 4 || stored_size == 8),
            where,
            "/tokens must hold integers (uint16 or uint32 as rrt prepare writes them; 8-, "
            "16-, 32- and 64-bit integers of either sign are read)");
  info_.dtype = dtype_name(type.get());
  // Reading in the stored type and widening ourselves avoids HDF5's conversion path, which
  // allocates and clears a 1 MB buffer on every read.
  files_->memory_type = h5::Handle(H5Tget_native_type(type.get(), H5T_DIR_ASCEND), H5Tclose);
  RRT_CHECK(files_->memory_type.valid(), where, "unsupported /tokens type", h5::error_suffix());
  files_->element_size = H5Tget_size(files_->memory_type.get());
  files_->is_signed = H5Tget_sign(files_->memory_type.get()) == H5T_SGN_2;
  h5::Handle space(H5Dget_space(files_->tokens.get()), H5Sclose);
  RRT_CHECK(H5Sget_simple_extent_ndims(space.get()) == 1, where, "/tokens must be 1-D");
  hsize_t length = 0;
  H5Sget_simple_extent_dims(space.get(), &length, nullptr);
  RRT_CHECK(static_cast<int64_t>(length) == info_.tokens, where, "/tokens holds ", length,
            " tokens but the shard's 'tokens' attribute says ", info_.tokens,
            "; the shard is truncated or was not completely written: re-run `rrt prepare`");
}

ShardReader::~ShardReader() = default;
ShardReader::ShardReader(ShardReader&&) noexcept = default;
ShardReader& ShardReader::operator=(ShardReader&&) noexcept = default;

void ShardReader::read(int64_t offset, int64_t n, int32_t* out) const {
  RRT_CHECK(offset >= 0 && n >= 0 && offset + n <= info_.tokens, info_.path, "read of [", offset,
            ", ", offset + n, ") is outside the shard's ", info_.tokens, " tokens");
  if (n == 0) return;
  h5::QuietErrors quiet;
  const hid_t tokens = files_->tokens.get();
  const hsize_t start = static_cast<hsize_t>(offset), count = static_cast<hsize_t>(n);
  h5::Handle file_space(H5Dget_space(tokens), H5Sclose);
  H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, &start, nullptr, &count, nullptr);
  h5::Handle memory_space(H5Screate_simple(1, &count, nullptr), H5Sclose);
  std::vector<unsigned char>& raw = files_->scratch;
  raw.resize(static_cast<size_t>(n) * files_->element_size);
  RRT_CHECK(H5Dread(tokens, files_->memory_type.get(), memory_space.get(), file_space.get(),
                    H5P_DEFAULT, raw.data()) >= 0,
            info_.path, "cannot read tokens [", offset, ", ", offset + n, ")", h5::error_suffix(),
            "; the shard is corrupt: re-run `rrt prepare`");
  const unsigned char* data = raw.data();
  switch (files_->element_size) {
    case 1:
      return files_->is_signed ? widen<int8_t>(data, n, offset, out)
                               : widen<uint8_t>(data, n, offset, out);
    case 8:
      return files_->is_signed ? widen<int64_t>(data, n, offset, out)
                               : widen<uint64_t>(data, n, offset, out);
    case 2:
      return files_->is_signed ? widen<int16_t>(data, n, offset, out)
                               : widen<uint16_t>(data, n, offset, out);
    case 4:
      return files_->is_signed ? widen<int32_t>(data, n, offset, out)
                               : widen<uint32_t>(data, n, offset, out);
    default:
      RRT_FAIL(info_.path, "unsupported /tokens element size ", files_->element_size);
  }
}

template <typename Stored>
void ShardReader::widen(const unsigned char* raw, int64_t n, int64_t offset, int32_t* out) const {
  const int64_t vocab = info_.vocab_size;
  for (int64_t i = 0; i < n; ++i) {
    Stored id;
    std::memcpy(&id, raw + i * sizeof(Stored), sizeof(Stored));
    const int64_t value = static_cast<int64_t>(id);
    RRT_CHECK(value >= 0 && value < vocab, info_.path, "token id ", value, " at position ",
              offset + i, " is outside the vocabulary [0, ", vocab,
              "); the shard is corrupt or its vocab_size attribute is wrong");
    out[i] = static_cast<int32_t>(value);
  }
}

ShardInfo read_shard_info(const std::string& path) { return ShardReader(path).info(); }

}  // namespace rrt
