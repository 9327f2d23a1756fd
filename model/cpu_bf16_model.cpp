#include "model/cpu_bf16_model.h"

#include <string>

#include "core/error.h"
#include "ops/cpu_bf16/gemm.h"

namespace rrt {

namespace {

CoreCapacity bf16_capacity(const ModelSpec& spec, const ModelCapacity& c) {
  CoreCapacity core;
  core.max_batch = c.max_batch;
  core.max_seq = c.max_seq > 0 ? c.max_seq : spec.model.max_seq_len;
  core.head_chunk = c.head_chunk;
  core.forward_only = c.forward_only;
  return core;
}

const ParamRegistry& checked_registry(ParameterSet& masters, const ModelSpec& spec,
                                      const ModelCapacity& capacity, const TrainingLoss& loss) {
  RRT_CHECK(masters.registry().size() == ParamRegistry(spec).size(), "CpuBf16Model",
            "the master parameters are not this model's");
  RRT_CHECK(capacity.forward_only || masters.has_grads(), "CpuBf16Model",
            "a trained model needs a parameter set with gradients");
  const std::vector<bool> trains = trainable_under(masters.registry(), loss.train);
  for (int i = 0; i < masters.registry().size(); ++i)
    masters.set_trainable(i, trains[static_cast<size_t>(i)]);
  return masters.registry();
}

}  // namespace

// The GEMMs decide: a build with oneDNN on a CPU with AMX-BF16 or AVX512_BF16
// (ops/cpu_bf16/gemm.h).
bool cpu_bf16_supported(std::string* why) {
  if (ops::cpu_bf16::gemm_available()) return true;
  if (why != nullptr) *why = ops::cpu_bf16::gemm_unavailable_reason();
  return false;
}

BackendBlock CpuBf16Model::make_copy(const CpuBf16Backend& be, ParameterSet& masters,
                                     int64_t* floats) {
  // First: the copy's conversion already runs bf16 instructions.
  std::string why;
  RRT_CHECK(cpu_bf16_supported(&why), "train.precision", "bf16 on train.device: cpu: ", why,
            "; set train.precision: fp32");
  const Arena& arena = masters.values_arena();
  *floats = arena.total_bytes() / static_cast<int64_t>(sizeof(float));
  BackendBlock block = be.allocate(sizeof(bf16) * static_cast<size_t>(*floats), "bf16 weights");
  be.upload_bf16(static_cast<bf16*>(block.get()), static_cast<const float*>(arena.base()), *floats,
                 "bf16 weights");
  return block;
}

ParameterBinding<CpuBf16Backend> CpuBf16Model::binding(bool forward_only) {
  const float* base = static_cast<const float*>(masters_.values_arena().base());
  const bf16* copy = static_cast<const bf16*>(copy_.get());
  return {[this, base, copy](int i) -> const bf16* { return copy + (masters_.value(i) - base); },
          [this, forward_only](int i) -> float* {
            return !forward_only && masters_.registry()[i].trainable ? masters_.grad(i) : nullptr;
          }};
}

CpuBf16Model::CpuBf16Model(ParameterSet& masters, const ModelSpec& spec,
                           const ModelCapacity& capacity, const TrainingLoss& loss)
    : spec_(spec),
      masters_(masters),
      backend_(capacity.threads),
      copy_(make_copy(backend_, masters, &floats_)),
      core_(backend_, spec_, checked_registry(masters, spec, capacity, loss),
            binding(capacity.forward_only), bf16_capacity(spec, capacity), loss) {}

CpuBf16Plan CpuBf16Model::plan(const ModelSpec& spec, const ModelCapacity& capacity,
                               const TrainingLoss& loss) {
  const ParamRegistry registry(spec);
  CoreCapacity cap = bf16_capacity(spec, capacity);
  cap.measure_only = true;
  CpuBf16Backend backend(capacity.threads);
  const RecursiveCore<CpuBf16Backend> planned(backend, spec, registry, {}, cap, loss);
  return {.compute_copy_bytes = registry.total_numel() * static_cast<int64_t>(sizeof(bf16)),
          .activation_bytes = planned.activation_bytes() + planned.scratch_bytes()};
}

void CpuBf16Model::refresh() {
  backend_.upload_bf16(static_cast<bf16*>(copy_.get()),
                       static_cast<const float*>(masters_.values_arena().base()), floats_,
                       "bf16 weights");
}

void CpuBf16Model::set_teacher(CpuBf16Model* teacher) {
  core_.set_teacher(teacher != nullptr ? &teacher->core_ : nullptr);
}

}  // namespace rrt
