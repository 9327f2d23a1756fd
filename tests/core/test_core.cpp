// Core pieces: Arena, rrt::Error / RRT_CHECK, the counter-based RNG, bf16 rounding, the
// safetensors reader (on the checked-in fixture and on small files written here) and
// write_buffers_atomically, the write under the safetensors and GGUF writers.
#include <gtest/gtest.h>
#include <omp.h>
#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/dtype.h"
#include "core/durable_file.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "core/tensor.h"
#include "tests/error_helpers.h"

namespace rrt {
namespace {

using testing::contains;
using testing::error_message;

// ---------------------------------------------------------------------------------------------
// Arena

TEST(Arena, PlansAllocatesAlignedZeroFilledViews) {
  Arena arena("acts");
  EXPECT_EQ(arena.plan("x", {3, 5}), 0);
  EXPECT_EQ(arena.plan("h", {2, 3, 7}, DType::f64), 1);
  EXPECT_EQ(arena.plan("tokens", {17}, DType::i32), 2);
  EXPECT_EQ(arena.plan("empty", {0}), 3);
  EXPECT_EQ(arena.plan("w", {1, 1, 1, 9}, DType::bf16), 4);
  EXPECT_FALSE(arena.allocated());
  arena.allocate();
  ASSERT_TRUE(arena.allocated());
  EXPECT_EQ(arena.size(), 5);
  EXPECT_EQ(arena.total_bytes() % 64, 0);

  const TensorView x = arena.view("x"), h = arena.view(1), tokens = arena.view("tokens");
  EXPECT_EQ(x.shape, (Shape{3, 5}));
  EXPECT_EQ(x.dtype, DType::f32);
  EXPECT_EQ(h.shape, (Shape{2, 3, 7}));
  EXPECT_EQ(h.dtype, DType::f64);
  EXPECT_EQ(tokens.numel(), 17);
  EXPECT_EQ(arena.name_of(2), "tokens");
  EXPECT_TRUE(arena.has("w"));
  EXPECT_FALSE(arena.has("y"));

  int64_t end_of_previous = 0;
  for (int i = 0; i < arena.size(); ++i) {
    const TensorView v = arena.view(i);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(v.data) % 64, 0u) << arena.name_of(i);
    EXPECT_GE(arena.offset_bytes(i), end_of_previous) << arena.name_of(i) << " overlaps";
    end_of_previous = arena.offset_bytes(i) + v.bytes();
    const auto* bytes = static_cast<const unsigned char*>(v.data);
    for (int64_t b = 0; b < v.bytes(); ++b) ASSERT_EQ(bytes[b], 0) << arena.name_of(i);
  }
  EXPECT_LE(end_of_previous, arena.total_bytes());

  // Views alias the arena: writes through one view are seen through another, and zero() clears.
  x.f32()[14] = 2.5f;
  EXPECT_EQ(arena.view(0).f32()[14], 2.5f);
  arena.zero();
  EXPECT_EQ(x.f32()[14], 0.0f);
  EXPECT_THROW(h.f32(), Error);  // f64 storage is not readable as f32
  EXPECT_NO_THROW(h.as<double>());
}

TEST(Arena, MisuseThrowsNamedErrors) {
  Arena arena("params");
  arena.plan("w", {4});
  EXPECT_TRUE(contains(error_message([&] { arena.plan("w", {8}); }), "'w' planned twice"));
  EXPECT_THROW(arena.view("w"), Error);  // before allocate()
  arena.allocate();
  const std::string late = error_message([&] { arena.plan("b", {4}); });
  EXPECT_TRUE(contains(late, "[Arena params]")) << late;
  EXPECT_TRUE(contains(late, "'b'")) << late;
  EXPECT_THROW(arena.allocate(), Error);
  EXPECT_TRUE(contains(error_message([&] { arena.view("nope"); }), "'nope'"));
}

TEST(Arena, AllocCountIncrementsOncePerAllocate) {
  const int64_t before = Arena::alloc_count();
  Arena a("a"), b("b");
  for (int i = 0; i < 10; ++i) a.plan(std::to_string(i) + "_t", {i + 1, 3});
  EXPECT_EQ(Arena::alloc_count(), before);  // planning allocates nothing
  a.allocate();
  EXPECT_EQ(Arena::alloc_count(), before + 1);
  for (int i = 0; i < 10; ++i) a.view(i);
  a.zero();
  EXPECT_EQ(Arena::alloc_count(), before + 1);  // views and zero() neither
  b.allocate();                                 // an empty arena still allocates once
  EXPECT_EQ(Arena::alloc_count(), before + 2);
  EXPECT_THROW(a.allocate(), Error);
  EXPECT_EQ(Arena::alloc_count(), before + 2);
}

// ---------------------------------------------------------------------------------------------
// Errors

TEST(Error, MessageReadsWhereThenWhat) {
  const Error e("rms_norm", "weight must have 1 dimension");
  EXPECT_STREQ(e.what(), "[rms_norm] weight must have 1 dimension");
  EXPECT_EQ(e.where(), "rms_norm");
  const std::runtime_error& base = e;  // catchable as a standard exception
  EXPECT_STREQ(base.what(), "[rms_norm] weight must have 1 dimension");
}

TEST(Error, CheckThrowsOnlyWhenFalseAndConcatenatesParts) {
  EXPECT_NO_THROW(RRT_CHECK(1 + 1 == 2, "math", "never"));
  try {
    const int got = 3;
    RRT_CHECK(got == 4, "loader", "expected ", 4, " layers, got ", got, " (", 0.5, ")");
    ADD_FAILURE() << "RRT_CHECK did not throw";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "[loader] expected 4 layers, got 3 (0.5)");
    EXPECT_EQ(e.where(), "loader");
  }
  EXPECT_EQ(error_message([] { RRT_FAIL("cli", "unknown flag --", "foo"); }),
            "[cli] unknown flag --foo");
}

TEST(Error, ShapeRejectsBadDimensions) {
  EXPECT_THROW((Shape{1, 2, 3, 4, 5}), Error);
  EXPECT_THROW((Shape{2, -1}), Error);
  EXPECT_EQ((Shape{2, 3, 4}).numel(), 24);
  EXPECT_EQ((Shape{2, 3}).str(), "[2, 3]");
}

// ---------------------------------------------------------------------------------------------
// Counter-based RNG

TEST(CounterRng, PhiloxMatchesRandom123KnownAnswers) {
  // Known-answer vectors published with Random123 (Salmon et al., SC'11).
  using Block = std::array<uint32_t, 4>;
  EXPECT_EQ(philox4x32({0, 0, 0, 0}, {0, 0}),
            (Block{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}));
  EXPECT_EQ(
      philox4x32({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu}),
      (Block{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}));
  EXPECT_EQ(
      philox4x32({0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, {0xa4093822u, 0x299f31d0u}),
      (Block{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}));
}

TEST(CounterRng, ValueDependsOnlyOnSeedStreamAndIndex) {
  const CounterRng a(42, 7), b(42, 7), other_stream(42, 8), other_seed(43, 7);
  int same_stream = 0, same_seed = 0;
  for (uint64_t i = 0; i < 1000; ++i) {
    const uint64_t index = i * 7919 + (i << 33);  // high index bits matter too
    ASSERT_EQ(a.normal(index), b.normal(index));
    ASSERT_EQ(a.uniform(index), b.uniform(index));
    const double u = a.uniform(index);
    ASSERT_GT(u, 0.0);
    ASSERT_LT(u, 1.0);
    same_stream += a.uniform(index) == other_stream.uniform(index);
    same_seed += a.uniform(index) == other_seed.uniform(index);
  }
  EXPECT_EQ(same_stream, 0);
  EXPECT_EQ(same_seed, 0);
  EXPECT_NE(a.uniform(0), a.uniform(1));
  EXPECT_NE(CounterRng(1, 0).uniform(0), CounterRng(1, 1ull << 32).uniform(0));
}

TEST(CounterRng, BelowStaysInRangeAndCoversIt) {
  const CounterRng rng(5, 0);
  std::vector<int> hits(7, 0);
  for (uint64_t i = 0; i < 7000; ++i) {
    const uint32_t x = rng.below(i, 7);
    ASSERT_LT(x, 7u);
    ++hits[x];
  }
  for (int h : hits) EXPECT_GT(h, 800);  // about 1000 each
}

TEST(CounterRng, FillNormalIsBitIdenticalForOneAndTwoThreads) {
  const int saved = omp_get_max_threads();
  const int64_t n = 100001;
  std::vector<double> one(n), two(n);
  std::vector<float> one_f(n), two_f(n);
  omp_set_num_threads(1);
  fill_normal(one.data(), n, 0.5, 2.0, 1234, 3);
  fill_normal(one_f.data(), n, 0.0, 0.02, 1234, 4);
  omp_set_num_threads(2);
  fill_normal(two.data(), n, 0.5, 2.0, 1234, 3);
  fill_normal(two_f.data(), n, 0.0, 0.02, 1234, 4);
  omp_set_num_threads(saved);
  EXPECT_EQ(std::memcmp(one.data(), two.data(), n * sizeof(double)), 0);
  EXPECT_EQ(std::memcmp(one_f.data(), two_f.data(), n * sizeof(float)), 0);
  // Element i is exactly mean + std * normal(i) of the (seed, stream) generator.
  const CounterRng rng(1234, 3);
  for (int64_t i : {int64_t{0}, int64_t{1}, int64_t{50000}, n - 1})
    EXPECT_EQ(one[i], 0.5 + 2.0 * rng.normal(i)) << i;
}

TEST(CounterRng, NormalsHaveZeroMeanUnitStd) {
  const int64_t n = 100000;
  std::vector<double> x(n);
  fill_normal(x.data(), n, 0.0, 1.0, 99, 0);
  double sum = 0, sum_sq = 0;
  int beyond_3_sigma = 0;
  for (double v : x) {
    sum += v;
    sum_sq += v * v;
    beyond_3_sigma += std::abs(v) > 3;
  }
  const double mean = sum / n, std = std::sqrt(sum_sq / n - mean * mean);
  EXPECT_NEAR(mean, 0.0, 0.015);  // standard error 0.003
  EXPECT_NEAR(std, 1.0, 0.015);
  EXPECT_NEAR(beyond_3_sigma, 270, 80);  // 0.27% of a normal lies beyond 3 sigma

  std::vector<double> other(n);
  fill_normal(other.data(), n, 0.0, 1.0, 99, 1);
  int equal = 0;
  for (int64_t i = 0; i < n; ++i) equal += other[i] == x[i];
  EXPECT_EQ(equal, 0) << "streams 0 and 1 must give different numbers";
}

TEST(CounterRng, FillUniformCoversTheRange) {
  const int64_t n = 50000;
  std::vector<float> x(n);
  fill_uniform(x.data(), n, -2.0, 6.0, 7, 0);
  double sum = 0;
  float lo = 100, hi = -100;
  for (float v : x) {
    sum += v;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  EXPECT_GE(lo, -2.0f);
  EXPECT_LE(hi, 6.0f);
  EXPECT_LT(lo, -1.99f);
  EXPECT_GT(hi, 5.99f);
  EXPECT_NEAR(sum / n, 2.0, 0.05);
}

// ---------------------------------------------------------------------------------------------
// bf16

float float_from_bits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

TEST(Bf16, KnownValuesRoundToNearestEven) {
  EXPECT_EQ(bf16::from_float(1.0f).bits, 0x3F80);
  EXPECT_EQ(bf16::from_float(-2.5f).bits, 0xC020);
  EXPECT_EQ(bf16::from_float(0.0f).bits, 0x0000);
  EXPECT_EQ(bf16::from_float(-0.0f).bits, 0x8000);
  EXPECT_EQ(bf16::from_float(3.14159265f).bits, 0x4049);  // 3.140625
  EXPECT_EQ(bf16{0x4049}.to_float(), 3.140625f);
  // Exactly half-way: ties go to the even neighbour, down or up.
  EXPECT_EQ(bf16::from_float(float_from_bits(0x3F808000u)).bits, 0x3F80);
  EXPECT_EQ(bf16::from_float(float_from_bits(0x3F818000u)).bits, 0x3F82);
  EXPECT_EQ(bf16::from_float(float_from_bits(0xBF818000u)).bits, 0xBF82);
  // Just off half-way: nearest wins.
  EXPECT_EQ(bf16::from_float(float_from_bits(0x3F808001u)).bits, 0x3F81);
  EXPECT_EQ(bf16::from_float(float_from_bits(0x3F817FFFu)).bits, 0x3F81);
  // Infinities stay, the largest float rounds up to infinity, NaN stays NaN.
  EXPECT_EQ(bf16::from_float(float_from_bits(0x7F800000u)).bits, 0x7F80);
  EXPECT_EQ(bf16::from_float(float_from_bits(0xFF800000u)).bits, 0xFF80);
  EXPECT_EQ(bf16::from_float(float_from_bits(0x7F7FFFFFu)).bits, 0x7F80);
  EXPECT_TRUE(std::isnan(bf16::from_float(std::nanf("")).to_float()));
  EXPECT_TRUE(std::isnan(bf16::from_float(float_from_bits(0x7F800001u)).to_float()));
}

TEST(Bf16, EveryValueRoundTrips) {
  int nan_patterns = 0;
  for (uint32_t bits = 0; bits < 0x10000u; ++bits) {
    const bf16 b{static_cast<uint16_t>(bits)};
    const float f = b.to_float();
    if (std::isnan(f)) {
      ++nan_patterns;
      ASSERT_TRUE(std::isnan(bf16::from_float(f).to_float())) << bits;
    } else {
      ASSERT_EQ(bf16::from_float(f).bits, b.bits) << bits;
    }
  }
  EXPECT_EQ(nan_patterns, 2 * 127);
}

// ---------------------------------------------------------------------------------------------
// safetensors

const std::string kFixture = std::string(RRT_FIXTURE_DIR) + "/relaxed_cycle.safetensors";

TEST(Safetensors, ReadsFixtureHeaderAndMetadata) {
  const SafetensorsFile file(kFixture);
  ASSERT_EQ(file.metadata().count("config"), 1u);
  const auto config = nlohmann::json::parse(file.metadata().at("config"));
  EXPECT_EQ(config.at("vocab").get<int>(), 300);
  EXPECT_EQ(config.at("d_model").get<int>(), 32);

  ASSERT_TRUE(file.has("inputs"));
  EXPECT_EQ(file.info("inputs").dtype, "I32");
  EXPECT_EQ(file.info("inputs").shape, (std::vector<int64_t>{2, 17}));
  EXPECT_EQ(file.info("embed.weight").dtype, "F32");
  EXPECT_EQ(file.info("embed.weight").shape, (std::vector<int64_t>{300, 32}));
  EXPECT_EQ(file.info("embed.weight").numel(), 9600);
  EXPECT_EQ(file.info("embed.weight").end - file.info("embed.weight").begin, 9600 * 4);
  EXPECT_EQ(file.tensors().count("__metadata__"), 0u);
  EXPECT_GT(file.tensors().size(), 100u);
}

TEST(Safetensors, ReadsFixtureData) {
  const SafetensorsFile file(kFixture);
  const std::vector<int32_t> inputs = file.read_i32("inputs");
  ASSERT_EQ(inputs.size(), 34u);
  EXPECT_EQ((std::vector<int32_t>(inputs.begin(), inputs.begin() + 4)),
            (std::vector<int32_t>{229, 87, 258, 205}));
  for (int32_t t : inputs) EXPECT_TRUE(t >= 0 && t < 300) << t;

  const std::vector<float> embed = file.read_f32("embed.weight");
  ASSERT_EQ(embed.size(), 9600u);
  EXPECT_EQ(embed[0], -0.31128954887390137f);
  EXPECT_EQ(embed[9599], -0.29047441482543945f);
  double sum = 0;
  for (float v : embed) sum += v;
  EXPECT_NEAR(sum, 94.66552342593786, 1e-6);

  std::vector<float> into(9600);
  file.read_f32_into("embed.weight", into.data(), 9600);
  EXPECT_EQ(into, embed);
  EXPECT_THROW(file.read_f32_into("embed.weight", into.data(), 9599), Error);
  EXPECT_THROW(file.read_i32("embed.weight"), Error);  // F32 is not I32
}

TEST(Safetensors, MissingTensorOrFileNamesTheFile) {
  const SafetensorsFile file(kFixture);
  EXPECT_FALSE(file.has("no.such.tensor"));
  const std::string missing_tensor = error_message([&] { file.info("no.such.tensor"); });
  EXPECT_TRUE(contains(missing_tensor, kFixture)) << missing_tensor;
  EXPECT_TRUE(contains(missing_tensor, "no.such.tensor")) << missing_tensor;
  EXPECT_THROW(file.read_f32("no.such.tensor"), Error);

  const std::string path = std::string(RRT_FIXTURE_DIR) + "/does_not_exist.safetensors";
  const std::string missing_file = error_message([&] { SafetensorsFile f(path); });
  EXPECT_TRUE(contains(missing_file, path)) << missing_file;
}

// Writes a safetensors file: 8-byte little-endian header length, JSON header, raw data.
std::string write_safetensors(const std::string& name, const std::string& header,
                              const std::vector<uint8_t>& data) {
  const std::string path = ::testing::TempDir() + name;
  std::ofstream out(path, std::ios::binary);
  const uint64_t len = header.size();
  out.write(reinterpret_cast<const char*>(&len), 8);
  out << header;
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  return path;
}

TEST(Safetensors, ConvertsHalfPrecisionTypesToFloat) {
  const std::string header = R"({"__metadata__":{"format":"pt"},)"
                             R"("b":{"dtype":"BF16","shape":[3],"data_offsets":[0,6]},)"
                             R"("h":{"dtype":"F16","shape":[1,3],"data_offsets":[6,12]},)"
                             R"("d":{"dtype":"F64","shape":[1],"data_offsets":[12,20]}})";
  std::vector<uint8_t> data = {0x80, 0x3F, 0x20, 0xC0, 0x49, 0x40,   // bf16 1, -2.5, 3.140625
                               0x00, 0x3C, 0x01, 0x00, 0x00, 0x7C};  // f16 1, 2^-24, inf
  const double d = -0.125;
  const auto* d_bytes = reinterpret_cast<const uint8_t*>(&d);
  data.insert(data.end(), d_bytes, d_bytes + 8);
  const SafetensorsFile file(write_safetensors("rrt_core_test_types.safetensors", header, data));
  EXPECT_EQ(file.metadata().at("format"), "pt");
  EXPECT_EQ(file.read_f32("b"), (std::vector<float>{1.0f, -2.5f, 3.140625f}));
  const std::vector<float> h = file.read_f32("h");
  EXPECT_EQ(h[0], 1.0f);
  EXPECT_EQ(h[1], std::ldexp(1.0f, -24));  // the smallest subnormal half
  EXPECT_TRUE(std::isinf(h[2]));
  EXPECT_EQ(file.read_f32("d"), (std::vector<float>{-0.125f}));
}

TEST(Safetensors, RejectsCorruptFiles) {
  const std::string tiny = ::testing::TempDir() + "rrt_core_test_tiny.safetensors";
  std::ofstream(tiny, std::ios::binary) << "abc";
  EXPECT_TRUE(contains(error_message([&] { SafetensorsFile f(tiny); }), tiny));

  const std::string huge_header =
      write_safetensors("rrt_core_test_long.safetensors", std::string(16, ' '), {});
  {  // claim a header longer than the file
    std::fstream f(huge_header, std::ios::binary | std::ios::in | std::ios::out);
    const uint64_t len = 1000;
    f.write(reinterpret_cast<const char*>(&len), 8);
  }
  EXPECT_TRUE(contains(error_message([&] { SafetensorsFile f(huge_header); }), "header length"));

  const std::string past_end = write_safetensors(
      "rrt_core_test_past.safetensors",
      R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", std::vector<uint8_t>(8, 0));
  EXPECT_TRUE(contains(error_message([&] { SafetensorsFile f(past_end); }), "'x'"));

  const std::string bad_json = write_safetensors("rrt_core_test_json.safetensors", "{not json", {});
  EXPECT_TRUE(contains(error_message([&] { SafetensorsFile f(bad_json); }), "JSON"));

  // A header that lies: the shape claims more elements than the byte range holds.
  const std::string lying = write_safetensors(
      "rrt_core_test_lying.safetensors",
      R"({"w":{"dtype":"F32","shape":[1000],"data_offsets":[0,8]}})", std::vector<uint8_t>(8, 0));
  const std::string lie = error_message([&] { SafetensorsFile f(lying); });
  EXPECT_TRUE(contains(lie, "'w' claims 1000 elements")) << lie;

  // Well-formed JSON of the wrong structure is an rrt::Error too, not a JSON exception.
  const std::string wrong_types = write_safetensors(
      "rrt_core_test_wrong_types.safetensors",
      R"({"w":{"dtype":3,"shape":"big","data_offsets":[0,8]}})", std::vector<uint8_t>(8, 0));
  EXPECT_TRUE(contains(error_message([&] { SafetensorsFile f(wrong_types); }), "malformed header"));
}

// ---------------------------------------------------------------------------------------------
// write_buffers_atomically: the one temporary-file, fsync, rename write of GGUF and safetensors

namespace fs = std::filesystem;

std::string read_whole(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The names in dir other than `keep`: what a failed write must not leave behind.
std::vector<std::string> leftovers(const fs::path& dir, const std::string& keep) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().filename() != keep) names.push_back(entry.path().filename().string());
  return names;
}

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

TEST(DurableFile, WritesAllBuffersInOrderAndReplacesTheFile) {
  const fs::path dir = fresh_dir("rrt_core_test_buffers");
  const fs::path path = dir / "out.bin";
  std::ofstream(path) << "old contents";
  const std::string head = "head:";
  const std::vector<uint8_t> big(3 * 65536 + 7, 0xA5);
  const char tail[] = {'t', 'a', 'i', 'l'};
  const std::vector<FileBuffer> buffers{
      {head.data(), head.size()}, {nullptr, 0}, {big.data(), big.size()}, {tail, sizeof(tail)}};
  write_buffers_atomically(path.string(), buffers, "test write");
  const std::string expected =
      head + std::string(big.begin(), big.end()) + std::string(tail, sizeof(tail));
  EXPECT_EQ(read_whole(path), expected);
  EXPECT_TRUE(leftovers(dir, "out.bin").empty());  // the temporary was renamed, not copied

  // No buffers at all: an empty file, still atomically.
  write_buffers_atomically(path.string(), {}, "test write");
  EXPECT_EQ(fs::file_size(path), 0u);
}

TEST(DurableFile, UnwritableDirectoryNamesTheWriteAndLeavesNothing) {
  const fs::path dir = fresh_dir("rrt_core_test_unwritable");
  // A directory that cannot hold files: its "parent" is a regular file (root ignores
  // permission bits, so a read-only directory would not fail under root).
  const fs::path not_a_dir = dir / "plain_file";
  std::ofstream(not_a_dir) << "x";
  const std::string data = "payload";
  const std::vector<FileBuffer> buffers{{data.data(), data.size()}};
  const std::string message = error_message(
      [&] { write_buffers_atomically((not_a_dir / "out.bin").string(), buffers, "gguf out.bin"); });
  EXPECT_TRUE(contains(message, "gguf out.bin")) << message;
  EXPECT_TRUE(contains(message, "cannot create")) << message;
  EXPECT_TRUE(leftovers(dir, "plain_file").empty());
  EXPECT_EQ(read_whole(not_a_dir), "x");
}

TEST(DurableFile, FailedWriteRemovesTheTemporaryAndKeepsTheOldFile) {
  const fs::path dir = fresh_dir("rrt_core_test_short_write");
  const fs::path path = dir / "out.bin";
  std::ofstream(path) << "previous";
  // A file size limit makes the second buffer's write fail (EFBIG) after the temporary exists
  // and holds the first: the failure this test is about is the one in the middle of a write.
  rlimit old_limit{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit small = old_limit;
  small.rlim_cur = 4096;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  const std::vector<char> block(4096, 'b');
  const std::vector<FileBuffer> buffers{{block.data(), block.size()}, {block.data(), block.size()}};
  const std::string message =
      error_message([&] { write_buffers_atomically(path.string(), buffers, "safetensors out"); });
  ::setrlimit(RLIMIT_FSIZE, &old_limit);
  std::signal(SIGXFSZ, old_handler);
  EXPECT_TRUE(contains(message, "safetensors out")) << message;
  EXPECT_TRUE(contains(message, "write failed")) << message;
  EXPECT_TRUE(contains(message, "untouched")) << message;
  EXPECT_EQ(read_whole(path), "previous");
  EXPECT_TRUE(leftovers(dir, "out.bin").empty());
}

TEST(DurableFile, FailedRenameRemovesTheTemporary) {
  const fs::path dir = fresh_dir("rrt_core_test_rename");
  // The final name is a non-empty directory: everything is written and synced, the rename fails.
  fs::create_directories(dir / "target" / "inside");
  const std::string data = "payload";
  const std::vector<FileBuffer> buffers{{data.data(), data.size()}};
  const std::string message = error_message(
      [&] { write_buffers_atomically((dir / "target").string(), buffers, "gguf target"); });
  EXPECT_TRUE(contains(message, "cannot rename")) << message;
  EXPECT_TRUE(leftovers(dir, "target").empty());
  EXPECT_TRUE(fs::is_directory(dir / "target" / "inside"));
}

}  // namespace
}  // namespace rrt
