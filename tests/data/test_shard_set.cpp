// Shard sets complete or refused, and shards of any storage another tool may choose.
//   - rrt prepare writes INCOMPLETE first and manifest.json last; the loader refuses a set that
//     still holds INCOMPLETE, misses a listed shard or holds an unlisted one.
//   - /tokens chunked and gzip-compressed, big-endian, int64 (h5py's default for numpy ints),
//     uint8: read through HDF5's typed reads with the same tokens as a plain uint16 shard.
#include <gtest/gtest.h>
#include <hdf5.h>

#include "data/loader.h"
#include "data/prepare.h"
#include "data/shard.h"
#include "data/shard_set.h"
#include "tests/data/data_test_util.h"

namespace rrt {
namespace {

using test::contains;
using test::error_message;
namespace fs = std::filesystem;

std::string prepared(const test::TempDir& dir) {
  fs::create_directories(dir.path() / "text");
  for (int d = 0; d < 3; ++d)
    test::write_text((dir.path() / "text" / ("d" + std::to_string(d) + ".txt")).string(),
                     std::string(400, static_cast<char>('a' + d)));
  PrepareOptions p;
  p.inputs = {(dir.path() / "text").string()};
  p.out_dir = (dir.path() / "shards").string();
  p.shard_tokens = 500;
  p.progress = false;
  prepare_shards(p);
  return p.out_dir;
}

void open_loader(const std::string& path) {
  TokenLoader loader({.path = path, .seq_len = 8, .val_fraction = 0.1, .seed = 1}, Split::train);
}

TEST(ShardSet, PrepareMarksTheSetCompleteLast) {
  test::TempDir dir;
  const std::string shards = prepared(dir);
  EXPECT_FALSE(fs::exists(fs::path(shards) / kShardSetIncomplete));
  ASSERT_TRUE(fs::exists(fs::path(shards) / kShardSetManifest));
  open_loader(shards);  // complete: loads

  // A prepare that was killed leaves INCOMPLETE behind.
  test::write_text((fs::path(shards) / kShardSetIncomplete).string(), "x");
  std::string msg = error_message([&] { open_loader(shards); });
  EXPECT_TRUE(contains(msg, shards)) << msg;
  EXPECT_TRUE(contains(msg, "incomplete shard set")) << msg;
  fs::remove(fs::path(shards) / kShardSetIncomplete);

  // A listed shard that is gone, or one the manifest does not list.
  fs::rename(fs::path(shards) / "shard_00001.h5", dir.path() / "aside.h5");
  msg = error_message([&] { open_loader(shards); });
  EXPECT_TRUE(contains(msg, "missing shard shard_00001.h5")) << msg;
  fs::rename(dir.path() / "aside.h5", fs::path(shards) / "shard_00001.h5");
  fs::copy_file(fs::path(shards) / "shard_00000.h5", fs::path(shards) / "shard_00009.h5");
  msg = error_message([&] { open_loader(shards); });
  EXPECT_TRUE(contains(msg, "shard_00009.h5")) << msg;
}

TEST(ShardSet, FailedPrepareLeavesNoMarkerAndNoShards) {
  test::TempDir dir;
  fs::create_directories(dir.path() / "text");
  test::write_text((dir.path() / "text" / "a.jsonl").string(), "{\"text\": \"ok\"}\nnot json\n");
  PrepareOptions p;
  p.inputs = {(dir.path() / "text").string()};
  p.out_dir = (dir.path() / "shards").string();
  p.progress = false;
  EXPECT_THROW(prepare_shards(p), Error);
  EXPECT_TRUE(fs::is_empty(p.out_dir));
}

// One shard of the same tokens in a storage variant.
void write_variant(const std::string& path, const std::vector<uint32_t>& tokens, hid_t type,
                   bool chunked_gzip) {
  fs::create_directories(fs::path(path).parent_path());
  const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  const hsize_t n = tokens.size(), chunk = 64;
  const hid_t space = H5Screate_simple(1, &n, nullptr);
  const hid_t create = H5Pcreate(H5P_DATASET_CREATE);
  if (chunked_gzip) {
    H5Pset_chunk(create, 1, &chunk);
    H5Pset_shuffle(create);
    H5Pset_deflate(create, 6);
  }
  const hid_t set = H5Dcreate2(file, "tokens", type, space, H5P_DEFAULT, create, H5P_DEFAULT);
  H5Dwrite(set, H5T_NATIVE_UINT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, tokens.data());
  H5Dclose(set);
  H5Pclose(create);
  H5Sclose(space);
  test::raw_string_attribute(file, "format", "rrt-tokens");
  test::raw_int_attribute(file, "format_version", 1);
  test::raw_string_attribute(file, "tokenizer", "byte");
  test::raw_int_attribute(file, "vocab_size", 257);
  test::raw_int_attribute(file, "eos_id", 256);
  test::raw_int_attribute(file, "documents", 1);
  test::raw_int_attribute(file, "tokens", static_cast<int64_t>(n));
  H5Fclose(file);
}

TEST(ShardSet, EveryIntegerStorageReadsTheSameTokens) {
  test::TempDir dir;
  std::vector<uint32_t> tokens(1000);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<uint32_t>((i * 37) % 257);
  struct Variant {
    const char* name;
    hid_t type;
    bool gzip;
  };
  for (const Variant& v :
       {Variant{"u16", H5T_STD_U16LE, false}, Variant{"u32_gzip", H5T_STD_U32LE, true},
        Variant{"u16_big_endian", H5T_STD_U16BE, false},
        Variant{"i64_h5py_default", H5T_STD_I64LE, false},
        Variant{"i32_big_endian_gzip", H5T_STD_I32BE, true}}) {
    SCOPED_TRACE(v.name);
    const std::string path = (dir.path() / (std::string(v.name) + ".h5")).string();
    write_variant(path, tokens, v.type, v.gzip);
    ShardReader reader(path);
    std::vector<int32_t> got(700);
    reader.read(100, 700, got.data());
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_EQ(got[i], static_cast<int32_t>(tokens[100 + i])) << i;
  }
  // Small vocabularies may be stored in one byte; an out-of-range value is refused as ever.
  std::vector<uint32_t> small(50);
  for (size_t i = 0; i < small.size(); ++i) small[i] = static_cast<uint32_t>(i % 200);
  write_variant((dir.path() / "u8.h5").string(), small, H5T_STD_U8LE, false);
  std::vector<int32_t> got(50);
  ShardReader((dir.path() / "u8.h5").string()).read(0, 50, got.data());
  EXPECT_EQ(got[49], 49);
}

}  // namespace
}  // namespace rrt
