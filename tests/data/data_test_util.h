// Helpers for the data tests: temporary directories, a SentencePiece model trained on the spot,
// and shards written or read with the raw HDF5 C API (independent of data/shard.cpp), so the
// tests check the documented file format rather than our own reader against our own writer.
#pragma once

#include <gtest/gtest.h>
#include <hdf5.h>
#include <sentencepiece_trainer.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "tests/error_helpers.h"

namespace rrt::test {

using testing::contains;
using testing::error_message;

namespace fs = std::filesystem;

// A fresh directory under the system temp dir, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = "rrt_data_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) +
                       "_" + (info ? info->name() : "x");
    path_ = fs::temp_directory_path() / name;
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  const fs::path& path() const { return path_; }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

// "[where]", as error messages begin.
inline std::string bracketed(const std::string& where) {
  std::string text(1, '[');
  text.append(where).push_back(']');
  return text;
}

inline void write_text(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream out(path, std::ios::binary);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

// Text whose characters all occur in the training text of train_sentencepiece().
inline const char* kSentences[] = {
    "the quick brown fox jumps over the lazy dog",
    "a recursive transformer shares one block of layers across several loops",
    "relaxed recursive models add a small low rank adapter to every loop",
    "early exit lets easy tokens leave after the first loop",
    "depth wise batching groups requests that sit at the same loop",
};

// Trains a small SentencePiece model under dir and returns the .model path.
inline std::string train_sentencepiece(const TempDir& dir, const std::string& extra_args = "",
                                       int vocab_size = 80) {
  const std::string corpus = dir / "sp_corpus.txt";
  {
    std::ofstream out(corpus);
    for (int repeat = 0; repeat < 20; ++repeat)
      for (const char* sentence : kSentences) out << sentence << "\n";
  }
  const std::string prefix = dir / "m";
  const std::string args = "--input=" + corpus + " --model_prefix=" + prefix +
                           " --vocab_size=" + std::to_string(vocab_size) +
                           " --model_type=bpe --character_coverage=1.0"
                           " --normalization_rule_name=identity"
                           " --remove_extra_whitespaces=false --hard_vocab_limit=false"
                           " --minloglevel=2 " +
                           extra_args;
  const auto status = sentencepiece::SentencePieceTrainer::Train(args);
  EXPECT_TRUE(status.ok()) << status.ToString();
  return prefix + ".model";
}

// ---------------------------------------------------------------------------------------------
// Raw HDF5

struct RawShard {
  std::vector<uint32_t> tokens;
  hid_t dtype = H5T_STD_U16LE;
  std::string format = "rrt-tokens";
  int64_t format_version = 1;
  std::string tokenizer = "byte";
  int64_t vocab_size = 257, eos_id = 256, documents = 1;
  std::optional<int64_t> tokens_attribute;  // default: tokens.size()
  bool with_dataset = true, with_format = true;
};

inline void raw_int_attribute(hid_t object, const char* name, int64_t value) {
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t attr = H5Acreate2(object, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(attr, H5T_NATIVE_INT64, &value);
  H5Aclose(attr);
  H5Sclose(space);
}

inline void raw_string_attribute(hid_t object, const char* name, const std::string& value) {
  hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, H5T_VARIABLE);
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t attr = H5Acreate2(object, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  const char* text = value.c_str();
  H5Awrite(attr, type, &text);
  H5Aclose(attr);
  H5Sclose(space);
  H5Tclose(type);
}

// Writes a shard as an outside tool would (contiguous dataset, as h5py does by default).
inline void write_raw_shard(const std::string& path, const RawShard& shard) {
  fs::create_directories(fs::path(path).parent_path());
  hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(file, 0) << path;
  if (shard.with_dataset) {
    const hsize_t n = shard.tokens.size();
    hid_t space = H5Screate_simple(1, &n, nullptr);
    hid_t dataset =
        H5Dcreate2(file, "tokens", shard.dtype, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (n > 0)
      H5Dwrite(dataset, H5T_NATIVE_UINT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, shard.tokens.data());
    H5Dclose(dataset);
    H5Sclose(space);
  }
  if (shard.with_format) raw_string_attribute(file, "format", shard.format);
  raw_int_attribute(file, "format_version", shard.format_version);
  raw_string_attribute(file, "tokenizer", shard.tokenizer);
  raw_int_attribute(file, "vocab_size", shard.vocab_size);
  raw_int_attribute(file, "eos_id", shard.eos_id);
  raw_int_attribute(file, "documents", shard.documents);
  raw_int_attribute(file, "tokens",
                    shard.tokens_attribute.value_or(static_cast<int64_t>(shard.tokens.size())));
  H5Fclose(file);
}

inline std::vector<int64_t> read_raw_tokens(const std::string& path) {
  hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  EXPECT_GE(file, 0) << path;
  hid_t dataset = H5Dopen2(file, "tokens", H5P_DEFAULT);
  hid_t space = H5Dget_space(dataset);
  hsize_t n = 0;
  H5Sget_simple_extent_dims(space, &n, nullptr);
  std::vector<int64_t> tokens(n);
  if (n > 0) H5Dread(dataset, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, tokens.data());
  H5Sclose(space);
  H5Dclose(dataset);
  H5Fclose(file);
  return tokens;
}

// True when /tokens is stored with exactly `type` (e.g. H5T_STD_U16LE).
inline bool raw_dtype_is(const std::string& path, hid_t type) {
  hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t dataset = H5Dopen2(file, "tokens", H5P_DEFAULT);
  hid_t stored = H5Dget_type(dataset);
  const bool same = H5Tequal(stored, type) > 0;
  H5Tclose(stored);
  H5Dclose(dataset);
  H5Fclose(file);
  return same;
}

inline int64_t read_raw_int_attribute(const std::string& path, const char* name) {
  hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t attr = H5Aopen(file, name, H5P_DEFAULT);
  int64_t value = -1;
  H5Aread(attr, H5T_NATIVE_INT64, &value);
  H5Aclose(attr);
  H5Fclose(file);
  return value;
}

inline std::string read_raw_string_attribute(const std::string& path, const char* name) {
  hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t attr = H5Aopen(file, name, H5P_DEFAULT);
  hid_t stored = H5Aget_type(attr);
  hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, H5T_VARIABLE);
  H5Tset_cset(type, H5Tget_cset(stored));  // HDF5 does not convert ASCII <-> UTF-8
  H5Tclose(stored);
  char* text = nullptr;
  H5Aread(attr, type, &text);
  std::string value = text ? text : "";
  H5free_memory(text);
  H5Tclose(type);
  H5Aclose(attr);
  H5Fclose(file);
  return value;
}

// The *.h5 files of a directory, sorted by name.
inline std::vector<std::string> shard_files(const fs::path& dir) {
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().extension() == ".h5") files.push_back(entry.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace rrt::test
