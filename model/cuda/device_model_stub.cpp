// A build without CUDA: the device model exists as a name only, and saying train.device: cuda
// gives this error instead of a link failure or an #ifdef in the trainer.
#include "core/error.h"
#include "model/cuda/device_model.h"

namespace rrt {

struct DeviceModel::Impl {};

bool device_model_compiled() { return false; }

DeviceModel::DeviceModel(const ModelSpec&, const DeviceModelOptions&, const TrainingLoss&) {
  RRT_FAIL("train.device",
           "cuda: this rrt was built without CUDA (RRT_CUDA=OFF); rebuild with "
           "nvcc on the PATH and -DRRT_CUDA=ON, or set train.device: cpu");
}
DeviceModel::~DeviceModel() = default;

// Unreachable: no DeviceModel can be constructed in this build.
const ModelSpec& DeviceModel::spec() const { RRT_FAIL("DeviceModel", "no CUDA in this build"); }
void DeviceModel::upload(const ParameterSet&) {}
void DeviceModel::download(ParameterSet&) const {}
void DeviceModel::download_grads(ParameterSet&) const {}
void DeviceModel::upload_optimizer(AdamW&) {}
void DeviceModel::download_optimizer(AdamW&) const {}
double DeviceModel::forward_backward(const int32_t*, const int32_t*, int64_t, int64_t, float) {
  return 0;
}
void DeviceModel::set_document_eos(int32_t) {}
double DeviceModel::loss(const int32_t*, const int32_t*, int64_t, int64_t) { return 0; }
void DeviceModel::logits(const int32_t*, int64_t, int64_t, float*) {}
void DeviceModel::forward_loop_ends(const int32_t*, int64_t, int64_t) {}
void DeviceModel::exit_logits_of_rows(int64_t, const int32_t*, int64_t, float*) {}
int64_t DeviceModel::exit_chunk() const { return 0; }
const LossBreakdown& DeviceModel::last_losses() const {
  RRT_FAIL("DeviceModel", "no CUDA in this build");
}
void DeviceModel::set_teacher(DeviceModel*) {}
void DeviceModel::zero_grads() {}
double DeviceModel::grad_norm() { return 0; }
void DeviceModel::scale_grads(float) {}
void DeviceModel::adamw_step(const ops::AdamWHyper&, double) {}
int64_t DeviceModel::steps_taken() const { return 0; }
float* DeviceModel::device_gradients() { return nullptr; }
int64_t DeviceModel::gradient_floats() const { return 0; }
const std::vector<int64_t>& DeviceModel::parameter_offsets() const {
  RRT_FAIL("DeviceModel", "no CUDA in this build");
}
void DeviceModel::set_grad_ready_hook(std::function<void(int64_t)>) {}
const std::vector<int64_t>& DeviceModel::grad_ready_after() const {
  RRT_FAIL("DeviceModel", "no CUDA in this build");
}
int64_t DeviceModel::parameter_bytes() const { return 0; }
int64_t DeviceModel::activation_bytes() const { return 0; }

}  // namespace rrt
