#include "model/hf_export.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <system_error>
#include <vector>

#include "core/durable_file.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "model/family.h"

namespace rrt {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// HF configs with a rotary key give partial rotary as int(Dh * partial_rotary_factor) dims;
// rot_dim / Dh gives back exactly rrt's (even) rot_dim, which the export checks rather than
// trusts to rounding.
double partial_rotary_factor(const ModelConfig& m) {
  return static_cast<double>(m.rot_dim()) / static_cast<double>(m.dh());
}

// The value activation key `k` writes for activation a: the first the family accepts for it.
const char* hf_activation(const HfActivationKey& k, Activation a) {
  for (const HfActivation& x : k.accepted)
    if (x.activation == a) return x.hf;
  RRT_FAIL("export", k.key, " has no value for activation ", to_string(a));
}

// What the HF config cannot say beyond check_family_structure: partial rotary without a
// rotary key, GQA without a kv-heads key, a head size other than d_model / n_heads where the
// config has none.
void check_hf_expressible(const ModelConfig& m, const std::string& where) {
  check_family_structure(m);
  const HfFormat& f = family_descriptor(m.family).hf;
  const std::string arch = f.architecture;
  if (!f.rotary_fraction_key)
    RRT_CHECK(m.rot_dim() == m.dh(), where, arch, " rotates whole heads, but the model rotates ",
              m.rot_dim(), " of ", m.dh(), " head dims (model.rotary_fraction ", m.rotary_fraction,
              ")");
  if (!f.kv_heads_key)
    RRT_CHECK(m.n_kv_heads == m.n_heads, where, arch,
              " has no grouped-query attention; the model has ", m.n_kv_heads, " kv heads for ",
              m.n_heads, " heads");
  if (f.head_dim == HfHeadDim::quotient)
    RRT_CHECK(m.dh() * m.n_heads == m.d_model, where, arch,
              " uses head_dim = d_model / n_heads = ", m.d_model / m.n_heads,
              ", but the model has head_dim ", m.dh());
  if (!f.query_scale_key)
    RRT_CHECK(
        m.query_pre_attn_scalar == 0 || m.query_pre_attn_scalar == static_cast<double>(m.dh()),
        where, arch,
        " scales attention by head_dim^-0.5; the model has "
        "model.query_pre_attn_scalar ",
        m.query_pre_attn_scalar);
  if (!f.rope_local_theta_key)
    RRT_CHECK(m.rope_local_theta == 0, where, arch,
              " has one RoPE base for every layer; the model has model.rope_local_theta ",
              m.rope_local_theta);
  if (f.sliding_pattern_default == 0)
    RRT_CHECK(m.sliding_window == 0, where, "rrt exports ", arch,
              " without sliding-window layers; the model has model.sliding_window ",
              m.sliding_window);
  bool softcap = false;
  for (const HfUnsupportedKey& k : f.unsupported)
    softcap |= std::string(k.key) == "attn_logit_softcapping";
  RRT_CHECK(m.attn_logit_softcapping == 0 || softcap, where, arch,
            " has no attention logit soft-capping; the model has model.attn_logit_softcapping ",
            m.attn_logit_softcapping);
  if (f.rotary_fraction_key) {
    const auto hf_rot =
        static_cast<int64_t>(static_cast<double>(m.dh()) * partial_rotary_factor(m));
    RRT_CHECK(hf_rot == m.rot_dim(), where, "rotary dims ", m.rot_dim(), " of ", m.dh(),
              " cannot be written as a partial_rotary_factor");
  }
}

// config.json from the family's keys; the keys every transformers config spells alike
// (architectures, model_type, rope_parameters, dtype, ...) are named here.
json hf_config(const ModelSpec& spec) {
  const ModelConfig& m = spec.model;
  const HfFormat& f = family_descriptor(m.family).hf;
  json rope = {{"rope_type", "default"}, {"rope_theta", m.rope_theta}};  // transformers 5
  json c;
  c["architectures"] = json::array({f.architecture});
  c["model_type"] = f.model_type;
  c[f.sizes.vocab] = m.vocab;
  c[f.sizes.d_model] = m.d_model;
  c[f.sizes.ffn] = m.ffn;
  c[f.sizes.n_layers] = spec.positions();
  c[f.sizes.n_heads] = m.n_heads;
  c[f.sizes.max_seq_len] = m.max_seq_len;
  c[f.tied_head_key] = m.tied_head;
  c[f.activation.key] = hf_activation(f.activation, m.activation);
  // A second activation key some transformers versions read instead (the family's note says
  // why); written so that every version computes the same function.
  if (f.activation_check.key)
    c[f.activation_check.key] = hf_activation(f.activation_check, m.activation);
  c["attention_dropout"] = 0.0;
  c["torch_dtype"] = "float32";  // transformers 4
  c["dtype"] = "float32";        // transformers 5
  c["use_cache"] = true;
  if (f.kv_heads_key) c[f.kv_heads_key] = m.n_kv_heads;
  if (f.head_dim != HfHeadDim::quotient) c[f.head_dim_key] = m.dh();
  c[f.norm_eps_key] = m.norm_eps;
  c[f.rope_theta_key] = m.rope_theta;  // transformers 4
  if (f.rotary_fraction_key) {
    rope["partial_rotary_factor"] = partial_rotary_factor(m);
    c[f.rotary_fraction_key] = partial_rotary_factor(m);  // transformers 4
  }
  if (f.parallel_residual_key) c[f.parallel_residual_key] = m.parallel_residual;
  for (const HfFlag& flag : f.flags)
    if (flag.written) c[flag.key] = flag.required;
  for (const HfConstant& k : f.constants) c[k.key] = json::parse(k.json);
  // RoPE scaling: the keys transformers' rope type reads, in rope_parameters (transformers 5)
  // and rope_scaling (transformers 4; null when plain).
  const ops::RopeScaling& rs = m.rope_scaling;
  if (rs.type != ops::RopeScalingType::none) {
    json scaling = {{"rope_type", to_string(rs.type)}, {"factor", rs.factor}};
    if (rs.type == ops::RopeScalingType::llama3) {
      scaling["low_freq_factor"] = rs.low_freq_factor;
      scaling["high_freq_factor"] = rs.high_freq_factor;
      scaling["original_max_position_embeddings"] = rs.original_max_positions;
    }
    if (rs.type == ops::RopeScalingType::dynamic)
      RRT_CHECK(rs.original_max_positions == m.max_seq_len, "export",
                "dynamic RoPE scaling "
                "from ",
                rs.original_max_positions,
                " positions cannot be written: transformers "
                "scales from max_position_embeddings (",
                m.max_seq_len, ")");
    rope.update(scaling);
    c["rope_scaling"] = scaling;
  }
  for (const HfUnsupportedKey& k : f.unsupported) c[k.key] = nullptr;
  if (f.query_scale_key) {
    // transformers' config field is an int.
    const double scalar =
        m.query_pre_attn_scalar > 0 ? m.query_pre_attn_scalar : static_cast<double>(m.dh());
    RRT_CHECK(scalar == std::floor(scalar), "export", f.query_scale_key,
              " must be a whole number in ", f.architecture, "'s config; the model has "
              "model.query_pre_attn_scalar ", scalar);
    c[f.query_scale_key] = static_cast<int64_t>(scalar);
  }
  if (f.sliding_pattern_default > 0) {
    // Without a window every layer is a full one (and sliding_window a placeholder transformers
    // then never reads for a mask).
    json types = json::array();
    for (int64_t l = 0; l < spec.positions(); ++l)
      types.push_back(m.window_at(l) > 0 ? "sliding_attention" : "full_attention");
    c["layer_types"] = types;
    c["sliding_window"] = m.sliding_window > 0 ? m.sliding_window : m.max_seq_len;
  }
  if (f.rope_local_theta_key) {
    const double local = m.rope_local_theta > 0 ? m.rope_local_theta : m.rope_theta;
    c[f.rope_local_theta_key] = local;  // transformers 4
    c["rope_parameters"] = {
        {"full_attention", rope},
        {"sliding_attention", {{"rope_type", "default"}, {"rope_theta", local}}}};
    return c;
  }
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
    out_.push_back({hf, "F32", s.vec(), params_.value(i)});
    written_.insert(rrt_name);
  }
  void add_computed(const std::string& hf, std::vector<int64_t> shape, std::vector<float> data,
                    const std::vector<std::string>& from) {
    owned_.push_back(std::move(data));  // deque: earlier elements keep their addresses
    out_.push_back({hf, "F32", std::move(shape), owned_.back().data()});
    written_.insert(from.begin(), from.end());
  }
  void check_all_written() const {
    for (const ParamInfo& p : params_.registry().params()) {
      if (p.kind == ParamKind::lora_a || p.kind == ParamKind::lora_b) continue;  // merged
      RRT_CHECK(written_.count(p.name), "export", "parameter '", p.name,
                "' has no HF tensor "
                "(an internal error: extend its family's table in model/families.cpp)");
    }
  }
  const std::vector<SafetensorOut>& tensors() const { return out_; }

 private:
  const ParameterSet& params_;
  std::vector<SafetensorOut> out_;
  std::deque<std::vector<float>> owned_;
  std::set<std::string> written_;
};

// Where plain-model parameter `name` (of layer l of the plain model; -1: not a layer's) comes
// from in the recursive model: the tied block weight (with the position's LoRA merged when it
// has one), the tied or per-loop norm or bias, or the same name outside the layers.
struct Source {
  std::string param;
  bool merge = false;  // merged_weight(proj) rather than the parameter itself
  Proj proj = Proj::q;
};

Source source_of(const ModelSpec& spec, const std::string& name, int64_t l) {
  if (l < 0) return {name};
  const RecursionConfig& rc = spec.recursion;
  const Position pos = position_of(rc, l);
  for (int j = 0; j < kNumProj; ++j) {
    const Proj p = static_cast<Proj>(j);
    if (name == ParamRegistry::block_name(l, p))
      return {ParamRegistry::block_name(pos.layer, p), spec.lora_rank(p) > 0, p};
    if (name == ParamRegistry::bias_name(l, p))
      return {ParamRegistry::bias_name(pos.layer, p, pos.loop, rc.per_loop_norms)};
  }
  for (bool attn : {true, false})
    for (bool bias : {false, true})
      if (name == ParamRegistry::norm_name(l, -1, attn, false, bias))
        return {ParamRegistry::norm_name(pos.layer, pos.loop, attn, rc.per_loop_norms, bias)};
  for (bool q : {true, false})
    if (name == ParamRegistry::qk_norm_name(l, -1, q, false))
      return {ParamRegistry::qk_norm_name(pos.layer, pos.loop, q, rc.per_loop_norms)};
  for (bool attn : {true, false})
    if (name == ParamRegistry::post_norm_name(l, -1, attn, false))
      return {ParamRegistry::post_norm_name(pos.layer, pos.loop, attn, rc.per_loop_norms)};
  RRT_FAIL("export", "no source is known for '", name,
           "' (an internal error: extend source_of in model/hf_export.cpp)");
}

// The plain model that the export describes: every position its own layer, no LoRA.
ModelSpec plain_spec(const ModelSpec& spec) {
  ModelSpec plain;
  plain.model = spec.model;
  plain.model.n_layers = spec.positions();
  plain.recursion.block_layers = spec.positions();
  plain.recursion.loops = 1;
  return plain;
}

// Adds the HF tensor `t` of the plain model: the parameter itself where it is one parameter
// stored as it is, else its rows assembled from the (merged) sources.
void add_tensor(ExportTensors& out, const ModelSpec& spec, const ParameterSet& params,
                const ParamRegistry& plain, const FileTensor& t) {
  std::vector<Source> sources;
  std::vector<std::vector<int64_t>> parts;
  std::vector<std::string> from;
  for (const std::string& p : t.params) {
    sources.push_back(source_of(spec, p, t.layer));
    parts.push_back(plain[plain.index(p)].shape.vec());
    from.push_back(sources.back().param);
  }
  if (t.rule->rows == RowLayout::as_is && !sources[0].merge) {
    out.add_param(t.file, sources[0].param);
    return;
  }
  std::vector<std::vector<float>> merged(sources.size());
  std::vector<const float*> in;
  for (size_t j = 0; j < sources.size(); ++j) {
    if (sources[j].merge) {
      merged[j] = merged_weight(spec, params, t.layer, sources[j].proj);
      in.push_back(merged[j].data());
    } else {
      in.push_back(params.value(sources[j].param));
    }
  }
  std::vector<float> rows = t.rule->rows == RowLayout::as_is
                                ? std::move(merged[0])
                                : pack_rows(t.rule->rows, spec.model, parts, in);
  out.add_computed(t.file, file_shape(t, parts), std::move(rows), from);
}

void write_config(const ModelSpec& spec, const std::string& out_dir) {
  // A temporary name of this process's own (core/durable_file.h), fsynced, then renamed.
  write_file_atomically((fs::path(out_dir) / "config.json").string(),
                        hf_config(spec).dump(2) + "\n");
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

void export_hf(const ModelSpec& spec, const ParameterSet& params, const std::string& out_dir,
               bool overwrite) {
  validate(spec);
  check_hf_expressible(spec.model, "export " + out_dir);
  prepare_dir(out_dir, overwrite);

  const HfFormat& f = family_descriptor(spec.model.family).hf;
  const ParamRegistry plain(plain_spec(spec));
  ExportTensors out(params);
  for (const FileTensor& t : expand_tensors(f.tensors, plain, spec.positions(), f.architecture))
    add_tensor(out, spec, params, plain, t);
  out.check_all_written();

  write_safetensors((fs::path(out_dir) / "model.safetensors").string(), out.tensors(),
                    {{"format", "pt"}});
  write_config(spec, out_dir);
}

}  // namespace rrt
