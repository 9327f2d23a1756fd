// CUDA twins of the CPU ops in ops/{embedding,norm,rope,activation,adamw}.h: the same math, on
// device pointers, queued on `stream` (nothing here synchronises).
//
// Dtypes (mixed precision):
//   activations, their gradients, the compute copy of weights   bf16
//   master weights, AdamW m and v, weight gradients             fp32
//   per-row statistics (rstd, mean), every reduction            fp32
// As on the CPU, every backward ADDS into its gradients (dx += ...), bf16 or fp32; a null
// gradient pointer skips that gradient. Shapes use the fixed letters of docs/architecture.md
// ("How to add an op"); M = rows (N*T).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "ops/adamw.h"
#include "ops/rope.h"

namespace rrt::ops::cuda {

using bf16 = __nv_bfloat16;

// ---- embedding.cu ---------------------------------------------------------------------------
// out[i] = scale * table[tokens[i]]    tokens: [M] (device), table: [V, D], out: [M, D].
// The tokens live on the device, so they are not range-checked here (the data pipeline checks
// them on the host): a token outside [0, V) gives a row of NaN, which the loss makes visible.
void embedding_forward(const int32_t* tokens, const bf16* table, bf16* out, int64_t M, int64_t D,
                       int64_t V, float scale, cudaStream_t stream);
// dtable[tokens[i]] += scale * dout[i]    dout: [M, D] bf16, dtable: [V, D] fp32.
// fp32 atomicAdd per element: fast, but rows that repeat a token sum in a run-dependent order.
// Tokens outside [0, V) are skipped.
void embedding_backward(const int32_t* tokens, const bf16* dout, float* dtable, int64_t M,
                        int64_t D, int64_t V, float scale, cudaStream_t stream);
// The same sum without atomics and bitwise reproducible: each block owns a range of vocabulary
// rows, scans all M tokens and adds its matches in position order (the CPU's order). It reads the
// tokens once per block, so it costs more than the atomic version when M is large.
void embedding_backward_deterministic(const int32_t* tokens, const bf16* dout, float* dtable,
                                      int64_t M, int64_t D, int64_t V, float scale,
                                      cudaStream_t stream);

// ---- norm.cu ----------------------------------------------------------------------------------
// x, y, dy, dx: [M, D] bf16; w, b: [D] bf16 (compute copies); dw, db: [D] fp32;
// rstd, mean: [M] fp32 (null in forward: not stored). One block per row, fp32 block reductions.
// RMSNorm: y = x * rstd * g, rstd = 1/sqrt(mean(x^2) + eps), g = w or 1 + w (unit_offset, Gemma).
void rmsnorm_forward(const bf16* x, const bf16* w, bf16* y, float* rstd, int64_t M, int64_t D,
                     float eps, bool unit_offset, cudaStream_t stream);
void rmsnorm_backward(const bf16* x, const bf16* w, const float* rstd, const bf16* dy, bf16* dx,
                      float* dw, int64_t M, int64_t D, bool unit_offset, cudaStream_t stream);
// LayerNorm: y = (x - mean) * rstd * w + b (b may be null: no bias).
void layernorm_forward(const bf16* x, const bf16* w, const bf16* b, bf16* y, float* mean,
                       float* rstd, int64_t M, int64_t D, float eps, cudaStream_t stream);
void layernorm_backward(const bf16* x, const bf16* w, const float* mean, const float* rstd,
                        const bf16* dy, bf16* dx, float* dw, float* db, int64_t M, int64_t D,
                        cudaStream_t stream);

// ---- rope.cu ----------------------------------------------------------------------------------
// ops::RopeTable's cos/sin uploaded as fp32 [max_positions, rot_dim/2]; owns the device memory.
class DeviceRopeTable {
 public:
  explicit DeviceRopeTable(const RopeTable& table);  // synchronous upload
  ~DeviceRopeTable();
  DeviceRopeTable(const DeviceRopeTable&) = delete;
  DeviceRopeTable& operator=(const DeviceRopeTable&) = delete;

  int64_t max_positions() const { return max_positions_; }
  int64_t rot_dim() const { return rot_dim_; }
  const float* cos() const { return cos_; }
  const float* sin() const { return sin_; }

 private:
  int64_t max_positions_ = 0, rot_dim_ = 0;
  float* cos_ = nullptr;
  float* sin_ = nullptr;
};
// In place on x: [N, T, H, Dh] bf16, positions 0..T-1 (or pos [N, T] on the device: each
// token's own, e.g. restarted per document); backward rotates dx back (the transpose).
void rope_forward(bf16* x, const DeviceRopeTable& table, int64_t N, int64_t T, int64_t H,
                  int64_t Dh, cudaStream_t stream, const int32_t* pos = nullptr);
void rope_backward(bf16* dx, const DeviceRopeTable& table, int64_t N, int64_t T, int64_t H,
                   int64_t Dh, cudaStream_t stream, const int32_t* pos = nullptr);

// ---- activation.cu ----------------------------------------------------------------------------
// n elements each, bf16, fp32 arithmetic. Backward adds into the gradients; null skips one.
void swiglu_forward(const bf16* gate, const bf16* up, bf16* out, int64_t n, cudaStream_t stream);
void swiglu_backward(const bf16* gate, const bf16* up, const bf16* dout, bf16* dgate, bf16* dup,
                     int64_t n, cudaStream_t stream);
void geglu_forward(const bf16* gate, const bf16* up, bf16* out, int64_t n, cudaStream_t stream);
void geglu_backward(const bf16* gate, const bf16* up, const bf16* dout, bf16* dgate, bf16* dup,
                    int64_t n, cudaStream_t stream);
void gelu_forward(const bf16* x, bf16* out, int64_t n, bool tanh_approx, cudaStream_t stream);
void gelu_backward(const bf16* x, const bf16* dout, bf16* dx, int64_t n, bool tanh_approx,
                   cudaStream_t stream);
void add_forward(const bf16* a, const bf16* b, bf16* out, int64_t n, cudaStream_t stream);
void add_backward(const bf16* dout, bf16* da, bf16* db, int64_t n, cudaStream_t stream);
// x *= factor in place (fp32 arithmetic, one rounding).
void scale(bf16* x, float factor, int64_t n, cudaStream_t stream);

// ---- adamw.cu ---------------------------------------------------------------------------------
// One fused pass of ops::adamw_step (torch.optim.AdamW) over fp32 param, grad, m, v: [n]; it also
// writes the bf16 compute copy of the updated weights to param_bf16 (null: none).
void adamw_step(float* param, const float* grad, float* m, float* v, bf16* param_bf16, int64_t n,
                const AdamWHyper& hyper, bool decay, int64_t step, cudaStream_t stream);

}  // namespace rrt::ops::cuda
