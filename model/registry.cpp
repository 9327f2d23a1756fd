#include "model/registry.h"

#include "core/error.h"

namespace rrt {

std::string ParamRegistry::block_name(int64_t layer, Proj p) {
  const char* group = is_attention_proj(p) ? "attn" : "mlp";
  return "block." + std::to_string(layer) + "." + group + "." + kProjNames[static_cast<int>(p)] +
         ".weight";
}

std::string ParamRegistry::norm_name(int64_t layer, int64_t loop, bool attn, bool per_loop) {
  std::string which = attn ? "attn_norm" : "mlp_norm";
  if (per_loop) return "loop." + std::to_string(loop) + ".block." + std::to_string(layer) + "." + which + ".weight";
  return "block." + std::to_string(layer) + "." + which + ".weight";
}

std::string ParamRegistry::lora_name(int64_t loop, int64_t layer, Proj p, bool a) {
  return "lora." + std::to_string(loop) + "." + std::to_string(layer) + "." +
         kProjNames[static_cast<int>(p)] + (a ? ".A" : ".B");
}

ParamRegistry::ParamRegistry(const ModelSpec& spec) {
  validate(spec);
  const ModelConfig& m = spec.model;
  const RecursionConfig& r = spec.recursion;
  add({"embed.weight", Shape{m.vocab, m.d_model}, ParamKind::embedding});
  for (int64_t b = 0; b < r.block_layers; ++b) {
    if (!r.per_loop_norms)
      add({norm_name(b, -1, true, false), Shape{m.d_model}, ParamKind::norm, -1, b, false});
    for (int p = 0; p < 4; ++p) {
      auto [out, in] = proj_shape(m, static_cast<Proj>(p));
      add({block_name(b, static_cast<Proj>(p)), Shape{out, in}, ParamKind::tied_block, -1, b});
    }
    if (!r.per_loop_norms)
      add({norm_name(b, -1, false, false), Shape{m.d_model}, ParamKind::norm, -1, b, false});
    for (int p = 4; p < kNumProj; ++p) {
      auto [out, in] = proj_shape(m, static_cast<Proj>(p));
      add({block_name(b, static_cast<Proj>(p)), Shape{out, in}, ParamKind::tied_block, -1, b});
    }
  }
  // Per-position parameters in unrolled order: LoRA (and norms when they are per loop).
  for (int64_t l = 0; l < spec.positions(); ++l) {
    Position pos = position_of(r, l);
    if (r.per_loop_norms) {
      add({norm_name(pos.layer, pos.loop, true, true), Shape{m.d_model}, ParamKind::norm, pos.loop,
           pos.layer, false});
      add({norm_name(pos.layer, pos.loop, false, true), Shape{m.d_model}, ParamKind::norm,
           pos.loop, pos.layer, false});
    }
    for (int p = 0; p < kNumProj; ++p) {
      int64_t rank = spec.lora.rank(static_cast<Proj>(p));
      if (rank == 0) continue;
      auto [out, in] = proj_shape(m, static_cast<Proj>(p));
      add({lora_name(pos.loop, pos.layer, static_cast<Proj>(p), true), Shape{rank, in},
           ParamKind::lora_a, pos.loop, pos.layer});
      add({lora_name(pos.loop, pos.layer, static_cast<Proj>(p), false), Shape{out, rank},
           ParamKind::lora_b, pos.loop, pos.layer});
    }
  }
  add({"final_norm.weight", Shape{m.d_model}, ParamKind::final_norm, -1, -1, false});
  if (!m.tied_head) add({"head.weight", Shape{m.vocab, m.d_model}, ParamKind::head});
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
