// Hugging Face import (model/hf_import.h) against transformers itself
// (tools/make_hf_fixtures.py): logits, loss and every parameter gradient of the imported model.
// Llama: GQA, MQA with an independent head_dim, a tied head in bf16, a sharded checkpoint.
// Gemma 1: MQA, independent head_dim, tied head, (1 + w) norms, bf16. GPT-NeoX: parallel and
// sequential residual, partial rotary, biases everywhere, fused per-head interleaved qkv, fp16
// shards. Plus the errors for checkpoints the importer must refuse.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/safetensors.h"
#include "model/convert.h"
#include "model/hf_import.h"
#include "model/recursive_model.h"
#include "tests/error_helpers.h"
#include "tests/model/compare.h"

namespace rrt {
namespace {

namespace fs = std::filesystem;

std::string fixture(const std::string& name) { return std::string(RRT_FIXTURE_DIR) + "/" + name; }

using testing::relative_max_error;

class HfParity : public ::testing::TestWithParam<const char*> {};

TEST_P(HfParity, LogitsLossAndEveryGradient) {
  const std::string dir = fixture(GetParam());
  HfModel hf = load_hf_model(dir);
  EXPECT_EQ(hf.spec.recursion.loops, 1);
  EXPECT_EQ(hf.spec.recursion.block_layers, hf.spec.model.n_layers);
  EXPECT_EQ(hf.spec.lora.rank_attention + hf.spec.lora.rank_mlp, 0);

  SafetensorsFile ref(dir + "/reference.safetensors");
  RecordProperty("transformers_version", ref.metadata().at("transformers_version"));
  const auto inputs = ref.read_i32("inputs");
  const auto targets = ref.read_i32("targets");
  const auto& shape = ref.info("inputs").shape;
  const int64_t N = shape.at(0), T = shape.at(1), V = hf.spec.model.vocab;

  RecursiveModel model(hf.spec, {.max_batch = N, .max_seq = T, .head_chunk = 7});
  const ParamRegistry& reg = model.params().registry();
  ASSERT_EQ(reg.size(), hf.params->registry().size());
  for (int i = 0; i < reg.size(); ++i) {
    ASSERT_EQ(reg[i].name, hf.params->registry()[i].name);
    std::memcpy(model.params().value(i), hf.params->value(i),
                static_cast<size_t>(model.params().numel(i)) * sizeof(float));
  }

  std::vector<float> logits(static_cast<size_t>(N * T * V));
  model.logits(inputs.data(), N, T, logits.data());
  const double logit_err = relative_max_error(logits.data(), ref.read_f32("logits"));
  EXPECT_LE(logit_err, 1e-4);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", logit_err);
  RecordProperty("logits_rel_err", buf);

  model.params().zero_grads();
  const double loss = model.forward_backward(inputs.data(), targets.data(), N, T);
  EXPECT_NEAR(loss, ref.read_f32("loss")[0], 1e-4);

  int checked = 0;
  double worst_grad_err = 0;
  for (int i = 0; i < reg.size(); ++i) {
    const std::string name = "grad." + reg[i].name;
    ASSERT_TRUE(ref.has(name)) << name;
    const auto g = ref.read_f32(name);
    ASSERT_EQ(static_cast<int64_t>(g.size()), model.params().numel(i)) << name;
    const double err = relative_max_error(model.params().grad(i), g);
    EXPECT_LE(err, 1e-4) << name;
    worst_grad_err = std::max(worst_grad_err, err);
    ++checked;
  }
  std::snprintf(buf, sizeof buf, "%.3g", worst_grad_err);
  RecordProperty("grad_rel_err_max", buf);
  int ref_grads = 0;
  for (const auto& [name, info] : ref.tensors()) ref_grads += name.rfind("grad.", 0) == 0;
  EXPECT_EQ(checked, ref_grads);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, HfParity,
                         ::testing::Values("hf_llama_gqa", "hf_llama_mqa_tied_bf16",
                                           "hf_llama_sharded", "hf_gemma_mqa_bf16",
                                           "hf_neox_parallel", "hf_neox_sequential_fp16_sharded",
                                           "hf_llama3_rope", "hf_llama_rope_linear",
                                           "hf_llama_rope_dynamic", "hf_qwen2_tied", "hf_qwen3",
                                           "hf_gemma3", "hf_gemma3_mqa_untied_bf16",
                                           "hf_gemma3_window", "hf_gemma2", "hf_gemma2_softcap",
                                           "hf_gemma2_final_softcap"),
                         [](const auto& info) { return std::string(info.param); });

// The conversion's correctness test on checkpoints transformers wrote (docs/method.md §2.4): every
// layer becomes its own loop position of one shared block layer (K = L, B = 1; cycle and
// sequence), full-rank SVD LoRA with per-loop norms and biases, and the relaxed model still
// gives transformers' logits. Rank 0 of the same conversion does not.
TEST_P(HfParity, FullRankRelaxedConversionGivesTransformersLogits) {
  const std::string dir = fixture(GetParam());
  HfModel hf = load_hf_model(dir);
  SafetensorsFile ref(dir + "/reference.safetensors");
  const auto inputs = ref.read_i32("inputs");
  const auto want = ref.read_f32("logits");
  const auto& shape = ref.info("inputs").shape;
  const int64_t N = shape.at(0), T = shape.at(1), L = hf.spec.model.n_layers;
  auto logits_of = [&](const Converted& c) {
    RecursiveModel model(c.spec, {.max_batch = N, .max_seq = T});
    for (int i = 0; i < c.params->registry().size(); ++i)
      std::memcpy(model.params().value(c.params->registry()[i].name), c.params->value(i),
                  static_cast<size_t>(c.params->numel(i)) * sizeof(float));
    std::vector<float> out(static_cast<size_t>(N * T * hf.spec.model.vocab));
    model.logits(inputs.data(), N, T, out.data());
    return out;
  };
  for (Sharing sharing : {Sharing::cycle, Sharing::sequence}) {
    ConvertOptions opt{.loops = L,
                       .sharing = sharing,
                       .init = InitRule::average,
                       .rank_attention = 1 << 20,
                       .rank_mlp = 1 << 20,
                       .per_loop_norms = true};
    const Converted full = convert_to_recursive(hf.spec, *hf.params, opt);
    EXPECT_EQ(full.spec.recursion.block_layers, 1);
    EXPECT_LE(relative_max_error(logits_of(full).data(), want), 1e-4) << to_string(sharing);
    opt.rank_attention = opt.rank_mlp = 0;
    EXPECT_GT(
        relative_max_error(logits_of(convert_to_recursive(hf.spec, *hf.params, opt)).data(), want),
        1e-2)
        << to_string(sharing);
  }
}

TEST(HfImport, ConfigFields) {
  const ModelConfig gqa = read_hf_config(fixture("hf_llama_gqa"));
  EXPECT_EQ(gqa.n_heads, 4);
  EXPECT_EQ(gqa.n_kv_heads, 2);
  EXPECT_FALSE(gqa.tied_head);
  EXPECT_DOUBLE_EQ(gqa.rope_theta, 5000.0);
  const ModelConfig mqa = read_hf_config(fixture("hf_llama_mqa_tied_bf16"));
  EXPECT_EQ(mqa.n_kv_heads, 1);
  EXPECT_EQ(mqa.dh(), 12);
  EXPECT_NE(mqa.dh(), mqa.d_model / mqa.n_heads);
  EXPECT_TRUE(mqa.tied_head);
  EXPECT_EQ(mqa.n_layers, 3);
}

TEST(HfImport, GemmaConfigFields) {
  const ModelConfig g = read_hf_config(fixture("hf_gemma_mqa_bf16"));
  EXPECT_EQ(g.family, Family::gemma);
  EXPECT_EQ(g.n_heads, 4);
  EXPECT_EQ(g.n_kv_heads, 1);
  EXPECT_EQ(g.dh(), 12);
  EXPECT_NE(g.dh(), g.d_model / g.n_heads);
  EXPECT_TRUE(g.tied_head);
  EXPECT_TRUE(g.norm_unit_offset);
  EXPECT_EQ(g.norm, Norm::rms);
  EXPECT_EQ(g.activation, Activation::geglu);
  EXPECT_FALSE(g.linear_bias);
  EXPECT_EQ(g.embed_scale, 0.0);
  EXPECT_DOUBLE_EQ(g.embedding_multiplier(), std::sqrt(32.0));
  EXPECT_EQ(g.rot_dim(), 12);
  EXPECT_DOUBLE_EQ(g.norm_eps, 1e-6);
  EXPECT_NO_THROW(check_family_structure(g));
}

TEST(HfImport, NeoxConfigFields) {
  const ModelConfig par = read_hf_config(fixture("hf_neox_parallel"));
  EXPECT_EQ(par.family, Family::neox);
  EXPECT_EQ(par.n_kv_heads, par.n_heads);
  EXPECT_EQ(par.dh(), 16);
  EXPECT_EQ(par.rot_dim(), 4);  // 25% of 16
  EXPECT_TRUE(par.parallel_residual);
  EXPECT_EQ(par.norm, Norm::layer);
  EXPECT_TRUE(par.linear_bias);
  EXPECT_FALSE(par.norm_unit_offset);
  EXPECT_FALSE(par.tied_head);
  EXPECT_EQ(par.activation, Activation::gelu);
  EXPECT_FALSE(par.has_proj(Proj::gate));
  EXPECT_DOUBLE_EQ(par.embedding_multiplier(), 1.0);
  EXPECT_DOUBLE_EQ(par.rope_theta, 10000.0);
  EXPECT_DOUBLE_EQ(par.norm_eps, 1e-5);
  EXPECT_NO_THROW(check_family_structure(par));
  const ModelConfig seq = read_hf_config(fixture("hf_neox_sequential_fp16_sharded"));
  EXPECT_FALSE(seq.parallel_residual);
  EXPECT_EQ(seq.dh(), 8);
  EXPECT_EQ(seq.rot_dim(), 4);  // 50% of 8: read from the config, not the family default
  EXPECT_DOUBLE_EQ(seq.rope_theta, 5000.0);
  EXPECT_DOUBLE_EQ(seq.norm_eps, 1e-6);
  EXPECT_EQ(seq.n_layers, 3);
}

TEST(HfImport, RopeScalingConfigFields) {
  const ModelConfig l3 = read_hf_config(fixture("hf_llama3_rope"));
  EXPECT_EQ(l3.family, Family::llama);
  EXPECT_EQ(l3.rope_scaling.type, ops::RopeScalingType::llama3);
  EXPECT_DOUBLE_EQ(l3.rope_scaling.factor, 4.0);
  EXPECT_DOUBLE_EQ(l3.rope_scaling.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(l3.rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(l3.rope_scaling.original_max_positions, 16);
  EXPECT_DOUBLE_EQ(l3.rope_theta, 5000.0);
  const ModelConfig lin = read_hf_config(fixture("hf_llama_rope_linear"));
  EXPECT_EQ(lin.rope_scaling.type, ops::RopeScalingType::linear);
  EXPECT_DOUBLE_EQ(lin.rope_scaling.factor, 2.5);
  const ModelConfig dyn = read_hf_config(fixture("hf_llama_rope_dynamic"));
  EXPECT_EQ(dyn.rope_scaling.type, ops::RopeScalingType::dynamic);
  EXPECT_EQ(dyn.rope_scaling.original_max_positions, dyn.max_seq_len);
  EXPECT_EQ(read_hf_config(fixture("hf_llama_gqa")).rope_scaling, ops::RopeScaling{});
}

TEST(HfImport, QwenConfigFields) {
  const ModelConfig q2 = read_hf_config(fixture("hf_qwen2_tied"));
  EXPECT_EQ(q2.family, Family::qwen2);
  EXPECT_TRUE(q2.qkv_bias);
  EXPECT_FALSE(q2.linear_bias);
  EXPECT_FALSE(q2.qk_norm);
  for (Proj p : {Proj::q, Proj::k, Proj::v}) EXPECT_TRUE(q2.has_bias(p));
  for (Proj p : {Proj::o, Proj::gate, Proj::up, Proj::down}) EXPECT_FALSE(q2.has_bias(p));
  EXPECT_TRUE(q2.tied_head);
  EXPECT_EQ(q2.activation, Activation::swiglu);
  EXPECT_NO_THROW(check_family_structure(q2));
  const ModelConfig q3 = read_hf_config(fixture("hf_qwen3"));
  EXPECT_EQ(q3.family, Family::qwen3);
  EXPECT_TRUE(q3.qk_norm);
  EXPECT_FALSE(q3.qkv_bias);
  EXPECT_EQ(q3.dh(), 12);
  EXPECT_FALSE(q3.tied_head);
  EXPECT_EQ(q3.n_layers, 3);
  EXPECT_NO_THROW(check_family_structure(q3));
}

// A scratch copy of a fixture that a test may edit; removed afterwards.
class TempCopy {
 public:
  explicit TempCopy(const std::string& name) {
    const auto* t = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("rrt_hf_" + std::to_string(getpid()) + "_" + t->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    for (const auto& e : fs::directory_iterator(fixture(name)))
      if (e.path().filename() != "reference.safetensors")
        fs::copy_file(e.path(), dir_ / e.path().filename());
  }
  ~TempCopy() { fs::remove_all(dir_); }
  std::string dir() const { return dir_.string(); }
  std::string path(const std::string& f) const { return (dir_ / f).string(); }

  nlohmann::json config() const {
    std::ifstream in(path("config.json"));
    return nlohmann::json::parse(in);
  }
  void set_config(const nlohmann::json& c) const {
    std::ofstream(path("config.json")) << c.dump(2);
  }

  // Rewrites model.safetensors (as F32) after `edit` changed its tensor map.
  struct Tensor {
    std::vector<int64_t> shape;
    std::vector<float> data;
  };
  void edit_weights(const std::function<void(std::map<std::string, Tensor>&)>& edit) const {
    std::map<std::string, Tensor> tensors;
    {
      SafetensorsFile f(path("model.safetensors"));
      for (const auto& [name, info] : f.tensors()) tensors[name] = {info.shape, f.read_f32(name)};
    }
    edit(tensors);
    std::vector<SafetensorOut> out;
    for (const auto& [name, t] : tensors) out.push_back({name, "F32", t.shape, t.data.data()});
    write_safetensors(path("model.safetensors"), out);
  }

 private:
  fs::path dir_;
};

TEST(HfImportErrors, UnknownArchitecture) {
  TempCopy tmp("hf_llama_gqa");
  auto c = tmp.config();
  c["architectures"] = {"GPTJForCausalLM"};
  tmp.set_config(c);
  const std::string msg = testing::error_message([&] { load_hf_model(tmp.dir()); });
  EXPECT_NE(msg.find("GPTJForCausalLM"), std::string::npos) << msg;
  EXPECT_NE(msg.find("LlamaForCausalLM"), std::string::npos) << msg;
}

TEST(HfImportErrors, UnsupportedConfig) {
  TempCopy tmp("hf_llama_gqa");
  const auto base = tmp.config();
  auto c = base;
  // Llama 3's llama3, linear and dynamic are imported (RopeScaling below); YaRN is not.
  c["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 2.0}};
  tmp.set_config(c);
  EXPECT_NE(testing::error_message([&] { read_hf_config(tmp.dir()); }).find("rope_scaling"),
            std::string::npos);
  c = base;
  c["rope_parameters"]["rope_type"] = "llama3";  // without its factors
  tmp.set_config(c);
  std::string msg = testing::error_message([&] { read_hf_config(tmp.dir()); });
  EXPECT_NE(msg.find("llama3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'factor'"), std::string::npos) << msg;
  c = base;
  c["hidden_act"] = "gelu";
  tmp.set_config(c);
  EXPECT_NE(testing::error_message([&] { read_hf_config(tmp.dir()); }).find("gelu"),
            std::string::npos);
  c = base;
  c["attention_bias"] = true;
  tmp.set_config(c);
  EXPECT_NE(testing::error_message([&] { read_hf_config(tmp.dir()); }).find("attention_bias"),
            std::string::npos);
  c = base;
  c["mlp_bias"] = true;
  tmp.set_config(c);
  EXPECT_NE(testing::error_message([&] { read_hf_config(tmp.dir()); }).find("mlp_bias"),
            std::string::npos);
  // The older spelling (transformers 4): rope_theta at the top level, no rope_parameters.
  c = base;
  c.erase("rope_parameters");
  c["rope_theta"] = 123.0;
  c["rope_scaling"] = nullptr;
  tmp.set_config(c);
  EXPECT_DOUBLE_EQ(read_hf_config(tmp.dir()).rope_theta, 123.0);
}

// Each unsupported field of the new families is refused by name.
TEST(HfImportErrors, UnsupportedRopeScalingAndWindows) {
  auto refusal = [](const char* fixture_name, const std::function<void(nlohmann::json&)>& edit) {
    TempCopy tmp(fixture_name);
    auto c = tmp.config();
    edit(c);
    tmp.set_config(c);
    return testing::error_message([&] { read_hf_config(tmp.dir()); });
  };
  std::string msg = refusal("hf_llama3_rope", [](auto& c) {
    c["rope_parameters"]["attention_factor"] = 1.5;  // YaRN's key: not what llama3 reads
  });
  EXPECT_NE(msg.find("attention_factor"), std::string::npos) << msg;
  msg = refusal("hf_llama_gqa", [](auto& c) {
    c["rope_parameters"]["partial_rotary_factor"] = 0.5;  // Llama rotates whole heads in rrt
  });
  EXPECT_NE(msg.find("partial_rotary_factor"), std::string::npos) << msg;
  msg = refusal("hf_llama3_rope", [](auto& c) { c["rope_parameters"].erase("low_freq_factor"); });
  EXPECT_NE(msg.find("low_freq_factor"), std::string::npos) << msg;
  msg = refusal("hf_llama3_rope", [](auto& c) {
    c["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 2.0}};  // disagrees
  });
  EXPECT_NE(msg.find("ambiguous"), std::string::npos) << msg;
  msg = refusal("hf_llama_gqa", [](auto& c) { c["rope_parameters"]["rope_type"] = "longrope"; });
  EXPECT_NE(msg.find("longrope"), std::string::npos) << msg;
  msg = refusal("hf_gemma_mqa_bf16", [](auto& c) {
    c["rope_parameters"] = {{"rope_type", "linear"}, {"factor", 2.0}, {"rope_theta", 1e4}};
  });
  EXPECT_NE(msg.find("GemmaForCausalLM"), std::string::npos) << msg;
  msg = refusal("hf_qwen2_tied", [](auto& c) { c["use_sliding_window"] = true; });
  EXPECT_NE(msg.find("use_sliding_window"), std::string::npos) << msg;
  msg = refusal("hf_qwen2_tied", [](auto& c) { c["layer_types"][1] = "sliding_attention"; });
  EXPECT_NE(msg.find("layer_types"), std::string::npos) << msg;
  // transformers' defaults would be another model's: 32 kv heads, head_dim 128.
  msg = refusal("hf_qwen2_tied", [](auto& c) { c.erase("num_key_value_heads"); });
  EXPECT_NE(msg.find("num_key_value_heads"), std::string::npos) << msg;
  msg = refusal("hf_qwen3", [](auto& c) { c.erase("head_dim"); });
  EXPECT_NE(msg.find("head_dim"), std::string::npos) << msg;
  msg = refusal("hf_qwen3", [](auto& c) { c["attention_bias"] = true; });
  EXPECT_NE(msg.find("attention_bias"), std::string::npos) << msg;
  // transformers 4's spelling: rope_scaling with "type" and rope_theta at the top level.
  TempCopy tmp("hf_llama3_rope");
  auto c = tmp.config();
  nlohmann::json legacy = c["rope_parameters"];
  legacy.erase("rope_theta");
  legacy.erase("rope_type");
  legacy["type"] = "llama3";
  c.erase("rope_parameters");
  c["rope_scaling"] = legacy;
  c["rope_theta"] = 5000.0;
  tmp.set_config(c);
  const ModelConfig old = read_hf_config(tmp.dir());
  EXPECT_EQ(old.rope_scaling, read_hf_config(fixture("hf_llama3_rope")).rope_scaling);
  EXPECT_DOUBLE_EQ(old.rope_theta, 5000.0);
}

TEST(HfImportErrors, MissingConfig) {
  TempCopy tmp("hf_llama_gqa");
  fs::remove(tmp.path("config.json"));
  EXPECT_NE(testing::error_message([&] { load_hf_model(tmp.dir()); }).find("config.json"),
            std::string::npos);
}

TEST(HfImportErrors, MissingTensor) {
  TempCopy tmp("hf_llama_gqa");
  tmp.edit_weights([](auto& t) { t.erase("model.layers.1.mlp.up_proj.weight"); });
  const std::string msg = testing::error_message([&] { load_hf_model(tmp.dir()); });
  EXPECT_NE(msg.find("model.layers.1.mlp.up_proj.weight"), std::string::npos) << msg;
}

TEST(HfImportErrors, ExtraTensor) {
  TempCopy tmp("hf_llama_gqa");
  tmp.edit_weights([](auto& t) {
    t["model.layers.2.self_attn.q_proj.weight"] = t.at("model.layers.1.self_attn.q_proj.weight");
  });
  const std::string msg = testing::error_message([&] { load_hf_model(tmp.dir()); });
  EXPECT_NE(msg.find("model.layers.2.self_attn.q_proj.weight"), std::string::npos) << msg;
}

TEST(HfImportErrors, WrongShape) {
  TempCopy tmp("hf_llama_gqa");
  tmp.edit_weights([](auto& t) {
    auto& k = t.at("model.layers.0.self_attn.k_proj.weight");
    k.shape = {k.shape[1], k.shape[0]};  // transposed: same count, wrong shape
  });
  const std::string msg = testing::error_message([&] { load_hf_model(tmp.dir()); });
  EXPECT_NE(msg.find("model.layers.0.self_attn.k_proj.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[32, 16]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[16, 32]"), std::string::npos) << msg;
}

TEST(HfImportErrors, MissingShard) {
  TempCopy tmp("hf_llama_sharded");
  const std::string shard = "model-00002-of-00005.safetensors";
  ASSERT_TRUE(fs::remove(tmp.path(shard)));
  const std::string msg = testing::error_message([&] { load_hf_model(tmp.dir()); });
  EXPECT_NE(msg.find(shard), std::string::npos) << msg;
}

TEST(HfImportErrors, NeoxConfig) {
  TempCopy tmp("hf_neox_parallel");
  const auto base = tmp.config();
  auto c = base;
  c["attention_bias"] = false;
  tmp.set_config(c);
  std::string msg = testing::error_message([&] { read_hf_config(tmp.dir()); });
  EXPECT_NE(msg.find("attention_bias is false"), std::string::npos) << msg;
  c = base;
  c["hidden_act"] = "relu";
  tmp.set_config(c);
  msg = testing::error_message([&] { read_hf_config(tmp.dir()); });
  EXPECT_NE(msg.find("hidden_act 'relu'"), std::string::npos) << msg;
  c = base;
  c["hidden_act"] = "gelu_new";  // the same function as gelu_pytorch_tanh
  tmp.set_config(c);
  EXPECT_EQ(read_hf_config(tmp.dir()).activation, Activation::gelu_tanh);
  c = base;
  c["rope_parameters"]["partial_rotary_factor"] = 0.1875;  // 3 of 16 dims: odd
  tmp.set_config(c);
  msg = testing::error_message([&] { read_hf_config(tmp.dir()); });
  EXPECT_NE(msg.find("3 rotary dims"), std::string::npos) << msg;
  // The older spelling (transformers 4): rotary_pct and rotary_emb_base at the top level.
  c = base;
  c.erase("rope_parameters");
  c["rotary_pct"] = 0.5;
  c["rotary_emb_base"] = 123;
  tmp.set_config(c);
  const ModelConfig old = read_hf_config(tmp.dir());
  EXPECT_EQ(old.rot_dim(), 8);
  EXPECT_DOUBLE_EQ(old.rope_theta, 123.0);
}

TEST(HfImportErrors, GemmaConfig) {
  TempCopy tmp("hf_gemma_mqa_bf16");
  const auto base = tmp.config();
  auto c = base;
  c["hidden_act"] = "silu";
  tmp.set_config(c);
  std::string msg = testing::error_message([&] { read_hf_config(tmp.dir()); });
  EXPECT_NE(msg.find("hidden_act 'silu'"), std::string::npos) << msg;
  // The official releases say "gelu"; transformers 5 computes the tanh GELU for it.
  c = base;
  c["hidden_act"] = "gelu";
  tmp.set_config(c);
  EXPECT_EQ(read_hf_config(tmp.dir()).activation, Activation::geglu);
  c["hidden_activation"] = "gelu_pytorch_tanh";
  tmp.set_config(c);
  EXPECT_EQ(read_hf_config(tmp.dir()).activation, Activation::geglu);
  c["hidden_activation"] = "gelu";  // exact GELU in transformers 4: ambiguous
  tmp.set_config(c);
  msg = testing::error_message([&] { read_hf_config(tmp.dir()); });
  EXPECT_NE(msg.find("hidden_activation 'gelu'"), std::string::npos) << msg;
  c = base;
  c.erase("head_dim");
  tmp.set_config(c);
  msg = testing::error_message([&] { read_hf_config(tmp.dir()); });
  EXPECT_NE(msg.find("head_dim"), std::string::npos) << msg;
  c = base;
  c["attention_bias"] = true;
  tmp.set_config(c);
  msg = testing::error_message([&] { read_hf_config(tmp.dir()); });
  EXPECT_NE(msg.find("attention_bias"), std::string::npos) << msg;
}

TEST(HfImportErrors, NeoxMissingQkv) {
  TempCopy tmp("hf_neox_parallel");
  const std::string qkv = "gpt_neox.layers.1.attention.query_key_value.weight";
  tmp.edit_weights([&](auto& t) { t.erase(qkv); });
  const std::string msg = testing::error_message([&] { load_hf_model(tmp.dir()); });
  EXPECT_NE(msg.find(qkv), std::string::npos) << msg;
  EXPECT_NE(msg.find("block.1.attn.q.weight"), std::string::npos) << msg;
}

TEST(HfImportErrors, NeoxQkvWrongShape) {
  TempCopy tmp("hf_neox_parallel");
  const std::string qkv = "gpt_neox.layers.0.attention.query_key_value.weight";
  tmp.edit_weights([&](auto& t) {
    auto& w = t.at(qkv);
    w.shape = {w.shape[1], w.shape[0]};  // transposed: same count, wrong shape
  });
  const std::string msg = testing::error_message([&] { load_hf_model(tmp.dir()); });
  EXPECT_NE(msg.find(qkv), std::string::npos) << msg;
  EXPECT_NE(msg.find("[32, 96]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[96, 32]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("model.safetensors"), std::string::npos) << msg;
}

// q, k and v come out of the fused tensor per head: rows [h*3*Dh, h*3*Dh + Dh) are q of head h.
TEST(HfImport, NeoxQkvIsDeinterleavedPerHead) {
  const std::string dir = fixture("hf_neox_parallel");
  HfModel hf = load_hf_model(dir);
  const auto fused = SafetensorsFile(dir + "/model.safetensors")
                         .read_f32("gpt_neox.layers.1.attention.query_key_value.bias");
  const int64_t H = hf.spec.model.n_heads, Dh = hf.spec.model.dh();
  ASSERT_EQ(static_cast<int64_t>(fused.size()), 3 * H * Dh);
  const ParamRegistry& reg = hf.params->registry();
  const char* parts[] = {"block.1.attn.q.bias", "block.1.attn.k.bias", "block.1.attn.v.bias"};
  for (int j = 0; j < 3; ++j) {
    const float* b = hf.params->value(reg.index(parts[j]));
    for (int64_t h = 0; h < H; ++h)
      for (int64_t d = 0; d < Dh; ++d)
        ASSERT_EQ(b[h * Dh + d], fused[static_cast<size_t>((h * 3 + j) * Dh + d)]) << parts[j];
  }
}

// Buffers of older NeoX checkpoints are ignored, as transformers does; the head may also be
// spelled lm_head.weight.
TEST(HfImport, NeoxLegacyBuffersAndHeadAlias) {
  TempCopy tmp("hf_neox_parallel");
  tmp.edit_weights([](auto& t) {
    for (int l = 0; l < 2; ++l) {
      const std::string a = "gpt_neox.layers." + std::to_string(l) + ".attention.";
      t[a + "bias"] = {{1, 1, 4, 4}, std::vector<float>(16, 1.0f)};
      t[a + "masked_bias"] = {{}, {-1e9f}};
      t[a + "rotary_emb.inv_freq"] = {{2}, {1.0f, 0.01f}};
    }
    t["lm_head.weight"] = t.at("embed_out.weight");
    t.erase("embed_out.weight");
  });
  HfModel hf = load_hf_model(tmp.dir());
  HfModel ref = load_hf_model(fixture("hf_neox_parallel"));
  const int head = hf.params->registry().index("head.weight");
  EXPECT_EQ(0, std::memcmp(hf.params->value(head), ref.params->value(head),
                           static_cast<size_t>(hf.params->numel(head)) * sizeof(float)));
}

TEST(HfImport, TiedHeadStoredAnywayIsAccepted) {
  TempCopy tmp("hf_llama_mqa_tied_bf16");
  tmp.edit_weights([](auto& t) { t["lm_head.weight"] = t.at("model.embed_tokens.weight"); });
  HfModel hf = load_hf_model(tmp.dir());
  EXPECT_FALSE(hf.params->registry().has("head.weight"));
}

}  // namespace
}  // namespace rrt
