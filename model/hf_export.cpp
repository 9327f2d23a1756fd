#include "model/hf_export.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <system_error>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/durable_file.h"
#include "core/error.h"
#include "core/safetensors.h"

namespace rrt {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// HF name of projection p in layer l.
std::string hf_proj_name(int64_t l, Proj p) {
  static constexpr const char* kHf[kNumProj] = {
      "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
      "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};
  return "model.layers." + std::to_string(l) + "." + kHf[static_cast<int>(p)] + ".weight";
}

json hf_config(const ModelSpec& spec) {
  const ModelConfig& m = spec.model;
  json c;
  c["architectures"] = json::array({"LlamaForCausalLM"});
  c["model_type"] = "llama";
  c["vocab_size"] = m.vocab;
  c["hidden_size"] = m.d_model;
  c["intermediate_size"] = m.ffn;
  c["num_hidden_layers"] = spec.positions();
  c["num_attention_heads"] = m.n_heads;
  c["num_key_value_heads"] = m.n_kv_heads;
  c["head_dim"] = m.dh();
  c["max_position_embeddings"] = m.max_seq_len;
  c["rms_norm_eps"] = m.norm_eps;
  c["rope_theta"] = m.rope_theta;  // transformers 4
  c["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", m.rope_theta}};  // 5
  c["tie_word_embeddings"] = m.tied_head;
  c["hidden_act"] = "silu";
  c["attention_bias"] = false;
  c["attention_dropout"] = 0.0;
  c["mlp_bias"] = false;
  c["pretraining_tp"] = 1;
  c["torch_dtype"] = "float32";
  c["dtype"] = "float32";
  c["use_cache"] = true;
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
  RRT_CHECK(reg.has(a_name) && reg.has(b_name), "export",
            "the model has LoRA rank ", r, " but no parameters ", a_name, " / ", b_name);
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
  RRT_CHECK(spec.model.family == Family::llama, "export " + out_dir, "family ",
            to_string(spec.model.family), " cannot be exported yet; only llama");
  RRT_CHECK(spec.model.rotary_fraction == 1.0 && !spec.model.norm_unit_offset &&
                spec.model.embed_scale == 1.0 && !spec.model.parallel_residual &&
                spec.model.activation == Activation::swiglu,
            "export " + out_dir, "the model is not a plain Llama (SwiGLU, full RoPE, no norm "
            "offset or embedding scale); LlamaForCausalLM cannot represent it");
  prepare_dir(out_dir, overwrite);

  const ModelConfig& m = spec.model;
  const RecursionConfig& rc = spec.recursion;
  std::vector<SafetensorOut> tensors;
  std::vector<std::vector<float>> merged;  // owns the merged weights
  merged.reserve(spec.positions() * kNumProj);
  auto add = [&](const std::string& hf, const std::string& rrt_name) {
    const int i = params.registry().index(rrt_name);
    const Shape& s = params.registry()[i].shape;
    tensors.push_back({hf, "F32", std::vector<int64_t>(s.dims.begin(), s.dims.begin() + s.ndim), params.value(i)});
  };
  add("model.embed_tokens.weight", "embed.weight");
  for (int64_t l = 0; l < spec.positions(); ++l) {
    const Position pos = position_of(rc, l);
    const std::string prefix = "model.layers." + std::to_string(l) + ".";
    add(prefix + "input_layernorm.weight",
        ParamRegistry::norm_name(pos.layer, pos.loop, true, rc.per_loop_norms));
    add(prefix + "post_attention_layernorm.weight",
        ParamRegistry::norm_name(pos.layer, pos.loop, false, rc.per_loop_norms));
    for (int pi = 0; pi < kNumProj; ++pi) {
      const Proj p = static_cast<Proj>(pi);
      const auto [rows, cols] = proj_shape(m, p);
      if (spec.lora_rank(p) == 0) {
        add(hf_proj_name(l, p), ParamRegistry::block_name(pos.layer, p));
      } else {
        merged.push_back(merged_weight(spec, params, l, p));
        tensors.push_back({hf_proj_name(l, p), "F32", {rows, cols}, merged.back().data()});
      }
    }
  }
  add("model.norm.weight", "final_norm.weight");
  if (!m.tied_head) add("lm_head.weight", "head.weight");

  const std::string cfg_path = (fs::path(out_dir) / "config.json").string();
  write_safetensors((fs::path(out_dir) / "model.safetensors").string(), tensors,
                    {{"format", "pt"}});
  {
    const std::string tmp = cfg_path + ".tmp";
    std::ofstream f(tmp);
    f << hf_config(spec).dump(2) << "\n";
    f.close();
    RRT_CHECK(f.good(), "export " + out_dir, "cannot write ", tmp, "; is the disk full?");
    commit_temporary_file(tmp, cfg_path, "export " + out_dir);
  }
}

}  // namespace rrt
