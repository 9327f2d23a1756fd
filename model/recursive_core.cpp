// RecursiveCore (model/recursive_core_impl.h) on the CPU fp32 backend, and the freezing rule that
// every backend's model applies.
#include "model/recursive_core.h"

#include "model/recursive_core_impl.h"
#include "ops/cpu/backend.h"

namespace rrt {

template class RecursiveCore<CpuBackend>;

std::vector<bool> trainable_under(const ParamRegistry& registry, TrainScope scope) {
  std::vector<bool> trains(static_cast<size_t>(registry.size()), true);
  if (scope == TrainScope::all) return trains;
  bool any = false;
  for (int i = 0; i < registry.size(); ++i) {
    const bool lora =
        registry[i].kind == ParamKind::lora_a || registry[i].kind == ParamKind::lora_b;
    const bool head_adapter = lora && registry[i].layer < 0;
    trains[static_cast<size_t>(i)] = scope == TrainScope::lora ? lora : head_adapter;
    any |= trains[static_cast<size_t>(i)];
  }
  RRT_CHECK(any, "early_exit.train", "nothing would train: the model has no ",
            scope == TrainScope::lora ? "LoRA" : "head adapters (early_exit.head_lora_rank)");
  return trains;
}

}  // namespace rrt
