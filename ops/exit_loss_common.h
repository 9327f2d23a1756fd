// What the two bf16 exit losses (ops/cpu_bf16/exit_loss.cpp and ops/cuda/exit_loss.cu) share on
// the host, written once so that they cannot drift apart: the argument checks, the workspace's
// per-chunk blocks and the closing sum of the per-exit terms into an ExitLossResult. Host code
// only (no CUDA types): the CUDA file includes it as C++17, and the bf16 element type is a
// template parameter (rrt::bf16 on the host, __nv_bfloat16 on the device). The maths is
// ops/exit_loss.h's; ops/cpu/exit_loss.cpp, the double-precision reference, keeps its own.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "ops/backend.h"
#include "ops/exit_loss.h"

namespace rrt::ops {

// The settings a call derives from its checked arguments.
struct ExitLossSetup {
  bool teacher = false;       // a teacher's hidden states were given
  bool self_distill = false;  // self-distillation asked for and an intermediate exit to take it
  bool backward = false;      // dh given: gradients wanted
  double tau = 1.0;           // temperature
  double alpha = 0.0;         // the KD weight; 0 without a teacher
};

// Checks what every bf16 backend checks before it touches memory (exits, sizes, temperature,
// the teacher's head, the workspace against workspace_bytes(V, chunk, exits, teacher,
// self_distill, R), the backend's own size function) and zeroes the optional per-exit outputs.
// Args is HeadLossArgs or ops::cuda::ExitLossArgs: the same field names.
template <typename Args, typename WorkspaceBytes>
ExitLossSetup begin_exit_loss(const Args& a, const char* where,
                              const WorkspaceBytes& workspace_bytes) {
  const int64_t M = a.M, D = a.D, V = a.V, E = a.exits;
  RRT_CHECK(E >= 1 && a.h != nullptr && a.exit_weights != nullptr, where,
            "needs at least one exit with its hidden states and weight");
  RRT_CHECK(M >= 0 && D > 0 && V > 0 && a.chunk > 0, where, "bad sizes M=", M, " D=", D, " V=", V,
            " chunk=", a.chunk);
  RRT_CHECK(a.temperature > 0, where, "temperature must be > 0, got ", a.temperature);
  RRT_CHECK(a.softcap >= 0 && a.teacher_softcap >= 0, where, "softcap ", a.softcap,
            " and teacher_softcap ", a.teacher_softcap, " must be >= 0 (0: off)");
  ExitLossSetup s;
  s.teacher = a.teacher_h != nullptr;
  RRT_CHECK(!s.teacher || (a.teacher_W != nullptr && a.teacher_D > 0), where,
            "a teacher needs its head and hidden size");
  s.self_distill = a.self_distill && E > 1;
  s.backward = a.dh != nullptr;
  s.tau = a.temperature;
  s.alpha = s.teacher ? a.alpha : 0.0;
  const size_t needed = workspace_bytes(V, a.chunk, E, s.teacher, a.self_distill, a.head_lora_rank);
  RRT_CHECK(a.workspace != nullptr && a.workspace_bytes >= needed, where, "workspace of ",
            a.workspace_bytes, " bytes is smaller than the ", needed,
            " needed ---> HINT: size it with exit_loss_workspace_bytes(V, chunk, exits, ...)");
  for (int64_t k = 0; k < E; ++k) {
    if (a.exit_ce) a.exit_ce[k] = 0;
    if (a.exit_kd) a.exit_kd[k] = 0;
    if (a.exit_sd) a.exit_sd[k] = 0;
  }
  return s;
}

// The per-chunk blocks of a bf16 exit loss's workspace.
template <typename Bf16>
struct ExitLossBlocks {
  float* logits = nullptr;        // [chunk, V] the exit being scored
  Bf16* dlogits = nullptr;        // [chunk, V]
  float* teacher_logp = nullptr;  // [chunk, V] teacher only
  float* final_logq = nullptr;    // [chunk, V] self-distillation only
  Bf16* lora_u = nullptr;         // [chunk, R]
  Bf16* lora_du = nullptr;        // [chunk, R]
};

// Takes the blocks from `carver` (a null base measures them), in this order.
template <typename Bf16, size_t kAlign>
ExitLossBlocks<Bf16> take_exit_loss_blocks(BufferCarver<kAlign>& carver, int64_t V, int64_t chunk,
                                           bool teacher, bool self_distill, int64_t R) {
  ExitLossBlocks<Bf16> b;
  b.logits = carver.template take<float>(chunk * V);
  b.dlogits = carver.template take<Bf16>(chunk * V);
  if (teacher) b.teacher_logp = carver.template take<float>(chunk * V);
  if (self_distill) b.final_logq = carver.template take<float>(chunk * V);
  if (R > 0) {
    b.lora_u = carver.template take<Bf16>(chunk * R);
    b.lora_du = carver.template take<Bf16>(chunk * R);
  }
  return b;
}

// The closing step: sums [E, 3] over the counted rows (CE, KD without tau^2, SD) become the
// per-exit means, written to the optional outputs and weighted by exit_weights into `result`
// (its `counted` already set).
template <typename Args>
void finish_exit_loss(const Args& a, const ExitLossSetup& s, const double* sums,
                      ExitLossResult& result) {
  const double inv_counted = 1.0 / static_cast<double>(result.counted);
  for (int64_t k = 0; k < a.exits; ++k) {
    const double w = a.exit_weights[k];
    const double ce = sums[3 * k] * inv_counted;
    const double kd = s.tau * s.tau * sums[3 * k + 1] * inv_counted;
    const double sd = sums[3 * k + 2] * inv_counted;
    if (a.exit_ce) a.exit_ce[k] = ce;
    if (a.exit_kd) a.exit_kd[k] = kd;
    if (a.exit_sd) a.exit_sd[k] = sd;
    result.ce += w * ce;
    result.kd += w * kd;
    result.sd += w * sd;
  }
  result.loss = (1.0 - s.alpha) * result.ce + s.alpha * result.kd + result.sd;
}

}  // namespace rrt::ops
