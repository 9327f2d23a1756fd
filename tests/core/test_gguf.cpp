// GGUF reader (core/gguf.h) and dequantisation (core/gguf_dequant.h) against files written by
// gguf-py, llama.cpp's own Python package (tools/make_gguf_fixtures.py): typed metadata of every
// value type, every supported tensor type equal bit for bit to gguf-py's dequantisation, and the
// errors for corrupt files, made here by editing a valid fixture's bytes.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/gguf.h"
#include "core/gguf_dequant.h"
#include "core/safetensors.h"
#include "tests/error_helpers.h"

namespace rrt {
namespace {

using testing::contains;
using testing::error_message;

std::string fixture(const std::string& name) {
  return std::string(RRT_FIXTURE_DIR) + "/gguf/" + name;
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

std::string write_temp(const std::vector<uint8_t>& bytes, const std::string& name) {
  const std::string path =
      ::testing::TempDir() + "rrt_gguf_" + std::to_string(::getpid()) + "_" + name + ".gguf";
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  return path;
}

template <typename T>
void poke(std::vector<uint8_t>& bytes, size_t at, T value) {
  ASSERT_LE(at + sizeof(T), bytes.size());
  std::memcpy(bytes.data() + at, &value, sizeof(T));
}

// Where a length-prefixed string (a key or a tensor name) sits: the offset of its u64 length.
size_t find_string(const std::vector<uint8_t>& bytes, const std::string& s) {
  std::vector<uint8_t> needle(8);
  const uint64_t len = s.size();
  std::memcpy(needle.data(), &len, 8);
  needle.insert(needle.end(), s.begin(), s.end());
  auto it = std::search(bytes.begin(), bytes.end(), needle.begin(), needle.end());
  EXPECT_NE(it, bytes.end()) << "'" << s << "' not in the fixture";
  return static_cast<size_t>(it - bytes.begin());
}

// Field offsets of a tensor's entry in the table: dims count, type id, data offset.
struct TensorEntry {
  size_t n_dims, dims, type, offset;
};
TensorEntry entry_of(const std::vector<uint8_t>& bytes, const std::string& name) {
  TensorEntry e{};
  e.n_dims = find_string(bytes, name) + 8 + name.size();
  uint32_t n = 0;
  std::memcpy(&n, bytes.data() + e.n_dims, 4);
  e.dims = e.n_dims + 4;
  e.type = e.dims + 8 * n;
  e.offset = e.type + 4;
  return e;
}

// Opening `path` must throw an rrt::Error that names the file and contains `part`.
void expect_open_error(const std::string& path, const std::string& part) {
  const std::string msg = error_message([&] { GgufFile f(path); });
  EXPECT_TRUE(contains(msg, path)) << msg;
  EXPECT_TRUE(contains(msg, part)) << "expected '" << part << "' in: " << msg;
}

// ---- Metadata
// -------------------------------------------------------------------------------------

TEST(Gguf, HeaderAndEveryMetadataType) {
  GgufFile f(fixture("metadata.gguf"));
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.data_start() % 64, 0u);
  EXPECT_EQ(f.get_string("general.architecture"), "rrt-test");
  EXPECT_EQ(f.get_u32("general.alignment"), 64u);

  EXPECT_EQ(f.get_u32("test.u8"), 200u);
  EXPECT_EQ(f.get_i64("test.i8"), -100);
  EXPECT_EQ(f.get_u32("test.u16"), 60000u);
  EXPECT_EQ(f.get_i64("test.i16"), -30000);
  EXPECT_EQ(f.get_u32("test.u32"), 4000000000u);
  EXPECT_EQ(f.get_i64("test.u32"), 4000000000);
  EXPECT_EQ(f.get_i64("test.i32"), -2000000000);
  EXPECT_EQ(f.get_i64("test.u64"), (int64_t{1} << 40) + 3);
  EXPECT_EQ(f.get_i64("test.i64"), -(int64_t{1} << 40));
  EXPECT_EQ(f.get_f32("test.f32"), 0.25f);
  EXPECT_EQ(f.get_f32("test.f64"), 0.1f);
  EXPECT_TRUE(f.get_bool("test.bool"));
  EXPECT_EQ(f.get_string("test.string"), "h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93");
  EXPECT_EQ(f.value("test.u64").type, GgufType::uint64);

  EXPECT_EQ(f.get_string_array("test.arr_str"),
            (std::vector<std::string>{"a", "", "\xc3\xbcn\xc3\xaf", "tab\there"}));
  EXPECT_EQ(f.get_int_array("test.arr_i32"), (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(f.get_int_array("test.arr_u8"), (std::vector<int64_t>{0, 7, 255}));
  EXPECT_EQ(f.get_int_array("test.arr_i16"), (std::vector<int64_t>{-32768, 32767}));
  EXPECT_EQ(f.get_f32_array("test.arr_f32"), (std::vector<float>{0.5f, -1.5f, 3.25f}));
  const GgufValue& bools = f.value("test.arr_bool");
  EXPECT_EQ(bools.elem_type, GgufType::boolean);
  EXPECT_EQ(bools.raw, (std::vector<uint8_t>{1, 0, 1}));

  const GgufValue& nested = f.value("test.arr_nested");
  ASSERT_EQ(nested.elem_type, GgufType::array);
  ASSERT_EQ(nested.arrays.size(), 3u);
  EXPECT_EQ(nested.arrays[0].elem_type, GgufType::int32);
  EXPECT_EQ(nested.arrays[0].count, 2u);
  EXPECT_EQ(nested.arrays[2].count, 3u);
  const GgufValue& nested_str = f.value("test.arr_nested_str");
  ASSERT_EQ(nested_str.arrays.size(), 2u);
  EXPECT_EQ(nested_str.arrays[0].strings, (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(nested_str.arrays[1].strings, (std::vector<std::string>{"z"}));

  ASSERT_EQ(f.tensors().size(), 2u);
  const GgufTensorInfo& a = f.tensor("a");
  EXPECT_EQ(a.dims, (std::vector<int64_t>{3, 2}));  // innermost first
  EXPECT_EQ(a.shape(), (std::vector<int64_t>{2, 3}));
  EXPECT_STREQ(a.type_name(), "F32");
  EXPECT_EQ(f.read_f32("a"), (std::vector<float>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(f.read_f32("b"), (std::vector<float>{1.5f, -2.0f}));
  EXPECT_EQ(f.tensor("b").offset % 64, 0u);
}

TEST(Gguf, GettersNameTheKeyAndTheTypeFound) {
  GgufFile f(fixture("metadata.gguf"));
  auto expect = [&](auto&& get, const std::vector<std::string>& parts) {
    const std::string msg = error_message(get);
    EXPECT_TRUE(contains(msg, f.path())) << msg;
    for (const auto& p : parts) EXPECT_TRUE(contains(msg, p)) << "'" << p << "' not in: " << msg;
  };
  expect([&] { f.get_string("test.u32"); }, {"'test.u32'", "uint32", "expected string"});
  expect([&] { f.get_u32("test.string"); }, {"'test.string'", "is string"});
  expect([&] { f.get_u32("test.i8"); }, {"'test.i8'", "int8 -100", "uint32"});
  expect([&] { f.get_u32("test.u64"); }, {"'test.u64'", "does not fit a uint32"});
  expect([&] { f.get_i64("test.u64_huge"); }, {"'test.u64_huge'", "does not fit an int64"});
  expect([&] { f.get_f32("test.i32"); }, {"'test.i32'", "int32", "float32"});
  expect([&] { f.get_bool("test.u8"); }, {"'test.u8'", "uint8", "bool"});
  expect([&] { f.get_string_array("test.arr_i32"); }, {"'test.arr_i32'", "array of int32"});
  expect([&] { f.get_int_array("test.arr_str"); }, {"array of string", "array of integers"});
  expect([&] { f.get_int_array("test.arr_bool"); }, {"array of bool"});
  expect([&] { f.get_int_array("test.arr_u64"); }, {"element 1", "does not fit an int64"});
  expect([&] { f.get_int_array("test.string"); }, {"is string"});
  expect([&] { f.get_u32("no.such.key"); }, {"no metadata key 'no.such.key'"});
  expect([&] { f.read_f32("nope"); }, {"no tensor named 'nope'"});
}

// ---- Dequantisation == gguf-py, bit for bit ----------------------------------------------------

TEST(Gguf, EveryTypeEqualsGgufPyDequantisation) {
  SafetensorsFile ref(fixture("types_reference.safetensors"));
  int checked = 0;
  for (const char* type : {"F32", "F16", "BF16", "Q4_0", "Q4_1", "Q8_0"}) {
    GgufFile f(fixture(std::string("types_") + type + ".gguf"));
    ASSERT_EQ(f.tensors().size(), 3u) << type;
    for (const GgufTensorInfo& t : f.tensors()) {
      SCOPED_TRACE(std::string(type) + "/" + t.name);
      EXPECT_STREQ(t.type_name(), type);
      const std::string key = std::string(type) + "/" + t.name;
      ASSERT_TRUE(ref.has(key));
      EXPECT_EQ(t.shape(), ref.info(key).shape);
      const std::vector<float> expected = ref.read_f32(key);
      const std::vector<float> got = f.read_f32(t.name);
      ASSERT_EQ(got.size(), expected.size());
      // Bitwise: -0, infinities and NaN must match too.
      size_t mismatches = 0;
      for (size_t i = 0; i < got.size(); ++i)
        if (std::memcmp(&got[i], &expected[i], 4) != 0 && mismatches++ < 5)
          ADD_FAILURE() << "element " << i << ": rrt " << got[i] << ", gguf-py " << expected[i];
      EXPECT_EQ(mismatches, 0u);
      ++checked;
    }
  }
  EXPECT_EQ(checked, 18);
}

TEST(Gguf, Fp16SpecialValues) {
  EXPECT_EQ(fp16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(fp16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(fp16_to_f32(0x7bff), 65504.0f);
  EXPECT_EQ(fp16_to_f32(0x0001), std::ldexp(1.0f, -24));     // smallest subnormal
  EXPECT_EQ(fp16_to_f32(0x03ff), std::ldexp(1023.0f, -24));  // largest subnormal
  EXPECT_EQ(fp16_to_f32(0x7c00), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(fp16_to_f32(0x7e00)));
  EXPECT_TRUE(std::signbit(fp16_to_f32(0x8000)));
}

TEST(Gguf, UnsupportedButKnownTypeOpensAndRefusesToDequantise) {
  // Q4_0 -> IQ4_NL: the same block (32 elements in 18 bytes), so the file stays valid.
  auto bytes = read_bytes(fixture("types_Q4_0.gguf"));
  poke<uint32_t>(bytes, entry_of(bytes, "rows").type, 20);
  const std::string path = write_temp(bytes, "iq4nl");
  GgufFile f(path);
  EXPECT_STREQ(f.tensor("rows").type_name(), "IQ4_NL");
  const std::string msg = error_message([&] { f.read_f32("rows"); });
  EXPECT_TRUE(contains(msg, "'rows'") && contains(msg, "IQ4_NL") && contains(msg, "Q4_1")) << msg;
  std::vector<float> out(static_cast<size_t>(f.tensor("one_block").numel));
  EXPECT_NO_THROW(f.read_f32_into("one_block", out.data(), static_cast<int64_t>(out.size())));
  std::remove(path.c_str());
}

TEST(Gguf, Version2ReadsLikeVersion3) {
  auto bytes = read_bytes(fixture("types_Q8_0.gguf"));
  poke<uint32_t>(bytes, 4, 2);
  const std::string path = write_temp(bytes, "v2");
  GgufFile v2(path);
  GgufFile v3(fixture("types_Q8_0.gguf"));
  EXPECT_EQ(v2.version(), 2u);
  EXPECT_EQ(v2.read_f32("rows"), v3.read_f32("rows"));
  std::remove(path.c_str());
}

// ---- Corrupt files
// ---------------------------------------------------------------------------------

TEST(GgufErrors, EveryTruncationFailsCleanly) {
  const auto bytes = read_bytes(fixture("types_Q8_0.gguf"));
  // Up to the end of the last tensor's data: the padding after it is optional.
  size_t data_end = 0;
  {
    GgufFile f(fixture("types_Q8_0.gguf"));
    for (const GgufTensorInfo& t : f.tensors())
      data_end = std::max<size_t>(data_end, f.data_start() + t.offset + t.nbytes);
  }
  ASSERT_LE(data_end, bytes.size());
  for (size_t len = 0; len < data_end; ++len) {
    const std::string path =
        write_temp({bytes.begin(), bytes.begin() + static_cast<long>(len)}, "trunc");
    const std::string msg = error_message([&] { GgufFile f(path); });
    EXPECT_TRUE(contains(msg, path)) << "length " << len << ": " << msg;
    std::remove(path.c_str());
  }
  const std::string short_path = write_temp({bytes.begin(), bytes.begin() + 20}, "short");
  expect_open_error(short_path, "too short");
  std::remove(short_path.c_str());
  const std::string header = write_temp({bytes.begin(), bytes.begin() + 40}, "header");
  expect_open_error(header, "claims 3 tensors but only 16 bytes follow");
  std::remove(header.c_str());
  const std::string table = write_temp({bytes.begin(), bytes.begin() + 100}, "table");
  expect_open_error(table, "truncated");
  std::remove(table.c_str());
  const std::string data =
      write_temp({bytes.begin(), bytes.begin() + static_cast<long>(data_end) - 1}, "data");
  expect_open_error(data, "past the end of the file");
  std::remove(data.c_str());
}

struct Corruption {
  const char* name;
  const char* file;
  void (*edit)(std::vector<uint8_t>&);
  const char* message;
};

const Corruption kCorruptions[] = {
    {"wrong_magic", "types_F32.gguf", [](auto& b) { b[0] = 'X'; }, "not a GGUF file"},
    {"safetensors_like", "types_F32.gguf", [](auto& b) { poke<uint64_t>(b, 0, 120); },
     "not a GGUF file"},
    {"version_1", "types_F32.gguf", [](auto& b) { poke<uint32_t>(b, 4, 1); }, "version 1"},
    {"version_4", "types_F32.gguf", [](auto& b) { poke<uint32_t>(b, 4, 4); }, "version 4"},
    {"big_endian", "types_F32.gguf", [](auto& b) { poke<uint32_t>(b, 4, 0x03000000); },
     "big-endian"},
    {"absurd_tensor_count", "types_F32.gguf",
     [](auto& b) { poke<uint64_t>(b, 8, uint64_t{1} << 60); },
     "claims 1152921504606846976 tensors"},
    {"absurd_kv_count", "types_F32.gguf", [](auto& b) { poke<uint64_t>(b, 16, ~uint64_t{0}); },
     "metadata entries"},
    {"absurd_key_length", "metadata.gguf",
     [](auto& b) { poke<uint64_t>(b, find_string(b, "test.u8"), uint64_t{1} << 42); },
     "claims 4398046511104 bytes"},
    {"absurd_string_length", "metadata.gguf",
     [](auto& b) {
       poke<uint64_t>(b, find_string(b, "test.string") + 8 + 11 + 4, ~uint64_t{0} >> 1);
     },
     "string value of key 'test.string'"},
    {"absurd_array_count", "metadata.gguf",
     [](auto& b) {
       poke<uint64_t>(b, find_string(b, "test.arr_str") + 8 + 12 + 4 + 4, uint64_t{1} << 40);
     },
     "claims an array of 1099511627776 string elements"},
    {"unknown_value_type", "metadata.gguf",
     [](auto& b) { poke<uint32_t>(b, find_string(b, "test.u8") + 8 + 7, 13); },
     "unknown value type 13"},
    {"unknown_array_element_type", "metadata.gguf",
     [](auto& b) { poke<uint32_t>(b, find_string(b, "test.arr_i32") + 8 + 12 + 4, 99); },
     "array of unknown value type 99"},
    {"duplicate_key", "metadata.gguf",
     [](auto& b) { std::memcpy(b.data() + find_string(b, "test.u8") + 8, "test.i8", 7); },
     "'test.i8' appears twice"},
    {"alignment_not_power_of_two", "metadata.gguf",
     [](auto& b) { poke<uint32_t>(b, find_string(b, "general.alignment") + 8 + 17 + 4, 48); },
     "power of two"},
    {"unknown_tensor_type", "types_Q4_1.gguf",
     [](auto& b) { poke<uint32_t>(b, entry_of(b, "rows").type, 77); },
     "'rows' has unknown tensor type id 77"},
    {"removed_tensor_type", "types_Q4_1.gguf",
     [](auto& b) { poke<uint32_t>(b, entry_of(b, "rows").type, 4); }, "unknown tensor type id 4"},
    {"too_many_dims", "types_F32.gguf",
     [](auto& b) { poke<uint32_t>(b, entry_of(b, "cube").n_dims, 7); }, "7 dimensions"},
    {"absurd_dim", "types_F32.gguf",
     [](auto& b) { poke<uint64_t>(b, entry_of(b, "cube").dims, uint64_t{1} << 62); },
     "impossible shape"},
    {"dims_overflow", "types_F32.gguf",
     [](auto& b) {
       const TensorEntry e = entry_of(b, "cube");
       for (int d = 0; d < 3; ++d) poke<uint64_t>(b, e.dims + 8 * d, uint64_t{1} << 30);
     },
     "impossible shape"},
    {"partial_block", "types_Q8_0.gguf",
     [](auto& b) { poke<uint64_t>(b, entry_of(b, "one_block").dims, 31); },
     "not a multiple of its block of 32"},
    {"offset_past_end", "types_Q8_0.gguf",
     [](auto& b) { poke<uint64_t>(b, entry_of(b, "rows").offset, uint64_t{1} << 40); },
     "reaches past the end"},
    {"offset_wraps", "types_Q8_0.gguf",
     [](auto& b) { poke<uint64_t>(b, entry_of(b, "rows").offset, ~uint64_t{0} - 31); },
     "reaches past the end"},
    {"size_past_end", "types_Q8_0.gguf",
     [](auto& b) { poke<uint64_t>(b, entry_of(b, "cube").dims + 8, 1000); },
     "reaches past the end"},
    {"misaligned_offset", "types_Q8_0.gguf",
     [](auto& b) { poke<uint64_t>(b, entry_of(b, "rows").offset, 8); },
     "not a multiple of the "
     "alignment"},
    {"overlapping_tensors", "types_Q8_0.gguf",
     [](auto& b) { poke<uint64_t>(b, entry_of(b, "rows").offset, 0); }, "overlap"},
    {"duplicate_tensor", "types_Q8_0.gguf",
     [](auto& b) { std::memcpy(b.data() + find_string(b, "cube") + 8, "rows", 4); },
     "'rows' appears twice"},
};

class GgufCorrupt : public ::testing::TestWithParam<Corruption> {};

TEST_P(GgufCorrupt, FailsWithAClearError) {
  const Corruption& c = GetParam();
  auto bytes = read_bytes(fixture(c.file));
  ASSERT_FALSE(bytes.empty());
  c.edit(bytes);
  const std::string path = write_temp(bytes, c.name);
  expect_open_error(path, c.message);
  std::remove(path.c_str());
}

INSTANTIATE_TEST_SUITE_P(Edits, GgufCorrupt, ::testing::ValuesIn(kCorruptions),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(GgufErrors, MissingFile) {
  const std::string msg = error_message([] { GgufFile f("/nonexistent/model.gguf"); });
  EXPECT_TRUE(contains(msg, "/nonexistent/model.gguf") && contains(msg, "cannot open")) << msg;
}

}  // namespace
}  // namespace rrt
