#include "ops/exit_loss.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "ops/logit_softcap.h"
#include "ops/matmul.h"

namespace rrt::ops {

namespace {

// Row statistics of one exit's logits: log-sum-exp at temperature 1 and at tau.
struct RowStats {
  double lse1 = 0, lse_tau = 0;
};

template <typename S>
RowStats row_stats(const S* z, int64_t V, double tau, bool need_tau) {
  const double m = static_cast<double>(*std::max_element(z, z + V));
  double s1 = 0, s_tau = 0;
  for (int64_t j = 0; j < V; ++j) {
    const double x = static_cast<double>(z[j]) - m;
    s1 += std::exp(x);
    if (need_tau) s_tau += std::exp(x / tau);
  }
  RowStats r;
  r.lse1 = m + std::log(s1);
  r.lse_tau = need_tau ? m / tau + std::log(s_tau) : r.lse1;
  return r;
}

// z_k (+)= h W^T + s (h A^T) B^T for rows of one chunk; u keeps h A^T for the backward.
template <typename S>
void exit_logits(const S* h, const S* W, const S* A, const S* B, S* u, S* z, int64_t rows,
                 int64_t D, int64_t V, int64_t R, S scale) {
  gemm<S>(false, true, rows, V, D, S(1), h, D, W, D, S(0), z, V);
  if (A != nullptr && R > 0) {
    gemm<S>(false, true, rows, R, D, S(1), h, D, A, D, S(0), u, R);
    gemm<S>(false, true, rows, V, R, scale, u, R, B, R, S(1), z, V);
  }
}

}  // namespace

template <typename S>
ExitLossResult exit_loss(const ExitLossArgs<S>& a) {
  const int64_t M = a.M, D = a.D, V = a.V, E = a.exits, R = a.head_lora_rank;
  RRT_CHECK(E >= 1 && a.h != nullptr && a.exit_weights != nullptr, "exit_loss",
            "needs at least one exit with its hidden states and weight");
  RRT_CHECK(a.temperature > 0, "exit_loss", "temperature must be > 0, got ", a.temperature);
  RRT_CHECK(a.softcap >= 0 && a.teacher_softcap >= 0, "exit_loss", "softcap ", a.softcap,
            " and teacher_softcap ", a.teacher_softcap, " must be >= 0 (0: off)");
  const bool teacher = a.teacher_h != nullptr;
  RRT_CHECK(!teacher || (a.teacher_W != nullptr && a.teacher_D > 0), "exit_loss",
            "a teacher needs its head and hidden size");
  const bool self_distill = a.self_distill && E > 1;
  const bool backward = a.dh != nullptr;
  const double tau = a.temperature, alpha = teacher ? a.alpha : 0.0;

  ExitLossResult result;
  for (int64_t i = 0; i < M; ++i) {
    if (a.targets[i] == a.ignore_index) continue;
    RRT_CHECK(a.targets[i] >= 0 && a.targets[i] < V, "exit_loss", "target ", a.targets[i],
              " at row ", i, " is outside the vocabulary of ", V);
    ++result.counted;
  }
  for (int64_t k = 0; k < E; ++k) {
    if (a.exit_ce) a.exit_ce[k] = 0;
    if (a.exit_kd) a.exit_kd[k] = 0;
    if (a.exit_sd) a.exit_sd[k] = 0;
  }
  if (result.counted == 0) return result;
  const double inv_counted = 1.0 / static_cast<double>(result.counted);

  // Scratch: the exit being scored, the teacher's log p^tau, the final exit's log q_final.
  const int64_t chunk = std::max<int64_t>(1, std::min(a.chunk, M));
  S* cur = a.workspace;
  S* teacher_logp = cur + chunk * V;
  S* final_logq = teacher_logp + (teacher ? chunk * V : 0);
  S* lora_u = final_logq + (self_distill ? chunk * V : 0);
  S* lora_du = lora_u + chunk * R;

  for (int64_t r0 = 0; r0 < M; r0 += chunk) {
    const int64_t rows = std::min(chunk, M - r0);
    const int32_t* targets = a.targets + r0;
    if (teacher) {
      gemm<S>(false, true, rows, V, a.teacher_D, S(1), a.teacher_h + r0 * a.teacher_D, a.teacher_D,
              a.teacher_W, a.teacher_D, S(0), teacher_logp, V);
      softcap_logits(teacher_logp, rows * V, a.teacher_softcap);
#pragma omp parallel for schedule(static)
      for (int64_t r = 0; r < rows; ++r) {
        if (targets[r] == a.ignore_index) continue;
        S* row = teacher_logp + r * V;
        const double lse = row_stats(row, V, tau, true).lse_tau;
        for (int64_t j = 0; j < V; ++j)
          row[j] = static_cast<S>(static_cast<double>(row[j]) / tau - lse);
      }
    }
    // The final exit first: its log-probabilities are the self-distillation targets.
    for (int64_t step = 0; step < E; ++step) {
      const int64_t k = step == 0 ? E - 1 : step - 1;
      const bool is_final = k == E - 1;
      const bool sd_here = self_distill && !is_final;
      const S* h = a.h[k] + r0 * D;
      const S* A = a.lora_A ? a.lora_A[k] : nullptr;
      const S* B = a.lora_B ? a.lora_B[k] : nullptr;
      exit_logits(h, a.W, A, B, lora_u, cur, rows, D, V, R, a.head_lora_scale);
      softcap_logits(cur, rows * V, a.softcap);
      const double c = static_cast<double>(a.weight) * a.exit_weights[k] * inv_counted;
      double ce_sum = 0, kd_sum = 0, sd_sum = 0;
#pragma omp parallel for schedule(static) reduction(+ : ce_sum, kd_sum, sd_sum)
      for (int64_t r = 0; r < rows; ++r) {
        S* z = cur + r * V;
        const int32_t target = targets[r];
        if (target == a.ignore_index) {
          if (backward) std::fill(z, z + V, S(0));
          continue;
        }
        const RowStats st = row_stats(z, V, tau, teacher);
        ce_sum += st.lse1 - static_cast<double>(z[target]);
        if (is_final && self_distill) {
          S* f = final_logq + r * V;
          for (int64_t j = 0; j < V; ++j)
            f[j] = static_cast<S>(static_cast<double>(z[j]) - st.lse1);
        }
        const S* tp = teacher ? teacher_logp + r * V : nullptr;
        const S* fq = sd_here ? final_logq + r * V : nullptr;
        // Values, and the one sum over q that the reverse-KL and TV gradients need.
        double kd = 0, sd = 0, qs = 0;
        for (int64_t j = 0; j < V; ++j) {
          const double zj = static_cast<double>(z[j]);
          if (teacher) {
            const double lq = zj / tau - st.lse_tau, lp = static_cast<double>(tp[j]);
            switch (a.divergence) {
              case Divergence::forward_kl:
                kd += std::exp(lp) * (lp - lq);
                break;
              case Divergence::reverse_kl:
                kd += std::exp(lq) * (lq - lp);
                break;
              case Divergence::tv: {
                const double q = std::exp(lq), p = std::exp(lp);
                kd += 0.5 * std::fabs(q - p);
                qs += q * (q > p ? 0.5 : q < p ? -0.5 : 0.0);
                break;
              }
            }
          }
          if (fq) {
            const double lf = static_cast<double>(fq[j]);
            sd += std::exp(lf) * (lf - (zj - st.lse1));
          }
        }
        if (a.divergence == Divergence::reverse_kl) qs = kd;
        kd_sum += kd;
        sd_sum += sd;
        if (!backward) continue;
        // g = c [ (1 - a)(q - onehot) + a tau^2 dKD/dz + (q - q_final) ]
        const double ce_w = 1.0 - alpha, kd_w = alpha * tau;  // tau^2 * (1 / tau)
        for (int64_t j = 0; j < V; ++j) {
          const double zj = static_cast<double>(z[j]);
          const double q1 = std::exp(zj - st.lse1);
          double g = ce_w * q1;
          if (teacher) {
            const double lq = zj / tau - st.lse_tau, lp = static_cast<double>(tp[j]);
            const double q = std::exp(lq);
            switch (a.divergence) {
              case Divergence::forward_kl:
                g += kd_w * (q - std::exp(lp));
                break;
              case Divergence::reverse_kl:
                g += kd_w * q * (lq - lp - qs);
                break;
              case Divergence::tv: {
                const double p = std::exp(lp);
                g += kd_w * q * ((q > p ? 0.5 : q < p ? -0.5 : 0.0) - qs);
                break;
              }
            }
          }
          if (fq) g += q1 - std::exp(static_cast<double>(fq[j]));
          if (j == target) g -= ce_w;
          // dc/dz of the soft-cap, read off the capped logit this gradient replaces
          if (a.softcap > 0) g *= softcap_slope(zj, a.softcap);
          z[j] = static_cast<S>(c * g);
        }
      }
      const double w = a.exit_weights[k];
      const double ce = ce_sum * inv_counted, kd = tau * tau * kd_sum * inv_counted;
      const double sd = sd_sum * inv_counted;
      if (a.exit_ce) a.exit_ce[k] += ce;
      if (a.exit_kd) a.exit_kd[k] += kd;
      if (a.exit_sd) a.exit_sd[k] += sd;
      result.ce += w * ce;
      result.kd += w * kd;
      result.sd += w * sd;
      if (!backward) continue;
      S* dh = a.dh[k] ? a.dh[k] + r0 * D : nullptr;
      if (dh) gemm<S>(false, false, rows, D, V, S(1), cur, V, a.W, D, S(1), dh, D);
      if (a.dW) gemm<S>(true, false, V, D, rows, S(1), cur, V, h, D, S(1), a.dW, D);
      if (A != nullptr && R > 0) {
        S* dA = a.dA ? a.dA[k] : nullptr;
        S* dB = a.dB ? a.dB[k] : nullptr;
        const S s = a.head_lora_scale;
        gemm<S>(false, false, rows, R, V, s, cur, V, B, R, S(0), lora_du, R);  // du = s g B
        if (dB) gemm<S>(true, false, V, R, rows, s, cur, V, lora_u, R, S(1), dB, R);
        if (dA) gemm<S>(true, false, R, D, rows, S(1), lora_du, R, h, D, S(1), dA, D);
        if (dh) gemm<S>(false, false, rows, D, R, S(1), lora_du, R, A, D, S(1), dh, D);
      }
    }
  }
  result.loss = (1.0 - alpha) * result.ce + alpha * result.kd + result.sd;
  return result;
}

template ExitLossResult exit_loss<float>(const ExitLossArgs<float>&);
template ExitLossResult exit_loss<double>(const ExitLossArgs<double>&);

}  // namespace rrt::ops
