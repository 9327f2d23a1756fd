#include "inference/weights.h"

namespace rrt::inference {

ModelWeights bind_weights(const ModelSpec& spec, const ParameterSet& params) {
  const ModelConfig& m = spec.model;
  const RecursionConfig& r = spec.recursion;
  ModelWeights w;
  w.spec = spec;
  auto value = [&](const std::string& name) -> const float* { return params.value(name); };
  for (int64_t l = 0; l < spec.positions(); ++l) {
    const Position pos = position_of(r, l);
    LayerParams p;
    p.attn_norm = value(ParamRegistry::norm_name(pos.layer, pos.loop, true, r.per_loop_norms));
    p.mlp_norm = value(ParamRegistry::norm_name(pos.layer, pos.loop, false, r.per_loop_norms));
    if (m.norm == Norm::layer) {
      p.attn_norm_bias =
          value(ParamRegistry::norm_name(pos.layer, pos.loop, true, r.per_loop_norms, true));
      p.mlp_norm_bias =
          value(ParamRegistry::norm_name(pos.layer, pos.loop, false, r.per_loop_norms, true));
    }
    if (m.qk_norm) {
      p.q_norm = value(ParamRegistry::qk_norm_name(pos.layer, pos.loop, true, r.per_loop_norms));
      p.k_norm = value(ParamRegistry::qk_norm_name(pos.layer, pos.loop, false, r.per_loop_norms));
    }
    if (m.sandwich_norm) {
      p.attn_post_norm =
          value(ParamRegistry::post_norm_name(pos.layer, pos.loop, true, r.per_loop_norms));
      p.mlp_post_norm =
          value(ParamRegistry::post_norm_name(pos.layer, pos.loop, false, r.per_loop_norms));
    }
    p.local_rope = m.local_rope_at(l);
    for (int j = 0; j < kNumProj; ++j) {
      const Proj proj = static_cast<Proj>(j);
      if (!m.has_proj(proj)) continue;
      p.weight[j] = value(ParamRegistry::block_name(pos.layer, proj));
      if (m.has_bias(proj))
        p.bias[j] = value(ParamRegistry::bias_name(pos.layer, proj, pos.loop, r.per_loop_norms));
      p.rank[j] = spec.lora_rank(proj);
      p.scale[j] = static_cast<float>(spec.lora_scale(proj));
      if (p.rank[j] > 0) {
        p.lora_a[j] = value(ParamRegistry::lora_name(pos.loop, pos.layer, proj, true));
        p.lora_b[j] = value(ParamRegistry::lora_name(pos.loop, pos.layer, proj, false));
      }
    }
    w.positions.push_back(p);
  }
  w.embed = value("embed.weight");
  w.final_norm = value("final_norm.weight");
  if (m.norm == Norm::layer) w.final_norm_bias = value("final_norm.bias");
  w.head = value(m.tied_head ? "embed.weight" : "head.weight");
  const int64_t K = r.loops;
  w.exit_lora_a.assign(static_cast<size_t>(K), nullptr);
  w.exit_lora_b.assign(static_cast<size_t>(K), nullptr);
  w.exit_lora_rank = spec.exit_head.lora_rank;
  const ParamRegistry& reg = params.registry();
  for (int64_t k = 1; k < K; ++k) {
    const std::string a = ParamRegistry::head_lora_name(k, true);
    if (!reg.has(a)) continue;
    w.exit_lora_a[static_cast<size_t>(k - 1)] = value(a);
    w.exit_lora_b[static_cast<size_t>(k - 1)] = value(ParamRegistry::head_lora_name(k, false));
  }
  return w;
}

}  // namespace rrt::inference
