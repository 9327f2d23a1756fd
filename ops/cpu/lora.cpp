#include "ops/lora.h"

#include "ops/matmul.h"

namespace rrt::ops {

template <typename S>
void lora_forward(const S* x, const S* A, const S* B, S* u, S* y, int64_t M, int64_t in,
                  int64_t out, int64_t R, S scale) {
  if (R == 0) return;
  gemm<S>(false, true, M, R, in, S(1), x, in, A, in, S(0), u, R);        // u = x A^T
  gemm<S>(false, true, M, out, R, scale, u, R, B, R, S(1), y, out);      // y += s u B^T
}

template <typename S>
void lora_backward(const S* x, const S* A, const S* B, const S* u, const S* dy, S* dx, S* dA,
                   S* dB, S* du, int64_t M, int64_t in, int64_t out, int64_t R, S scale) {
  if (R == 0) return;
  gemm<S>(false, false, M, R, out, scale, dy, out, B, R, S(0), du, R);   // du = s dy B
  if (dB) gemm<S>(true, false, out, R, M, scale, dy, out, u, R, S(1), dB, R);
  if (dA) gemm<S>(true, false, R, in, M, S(1), du, R, x, in, S(1), dA, in);
  if (dx) gemm<S>(false, false, M, in, R, S(1), du, R, A, in, S(1), dx, in);
}

template void lora_forward<float>(const float*, const float*, const float*, float*, float*,
                                  int64_t, int64_t, int64_t, int64_t, float);
template void lora_forward<double>(const double*, const double*, const double*, double*, double*,
                                   int64_t, int64_t, int64_t, int64_t, double);
template void lora_backward<float>(const float*, const float*, const float*, const float*,
                                   const float*, float*, float*, float*, float*, int64_t, int64_t,
                                   int64_t, int64_t, float);
template void lora_backward<double>(const double*, const double*, const double*, const double*,
                                    const double*, double*, double*, double*, double*, int64_t,
                                    int64_t, int64_t, int64_t, double);

}  // namespace rrt::ops
