#include "model/hf_import.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/safetensors.h"

namespace rrt {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kSupported = "LlamaForCausalLM";

// rrt registry name <- HF tensor name; "{l}" stands for the layer index. Loading expands this
// table over the layers and walks the registry, so no tensor is handled by hand.
struct NameRule {
  const char* rrt;
  const char* hf;
};
constexpr NameRule kLlamaRules[] = {
    {"embed.weight", "model.embed_tokens.weight"},
    {"block.{l}.attn_norm.weight", "model.layers.{l}.input_layernorm.weight"},
    {"block.{l}.attn.q.weight", "model.layers.{l}.self_attn.q_proj.weight"},
    {"block.{l}.attn.k.weight", "model.layers.{l}.self_attn.k_proj.weight"},
    {"block.{l}.attn.v.weight", "model.layers.{l}.self_attn.v_proj.weight"},
    {"block.{l}.attn.o.weight", "model.layers.{l}.self_attn.o_proj.weight"},
    {"block.{l}.mlp_norm.weight", "model.layers.{l}.post_attention_layernorm.weight"},
    {"block.{l}.mlp.gate.weight", "model.layers.{l}.mlp.gate_proj.weight"},
    {"block.{l}.mlp.up.weight", "model.layers.{l}.mlp.up_proj.weight"},
    {"block.{l}.mlp.down.weight", "model.layers.{l}.mlp.down_proj.weight"},
    {"final_norm.weight", "model.norm.weight"},
    {"head.weight", "lm_head.weight"},  // in the registry only when the head is untied
};
// HF tensors that may be present and carry nothing rrt needs: RoPE buffers that older
// checkpoints saved, and a tied head stored anyway (HF itself uses the embedding then).
struct OptionalRule {
  const char* hf;
  bool only_when_tied;
};
constexpr OptionalRule kLlamaOptional[] = {
    {"model.layers.{l}.self_attn.rotary_emb.inv_freq", false},
    {"lm_head.weight", true},
};

std::string expand(const std::string& pattern, int64_t layer) {
  std::string s = pattern;
  const auto at = s.find("{l}");
  if (at != std::string::npos) s.replace(at, 3, std::to_string(layer));
  return s;
}
bool per_layer(const std::string& pattern) { return pattern.find("{l}") != std::string::npos; }

json read_json(const std::string& path, const std::string& what_to_do) {
  std::ifstream in(path);
  RRT_CHECK(in.good(), path, "cannot open; ", what_to_do);
  try {
    return json::parse(in);
  } catch (const std::exception& e) {
    RRT_FAIL(path, "is not valid JSON (", e.what(), ")");
  }
}

template <typename T>
T get_field(const json& c, const std::string& path, const char* key) {
  RRT_CHECK(c.contains(key) && !c.at(key).is_null(), path, "config has no '", key,
            "'; is this a Hugging Face LlamaForCausalLM config.json?");
  try {
    return c.at(key).get<T>();
  } catch (const std::exception& e) {
    RRT_FAIL(path, "config field '", key, "' has the wrong type: ", c.at(key).dump());
  }
}

template <typename T>
T get_field_or(const json& c, const std::string& path, const char* key, T fallback) {
  if (!c.contains(key) || c.at(key).is_null()) return fallback;
  return get_field<T>(c, path, key);
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < s.size(); ++i) out << (i ? ", " : "") << s[i];
  out << "]";
  return out.str();
}

}  // namespace

ModelConfig read_hf_config(const std::string& dir) {
  const std::string path = (fs::path(dir) / "config.json").string();
  RRT_CHECK(fs::exists(path), path, "not found; point at a Hugging Face model folder (the one "
            "holding config.json and model.safetensors)");
  const json c = read_json(path, "check the file's permissions");

  RRT_CHECK(c.contains("architectures") && c.at("architectures").is_array() &&
                !c.at("architectures").empty(),
            path, "config has no 'architectures' list; supported: ", kSupported);
  for (const auto& a : c.at("architectures")) {
    const std::string arch = a.is_string() ? a.get<std::string>() : a.dump();
    RRT_CHECK(arch == kSupported, path, "architecture ", arch,
              " is not supported; supported architectures: ", kSupported);
  }
  const std::string act = get_field_or<std::string>(c, path, "hidden_act", "silu");
  RRT_CHECK(act == "silu", path, "hidden_act '", act, "' is not supported; rrt's Llama uses silu "
            "(SwiGLU)");
  for (const char* bias : {"attention_bias", "mlp_bias"})
    RRT_CHECK(!get_field_or<bool>(c, path, bias, false), path, bias,
              " is true; rrt's Llama layers have no biases");
  RRT_CHECK(!c.contains("rope_scaling") || c.at("rope_scaling").is_null(), path,
            "rope_scaling ", c.contains("rope_scaling") ? c.at("rope_scaling").dump() : "",
            " is not supported; only plain RoPE (rope_scaling null) can be imported");

  ModelConfig m;
  m.family = Family::llama;
  m.vocab = get_field<int64_t>(c, path, "vocab_size");
  m.d_model = get_field<int64_t>(c, path, "hidden_size");
  m.n_heads = get_field<int64_t>(c, path, "num_attention_heads");
  m.n_kv_heads = get_field_or<int64_t>(c, path, "num_key_value_heads", m.n_heads);
  m.head_dim = get_field_or<int64_t>(c, path, "head_dim", 0);
  m.ffn = get_field<int64_t>(c, path, "intermediate_size");
  m.n_layers = get_field<int64_t>(c, path, "num_hidden_layers");
  m.max_seq_len = get_field<int64_t>(c, path, "max_position_embeddings");
  m.norm_eps = get_field_or<double>(c, path, "rms_norm_eps", 1e-6);
  m.rope_theta = get_field_or<double>(c, path, "rope_theta", 10000.0);
  // transformers >= 5 writes RoPE settings as rope_parameters {rope_type, rope_theta}.
  if (c.contains("rope_parameters") && !c.at("rope_parameters").is_null()) {
    const json& r = c.at("rope_parameters");
    const std::string type = get_field_or<std::string>(r, path, "rope_type", "default");
    RRT_CHECK(type == "default", path, "rope_parameters ", r.dump(), " use rope_type '", type,
              "'; only plain RoPE (rope_type default) can be imported");
    m.rope_theta = get_field_or<double>(r, path, "rope_theta", m.rope_theta);
  }
  m.tied_head = get_field_or<bool>(c, path, "tie_word_embeddings", false);
  m.rotary_fraction = 1.0;
  m.activation = Activation::swiglu;
  RRT_CHECK(m.n_layers > 0, path, "num_hidden_layers must be positive, got ", m.n_layers);
  return m;
}

HfModel load_hf_model(const std::string& dir) {
  HfModel out;
  out.spec.model = read_hf_config(dir);
  out.spec.recursion.block_layers = out.spec.model.n_layers;
  out.spec.recursion.loops = 1;
  validate(out.spec);
  out.params = std::make_unique<ParameterSet>(out.spec);
  const ParamRegistry& reg = out.params->registry();
  const int64_t L = out.spec.model.n_layers;
  const bool tied = out.spec.model.tied_head;

  // Open the weights: one file, or every shard of the index (each once).
  const fs::path single = fs::path(dir) / "model.safetensors";
  const fs::path index = fs::path(dir) / "model.safetensors.index.json";
  std::map<std::string, std::unique_ptr<SafetensorsFile>> files;  // by file name
  std::map<std::string, const SafetensorsFile*> where;            // HF tensor -> its file
  std::string source;
  if (fs::exists(index)) {
    source = index.string();
    const json idx = read_json(source, "check the file's permissions");
    RRT_CHECK(idx.contains("weight_map") && idx.at("weight_map").is_object(), source,
              "has no 'weight_map' object; re-save the model with save_pretrained");
    for (const auto& [tensor, shard_json] : idx.at("weight_map").items()) {
      const std::string shard = shard_json.get<std::string>();
      auto it = files.find(shard);
      if (it == files.end()) {
        const fs::path shard_path = fs::path(dir) / shard;
        RRT_CHECK(fs::exists(shard_path), source, "shard ", shard, " (holding tensor '", tensor,
                  "') is missing from ", dir, "; download or copy every shard the index names");
        it = files.emplace(shard, std::make_unique<SafetensorsFile>(shard_path.string())).first;
      }
      RRT_CHECK(it->second->has(tensor), source, "names shard ", shard, " for tensor '", tensor,
                "' but the shard does not hold it; the index and shards do not match");
      where[tensor] = it->second.get();
    }
    // Tensors in the shards that the index does not list count as present too (and as extras).
    for (const auto& [shard, file] : files)
      for (const auto& [tensor, info] : file->tensors()) where.emplace(tensor, file.get());
  } else {
    RRT_CHECK(fs::exists(single), single.string(), "not found (and no model.safetensors.index."
              "json either); the folder must hold the safetensors weights (save_pretrained with "
              "safe_serialization=True)");
    source = single.string();
    auto file = std::make_unique<SafetensorsFile>(source);
    for (const auto& [tensor, info] : file->tensors()) where[tensor] = file.get();
    files.emplace("model.safetensors", std::move(file));
  }

  // Expand the table: the HF name of every registry parameter.
  std::map<std::string, std::string> hf_of;  // rrt -> HF
  for (const NameRule& rule : kLlamaRules) {
    const int64_t count = per_layer(rule.rrt) ? L : 1;
    for (int64_t l = 0; l < count; ++l) {
      const std::string rrt_name = expand(rule.rrt, l);
      if (reg.has(rrt_name)) hf_of[rrt_name] = expand(rule.hf, l);
    }
  }
  std::set<std::string> used;
  for (int i = 0; i < reg.size(); ++i) {
    const ParamInfo& p = reg[i];
    auto rule = hf_of.find(p.name);
    RRT_CHECK(rule != hf_of.end(), "load_hf_model", "no HF name is known for parameter '", p.name,
              "' (an internal error: extend kLlamaRules)");
    const std::string& hf = rule->second;
    auto it = where.find(hf);
    RRT_CHECK(it != where.end(), source, "checkpoint has no tensor '", hf, "' (rrt '", p.name,
              "'); the checkpoint is incomplete or not a ", kSupported, " matching config.json");
    const SafetensorInfo& t = it->second->info(hf);
    bool same = static_cast<int>(t.shape.size()) == p.shape.ndim;
    for (int d = 0; same && d < p.shape.ndim; ++d) same = t.shape[d] == p.shape[d];
    RRT_CHECK(same, source, "tensor '", hf, "' has shape ", shape_str(t.shape), " but config.json "
              "implies ", p.shape.str(), " (rrt '", p.name, "'); config and weights disagree");
    it->second->read_f32_into(hf, out.params->value(i), p.shape.numel());
    used.insert(hf);
  }

  // Anything left over must be a known optional tensor; otherwise the checkpoint is something
  // this importer would silently get wrong.
  std::set<std::string> optional;
  for (const OptionalRule& rule : kLlamaOptional) {
    if (rule.only_when_tied && !tied) continue;
    const int64_t count = per_layer(rule.hf) ? L : 1;
    for (int64_t l = 0; l < count; ++l) optional.insert(expand(rule.hf, l));
  }
  for (const auto& [tensor, file] : where)
    RRT_CHECK(used.count(tensor) || optional.count(tensor), source, "unexpected tensor '", tensor,
              "' that a ", kSupported, " with this config.json does not have; the checkpoint "
              "is another architecture or has extra layers (check num_hidden_layers)");
  return out;
}

}  // namespace rrt
