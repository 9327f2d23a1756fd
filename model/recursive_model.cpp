#include "model/recursive_model.h"

#include <vector>

#include "ops/logit_softcap.h"
#include "ops/matmul.h"

namespace rrt {

namespace {

// Applies the loss's TrainScope to the set's trainable flags; returns its registry for the core.
const ParamRegistry& frozen_for(ParameterSet& params, const TrainingLoss& loss) {
  const std::vector<bool> trains = trainable_under(params.registry(), loss.train);
  for (int i = 0; i < params.registry().size(); ++i)
    params.set_trainable(i, trains[static_cast<size_t>(i)]);
  return params.registry();
}

// The host arena as the core reads it: values, and gradients where a parameter trains.
ParameterBinding<CpuBackend> host_binding(const ParameterSet& params) {
  return {[&params](int i) -> const float* { return params.value(i); },
          [&params](int i) -> float* {
            return params.has_grads() && params.registry()[i].trainable ? params.grad(i) : nullptr;
          }};
}

CoreCapacity core_capacity(const ModelConfig& m, const ModelCapacity& c) {
  CoreCapacity core;
  core.max_batch = c.max_batch;
  core.max_seq = c.max_seq > 0 ? c.max_seq : m.max_seq_len;
  core.head_chunk = c.head_chunk;
  core.forward_only = c.forward_only;
  return core;
}

}  // namespace

RecursiveModel::RecursiveModel(const ModelSpec& spec, const ModelCapacity& capacity,
                               const TrainingLoss& loss)
    : spec_(spec),
      params_(spec,
              capacity.forward_only ? ParameterSet::Grads::without : ParameterSet::Grads::with),
      backend_(capacity.threads),
      core_(backend_, spec_, frozen_for(params_, loss), host_binding(params_),
            core_capacity(spec.model, capacity), loss) {}

void RecursiveModel::set_teacher(RecursiveModel* teacher) {
  core_.set_teacher(teacher != nullptr ? &teacher->core_ : nullptr);
}

const float* RecursiveModel::loop_end_residual(int64_t loop) const { return core_.loop_end(loop); }

void RecursiveModel::exit_logits(int64_t loop, const float* resid_rows, int64_t rows, float* h,
                                 float* out) const {
  const ModelConfig& m = spec_.model;
  const int64_t K = spec_.recursion.loops;
  RRT_CHECK(loop >= 1 && loop <= K, "RecursiveModel", "exit loop ", loop, " is outside 1..", K);
  if (rows <= 0) return;
  std::vector<float> stats(static_cast<size_t>(2 * rows));  // norm mean and rstd per row
  norm_forward(layer_dims(m, rows, 1), resid_rows, core_.final_norm_weight(),
               core_.final_norm_bias(), h, stats.data(), stats.data() + rows);
  ops::linear_forward<float>(h, core_.head_weight(), nullptr, out, rows, m.d_model, m.vocab, false);
  const int64_t R = spec_.exit_head.lora_rank;
  const std::string a = ParamRegistry::head_lora_name(loop, true);
  if (loop < K && R > 0 && params_.registry().has(a)) {
    // The exit's adapter, as in ops/exit_loss (scale 1): out += (h A^T) B^T.
    std::vector<float> u(static_cast<size_t>(rows * R));
    ops::gemm<float>(false, true, rows, R, m.d_model, 1.0f, h, m.d_model, params_.value(a),
                     m.d_model, 0.0f, u.data(), R);
    ops::gemm<float>(false, true, rows, m.vocab, R, 1.0f, u.data(), R,
                     params_.value(ParamRegistry::head_lora_name(loop, false)), R, 1.0f, out,
                     m.vocab);
  }
  ops::softcap_logits(out, rows * m.vocab, m.final_logit_softcapping);
}

double RecursiveModel::train_flops(int64_t N, int64_t T) const {
  const ModelConfig& m = spec_.model;
  double per_token = 0;  // multiply-adds of one forward, per token
  for (int64_t l = 0; l < spec_.positions(); ++l)
    for (int j = 0; j < kNumProj; ++j) {
      if (!m.has_proj(static_cast<Proj>(j))) continue;
      auto [out, in] = proj_shape(m, static_cast<Proj>(j));
      const int64_t r = spec_.lora_rank(static_cast<Proj>(j));
      per_token += static_cast<double>(out * in + r * (in + out));
    }
  per_token += static_cast<double>(m.vocab * m.d_model);
  // Causal attention: QK^T and PV over on average (T+1)/2 keys per query.
  const double attn = static_cast<double>(spec_.positions()) * 2.0 * m.q_dim() * (T + 1) / 2.0;
  return 6.0 * (per_token + attn) * static_cast<double>(N * T);
}

}  // namespace rrt
