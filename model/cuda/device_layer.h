// One decoder layer at one unrolled position on the GPU: the line-by-line twin of
// model/decoder_layer.{h,cpp} (read them side by side), with bf16 activations and compute
// weights, fp32 weight gradients, fp32 norm statistics and attention lse. Every family's
// structure is here, as on the CPU: RMSNorm (w or 1 + w) or LayerNorm with a bias, SwiGLU /
// GeGLU / GELU, projection biases, sequential or parallel residual, RoPE on a fraction of each
// head. CUDA builds only (model/cuda/device_model.cpp includes it).
#pragma once

#include <array>
#include <cstdint>

#include "model/config.h"
#include "model/decoder_layer.h"
#include "ops/cuda/attention.h"
#include "ops/cuda/elementwise.h"
#include "ops/cuda/gemm.h"

namespace rrt {

using ops::cuda::bf16;

// The GPU handles a layer needs, shared by every position.
struct DeviceLayerContext {
  ops::cuda::GemmContext& gemm;
  ops::cuda::AttentionContext& attention;
  const ops::cuda::DeviceRopeTable& rope;
  cudaStream_t stream;
};

// Weights of one position: bf16 compute copies (null as in LayerParams).
struct DeviceLayerParams {
  const bf16* attn_norm = nullptr;
  const bf16* mlp_norm = nullptr;
  const bf16* attn_norm_bias = nullptr;
  const bf16* mlp_norm_bias = nullptr;
  std::array<const bf16*, kNumProj> weight{}, bias{};
  std::array<const bf16*, kNumProj> lora_a{}, lora_b{};
  std::array<int64_t, kNumProj> rank{};
  std::array<float, kNumProj> scale{};
};

// fp32 gradients in the device gradient arena: the tied block's are shared by every loop's
// position, so they accumulate across loops in fp32 (cuBLASLt beta = 1).
struct DeviceLayerGrads {
  float* attn_norm = nullptr;
  float* mlp_norm = nullptr;
  float* attn_norm_bias = nullptr;
  float* mlp_norm_bias = nullptr;
  std::array<float*, kNumProj> weight{}, bias{};
  std::array<float*, kNumProj> lora_a{}, lora_b{};
};

// LayerStash's shapes; bf16 activations, fp32 statistics (rstd, mean [M], lse [N, H, T]).
struct DeviceLayerStash {
  bf16 *xn1 = nullptr, *q = nullptr, *k = nullptr, *v = nullptr, *att = nullptr, *mid = nullptr,
       *xn2 = nullptr, *gate = nullptr, *up = nullptr, *act = nullptr;
  float *rstd1 = nullptr, *rstd2 = nullptr, *mean1 = nullptr, *mean2 = nullptr, *lse = nullptr;
  std::array<bf16*, kNumProj> lora_u{};
};

// Backward scratch shared by all positions (bf16).
struct DeviceLayerScratch {
  bf16 *dxn, *dq, *dk, *dv, *datt, *dgate, *dup, *dact, *lora_du;
};

void device_layer_forward(const DeviceLayerContext& ctx, const LayerDims& dims,
                          const DeviceLayerParams& p, const DeviceLayerStash& s, const bf16* x_in,
                          bf16* x_out);

// d_resid: in d(x_out), out d(x_in) (bf16).
void device_layer_backward(const DeviceLayerContext& ctx, const LayerDims& dims,
                           const DeviceLayerParams& p, const DeviceLayerGrads& g,
                           const DeviceLayerStash& s, const DeviceLayerScratch& sc,
                           const bf16* x_in, bf16* d_resid);

// The family's norm over x [M, D] (the final norm uses them too).
void device_norm_forward(const DeviceLayerContext& ctx, const LayerDims& d, const bf16* x,
                         const bf16* w, const bf16* bias, bf16* y, float* mean, float* rstd);
void device_norm_backward(const DeviceLayerContext& ctx, const LayerDims& d, const bf16* x,
                          const bf16* w, const float* mean, const float* rstd, const bf16* dy,
                          bf16* dx, float* dw, float* dbias);

}  // namespace rrt
