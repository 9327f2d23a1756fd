// The parts of model/cuda/device_model.h that need no GPU, compiled in every build: the
// train.recompute parser and the FLOP count of the MFU convention.
#include <sstream>

#include "core/error.h"
#include "model/cuda/device_model.h"

namespace rrt {

std::vector<bool> parse_recompute(const std::string& value, int64_t positions) {
  if (value == "none" || value.empty()) return std::vector<bool>(static_cast<size_t>(positions));
  if (value == "all") return std::vector<bool>(static_cast<size_t>(positions), true);
  std::vector<bool> marked(static_cast<size_t>(positions), false);
  std::stringstream in(value);
  std::string item;
  while (std::getline(in, item, ',')) {
    size_t used = 0;
    long long l = -1;
    try {
      l = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    RRT_CHECK(used > 0 && item.find_first_not_of(" 0123456789") == std::string::npos && l >= 0 &&
                  l < positions,
              "train.recompute", "'", item, "' in '", value, "' is not an unrolled position 0..",
              positions - 1, "; use none, all, or positions such as 0,1,5");
    marked[static_cast<size_t>(l)] = true;
  }
  return marked;
}

double model_train_flops(const ModelSpec& spec, int64_t N, int64_t T) {
  const ModelConfig& m = spec.model;
  double per_token = 0;  // multiply-adds of one forward, per token
  for (int64_t l = 0; l < spec.positions(); ++l)
    for (int j = 0; j < kNumProj; ++j) {
      if (!m.has_proj(static_cast<Proj>(j))) continue;
      auto [out, in] = proj_shape(m, static_cast<Proj>(j));
      const int64_t r = spec.lora_rank(static_cast<Proj>(j));
      per_token += static_cast<double>(out * in + r * (in + out));
    }
  per_token += static_cast<double>(m.vocab * m.d_model);
  // Causal attention: QK^T and PV over on average (T+1)/2 keys per query.
  const double attn = static_cast<double>(spec.positions()) * 2.0 * m.q_dim() * (T + 1) / 2.0;
  return 6.0 * (per_token + attn) * static_cast<double>(N * T);
}

}  // namespace rrt
