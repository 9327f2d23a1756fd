// Host emulation of the CUDA runtime calls and the ops::cuda functions the device model uses, so
// that its wiring can be checked where no GPU is (tests/gpu/emulate.sh): "device" memory is host
// memory, and every op runs its CPU twin in fp32 on the bf16 inputs and rounds its bf16 outputs,
// at the points where the GPU kernels round. What this proves: model/cuda/device_model.cpp and
// device_layer.cpp pass the right buffers in the right order, zero and accumulate where they
// must, and the trainer's cuda path (dispatch, validation, checkpoints, resume) works. What it
// cannot prove: anything about the kernels themselves (those are the gpu tests on a GPU, and
// tests/gpu/simulate.sh, which compiles with RRT_SIMULATED_KERNELS to keep only the runtime, the
// GEMMs (cuBLASLt) and LoRA here and runs ops/cuda's own kernels on the host instead).
// Not part of the CMake build: it replaces libcudart and ops/cuda, which a CUDA build links.
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/error.h"
#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/cross_entropy.h"
#include "ops/cuda/attention.h"
#include "ops/cuda/cross_entropy.h"
#include "ops/cuda/elementwise.h"
#include "ops/cuda/exit_loss.h"
#include "ops/cuda/gemm.h"
#include "ops/cuda/kv_ops.h"
#include "ops/cuda/lora.h"
#include "ops/cuda/lora_rows.h"
#include "ops/cuda/vector_ops.h"
#include "ops/embedding.h"
#include "ops/exit_loss.h"
#include "ops/norm.h"

#ifdef RRT_SIMULATED_KERNELS  // each buffer ends at a guard page (tests/gpu/simulation/sim_memory.cpp)
namespace rrt_sim {
void* device_alloc(size_t bytes);
void device_free(void* p);
}  // namespace rrt_sim
#endif

extern "C" {
cudaError_t cudaMalloc(void** p, size_t n) {
#ifdef RRT_SIMULATED_KERNELS
  *p = rrt_sim::device_alloc(n);
#else
  *p = std::aligned_alloc(256, (n + 255) / 256 * 256);
#endif
  return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaFree(void* p) {
#ifdef RRT_SIMULATED_KERNELS
  rrt_sim::device_free(p);
#else
  std::free(p);
#endif
  return cudaSuccess;
}
cudaError_t cudaMemcpy(void* d, const void* s, size_t n, cudaMemcpyKind) {
  std::memcpy(d, s, n);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t n, cudaMemcpyKind, cudaStream_t) {
  std::memcpy(d, s, n);
  return cudaSuccess;
}
cudaError_t cudaMemset(void* d, int v, size_t n) {
  std::memset(d, v, n);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* d, int v, size_t n, cudaStream_t) {
  std::memset(d, v, n);
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
cudaError_t cudaGetLastError() { return cudaSuccess; }
const char* cudaGetErrorString(cudaError_t) { return "emulated"; }
cudaError_t cudaMemGetInfo(size_t* f, size_t* t) {
  *f = 0;
  *t = 0;
  return cudaSuccess;
}
}

namespace rrt {
bool cuda_compiled() { return true; }
int cuda_device_count() { return 1; }
std::string cuda_device_name(int) { return "host emulation"; }
}  // namespace rrt

namespace rrt::ops::cuda {
namespace {
std::vector<float> F(const bf16* p, int64_t n) {
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = __bfloat162float(p[i]);
  return v;
}
void store(bf16* p, const std::vector<float>& v) {
  for (size_t i = 0; i < v.size(); ++i) p[i] = __float2bfloat16(v[i]);
}
void add_into(bf16* p, const std::vector<float>& v) {
  if (!p) return;
  for (size_t i = 0; i < v.size(); ++i) p[i] = __float2bfloat16(__bfloat162float(p[i]) + v[i]);
}
}  // namespace

#ifndef RRT_SIMULATED_KERNELS  // tests/gpu/simulate.sh runs ops/cuda's own kernels instead

void embedding_forward(const int32_t* tokens, const bf16* table, bf16* out, int64_t M, int64_t D,
                       int64_t V, float scale, cudaStream_t) {
  std::vector<float> o(M * D);
  ops::embedding_forward<float>(tokens, F(table, V * D).data(), o.data(), M, D, V, scale);
  store(out, o);
}
void embedding_backward(const int32_t* tokens, const bf16* dout, float* dtable, int64_t M,
                        int64_t D, int64_t V, float scale, cudaStream_t) {
  ops::embedding_backward<float>(tokens, F(dout, M * D).data(), dtable, M, D, scale);
}
void rmsnorm_forward(const bf16* x, const bf16* w, bf16* y, float* rstd, int64_t M, int64_t D,
                     float eps, bool unit_offset, cudaStream_t) {
  std::vector<float> o(M * D), r(M);
  ops::rmsnorm_forward<float>(F(x, M * D).data(), F(w, D).data(), o.data(), r.data(), M, D, eps,
                              unit_offset);
  store(y, o);
  if (rstd) std::memcpy(rstd, r.data(), M * 4);
}
void rmsnorm_backward(const bf16* x, const bf16* w, const float* rstd, const bf16* dy, bf16* dx,
                      float* dw, int64_t M, int64_t D, bool unit_offset, cudaStream_t) {
  std::vector<float> g(M * D, 0.f), gw(D, 0.f);
  ops::rmsnorm_backward<float>(F(x, M * D).data(), F(w, D).data(), rstd, F(dy, M * D).data(),
                               g.data(), gw.data(), M, D, unit_offset);
  add_into(dx, g);
  if (dw)
    for (int64_t j = 0; j < D; ++j) dw[j] += gw[j];
}
void layernorm_forward(const bf16* x, const bf16* w, const bf16* b, bf16* y, float* mean,
                       float* rstd, int64_t M, int64_t D, float eps, cudaStream_t) {
  std::vector<float> o(M * D), mu(M), r(M), bb = b ? F(b, D) : std::vector<float>(D, 0.f);
  ops::layernorm_forward<float>(F(x, M * D).data(), F(w, D).data(), bb.data(), o.data(), mu.data(),
                                r.data(), M, D, eps);
  store(y, o);
  if (mean) std::memcpy(mean, mu.data(), M * 4);
  if (rstd) std::memcpy(rstd, r.data(), M * 4);
}
void layernorm_backward(const bf16* x, const bf16* w, const float* mean, const float* rstd,
                        const bf16* dy, bf16* dx, float* dw, float* db, int64_t M, int64_t D,
                        cudaStream_t) {
  std::vector<float> g(M * D, 0.f), gw(D, 0.f), gb(D, 0.f);
  ops::layernorm_backward<float>(F(x, M * D).data(), F(w, D).data(), mean, rstd,
                                 F(dy, M * D).data(), g.data(), gw.data(), gb.data(), M, D);
  add_into(dx, g);
  if (dw)
    for (int64_t j = 0; j < D; ++j) dw[j] += gw[j];
  if (db)
    for (int64_t j = 0; j < D; ++j) db[j] += gb[j];
}

DeviceRopeTable::DeviceRopeTable(const RopeTable& t)
    : max_positions_(t.max_positions), rot_dim_(t.rot_dim) {
  cos_ = new float[t.cos.size() + 1];
  sin_ = new float[t.sin.size() + 1];
  for (size_t i = 0; i < t.cos.size(); ++i) {
    cos_[i] = t.cos[i];
    sin_[i] = t.sin[i];
  }
}
DeviceRopeTable::~DeviceRopeTable() {
  delete[] cos_;
  delete[] sin_;
}
namespace {
RopeTable host_table(const DeviceRopeTable& d) {
  RopeTable t;
  t.max_positions = d.max_positions();
  t.rot_dim = d.rot_dim();
  const size_t n = d.max_positions() * (d.rot_dim() / 2);
  t.cos.assign(d.cos(), d.cos() + n);
  t.sin.assign(d.sin(), d.sin() + n);
  return t;
}
}  // namespace
void rope_forward(bf16* x, const DeviceRopeTable& table, int64_t N, int64_t T, int64_t H,
                  int64_t Dh, cudaStream_t) {
  auto v = F(x, N * T * H * Dh);
  ops::rope_forward<float>(v.data(), host_table(table), N, T, H, Dh);
  store(x, v);
}
void rope_backward(bf16* dx, const DeviceRopeTable& table, int64_t N, int64_t T, int64_t H,
                   int64_t Dh, cudaStream_t) {
  auto v = F(dx, N * T * H * Dh);
  ops::rope_backward<float>(v.data(), host_table(table), N, T, H, Dh);
  store(dx, v);
}
#define GATED(name)                                                                                \
  void name##_forward(const bf16* gate, const bf16* up, bf16* out, int64_t n, cudaStream_t) {      \
    std::vector<float> o(n);                                                                       \
    ops::name##_forward<float>(F(gate, n).data(), F(up, n).data(), o.data(), n);                   \
    store(out, o);                                                                                 \
  }                                                                                                \
  void name##_backward(const bf16* gate, const bf16* up, const bf16* dout, bf16* dgate, bf16* dup, \
                       int64_t n, cudaStream_t) {                                                  \
    std::vector<float> a(n, 0.f), b(n, 0.f);                                                       \
    ops::name##_backward<float>(F(gate, n).data(), F(up, n).data(), F(dout, n).data(), a.data(),   \
                                b.data(), n);                                                      \
    add_into(dgate, a);                                                                            \
    add_into(dup, b);                                                                              \
  }
GATED(swiglu)
GATED(geglu)
void gelu_forward(const bf16* x, bf16* out, int64_t n, bool t, cudaStream_t) {
  std::vector<float> o(n);
  ops::gelu_forward<float>(F(x, n).data(), o.data(), n, t);
  store(out, o);
}
void gelu_backward(const bf16* x, const bf16* dout, bf16* dx, int64_t n, bool t, cudaStream_t) {
  std::vector<float> g(n, 0.f);
  ops::gelu_backward<float>(F(x, n).data(), F(dout, n).data(), g.data(), n, t);
  add_into(dx, g);
}
void add_forward(const bf16* a, const bf16* b, bf16* out, int64_t n, cudaStream_t) {
  auto x = F(a, n), y = F(b, n);
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
  store(out, x);
}
void adamw_step(float* param, const float* grad, float* m, float* v, bf16* param_bf16, int64_t n,
                const AdamWHyper& hyper, bool decay, int64_t step, cudaStream_t) {
  ops::adamw_step<float>(param, grad, m, v, n, hyper, decay, step);
  if (param_bf16)
    for (int64_t i = 0; i < n; ++i) param_bf16[i] = __float2bfloat16(param[i]);
}
#endif  // RRT_SIMULATED_KERNELS

// ---- gemm ----
struct GemmContext::Impl {};
GemmContext::GemmContext(cudaStream_t, size_t) : impl_(std::make_unique<Impl>()) {}
GemmContext::~GemmContext() = default;
cudaStream_t GemmContext::stream() const { return nullptr; }  // the simulated ops ask
namespace {
// C[M,N] = alpha op(A) op(B) + beta C in double
template <typename Out>
void gemm_host(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A,
               const bf16* B, float beta, Out* C, const bf16* bias) {
  RRT_CHECK(C != nullptr, "emu gemm", "null C");
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) {
        const float a = __bfloat162float(ta ? A[k * M + i] : A[i * K + k]);
        const float b = __bfloat162float(tb ? B[j * K + k] : B[k * N + j]);
        s += double(a) * b;
      }
      double c = alpha * s;
      if (beta != 0.f) {
        if constexpr (std::is_same_v<Out, float>)
          c += beta * double(C[i * N + j]);
        else
          c += beta * double(__bfloat162float(C[i * N + j]));
      }
      if (bias) c += __bfloat162float(bias[j]);
      if constexpr (std::is_same_v<Out, float>)
        C[i * N + j] = float(c);
      else
        C[i * N + j] = __float2bfloat16(float(c));
    }
}
}  // namespace
void gemm(GemmContext&, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
          const bf16* A, const bf16* B, float beta, bf16* C, const bf16* bias) {
  gemm_host(ta, tb, M, N, K, alpha, A, B, beta, C, bias);
}
void gemm(GemmContext&, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
          const bf16* A, const bf16* B, float beta, float* C) {
  gemm_host<float>(ta, tb, M, N, K, alpha, A, B, beta, C, nullptr);
}
void linear_forward(GemmContext& c, const bf16* x, const bf16* W, const bf16* bias, bf16* y,
                    int64_t M, int64_t in, int64_t out, bool accumulate) {
  gemm(c, false, true, M, out, in, 1.f, x, W, accumulate ? 1.f : 0.f, y, bias);
}
void linear_backward(GemmContext& c, const bf16* x, const bf16* W, const bf16* dy, bf16* dx,
                     float* dW, float* dbias, int64_t M, int64_t in, int64_t out) {
  if (dx) gemm(c, false, false, M, in, out, 1.f, dy, W, 1.f, dx);
  if (dW) gemm(c, true, false, out, in, M, 1.f, dy, x, 1.f, dW);
  if (dbias)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < out; ++j) dbias[j] += __bfloat162float(dy[i * out + j]);
}
void lora_forward(GemmContext& ctx, const bf16* x, const bf16* A, const bf16* B, bf16* u, bf16* y,
                  int64_t M, int64_t in, int64_t out, int64_t R, float scale) {
  if (R == 0) return;
  gemm(ctx, false, true, M, R, in, 1.f, x, A, 0.f, u);
  gemm(ctx, false, true, M, out, R, scale, u, B, 1.f, y);
}
void lora_forward_overwrite(GemmContext& ctx, const bf16* x, const bf16* A, const bf16* B, bf16* u,
                            bf16* y, int64_t M, int64_t in, int64_t out, int64_t R, float scale) {
  if (R == 0) return;
  gemm(ctx, false, true, M, R, in, 1.f, x, A, 0.f, u);
  gemm(ctx, false, true, M, out, R, scale, u, B, 0.f, y);
}
void lora_backward(GemmContext& ctx, const bf16* x, const bf16* A, const bf16* B, const bf16* u,
                   const bf16* dy, bf16* dx, float* dA, float* dB, bf16* du, int64_t M, int64_t in,
                   int64_t out, int64_t R, float scale) {
  if (R == 0) return;
  gemm(ctx, false, false, M, R, out, scale, dy, B, 0.f, du);
  if (dB) gemm(ctx, true, false, out, R, M, scale, dy, u, 1.f, dB);
  if (dA) gemm(ctx, true, false, R, in, M, 1.f, du, x, 1.f, dA);
  if (dx) gemm(ctx, false, false, M, in, R, 1.f, du, A, 1.f, dx);
}

#ifndef RRT_SIMULATED_KERNELS  // tests/gpu/simulate.sh runs ops/cuda's own kernels instead
// ---- cross entropy ----
size_t lm_head_workspace_bytes(int64_t V, int64_t chunk) { return 16; }
CrossEntropyResult lm_head_cross_entropy(GemmContext&, const bf16* h, const bf16* W,
                                         const int32_t* targets, bf16* dh, float* dW, int64_t M,
                                         int64_t D, int64_t V, int32_t ignore_index, float weight,
                                         void*, size_t, int64_t chunk) {
  std::vector<float> ws(V * chunk), g(M * D, 0.f);
  auto r = ops::lm_head_cross_entropy<float>(F(h, M * D).data(), F(W, V * D).data(), targets,
                                             dh ? g.data() : nullptr, dW, M, D, V, ignore_index,
                                             weight, ws.data(), chunk);
  if (dh) add_into(dh, g);
  return r;
}

// ---- exit loss ----
// The CPU op in fp32 on the bf16 inputs; dh rounds where the kernels' bf16 GEMM outputs round,
// dW / dA / dB are fp32 and the CPU op adds into them directly.
size_t exit_loss_workspace_bytes(int64_t, int64_t, int64_t, bool, bool, int64_t) { return 16; }
ExitLossResult exit_loss(GemmContext&, const ExitLossArgs& a) {
  const int64_t M = a.M, D = a.D, V = a.V, E = a.exits, R = a.head_lora_rank;
  std::vector<std::vector<float>> h(E), A(E), B(E), dh(E);
  std::vector<const float*> hp(E), Ap(E, nullptr), Bp(E, nullptr);
  std::vector<float*> dhp(E, nullptr), dAp(E, nullptr), dBp(E, nullptr);
  for (int64_t k = 0; k < E; ++k) {
    h[k] = F(a.h[k], M * D);
    hp[k] = h[k].data();
    if (R > 0 && a.lora_A && a.lora_A[k] && a.lora_B && a.lora_B[k]) {
      A[k] = F(a.lora_A[k], R * D);
      B[k] = F(a.lora_B[k], V * R);
      Ap[k] = A[k].data();
      Bp[k] = B[k].data();
    }
    if (a.dh && a.dh[k]) {
      dh[k].assign(M * D, 0.f);
      dhp[k] = dh[k].data();
    }
    if (a.dA) dAp[k] = a.dA[k];
    if (a.dB) dBp[k] = a.dB[k];
  }
  const std::vector<float> W = F(a.W, V * D);
  std::vector<float> th, tW;
  ops::ExitLossArgs<float> c;
  c.M = M;
  c.D = D;
  c.V = V;
  c.exits = E;
  c.h = hp.data();
  c.exit_weights = a.exit_weights;
  c.W = W.data();
  c.targets = a.targets;
  c.ignore_index = a.ignore_index;
  c.head_lora_rank = R;
  c.head_lora_scale = a.head_lora_scale;
  c.lora_A = Ap.data();
  c.lora_B = Bp.data();
  if (a.teacher_h) {
    th = F(a.teacher_h, M * a.teacher_D);
    tW = F(a.teacher_W, V * a.teacher_D);
    c.teacher_h = th.data();
    c.teacher_W = tW.data();
    c.teacher_D = a.teacher_D;
  }
  c.divergence = a.divergence;
  c.temperature = a.temperature;
  c.alpha = a.alpha;
  c.self_distill = a.self_distill;
  if (a.dh) {
    c.dh = dhp.data();
    c.dW = a.dW;
    c.dA = dAp.data();
    c.dB = dBp.data();
  }
  c.weight = a.weight;
  std::vector<float> ws(
      ops::exit_loss_workspace_elems(V, a.chunk, a.teacher_h != nullptr, a.self_distill, R));
  c.workspace = ws.data();
  c.chunk = a.chunk;
  c.exit_ce = a.exit_ce;
  c.exit_kd = a.exit_kd;
  c.exit_sd = a.exit_sd;
  const ExitLossResult r = ops::exit_loss<float>(c);
  for (int64_t k = 0; k < E; ++k)
    if (dhp[k]) add_into(a.dh[k], dh[k]);
  return r;
}

// ---- attention (simulate.sh: the fallback kernels, tests/gpu/simulation/sim_attention.cpp) ----
struct AttentionContext::Impl {};
AttentionContext::AttentionContext(cudaStream_t) : impl_(std::make_unique<Impl>()) {}
AttentionContext::~AttentionContext() = default;
void check_attention_shape(const AttentionShape&, bool) {}
void attention_forward(AttentionContext&, const bf16* q, const bf16* k, const bf16* v, bf16* out,
                       float* lse, const AttentionShape& s) {
  const int64_t nq = s.N * s.T * s.H * s.Dh, nk = s.N * s.T * s.Hkv * s.Dh;
  std::vector<float> ws(ops::attention_workspace_elems(s, 1)), o(nq);
  ops::attention_forward<float>(F(q, nq).data(), F(k, nk).data(), F(v, nk).data(), o.data(), lse, s,
                                ws.data(), 1);
  store(out, o);
}
void attention_backward(AttentionContext&, const bf16* q, const bf16* k, const bf16* v,
                        const bf16* out, const float* lse, const bf16* dout, bf16* dq, bf16* dk,
                        bf16* dv, const AttentionShape& s) {
  const int64_t nq = s.N * s.T * s.H * s.Dh, nk = s.N * s.T * s.Hkv * s.Dh;
  std::vector<float> ws(ops::attention_workspace_elems(s, 1)), gq(nq, 0.f), gk(nk, 0.f),
      gv(nk, 0.f);
  ops::attention_backward<float>(F(q, nq).data(), F(k, nk).data(), F(v, nk).data(),
                                 F(out, nq).data(), lse, F(dout, nq).data(), gq.data(), gk.data(),
                                 gv.data(), s, ws.data(), 1);
  add_into(dq, gq);
  add_into(dk, gk);
  add_into(dv, gv);
}

// ---- vector ops ----
void to_bf16(const float* in, bf16* out, int64_t n, cudaStream_t) {
  for (int64_t i = 0; i < n; ++i) out[i] = __float2bfloat16(in[i]);
}
void scale_inplace(float* x, int64_t n, float f, cudaStream_t) {
  for (int64_t i = 0; i < n; ++i) x[i] *= f;
}
double sum_squares(const float* x, int64_t n, double*, cudaStream_t) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += double(x[i]) * x[i];
  return s;
}

// ---- inference kernels (kv_ops) ----
// The kernels' math in fp32 on the host, with their shape checks; outputs round to bf16 where
// the kernels round (rope, attention, bias), copies are exact.
void rope_rows_forward(bf16* x, const DeviceRopeTable& table, const int32_t* pos, int64_t n,
                       int64_t H, int64_t Dh, cudaStream_t) {
  RRT_CHECK(n >= 0 && H >= 0 && Dh > 0 && table.rot_dim() <= Dh, "rope_rows", "bad shape n=", n,
            " H=", H, " Dh=", Dh, " rot_dim=", table.rot_dim());
  const int64_t half = table.rot_dim() / 2;
  for (int64_t i = 0; i < n; ++i) {
    RRT_CHECK(pos[i] >= 0 && pos[i] < table.max_positions(), "emu rope_rows", "position ",
              pos[i], " outside the table");
    const float* c = table.cos() + pos[i] * half;
    const float* sn = table.sin() + pos[i] * half;
    for (int64_t h = 0; h < H; ++h) {
      bf16* v = x + (i * H + h) * Dh;
      for (int64_t t = 0; t < half; ++t) {
        const float a = __bfloat162float(v[t]), b = __bfloat162float(v[t + half]);
        v[t] = __float2bfloat16(a * c[t] - b * sn[t]);
        v[t + half] = __float2bfloat16(b * c[t] + a * sn[t]);
      }
    }
  }
}
void kv_store(const bf16* k, const bf16* v, bf16* k_cache, bf16* v_cache, const int32_t* slot,
              const int32_t* pos, int64_t n, int64_t max_seq, int64_t kv_dim, cudaStream_t,
              const int32_t* cache, int64_t cache_stride) {
  RRT_CHECK(n >= 0 && max_seq >= 0 && kv_dim >= 0 && cache_stride >= 0, "kv_store", "bad shape");
  for (int64_t i = 0; i < n; ++i) {
    RRT_CHECK(slot[i] >= 0 && pos[i] >= 0 && pos[i] < max_seq, "emu kv_store", "row ", i,
              " names slot ", slot[i], " position ", pos[i]);
    const int64_t cell = (cache ? cache[i] * cache_stride : 0) +
                         (static_cast<int64_t>(slot[i]) * max_seq + pos[i]) * kv_dim;
    std::memcpy(k_cache + cell, k + i * kv_dim, sizeof(bf16) * kv_dim);
    std::memcpy(v_cache + cell, v + i * kv_dim, sizeof(bf16) * kv_dim);
  }
}
void kv_attention(const bf16* q, const bf16* k_cache, const bf16* v_cache, const int32_t* slot,
                  const int32_t* pos, bf16* out, int64_t n, int64_t H, int64_t Hkv, int64_t Dh,
                  int64_t max_seq, cudaStream_t, const int32_t* cache, int64_t cache_stride) {
  RRT_CHECK(n >= 0 && H >= 1 && Hkv >= 1 && max_seq >= 1 && H % Hkv == 0 && Dh >= 1 &&
                Dh <= kKvAttentionMaxHeadDim && cache_stride >= 0,
            "kv_attention", "bad shape n=", n, " H=", H, " Hkv=", Hkv, " Dh=", Dh);
  const int64_t kv_dim = Hkv * Dh;
  const float scale = 1.0f / std::sqrt(static_cast<float>(Dh));
  std::vector<float> score, o(Dh);
  for (int64_t i = 0; i < n; ++i) {
    RRT_CHECK(slot[i] >= 0 && pos[i] >= 0 && pos[i] < max_seq, "emu kv_attention", "row ", i,
              " names slot ", slot[i], " position ", pos[i]);
    const int64_t len = pos[i] + 1;
    score.resize(len);
    for (int64_t h = 0; h < H; ++h) {
      const int64_t base = (cache ? cache[i] * cache_stride : 0) +
                           static_cast<int64_t>(slot[i]) * max_seq * kv_dim + h / (H / Hkv) * Dh;
      const bf16* qh = q + (i * H + h) * Dh;
      float mx = -INFINITY;
      for (int64_t t = 0; t < len; ++t) {
        float dot = 0;
        for (int64_t d = 0; d < Dh; ++d)
          dot += __bfloat162float(qh[d]) * __bfloat162float(k_cache[base + t * kv_dim + d]);
        score[t] = dot * scale;
        mx = std::max(mx, score[t]);
      }
      float sum = 0;
      for (float& sc : score) sum += (sc = std::exp(sc - mx));
      std::fill(o.begin(), o.end(), 0.f);
      for (int64_t t = 0; t < len; ++t)
        for (int64_t d = 0; d < Dh; ++d)
          o[d] += score[t] * __bfloat162float(v_cache[base + t * kv_dim + d]);
      for (int64_t d = 0; d < Dh; ++d) out[(i * H + h) * Dh + d] = __float2bfloat16(o[d] / sum);
    }
  }
}
void gather_rows(const bf16* src, const int32_t* index, bf16* dst, int64_t n, int64_t D,
                 cudaStream_t) {
  RRT_CHECK(n >= 0 && D >= 0, "gather_rows", "bad shape n=", n, " D=", D);
  for (int64_t i = 0; i < n; ++i)
    std::memcpy(dst + i * D, src + static_cast<int64_t>(index[i]) * D, sizeof(bf16) * D);
}
void scatter_rows(const bf16* src, const int32_t* index, bf16* dst, int64_t n, int64_t D,
                  cudaStream_t) {
  RRT_CHECK(n >= 0 && D >= 0, "scatter_rows", "bad shape n=", n, " D=", D);
  for (int64_t i = 0; i < n; ++i)
    std::memcpy(dst + static_cast<int64_t>(index[i]) * D, src + i * D, sizeof(bf16) * D);
}
void logits_argmax_max_prob(const float* logits, int64_t n, int64_t V, int32_t* argmax,
                            float* max_prob, cudaStream_t) {
  RRT_CHECK(n >= 0 && V >= 1, "logits_argmax_max_prob", "bad shape n=", n, " V=", V);
  for (int64_t r = 0; r < n; ++r) {
    const float* l = logits + r * V;
    int64_t best = 0;
    for (int64_t j = 1; j < V; ++j)
      if (l[j] > l[best]) best = j;
    double sum = 0;  // the kernel's tree of fp32 partial sums is this close; one fp32 chain is not
    for (int64_t j = 0; j < V; ++j) sum += std::exp(double(l[j]) - l[best]);
    argmax[r] = static_cast<int32_t>(best);
    max_prob[r] = static_cast<float>(1.0 / sum);
  }
}

// ---- batched per-row LoRA (lora_rows) ----
// The kernels' math on the host: u in fp32 (never rounded), y rounded to bf16 once per element.
void lora_rows_forward(const bf16* x, int64_t in, bf16* y, int64_t out, const LoraAdapter* adapters,
                       int64_t adapter_stride, const LoraRowTile* tiles, int64_t n_tiles,
                       int64_t max_rank, float* u, cudaStream_t) {
  RRT_CHECK(in >= 1 && out >= 1 && n_tiles >= 0 && max_rank >= 0 && adapter_stride >= 0,
            "lora_rows", "bad shape in=", in, " out=", out, " n_tiles=", n_tiles,
            " max_rank=", max_rank, " adapter_stride=", adapter_stride);
  if (max_rank == 0) return;  // as the kernels: nothing launched, the arrays are not read
  for (int64_t t = 0; t < n_tiles; ++t) {
    const LoraRowTile& tile = tiles[t];
    const LoraAdapter& ad = adapters[tile.group * adapter_stride];
    RRT_CHECK(tile.end - tile.begin <= kLoraRowTileMax && ad.rank <= max_rank, "emu lora_rows",
              "tile ", t, " has ", tile.end - tile.begin, " rows, rank ", ad.rank);
    if (!ad.a || !ad.b || ad.rank <= 0) continue;
    for (int64_t i = tile.begin; i < tile.end; ++i) {
      float* ui = u + i * max_rank;
      for (int64_t k = 0; k < ad.rank; ++k) {
        float dot = 0.f;
        for (int64_t c = 0; c < in; ++c)
          dot += __bfloat162float(x[i * in + c]) * __bfloat162float(ad.a[k * in + c]);
        ui[k] = dot;
      }
      for (int64_t o = 0; o < out; ++o) {
        float dot = 0.f;
        for (int64_t k = 0; k < ad.rank; ++k)
          dot += ui[k] * __bfloat162float(ad.b[o * ad.rank + k]);
        y[i * out + o] = __float2bfloat16(__bfloat162float(y[i * out + o]) + ad.scale * dot);
      }
    }
  }
}
#endif  // RRT_SIMULATED_KERNELS
}  // namespace rrt::ops::cuda
