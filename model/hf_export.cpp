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
#include "model/unrolled_tensors.h"

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
    RRT_CHECK(m.sliding_window == 0, where, arch,
              " as rrt exports it has no sliding window, but the model has model.sliding_window ",
              m.sliding_window);
  // The attention masks' keys: only the families whose config says them write them, and
  // dropping them would export another model.
  if (!f.attn_softcap_key)
    RRT_CHECK(m.attn_logit_softcapping == 0, where, arch,
              " as rrt exports it has no attention logit soft-capping, but the model has "
              "model.attn_logit_softcapping ",
              m.attn_logit_softcapping);
  if (!f.final_softcap_key)
    RRT_CHECK(m.final_logit_softcapping == 0, where, arch,
              " as rrt exports it has no final logit soft-capping, but the model has "
              "model.final_logit_softcapping ",
              m.final_logit_softcapping, "; export it as gemma2 or gemma3, whose configs have it");
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
  if (f.attn_softcap_key)  // null, not absent: Gemma 2's absent key is a cap of 50
    c[f.attn_softcap_key] =
        m.attn_logit_softcapping > 0 ? json(m.attn_logit_softcapping) : json(nullptr);
  if (f.final_softcap_key)  // likewise: Gemma 2's absent key is a cap of 30
    c[f.final_softcap_key] =
        m.final_logit_softcapping > 0 ? json(m.final_logit_softcapping) : json(nullptr);
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
  fs::remove(fs::path(out_dir) / "generation_config.json", ec);  // written again when known
}

void write_config(const ModelSpec& spec, const HfExportOptions& o, const std::string& out_dir) {
  json c = hf_config(spec);
  const char* name = o.dtype == DType::bf16 ? "bfloat16" : "float32";
  c["torch_dtype"] = name;  // transformers 4
  c["dtype"] = name;        // transformers 5
  json generation = {{"_from_model_config", true}};
  for (const auto& [key, id] : {std::pair{"bos_token_id", o.bos_id}, {"eos_token_id", o.eos_id}})
    if (id >= 0) c[key] = generation[key] = id;
  // A temporary name of this process's own (core/durable_file.h), fsynced, then renamed.
  write_file_atomically((fs::path(out_dir) / "config.json").string(), c.dump(2) + "\n");
  if (o.eos_id >= 0)
    write_file_atomically((fs::path(out_dir) / "generation_config.json").string(),
                          generation.dump(2) + "\n");
}

}  // namespace

void export_hf(const ModelSpec& spec, const ParameterSet& params, const std::string& out_dir,
               const HfExportOptions& options) {
  const DType dtype = options.dtype;
  const bool overwrite = options.overwrite;
  RRT_CHECK(dtype == DType::f32 || dtype == DType::bf16, "export " + out_dir,
            "weights are written as fp32 or bf16, not ", dtype_name(dtype));
  validate(spec);
  check_hf_expressible(spec.model, "export " + out_dir);
  prepare_dir(out_dir, overwrite);

  const HfFormat& f = family_descriptor(spec.model.family).hf;
  const UnrolledTensors unrolled(spec, params, f.tensors, f.architecture);
  std::deque<std::vector<uint16_t>> rounded;  // the bf16 copies, alive until written
  std::vector<SafetensorOut> out;
  for (const UnrolledTensor& t : unrolled.tensors()) {
    if (dtype == DType::f32) {
      out.push_back({t.name, "F32", t.shape, t.data});
      continue;
    }
    rounded.push_back(to_bf16_bits(t.data, t.numel()));
    out.push_back({t.name, "BF16", t.shape, rounded.back().data()});
  }
  write_safetensors((fs::path(out_dir) / "model.safetensors").string(), out, {{"format", "pt"}});
  write_config(spec, options, out_dir);
}

}  // namespace rrt
