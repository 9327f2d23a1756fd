// Final logit soft-capping (Gemma 2's final_logit_softcapping; model.final_logit_softcapping):
// the LM head's logits z (after an exit's head adapter) become c = cap * tanh(z / cap) before
// softmax, loss, distillation and sampling; cap 0 is off. Every head op of every backend caps
// its fp32 logits in place right after the head's GEMMs and scales the logits' gradient by
//   dc/dz = 1 - tanh^2(z / cap) = 1 - (c / cap)^2,
// written with the capped value c, so no op keeps the uncapped logits. The scalar formulas are
// these two functions, shared by the CPU ops (fp32 / fp64), the bf16 CPU backend's scalar tails
// and the CUDA kernels (host and device; the CUDA file includes this header as C++17).
#pragma once

#include <math.h>

#include <cstdint>

#ifdef __CUDACC__
#define RRT_SOFTCAP_HD __host__ __device__
#else
#define RRT_SOFTCAP_HD
#endif

namespace rrt::ops {

RRT_SOFTCAP_HD inline float softcap_value(float z, float cap) { return cap * tanhf(z / cap); }
RRT_SOFTCAP_HD inline double softcap_value(double z, double cap) { return cap * tanh(z / cap); }
// dc/dz from the capped value c.
RRT_SOFTCAP_HD inline float softcap_slope(float c, float cap) {
  const float t = c / cap;
  return 1.f - t * t;
}
RRT_SOFTCAP_HD inline double softcap_slope(double c, double cap) {
  const double t = c / cap;
  return 1.0 - t * t;
}

#ifndef __CUDACC__
// z[i] = cap tanh(z[i] / cap) for n host values (OpenMP over the values); cap <= 0: unchanged.
// The CPU backends' head ops call it on a chunk's logits; the model calls it on the host logits
// its logits() returns.
template <typename S>
void softcap_logits(S* z, int64_t n, double cap);
#endif

}  // namespace rrt::ops
