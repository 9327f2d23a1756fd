#include "evaluation/exit_model.h"

#include "checkpoint/model_source.h"
#include "core/error.h"
#include "model/cpu_bf16_model.h"
#include "model/cuda/device_model.h"
#include "model/recursive_model.h"

namespace rrt {

namespace {

// Any model with forward_loop_ends / exit_logits_of_rows / exit_chunk (RecursiveModel,
// CpuBf16Model, DeviceModel: each the one model code on its backend), kept alive by `owner`
// where the view owns it.
template <class Model>
class ExitView final : public ExitModel {
 public:
  ExitView(Model& model, std::string device, std::shared_ptr<void> owner = {})
      : model_(model), device_(std::move(device)), owner_(std::move(owner)) {}
  const ModelSpec& spec() const override { return model_.spec(); }
  void forward_loop_ends(const int32_t* tokens, int64_t N, int64_t T) override {
    model_.forward_loop_ends(tokens, N, T);
  }
  void exit_logits(int64_t loop, const int32_t* rows, int64_t n, float* out) override {
    model_.exit_logits_of_rows(loop, rows, n, out);
  }
  int64_t chunk() const override { return model_.exit_chunk(); }
  void set_document_eos(int32_t eos) override { model_.set_document_eos(eos); }
  std::string device() const override { return device_; }

 private:
  Model& model_;
  std::string device_;
  std::shared_ptr<void> owner_;
};

template <class Model, class Owner>
std::unique_ptr<ExitModel> owning_view(std::shared_ptr<Owner> owner, Model& model,
                                       const std::string& device) {
  return std::make_unique<ExitView<Model>>(model, device, std::move(owner));
}

// The checkpoint's fp32 values in a set of their own: the host model's parameters, or the masters
// of a bf16 or device copy.
struct LoadedSet {
  ParameterSet params;
  LoadedSet(const std::string& checkpoint, const ModelSpec& spec,
            ParameterSet::Grads grads = ParameterSet::Grads::without)
      : params(spec, grads) {
    load_model_source_params(checkpoint, params);
  }
};

// bf16 on the CPU: the loaded set is the masters of a CpuBf16Model. With gradients, though
// nothing trains: a forward-only model keeps the residual stream of its last loop alone, and the
// evaluation reads every loop's end.
struct Bf16Owner {
  LoadedSet masters;
  CpuBf16Model model;
  Bf16Owner(const std::string& checkpoint, const ModelSpec& spec, const ModelCapacity& capacity)
      : masters(checkpoint, spec, ParameterSet::Grads::with),
        model(masters.params, spec, capacity) {}
};

// cuda: the loaded values are uploaded to the GPU and dropped from the host.
struct CudaOwner {
  DeviceModel model;
  CudaOwner(const std::string& checkpoint, const ModelSpec& spec, const DeviceModelOptions& o)
      : model(spec, o) {
    model.upload(LoadedSet(checkpoint, spec).params);
  }
};

}  // namespace

std::unique_ptr<ExitModel> exit_model_of(RecursiveModel& model) {
  return std::make_unique<ExitView<RecursiveModel>>(model, "cpu");
}

std::unique_ptr<ExitModel> load_exit_model(const std::string& checkpoint, const ModelSpec& spec,
                                           int64_t N, int64_t T, int64_t chunk,
                                           const std::string& device,
                                           const std::string& precision) {
  const ModelCapacity capacity{.max_batch = N, .max_seq = T, .head_chunk = chunk};
  if (device == "cpu" && precision == "bf16") {
    auto owner = std::make_shared<Bf16Owner>(checkpoint, spec, capacity);
    return owning_view(owner, owner->model, "cpu-bf16");
  }
  if (device == "cpu") {
    auto model = std::make_shared<RecursiveModel>(spec, capacity);
    load_model_source_params(checkpoint, model->params());
    return owning_view(model, *model, "cpu");
  }
  RRT_CHECK(device == "cuda", "train.device", "'", device, "' is not a device: cpu or cuda");
  DeviceModelOptions options;
  options.max_batch = N;
  options.max_seq = T;
  options.head_chunk = chunk;
  auto owner = std::make_shared<CudaOwner>(checkpoint, spec, options);
  return owning_view(owner, owner->model, "cuda");
}

}  // namespace rrt
