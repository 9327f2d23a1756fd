#include "trainer/trainable_model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/device.h"
#include "core/error.h"
#include "distributed/gpu_communicator.h"
#include "evaluation/evaluate.h"
#include "evaluation/log_format.h"
#include "model/cpu_bf16_model.h"
#include "model/cuda/device_model.h"
#include "ops/cpu_bf16/gemm.h"
#include "trainer/memory_check.h"

namespace rrt {

namespace {

// sqrt(sum of squares) over the whole flat gradient arena (alignment gaps hold zeros).
double host_grad_norm(ParameterSet& params) {
  const float* g = static_cast<const float*>(params.grads_arena().base());
  const int64_t n = params.grads_arena().total_bytes() / static_cast<int64_t>(sizeof(float));
  double sum = 0;
#pragma omp parallel for schedule(static) reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(g[i]) * g[i];
  return std::sqrt(sum);
}

void scale_host_grads(ParameterSet& params, float factor) {
  float* g = static_cast<float*>(params.grads_arena().base());
  const int64_t n = params.grads_arena().total_bytes() / static_cast<int64_t>(sizeof(float));
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) g[i] *= factor;
}

// The CPU paths: gradients, clipping, AdamW and the all-reduce over a host ParameterSet's fp32
// arenas; the forward and backward on `Step` (the host RecursiveModel itself, or a CpuBf16Model
// bound to the same arenas).
template <class Step>
class HostArenaTrainable : public TrainableModel {
 public:
  void zero_grads() override { arenas().zero_grads(); }
  void set_document_eos(int32_t eos) override { step().set_document_eos(eos); }
  double forward_backward(const int32_t* tokens, const int32_t* targets, int64_t N, int64_t T,
                          float weight) override {
    return step().forward_backward(tokens, targets, N, T, weight);
  }
  const LossBreakdown& last_losses() const override {
    return const_cast<HostArenaTrainable*>(this)->step().last_losses();
  }
  double grad_norm() override { return host_grad_norm(arenas()); }
  void scale_grads(float factor) override { scale_host_grads(arenas(), factor); }
  void optimizer_step(AdamW& optimizer, double lr) override { optimizer.step(lr); }
  double validation_loss(TokenLoader& val, int64_t N, int64_t T, int64_t batches, int32_t* inputs,
                         int32_t* targets) override {
    return mean_validation_loss(step(), val, N, T, batches, inputs, targets);
  }
  std::unique_ptr<GradSync> make_grad_sync(Communicator& world,
                                           const GradSyncOptions& options) override {
    auto sync = std::make_unique<GradSync>(world, arenas().grads_arena(), step().grad_ready_after(),
                                           options);
    step().set_grad_ready_hook([g = sync.get()](int64_t v) { g->on_ready(v); });
    return sync;
  }
  std::string parallel_backend(Communicator& world) const override { return world.backend(); }
  double peak_tflops() const override { return 0.0; }

 protected:
  ParameterSet& arenas() { return host().params(); }
  virtual Step& step() = 0;
};

// The CPU backend: the model that trains is the host model; AdamW runs over its arenas.
class CpuTrainable final : public HostArenaTrainable<RecursiveModel> {
 public:
  CpuTrainable(const RunConfig& c, const TrainingLoss& objective)
      : N_(c.train.micro_batch),
        T_(c.train.seq_len),
        model_(c.model, ModelCapacity{N_, T_}, objective) {}

  RecursiveModel& host() override { return model_; }
  int64_t teacher_host_batch() const override { return N_; }
  int64_t teacher_host_seq() const override { return T_; }
  void set_teacher(RecursiveModel& teacher) override { model_.set_teacher(&teacher); }
  void upload(const AdamW*) override {}
  void sync_to_host(AdamW&) override {}
  std::string describe() const override { return ""; }

 private:
  RecursiveModel& step() override { return model_; }
  int64_t N_, T_;
  RecursiveModel model_;
};

// The CPU bf16 backend: the host model (planned for one token) holds the fp32 masters and
// gradients, so AdamW, clipping, the all-reduce and checkpoints are the fp32 path's; the step
// runs on a CpuBf16Model over them, whose bf16 copy is rewritten after every update.
class CpuBf16Trainable final : public HostArenaTrainable<CpuBf16Model> {
 public:
  CpuBf16Trainable(const RunConfig& c, const TrainingLoss& objective)
      : N_(c.train.micro_batch),
        T_(c.train.seq_len),
        teacher_path_(c.distill.teacher),
        host_(c.model, ModelCapacity{1, 1}, objective),
        model_(host_.params(), c.model, ModelCapacity{N_, T_}, objective) {}

  RecursiveModel& host() override { return host_; }
  int64_t teacher_host_batch() const override { return 1; }
  int64_t teacher_host_seq() const override { return 1; }
  void set_teacher(RecursiveModel& teacher) override {
    host_.set_teacher(&teacher);
    const ModelSpec& ts = teacher.spec();
    RRT_CHECK(T_ <= ts.model.max_seq_len, "distill.teacher", "the teacher at ", teacher_path_,
              " serves sequences of at most ", ts.model.max_seq_len,
              " tokens, but train.seq_len is ", T_, "; shorten train.seq_len");
    teacher_ = std::make_unique<CpuBf16Model>(teacher.params(), ts, teacher_capacity());
    teacher_->set_document_eos(document_eos_);  // the teacher sees the student's documents
    model_.set_teacher(teacher_.get());
  }
  void set_document_eos(int32_t eos) override {
    document_eos_ = eos;
    model_.set_document_eos(eos);
    if (teacher_) teacher_->set_document_eos(eos);
  }
  void upload(const AdamW*) override { model_.refresh(); }
  void sync_to_host(AdamW&) override {}
  void parameters_updated() override { model_.refresh(); }
  std::string describe() const override {
    return "training in bf16 on the CPU (fp32 masters; GEMMs: " + ops::cpu_bf16::gemm_path() + ")";
  }
  std::vector<MemoryPart> extra_host_memory(const RecursiveModel* teacher) const override {
    std::vector<MemoryPart> parts = {{"bf16 weights", model_.compute_copy_bytes()},
                                     {"bf16 activations and scratch", model_.activation_bytes()}};
    if (teacher != nullptr) {
      const CpuBf16Plan t = CpuBf16Model::plan(teacher->spec(), teacher_capacity());
      parts.push_back({"bf16 teacher weights", t.compute_copy_bytes});
      parts.push_back({"bf16 teacher activations", t.activation_bytes});
    }
    return parts;
  }

 private:
  CpuBf16Model& step() override { return model_; }
  ModelCapacity teacher_capacity() const {
    return {.max_batch = N_, .max_seq = T_, .forward_only = true};
  }
  int64_t N_, T_;
  std::string teacher_path_;
  RecursiveModel host_;
  CpuBf16Model model_;
  std::unique_ptr<CpuBf16Model> teacher_;
  int32_t document_eos_ = -1;
};

// train.memory_check on cuda: a DeviceModel's planned blocks against the GPU's free memory,
// called by the model after planning and before allocating (DeviceModelOptions).
std::function<void(int64_t, int64_t)> gpu_memory_check(const RunConfig& c, std::string params,
                                                       std::string activations, std::string hint) {
  if (!c.train.memory_check) return {};
  return [params, activations, hint](int64_t param_bytes, int64_t activation_bytes) {
    MemoryPlan plan;
    plan.parts = {{params, param_bytes}, {activations, activation_bytes}};
    const DeviceMemoryInfo gpu = cuda_memory_info();
    check_device_memory(plan, gpu, gpu.device >= 0 ? cuda_device_name(gpu.device) : "", hint);
  };
}

// The CUDA backend: the step runs on a DeviceModel; the host model (planned for one token) and
// the host AdamW hold the copies that initialisation, resume and checkpoints use.
class CudaTrainable final : public TrainableModel {
 public:
  CudaTrainable(const RunConfig& c, Communicator& world, const TrainingLoss& objective)
      : N_(c.train.micro_batch),
        T_(c.train.seq_len),
        teacher_path_(c.distill.teacher),
        host_(c.model, ModelCapacity{1, 1}, objective),
        // Several GPUs: NCCL first, because it picks this rank's GPU before the model allocates.
        gpu_comm_(world.world_size() > 1 ? make_gpu_communicator(world) : nullptr),
        device_(c.model,
                DeviceModelOptions{
                    .max_batch = N_,
                    .max_seq = T_,
                    .recompute = parse_recompute(c.train.recompute, c.model.positions()),
                    .before_allocation = gpu_memory_check(
                        c, "parameters, gradients and AdamW moments", "activations and scratch",
                        "Lower train.micro_batch (activations grow with micro_batch x seq_len; "
                        "train.grad_accum keeps the batch), shorten train.seq_len, or recompute "
                        "activations in backward (train.recompute: all, or a list of positions)")},
                objective),
        teacher_check_(gpu_memory_check(
            c, "distillation teacher's bf16 weights", "teacher's activations",
            "The model being trained already holds its share. Lower train.micro_batch or "
            "train.seq_len (the teacher's activations grow with them too), recompute the "
            "student's activations (train.recompute: all), or distil from a smaller teacher")) {}

  RecursiveModel& host() override { return host_; }
  int64_t teacher_host_batch() const override { return 1; }
  int64_t teacher_host_seq() const override { return 1; }
  void set_teacher(RecursiveModel& teacher) override {
    host_.set_teacher(&teacher);
    const ModelSpec& ts = teacher.spec();
    RRT_CHECK(T_ <= ts.model.max_seq_len, "distill.teacher", "the teacher at ", teacher_path_,
              " serves sequences of at most ", ts.model.max_seq_len,
              " tokens, but train.seq_len is ", T_, "; shorten train.seq_len");
    teacher_ =
        std::make_unique<DeviceModel>(ts, DeviceModelOptions{.max_batch = N_,
                                                             .max_seq = T_,
                                                             .recompute = {},
                                                             .forward_only = true,
                                                             .before_allocation = teacher_check_});
    teacher_->upload(teacher.params());
    teacher_->set_document_eos(document_eos_);  // the teacher sees the student's documents
    device_.set_teacher(teacher_.get());
  }
  void upload(const AdamW* resumed) override {
    device_.upload(host_.params());
    if (resumed) device_.upload_optimizer(const_cast<AdamW&>(*resumed));
  }
  void sync_to_host(AdamW& optimizer) override {
    device_.download(host_.params());
    device_.download_optimizer(optimizer);
  }
  void zero_grads() override { device_.zero_grads(); }
  void set_document_eos(int32_t eos) override {
    document_eos_ = eos;
    device_.set_document_eos(eos);
    if (teacher_) teacher_->set_document_eos(eos);
  }
  double forward_backward(const int32_t* tokens, const int32_t* targets, int64_t N, int64_t T,
                          float weight) override {
    return device_.forward_backward(tokens, targets, N, T, weight);
  }
  const LossBreakdown& last_losses() const override { return device_.last_losses(); }
  double grad_norm() override { return device_.grad_norm(); }
  void scale_grads(float factor) override { device_.scale_grads(factor); }
  void optimizer_step(AdamW& optimizer, double lr) override {
    device_.adamw_step(optimizer.hyper(), lr);
  }
  double validation_loss(TokenLoader& val, int64_t N, int64_t T, int64_t batches, int32_t* inputs,
                         int32_t* targets) override {
    return mean_validation_loss(device_, val, N, T, batches, inputs, targets);
  }
  // The device arena has the host arena's layout; each bucket's NCCL launch waits (on the GPU,
  // not the host) for the backward kernels enqueued before the hook fired.
  std::unique_ptr<GradSync> make_grad_sync(Communicator&, const GradSyncOptions& options) override {
    auto sync = std::make_unique<GradSync>(*gpu_comm_, device_.device_gradients(),
                                           device_.gradient_floats(), device_.parameter_offsets(),
                                           device_.grad_ready_after(), options);
    device_.set_grad_ready_hook([g = sync.get()](int64_t v) { g->on_ready(v); });
    return sync;
  }
  std::string parallel_backend(Communicator&) const override {
    return gpu_comm_->backend() + ", one GPU each; rank 0 on GPU " +
           std::to_string(gpu_for_this_rank());
  }
  std::string describe() const override {
    char line[256];
    std::snprintf(line, sizeof(line),
                  "training on %s: %.2f GiB of parameters and optimizer state, %.2f GiB of "
                  "activations",
                  cuda_device_name(0).c_str(), device_.parameter_bytes() / 1073741824.0,
                  device_.activation_bytes() / 1073741824.0);
    return line;
  }
  double peak_tflops() const override { return table_peak_tflops(cuda_device_name(0)); }

 private:
  int64_t N_, T_;
  std::string teacher_path_;
  RecursiveModel host_;
  std::unique_ptr<Communicator> gpu_comm_;  // before the models: GradSync and NCCL outlive none
  DeviceModel device_;
  std::function<void(int64_t, int64_t)> teacher_check_;  // the teacher's GPU memory check
  std::unique_ptr<DeviceModel> teacher_;
  int32_t document_eos_ = -1;
};

}  // namespace

std::unique_ptr<TrainableModel> make_trainable_model(const RunConfig& c, Communicator& world,
                                                     const TrainingLoss& objective) {
  if (c.train.device != "cuda") {
    RRT_CHECK(c.train.recompute == "none", "train.recompute",
              "activation recomputation exists on train.device: cuda only (the cpu model keeps "
              "every position's activations); set train.recompute: none");
    if (c.train.precision == "bf16") return std::make_unique<CpuBf16Trainable>(c, objective);
    return std::make_unique<CpuTrainable>(c, objective);
  }
  RRT_CHECK(!c.distributed.zero1 || world.world_size() == 1, "distributed.zero1",
            "ZeRO-1 exists on train.device: cpu only for now (on cuda the AdamW moments live in "
            "the device model, unsharded); set distributed.zero1: false");
  return std::make_unique<CudaTrainable>(c, world, objective);
}

}  // namespace rrt
