// The device model (model/cuda/device_model.h): the parameter arenas on the GPU and the one model
// code, RecursiveCore (model/recursive_core_impl.h), instantiated here on the CUDA backend;
// transfers and the optimizer are device_model_state.cpp.
#include "model/cuda/device_model.h"

#include <algorithm>

#include "core/arena.h"
#include "core/cuda/cuda_check.h"
#include "core/device.h"
#include "model/cuda/device_model_impl.h"
#include "model/recursive_core_impl.h"
#include "ops/cuda/vector_ops.h"

namespace rrt {

template class RecursiveCore<CudaBackend>;

using device_model_detail::kWhere;

void DeviceModel::Impl::plan_parameters(bool measure_only) {
  // The host ParameterSet's arena, planned but not allocated: the same offsets, so upload and
  // download are single copies of the whole arena.
  Arena layout("device params");
  offset.clear();  // planned twice when measured first
  for (const auto& p : registry.params()) layout.plan(p.name, p.shape);
  for (int i = 0; i < layout.size(); ++i)
    offset.push_back(layout.offset_bytes(i) / static_cast<int64_t>(sizeof(float)));
  arena_floats = layout.total_bytes() / static_cast<int64_t>(sizeof(float));
  auto carve = [&](BufferCarver<CudaBackend::kAlign>& c) {
    if (!opt.forward_only) {
      master = c.take<float>(arena_floats);
      grad = c.take<float>(arena_floats);
      adam_m = c.take<float>(arena_floats);
      adam_v = c.take<float>(arena_floats);
    }
    compute = c.take<bf16>(arena_floats);
    norm_workspace = c.take<double>(ops::cuda::kSumSquaresBlocks + 1);
  };
  BufferCarver<CudaBackend::kAlign> measure;
  carve(measure);
  param_bytes = measure.used;
  if (measure_only) return;
  param_block = backend.allocate(param_bytes, "parameters, gradients and AdamW moments");
  BufferCarver<CudaBackend::kAlign> c{static_cast<char*>(param_block.get())};
  carve(c);
}

namespace {
// Before any cuBLAS or cuDNN handle exists: their own errors would not say that no GPU is there.
std::unique_ptr<DeviceModel::Impl> make_impl(const ModelSpec& spec, const DeviceModelOptions& o) {
  RRT_CHECK(cuda_device_count() > 0, "train.device",
            "cuda: no CUDA GPU is visible to this process (check nvidia-smi and "
            "CUDA_VISIBLE_DEVICES), or set train.device: cpu");
  return std::make_unique<DeviceModel::Impl>(spec, o);
}
}  // namespace

DeviceModel::DeviceModel(const ModelSpec& spec, const DeviceModelOptions& options,
                         const TrainingLoss& loss)
    : impl_(make_impl(spec, options)) {
  Impl& s = *impl_;
  validate(s.spec);
  const ModelConfig& m = s.spec.model;
  if (s.opt.max_seq <= 0) s.opt.max_seq = m.max_seq_len;
  RRT_CHECK(s.opt.max_batch > 0 && s.opt.max_seq <= m.max_seq_len, kWhere, "capacity ",
            s.opt.max_batch, " x ", s.opt.max_seq, " must fit max_seq_len ", m.max_seq_len);
  RRT_CHECK(!s.opt.forward_only || loss.plain(), kWhere,
            "a forward-only model (a teacher) trains nothing: it takes no training loss");
  const std::vector<bool> trains = trainable_under(s.registry, loss.train);
  for (int i = 0; i < s.registry.size(); ++i)
    s.registry.set_trainable(i, trains[static_cast<size_t>(i)]);
  // Shapes no attention path can run (cuDNN, or rrt's fallback where cuDNN cannot serve them)
  // fail here, before any memory is taken.
  ops::cuda::check_attention_shape(
      {s.opt.max_batch, s.opt.max_seq, m.n_heads, m.n_kv_heads, m.dh()},
      /*backward=*/!s.opt.forward_only);
  CoreCapacity cap;
  cap.max_batch = s.opt.max_batch;
  cap.max_seq = s.opt.max_seq;
  cap.head_chunk = s.opt.head_chunk;
  cap.forward_only = s.opt.forward_only;
  cap.recompute = s.opt.recompute;
  if (s.opt.before_allocation) {
    // Every block planned, none allocated: the caller may refuse (the trainer's GPU check).
    s.plan_parameters(/*measure_only=*/true);
    CoreCapacity plan = cap;
    plan.measure_only = true;
    const RecursiveCore<CudaBackend> planned(s.backend, s.spec, s.registry, {}, plan, loss);
    s.opt.before_allocation(static_cast<int64_t>(s.param_bytes),
                            planned.activation_bytes() + planned.scratch_bytes());
  }
  s.plan_parameters(/*measure_only=*/false);
  const ParameterBinding<CudaBackend> binding{
      [&s](int i) -> const ops::cuda::bf16* { return s.compute + s.offset[i]; },
      [&s](int i) -> float* { return s.grad_of(i); }};
  s.core = std::make_unique<RecursiveCore<CudaBackend>>(s.backend, s.spec, s.registry, binding, cap,
                                                        loss);
}

DeviceModel::~DeviceModel() = default;

double DeviceModel::forward_backward(const int32_t* tokens, const int32_t* targets, int64_t N,
                                     int64_t T, float weight) {
  return impl_->core->forward_backward(tokens, targets, N, T, weight);
}

void DeviceModel::set_document_eos(int32_t eos) { impl_->core->set_document_eos(eos); }

double DeviceModel::loss(const int32_t* tokens, const int32_t* targets, int64_t N, int64_t T) {
  return impl_->core->loss(tokens, targets, N, T);
}

void DeviceModel::logits(const int32_t* tokens, int64_t N, int64_t T, float* out) {
  impl_->core->logits(tokens, N, T, out);
}

void DeviceModel::forward_loop_ends(const int32_t* tokens, int64_t N, int64_t T) {
  impl_->core->forward(tokens, N, T);
}

void DeviceModel::exit_logits_of_rows(int64_t loop, const int32_t* rows, int64_t n, float* out) {
  impl_->core->exit_logits(loop, rows, n, out);
}

int64_t DeviceModel::exit_chunk() const { return impl_->core->exit_chunk(); }

void DeviceModel::set_teacher(DeviceModel* teacher) {
  RRT_CHECK(teacher == nullptr || teacher->impl_->opt.forward_only, kWhere,
            "the teacher must be planned forward only (DeviceModelOptions::forward_only)");
  impl_->core->set_teacher(teacher != nullptr && teacher != this ? teacher->impl_->core.get()
                                                                 : nullptr);
}

void DeviceModel::set_grad_ready_hook(std::function<void(int64_t)> hook) {
  impl_->core->set_grad_ready_hook(std::move(hook));
}
const std::vector<int64_t>& DeviceModel::grad_ready_after() const {
  return impl_->core->grad_ready_after();
}
const std::vector<int64_t>& DeviceModel::parameter_offsets() const { return impl_->offset; }

}  // namespace rrt
