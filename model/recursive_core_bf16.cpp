// RecursiveCore (model/recursive_core_impl.h) on the CPU bf16 backend (ops/cpu_bf16/backend.h):
// the one model code with bf16 activations and compute weights, fp32 weight gradients. Its owner
// keeps the fp32 master weights and binds a bf16 compute copy of them (CpuBf16Backend::upload_bf16)
// and an fp32 gradient arena.
#include "model/recursive_core.h"
#include "model/recursive_core_impl.h"
#include "ops/cpu_bf16/backend.h"

namespace rrt {

template class RecursiveCore<CpuBf16Backend>;

}  // namespace rrt
