#include "model/hf_import.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "core/error.h"
#include "core/json_file.h"
#include "core/safetensors.h"
#include "model/family.h"

namespace rrt {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// What to do about a JSON file of the model directory that cannot be read.
constexpr const char* kSavePretrainedHint =
    "; rrt reads a model directory as transformers' save_pretrained writes it";

// ---- config.json ------------------------------------------------------------------------------
// Every family-specific key comes from the family's descriptor (model/families.cpp); only the
// keys that transformers spells alike for every model (architectures, model_type, rope_scaling,
// rope_parameters) are named here.
bool has_value(const json& c, const char* key) { return c.contains(key) && !c.at(key).is_null(); }

template <typename T>
T get_field(const json& c, const std::string& path, const char* key) {
  RRT_CHECK(has_value(c, key), path, "config has no '", key,
            "'; is this a Hugging Face config.json of one of: ", known_hf_families(), "?");
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

// The family of a config: its architectures (all naming one family) and model_type, which
// must agree when both are given (transformers' Auto classes go by model_type).
const FamilyDescriptor& family_of(const json& c, const std::string& path) {
  const FamilyDescriptor* found = nullptr;
  if (c.contains("architectures")) {
    RRT_CHECK(c.at("architectures").is_array(), path,
              "'architectures' is not a list; supported families: ", known_hf_families());
    for (const auto& a : c.at("architectures")) {
      const std::string arch = a.is_string() ? a.get<std::string>() : a.dump();
      const FamilyDescriptor& f = family_by_hf_architecture(arch, path);
      RRT_CHECK(found == nullptr || found == &f, path, "names two architectures (",
                found ? found->hf.architecture : "", ", ", arch,
                "); which one the weights are is ambiguous");
      found = &f;
    }
  }
  if (has_value(c, "model_type")) {
    const FamilyDescriptor& f =
        family_by_hf_model_type(get_field<std::string>(c, path, "model_type"), path);
    RRT_CHECK(found == nullptr || found == &f, path, "model_type '", f.hf.model_type,
              "' is not that of architecture ", found ? found->hf.architecture : "", " ('",
              found ? found->hf.model_type : "", "'); which one the weights are is ambiguous");
    found = &f;
  }
  RRT_CHECK(found != nullptr, path,
            "config has neither 'architectures' nor 'model_type'; supported families: ",
            known_hf_families());
  return *found;
}

// The activation that `k` names, or nullptr when the key is absent and has no fallback.
const HfActivation* read_activation(const json& c, const std::string& path,
                                    const FamilyDescriptor& d, const HfActivationKey& k) {
  if (!k.key || (!has_value(c, k.key) && !k.fallback)) return nullptr;
  const std::string act = k.fallback ? get_field_or<std::string>(c, path, k.key, k.fallback)
                                     : get_field<std::string>(c, path, k.key);
  std::string names;
  for (const HfActivation& a : k.accepted) {
    if (act == a.hf) return &a;
    names += (names.empty() ? "" : ", ") + std::string(a.hf);
  }
  RRT_FAIL(path, k.key, " '", act, "' is not supported; rrt's ", d.display, " MLP is ", d.mlp, " (",
           k.key, ": ", names, ")", k.hint);
}

void read_activations(const json& c, const std::string& path, const FamilyDescriptor& d,
                      ModelConfig& m) {
  const HfActivation* act = read_activation(c, path, d, d.hf.activation);
  if (act) m.activation = act->activation;
  const HfActivation* check = read_activation(c, path, d, d.hf.activation_check);
  RRT_CHECK(!check || !act || check->activation == act->activation, path, d.hf.activation_check.key,
            " '", check ? check->hf : "", "' and ", d.hf.activation.key, " '", act ? act->hf : "",
            "' disagree; what the model computes is ambiguous");
}

void read_flags(const json& c, const std::string& path, const FamilyDescriptor& d) {
  for (const HfFlag& flag : d.hf.flags) {
    const bool value = get_field_or<bool>(c, path, flag.key, flag.required);
    RRT_CHECK(value == flag.required, path, flag.key, " is ", value ? "true" : "false", "; ",
              flag.why);
  }
}

void read_sizes(const json& c, const std::string& path, const HfSizeKeys& k, ModelConfig& m) {
  m.vocab = get_field<int64_t>(c, path, k.vocab);
  m.d_model = get_field<int64_t>(c, path, k.d_model);
  m.n_heads = get_field<int64_t>(c, path, k.n_heads);
  m.ffn = get_field<int64_t>(c, path, k.ffn);
  m.n_layers = get_field<int64_t>(c, path, k.n_layers);
  m.max_seq_len = get_field<int64_t>(c, path, k.max_seq_len);
  RRT_CHECK(m.n_layers > 0, path, k.n_layers, " must be positive, got ", m.n_layers);
  RRT_CHECK(m.n_heads > 0, path, k.n_heads, " must be positive, got ", m.n_heads);
}

void read_heads(const json& c, const std::string& path, const HfFormat& f, ModelConfig& m) {
  if (!f.kv_heads_key)
    m.n_kv_heads = m.n_heads;
  else if (f.kv_heads_required)
    m.n_kv_heads = get_field<int64_t>(c, path, f.kv_heads_key);
  else
    m.n_kv_heads = get_field_or<int64_t>(c, path, f.kv_heads_key, m.n_heads);
  switch (f.head_dim) {
    case HfHeadDim::optional:
      m.head_dim = get_field_or<int64_t>(c, path, f.head_dim_key, 0);
      return;
    case HfHeadDim::required:
      m.head_dim = get_field<int64_t>(c, path, f.head_dim_key);
      return;
    case HfHeadDim::quotient: {
      RRT_CHECK(m.d_model % m.n_heads == 0, path, f.sizes.d_model, " ", m.d_model,
                " is not divisible by ", f.sizes.n_heads, " ", m.n_heads, "; the ", f.architecture,
                " head size is their quotient");
      const int64_t head_size = m.d_model / m.n_heads;
      RRT_CHECK(get_field_or<int64_t>(c, path, f.head_dim_key, head_size) == head_size, path,
                f.head_dim_key, " ", c.value(f.head_dim_key, json()).dump(), " differs from ",
                f.sizes.d_model, " / ", f.sizes.n_heads, " = ", head_size, "; ", f.architecture,
                " has no independent head size");
      m.head_dim = 0;
      return;
    }
  }
}

// The RoPE scaling of a rope_parameters / rope_scaling object `r` (transformers'
// modeling_rope_utils): default, linear, dynamic or llama3, each with only the keys that type
// reads; anything else is refused by name rather than imported as another model.
ops::RopeScaling read_rope_scaling(const json& r, const std::string& path, const char* where,
                                   const FamilyDescriptor& d, const ModelConfig& m) {
  // transformers 4 spelled the type "type"; both are accepted, and must agree.
  const std::string type = get_field_or<std::string>(
      r, path, "rope_type", get_field_or<std::string>(r, path, "type", "default"));
  RRT_CHECK(get_field_or<std::string>(r, path, "type", type) == type, path, where, " ", r.dump(),
            " names two rope types; which one the model uses is ambiguous");
  ops::RopeScaling sc;
  std::set<std::string> keys = {"rope_type", "type", "rope_theta"};
  auto need = [&](const char* key) {
    RRT_CHECK(has_value(r, key), path, where, " ", r.dump(), ": rope_type '", type, "' needs '",
              key, "'");
    keys.insert(key);
    return get_field<double>(r, path, key);
  };
  if (type == "default") {
  } else if (type == "linear" || type == "dynamic" || type == "llama3") {
    RRT_CHECK(d.hf.rope_scaling, path, where, " rope_type '", type, "' is not supported for ",
              d.hf.architecture, "; only plain RoPE (rope_type default) can be imported");
    sc.factor = need("factor");
    RRT_CHECK(sc.factor > 0, path, where, ".factor must be positive, got ", sc.factor);
    if (type == "linear") {
      sc.type = ops::RopeScalingType::linear;
    } else if (type == "dynamic") {
      // transformers' dynamic NTK: plain frequencies up to max_position_embeddings (its
      // original_max_seq_len; an original_max_position_embeddings key is not read), rescaled by
      // the sequence length beyond them, where rrt's models never run (max_seq_len).
      sc.type = ops::RopeScalingType::dynamic;
      sc.original_max_positions = m.max_seq_len;
      keys.insert("original_max_position_embeddings");
    } else {
      sc.type = ops::RopeScalingType::llama3;
      sc.low_freq_factor = need("low_freq_factor");
      sc.high_freq_factor = need("high_freq_factor");
      need("original_max_position_embeddings");
      sc.original_max_positions = get_field<int64_t>(r, path, "original_max_position_embeddings");
      RRT_CHECK(sc.high_freq_factor > sc.low_freq_factor && sc.original_max_positions > 0, path,
                where,
                " llama3 scaling needs high_freq_factor > low_freq_factor and a positive "
                "original_max_position_embeddings, got ",
                r.dump());
    }
  } else {
    RRT_FAIL(path, where, " ", r.dump(), " use rope_type '", type, "'; rrt implements default",
             d.hf.rope_scaling ? ", linear, dynamic and llama3" : " only", " for ",
             d.hf.architecture);
  }
  // The rotated share: the family's own key where it has one, else only whole heads.
  if (d.hf.rotary_fraction_key ||
      get_field_or<double>(r, path, "partial_rotary_factor", 1.0) == 1.0)
    keys.insert("partial_rotary_factor");
  for (const auto& [key, value] : r.items())
    RRT_CHECK(keys.count(key) || value.is_null(), path, where, ".", key, " (", value.dump(),
              ") is not supported with rope_type '", type, "': rrt would compute another RoPE");
  return sc;
}

// The family's rope_theta_key is where older configs kept the base (and its rotary_fraction_key
// the rotated share), with rope_scaling beside it; transformers >= 5 writes rope_parameters
// {rope_type, rope_theta, partial_rotary_factor, factor, ...}, whose values win, as in
// transformers. Gemma 3 keeps a RoPE per layer type: rope_theta / rope_scaling are the full
// (global) layers', rope_local_base_freq the sliding (local) layers' base, and transformers 5
// writes rope_parameters {full_attention: {...}, sliding_attention: {...}}; the local layers
// never scale their frequencies.
void read_rope(const json& c, const std::string& path, const FamilyDescriptor& d, ModelConfig& m) {
  const HfFormat& f = d.hf;
  m.rope_theta = get_field_or<double>(c, path, f.rope_theta_key, f.rope_theta_default);
  if (f.rotary_fraction_key)
    m.rotary_fraction = get_field_or<double>(c, path, f.rotary_fraction_key, m.rotary_fraction);
  if (f.rope_local_theta_key)
    m.rope_local_theta =
        get_field_or<double>(c, path, f.rope_local_theta_key, f.rope_local_theta_default);
  if (has_value(c, "rope_scaling")) {
    RRT_CHECK(c.at("rope_scaling").is_object(), path, "rope_scaling ", c.at("rope_scaling").dump(),
              " is not an object");
    m.rope_scaling = read_rope_scaling(c.at("rope_scaling"), path, "rope_scaling", d, m);
  }
  if (has_value(c, "rope_parameters")) {
    const json& r = c.at("rope_parameters");
    RRT_CHECK(r.is_object(), path, "rope_parameters ", r.dump(), " is not an object");
    const bool per_type = r.contains("full_attention") || r.contains("sliding_attention");
    RRT_CHECK(!per_type || f.rope_local_theta_key, path, "rope_parameters ", r.dump(),
              " gives a RoPE per layer type, which ", f.architecture, " does not have");
    const json none = json::object();
    const json& full =
        per_type ? (has_value(r, "full_attention") ? r.at("full_attention") : none) : r;
    if (per_type) {
      for (const auto& [key, value] : r.items())
        RRT_CHECK(key == "full_attention" || key == "sliding_attention", path, "rope_parameters.",
                  key, " is not a layer type rrt knows (full_attention, sliding_attention)");
      RRT_CHECK(full.is_object(), path, "rope_parameters.full_attention is not an object");
    }
    const char* where = per_type ? "rope_parameters.full_attention" : "rope_parameters";
    const ops::RopeScaling sc = read_rope_scaling(full, path, where, d, m);
    RRT_CHECK(!has_value(c, "rope_scaling") || sc == m.rope_scaling, path, "rope_scaling and ",
              where, " describe different RoPE scalings; which one the model uses is ambiguous");
    m.rope_scaling = sc;
    m.rope_theta = get_field_or<double>(full, path, "rope_theta", m.rope_theta);
    if (f.rotary_fraction_key)
      m.rotary_fraction =
          get_field_or<double>(full, path, "partial_rotary_factor", m.rotary_fraction);
    if (per_type && has_value(r, "sliding_attention")) {
      const json& local = r.at("sliding_attention");
      RRT_CHECK(local.is_object(), path, "rope_parameters.sliding_attention is not an object");
      const ops::RopeScaling lsc =
          read_rope_scaling(local, path, "rope_parameters.sliding_attention", d, m);
      RRT_CHECK(lsc.type == ops::RopeScalingType::none, path,
                "rope_parameters.sliding_attention scales its frequencies (rope_type ",
                to_string(lsc.type), "); rrt scales only the full-attention layers' RoPE");
      m.rope_local_theta = get_field_or<double>(local, path, "rope_theta", m.rope_local_theta);
    }
  }
  if (!f.rotary_fraction_key) return;
  // transformers rotates int(head_size * fraction) dims, rounded up to even by its cos/sin
  // table; rrt rounds down. They agree when the count is even.
  const auto rot = static_cast<int64_t>(static_cast<double>(m.dh()) * m.rotary_fraction);
  RRT_CHECK(rot > 0 && rot % 2 == 0 && m.rotary_fraction <= 1.0, path, "partial_rotary_factor ",
            m.rotary_fraction, " of head size ", m.dh(), " gives ", rot,
            " rotary dims; rrt needs an even count in [2, head size]");
}

// transformers 5's per-layer attention kinds (layer_types; Gemma 2 / 3 derive them from
// sliding_window_pattern when absent): whether each layer is a sliding-window one.
std::vector<bool> read_layer_types(const json& c, const std::string& path,
                                   const FamilyDescriptor& d, const ModelConfig& m) {
  const int64_t pattern_default = d.hf.sliding_pattern_default;
  std::vector<bool> sliding(static_cast<size_t>(m.n_layers), false);
  if (has_value(c, "layer_types")) {
    const json& types = c.at("layer_types");
    RRT_CHECK(types.is_array(), path, "layer_types is not a list");
    RRT_CHECK(pattern_default == 0 || static_cast<int64_t>(types.size()) == m.n_layers, path,
              "layer_types lists ", types.size(), " layers, not num_hidden_layers ", m.n_layers);
    for (size_t l = 0; l < types.size(); ++l) {
      const json& t = types[l];
      if (pattern_default > 0 && t == "sliding_attention") {
        sliding[l] = true;
        continue;
      }
      RRT_CHECK(t == "full_attention", path, "layer_types lists ", t.dump(), "; rrt's ", d.display,
                " layers are ",
                pattern_default > 0 ? "full_attention or sliding_attention"
                                    : "full causal attention (sliding-window layers are not "
                                      "implemented for this family)");
    }
    return sliding;
  }
  if (pattern_default == 0) return sliding;
  const auto pattern = get_field_or<int64_t>(c, path, "sliding_window_pattern", pattern_default);
  RRT_CHECK(pattern > 0, path, "sliding_window_pattern must be positive, got ", pattern);
  for (int64_t l = 0; l < m.n_layers; ++l) sliding[static_cast<size_t>(l)] = (l + 1) % pattern != 0;
  return sliding;
}

// The shortest prefix of `v` that, repeated, gives `v` (ModelConfig's layer patterns).
std::vector<bool> shortest_period(const std::vector<bool>& v) {
  for (size_t p = 1; p <= v.size(); ++p) {
    bool ok = true;
    for (size_t i = p; i < v.size() && ok; ++i) ok = v[i] == v[i % p];
    if (ok) return {v.begin(), v.begin() + static_cast<std::ptrdiff_t>(p)};
  }
  return v;
}

// The sliding-window layers: model.sliding_window, and the layer types as the shortest
// repeating pattern model.sliding_layers (empty when every layer slides). Gemma 3's sliding
// layers are also its local-RoPE ones (ModelConfig::local_rope_at).
void read_sliding_layers(const json& c, const std::string& path, const FamilyDescriptor& d,
                         ModelConfig& m) {
  const std::vector<bool> sliding = read_layer_types(c, path, d, m);
  if (std::find(sliding.begin(), sliding.end(), true) == sliding.end()) return;
  // Absent: Gemma2Config's and Gemma3TextConfig's default, 4096; null: no size to apply.
  RRT_CHECK(!c.contains("sliding_window") || !c.at("sliding_window").is_null(), path,
            "layer_types has sliding_attention layers but sliding_window is null; rrt needs the "
            "window's size");
  m.sliding_window = get_field_or<int64_t>(c, path, "sliding_window", 4096);
  RRT_CHECK(m.sliding_window > 0, path, "sliding_window must be positive, got ", m.sliding_window);
  m.sliding_layers = shortest_period(sliding);
  if (m.sliding_layers == std::vector<bool>{true}) m.sliding_layers.clear();  // every layer
}

// Logit soft-capping (the attention's and the final logits'): null is off, an absent key
// transformers' default (Gemma 2's 50.0 and 30.0), a number the cap: the attention masks apply
// the attention's to the scaled scores, the head ops the final one to the logits.
void read_softcap(const json& c, const std::string& path, const char* key, double fallback,
                  double& cap) {
  if (!key) return;
  if (c.contains(key) && c.at(key).is_null()) {
    cap = 0.0;
    return;
  }
  cap = get_field_or<double>(c, path, key, fallback);
  RRT_CHECK(cap >= 0 && std::isfinite(cap), path, key,
            " must be a positive cap or null (off), got ", cap);
  RRT_CHECK(!c.contains(key) || cap > 0, path, key,
            " is 0, which transformers divides by; write null to turn soft-capping off");
}

void read_unsupported(const json& c, const std::string& path, const FamilyDescriptor& d) {
  for (const HfUnsupportedKey& k : d.hf.unsupported) {
    const bool set = c.contains(k.key) ? !c.at(k.key).is_null() : k.absent_is_set;
    RRT_CHECK(!set, path, k.key, " is ",
              c.contains(k.key) ? c.at(k.key).dump() : std::string("absent (not null)"), ": ",
              k.why);
  }
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
  const json idx = read_json_file(w.source, kSavePretrainedHint);
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

// Finds HF tensor `hf` (or its alias) and checks its shape; `rrt` names what it is loaded into,
// for the message.
const Located& find_checked(const Weights& w, const FileTensor& t,
                            const std::vector<int64_t>& expected, const FamilyDescriptor& d,
                            std::string& found_name) {
  auto it = w.where.find(t.file);
  if (it == w.where.end() && !t.alias.empty()) it = w.where.find(t.alias);
  std::string rrt = t.params[0];
  for (size_t j = 1; j < t.params.size(); ++j) rrt += ", " + t.params[j];
  RRT_CHECK(it != w.where.end(), w.source, "checkpoint has no tensor '", t.file, "'",
            t.alias.empty() ? "" : " (nor '" + t.alias + "')", " (rrt '", rrt,
            "'); the checkpoint is incomplete or not a ", d.hf.architecture,
            " matching config.json");
  found_name = it->first;
  const SafetensorInfo& info = it->second.file->info(found_name);
  RRT_CHECK(info.shape == expected, it->second.path, "tensor '", found_name, "' has shape ",
            shape_str(info.shape), " but config.json implies ", shape_str(expected), " (rrt '", rrt,
            "'); config and weights disagree");
  return it->second;
}

// Anything left over must be a known optional tensor; otherwise the checkpoint is something
// this importer would silently get wrong.
void check_leftovers(const FamilyDescriptor& d, const Weights& w, const std::set<std::string>& used,
                     int64_t layers, bool tied) {
  const std::set<std::string> optional = optional_tensors(d.hf.optional, layers, tied);
  for (const auto& [tensor, at] : w.where)
    RRT_CHECK(used.count(tensor) || optional.count(tensor), at.path, "unexpected tensor '", tensor,
              "' that a ", d.hf.architecture,
              " with this config.json does not have; the checkpoint is another architecture or has "
              "extra layers (check ",
              d.hf.sizes.n_layers, ")");
}

}  // namespace

ModelConfig read_hf_config(const std::string& dir) {
  const std::string path = (fs::path(dir) / "config.json").string();
  RRT_CHECK(fs::exists(path), path,
            "not found; point at a Hugging Face model folder (the one holding config.json and "
            "model.safetensors)");
  const json c = read_json_file(path, kSavePretrainedHint);
  const FamilyDescriptor& d = family_of(c, path);
  const HfFormat& f = d.hf;

  ModelConfig m;
  apply_family_defaults(m, d.family);
  read_sizes(c, path, f.sizes, m);
  read_activations(c, path, d, m);
  read_flags(c, path, d);
  read_heads(c, path, f, m);
  m.norm_eps = get_field_or<double>(c, path, f.norm_eps_key, f.norm_eps_default);
  m.tied_head = get_field_or<bool>(c, path, f.tied_head_key, m.tied_head);
  if (f.parallel_residual_key)
    m.parallel_residual = get_field_or<bool>(c, path, f.parallel_residual_key, m.parallel_residual);
  read_unsupported(c, path, d);
  if (f.query_scale_key)
    m.query_pre_attn_scalar =
        get_field_or<double>(c, path, f.query_scale_key, f.query_scale_default);
  read_softcap(c, path, f.attn_softcap_key, f.attn_softcap_default, m.attn_logit_softcapping);
  read_softcap(c, path, f.final_softcap_key, f.final_softcap_default, m.final_logit_softcapping);
  read_rope(c, path, d, m);
  read_sliding_layers(c, path, d, m);
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
  const FamilyDescriptor& d = family_descriptor(m.family);
  const Weights w = open_weights(dir);

  std::set<std::string> used;  // HF tensors consumed
  std::vector<float> staging;
  for (const FileTensor& t : expand_tensors(d.hf.tensors, reg, m.n_layers, d.hf.architecture)) {
    std::vector<std::vector<int64_t>> parts;
    std::vector<float*> dst;
    for (const std::string& p : t.params) {
      parts.push_back(reg[reg.index(p)].shape.vec());
      dst.push_back(out.params->value(p));
    }
    const std::vector<int64_t> shape = file_shape(t, parts);
    std::string found;
    const Located& at = find_checked(w, t, shape, d, found);
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    if (t.rule->rows == RowLayout::as_is) {
      at.file->read_f32_into(found, dst[0], n);
    } else {
      staging.resize(static_cast<size_t>(n));
      at.file->read_f32_into(found, staging.data(), n);
      unpack_rows(t.rule->rows, m, staging.data(), parts, dst);
    }
    used.insert(found);
  }
  check_leftovers(d, w, used, m.n_layers, m.tied_head);
  return out;
}

}  // namespace rrt
