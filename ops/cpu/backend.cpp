#include "ops/cpu/backend.h"

#include <omp.h>

#include <string>

#include "core/arena.h"

namespace rrt {

CpuBackend::CpuBackend(int threads) : threads_(threads > 0 ? threads : omp_get_max_threads()) {}

void CpuBackend::prepare(const BackendPlan& plan) {
  rope_ = ops::RopeTable(plan.max_attention.T, plan.rot_dim, plan.rope_theta);
  attn_ws_.assign(
      static_cast<size_t>(ops::attention_workspace_elems(plan.max_attention, threads_)), 0.f);
}

// The arenas' allocation: large blocks cost no memory until the step writes them, so the memory
// check of rrt train can run after the model is planned.
BackendBlock CpuBackend::allocate(size_t bytes, const char* what) const {
  return allocate_zeroed(static_cast<int64_t>(bytes), std::string("model memory (") + what + ")");
}

ops::ExitLossResult CpuBackend::exit_loss(const HeadLossArgs<float>& in) const {
  ops::ExitLossArgs<float> a;
  a.M = in.M;
  a.D = in.D;
  a.V = in.V;
  a.exits = in.exits;
  a.h = in.h;
  a.exit_weights = in.exit_weights;
  a.W = in.W;
  a.targets = in.targets;
  a.ignore_index = in.ignore_index;
  a.head_lora_rank = in.head_lora_rank;
  a.lora_A = in.lora_A;
  a.lora_B = in.lora_B;
  a.teacher_h = in.teacher_h;
  a.teacher_W = in.teacher_W;
  a.teacher_D = in.teacher_D;
  a.divergence = in.divergence;
  a.temperature = in.temperature;
  a.alpha = in.alpha;
  a.self_distill = in.self_distill;
  a.dh = in.dh;
  a.dW = in.dW;
  a.dA = in.dA;
  a.dB = in.dB;
  a.weight = in.weight;
  a.workspace = static_cast<float*>(in.workspace);
  a.chunk = in.chunk;
  a.exit_ce = in.exit_ce;
  a.exit_kd = in.exit_kd;
  a.exit_sd = in.exit_sd;
  return ops::exit_loss<float>(a);
}

}  // namespace rrt
