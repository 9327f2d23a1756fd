// ConvertOptions::progress (model/convert.h): called once per block layer and, with SVD LoRA,
// once per unrolled position, with counts 1..total and a description of the step; the
// conversion's result does not depend on it.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "model/convert.h"

namespace rrt {
namespace {

ModelSpec plain_spec(int64_t L) {
  ModelSpec s;
  s.model = {.vocab = 53,
             .d_model = 16,
             .n_heads = 4,
             .n_kv_heads = 2,
             .head_dim = 8,
             .ffn = 40,
             .max_seq_len = 12};
  s.recursion = {.block_layers = L, .loops = 1};
  return s;
}

struct Call {
  int64_t done, total;
  std::string what;
};

std::vector<Call> calls_of(const ModelSpec& spec, const ParameterSet& params, ConvertOptions o,
                           Converted* out = nullptr) {
  std::vector<Call> calls;
  o.progress = [&calls](int64_t done, int64_t total, const std::string& what) {
    calls.push_back({done, total, what});
  };
  Converted c = convert_to_recursive(spec, params, o);
  if (out != nullptr) *out = std::move(c);
  return calls;
}

TEST(ConvertProgress, OneCallPerBlockLayerAndPerPositionsSvd) {
  const ModelSpec spec = plain_spec(6);
  ParameterSet params(spec);
  params.init({.seed = 7, .std = 0.2, .lora_b_zero = false});
  // L = 6, K = 2: B = 3 block layers, then 6 positions with SVD LoRA.
  const std::vector<Call> calls = calls_of(
      spec, params, {.loops = 2, .init = InitRule::average, .rank_attention = 4, .rank_mlp = 2});
  ASSERT_EQ(calls.size(), 9u);
  for (size_t i = 0; i < calls.size(); ++i) {
    EXPECT_EQ(calls[i].done, static_cast<int64_t>(i + 1)) << calls[i].what;
    EXPECT_EQ(calls[i].total, 9) << calls[i].what;
  }
  // Cycle sharing: block layer b serves layers b and b + 3.
  EXPECT_EQ(calls[0].what, "block layer 0: mean of layers 0, 3");
  EXPECT_EQ(calls[2].what, "block layer 2: mean of layers 2, 5");
  EXPECT_EQ(calls[3].what, "LoRA SVD of layer 0: block layer 0, loop 1");
  EXPECT_EQ(calls[8].what, "LoRA SVD of layer 5: block layer 2, loop 2");

  // Stepwise, sequence sharing, K = 3: B = 2 layers from the linspace selection.
  const std::vector<Call> seq =
      calls_of(spec, params, {.loops = 3, .sharing = Sharing::sequence, .rank_attention = 1});
  ASSERT_EQ(seq.size(), 8u);
  EXPECT_EQ(seq[0].what, "block layer 0 from layer 0");
  EXPECT_EQ(seq[1].what, "block layer 1 from layer 5");
  EXPECT_EQ(seq[4].what, "LoRA SVD of layer 2: block layer 0, loop 3");
  EXPECT_EQ(seq.back().done, 8);
}

TEST(ConvertProgress, WithoutSvdOnlyTheBlockLayers) {
  const ModelSpec spec = plain_spec(4);
  ParameterSet params(spec);
  params.init({.seed = 7, .std = 0.2, .lora_b_zero = false});
  for (const ConvertOptions& o :
       {ConvertOptions{.loops = 2},
        ConvertOptions{
            .loops = 2, .rank_attention = 3, .rank_mlp = 3, .lora_init = LoraInit::zero}}) {
    const std::vector<Call> calls = calls_of(spec, params, o);
    ASSERT_EQ(calls.size(), 2u);
    EXPECT_EQ(std::make_tuple(calls[0].done, calls[0].total), std::make_tuple(1, 2));
    EXPECT_EQ(std::make_tuple(calls[1].done, calls[1].total), std::make_tuple(2, 2));
  }
}

TEST(ConvertProgress, TheResultDoesNotDependOnIt) {
  const ModelSpec spec = plain_spec(4);
  ParameterSet params(spec);
  params.init({.seed = 7, .std = 0.2, .lora_b_zero = false});
  const ConvertOptions o{.loops = 2, .rank_attention = 4, .rank_mlp = 4};
  const Converted quiet = convert_to_recursive(spec, params, o);
  Converted reported;
  EXPECT_EQ(calls_of(spec, params, o, &reported).size(), 6u);
  const ParamRegistry& reg = quiet.params->registry();
  ASSERT_EQ(reg.size(), reported.params->registry().size());
  for (int i = 0; i < reg.size(); ++i)
    EXPECT_EQ(std::memcmp(quiet.params->value(i), reported.params->value(i),
                          static_cast<size_t>(quiet.params->numel(i)) * sizeof(float)),
              0)
        << reg[i].name;
}

}  // namespace
}  // namespace rrt
