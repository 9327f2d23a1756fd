#include "model/registry.h"

#include "core/error.h"

namespace rrt {

std::string ParamRegistry::block_name(int64_t layer, Proj p) {
  const char* group = is_attention_proj(p) ? "attn" : "mlp";
  return "block." + std::to_string(layer) + "." + group + "." + kProjNames[static_cast<int>(p)] +
         ".weight";
}

std::string ParamRegistry::bias_name(int64_t layer, Proj p, int64_t loop, bool per_loop) {
  std::string name = block_name(layer, p);
  name.replace(name.size() - 6, 6, "bias");
  return per_loop ? "loop." + std::to_string(loop) + "." + name : name;
}

std::string ParamRegistry::norm_name(int64_t layer, int64_t loop, bool attn, bool per_loop,
                                     bool bias) {
  const std::string which =
      std::string(attn ? "attn_norm" : "mlp_norm") + (bias ? ".bias" : ".weight");
  if (per_loop)
    return "loop." + std::to_string(loop) + ".block." + std::to_string(layer) + "." + which;
  return "block." + std::to_string(layer) + "." + which;
}

std::string ParamRegistry::qk_norm_name(int64_t layer, int64_t loop, bool q, bool per_loop) {
  const std::string name =
      "block." + std::to_string(layer) + (q ? ".attn.q_norm.weight" : ".attn.k_norm.weight");
  return per_loop ? "loop." + std::to_string(loop) + "." + name : name;
}

std::string ParamRegistry::post_norm_name(int64_t layer, int64_t loop, bool attn, bool per_loop) {
  const std::string name = "block." + std::to_string(layer) +
                           (attn ? ".attn_post_norm.weight" : ".mlp_post_norm.weight");
  return per_loop ? "loop." + std::to_string(loop) + "." + name : name;
}

std::string ParamRegistry::lora_name(int64_t loop, int64_t layer, Proj p, bool a) {
  return "lora." + std::to_string(loop) + "." + std::to_string(layer) + "." +
         kProjNames[static_cast<int>(p)] + (a ? ".A" : ".B");
}

ParamRegistry::ParamRegistry(const ModelSpec& spec) {
  validate(spec);
  const ModelConfig& m = spec.model;
  const RecursionConfig& r = spec.recursion;
  const bool norm_bias = m.norm == Norm::layer;
  // A norm's weight (and LayerNorm bias) at block layer b, or at position (k, b) when per loop.
  auto add_norm = [&](int64_t b, int64_t k, bool attn) {
    add({norm_name(b, k, attn, r.per_loop_norms), Shape{m.d_model}, ParamKind::norm, k, b, false});
    if (norm_bias)
      add({norm_name(b, k, attn, r.per_loop_norms, true), Shape{m.d_model}, ParamKind::bias, k, b,
           false});
    // Qwen3's q and k head norms belong to the attention half, beside its input norm.
    if (attn && m.qk_norm)
      for (bool q : {true, false})
        add({qk_norm_name(b, k, q, r.per_loop_norms), Shape{m.dh()}, ParamKind::norm, k, b, false});
    // Gemma 2 / 3's norm on the half's output.
    if (m.sandwich_norm)
      add({post_norm_name(b, k, attn, r.per_loop_norms), Shape{m.d_model}, ParamKind::norm, k, b,
           false});
  };
  // The projections of one half of the layer (attention: q..o, MLP: gate..down) with biases.
  auto add_projs = [&](int64_t b, int first, int last) {
    for (int p = first; p <= last; ++p) {
      const Proj proj = static_cast<Proj>(p);
      if (!m.has_proj(proj)) continue;
      auto [out, in] = proj_shape(m, proj);
      add({block_name(b, proj), Shape{out, in}, ParamKind::tied_block, -1, b});
      if (m.has_bias(proj) && !r.per_loop_norms)
        add({bias_name(b, proj), Shape{out}, ParamKind::bias, -1, b, false});
    }
  };
  // Per-loop vectors: a position's own projection biases (with its own norms).
  auto add_loop_biases = [&](int64_t b, int64_t k) {
    for (int p = 0; p < kNumProj; ++p) {
      const Proj proj = static_cast<Proj>(p);
      if (!m.has_bias(proj)) continue;
      add({bias_name(b, proj, k, true), Shape{proj_shape(m, proj)[0]}, ParamKind::bias, k, b,
           false});
    }
  };
  add({"embed.weight", Shape{m.vocab, m.d_model}, ParamKind::embedding});
  for (int64_t b = 0; b < r.block_layers; ++b) {
    if (!r.per_loop_norms) add_norm(b, -1, true);
    add_projs(b, static_cast<int>(Proj::q), static_cast<int>(Proj::o));
    if (!r.per_loop_norms) add_norm(b, -1, false);
    add_projs(b, static_cast<int>(Proj::gate), static_cast<int>(Proj::down));
  }
  // Per-position parameters in unrolled order: LoRA (and norms when they are per loop).
  for (int64_t l = 0; l < spec.positions(); ++l) {
    Position pos = position_of(r, l);
    if (r.per_loop_norms) {
      add_norm(pos.layer, pos.loop, true);
      add_norm(pos.layer, pos.loop, false);
      add_loop_biases(pos.layer, pos.loop);
    }
    for (int p = 0; p < kNumProj; ++p) {
      const Proj proj = static_cast<Proj>(p);
      const int64_t rank = spec.lora_rank(proj);
      if (rank == 0) continue;
      auto [out, in] = proj_shape(m, proj);
      add({lora_name(pos.loop, pos.layer, proj, true), Shape{rank, in}, ParamKind::lora_a, pos.loop,
           pos.layer});
      add({lora_name(pos.loop, pos.layer, proj, false), Shape{out, rank}, ParamKind::lora_b,
           pos.loop, pos.layer});
    }
  }
  add({"final_norm.weight", Shape{m.d_model}, ParamKind::final_norm, -1, -1, false});
  if (norm_bias) add({"final_norm.bias", Shape{m.d_model}, ParamKind::bias, -1, -1, false});
  if (!m.tied_head) add({"head.weight", Shape{m.vocab, m.d_model}, ParamKind::head});
  // Head adapters of the intermediate exits, last so that adding them changes nothing else.
  const int64_t hr = spec.exit_head.lora_rank;
  for (int64_t k : hr > 0 ? spec.exit_head.loops : std::vector<int64_t>{}) {
    add({head_lora_name(k, true), Shape{hr, m.d_model}, ParamKind::lora_a, k - 1, -1});
    add({head_lora_name(k, false), Shape{m.vocab, hr}, ParamKind::lora_b, k - 1, -1});
  }
}

std::string ParamRegistry::head_lora_name(int64_t exit_loop, bool a) {
  return "exit." + std::to_string(exit_loop) + ".head_lora." + (a ? "A" : "B");
}

void ParamRegistry::add(ParamInfo info) {
  RRT_CHECK(!has(info.name), "ParamRegistry", "parameter '", info.name, "' registered twice");
  index_[info.name] = static_cast<int>(params_.size());
  params_.push_back(std::move(info));
}

int ParamRegistry::index(const std::string& name) const {
  auto it = index_.find(name);
  RRT_CHECK(it != index_.end(), "ParamRegistry", "no parameter named '", name, "'");
  return it->second;
}

int64_t ParamRegistry::total_numel() const {
  int64_t n = 0;
  for (const auto& p : params_) n += p.shape.numel();
  return n;
}

int64_t ParamRegistry::numel_of(ParamKind kind) const {
  int64_t n = 0;
  for (const auto& p : params_)
    if (p.kind == kind) n += p.shape.numel();
  return n;
}

}  // namespace rrt
