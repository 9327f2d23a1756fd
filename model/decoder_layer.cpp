// The decoder layer (model/decoder_layer_impl.h) on the CPU fp32 backend.
#include "model/decoder_layer.h"

#include "model/decoder_layer_impl.h"
#include "ops/cpu/backend.h"
#include "ops/norm.h"

namespace rrt {

template void decoder_layer_forward<CpuBackend>(CpuBackend&, const LayerDims&, const LayerParams&,
                                                const LayerStash&, const float*, float*);
template void decoder_layer_backward<CpuBackend>(CpuBackend&, const LayerDims&, const LayerParams&,
                                                 const LayerGrads&, const LayerStash&,
                                                 const LayerScratch&, const float*, float*);

void norm_forward(const LayerDims& d, const float* x, const float* w, const float* bias, float* y,
                  float* mean, float* rstd) {
  if (d.norm == Norm::layer)
    ops::layernorm_forward<float>(x, w, bias, y, mean, rstd, d.M(), d.D, d.eps);
  else
    ops::rmsnorm_forward<float>(x, w, y, rstd, d.M(), d.D, d.eps, d.unit_offset);
}

}  // namespace rrt
