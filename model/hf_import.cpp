#include "model/hf_import.h"

#include <array>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <span>
#include <vector>

#include "core/error.h"
#include "core/safetensors.h"
#include "model/layer_pattern.h"

namespace rrt {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// ---- Tensor tables ----------------------------------------------------------------------------
// rrt registry name <- HF tensor name; "{l}" stands for the layer index. Loading expands the
// tables over the layers and walks the registry, so no tensor is handled by hand.
struct NameRule {
  const char* rrt;
  const char* hf;
  const char* hf_alias = nullptr;  // another spelling of the same tensor
};
// One HF tensor whose rows hold several rrt parameters, per head interleaved: NeoX's fused
// query_key_value ([H * 3 * Dh, D] and its bias [H * 3 * Dh]).
struct FusedRule {
  const char* hf;
  std::array<const char*, 3> parts;  // q, k, v
};
// HF tensors that may be present and carry nothing rrt needs.
struct OptionalRule {
  const char* hf;
  bool only_when_tied;
};
struct Format {
  const char* architecture;
  Family family;
  std::span<const NameRule> rules;
  std::span<const FusedRule> fused;
  std::span<const OptionalRule> optional;
};

// Llama and Gemma 1 name their tensors alike.
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
// RoPE buffers that older checkpoints saved, and a tied head stored anyway (HF itself uses the
// embedding then).
constexpr OptionalRule kLlamaOptional[] = {
    {"model.layers.{l}.self_attn.rotary_emb.inv_freq", false},
    {"lm_head.weight", true},
};

constexpr NameRule kNeoxRules[] = {
    {"embed.weight", "gpt_neox.embed_in.weight"},
    {"block.{l}.attn_norm.weight", "gpt_neox.layers.{l}.input_layernorm.weight"},
    {"block.{l}.attn_norm.bias", "gpt_neox.layers.{l}.input_layernorm.bias"},
    {"block.{l}.attn.o.weight", "gpt_neox.layers.{l}.attention.dense.weight"},
    {"block.{l}.attn.o.bias", "gpt_neox.layers.{l}.attention.dense.bias"},
    {"block.{l}.mlp_norm.weight", "gpt_neox.layers.{l}.post_attention_layernorm.weight"},
    {"block.{l}.mlp_norm.bias", "gpt_neox.layers.{l}.post_attention_layernorm.bias"},
    {"block.{l}.mlp.up.weight", "gpt_neox.layers.{l}.mlp.dense_h_to_4h.weight"},
    {"block.{l}.mlp.up.bias", "gpt_neox.layers.{l}.mlp.dense_h_to_4h.bias"},
    {"block.{l}.mlp.down.weight", "gpt_neox.layers.{l}.mlp.dense_4h_to_h.weight"},
    {"block.{l}.mlp.down.bias", "gpt_neox.layers.{l}.mlp.dense_4h_to_h.bias"},
    {"final_norm.weight", "gpt_neox.final_layer_norm.weight"},
    {"final_norm.bias", "gpt_neox.final_layer_norm.bias"},
    // Checkpoints (and transformers 5's save_pretrained) call the head embed_out; the module
    // itself is lm_head, which other tools may write.
    {"head.weight", "embed_out.weight", "lm_head.weight"},
};
constexpr FusedRule kNeoxFused[] = {
    {"gpt_neox.layers.{l}.attention.query_key_value.weight",
     {"block.{l}.attn.q.weight", "block.{l}.attn.k.weight", "block.{l}.attn.v.weight"}},
    {"gpt_neox.layers.{l}.attention.query_key_value.bias",
     {"block.{l}.attn.q.bias", "block.{l}.attn.k.bias", "block.{l}.attn.v.bias"}},
};
// Causal-mask and RoPE buffers of older checkpoints (transformers ignores them on load too).
constexpr OptionalRule kNeoxOptional[] = {
    {"gpt_neox.layers.{l}.attention.bias", false},
    {"gpt_neox.layers.{l}.attention.masked_bias", false},
    {"gpt_neox.layers.{l}.attention.rotary_emb.inv_freq", false},
    {"embed_out.weight", true},
    {"lm_head.weight", true},
};

constexpr Format kFormats[] = {
    {"LlamaForCausalLM", Family::llama, kLlamaRules, {}, kLlamaOptional},
    {"GemmaForCausalLM", Family::gemma, kLlamaRules, {}, kLlamaOptional},
    {"GPTNeoXForCausalLM", Family::neox, kNeoxRules, kNeoxFused, kNeoxOptional},
};

std::string supported_list() {
  std::string s;
  for (const Format& f : kFormats) s += (s.empty() ? "" : ", ") + std::string(f.architecture);
  return s;
}

const Format& format_of(Family family) {
  for (const Format& f : kFormats)
    if (f.family == family) return f;
  RRT_FAIL("load_hf_model", "no import format for family ", to_string(family));
}


// ---- config.json ------------------------------------------------------------------------------
json read_json(const std::string& path, const std::string& what_to_do) {
  std::ifstream in(path);
  RRT_CHECK(in.good(), path, "cannot open; ", what_to_do);
  try {
    return json::parse(in);
  } catch (const std::exception& e) {
    RRT_FAIL(path, "is not valid JSON (", e.what(), ")");
  }
}

bool has_value(const json& c, const char* key) { return c.contains(key) && !c.at(key).is_null(); }

template <typename T>
T get_field(const json& c, const std::string& path, const char* key) {
  RRT_CHECK(has_value(c, key), path, "config has no '", key, "'; is this a Hugging Face ",
            supported_list(), " config.json?");
  try {
    return c.at(key).get<T>();
  } catch (const std::exception& e) {
    RRT_FAIL(path, "config field '", key, "' has the wrong type: ", c.at(key).dump());
  }
}

template <typename T>
T get_field_or(const json& c, const std::string& path, const char* key, T fallback) {
  if (!has_value(c, key)) return fallback;
  return get_field<T>(c, path, key);
}

const Format& architecture_of(const json& c, const std::string& path) {
  RRT_CHECK(c.contains("architectures") && c.at("architectures").is_array() &&
                !c.at("architectures").empty(),
            path, "config has no 'architectures' list; supported: ", supported_list());
  const Format* found = nullptr;
  for (const auto& a : c.at("architectures")) {
    const std::string arch = a.is_string() ? a.get<std::string>() : a.dump();
    const Format* f = nullptr;
    for (const Format& candidate : kFormats)
      if (arch == candidate.architecture) f = &candidate;
    RRT_CHECK(f != nullptr, path, "architecture ", arch,
              " is not supported; supported architectures: ", supported_list());
    RRT_CHECK(found == nullptr || found == f, path, "names two architectures (",
              found ? found->architecture : "", ", ", arch,
              "); which one the weights are is ambiguous");
    found = f;
  }
  return *found;
}

// How an HF activation name computes GELU. gelu_new, gelu_fast and gelu_python_tanh write the
// tanh approximation out by hand; gelu_pytorch_tanh is torch's; all four are the same function.
enum class GeluKind { exact, tanh, other };
GeluKind gelu_kind(const std::string& act) {
  if (act == "gelu" || act == "gelu_python") return GeluKind::exact;
  if (act == "gelu_pytorch_tanh" || act == "gelu_new" || act == "gelu_fast" ||
      act == "gelu_python_tanh")
    return GeluKind::tanh;
  return GeluKind::other;
}

// Plain RoPE only. `legacy_theta_key` is where older configs kept the base (rope_theta at the
// top level; NeoX: rotary_emb_base); transformers >= 5 writes rope_parameters {rope_type,
// rope_theta, ...}, whose values win, as in transformers.
void read_rope(const json& c, const std::string& path, const char* legacy_theta_key,
               ModelConfig& m) {
  RRT_CHECK(!has_value(c, "rope_scaling"), path, "rope_scaling ",
            c.contains("rope_scaling") ? c.at("rope_scaling").dump() : "",
            " is not supported; only plain RoPE (rope_scaling null) can be imported");
  m.rope_theta = get_field_or<double>(c, path, legacy_theta_key, 10000.0);
  if (!has_value(c, "rope_parameters")) return;
  const json& r = c.at("rope_parameters");
  const std::string type = get_field_or<std::string>(r, path, "rope_type", "default");
  RRT_CHECK(type == "default", path, "rope_parameters ", r.dump(), " use rope_type '", type,
            "'; only plain RoPE (rope_type default) can be imported");
  m.rope_theta = get_field_or<double>(r, path, "rope_theta", m.rope_theta);
}

// The fields every family spells alike.
void read_sizes(const json& c, const std::string& path, ModelConfig& m) {
  m.vocab = get_field<int64_t>(c, path, "vocab_size");
  m.d_model = get_field<int64_t>(c, path, "hidden_size");
  m.n_heads = get_field<int64_t>(c, path, "num_attention_heads");
  m.ffn = get_field<int64_t>(c, path, "intermediate_size");
  m.n_layers = get_field<int64_t>(c, path, "num_hidden_layers");
  m.max_seq_len = get_field<int64_t>(c, path, "max_position_embeddings");
  RRT_CHECK(m.n_layers > 0, path, "num_hidden_layers must be positive, got ", m.n_layers);
  RRT_CHECK(m.n_heads > 0, path, "num_attention_heads must be positive, got ", m.n_heads);
}

void read_llama(const json& c, const std::string& path, ModelConfig& m) {
  const std::string act = get_field_or<std::string>(c, path, "hidden_act", "silu");
  RRT_CHECK(act == "silu", path, "hidden_act '", act,
            "' is not supported; rrt's Llama uses silu (SwiGLU)");
  for (const char* bias : {"attention_bias", "mlp_bias"})
    RRT_CHECK(!get_field_or<bool>(c, path, bias, false), path, bias,
              " is true; rrt's Llama layers have no biases");
  m.n_kv_heads = get_field_or<int64_t>(c, path, "num_key_value_heads", m.n_heads);
  m.head_dim = get_field_or<int64_t>(c, path, "head_dim", 0);
  m.norm_eps = get_field_or<double>(c, path, "rms_norm_eps", 1e-6);
  m.tied_head = get_field_or<bool>(c, path, "tie_word_embeddings", false);
  read_rope(c, path, "rope_theta", m);
}

// Gemma 1 as transformers 5.24 reads it: GemmaConfig turns the legacy hidden_act "gelu" of the
// official releases into gelu_pytorch_tanh and no longer reads hidden_activation (transformers 4
// did, and there "gelu" meant the exact GELU), so hidden_activation must agree when present.
void read_gemma(const json& c, const std::string& path, ModelConfig& m) {
  const std::string act = get_field_or<std::string>(c, path, "hidden_act", "gelu_pytorch_tanh");
  RRT_CHECK(act == "gelu" || gelu_kind(act) == GeluKind::tanh, path, "hidden_act '", act,
            "' is not supported; rrt's Gemma MLP is GeGLU with the tanh GELU (gelu_pytorch_tanh, "
            "gelu_new, gelu_fast, or the legacy \"gelu\" that transformers maps to it)");
  if (has_value(c, "hidden_activation")) {
    const std::string hidden = get_field<std::string>(c, path, "hidden_activation");
    RRT_CHECK(
        gelu_kind(hidden) == GeluKind::tanh, path, "hidden_activation '", hidden,
        "' is not the tanh GELU; transformers 4 computes it but transformers 5 uses hidden_act '",
        act, "' (tanh GELU), so what the model computes is ambiguous");
  }
  RRT_CHECK(!get_field_or<bool>(c, path, "attention_bias", false), path,
            "attention_bias is true; rrt's Gemma layers have no biases");
  RRT_CHECK(!get_field_or<bool>(c, path, "use_bidirectional_attention", false), path,
            "use_bidirectional_attention is true; rrt's attention is causal");
  // Required: GemmaConfig's defaults (16 kv heads, head_dim 256) are gemma-7b's and would
  // silently apply to any other size.
  m.n_kv_heads = get_field<int64_t>(c, path, "num_key_value_heads");
  m.head_dim = get_field<int64_t>(c, path, "head_dim");
  m.norm_eps = get_field_or<double>(c, path, "rms_norm_eps", 1e-6);
  m.tied_head = get_field_or<bool>(c, path, "tie_word_embeddings", true);
  read_rope(c, path, "rope_theta", m);
}

// GPT-NeoX: rotary settings in rope_parameters (transformers 5) or as rotary_pct and
// rotary_emb_base (older configs); transformers' default rotates 25% of each head.
void read_neox(const json& c, const std::string& path, ModelConfig& m) {
  const std::string act = get_field_or<std::string>(c, path, "hidden_act", "gelu");
  const GeluKind kind = gelu_kind(act);
  RRT_CHECK(kind != GeluKind::other, path, "hidden_act '", act,
            "' is not supported; rrt's GPT-NeoX MLP takes gelu or gelu_python (exact GELU) or "
            "gelu_pytorch_tanh, gelu_new, gelu_fast (tanh GELU)");
  m.activation = kind == GeluKind::exact ? Activation::gelu : Activation::gelu_tanh;
  RRT_CHECK(get_field_or<bool>(c, path, "attention_bias", true), path,
            "attention_bias is false; rrt's GPT-NeoX layer has a bias on every projection, so a "
            "NeoX without attention biases cannot be imported");
  RRT_CHECK(m.d_model % m.n_heads == 0, path, "hidden_size ", m.d_model,
            " is not divisible by num_attention_heads ", m.n_heads,
            "; GPT-NeoX's head size is their quotient");
  const int64_t head_size = m.d_model / m.n_heads;
  // transformers' attention ignores head_dim but its rotary embedding would read it.
  RRT_CHECK(get_field_or<int64_t>(c, path, "head_dim", head_size) == head_size, path, "head_dim ",
            c.value("head_dim", json()).dump(),
            " differs from hidden_size / num_attention_heads = ", head_size,
            "; GPT-NeoX has no independent head_dim");
  m.n_kv_heads = m.n_heads;
  m.head_dim = 0;
  m.norm_eps = get_field_or<double>(c, path, "layer_norm_eps", 1e-5);
  m.parallel_residual = get_field_or<bool>(c, path, "use_parallel_residual", true);
  m.tied_head = get_field_or<bool>(c, path, "tie_word_embeddings", false);
  read_rope(c, path, "rotary_emb_base", m);
  m.rotary_fraction = get_field_or<double>(c, path, "rotary_pct", 0.25);
  if (has_value(c, "rope_parameters"))
    m.rotary_fraction = get_field_or<double>(c.at("rope_parameters"), path, "partial_rotary_factor",
                                             m.rotary_fraction);
  // transformers rotates int(head_size * fraction) dims, rounded up to even by its cos/sin
  // table; rrt rounds down. They agree when the count is even.
  const auto rot = static_cast<int64_t>(static_cast<double>(head_size) * m.rotary_fraction);
  RRT_CHECK(rot > 0 && rot % 2 == 0 && m.rotary_fraction <= 1.0, path, "partial_rotary_factor ",
            m.rotary_fraction, " of head size ", head_size, " gives ", rot,
            " rotary dims; rrt needs an even count in [2, head size]");
}

// ---- Weights ----------------------------------------------------------------------------------
struct Located {
  const SafetensorsFile* file;
  std::string path;
};

// The opened safetensors files and where each HF tensor lives.
struct Weights {
  std::map<std::string, std::unique_ptr<SafetensorsFile>> files;  // by file name
  std::map<std::string, Located> where;                           // HF tensor -> its file
  std::string source;  // model.safetensors or the index: what error messages name
};

Weights open_sharded(const std::string& dir, const fs::path& index) {
  Weights w;
  w.source = index.string();
  const json idx = read_json(w.source, "check the file's permissions");
  RRT_CHECK(idx.contains("weight_map") && idx.at("weight_map").is_object(), w.source,
            "has no 'weight_map' object; re-save the model with save_pretrained");
  std::map<std::string, std::string> path_of;  // shard name -> path
  for (const auto& [tensor, shard_json] : idx.at("weight_map").items()) {
    const std::string shard = shard_json.get<std::string>();
    auto it = w.files.find(shard);
    if (it == w.files.end()) {
      const fs::path shard_path = fs::path(dir) / shard;
      RRT_CHECK(fs::exists(shard_path), w.source, "shard ", shard, " (holding tensor '", tensor,
                "') is missing from ", dir, "; download or copy every shard the index names");
      it = w.files.emplace(shard, std::make_unique<SafetensorsFile>(shard_path.string())).first;
      path_of[shard] = shard_path.string();
    }
    RRT_CHECK(it->second->has(tensor), w.source, "names shard ", shard, " for tensor '", tensor,
              "' but the shard does not hold it; the index and shards do not match");
    w.where[tensor] = {it->second.get(), path_of[shard]};
  }
  // Tensors in the shards that the index does not list count as present too (and as extras).
  for (const auto& [shard, file] : w.files)
    for (const auto& [tensor, info] : file->tensors())
      w.where.emplace(tensor, Located{file.get(), path_of[shard]});
  return w;
}

Weights open_weights(const std::string& dir) {
  const fs::path single = fs::path(dir) / "model.safetensors";
  const fs::path index = fs::path(dir) / "model.safetensors.index.json";
  if (fs::exists(index)) return open_sharded(dir, index);
  RRT_CHECK(fs::exists(single), single.string(),
            "not found (and no model.safetensors.index.json either); the folder must hold the "
            "safetensors weights (save_pretrained with safe_serialization=True)");
  Weights w;
  w.source = single.string();
  auto file = std::make_unique<SafetensorsFile>(w.source);
  for (const auto& [tensor, info] : file->tensors()) w.where[tensor] = {file.get(), w.source};
  w.files.emplace("model.safetensors", std::move(file));
  return w;
}


// Finds HF tensor `hf` (first name that exists) and checks its shape; `rrt` names what it is
// loaded into, for the message.
const Located& find_checked(const Weights& w, const std::string& hf, const std::string& alias,
                            const std::vector<int64_t>& expected, const std::string& rrt,
                            const Format& f, std::string& found_name) {
  auto it = w.where.find(hf);
  if (it == w.where.end() && !alias.empty()) it = w.where.find(alias);
  RRT_CHECK(it != w.where.end(), w.source, "checkpoint has no tensor '", hf, "'",
            alias.empty() ? "" : " (nor '" + alias + "')", " (rrt '", rrt,
            "'); the checkpoint is incomplete or not a ", f.architecture, " matching config.json");
  found_name = it->first;
  const SafetensorInfo& t = it->second.file->info(found_name);
  RRT_CHECK(t.shape == expected, it->second.path, "tensor '", found_name, "' has shape ",
            shape_str(t.shape), " but config.json implies ", shape_str(expected), " (rrt '", rrt,
            "'); config and weights disagree");
  return it->second;
}

// NeoX's fused rows: row block [h * 3 * Dh + j * Dh, + Dh) is head h of part j (q, k, v), i.e.
// rows [h * Dh, + Dh) of that part. `width` is D for the weight and 1 for the bias.
void scatter_interleaved(const std::vector<float>& fused, int64_t heads, int64_t dh, int64_t width,
                         const std::array<float*, 3>& parts) {
  const int64_t block = dh * width;
  for (int64_t h = 0; h < heads; ++h)
    for (int j = 0; j < 3; ++j)
      std::copy_n(fused.data() + (h * 3 + j) * block, block,
                  parts[static_cast<size_t>(j)] + h * block);
}

// Loads the fused rules of `f`; returns the rrt parameters they filled.
std::set<std::string> load_fused(const Format& f, const Weights& w, const ModelConfig& m,
                                 ParameterSet& params, std::set<std::string>& used) {
  const ParamRegistry& reg = params.registry();
  std::set<std::string> filled;
  for (const FusedRule& rule : f.fused) {
    for (int64_t l = 0; l < layer_count(rule.hf, m.n_layers); ++l) {
      std::array<float*, 3> parts{};
      std::array<std::string, 3> names;
      for (size_t j = 0; j < 3; ++j) {
        names[j] = expand_layer(rule.parts[j], l);
        parts[j] = params.value(reg.index(names[j]));
      }
      const ParamInfo& q = reg[reg.index(names[0])];
      std::vector<int64_t> expected = q.shape.vec();
      expected[0] *= 3;  // q, k and v are alike in NeoX (no GQA)
      const std::string hf = expand_layer(rule.hf, l);
      std::string found;
      const Located& at = find_checked(w, hf, "", expected, names[0] + ", k and v", f, found);
      const int64_t width = q.shape.ndim == 2 ? q.shape[1] : 1;
      std::vector<float> fused(static_cast<size_t>(q.shape.numel() * 3));
      at.file->read_f32_into(found, fused.data(), static_cast<int64_t>(fused.size()));
      scatter_interleaved(fused, m.n_heads, m.dh(), width, parts);
      used.insert(found);
      filled.insert(names.begin(), names.end());
    }
  }
  return filled;
}

// The HF names (and alias) of every registry parameter the plain rules cover.
std::map<std::string, std::pair<std::string, std::string>> plain_names(const Format& f,
                                                                       const ParamRegistry& reg,
                                                                       int64_t layers) {
  std::map<std::string, std::pair<std::string, std::string>> hf_of;  // rrt -> (HF, alias)
  for (const NameRule& rule : f.rules) {
    for (int64_t l = 0; l < layer_count(rule.rrt, layers); ++l) {
      const std::string rrt_name = expand_layer(rule.rrt, l);
      if (reg.has(rrt_name))
        hf_of[rrt_name] = {expand_layer(rule.hf, l), rule.hf_alias ? expand_layer(rule.hf_alias, l) : ""};
    }
  }
  return hf_of;
}

// Anything left over must be a known optional tensor; otherwise the checkpoint is something
// this importer would silently get wrong.
void check_leftovers(const Format& f, const Weights& w, const std::set<std::string>& used,
                     int64_t layers, bool tied) {
  std::set<std::string> optional;
  for (const OptionalRule& rule : f.optional) {
    if (rule.only_when_tied && !tied) continue;
    for (int64_t l = 0; l < layer_count(rule.hf, layers); ++l) optional.insert(expand_layer(rule.hf, l));
  }
  for (const auto& [tensor, at] : w.where)
    RRT_CHECK(used.count(tensor) || optional.count(tensor), at.path, "unexpected tensor '", tensor,
              "' that a ", f.architecture,
              " with this config.json does not have; the checkpoint is another architecture or has "
              "extra layers (check num_hidden_layers)");
}

}  // namespace

ModelConfig read_hf_config(const std::string& dir) {
  const std::string path = (fs::path(dir) / "config.json").string();
  RRT_CHECK(fs::exists(path), path,
            "not found; point at a Hugging Face model folder (the one holding config.json and "
            "model.safetensors)");
  const json c = read_json(path, "check the file's permissions");
  const Format& f = architecture_of(c, path);

  ModelConfig m;
  apply_family_defaults(m, f.family);
  read_sizes(c, path, m);
  switch (f.family) {
    case Family::llama:
      read_llama(c, path, m);
      break;
    case Family::gemma:
      read_gemma(c, path, m);
      break;
    case Family::neox:
      read_neox(c, path, m);
      break;
  }
  return m;
}

HfModel load_hf_model(const std::string& dir) {
  HfModel out;
  out.spec.model = read_hf_config(dir);
  out.spec.recursion.block_layers = out.spec.model.n_layers;
  out.spec.recursion.loops = 1;
  validate(out.spec);
  out.params = std::make_unique<ParameterSet>(out.spec, ParameterSet::Grads::without);
  const ParamRegistry& reg = out.params->registry();
  const ModelConfig& m = out.spec.model;
  const Format& f = format_of(m.family);
  const Weights w = open_weights(dir);

  std::set<std::string> used;  // HF tensors consumed
  const std::set<std::string> filled = load_fused(f, w, m, *out.params, used);
  const auto hf_of = plain_names(f, reg, m.n_layers);
  for (int i = 0; i < reg.size(); ++i) {
    const ParamInfo& p = reg[i];
    if (filled.count(p.name)) continue;
    auto rule = hf_of.find(p.name);
    RRT_CHECK(rule != hf_of.end(), "load_hf_model", "no ", f.architecture,
              " name is known for parameter '", p.name,
              "' (an internal error: extend the tensor table)");
    std::string found;
    const Located& at = find_checked(w, rule->second.first, rule->second.second, p.shape.vec(),
                                     p.name, f, found);
    at.file->read_f32_into(found, out.params->value(i), p.shape.numel());
    used.insert(found);
  }
  check_leftovers(f, w, used, m.n_layers, m.tied_head);
  return out;
}

}  // namespace rrt
