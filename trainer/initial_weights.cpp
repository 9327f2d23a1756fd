#include "trainer/initial_weights.h"

#include <cstdio>
#include <cstring>

#include "checkpoint/checkpoint.h"
#include "core/error.h"

namespace rrt {

void load_initial_weights(const std::string& path, const ModelSpec& spec, ParameterSet& params) {
  if (spec.exit_head.lora_rank == 0 || spec.exit_head.loops.empty()) {
    load_checkpoint(path, params, nullptr);
    return;
  }
  try {
    load_checkpoint(path, params, nullptr);
    return;
  } catch (const Error&) {
    // Retried below without the head adapters; a real problem fails there too.
  }
  ModelSpec without = spec;
  without.exit_head = {};
  ParameterSet loaded(without, ParameterSet::Grads::without);
  load_checkpoint(path, loaded, nullptr);
  const ParamRegistry& reg = loaded.registry();
  for (int i = 0; i < reg.size(); ++i)
    std::memcpy(params.value(reg[i].name), loaded.value(i),
                static_cast<size_t>(loaded.numel(i)) * sizeof(float));
  std::printf("%s has no head adapters for the exits: they start from their initialisation\n",
              path.c_str());
}

}  // namespace rrt
