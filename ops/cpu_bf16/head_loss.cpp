// CpuBf16Backend's chunked cross-entropy head (ops/cpu_bf16/backend.h).
//
// The plain CE (lm_head_cross_entropy) is ops/cuda/cross_entropy.cu's scheme on the host: per
// chunk of rows, logits = h W^T by the bf16 GEMM (ops/cpu_bf16/gemm.h, fp32 out); a vectorised
// fp32 softmax per row gives the loss (summed over rows in double) and dlogits = grad_scale *
// (softmax - onehot) rounded to bf16; then dh += dlogits W (bf16, one rounding) and dW +=
// dlogits^T h (fp32) by the bf16 GEMM. A final logit soft-cap caps the fp32 logits after the
// GEMM (softcap_logits) and scales dlogits by its slope before the rounding. Keeping dlogits fp32
// would need the fp32 GEMM on a widened head and rows, which is what this replaced
// (docs/benchmarks.md, the bf16 head).
//
// The exit / distillation loss is ops/cpu_bf16/exit_loss.cpp.
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "ops/cpu_bf16/backend.h"
#include "ops/cpu_bf16/convert.h"
#include "ops/cpu_bf16/vector_exp.h"
#include "ops/logit_softcap.h"

namespace rrt {

using ops::cpu_bf16::exp_lanes;
using ops::cpu_bf16::F16;
using ops::cpu_bf16::kLanes;
using ops::cpu_bf16::load;
using ops::cpu_bf16::softcap_slope_lanes;
using ops::cpu_bf16::splat;
using ops::cpu_bf16::store;
using ops::cpu_bf16::sum;

namespace {

constexpr const char* kCe = "cpu-bf16 lm_head_cross_entropy";

// One kept row of fp32 logits [V]: returns its loss lse - x[target]; with dl, writes
// dl = bf16(grad_scale * (softmax - onehot)) as the CUDA kernel does, times the soft-cap's slope
// 1 - (x / cap)^2 when inv_cap > 0 (x the capped logits). Without a cap the row is overwritten
// by exp(x - max) on the way; with one it is kept (the slope reads it) and exp recomputed.
double softmax_row(float* x, int64_t V, int32_t target, float grad_scale, bf16* dl, float inv_cap) {
  const float x_target = x[target];
  const bool keep = inv_cap > 0;
  const int64_t full = V / kLanes * kLanes;
  F16 vmax = splat(-std::numeric_limits<float>::infinity());
  for (int64_t j = 0; j < full; j += kLanes) {
    const F16 v = load(x + j);
    vmax = v > vmax ? v : vmax;
  }
  float m = -std::numeric_limits<float>::infinity();
  for (int i = 0; i < kLanes; ++i) m = std::max(m, vmax[i]);
  for (int64_t j = full; j < V; ++j) m = std::max(m, x[j]);
  F16 vsum{};
  for (int64_t j = 0; j < full; j += kLanes) {
    const F16 e = exp_lanes(load(x + j) - m);
    if (!keep) store(x + j, e);
    vsum += e;
  }
  float s = sum(vsum);
  for (int64_t j = full; j < V; ++j) {
    const float e = std::exp(x[j] - m);
    if (!keep) x[j] = e;
    s += e;
  }
  if (dl != nullptr && !keep) {
    const float scale = grad_scale / s;
    for (int64_t j = 0; j < full; j += kLanes) store(dl + j, load(x + j) * scale);
    for (int64_t j = full; j < V; ++j) dl[j] = bf16::from_float(x[j] * scale);
    dl[target] = bf16::from_float(x[target] * scale - grad_scale);
  } else if (dl != nullptr) {
    const float scale = grad_scale / s;
    for (int64_t j = 0; j < full; j += kLanes) {
      const F16 v = load(x + j);
      store(dl + j, exp_lanes(v - m) * scale * softcap_slope_lanes(v, inv_cap));
    }
    const auto slope = [&](float c) { return ops::softcap_slope(c, 1.f / inv_cap); };
    for (int64_t j = full; j < V; ++j)
      dl[j] = bf16::from_float(std::exp(x[j] - m) * scale * slope(x[j]));
    dl[target] = bf16::from_float((std::exp(x_target - m) * scale - grad_scale) * slope(x_target));
  }
  return static_cast<double>(m) + std::log(static_cast<double>(s)) - x_target;
}

}  // namespace

ops::CrossEntropyResult CpuBf16Backend::lm_head_cross_entropy(
    const Act* h, const Act* W, const int32_t* targets, Act* dh, float* dW, int64_t M, int64_t D,
    int64_t V, int32_t ignore_index, float weight, void* workspace, size_t bytes, int64_t chunk,
    double softcap) {
  RRT_CHECK(M >= 0 && D > 0 && V > 0, kCe, "bad sizes M=", M, " D=", D, " V=", V);
  RRT_CHECK(softcap >= 0, kCe, "softcap must be >= 0 (0: off), got ", softcap);
  const float inv_cap = softcap > 0 ? static_cast<float>(1.0 / softcap) : 0.f;
  ops::CrossEntropyResult result;
  for (int64_t i = 0; i < M; ++i) {
    if (targets[i] == ignore_index) continue;
    RRT_CHECK(targets[i] >= 0 && targets[i] < V, kCe, "target ", targets[i], " at row ", i,
              " is outside the vocabulary of ", V);
    ++result.counted;
  }
  if (result.counted == 0) return result;
  chunk = std::clamp<int64_t>(chunk, 1, M);
  RRT_CHECK(workspace != nullptr && bytes >= lm_head_workspace_bytes(V, chunk), kCe,
            "workspace of ", bytes, " bytes is smaller than the ",
            lm_head_workspace_bytes(V, chunk), " that V=", V, ", chunk=", chunk,
            " need ---> HINT: size it with CpuBf16Backend::lm_head_workspace_bytes(V, chunk)");
  float* logits = static_cast<float*>(workspace);  // [chunk, V]
  bf16* dlogits = reinterpret_cast<bf16*>(static_cast<char*>(workspace) + logits_bytes(V, chunk));
  const bool backward = dh != nullptr || dW != nullptr;
  const float grad_scale = weight / static_cast<float>(result.counted);
  double loss_sum = 0;
  for (int64_t r0 = 0; r0 < M; r0 += chunk) {
    const int64_t rows = std::min(chunk, M - r0);
    const bf16* h_c = h + r0 * D;
    ops::cpu_bf16::gemm(false, true, rows, V, D, 1.f, h_c, D, W, D, 0.f, logits, V);
    softcap_logits(logits, rows * V, softcap);
    double chunk_loss = 0;
#pragma omp parallel for schedule(static) reduction(+ : chunk_loss)
    for (int64_t r = 0; r < rows; ++r) {
      const int32_t target = targets[r0 + r];
      bf16* dl = backward ? dlogits + r * V : nullptr;
      if (target == ignore_index) {  // the gradient GEMMs read every row of the chunk
        if (dl) std::fill(dl, dl + V, bf16(0.f));
        continue;
      }
      chunk_loss += softmax_row(logits + r * V, V, target, grad_scale, dl, inv_cap);
    }
    loss_sum += chunk_loss;
    if (dh)
      ops::cpu_bf16::gemm(false, false, rows, D, V, 1.f, dlogits, V, W, D, 1.f, dh + r0 * D, D);
    if (dW) ops::cpu_bf16::gemm(true, false, V, D, rows, 1.f, dlogits, V, h_c, D, 1.f, dW, D);
  }
  result.mean_loss = loss_sum / static_cast<double>(result.counted);
  return result;
}

}  // namespace rrt
