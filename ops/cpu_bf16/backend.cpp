// CpuBf16Backend (ops/cpu_bf16/backend.h): construction, memory, the projections and their LoRA
// over ops/cpu_bf16/gemm.h.
#include "ops/cpu_bf16/backend.h"

#include <omp.h>

#include <algorithm>
#include <string>

#include "core/arena.h"
#include "ops/cpu_bf16/attention.h"
#include "ops/cpu_bf16/convert.h"
#include "ops/rope.h"

namespace rrt {

using ops::cpu_bf16::gemm;

CpuBf16Backend::CpuBf16Backend(int threads)
    : threads_(threads > 0 ? threads : omp_get_max_threads()) {}

void CpuBf16Backend::prepare(const BackendPlan& plan) {
  // ops::RopeTable's double angles, rounded to fp32 once: what the fp32 backend multiplies by.
  const ops::RopeTable table(plan.max_attention.T, plan.rot_dim, plan.rope_theta,
                             plan.rope_scaling);
  rope_half_ = plan.rot_dim / 2;
  rope_positions_ = plan.max_attention.T;
  rope_cos_[0].assign(table.cos.begin(), table.cos.end());
  rope_sin_[0].assign(table.sin.begin(), table.sin.end());
  rope_cos_[1].clear();
  rope_sin_[1].clear();
  if (plan.rope_local_theta > 0) {
    const ops::RopeTable local(plan.max_attention.T, plan.rot_dim, plan.rope_local_theta);
    rope_cos_[1].assign(local.cos.begin(), local.cos.end());
    rope_sin_[1].assign(local.sin.begin(), local.sin.end());
  }
  attn_ws_.assign(
      static_cast<size_t>(threads_ * ops::cpu_bf16::attention_workspace_elems(plan.max_attention)),
      0.f);
}

const float* CpuBf16Backend::rope_cos(bool local) const {
  RRT_CHECK(!local || !rope_cos_[1].empty() || rope_half_ == 0, "rope",
            "the local RoPE table was not prepared (BackendPlan::rope_local_theta is 0)");
  return rope_cos_[local ? 1 : 0].data();
}

BackendBlock CpuBf16Backend::allocate(size_t bytes, const char* what) const {
  return allocate_zeroed(static_cast<int64_t>(bytes), std::string("model memory (") + what + ")");
}

void CpuBf16Backend::upload_bf16(Act* dst, const float* host, int64_t n, const char*) const {
  constexpr int64_t kSlice = 1 << 16;
#pragma omp parallel for schedule(static)
  for (int64_t at = 0; at < n; at += kSlice)
    ops::cpu_bf16::to_bf16(host + at, dst + at, std::min(kSlice, n - at));
}

void CpuBf16Backend::project(const Act* x, const Act* W, const Act* bias, const Act* A,
                             const Act* B, Act* u, Act* y, int64_t M, int64_t in, int64_t out,
                             int64_t R, float scale) const {
  const bool lora = R > 0 && A != nullptr;
  if (lora) {
    gemm(false, true, M, R, in, 1.f, x, in, A, in, 0.f, u, R);     // u = x A^T
    gemm(false, true, M, out, R, scale, u, R, B, R, 0.f, y, out);  // y = s u B^T
  }
  gemm(false, true, M, out, in, 1.f, x, in, W, in, lora ? 1.f : 0.f, y, out, bias);
}

void CpuBf16Backend::project_backward(const Act* x, const Act* W, const Act* A, const Act* B,
                                      const Act* u, const Act* dy, Act* dx, float* dW, float* dbias,
                                      float* dA, float* dB, Act* du, int64_t M, int64_t in,
                                      int64_t out, int64_t R, float scale) const {
  if (dx) gemm(false, false, M, in, out, 1.f, dy, out, W, in, 1.f, dx, in);  // dx += dy W
  if (dW) gemm(true, false, out, in, M, 1.f, dy, out, x, in, 1.f, dW, in);   // dW += dy^T x
  if (dbias) {
    // Column blocks in parallel, rows in order: the same sums on any thread count.
#pragma omp parallel for schedule(static)
    for (int64_t j0 = 0; j0 < out; j0 += ops::cpu_bf16::kLanes) {
      const int64_t w = std::min(ops::cpu_bf16::kLanes, out - j0);
      ops::cpu_bf16::F16 acc = ops::cpu_bf16::load(dbias + j0, w);
      for (int64_t i = 0; i < M; ++i) acc += ops::cpu_bf16::load(dy + i * out + j0, w);
      ops::cpu_bf16::store(dbias + j0, acc, w);
    }
  }
  if (R == 0 || A == nullptr) return;
  gemm(false, false, M, R, out, scale, dy, out, B, R, 0.f, du, R);         // du = s dy B
  if (dB) gemm(true, false, out, R, M, scale, dy, out, u, R, 1.f, dB, R);  // dB += s dy^T u
  if (dA) gemm(true, false, R, in, M, 1.f, du, R, x, in, 1.f, dA, in);     // dA += du^T x
  if (dx) gemm(false, false, M, in, R, 1.f, du, R, A, in, 1.f, dx, in);    // dx += du A
}

void CpuBf16Backend::attention_forward(const Act* q, const Act* k, const Act* v, Act* out,
                                       float* lse, const ops::AttentionShape& shape,
                                       const ops::AttentionMask& mask) {
  ops::cpu_bf16::attention_forward(q, k, v, out, lse, shape, attn_ws_.data(), threads_, mask);
}

void CpuBf16Backend::attention_backward(const Act* q, const Act* k, const Act* v, const Act* out,
                                        const float* lse, const Act* dout, Act* dq, Act* dk,
                                        Act* dv, const ops::AttentionShape& shape,
                                        const ops::AttentionMask& mask) {
  ops::cpu_bf16::attention_backward(q, k, v, out, lse, dout, dq, dk, dv, shape, attn_ws_.data(),
                                    threads_, mask);
}

}  // namespace rrt
