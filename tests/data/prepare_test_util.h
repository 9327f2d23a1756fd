// Helpers for the `rrt prepare` input tests: compressed files written with zlib and libzstd
// directly (several frames or members when asked), the token stream of a shard set, and a shard
// set's bytes for comparing two preparations.
#pragma once

#include <zlib.h>
#include <zstd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "data/tokenizer.h"
#include "tests/data/data_test_util.h"

namespace rrt::test {

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// `data` cut into `frames` pieces, each compressed as a zstd frame of its own, concatenated.
inline void write_zstd(const std::string& path, const std::string& data, int frames = 1) {
  std::string out;
  const size_t piece = (data.size() + frames - 1) / std::max(frames, 1);
  for (size_t begin = 0; begin < data.size() || (begin == 0 && data.empty()); begin += piece) {
    const size_t n = std::min(piece, data.size() - begin);
    std::string frame(ZSTD_compressBound(n), '\0');
    // With a checksum, as the zstd tool writes by default.
    ZSTD_CCtx* context = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 1);
    const size_t size = ZSTD_compress2(context, frame.data(), frame.size(), data.data() + begin, n);
    ZSTD_freeCCtx(context);
    EXPECT_FALSE(ZSTD_isError(size));
    out.append(frame.data(), size);
    if (data.empty() || piece == 0) break;
  }
  write_text(path, out);
}

// `data` cut into `members` gzip members (as `cat a.gz b.gz` makes), concatenated.
inline void write_gzip(const std::string& path, const std::string& data, int members = 1) {
  std::string out;
  const size_t piece = (data.size() + members - 1) / std::max(members, 1);
  for (size_t begin = 0; begin < data.size() || begin == 0; begin += std::max<size_t>(piece, 1)) {
    const size_t n = std::min(piece, data.size() - begin);
    z_stream z{};
    EXPECT_EQ(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    std::string member(deflateBound(&z, n) + 32, '\0');
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data() + begin));
    z.avail_in = static_cast<uInt>(n);
    z.next_out = reinterpret_cast<Bytef*>(member.data());
    z.avail_out = static_cast<uInt>(member.size());
    EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
    out.append(member.data(), member.size() - z.avail_out);
    deflateEnd(&z);
    if (data.empty()) break;
  }
  write_text(path, out);
}

// Appends encode(doc) + EOS for each document.
inline std::vector<int64_t> expected_stream(const Tokenizer& tokenizer,
                                            const std::vector<std::string>& documents) {
  std::vector<int64_t> stream;
  for (const std::string& document : documents) {
    for (int32_t id : tokenizer.encode(document)) stream.push_back(id);
    stream.push_back(tokenizer.eos_id());
  }
  return stream;
}

inline std::vector<int64_t> concatenated_shards(const fs::path& dir) {
  std::vector<int64_t> stream;
  for (const std::string& shard : shard_files(dir)) {
    const std::vector<int64_t> tokens = read_raw_tokens(shard);
    stream.insert(stream.end(), tokens.begin(), tokens.end());
  }
  return stream;
}

// Every file of a shard set by name with what it holds: the tokens and counts of each shard
// (HDF5 files differ in bytes that mean nothing) and manifest.json's text.
inline std::vector<std::string> shard_set_contents(const fs::path& dir) {
  std::vector<std::string> contents;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (entry.path().extension() == ".h5") {
      std::string text = name + ":";
      for (int64_t id : read_raw_tokens(entry.path().string())) text += " " + std::to_string(id);
      text += " documents=" +
              std::to_string(read_raw_int_attribute(entry.path().string(), "documents"));
      contents.push_back(text);
    } else {
      contents.push_back(name + ": " + read_bytes(entry.path().string()));
    }
  }
  std::sort(contents.begin(), contents.end());
  return contents;
}

inline bool has_temporary_files(const fs::path& dir) {
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().filename().string().find(".tmp") != std::string::npos) return true;
  return false;
}

// What a failed preparation must leave: no shard, no temporary, no journal, no marker.
inline void expect_nothing_left(const fs::path& dir) {
  if (!fs::exists(dir)) return;
  EXPECT_TRUE(shard_files(dir).empty()) << dir;
  EXPECT_FALSE(has_temporary_files(dir)) << dir;
  EXPECT_FALSE(fs::exists(dir / "prepare_state.json")) << dir;
  EXPECT_FALSE(fs::exists(dir / "INCOMPLETE")) << dir;
}

}  // namespace rrt::test
