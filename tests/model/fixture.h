// Loads a PyTorch parity fixture (tools/make_fixtures.py) into a ModelSpec and a model.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "core/safetensors.h"
#include "model/recursive_model.h"
#include "ops/adamw.h"

namespace rrt::testing {

struct Fixture {
  std::unique_ptr<SafetensorsFile> file;
  nlohmann::json config;
  ModelSpec spec;
  ops::AdamWHyper adamw;
  int64_t N = 0, T = 0, steps = 0;
  int32_t document_eos = -1;  // the masks fixture's documents (RecursiveModel::set_document_eos)
};

inline Fixture load_fixture(const std::string& name) {
  Fixture f;
  f.file = std::make_unique<SafetensorsFile>(std::string(RRT_FIXTURE_DIR) + "/" + name);
  f.config = nlohmann::json::parse(f.file->metadata().at("config"));
  const auto& c = f.config;
  ModelConfig& m = f.spec.model;
  m.vocab = c.at("vocab");
  m.d_model = c.at("d_model");
  m.n_heads = c.at("n_heads");
  m.n_kv_heads = c.at("n_kv_heads");
  m.head_dim = c.at("head_dim");
  m.ffn = c.at("ffn");
  m.norm_eps = c.at("norm_eps");
  m.rope_theta = c.at("rope_theta");
  m.tied_head = c.at("tied_head");
  m.max_seq_len = c.at("seq_len");
  f.spec.recursion.block_layers = c.at("block_layers");
  f.spec.recursion.loops = c.at("loops");
  f.spec.recursion.sharing = c.at("sharing") == "cycle" ? Sharing::cycle : Sharing::sequence;
  f.spec.lora.rank_attention = f.spec.lora.rank_mlp = c.at("lora_rank");
  f.spec.lora.alpha = c.at("lora_alpha");
  f.N = c.at("batch");
  f.T = c.at("seq_len");
  f.steps = c.at("steps");
  // Attention masks (masks.safetensors): absent from the other fixtures.
  m.sliding_window = c.value("sliding_window", 0);
  for (const auto& t : c.value("layer_types", nlohmann::json::array()))
    m.sliding_layers.push_back(t.get<std::string>() == "sliding_attention");
  m.attn_logit_softcapping = c.value("attn_logit_softcapping", 0.0);
  f.document_eos = c.value("document_eos", -1);
  const auto& a = c.at("adamw");
  f.adamw = {a.at("lr"), a.at("beta1"), a.at("beta2"), a.at("eps"), a.at("weight_decay")};
  return f;
}

}  // namespace rrt::testing
