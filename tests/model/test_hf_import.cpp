// Hugging Face Llama import (model/hf_import.h) against transformers itself
// (tools/make_hf_fixtures.py): logits, loss and every parameter gradient of the imported model,
// for GQA, MQA with an independent head_dim, a tied head in bf16, and a sharded checkpoint.
// Plus the errors for checkpoints the importer must refuse.
#include <gtest/gtest.h>

#include "tests/error_helpers.h"

#include "tests/model/compare.h"
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/safetensors.h"
#include "model/hf_import.h"
#include "model/recursive_model.h"

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
  for (int i = 0; i < reg.size(); ++i) {
    const std::string name = "grad." + reg[i].name;
    ASSERT_TRUE(ref.has(name)) << name;
    const auto g = ref.read_f32(name);
    ASSERT_EQ(static_cast<int64_t>(g.size()), model.params().numel(i)) << name;
    EXPECT_LE(relative_max_error(model.params().grad(i), g), 1e-4) << name;
    ++checked;
  }
  int ref_grads = 0;
  for (const auto& [name, info] : ref.tensors()) ref_grads += name.rfind("grad.", 0) == 0;
  EXPECT_EQ(checked, ref_grads);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, HfParity,
                         ::testing::Values("hf_llama_gqa", "hf_llama_mqa_tied_bf16",
                                           "hf_llama_sharded"),
                         [](const auto& info) { return std::string(info.param); });

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

// A scratch copy of a fixture that a test may edit; removed afterwards.
class TempCopy {
 public:
  explicit TempCopy(const std::string& name) {
    const auto* t = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("rrt_hf_" + std::to_string(getpid()) + "_" + t->name());
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
  void set_config(const nlohmann::json& c) const { std::ofstream(path("config.json")) << c.dump(2); }

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
  c["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 2.0}};
  tmp.set_config(c);
  EXPECT_NE(testing::error_message([&] { read_hf_config(tmp.dir()); }).find("rope_scaling"), std::string::npos);
  c = base;
  c["rope_parameters"]["rope_type"] = "llama3";
  tmp.set_config(c);
  EXPECT_NE(testing::error_message([&] { read_hf_config(tmp.dir()); }).find("llama3"), std::string::npos);
  c = base;
  c["hidden_act"] = "gelu";
  tmp.set_config(c);
  EXPECT_NE(testing::error_message([&] { read_hf_config(tmp.dir()); }).find("gelu"), std::string::npos);
  c = base;
  c["attention_bias"] = true;
  tmp.set_config(c);
  EXPECT_NE(testing::error_message([&] { read_hf_config(tmp.dir()); }).find("attention_bias"), std::string::npos);
  c = base;
  c["mlp_bias"] = true;
  tmp.set_config(c);
  EXPECT_NE(testing::error_message([&] { read_hf_config(tmp.dir()); }).find("mlp_bias"), std::string::npos);
  // The older spelling (transformers 4): rope_theta at the top level, no rope_parameters.
  c = base;
  c.erase("rope_parameters");
  c["rope_theta"] = 123.0;
  c["rope_scaling"] = nullptr;
  tmp.set_config(c);
  EXPECT_DOUBLE_EQ(read_hf_config(tmp.dir()).rope_theta, 123.0);
}

TEST(HfImportErrors, MissingConfig) {
  TempCopy tmp("hf_llama_gqa");
  fs::remove(tmp.path("config.json"));
  EXPECT_NE(testing::error_message([&] { load_hf_model(tmp.dir()); }).find("config.json"), std::string::npos);
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

TEST(HfImport, TiedHeadStoredAnywayIsAccepted) {
  TempCopy tmp("hf_llama_mqa_tied_bf16");
  tmp.edit_weights([](auto& t) { t["lm_head.weight"] = t.at("model.embed_tokens.weight"); });
  HfModel hf = load_hf_model(tmp.dir());
  EXPECT_FALSE(hf.params->registry().has("head.weight"));
}

}  // namespace
}  // namespace rrt
