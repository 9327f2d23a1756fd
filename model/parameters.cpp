#include "model/parameters.h"

#include <algorithm>
#include <cmath>

#include "core/rng.h"
#include "core/safetensors.h"

namespace rrt {

ParameterSet::ParameterSet(const ModelSpec& spec, Grads grads)
    : registry_(spec),
      has_grads_(grads == Grads::with),
      unit_offset_norms_(spec.model.norm_unit_offset) {
  for (const auto& p : registry_.params()) {
    values_.plan(p.name, p.shape);
    if (has_grads_) grads_.plan(p.name, p.shape);
  }
  values_.allocate();
  if (has_grads_) grads_.allocate();
}

void ParameterSet::init(const InitConfig& cfg) {
  for (int i = 0; i < registry_.size(); ++i) {
    const ParamInfo& p = registry_[i];
    float* x = value(i);
    const int64_t n = p.shape.numel();
    switch (p.kind) {
      case ParamKind::norm:
      case ParamKind::final_norm:
        std::fill(x, x + n, unit_offset_norms_ ? 0.0f : 1.0f);
        break;
      case ParamKind::bias:
        std::fill(x, x + n, 0.0f);
        break;
      case ParamKind::lora_a:  // Kaiming-like: keeps A x at unit scale per rank
        fill_normal(x, n, 0.0, 1.0 / std::sqrt(static_cast<double>(p.shape[1])), cfg.seed, i);
        break;
      case ParamKind::lora_b:
        if (cfg.lora_b_zero)
          std::fill(x, x + n, 0.0f);
        else
          fill_normal(x, n, 0.0, cfg.std, cfg.seed, i);
        break;
      default:
        fill_normal(x, n, 0.0, cfg.std, cfg.seed, i);
    }
  }
}

void ParameterSet::load(const SafetensorsFile& file) {
  for (int i = 0; i < registry_.size(); ++i) {
    const ParamInfo& p = registry_[i];
    RRT_CHECK(file.has(p.name), "load", "checkpoint has no tensor '", p.name,
              "'; does its config (loops, block layers, LoRA ranks) match this model?");
    const SafetensorInfo& t = file.info(p.name);
    bool same = static_cast<int>(t.shape.size()) == p.shape.ndim;
    for (int d = 0; same && d < p.shape.ndim; ++d) same = t.shape[d] == p.shape[d];
    RRT_CHECK(same, "load", "tensor '", p.name, "' has a different shape in the checkpoint than ",
              p.shape.str(), " in the model");
    file.read_f32_into(p.name, value(i), p.shape.numel());
  }
}

void ParameterSet::save(const std::string& path,
                        const std::map<std::string, std::string>& metadata) const {
  std::vector<SafetensorOut> out;
  for (int i = 0; i < registry_.size(); ++i) {
    const ParamInfo& p = registry_[i];
    out.push_back({p.name, "F32", p.shape.vec(), value(i)});
  }
  write_safetensors(path, out, metadata);
}

}  // namespace rrt
