#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/cuda/cuda_check.h"
#include "core/error.h"
#include "ops/cuda/cross_entropy.h"
#include "ops/cuda/vector_ops.h"
#include "ops/logit_softcap.h"

namespace rrt::ops::cuda {

namespace {

constexpr const char* kWhere = "cuda cross_entropy";
constexpr int kRowThreads = 512;
constexpr int kCountThreads = 1024;

size_t round_up(size_t n) { return (n + 255) / 256 * 256; }

// Workspace layout, each piece 256-byte aligned.
struct Counters {
  unsigned long long first_bad_row;  // smallest row with an invalid target; all ones if none
  int64_t counted;                   // rows whose target is not ignore_index
  double loss_sum;                   // sum of kept rows' losses, chunk after chunk
};
struct Layout {
  Counters* counters;
  float* logits;    // [chunk, V]
  bf16* dlogits;    // [chunk, V]
  float* row_loss;  // [chunk]
};
Layout layout(void* ws, int64_t V, int64_t chunk) {
  char* p = static_cast<char*>(ws);
  Layout l;
  l.counters = reinterpret_cast<Counters*>(p);
  p += round_up(sizeof(Counters));
  l.logits = reinterpret_cast<float*>(p);
  p += round_up(sizeof(float) * V * chunk);
  l.dlogits = reinterpret_cast<bf16*>(p);
  p += round_up(sizeof(bf16) * V * chunk);
  l.row_loss = reinterpret_cast<float*>(p);
  return l;
}

// Counts kept rows and records the first invalid target. One block; integer sums are exact, so
// the atomic order does not matter.
__global__ void count_targets_kernel(const int32_t* targets, int64_t M, int64_t V,
                                     int32_t ignore_index, Counters* c) {
  __shared__ int64_t block_count;
  if (threadIdx.x == 0) block_count = 0;
  __syncthreads();
  int64_t kept = 0;
  for (int64_t i = threadIdx.x; i < M; i += blockDim.x) {
    const int32_t t = targets[i];
    if (t == ignore_index) continue;
    if (t < 0 || t >= V)
      atomicMin(&c->first_bad_row, static_cast<unsigned long long>(i));
    else
      ++kept;
  }
  atomicAdd(reinterpret_cast<unsigned long long*>(&block_count),
            static_cast<unsigned long long>(kept));
  __syncthreads();
  if (threadIdx.x == 0) c->counted = block_count;
}

// Combines two (max, sum of exp(x - max)) pairs.
__device__ void lse_combine(float& m, float& s, float m2, float s2) {
  if (m2 == -INFINITY) return;
  if (m == -INFINITY) {
    m = m2;
    s = s2;
    return;
  }
  const float mx = fmaxf(m, m2);
  s = s * __expf(m - mx) + s2 * __expf(m2 - mx);
  m = mx;
}

// One block per row of the chunk: loss = lse - logit[target]; when dlogits is given it gets
// grad_scale * (softmax - onehot) (times the soft-cap's slope when cap > 0: logits are then the
// capped ones), or zeros for an ignored row (the GEMMs that follow read every row of the chunk).
__global__ void softmax_xent_kernel(const float* logits, bf16* dlogits, const int32_t* targets,
                                    int64_t V, int32_t ignore_index, float grad_scale, float cap,
                                    float* row_loss) {
  const int64_t r = blockIdx.x;
  const float* row = logits + r * V;
  const int32_t target = targets[r];
  if (target == ignore_index) {
    if (dlogits)
      for (int64_t j = threadIdx.x; j < V; j += blockDim.x) dlogits[r * V + j] = bf16(0.f);
    if (threadIdx.x == 0) row_loss[r] = 0.f;
    return;
  }
  // Online max and sum of exponentials, per thread, then across the block.
  float m = -INFINITY, s = 0.f;
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) lse_combine(m, s, row[j], 1.f);
  for (int offset = 16; offset > 0; offset /= 2) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, offset);
    const float s2 = __shfl_xor_sync(0xffffffffu, s, offset);
    lse_combine(m, s, m2, s2);
  }
  __shared__ float warp_m[kRowThreads / 32], warp_s[kRowThreads / 32];
  __shared__ float lse_shared;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) {
    warp_m[warp] = m;
    warp_s[warp] = s;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    float bm = -INFINITY, bs = 0.f;
    for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w)
      lse_combine(bm, bs, warp_m[w], warp_s[w]);
    lse_shared = bm + logf(bs);
    row_loss[r] = lse_shared - row[target];
  }
  __syncthreads();
  if (!dlogits) return;
  const float lse = lse_shared;
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
    float g = grad_scale * __expf(row[j] - lse);
    if (j == target) g -= grad_scale;
    if (cap > 0.f) g *= softcap_slope(row[j], cap);
    dlogits[r * V + j] = __float2bfloat16(g);
  }
}

// loss_sum += sum of row_loss[0, rows), in double, in a fixed order (one block).
__global__ void sum_losses_kernel(const float* row_loss, int64_t rows, Counters* c) {
  __shared__ double partial[256];
  double sum = 0;
  for (int64_t i = threadIdx.x; i < rows; i += blockDim.x) sum += row_loss[i];
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) c->loss_sum += partial[0];
}

}  // namespace

size_t lm_head_workspace_bytes(int64_t V, int64_t chunk) {
  return round_up(sizeof(Counters)) + round_up(sizeof(float) * V * chunk) +
         round_up(sizeof(bf16) * V * chunk) + round_up(sizeof(float) * chunk);
}

CrossEntropyResult lm_head_cross_entropy(GemmContext& ctx, const bf16* h, const bf16* W,
                                         const int32_t* targets, bf16* dh, float* dW, int64_t M,
                                         int64_t D, int64_t V, int32_t ignore_index, float weight,
                                         void* workspace, size_t workspace_bytes, int64_t chunk,
                                         double softcap) {
  RRT_CHECK(M >= 0 && D > 0 && V > 0, kWhere, "bad sizes M=", M, " D=", D, " V=", V);
  RRT_CHECK(softcap >= 0, kWhere, "softcap must be >= 0 (0: off), got ", softcap);
  RRT_CHECK(chunk > 0, kWhere, "chunk must be positive, got ", chunk);
  RRT_CHECK(workspace && workspace_bytes >= lm_head_workspace_bytes(V, chunk), kWhere,
            "workspace of ", workspace_bytes, " bytes is smaller than the ",
            lm_head_workspace_bytes(V, chunk), " that V=", V, ", chunk=", chunk,
            " need ---> HINT: size it with lm_head_workspace_bytes(V, chunk)");
  CrossEntropyResult result;
  if (M == 0) return result;
  cudaStream_t stream = ctx.stream();
  const Layout ws = layout(workspace, V, chunk);

  // Validate and count before any gradient is touched.
  RRT_CUDA_CHECK(cudaMemsetAsync(ws.counters, 0, sizeof(Counters), stream));
  RRT_CUDA_CHECK(
      cudaMemsetAsync(&ws.counters->first_bad_row, 0xFF, sizeof(unsigned long long), stream));
  count_targets_kernel<<<1, kCountThreads, 0, stream>>>(targets, M, V, ignore_index, ws.counters);
  RRT_CUDA_CHECK_LAUNCH();
  Counters host{};
  RRT_CUDA_CHECK(
      cudaMemcpyAsync(&host, ws.counters, sizeof(Counters), cudaMemcpyDeviceToHost, stream));
  RRT_CUDA_CHECK(cudaStreamSynchronize(stream));
  if (host.first_bad_row != ~0ull) {
    int32_t bad = 0;
    RRT_CUDA_CHECK(
        cudaMemcpy(&bad, targets + host.first_bad_row, sizeof(bad), cudaMemcpyDeviceToHost));
    RRT_FAIL(kWhere, "target ", bad, " at row ", host.first_bad_row,
             " is outside the vocabulary of ", V);
  }
  result.counted = host.counted;
  if (result.counted == 0) return result;

  const bool backward = dh != nullptr || dW != nullptr;
  const float grad_scale = weight / static_cast<float>(result.counted);
  const float cap = static_cast<float>(softcap);
  for (int64_t r0 = 0; r0 < M; r0 += chunk) {
    const int64_t rows = std::min(chunk, M - r0);
    const bf16* h_c = h + r0 * D;
    gemm(ctx, false, true, rows, V, D, 1.f, h_c, W, 0.f, ws.logits);  // [rows, V] fp32
    softcap_logits(ws.logits, rows * V, cap, stream);
    softmax_xent_kernel<<<static_cast<unsigned>(rows), kRowThreads, 0, stream>>>(
        ws.logits, backward ? ws.dlogits : nullptr, targets + r0, V, ignore_index, grad_scale, cap,
        ws.row_loss);
    RRT_CUDA_CHECK_LAUNCH();
    sum_losses_kernel<<<1, 256, 0, stream>>>(ws.row_loss, rows, ws.counters);
    RRT_CUDA_CHECK_LAUNCH();
    if (dh) gemm(ctx, false, false, rows, D, V, 1.f, ws.dlogits, W, 1.f, dh + r0 * D);
    if (dW) gemm(ctx, true, false, V, D, rows, 1.f, ws.dlogits, h_c, 1.f, dW);
  }
  double loss_sum = 0;
  RRT_CUDA_CHECK(cudaMemcpyAsync(&loss_sum, &ws.counters->loss_sum, sizeof(double),
                                 cudaMemcpyDeviceToHost, stream));
  RRT_CUDA_CHECK(cudaStreamSynchronize(stream));
  result.mean_loss = loss_sum / static_cast<double>(result.counted);
  return result;
}

}  // namespace rrt::ops::cuda
