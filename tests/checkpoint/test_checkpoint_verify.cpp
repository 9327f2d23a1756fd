// Verified checkpoints: flipped bytes in any dataset or in the state are refused with the file and
// dataset named; files written before checksums load with a warning; files written by other
// tools (h5py-style variable-length strings, chunked and compressed datasets, float64, float16,
// big-endian floats, int32 attributes) load through HDF5's typed reads.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <unistd.h>
#include <zlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include "checkpoint/checkpoint.h"
#include "checkpoint/checkpoint_verify.h"
#include "tests/error_helpers.h"

namespace rrt {
namespace {

namespace fs = std::filesystem;

ModelSpec tiny_spec() {
  ModelSpec s;
  s.model = {
      .vocab = 61, .d_model = 16, .n_heads = 2, .n_kv_heads = 1, .ffn = 24, .max_seq_len = 8};
  s.recursion = {.block_layers = 2, .loops = 2};
  s.lora = {.rank_attention = 2, .rank_mlp = 2};
  return s;
}

fs::path fresh_dir(const std::string& name) {
  fs::path dir =
      fs::path(::testing::TempDir()) / ("rrt_verify_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// A checkpoint with weights and moments of tiny_spec().
std::string saved_checkpoint(const fs::path& dir, ParameterSet& params, AdamW& opt) {
  params.init({.seed = 3, .lora_b_zero = false});
  for (int i = 0; i < params.registry().size(); ++i)
    for (int64_t j = 0; j < params.numel(i); ++j) params.grad(i)[j] = 0.01f * (j % 7);
  opt.step();
  const std::string path = checkpoint_path(dir.string(), 5);
  save_checkpoint(path, "model:\n  vocab: 61\n", params, &opt, {.step = 5, .adam_step = 1});
  return path;
}

// Where the raw values of a contiguous dataset begin in the file.
haddr_t dataset_offset(const std::string& path, const std::string& dataset) {
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  const hid_t set = H5Dopen2(file, dataset.c_str(), H5P_DEFAULT);
  const haddr_t offset = H5Dget_offset(set);
  H5Dclose(set);
  H5Fclose(file);
  return offset;
}

void flip_byte(const std::string& path, int64_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(offset);
  char c = 0;
  f.read(&c, 1);
  c ^= 0x10;
  f.seekp(offset);
  f.write(&c, 1);
}

std::string error_of(const std::function<void()>& fn) { return testing::error_message(fn); }

TEST(CheckpointVerify, FlippedParameterBytesAreRefusedNamingFileAndDataset) {
  const fs::path dir = fresh_dir("flip_params");
  ParameterSet a(tiny_spec()), b(tiny_spec());
  AdamW opt(a, {.lr = 0.01});
  const std::string path = saved_checkpoint(dir, a, opt);
  const std::string name = a.registry()[3].name;
  const haddr_t at = dataset_offset(path, "/params/" + name);
  ASSERT_NE(at, HADDR_UNDEF);
  flip_byte(path, static_cast<int64_t>(at) + 5);

  const std::string msg = error_of([&] { load_checkpoint(path, b, nullptr); });
  EXPECT_TRUE(testing::contains(msg, path)) << msg;
  EXPECT_TRUE(testing::contains(msg, "/params/" + name)) << msg;
  EXPECT_TRUE(testing::contains(msg, "checksum")) << msg;
  try {
    verify_checkpoint(path);
    FAIL() << "verify_checkpoint must refuse the damaged file";
  } catch (const CheckpointCorrupt& e) {
    EXPECT_EQ(e.dataset(), "/params/" + name);
  }
  // eval, export, generate and the teacher read through load_checkpoint / load_checkpoint_model.
  EXPECT_THROW(load_checkpoint_model(path), Error);
}

TEST(CheckpointVerify, FlippedMomentsConfigAndStateAreRefused) {
  const fs::path dir = fresh_dir("flip_other");
  ParameterSet a(tiny_spec()), b(tiny_spec());
  AdamW opt(a, {.lr = 0.01}), opt_b(b, {.lr = 0.01});
  const std::string path = saved_checkpoint(dir, a, opt);
  const std::string name = a.registry()[0].name;
  const std::string copy = (dir / "copy.h5").string();

  fs::copy_file(path, copy);
  flip_byte(copy, static_cast<int64_t>(dataset_offset(copy, "/optim/v/" + name)) + 2);
  load_checkpoint(copy, b, nullptr);  // the weights alone are intact
  EXPECT_TRUE(
      testing::contains(error_of([&] { load_checkpoint(copy, b, &opt_b); }), "/optim/v/" + name));

  fs::remove(copy);
  fs::copy_file(path, copy);
  flip_byte(copy, static_cast<int64_t>(dataset_offset(copy, "/config")) + 1);
  EXPECT_TRUE(testing::contains(error_of([&] { read_checkpoint_header(copy); }), "/config"));

  // The state's integers: rewrite one attribute as another tool could.
  fs::remove(copy);
  fs::copy_file(path, copy);
  {
    const hid_t file = H5Fopen(copy.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    const hid_t state = H5Gopen2(file, "state", H5P_DEFAULT);
    const hid_t attr = H5Aopen(state, "data_index", H5P_DEFAULT);
    const int64_t changed = 12345;
    H5Awrite(attr, H5T_NATIVE_INT64, &changed);
    H5Aclose(attr);
    H5Gclose(state);
    H5Fclose(file);
  }
  const std::string msg = error_of([&] { read_checkpoint_header(copy); });
  EXPECT_TRUE(testing::contains(msg, "/state")) << msg;
  EXPECT_TRUE(testing::contains(msg, copy)) << msg;
}

TEST(CheckpointVerify, CheckpointsWithoutChecksumsLoadWithAWarning) {
  const fs::path dir = fresh_dir("legacy");
  ParameterSet a(tiny_spec()), b(tiny_spec());
  AdamW opt(a, {.lr = 0.01});
  const std::string path = saved_checkpoint(dir, a, opt);
  {  // what an rrt from before checksums wrote: no declaration in /state
    const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    const hid_t state = H5Gopen2(file, "state", H5P_DEFAULT);
    H5Adelete(state, "checksum");
    H5Adelete(state, "state_crc32");
    H5Gclose(state);
    H5Fclose(file);
  }
  ::testing::internal::CaptureStderr();
  const CheckpointContents c = load_checkpoint(path, b, nullptr);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_FALSE(c.verified);
  EXPECT_TRUE(testing::contains(err, "carries no checksums")) << err;
  EXPECT_TRUE(testing::contains(err, path)) << err;
  for (int i = 0; i < a.registry().size(); ++i)
    EXPECT_EQ(std::memcmp(a.value(i), b.value(i), a.numel(i) * sizeof(float)), 0);
  verify_checkpoint(path);  // readable: passes
}

TEST(CheckpointVerify, ParallelChecksumEqualsOnePass) {
  std::vector<unsigned char> bytes((size_t{21} << 20) + 13);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<unsigned char>(i * 131 + 7);
  const uint32_t one_pass = static_cast<uint32_t>(crc32_z(0, bytes.data(), bytes.size()));
  EXPECT_EQ(checksum_bytes(bytes.data(), bytes.size()), one_pass);
  // Continued from an earlier CRC, as a stream would be.
  const uint32_t head = checksum_bytes(bytes.data(), 1000);
  EXPECT_EQ(checksum_bytes(bytes.data() + 1000, bytes.size() - 1000, head), one_pass);
}

// --- files written by other tools ---------------------------------------------------------------

enum class Storage { contiguous_f32, chunked_gzip_f32, f64, f16, big_endian_f32 };

hid_t half_type() {
  const hid_t t = H5Tcopy(H5T_IEEE_F32LE);
  H5Tset_fields(t, 15, 10, 5, 0, 10);
  H5Tset_size(t, 2);
  H5Tset_ebias(t, 15);
  return t;
}

void write_dataset(hid_t group, const std::string& name, const float* data, const Shape& shape,
                   Storage storage, bool with_checksum) {
  hsize_t dims[kMaxDims];
  for (int d = 0; d < shape.ndim; ++d) dims[d] = static_cast<hsize_t>(shape[d]);
  const hid_t space = H5Screate_simple(shape.ndim, dims, nullptr);
  const hid_t create = H5Pcreate(H5P_DATASET_CREATE);
  hid_t type = H5Tcopy(H5T_IEEE_F32LE);
  switch (storage) {
    case Storage::contiguous_f32:
      break;
    case Storage::chunked_gzip_f32: {
      hsize_t chunk[kMaxDims];
      for (int d = 0; d < shape.ndim; ++d) chunk[d] = std::max<hsize_t>(1, dims[d] / 2);
      H5Pset_chunk(create, shape.ndim, chunk);
      H5Pset_shuffle(create);
      H5Pset_deflate(create, 4);
      break;
    }
    case Storage::f64:
      H5Tclose(type), type = H5Tcopy(H5T_IEEE_F64LE);
      break;
    case Storage::f16:
      H5Tclose(type), type = half_type();
      break;
    case Storage::big_endian_f32:
      H5Tclose(type), type = H5Tcopy(H5T_IEEE_F32BE);
      break;
  }
  const hid_t set = H5Dcreate2(group, name.c_str(), type, space, H5P_DEFAULT, create, H5P_DEFAULT);
  ASSERT_GE(set, 0) << name;
  ASSERT_GE(H5Dwrite(set, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), 0);
  if (with_checksum) {
    const uint32_t crc = checksum_bytes(data, shape.numel() * sizeof(float));
    const hid_t scalar = H5Screate(H5S_SCALAR);
    const hid_t attr = H5Acreate2(set, "crc32", H5T_STD_U32LE, scalar, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(attr, H5T_NATIVE_UINT32, &crc);
    H5Aclose(attr);
    H5Sclose(scalar);
  }
  H5Dclose(set);
  H5Tclose(type);
  H5Pclose(create);
  H5Sclose(space);
}

void write_int32_attr(hid_t obj, const char* name, int32_t value) {
  const hid_t space = H5Screate(H5S_SCALAR);
  const hid_t attr = H5Acreate2(obj, name, H5T_STD_I32LE, space, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(attr, H5T_NATIVE_INT32, &value);
  H5Aclose(attr);
  H5Sclose(space);
}

// A checkpoint as h5py would write it: /config a variable-length UTF-8 string, the state's
// integers int32, the parameters in `storage`.
void write_foreign_checkpoint(const std::string& path, const ParameterSet& params,
                              const std::string& config, Storage storage) {
  const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  const hid_t str = H5Tcopy(H5T_C_S1);
  H5Tset_size(str, H5T_VARIABLE);
  H5Tset_cset(str, H5T_CSET_UTF8);
  const hid_t scalar = H5Screate(H5S_SCALAR);
  const hid_t set = H5Dcreate2(file, "config", str, scalar, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  const char* text = config.c_str();
  H5Dwrite(set, str, H5S_ALL, H5S_ALL, H5P_DEFAULT, &text);
  H5Dclose(set);
  const hid_t state = H5Gcreate2(file, "state", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  write_int32_attr(state, "format_version", 1);
  for (const char* name : {"step", "adam_step", "data_epoch", "data_index", "tokens_seen"})
    write_int32_attr(state, name, 9);
  H5Gclose(state);
  const hid_t group = H5Gcreate2(file, "params", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  for (int i = 0; i < params.registry().size(); ++i)
    write_dataset(group, params.registry()[i].name, params.value(i), params.registry()[i].shape,
                  storage, true);
  H5Gclose(group);
  H5Sclose(scalar);
  H5Tclose(str);
  H5Fclose(file);
}

TEST(CheckpointVerify, FilesWrittenByOtherToolsLoadWhateverTheStorage) {
  const fs::path dir = fresh_dir("foreign");
  ParameterSet a(tiny_spec());
  a.init({.seed = 8, .lora_b_zero = false});
  // Values float16 holds exactly, so that every storage gives the same floats back.
  for (int i = 0; i < a.registry().size(); ++i)
    for (int64_t j = 0; j < a.numel(i); ++j)
      a.value(i)[j] = static_cast<float>(static_cast<int>(a.value(i)[j] * 256)) / 256.0f;
  const std::string config = "model:\n  vocab: 61  # written by h5py\n";
  for (Storage storage : {Storage::contiguous_f32, Storage::chunked_gzip_f32, Storage::f64,
                          Storage::f16, Storage::big_endian_f32}) {
    SCOPED_TRACE(static_cast<int>(storage));
    const std::string path =
        (dir / ("foreign_" + std::to_string(static_cast<int>(storage)) + ".h5")).string();
    write_foreign_checkpoint(path, a, config, storage);
    ParameterSet b(tiny_spec());
    ::testing::internal::CaptureStderr();  // no checksum declaration: a warning
    const CheckpointContents c = load_checkpoint(path, b, nullptr);
    ::testing::internal::GetCapturedStderr();
    EXPECT_EQ(c.config_yaml, config);
    EXPECT_EQ(c.state.step, 9);
    for (int i = 0; i < a.registry().size(); ++i)
      ASSERT_EQ(std::memcmp(a.value(i), b.value(i), a.numel(i) * sizeof(float)), 0)
          << a.registry()[i].name;
  }
}

TEST(CheckpointVerify, ChecksumsCoverValuesNotStorage) {
  // A verified checkpoint rewritten by another tool as compressed float64 still verifies: the
  // checksum is of the fp32 values, which float64 holds exactly.
  const fs::path dir = fresh_dir("restored");
  ParameterSet a(tiny_spec()), b(tiny_spec());
  a.init({.seed = 2, .lora_b_zero = false});
  const std::string path = (dir / "repacked.h5").string();
  write_foreign_checkpoint(path, a, "x: 1\n", Storage::f64);
  {  // declare checksums as rrt does (the /config checksum and the state's are then required)
    const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    const hid_t state = H5Gopen2(file, "state", H5P_DEFAULT);
    const hid_t str = H5Tcopy(H5T_C_S1);
    H5Tset_size(str, 5);
    const hid_t scalar = H5Screate(H5S_SCALAR);
    const hid_t attr = H5Acreate2(state, "checksum", str, scalar, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(attr, str, "crc32");
    H5Aclose(attr);
    write_int32_attr(state, "world_size", 9);
    const int64_t values[6] = {9, 9, 9, 9, 9, 9};
    const int64_t crc = checksum_bytes(values, sizeof(values));
    const hid_t attr2 =
        H5Acreate2(state, "state_crc32", H5T_STD_I64LE, scalar, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(attr2, H5T_NATIVE_INT64, &crc);
    H5Aclose(attr2);
    const hid_t set = H5Dopen2(file, "config", H5P_DEFAULT);
    const uint32_t config_crc = checksum_bytes("x: 1\n", 5);
    const hid_t attr3 = H5Acreate2(set, "crc32", H5T_STD_U32LE, scalar, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(attr3, H5T_NATIVE_UINT32, &config_crc);
    H5Aclose(attr3);
    H5Dclose(set);
    H5Sclose(scalar);
    H5Tclose(str);
    H5Gclose(state);
    H5Fclose(file);
  }
  const CheckpointContents c = load_checkpoint(path, b, nullptr);
  EXPECT_TRUE(c.verified);
  EXPECT_EQ(c.config_yaml, "x: 1\n");
  verify_checkpoint(path);
}

TEST(CheckpointVerify, IntegerTensorsAndMissingFiltersAreRefusedByName) {
  const fs::path dir = fresh_dir("integer");
  ParameterSet a(tiny_spec());
  a.init({.seed = 1});
  const std::string path = (dir / "ints.h5").string();
  write_foreign_checkpoint(path, a, "x: 1\n", Storage::contiguous_f32);
  const std::string name = a.registry()[0].name;
  {  // replace one tensor by integers of the same shape
    const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    const hid_t group = H5Gopen2(file, "params", H5P_DEFAULT);
    H5Ldelete(group, name.c_str(), H5P_DEFAULT);
    hsize_t dims[kMaxDims];
    const Shape& shape = a.registry()[0].shape;
    for (int d = 0; d < shape.ndim; ++d) dims[d] = static_cast<hsize_t>(shape[d]);
    const hid_t space = H5Screate_simple(shape.ndim, dims, nullptr);
    const hid_t set = H5Dcreate2(group, name.c_str(), H5T_STD_I32LE, space, H5P_DEFAULT,
                                 H5P_DEFAULT, H5P_DEFAULT);
    H5Dclose(set);
    H5Sclose(space);
    H5Gclose(group);
    H5Fclose(file);
  }
  ParameterSet b(tiny_spec());
  ::testing::internal::CaptureStderr();
  const std::string msg = error_of([&] { load_checkpoint(path, b, nullptr); });
  ::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(testing::contains(msg, "/params/" + name)) << msg;
  EXPECT_TRUE(testing::contains(msg, "integer")) << msg;
}

}  // namespace
}  // namespace rrt
