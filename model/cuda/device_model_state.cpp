// The device model's state between steps (model/cuda/device_model.h): host <-> device copies of
// the weights, gradients and AdamW moments (the host arena's layout, so whole-arena copies), and
// the optimizer step: zeroing, the global gradient norm, clipping and the fused AdamW.
#include <algorithm>
#include <cmath>

#include "core/arena.h"
#include "core/cuda/cuda_check.h"
#include "model/cuda/device_model.h"
#include "model/cuda/device_model_impl.h"
#include "model/optimizer.h"
#include "model/parameters.h"
#include "ops/cuda/elementwise.h"
#include "ops/cuda/vector_ops.h"

namespace rrt {

using device_model_detail::kWhere;

const ModelSpec& DeviceModel::spec() const { return impl_->spec; }
const LossBreakdown& DeviceModel::last_losses() const { return impl_->core->last_losses(); }
int64_t DeviceModel::steps_taken() const { return impl_->adam_step; }
float* DeviceModel::device_gradients() { return impl_->grad; }
int64_t DeviceModel::gradient_floats() const { return impl_->arena_floats; }
int64_t DeviceModel::parameter_bytes() const { return static_cast<int64_t>(impl_->param_bytes); }
int64_t DeviceModel::activation_bytes() const {
  return impl_->core->activation_bytes() + impl_->core->scratch_bytes();
}

namespace {
// ParameterSet has no const arena accessor; reading through it changes nothing.
const Arena& values_of(const ParameterSet& p) {
  return const_cast<ParameterSet&>(p).values_arena();
}

void check_same_layout(const ParameterSet& params, int64_t floats) {
  RRT_CHECK(values_of(params).total_bytes() == floats * static_cast<int64_t>(sizeof(float)), kWhere,
            "the host parameter set (", values_of(params).total_bytes(),
            " bytes) is not this model's (", floats * static_cast<int64_t>(sizeof(float)),
            " bytes): built from another spec");
}
}  // namespace

void DeviceModel::upload(const ParameterSet& params) {
  Impl& s = *impl_;
  check_same_layout(params, s.arena_floats);
  if (s.opt.forward_only) {
    // No masters: the fp32 values go straight to the bf16 compute copies.
    s.backend.upload_bf16(s.compute, static_cast<const float*>(values_of(params).base()),
                          s.arena_floats, "upload staging");
    return;
  }
  RRT_CUDA_CHECK(cudaMemcpy(s.master, values_of(params).base(), sizeof(float) * s.arena_floats,
                            cudaMemcpyHostToDevice));
  ops::cuda::to_bf16(s.master, s.compute, s.arena_floats, s.backend.stream());
  RRT_CUDA_CHECK(cudaStreamSynchronize(s.backend.stream()));
}

void DeviceModel::download(ParameterSet& params) const {
  const Impl& s = *impl_;
  RRT_CHECK(!s.opt.forward_only, kWhere, "a forward-only model keeps no fp32 masters to download");
  check_same_layout(params, s.arena_floats);
  RRT_CUDA_CHECK(cudaMemcpy(params.values_arena().base(), s.master, sizeof(float) * s.arena_floats,
                            cudaMemcpyDeviceToHost));
}

void DeviceModel::download_grads(ParameterSet& params) const {
  const Impl& s = *impl_;
  check_same_layout(params, s.arena_floats);
  RRT_CHECK(params.has_grads(), kWhere, "the host set holds no gradients");
  RRT_CHECK(s.grad != nullptr, kWhere, "a forward-only model has no gradients");
  RRT_CUDA_CHECK(cudaMemcpy(params.grads_arena().base(), s.grad, sizeof(float) * s.arena_floats,
                            cudaMemcpyDeviceToHost));
}

void DeviceModel::upload_optimizer(AdamW& opt) {
  Impl& s = *impl_;
  RRT_CHECK(!opt.sharded(), kWhere, "a sharded (ZeRO-1) optimizer cannot move to one GPU");
  for (int i = 0; i < s.registry.size(); ++i) {
    const size_t bytes = sizeof(float) * s.registry[i].shape.numel();
    RRT_CUDA_CHECK(cudaMemcpy(s.adam_m + s.offset[i], opt.first_moment().view(i).f32(), bytes,
                              cudaMemcpyHostToDevice));
    RRT_CUDA_CHECK(cudaMemcpy(s.adam_v + s.offset[i], opt.second_moment().view(i).f32(), bytes,
                              cudaMemcpyHostToDevice));
  }
  s.adam_step = opt.steps_taken();
}

void DeviceModel::download_optimizer(AdamW& opt) const {
  const Impl& s = *impl_;
  RRT_CHECK(!opt.sharded(), kWhere, "a sharded (ZeRO-1) optimizer cannot take one GPU's state");
  for (int i = 0; i < s.registry.size(); ++i) {
    const size_t bytes = sizeof(float) * s.registry[i].shape.numel();
    RRT_CUDA_CHECK(cudaMemcpy(opt.first_moment().view(i).f32(), s.adam_m + s.offset[i], bytes,
                              cudaMemcpyDeviceToHost));
    RRT_CUDA_CHECK(cudaMemcpy(opt.second_moment().view(i).f32(), s.adam_v + s.offset[i], bytes,
                              cudaMemcpyDeviceToHost));
  }
  opt.set_steps_taken(s.adam_step);
}

void DeviceModel::zero_grads() {
  Impl& s = *impl_;
  if (s.grad == nullptr) return;  // forward only
  RRT_CUDA_CHECK(cudaMemsetAsync(s.grad, 0, sizeof(float) * s.arena_floats, s.backend.stream()));
}

double DeviceModel::grad_norm() {
  Impl& s = *impl_;
  return std::sqrt(
      ops::cuda::sum_squares(s.grad, s.arena_floats, s.norm_workspace, s.backend.stream()));
}

void DeviceModel::scale_grads(float factor) {
  Impl& s = *impl_;
  ops::cuda::scale_inplace(s.grad, s.arena_floats, factor, s.backend.stream());
}

void DeviceModel::adamw_step(const ops::AdamWHyper& hyper, double lr) {
  Impl& s = *impl_;
  RRT_CHECK(!s.opt.forward_only, kWhere, "a forward-only model (a teacher) cannot train");
  ++s.adam_step;
  ops::AdamWHyper h = hyper;
  if (lr >= 0) h.lr = lr;
  for (int i = 0; i < s.registry.size(); ++i) {
    if (!s.registry[i].trainable) continue;
    const int64_t at = s.offset[i];
    ops::cuda::adamw_step(s.master + at, s.grad + at, s.adam_m + at, s.adam_v + at, s.compute + at,
                          s.registry[i].shape.numel(), h, s.registry[i].decay, s.adam_step,
                          s.backend.stream());
  }
}

bool device_model_compiled() { return true; }

}  // namespace rrt
