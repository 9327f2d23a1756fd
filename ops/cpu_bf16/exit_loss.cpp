// CpuBf16Backend::exit_loss (ops/cpu_bf16/backend.h): ops/cuda/exit_loss.cu's scheme on the host.
// Per chunk of rows: z = h W^T (+ (h A^T) B^T) by the bf16 GEMM into fp32 logits, the teacher's
// log p^tau likewise; one pass per row in 16 fp32 lanes gives the row's CE, KD, SD and
// dlogits = c [ (1 - a)(q - onehot) + a tau^2 dKD/dz + (q - q_final) ] rounded to bf16; then
// dh += dlogits W (bf16), dW += dlogits^T h (fp32) and the adapters' products, all by the bf16
// GEMM. A final logit soft-cap caps the fp32 logits (the teacher's with its own cap) after the
// GEMMs and scales dlogits by its slope. Row terms are summed over rows in double. The maths is
// ops/exit_loss.h's.
//
// This replaced scoring each chunk with the fp32 op on widened rows and a widened head, which
// cost 41% of a SmolLM2 distillation step in bf16 (fp32 GEMMs on a 49,152 x 576 head, double
// exp per logit) and kept fp32 copies of both heads resident (docs/benchmarks.md).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "ops/cpu_bf16/backend.h"
#include "ops/cpu_bf16/gemm.h"
#include "ops/cpu_bf16/vector_exp.h"
#include "ops/exit_loss_common.h"

namespace rrt {

using ops::Divergence;
using ops::cpu_bf16::exp_lanes;
using ops::cpu_bf16::F16;
using ops::cpu_bf16::gemm;
using ops::cpu_bf16::I16;
using ops::cpu_bf16::kLanes;
using ops::cpu_bf16::lanes_below;
using ops::cpu_bf16::load;
using ops::cpu_bf16::max_of;
using ops::cpu_bf16::softcap_slope_lanes;
using ops::cpu_bf16::splat;
using ops::cpu_bf16::store;
using ops::cpu_bf16::sum;

namespace {

constexpr const char* kWhere = "cpu-bf16 exit_loss";

// The workspace: ops/exit_loss_common.h's blocks, each 256-byte aligned; a null base measures it.
struct Layout : ops::ExitLossBlocks<bf16> {
  size_t bytes = 0;
};
Layout layout(void* ws, int64_t V, int64_t chunk, bool teacher, bool self_distill, int64_t R) {
  BufferCarver<256> carver{static_cast<char*>(ws)};
  Layout l;
  static_cast<ops::ExitLossBlocks<bf16>&>(l) =
      ops::take_exit_loss_blocks<bf16>(carver, V, chunk, teacher, self_distill, R);
  l.bytes = carver.used;
  return l;
}

// Lanes [0, n) of p, the rest `fill`.
F16 load_or(const float* p, int64_t n, float fill) {
  if (n == kLanes) return load(p);
  return lanes_below(n) ? load(p, n) : splat(fill);
}

F16 select(I16 keep, F16 v) { return keep ? v : splat(0.f); }

// log p^tau = z / tau - lse(z / tau) of one teacher row, in place.
void teacher_logp_row(float* row, int64_t V, float inv_tau) {
  const float inf = std::numeric_limits<float>::infinity();
  F16 vmax = splat(-inf);
  for (int64_t j = 0; j < V; j += kLanes) {
    const F16 v = load_or(row + j, std::min(kLanes, V - j), -inf);
    vmax = v > vmax ? v : vmax;
  }
  const float m = max_of(vmax);
  F16 vs{};
  for (int64_t j = 0; j < V; j += kLanes) {
    const int64_t n = std::min(kLanes, V - j);
    vs += select(lanes_below(n), exp_lanes((load(row + j, n) - m) * inv_tau));
  }
  const float lse = m * inv_tau + std::log(sum(vs));
  for (int64_t j = 0; j < V; j += kLanes) {
    const int64_t n = std::min(kLanes, V - j);
    store(row + j, load(row + j, n) * inv_tau - lse, n);
  }
}

// What one exit's rows share.
struct ExitRows {
  int64_t V = 0;
  Divergence divergence = Divergence::forward_kl;
  float inv_tau = 1, grad_scale = 0, ce_w = 1, kd_w = 0;
  float inv_cap = 0;  // 1 / the final logit soft-cap; 0: none (z is then uncapped)
};
struct RowTerms {
  double ce = 0, kd = 0, sd = 0;  // KD without tau^2
};

F16 tv_sign(F16 q, F16 p) { return q > p ? splat(0.5f) : (q < p ? splat(-0.5f) : splat(0.f)); }

// One counted row: z [V] its logits; tp the teacher's log p^tau (or null); fq the final exit's
// log q (an intermediate exit under self-distillation, or null); fq_out where the final exit
// writes its log q (or null); dl its bf16 gradient (or null). The CUDA row kernel, pass for pass.
RowTerms score_row(const ExitRows& a, const float* z, int32_t target, const float* tp,
                   const float* fq, float* fq_out, bf16* dl) {
  const int64_t V = a.V;
  const float inf = std::numeric_limits<float>::infinity();
  const bool teacher = tp != nullptr;
  F16 vmax = splat(-inf);
  for (int64_t j = 0; j < V; j += kLanes) {
    const F16 v = load_or(z + j, std::min(kLanes, V - j), -inf);
    vmax = v > vmax ? v : vmax;
  }
  const float m = max_of(vmax);
  F16 s1{}, s_tau{};
  for (int64_t j = 0; j < V; j += kLanes) {
    const int64_t n = std::min(kLanes, V - j);
    const I16 keep = lanes_below(n);
    const F16 x = load(z + j, n) - m;
    s1 += select(keep, exp_lanes(x));
    if (teacher) s_tau += select(keep, exp_lanes(x * a.inv_tau));
  }
  const float lse1 = m + std::log(sum(s1));
  const float lse_tau = teacher ? m * a.inv_tau + std::log(sum(s_tau)) : lse1;

  F16 kd{}, sd{}, qs{};
  for (int64_t j = 0; j < V; j += kLanes) {
    const int64_t n = std::min(kLanes, V - j);
    const I16 keep = lanes_below(n);
    const F16 zj = load(z + j, n);
    if (teacher) {
      const F16 lq = zj * a.inv_tau - lse_tau, lp = load(tp + j, n);
      switch (a.divergence) {
        case Divergence::forward_kl:
          kd += select(keep, exp_lanes(lp) * (lp - lq));
          break;
        case Divergence::reverse_kl:
          kd += select(keep, exp_lanes(lq) * (lq - lp));
          break;
        case Divergence::tv: {
          const F16 q = exp_lanes(lq), p = exp_lanes(lp), d = q - p;
          kd += select(keep, (d < 0.f ? -d : d) * 0.5f);
          qs += select(keep, q * tv_sign(q, p));
          break;
        }
      }
    }
    if (fq_out) store(fq_out + j, zj - lse1, n);
    if (fq) {
      const F16 lf = load(fq + j, n);
      sd += select(keep, exp_lanes(lf) * (lf - (zj - lse1)));
    }
  }
  RowTerms t;
  t.ce = static_cast<double>(lse1) - static_cast<double>(z[target]);
  t.kd = sum(kd);
  t.sd = sum(sd);
  if (dl == nullptr) return t;
  const float qsum = a.divergence == Divergence::reverse_kl ? sum(kd) : sum(qs);
  for (int64_t j = 0; j < V; j += kLanes) {
    const int64_t n = std::min(kLanes, V - j);
    const F16 zj = load(z + j, n);
    const F16 q1 = exp_lanes(zj - lse1);
    F16 g = q1 * a.ce_w;
    if (teacher) {
      const F16 lq = zj * a.inv_tau - lse_tau, lp = load(tp + j, n);
      const F16 q = exp_lanes(lq);
      switch (a.divergence) {
        case Divergence::forward_kl:
          g += a.kd_w * (q - exp_lanes(lp));
          break;
        case Divergence::reverse_kl:
          g += a.kd_w * q * (lq - lp - qsum);
          break;
        case Divergence::tv:
          g += a.kd_w * q * (tv_sign(q, exp_lanes(lp)) - qsum);
          break;
      }
    }
    if (fq) g += q1 - exp_lanes(load(fq + j, n));
    g *= a.grad_scale;
    if (target >= j && target < j + n) g[target - j] -= a.grad_scale * a.ce_w;
    if (a.inv_cap > 0) g *= softcap_slope_lanes(zj, a.inv_cap);
    store(dl + j, g, n);
  }
  return t;
}

}  // namespace

size_t CpuBf16Backend::exit_loss_workspace_bytes(int64_t V, int64_t chunk, int64_t exits,
                                                 bool teacher, bool self_distill,
                                                 int64_t head_lora_rank) const {
  return layout(nullptr, V, chunk, teacher, self_distill && exits > 1, head_lora_rank).bytes;
}

ops::ExitLossResult CpuBf16Backend::exit_loss(const HeadLossArgs<Act>& a) {
  const int64_t M = a.M, D = a.D, V = a.V, E = a.exits, R = a.head_lora_rank;
  const ops::ExitLossSetup setup = ops::begin_exit_loss(
      a, kWhere, [this](auto... size) { return exit_loss_workspace_bytes(size...); });
  const bool teacher = setup.teacher, self_distill = setup.self_distill;
  const bool backward = setup.backward;
  const double tau = setup.tau, alpha = setup.alpha;
  ops::ExitLossResult result;
  for (int64_t i = 0; i < M; ++i) {
    if (a.targets[i] == a.ignore_index) continue;
    RRT_CHECK(a.targets[i] >= 0 && a.targets[i] < V, kWhere, "target ", a.targets[i], " at row ", i,
              " is outside the vocabulary of ", V);
    ++result.counted;
  }
  if (result.counted == 0) return result;
  const double inv_counted = 1.0 / static_cast<double>(result.counted);
  const Layout ws = layout(a.workspace, V, a.chunk, teacher, self_distill, R);
  const int64_t chunk = std::min(a.chunk, M), Dt = a.teacher_D;
  std::vector<double> sums(static_cast<size_t>(3 * E), 0.0);  // CE, KD (no tau^2), SD per exit

  for (int64_t r0 = 0; r0 < M; r0 += chunk) {
    const int64_t rows = std::min(chunk, M - r0);
    const int32_t* targets = a.targets + r0;
    if (teacher) {
      gemm(false, true, rows, V, Dt, 1.f, a.teacher_h + r0 * Dt, Dt, a.teacher_W, Dt, 0.f,
           ws.teacher_logp, V);
      softcap_logits(ws.teacher_logp, rows * V, a.teacher_softcap);
#pragma omp parallel for schedule(static)
      for (int64_t r = 0; r < rows; ++r)
        if (targets[r] != a.ignore_index)
          teacher_logp_row(ws.teacher_logp + r * V, V, static_cast<float>(1.0 / tau));
    }
    // The final exit first: its log-probabilities are the self-distillation targets.
    for (int64_t step = 0; step < E; ++step) {
      const int64_t k = step == 0 ? E - 1 : step - 1;
      const bool is_final = k == E - 1;
      const bf16* h = a.h[k] + r0 * D;
      const bf16* A = a.lora_A ? a.lora_A[k] : nullptr;
      const bf16* B = a.lora_B ? a.lora_B[k] : nullptr;
      const bool lora = A != nullptr && B != nullptr && R > 0;
      gemm(false, true, rows, V, D, 1.f, h, D, a.W, D, 0.f, ws.logits, V);
      if (lora) {
        gemm(false, true, rows, R, D, 1.f, h, D, A, D, 0.f, ws.lora_u, R);
        gemm(false, true, rows, V, R, 1.f, ws.lora_u, R, B, R, 1.f, ws.logits, V);
      }
      softcap_logits(ws.logits, rows * V, a.softcap);
      ExitRows er;
      er.V = V;
      er.divergence = a.divergence;
      er.inv_tau = static_cast<float>(1.0 / tau);
      er.grad_scale =
          static_cast<float>(static_cast<double>(a.weight) * a.exit_weights[k] * inv_counted);
      er.ce_w = static_cast<float>(1.0 - alpha);
      er.kd_w = static_cast<float>(alpha * tau);  // tau^2 of the value times dz / tau's 1 / tau
      er.inv_cap = a.softcap > 0 ? static_cast<float>(1.0 / a.softcap) : 0.f;
      double ce = 0, kd = 0, sd = 0;
#pragma omp parallel for schedule(static) reduction(+ : ce, kd, sd)
      for (int64_t r = 0; r < rows; ++r) {
        bf16* dl = backward ? ws.dlogits + r * V : nullptr;
        if (targets[r] == a.ignore_index) {  // the gradient GEMMs read every row of the chunk
          if (dl) std::fill(dl, dl + V, bf16(0.f));
          continue;
        }
        const RowTerms t = score_row(
            er, ws.logits + r * V, targets[r], teacher ? ws.teacher_logp + r * V : nullptr,
            self_distill && !is_final ? ws.final_logq + r * V : nullptr,
            self_distill && is_final ? ws.final_logq + r * V : nullptr, dl);
        ce += t.ce;
        kd += t.kd;
        sd += t.sd;
      }
      sums[3 * k] += ce;
      sums[3 * k + 1] += kd;
      sums[3 * k + 2] += sd;
      if (!backward) continue;
      bf16* dh = a.dh[k] ? a.dh[k] + r0 * D : nullptr;
      if (dh) gemm(false, false, rows, D, V, 1.f, ws.dlogits, V, a.W, D, 1.f, dh, D);
      if (a.dW) gemm(true, false, V, D, rows, 1.f, ws.dlogits, V, h, D, 1.f, a.dW, D);
      if (lora) {
        float* dA = a.dA ? a.dA[k] : nullptr;
        float* dB = a.dB ? a.dB[k] : nullptr;
        gemm(false, false, rows, R, V, 1.f, ws.dlogits, V, B, R, 0.f, ws.lora_du, R);  // du = g B
        if (dB) gemm(true, false, V, R, rows, 1.f, ws.dlogits, V, ws.lora_u, R, 1.f, dB, R);
        if (dA) gemm(true, false, R, D, rows, 1.f, ws.lora_du, R, h, D, 1.f, dA, D);
        if (dh) gemm(false, false, rows, D, R, 1.f, ws.lora_du, R, A, D, 1.f, dh, D);
      }
    }
  }
  ops::finish_exit_loss(a, setup, sums.data(), result);
  return result;
}

}  // namespace rrt
