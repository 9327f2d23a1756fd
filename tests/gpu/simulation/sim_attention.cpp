// The attention context of the kernel simulation: cuDNN cannot run on the host, so every call
// goes to rrt's own fallback kernels (ops/cuda/attention_fallback.cu, simulated), forced or not,
// and is counted as a fallback call; no cuDNN graph is ever built. Only the tests that force the
// fallback say something here (simulate.sh runs those); the dispatch rule needs a GPU build.
#include <vector>

#include "core/error.h"
#include "ops/cuda/attention.h"
#include "ops/cuda/attention_fallback.h"

namespace rrt::ops::cuda {

struct AttentionContext::Impl {
  cudaStream_t stream = nullptr;
  bool force_fallback = true;
  int64_t fallback_calls = 0;
  std::vector<float> scratch;  // host memory is device memory here
};

AttentionContext::AttentionContext(cudaStream_t stream) : impl_(std::make_unique<Impl>()) {
  impl_->stream = stream;
}
AttentionContext::~AttentionContext() = default;
cudaStream_t AttentionContext::stream() const { return impl_->stream; }
void AttentionContext::set_stream(cudaStream_t stream) { impl_->stream = stream; }
size_t AttentionContext::cached_graphs() const { return 0; }
void AttentionContext::set_force_fallback(bool force) { impl_->force_fallback = force; }
bool AttentionContext::force_fallback() const { return impl_->force_fallback; }
int64_t AttentionContext::fallback_calls() const { return impl_->fallback_calls; }

void check_attention_shape(const AttentionShape&, bool) {}  // the fallback checks every call
AttentionPath choose_attention_path(const AttentionShape&, bool, int, bool, bool,
                                    const AttentionMask&) {
  RRT_FAIL("simulate",
           "the attention dispatch rule is ops/cuda/attention.cpp's (cuDNN): not simulated");
}

void attention_forward(AttentionContext& ctx, const bf16* q, const bf16* k, const bf16* v,
                       bf16* out, float* lse, const AttentionShape& shape,
                       const AttentionMask& mask) {
  ++ctx.impl().fallback_calls;
  attention_fallback_forward(q, k, v, out, lse, shape, ctx.stream(), mask);
}

void attention_backward(AttentionContext& ctx, const bf16* q, const bf16* k, const bf16* v,
                        const bf16* out, const float* lse, const bf16* dout, bf16* dq, bf16* dk,
                        bf16* dv, const AttentionShape& shape, const AttentionMask& mask) {
  AttentionContext::Impl& impl = ctx.impl();
  ++impl.fallback_calls;
  impl.scratch.resize(attention_fallback_scratch_elems(shape));
  attention_fallback_backward(q, k, v, out, lse, dout, dq, dk, dv, impl.scratch.data(), shape,
                              ctx.stream(), mask);
}

}  // namespace rrt::ops::cuda
