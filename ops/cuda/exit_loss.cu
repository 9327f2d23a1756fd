// ops/cuda/exit_loss.h: the row kernels are ops/cpu/exit_loss.cpp's per-row loops, one block per
// row, pass for pass (max, the two log-sum-exps, the values, the gradient).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/cuda/cuda_check.h"
#include "core/error.h"
#include "ops/cuda/elementwise_util.cuh"
#include "ops/cuda/exit_loss.h"
#include "ops/cuda/vector_ops.h"
#include "ops/exit_loss_common.h"
#include "ops/logit_softcap.h"

namespace rrt::ops::cuda {

namespace {

using detail::block_sum;

constexpr const char* kWhere = "cuda exit_loss";
constexpr int kRowThreads = 512;
constexpr int kCountThreads = 1024;
constexpr int kSumThreads = 256;

struct Counters {
  unsigned long long first_bad_row;  // smallest row with an invalid target; all ones if none
  int64_t counted;                   // rows whose target is not ignore_index
};

// Workspace: the counters and sums, ops/exit_loss_common.h's per-chunk blocks, the row terms;
// each piece 256-byte aligned; a null base measures it.
struct Layout : ExitLossBlocks<bf16> {
  Counters* counters = nullptr;
  double* sums = nullptr;      // [E, 3]: sum over counted rows of CE, KD (no tau^2), SD
  float* row_terms = nullptr;  // [chunk, 3]
  size_t bytes = 0;
};
Layout layout(void* ws, int64_t V, int64_t chunk, int64_t exits, bool teacher, bool self_distill,
              int64_t R) {
  BufferCarver<256> carver{static_cast<char*>(ws)};
  Layout l;
  l.counters = carver.take<Counters>(1);
  l.sums = carver.take<double>(3 * exits);
  static_cast<ExitLossBlocks<bf16>&>(l) =
      take_exit_loss_blocks<bf16>(carver, V, chunk, teacher, self_distill, R);
  l.row_terms = carver.take<float>(3 * chunk);
  l.bytes = carver.used;
  return l;
}

__global__ void count_targets_kernel(const int32_t* targets, int64_t M, int64_t V,
                                     int32_t ignore_index, Counters* c) {
  __shared__ unsigned long long block_count;
  if (threadIdx.x == 0) block_count = 0;
  __syncthreads();
  unsigned long long kept = 0;
  for (int64_t i = threadIdx.x; i < M; i += blockDim.x) {
    const int32_t t = targets[i];
    if (t == ignore_index) continue;
    if (t < 0 || t >= V)
      atomicMin(&c->first_bad_row, static_cast<unsigned long long>(i));
    else
      ++kept;
  }
  atomicAdd(&block_count, kept);
  __syncthreads();
  if (threadIdx.x == 0) c->counted = static_cast<int64_t>(block_count);
}

__device__ float block_max(float v, float* scratch) {
  const int lane = threadIdx.x % detail::kWarp, warp = threadIdx.x / detail::kWarp;
  for (int offset = 16; offset > 0; offset /= 2)
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < static_cast<int>(blockDim.x / detail::kWarp) ? scratch[lane] : -INFINITY;
  for (int offset = 16; offset > 0; offset /= 2)
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// One block per row: the teacher's logits become log p^tau = z / tau - lse(z / tau), in place
// (each thread rewrites only what it read, after the reductions).
__global__ void teacher_logp_kernel(float* logits, const int32_t* targets, int64_t V,
                                    int32_t ignore_index, float inv_tau) {
  __shared__ float scratch[32];
  const int64_t r = blockIdx.x;
  if (targets[r] == ignore_index) return;
  float* row = logits + r * V;
  float m = -INFINITY;
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) m = fmaxf(m, row[j]);
  m = block_max(m, scratch);
  float s = 0.f;
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) s += expf((row[j] - m) * inv_tau);
  s = block_sum(s, scratch);
  const float lse = m * inv_tau + logf(s);
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) row[j] = row[j] * inv_tau - lse;
}

struct RowArgs {
  const float* logits;        // [rows, V] the exit's z
  bf16* dlogits;              // [rows, V]; null: loss only
  const float* teacher_logp;  // [rows, V] or null
  float* final_logq_out;      // the final exit under self-distillation writes log q_final here
  const float* final_logq;    // an intermediate exit under self-distillation reads it
  const int32_t* targets;
  int64_t V;
  int32_t ignore_index;
  Divergence divergence;
  float inv_tau;
  float grad_scale;  // c = weight * w_k / counted
  float ce_w;        // 1 - alpha
  float kd_w;        // alpha * tau (tau^2 of the value times the 1 / tau of dz / tau)
  float cap;         // the final logit soft-cap (logits are the capped ones); 0: none
  float* row_terms;  // [rows, 3]: CE, KD (no tau^2), SD
};

__device__ __forceinline__ float tv_sign(float q, float p) {
  return q > p ? 0.5f : (q < p ? -0.5f : 0.f);
}

// One block per row, the CPU's row loop: lse at 1 and tau, then CE, KD, SD and the sum over q
// that the reverse-KL and TV gradients need, then the gradient. An ignored row gets zeros.
__global__ void exit_row_kernel(RowArgs a) {
  __shared__ float scratch[32];
  const int64_t r = blockIdx.x, V = a.V;
  const float* z = a.logits + r * V;
  const int32_t target = a.targets[r];
  if (target == a.ignore_index) {
    if (a.dlogits)
      for (int64_t j = threadIdx.x; j < V; j += blockDim.x) a.dlogits[r * V + j] = bf16(0.f);
    if (threadIdx.x < 3) a.row_terms[r * 3 + threadIdx.x] = 0.f;
    return;
  }
  const bool teacher = a.teacher_logp != nullptr;
  const float* tp = teacher ? a.teacher_logp + r * V : nullptr;
  const float* fq = a.final_logq ? a.final_logq + r * V : nullptr;
  float* fq_out = a.final_logq_out ? a.final_logq_out + r * V : nullptr;

  float m = -INFINITY;
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) m = fmaxf(m, z[j]);
  m = block_max(m, scratch);
  float s1 = 0.f, s_tau = 0.f;
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
    const float x = z[j] - m;
    s1 += expf(x);
    if (teacher) s_tau += expf(x * a.inv_tau);
  }
  s1 = block_sum(s1, scratch);
  const float lse1 = m + logf(s1);
  const float lse_tau = teacher ? m * a.inv_tau + logf(block_sum(s_tau, scratch)) : lse1;

  float kd = 0.f, sd = 0.f, qs = 0.f;
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
    const float zj = z[j];
    if (teacher) {
      const float lq = zj * a.inv_tau - lse_tau, lp = tp[j];
      switch (a.divergence) {
        case Divergence::forward_kl:
          kd += expf(lp) * (lp - lq);
          break;
        case Divergence::reverse_kl:
          kd += expf(lq) * (lq - lp);
          break;
        case Divergence::tv: {
          const float q = expf(lq), p = expf(lp);
          kd += 0.5f * fabsf(q - p);
          qs += q * tv_sign(q, p);
          break;
        }
      }
    }
    if (fq_out) fq_out[j] = zj - lse1;
    if (fq) {
      const float lf = fq[j];
      sd += expf(lf) * (lf - (zj - lse1));
    }
  }
  if (teacher) kd = block_sum(kd, scratch);
  if (fq) sd = block_sum(sd, scratch);
  if (teacher && a.divergence == Divergence::tv) qs = block_sum(qs, scratch);
  if (a.divergence == Divergence::reverse_kl) qs = kd;
  if (threadIdx.x == 0) {
    a.row_terms[r * 3 + 0] = lse1 - z[target];
    a.row_terms[r * 3 + 1] = kd;
    a.row_terms[r * 3 + 2] = sd;
  }
  if (!a.dlogits) return;
  // g = c [ (1 - a)(q - onehot) + a tau^2 dKD/dz + (q - q_final) ]
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
    const float zj = z[j];
    const float q1 = expf(zj - lse1);
    float g = a.ce_w * q1;
    if (teacher) {
      const float lq = zj * a.inv_tau - lse_tau, lp = tp[j];
      const float q = expf(lq);
      switch (a.divergence) {
        case Divergence::forward_kl:
          g += a.kd_w * (q - expf(lp));
          break;
        case Divergence::reverse_kl:
          g += a.kd_w * q * (lq - lp - qs);
          break;
        case Divergence::tv:
          g += a.kd_w * q * (tv_sign(q, expf(lp)) - qs);
          break;
      }
    }
    if (fq) g += q1 - expf(fq[j]);
    g *= a.grad_scale;
    if (j == target) g -= a.grad_scale * a.ce_w;
    if (a.cap > 0.f) g *= softcap_slope(zj, a.cap);
    a.dlogits[r * V + j] = __float2bfloat16(g);
  }
}

// sums[0..3) += the chunk's column sums of row_terms, in double, in a fixed order (one block).
__global__ void sum_terms_kernel(const float* row_terms, int64_t rows, double* sums) {
  __shared__ double partial[3][kSumThreads];
  double s[3] = {0, 0, 0};
  for (int64_t i = threadIdx.x; i < rows; i += blockDim.x)
    for (int t = 0; t < 3; ++t) s[t] += row_terms[i * 3 + t];
  for (int t = 0; t < 3; ++t) partial[t][threadIdx.x] = s[t];
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride)
      for (int t = 0; t < 3; ++t) partial[t][threadIdx.x] += partial[t][threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x < 3) sums[threadIdx.x] += partial[threadIdx.x][0];
}

}  // namespace

size_t exit_loss_workspace_bytes(int64_t V, int64_t chunk, int64_t exits, bool teacher,
                                 bool self_distill, int64_t head_lora_rank) {
  return layout(nullptr, V, chunk, exits, teacher, self_distill && exits > 1, head_lora_rank).bytes;
}

ExitLossResult exit_loss(GemmContext& ctx, const ExitLossArgs& a) {
  const int64_t M = a.M, D = a.D, V = a.V, E = a.exits, R = a.head_lora_rank;
  const ExitLossSetup setup = begin_exit_loss(a, kWhere, exit_loss_workspace_bytes);
  const bool teacher = setup.teacher, self_distill = setup.self_distill;
  const bool backward = setup.backward;
  const double tau = setup.tau, alpha = setup.alpha;
  ExitLossResult result;
  if (M == 0) return result;
  cudaStream_t stream = ctx.stream();
  const Layout ws = layout(a.workspace, V, a.chunk, E, teacher, self_distill, R);

  // Validate and count before any gradient is touched.
  RRT_CUDA_CHECK(cudaMemsetAsync(ws.counters, 0, sizeof(Counters), stream));
  RRT_CUDA_CHECK(
      cudaMemsetAsync(&ws.counters->first_bad_row, 0xFF, sizeof(unsigned long long), stream));
  RRT_CUDA_CHECK(cudaMemsetAsync(ws.sums, 0, sizeof(double) * 3 * E, stream));
  count_targets_kernel<<<1, kCountThreads, 0, stream>>>(a.targets, M, V, a.ignore_index,
                                                        ws.counters);
  RRT_CUDA_CHECK_LAUNCH();
  Counters host{};
  RRT_CUDA_CHECK(
      cudaMemcpyAsync(&host, ws.counters, sizeof(Counters), cudaMemcpyDeviceToHost, stream));
  RRT_CUDA_CHECK(cudaStreamSynchronize(stream));
  if (host.first_bad_row != ~0ull) {
    int32_t bad = 0;
    RRT_CUDA_CHECK(
        cudaMemcpy(&bad, a.targets + host.first_bad_row, sizeof(bad), cudaMemcpyDeviceToHost));
    RRT_FAIL(kWhere, "target ", bad, " at row ", host.first_bad_row,
             " is outside the vocabulary of ", V);
  }
  result.counted = host.counted;
  if (result.counted == 0) return result;
  const double inv_counted = 1.0 / static_cast<double>(result.counted);

  const int64_t chunk = std::min(a.chunk, M);
  const float s = a.head_lora_scale;
  for (int64_t r0 = 0; r0 < M; r0 += chunk) {
    const int64_t rows = std::min(chunk, M - r0);
    const unsigned grid = static_cast<unsigned>(rows);
    const int32_t* targets = a.targets + r0;
    if (teacher) {
      gemm(ctx, false, true, rows, V, a.teacher_D, 1.f, a.teacher_h + r0 * a.teacher_D, a.teacher_W,
           0.f, ws.teacher_logp);
      softcap_logits(ws.teacher_logp, rows * V, static_cast<float>(a.teacher_softcap), stream);
      teacher_logp_kernel<<<grid, kRowThreads, 0, stream>>>(
          ws.teacher_logp, targets, V, a.ignore_index, static_cast<float>(1.0 / tau));
      RRT_CUDA_CHECK_LAUNCH();
    }
    // The final exit first: its log-probabilities are the self-distillation targets.
    for (int64_t step = 0; step < E; ++step) {
      const int64_t k = step == 0 ? E - 1 : step - 1;
      const bool is_final = k == E - 1;
      const bf16* h = a.h[k] + r0 * D;
      const bf16* A = a.lora_A ? a.lora_A[k] : nullptr;
      const bf16* B = a.lora_B ? a.lora_B[k] : nullptr;
      const bool lora = A != nullptr && B != nullptr && R > 0;
      gemm(ctx, false, true, rows, V, D, 1.f, h, a.W, 0.f, ws.logits);
      if (lora) {
        gemm(ctx, false, true, rows, R, D, 1.f, h, A, 0.f, ws.lora_u);
        gemm(ctx, false, true, rows, V, R, s, ws.lora_u, B, 1.f, ws.logits);
      }
      softcap_logits(ws.logits, rows * V, static_cast<float>(a.softcap), stream);
      RowArgs ra{};
      ra.logits = ws.logits;
      ra.dlogits = backward ? ws.dlogits : nullptr;
      ra.teacher_logp = teacher ? ws.teacher_logp : nullptr;
      ra.final_logq_out = is_final && self_distill ? ws.final_logq : nullptr;
      ra.final_logq = !is_final && self_distill ? ws.final_logq : nullptr;
      ra.targets = targets;
      ra.V = V;
      ra.ignore_index = a.ignore_index;
      ra.divergence = a.divergence;
      ra.inv_tau = static_cast<float>(1.0 / tau);
      ra.grad_scale =
          static_cast<float>(static_cast<double>(a.weight) * a.exit_weights[k] * inv_counted);
      ra.ce_w = static_cast<float>(1.0 - alpha);
      ra.kd_w = static_cast<float>(alpha * tau);
      ra.cap = static_cast<float>(a.softcap);
      ra.row_terms = ws.row_terms;
      exit_row_kernel<<<grid, kRowThreads, 0, stream>>>(ra);
      RRT_CUDA_CHECK_LAUNCH();
      sum_terms_kernel<<<1, kSumThreads, 0, stream>>>(ws.row_terms, rows, ws.sums + 3 * k);
      RRT_CUDA_CHECK_LAUNCH();
      if (!backward) continue;
      bf16* dh = a.dh[k] ? a.dh[k] + r0 * D : nullptr;
      if (dh) gemm(ctx, false, false, rows, D, V, 1.f, ws.dlogits, a.W, 1.f, dh);
      if (a.dW) gemm(ctx, true, false, V, D, rows, 1.f, ws.dlogits, h, 1.f, a.dW);
      if (lora) {
        float* dA = a.dA ? a.dA[k] : nullptr;
        float* dB = a.dB ? a.dB[k] : nullptr;
        gemm(ctx, false, false, rows, R, V, s, ws.dlogits, B, 0.f, ws.lora_du);  // du = s dz B
        if (dB) gemm(ctx, true, false, V, R, rows, s, ws.dlogits, ws.lora_u, 1.f, dB);
        if (dA) gemm(ctx, true, false, R, D, rows, 1.f, ws.lora_du, h, 1.f, dA);
        if (dh) gemm(ctx, false, false, rows, D, R, 1.f, ws.lora_du, A, 1.f, dh);
      }
    }
  }
  std::vector<double> sums(static_cast<size_t>(3 * E));
  RRT_CUDA_CHECK(cudaMemcpyAsync(sums.data(), ws.sums, sizeof(double) * 3 * E,
                                 cudaMemcpyDeviceToHost, stream));
  RRT_CUDA_CHECK(cudaStreamSynchronize(stream));
  finish_exit_loss(a, setup, sums.data(), result);
  return result;
}

}  // namespace rrt::ops::cuda
