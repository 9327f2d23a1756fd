#include "model/hf_export.h"

#include <algorithm>
#include <deque>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <span>
#include <system_error>
#include <vector>

#include "core/durable_file.h"
#include "core/error.h"
#include "core/safetensors.h"

namespace rrt {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// What one HF tensor of a decoder layer holds, in rrt terms.
enum class Holds { norm_weight, norm_bias, proj_weight, proj_bias, qkv_weight, qkv_bias };

struct LayerTensor {
  const char* hf;  // name after "<layers>.{l}."
  Holds holds;
  Proj proj = Proj::q;     // proj_weight, proj_bias
  bool attn_norm = false;  // norm_*: the attention (input) norm, else the MLP norm
};

// Llama and Gemma share the tensor names; NeoX fuses q, k, v and has biases everywhere.
constexpr LayerTensor kLlamaLayer[] = {
    {"input_layernorm.weight", Holds::norm_weight, Proj::q, true},
    {"self_attn.q_proj.weight", Holds::proj_weight, Proj::q},
    {"self_attn.k_proj.weight", Holds::proj_weight, Proj::k},
    {"self_attn.v_proj.weight", Holds::proj_weight, Proj::v},
    {"self_attn.o_proj.weight", Holds::proj_weight, Proj::o},
    {"post_attention_layernorm.weight", Holds::norm_weight, Proj::q, false},
    {"mlp.gate_proj.weight", Holds::proj_weight, Proj::gate},
    {"mlp.up_proj.weight", Holds::proj_weight, Proj::up},
    {"mlp.down_proj.weight", Holds::proj_weight, Proj::down},
};
constexpr LayerTensor kNeoxLayer[] = {
    {"input_layernorm.weight", Holds::norm_weight, Proj::q, true},
    {"input_layernorm.bias", Holds::norm_bias, Proj::q, true},
    {"attention.query_key_value.weight", Holds::qkv_weight},
    {"attention.query_key_value.bias", Holds::qkv_bias},
    {"attention.dense.weight", Holds::proj_weight, Proj::o},
    {"attention.dense.bias", Holds::proj_bias, Proj::o},
    {"post_attention_layernorm.weight", Holds::norm_weight, Proj::q, false},
    {"post_attention_layernorm.bias", Holds::norm_bias, Proj::q, false},
    {"mlp.dense_h_to_4h.weight", Holds::proj_weight, Proj::up},
    {"mlp.dense_h_to_4h.bias", Holds::proj_bias, Proj::up},
    {"mlp.dense_4h_to_h.weight", Holds::proj_weight, Proj::down},
    {"mlp.dense_4h_to_h.bias", Holds::proj_bias, Proj::down},
};

// The checkpoint layout of one HF architecture.
struct HfLayout {
  const char* architecture;
  const char* model_type;
  const char* embed;       // embedding tensor
  const char* layers;      // prefix of layer l's tensors: "<layers>.{l}."
  const char* final_norm;  // final norm module (".weight", and ".bias" for LayerNorm)
  const char* head;        // untied head tensor
  std::span<const LayerTensor> layer;
};

constexpr HfLayout kLlamaLayout{
    .architecture = "LlamaForCausalLM",
    .model_type = "llama",
    .embed = "model.embed_tokens.weight",
    .layers = "model.layers",
    .final_norm = "model.norm",
    .head = "lm_head.weight",
    .layer = kLlamaLayer,
};
constexpr HfLayout kGemmaLayout{
    .architecture = "GemmaForCausalLM",
    .model_type = "gemma",
    .embed = "model.embed_tokens.weight",
    .layers = "model.layers",
    .final_norm = "model.norm",
    .head = "lm_head.weight",
    .layer = kLlamaLayer,
};
constexpr HfLayout kNeoxLayout{
    .architecture = "GPTNeoXForCausalLM",
    .model_type = "gpt_neox",
    .embed = "gpt_neox.embed_in.weight",
    .layers = "gpt_neox.layers",
    .final_norm = "gpt_neox.final_layer_norm",
    .head = "embed_out.weight",  // Pythia's name; transformers 5 renames it to lm_head on load
    .layer = kNeoxLayer,
};

const HfLayout& layout_of(Family f) {
  switch (f) {
    case Family::llama:
      return kLlamaLayout;
    case Family::gemma:
      return kGemmaLayout;
    case Family::neox:
      return kNeoxLayout;
  }
  RRT_FAIL("export", "unknown family");
}

// transformers' hidden_act of the MLP nonlinearity (the gate's in gated MLPs).
const char* hf_activation(Activation a) {
  switch (a) {
    case Activation::swiglu:
      return "silu";
    case Activation::geglu:
    case Activation::gelu_tanh:
      return "gelu_pytorch_tanh";
    case Activation::gelu:
      return "gelu";
  }
  return "?";
}

// NeoX's HF rotary dims are int(Dh * partial_rotary_factor); rot_dim / Dh gives back exactly
// rrt's (even) rot_dim, which the export checks rather than trusts to rounding.
double partial_rotary_factor(const ModelConfig& m) {
  return static_cast<double>(m.rot_dim()) / static_cast<double>(m.dh());
}

// What the HF configs cannot say beyond check_family_structure: Llama and Gemma rotate whole
// heads; NeoX derives Dh from d_model / H and has one kv head per head.
void check_hf_expressible(const ModelConfig& m, const std::string& where) {
  check_family_structure(m);
  const std::string arch = layout_of(m.family).architecture;
  if (m.family != Family::neox) {
    RRT_CHECK(m.rot_dim() == m.dh(), where, arch, " rotates whole heads, but the model rotates ",
              m.rot_dim(), " of ", m.dh(), " head dims (model.rotary_fraction ", m.rotary_fraction,
              ")");
    return;
  }
  RRT_CHECK(m.n_kv_heads == m.n_heads, where, arch,
            " has no grouped-query attention; the model "
            "has ",
            m.n_kv_heads, " kv heads for ", m.n_heads, " heads");
  RRT_CHECK(m.dh() * m.n_heads == m.d_model, where, arch,
            " uses head_dim = d_model / n_heads = ", m.d_model / m.n_heads,
            ", but the model has head_dim ", m.dh());
  const auto hf_rot = static_cast<int64_t>(static_cast<double>(m.dh()) * partial_rotary_factor(m));
  RRT_CHECK(hf_rot == m.rot_dim(), where, "rotary dims ", m.rot_dim(), " of ", m.dh(),
            " cannot be written as a partial_rotary_factor");
}

json hf_config(const ModelSpec& spec) {
  const ModelConfig& m = spec.model;
  const HfLayout& layout = layout_of(m.family);
  json rope = {{"rope_type", "default"}, {"rope_theta", m.rope_theta}};  // transformers 5
  json c;
  c["architectures"] = json::array({layout.architecture});
  c["model_type"] = layout.model_type;
  c["vocab_size"] = m.vocab;
  c["hidden_size"] = m.d_model;
  c["intermediate_size"] = m.ffn;
  c["num_hidden_layers"] = spec.positions();
  c["num_attention_heads"] = m.n_heads;
  c["max_position_embeddings"] = m.max_seq_len;
  c["tie_word_embeddings"] = m.tied_head;
  c["hidden_act"] = hf_activation(m.activation);
  c["attention_dropout"] = 0.0;
  c["torch_dtype"] = "float32";  // transformers 4
  c["dtype"] = "float32";        // transformers 5
  c["use_cache"] = true;
  if (m.family == Family::neox) {
    rope["partial_rotary_factor"] = partial_rotary_factor(m);
    c["rotary_pct"] = partial_rotary_factor(m);  // transformers 4
    c["rotary_emb_base"] = m.rope_theta;         // transformers 4
    c["layer_norm_eps"] = m.norm_eps;
    c["use_parallel_residual"] = m.parallel_residual;
    c["attention_bias"] = true;
    c["hidden_dropout"] = 0.0;
  } else {
    c["num_key_value_heads"] = m.n_kv_heads;
    c["head_dim"] = m.dh();
    c["rms_norm_eps"] = m.norm_eps;
    c["rope_theta"] = m.rope_theta;  // transformers 4
    c["attention_bias"] = false;
  }
  if (m.family == Family::llama) {
    c["mlp_bias"] = false;
    c["pretraining_tp"] = 1;
  }
  // transformers 4 Gemma reads hidden_activation (and falls back to exact GELU without it).
  if (m.family == Family::gemma) c["hidden_activation"] = hf_activation(m.activation);
  c["rope_parameters"] = rope;
  return c;
}

void prepare_dir(const std::string& out_dir, bool overwrite) {
  const std::string where = "export " + out_dir;
  std::error_code ec;
  if (fs::exists(out_dir, ec)) {
    RRT_CHECK(fs::is_directory(out_dir, ec), where,
              "exists and is not a directory; choose another --out");
    const bool empty = fs::is_empty(out_dir, ec);
    RRT_CHECK(!ec, where, "cannot read the directory (", ec.message(), ")");
    RRT_CHECK(empty || overwrite, where,
              "is not empty; choose a new or empty directory, or pass --force to replace "
              "config.json and model.safetensors there");
  } else {
    fs::create_directories(out_dir, ec);
    RRT_CHECK(!ec, where, "cannot create the directory (", ec.message(),
              "); check the path and its permissions");
  }
  const fs::path probe = fs::path(out_dir) / ".rrt_export_probe";
  {
    std::ofstream f(probe);
    RRT_CHECK(f.good(), where, "is not writable; check its permissions or choose another --out");
  }
  fs::remove(probe, ec);
  // A stale index would make loaders ignore the new single-file weights.
  fs::remove(fs::path(out_dir) / "model.safetensors.index.json", ec);
}

// The tensors of the exported file: parameters written as they are (no copy) or computed ones
// (merged or fused) owned here. Records which rrt parameters were written, so that a layout
// table missing one fails loudly instead of exporting a model without it.
class ExportTensors {
 public:
  explicit ExportTensors(const ParameterSet& params) : params_(params) {}

  void add_param(const std::string& hf, const std::string& rrt_name) {
    const int i = params_.registry().index(rrt_name);
    const Shape& s = params_.registry()[i].shape;
    out_.push_back({hf, "F32", s.vec(),
                    params_.value(i)});
    written_.insert(rrt_name);
  }
  void add_computed(const std::string& hf, std::vector<int64_t> shape, std::vector<float> data,
                    std::initializer_list<std::string> from) {
    owned_.push_back(std::move(data));  // deque: earlier elements keep their addresses
    out_.push_back({hf, "F32", std::move(shape), owned_.back().data()});
    written_.insert(from.begin(), from.end());
  }
  void check_all_written() const {
    for (const ParamInfo& p : params_.registry().params()) {
      if (p.kind == ParamKind::lora_a || p.kind == ParamKind::lora_b) continue;  // merged
      RRT_CHECK(written_.count(p.name), "export", "parameter '", p.name,
                "' has no HF tensor "
                "(an internal error: extend the layout table in model/hf_export.cpp)");
    }
  }
  const std::vector<SafetensorOut>& tensors() const { return out_; }

 private:
  const ParameterSet& params_;
  std::vector<SafetensorOut> out_;
  std::deque<std::vector<float>> owned_;
  std::set<std::string> written_;
};

// The bias of projection p at position pos (tied, or the position's own with per-loop norms).
std::string bias_at(const RecursionConfig& rc, Position pos, Proj p) {
  return ParamRegistry::bias_name(pos.layer, p, pos.loop, rc.per_loop_norms);
}

void add_fused_qkv(ExportTensors& out, const ModelSpec& spec, const ParameterSet& params, int64_t l,
                   const std::string& hf, bool bias) {
  const ModelConfig& m = spec.model;
  const Position pos = position_of(spec.recursion, l);
  const Proj qkv[3] = {Proj::q, Proj::k, Proj::v};
  if (bias) {
    const float* b[3];
    for (int i = 0; i < 3; ++i) b[i] = params.value(bias_at(spec.recursion, pos, qkv[i]));
    out.add_computed(hf, {3 * m.q_dim()}, fuse_qkv_per_head(b[0], b[1], b[2], m.n_heads, m.dh()),
                     {bias_at(spec.recursion, pos, Proj::q), bias_at(spec.recursion, pos, Proj::k),
                      bias_at(spec.recursion, pos, Proj::v)});
    return;
  }
  std::vector<float> w[3];
  for (int i = 0; i < 3; ++i) w[i] = merged_weight(spec, params, l, qkv[i]);
  out.add_computed(
      hf, {3 * m.q_dim(), m.d_model},
      fuse_qkv_per_head(w[0].data(), w[1].data(), w[2].data(), m.n_heads, m.dh() * m.d_model),
      {ParamRegistry::block_name(pos.layer, Proj::q), ParamRegistry::block_name(pos.layer, Proj::k),
       ParamRegistry::block_name(pos.layer, Proj::v)});
}

void add_layer_tensor(ExportTensors& out, const ModelSpec& spec, const ParameterSet& params,
                      int64_t l, const LayerTensor& t, const std::string& hf) {
  const RecursionConfig& rc = spec.recursion;
  const Position pos = position_of(rc, l);
  switch (t.holds) {
    case Holds::norm_weight:
    case Holds::norm_bias:
      out.add_param(hf, ParamRegistry::norm_name(pos.layer, pos.loop, t.attn_norm,
                                                 rc.per_loop_norms, t.holds == Holds::norm_bias));
      return;
    case Holds::proj_bias:
      out.add_param(hf, bias_at(rc, pos, t.proj));
      return;
    case Holds::proj_weight:
      if (spec.lora_rank(t.proj) == 0) {
        out.add_param(hf, ParamRegistry::block_name(pos.layer, t.proj));
      } else {
        const auto [rows, cols] = proj_shape(spec.model, t.proj);
        out.add_computed(hf, {rows, cols}, merged_weight(spec, params, l, t.proj),
                         {ParamRegistry::block_name(pos.layer, t.proj)});
      }
      return;
    case Holds::qkv_weight:
    case Holds::qkv_bias:
      add_fused_qkv(out, spec, params, l, hf, t.holds == Holds::qkv_bias);
      return;
  }
}

void write_config(const ModelSpec& spec, const std::string& out_dir) {
  const std::string cfg_path = (fs::path(out_dir) / "config.json").string();
  const std::string tmp = cfg_path + ".tmp";
  std::ofstream f(tmp);
  f << hf_config(spec).dump(2) << "\n";
  f.close();
  RRT_CHECK(f.good(), "export " + out_dir, "cannot write ", tmp, "; is the disk full?");
  commit_temporary_file(tmp, cfg_path, "export " + out_dir);
}

}  // namespace

std::vector<float> merged_weight(const ModelSpec& spec, const ParameterSet& params, int64_t l,
                                 Proj p) {
  const ParamRegistry& reg = params.registry();
  const Position pos = position_of(spec.recursion, l);
  const auto [rows, cols] = proj_shape(spec.model, p);
  const float* W = params.value(ParamRegistry::block_name(pos.layer, p));
  std::vector<float> out(W, W + rows * cols);
  const int64_t r = spec.lora_rank(p);
  if (r == 0) return out;
  const std::string a_name = ParamRegistry::lora_name(pos.loop, pos.layer, p, true);
  const std::string b_name = ParamRegistry::lora_name(pos.loop, pos.layer, p, false);
  RRT_CHECK(reg.has(a_name) && reg.has(b_name), "export", "the model has LoRA rank ", r,
            " but no parameters ", a_name, " / ", b_name);
  const float* A = params.value(a_name);  // [r, cols]
  const float* B = params.value(b_name);  // [rows, r]
  const double s = spec.lora_scale(p);
#pragma omp parallel
  {
    std::vector<double> acc(cols);
#pragma omp for schedule(static)
    for (int64_t o = 0; o < rows; ++o) {
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t j = 0; j < r; ++j) {
        const double bj = B[o * r + j];
        const float* a = A + j * cols;
        for (int64_t i = 0; i < cols; ++i) acc[i] += bj * a[i];
      }
      float* w = out.data() + o * cols;
      for (int64_t i = 0; i < cols; ++i)
        w[i] = static_cast<float>(static_cast<double>(w[i]) + s * acc[i]);
    }
  }
  return out;
}

std::vector<float> fuse_qkv_per_head(const float* q, const float* k, const float* v, int64_t heads,
                                     int64_t block) {
  std::vector<float> fused(3 * heads * block);
  const float* parts[3] = {q, k, v};
  for (int64_t h = 0; h < heads; ++h)
    for (int j = 0; j < 3; ++j)
      std::copy_n(parts[j] + h * block, block, fused.data() + (3 * h + j) * block);
  return fused;
}

void export_hf(const ModelSpec& spec, const ParameterSet& params, const std::string& out_dir,
               bool overwrite) {
  validate(spec);
  check_hf_expressible(spec.model, "export " + out_dir);
  prepare_dir(out_dir, overwrite);

  const ModelConfig& m = spec.model;
  const HfLayout& layout = layout_of(m.family);
  ExportTensors out(params);
  out.add_param(layout.embed, "embed.weight");
  for (int64_t l = 0; l < spec.positions(); ++l) {
    const std::string prefix = std::string(layout.layers) + "." + std::to_string(l) + ".";
    for (const LayerTensor& t : layout.layer)
      add_layer_tensor(out, spec, params, l, t, prefix + t.hf);
  }
  out.add_param(std::string(layout.final_norm) + ".weight", "final_norm.weight");
  if (m.norm == Norm::layer)
    out.add_param(std::string(layout.final_norm) + ".bias", "final_norm.bias");
  if (!m.tied_head) out.add_param(layout.head, "head.weight");
  out.check_all_written();

  write_safetensors((fs::path(out_dir) / "model.safetensors").string(), out.tensors(),
                    {{"format", "pt"}});
  write_config(spec, out_dir);
}

}  // namespace rrt
