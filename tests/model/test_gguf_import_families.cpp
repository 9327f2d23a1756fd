// GGUF import beyond the Llama 2 layout (model/gguf_import.h), against transformers through
// fixtures of tools/make_gguf_fixtures.py:
//   qwen2        Qwen2ForCausalLM (q/k/v biases, tied head) in llama.cpp's "qwen2" layout, which
//                keeps HF's row order; transformers' own GGUF loader read the file to the same
//                logits when the fixture was made.
//   llama3 RoPE  Llama 3.2's rope scaling as llama.cpp's converter stores it, per-dimension
//                divisors in rope_freqs.weight: read back as the llama3 parameters, and the
//                logits over 64 positions equal the HF model's (which they do not without the
//                scaling). Factors that are no scaling rrt has are refused; constant ones are
//                linear scaling.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "core/safetensors.h"
#include "model/gguf_import.h"
#include "model/recursive_model.h"
#include "ops/rope.h"
#include "tests/error_helpers.h"
#include "tests/model/compare.h"

namespace rrt {
namespace {

using testing::contains;
using testing::error_message;

std::string fixture(const std::string& name) {
  return std::string(RRT_FIXTURE_DIR) + "/gguf/" + name;
}

// The imported model's logits on the reference's inputs, and their error against its logits.
double logits_error(const HfModel& hf, const SafetensorsFile& ref) {
  const auto inputs = ref.read_i32("inputs");
  const int64_t N = ref.info("inputs").shape.at(0), T = ref.info("inputs").shape.at(1);
  RecursiveModel model(hf.spec, {.max_batch = N, .max_seq = T});
  for (int i = 0; i < model.params().registry().size(); ++i)
    std::memcpy(model.params().value(i), hf.params->value(i),
                static_cast<size_t>(model.params().numel(i)) * sizeof(float));
  std::vector<float> logits(static_cast<size_t>(N * T * hf.spec.model.vocab));
  model.logits(inputs.data(), N, T, logits.data());
  return testing::relative_max_error(logits.data(), ref.read_f32("logits"));
}

TEST(GgufQwen2, EqualsTheHfModel) {
  const HfModel hf = load_gguf_model(fixture("qwen2_tied.gguf"));
  const ModelConfig& m = hf.spec.model;
  EXPECT_EQ(m.family, Family::qwen2);
  EXPECT_EQ(m.n_heads, 4);
  EXPECT_EQ(m.n_kv_heads, 2);
  EXPECT_EQ(m.dh(), 8);
  EXPECT_EQ(m.norm_eps, 1e-6);
  EXPECT_EQ(m.rope_theta, 1e6);
  EXPECT_TRUE(m.tied_head);
  EXPECT_TRUE(hf.params->registry().has("block.0.attn.q.bias"));
  const SafetensorsFile ref(fixture("qwen2_tied_reference.safetensors"));
  // Relative to the logits' magnitude, as the Llama GGUF parity test: fp32 sums in another order.
  EXPECT_LE(logits_error(hf, ref), 1e-4);
}

TEST(GgufLlama3Rope, FactorsReadBackAsLlama32Scaling) {
  HfModel hf = load_gguf_model(fixture("llama3_rope.gguf"));
  const ops::RopeScaling& rs = hf.spec.model.rope_scaling;
  EXPECT_EQ(rs.type, ops::RopeScalingType::llama3);
  EXPECT_EQ(rs.factor, 32.0);
  EXPECT_EQ(rs.low_freq_factor, 1.0);
  EXPECT_EQ(rs.high_freq_factor, 4.0);
  EXPECT_EQ(rs.original_max_positions, 8192);
  const SafetensorsFile ref(fixture("llama3_rope_reference.safetensors"));
  EXPECT_LE(logits_error(hf, ref), 1e-4);
  // The test has teeth: the same weights without the scaling are far off.
  hf.spec.model.rope_scaling = {};
  EXPECT_GT(logits_error(hf, ref), 1e-3);
}

// The fixture's rope_freqs bytes edited in place: located, checked against the factors rrt's
// own llama3 formula gives, then overwritten.
class EditedRopeFactors : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ifstream in(fixture("llama3_rope.gguf"), std::ios::binary);
    bytes_.assign(std::istreambuf_iterator<char>(in), {});
    const ops::RopeScaling llama32{.type = ops::RopeScalingType::llama3,
                                   .factor = 32,
                                   .low_freq_factor = 1,
                                   .high_freq_factor = 4,
                                   .original_max_positions = 8192};
    const std::vector<double> plain = ops::rope_inv_freq(16, 500000.0, {});
    const std::vector<double> scaled = ops::rope_inv_freq(16, 500000.0, llama32);
    for (size_t i = 0; i < plain.size(); ++i)
      factors_.push_back(static_cast<float>(plain[i] / scaled[i]));
    // All three regions of the scaling are present.
    EXPECT_EQ(factors_.front(), 1.0f);
    EXPECT_EQ(factors_.back(), 32.0f);
    EXPECT_TRUE(std::any_of(factors_.begin(), factors_.end(),
                            [](float f) { return f > 1.0f && f < 32.0f; }));
    // Found by its last three (32, 32, 32: no random weight is exactly that), then checked
    // whole: the converter's float32 arithmetic may differ from rrt's double in the last bits.
    const std::vector<float> tail(3, 32.0f);
    const auto* needle = reinterpret_cast<const uint8_t*>(tail.data());
    const auto it = std::search(bytes_.begin(), bytes_.end(), needle, needle + 3 * sizeof(float));
    ASSERT_NE(it, bytes_.end()) << "no rope_freqs ending in the llama3 factor 32";
    at_ = static_cast<size_t>(it - bytes_.begin()) - (factors_.size() - 3) * sizeof(float);
    std::vector<float> stored(factors_.size());
    std::memcpy(stored.data(), bytes_.data() + at_, stored.size() * sizeof(float));
    for (size_t i = 0; i < stored.size(); ++i)
      EXPECT_NEAR(stored[i], factors_[i], 1e-5 * factors_[i]);
  }
  std::string write(const std::vector<float>& factors) {
    std::memcpy(bytes_.data() + at_, factors.data(), factors.size() * sizeof(float));
    const std::string path =
        ::testing::TempDir() + "rrt_gguf_rope_" + std::to_string(::getpid()) + ".gguf";
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes_.data()),
               static_cast<std::streamsize>(bytes_.size()));
    return path;
  }
  std::vector<uint8_t> bytes_;
  std::vector<float> factors_;
  size_t at_ = 0;
};

TEST_F(EditedRopeFactors, ConstantFactorsAreLinearScaling) {
  const std::string path = write(std::vector<float>(factors_.size(), 4.0f));
  const ops::RopeScaling rs = load_gguf_model(path).spec.model.rope_scaling;
  EXPECT_EQ(rs.type, ops::RopeScalingType::linear);
  EXPECT_EQ(rs.factor, 4.0);
  std::remove(path.c_str());
}

TEST_F(EditedRopeFactors, OtherFactorsAreRefusedNamingTheTensor) {
  std::vector<float> factors = factors_;
  factors[factors.size() - 2] = 16.0f;  // no longer monotone: no llama3 scaling makes this
  const std::string path = write(factors);
  const std::string msg = error_message([&] { load_gguf_model(path); });
  EXPECT_TRUE(contains(msg, "rope_freqs.weight")) << msg;
  EXPECT_TRUE(contains(msg, "neither linear nor Llama 3")) << msg;
  std::remove(path.c_str());
}

TEST_F(EditedRopeFactors, AnotherLlama3ShapeIsRecoveredFromTheInterpolatedDims) {
  // low 1, high 16, original 32768: wavelengths 4529 and 23470 fall between 32768 / 16 and
  // 32768 / 1, so two dims are interpolated (theta 500000, 16 dims).
  const ops::RopeScaling other{.type = ops::RopeScalingType::llama3,
                               .factor = 8,
                               .low_freq_factor = 1,
                               .high_freq_factor = 16,
                               .original_max_positions = 32768};
  const std::vector<double> plain = ops::rope_inv_freq(16, 500000.0, {});
  const std::vector<double> scaled = ops::rope_inv_freq(16, 500000.0, other);
  std::vector<float> factors;
  int interpolated = 0;
  for (size_t i = 0; i < plain.size(); ++i) {
    factors.push_back(static_cast<float>(plain[i] / scaled[i]));
    interpolated += factors.back() > 1.0f && factors.back() < 8.0f;
  }
  ASSERT_GE(interpolated, 2);
  const std::string path = write(factors);
  const ops::RopeScaling rs = load_gguf_model(path).spec.model.rope_scaling;
  EXPECT_EQ(rs.type, ops::RopeScalingType::llama3);
  EXPECT_EQ(rs.factor, 8.0);
  // low = 1 is the one choice the factors cannot tell (only original / (high - low) and
  // low / (high - low) shape them); with it the rest comes back as written.
  EXPECT_EQ(rs.low_freq_factor, 1.0);
  EXPECT_NEAR(rs.high_freq_factor, 16.0, 1e-4);
  EXPECT_EQ(rs.original_max_positions, 32768);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace rrt
