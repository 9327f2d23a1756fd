#include "ops/cpu/backend.h"

#include <omp.h>

#include <string>

#include "core/arena.h"

namespace rrt {

CpuBackend::CpuBackend(int threads) : threads_(threads > 0 ? threads : omp_get_max_threads()) {}

void CpuBackend::prepare(const BackendPlan& plan) {
  rope_ = ops::RopeTable(plan.max_attention.T, plan.rot_dim, plan.rope_theta, plan.rope_scaling);
  rope_local_ = plan.rope_local_theta > 0
                    ? ops::RopeTable(plan.max_attention.T, plan.rot_dim, plan.rope_local_theta)
                    : ops::RopeTable();
  attn_ws_.assign(static_cast<size_t>(ops::attention_workspace_elems(plan.max_attention, threads_)),
                  0.f);
}

// The arenas' allocation: large blocks cost no memory until the step writes them, so the memory
// check of rrt train can run after the model is planned.
BackendBlock CpuBackend::allocate(size_t bytes, const char* what) const {
  return allocate_zeroed(static_cast<int64_t>(bytes), std::string("model memory (") + what + ")");
}

ops::ExitLossResult CpuBackend::exit_loss(const HeadLossArgs<float>& in) const {
  ops::ExitLossArgs<float> a;
  copy_head_loss_fields(in, a);
  a.workspace = static_cast<float*>(in.workspace);
  return ops::exit_loss<float>(a);
}

}  // namespace rrt
