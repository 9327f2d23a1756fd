#include "evaluation/exit_model.h"

#include "checkpoint/checkpoint.h"
#include "core/error.h"
#include "model/cpu_bf16_model.h"
#include "model/cuda/device_model.h"
#include "model/recursive_model.h"

namespace rrt {

namespace {

class HostExitView final : public ExitModel {
 public:
  explicit HostExitView(RecursiveModel& model) : model_(model) {}
  const ModelSpec& spec() const override { return model_.spec(); }
  void forward_loop_ends(const int32_t* tokens, int64_t N, int64_t T) override {
    model_.forward_loop_ends(tokens, N, T);
  }
  void exit_logits(int64_t loop, const int32_t* rows, int64_t n, float* out) override {
    model_.exit_logits_of_rows(loop, rows, n, out);
  }
  int64_t chunk() const override { return model_.exit_chunk(); }
  std::string device() const override { return "cpu"; }

 private:
  RecursiveModel& model_;
};

class HostExitModel final : public ExitModel {
 public:
  HostExitModel(const std::string& checkpoint, const ModelSpec& spec, int64_t N, int64_t T,
                int64_t chunk)
      : model_(spec, ModelCapacity{.max_batch = N, .max_seq = T, .head_chunk = chunk}),
        view_(model_) {
    load_checkpoint(checkpoint, model_.params(), nullptr);
  }
  const ModelSpec& spec() const override { return view_.spec(); }
  void forward_loop_ends(const int32_t* tokens, int64_t N, int64_t T) override {
    view_.forward_loop_ends(tokens, N, T);
  }
  void exit_logits(int64_t loop, const int32_t* rows, int64_t n, float* out) override {
    view_.exit_logits(loop, rows, n, out);
  }
  int64_t chunk() const override { return view_.chunk(); }
  std::string device() const override { return "cpu"; }

 private:
  RecursiveModel model_;
  HostExitView view_;
};

// bf16 on the CPU: the loaded fp32 set is the masters of a CpuBf16Model.
class CpuBf16ExitModel final : public ExitModel {
 public:
  CpuBf16ExitModel(const std::string& checkpoint, const ModelSpec& spec, int64_t N, int64_t T,
                   int64_t chunk)
      : masters_(load(checkpoint, spec)),
        model_(*masters_, spec, ModelCapacity{.max_batch = N, .max_seq = T, .head_chunk = chunk}) {}
  const ModelSpec& spec() const override { return model_.spec(); }
  void forward_loop_ends(const int32_t* tokens, int64_t N, int64_t T) override {
    model_.forward_loop_ends(tokens, N, T);
  }
  void exit_logits(int64_t loop, const int32_t* rows, int64_t n, float* out) override {
    model_.exit_logits_of_rows(loop, rows, n, out);
  }
  int64_t chunk() const override { return model_.exit_chunk(); }
  std::string device() const override { return "cpu-bf16"; }

 private:
  static std::unique_ptr<ParameterSet> load(const std::string& checkpoint, const ModelSpec& spec) {
    // With a gradient arena, unused: a CpuBf16Model that keeps every loop end (the exits need
    // them) is a trainable one, and that needs gradients; a forward-only one keeps only the
    // last loop's stream. HostExitModel's RecursiveModel carries the same arena.
    auto p = std::make_unique<ParameterSet>(spec, ParameterSet::Grads::with);
    load_checkpoint(checkpoint, *p, nullptr);
    return p;
  }
  std::unique_ptr<ParameterSet> masters_;
  CpuBf16Model model_;
};

// The parameters pass through a host set planned for one token (as the CUDA trainer's), then
// live on the GPU only.
class CudaExitModel final : public ExitModel {
 public:
  CudaExitModel(const std::string& checkpoint, const ModelSpec& spec, int64_t N, int64_t T,
                int64_t chunk)
      : device_(spec, DeviceModelOptions{.max_batch = N, .max_seq = T, .head_chunk = chunk}) {
    RecursiveModel host(spec, ModelCapacity{1, 1});
    load_checkpoint(checkpoint, host.params(), nullptr);
    device_.upload(host.params());
  }
  const ModelSpec& spec() const override { return device_.spec(); }
  void forward_loop_ends(const int32_t* tokens, int64_t N, int64_t T) override {
    device_.forward_loop_ends(tokens, N, T);
  }
  void exit_logits(int64_t loop, const int32_t* rows, int64_t n, float* out) override {
    device_.exit_logits_of_rows(loop, rows, n, out);
  }
  int64_t chunk() const override { return device_.exit_chunk(); }
  std::string device() const override { return "cuda"; }

 private:
  DeviceModel device_;
};

}  // namespace

std::unique_ptr<ExitModel> exit_model_of(RecursiveModel& model) {
  return std::make_unique<HostExitView>(model);
}

std::unique_ptr<ExitModel> load_exit_model(const std::string& checkpoint, const ModelSpec& spec,
                                           int64_t N, int64_t T, int64_t chunk,
                                           const std::string& device,
                                           const std::string& precision) {
  if (device == "cpu" && precision == "bf16")
    return std::make_unique<CpuBf16ExitModel>(checkpoint, spec, N, T, chunk);
  if (device == "cpu") return std::make_unique<HostExitModel>(checkpoint, spec, N, T, chunk);
  RRT_CHECK(device == "cuda", "train.device", "'", device, "' is not a device: cpu or cuda");
  return std::make_unique<CudaExitModel>(checkpoint, spec, N, T, chunk);
}

}  // namespace rrt
