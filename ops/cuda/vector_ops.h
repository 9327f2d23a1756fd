// Whole-arena kernels for the device model's training step: the bf16 compute copy of the fp32
// master weights, the global gradient norm and gradient clipping. Queued on `stream`; only
// sum_squares synchronises (it returns its result to the host).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace rrt::ops::cuda {

using bf16 = __nv_bfloat16;

// out[i] = bf16(in[i]) (round to nearest even), n elements.
void to_bf16(const float* in, bf16* out, int64_t n, cudaStream_t stream);
// x[i] *= factor, n elements (gradient clipping).
void scale_inplace(float* x, int64_t n, float factor, cudaStream_t stream);

// z[i] = cap tanh(z[i] / cap), n fp32 logits in place (the final logit soft-cap,
// ops/logit_softcap.h): the CUDA head ops' and engine's one capping kernel; cap <= 0: nothing.
void softcap_logits(float* z, int64_t n, float cap, cudaStream_t stream);

// Blocks of the first pass of sum_squares: `workspace` holds kSumSquaresBlocks + 1 doubles.
constexpr int kSumSquaresBlocks = 512;
// sum_i x[i]^2 in double: each block sums a fixed grid-stride slice, one block adds the partial
// sums in block order, so the result has the same bits on every run. Synchronises the stream.
double sum_squares(const float* x, int64_t n, double* workspace, cudaStream_t stream);

}  // namespace rrt::ops::cuda
