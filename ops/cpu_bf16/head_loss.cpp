// CpuBf16Backend's chunked head losses (ops/cpu_bf16/backend.h).
//
// The plain CE (lm_head_cross_entropy) is ops/cuda/cross_entropy.cu's scheme on the host: per
// chunk of rows, logits = h W^T by the bf16 GEMM (ops/cpu_bf16/gemm.h, fp32 out); a vectorised
// fp32 softmax per row gives the loss (summed over rows in double) and dlogits = grad_scale *
// (softmax - onehot) rounded to bf16; then dh += dlogits W (bf16, one rounding) and dW +=
// dlogits^T h (fp32) by the bf16 GEMM. Keeping dlogits fp32 would need the fp32 GEMM on a
// widened head and rows, which is what this replaced (docs/benchmarks.md, the bf16 head).
//
// The exit / distillation loss is scored by the fp32 op (ops/cpu/exit_loss.cpp), one chunk of
// rows at a time. The head (and the teacher's head and the exits' adapters) is widened to fp32
// once per call; each chunk's hidden rows are widened, scored by one fp32 call of that chunk, and
// its fp32 dh added into the bf16 dh (one rounding). dW, dA and dB are the fp32 gradients
// themselves. Logits, softmax, the loss and its gradient are fp32 throughout (the per-row
// divergences in double, as the fp32 op computes them). A chunk's call averages over its own
// counted rows; every term is a mean over rows, so the call is weighted by counted(chunk) /
// counted(all), and its gradient weight likewise.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/error.h"
#include "ops/cpu_bf16/backend.h"
#include "ops/cpu_bf16/convert.h"

namespace rrt {

using ops::cpu_bf16::add_into;
using ops::cpu_bf16::F16;
using ops::cpu_bf16::kLanes;
using ops::cpu_bf16::load;
using ops::cpu_bf16::splat;
using ops::cpu_bf16::store;
using ops::cpu_bf16::sum;
using ops::cpu_bf16::to_float;

namespace {

constexpr const char* kCe = "cpu-bf16 lm_head_cross_entropy";

int64_t counted_rows(const int32_t* targets, int64_t M, int32_t ignore_index) {
  int64_t c = 0;
  for (int64_t i = 0; i < M; ++i) c += targets[i] != ignore_index;
  return c;
}

// x [n] widened into buf (grown, never shrunk); returns its data.
float* widen(const bf16* x, int64_t n, std::vector<float>& buf) {
  if (buf.size() < static_cast<size_t>(n)) buf.resize(static_cast<size_t>(n));
  constexpr int64_t kSlice = 1 << 16;
#pragma omp parallel for schedule(static)
  for (int64_t at = 0; at < n; at += kSlice)
    to_float(x + at, buf.data() + at, std::min(kSlice, n - at));
  return buf.data();
}

// exp(x) for x <= 0 in fp32, 16 lanes (Cephes' expf: x = n ln2 + r, |r| <= ln2 / 2, a degree-6
// polynomial in r, 2^n through the exponent bits): about 1 ulp, where glibc's scalar expf called
// per element costs more than the head's GEMMs. Below -87 the result is clamped to ~1e-38, which
// no sum of a softmax (>= 1) or bf16 dlogit (grad_scale / counted * p) can tell from 0.
typedef int32_t I16 __attribute__((vector_size(64)));
F16 exp_nonpositive(F16 x) {
  x = x < splat(-87.f) ? splat(-87.f) : x;
  const F16 magic = splat(12582912.f);  // 1.5 * 2^23: adding and subtracting rounds to integer
  const F16 n = (x * 1.44269504f + magic) - magic;
  const F16 r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  F16 p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.f;
  const I16 bits = (__builtin_convertvector(n, I16) + 127) << 23;
  F16 scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// One kept row of fp32 logits [V]: returns its loss lse - x[target]; with dl, writes
// dl = bf16(grad_scale * (softmax - onehot)) as the CUDA kernel does. The row is overwritten by
// exp(x - max) on the way.
double softmax_row(float* x, int64_t V, int32_t target, float grad_scale, bf16* dl) {
  const float x_target = x[target];
  const int64_t full = V / kLanes * kLanes;
  F16 vmax = splat(-std::numeric_limits<float>::infinity());
  for (int64_t j = 0; j < full; j += kLanes) {
    const F16 v = load(x + j);
    vmax = v > vmax ? v : vmax;
  }
  float m = -std::numeric_limits<float>::infinity();
  for (int i = 0; i < kLanes; ++i) m = std::max(m, vmax[i]);
  for (int64_t j = full; j < V; ++j) m = std::max(m, x[j]);
  F16 vsum{};
  for (int64_t j = 0; j < full; j += kLanes) {
    const F16 e = exp_nonpositive(load(x + j) - m);
    store(x + j, e);
    vsum += e;
  }
  float s = sum(vsum);
  for (int64_t j = full; j < V; ++j) s += x[j] = std::exp(x[j] - m);
  if (dl != nullptr) {
    const float scale = grad_scale / s;
    for (int64_t j = 0; j < full; j += kLanes) store(dl + j, load(x + j) * scale);
    for (int64_t j = full; j < V; ++j) dl[j] = bf16::from_float(x[j] * scale);
    dl[target] = bf16::from_float(x[target] * scale - grad_scale);
  }
  return static_cast<double>(m) + std::log(static_cast<double>(s)) - x_target;
}

}  // namespace

ops::CrossEntropyResult CpuBf16Backend::lm_head_cross_entropy(
    const Act* h, const Act* W, const int32_t* targets, Act* dh, float* dW, int64_t M, int64_t D,
    int64_t V, int32_t ignore_index, float weight, void* workspace, size_t bytes, int64_t chunk) {
  RRT_CHECK(M >= 0 && D > 0 && V > 0, kCe, "bad sizes M=", M, " D=", D, " V=", V);
  ops::CrossEntropyResult result;
  for (int64_t i = 0; i < M; ++i) {
    if (targets[i] == ignore_index) continue;
    RRT_CHECK(targets[i] >= 0 && targets[i] < V, kCe, "target ", targets[i], " at row ", i,
              " is outside the vocabulary of ", V);
    ++result.counted;
  }
  if (result.counted == 0) return result;
  chunk = std::clamp<int64_t>(chunk, 1, M);
  RRT_CHECK(workspace != nullptr && bytes >= lm_head_workspace_bytes(V, chunk), kCe,
            "workspace of ", bytes, " bytes is smaller than the ",
            lm_head_workspace_bytes(V, chunk), " that V=", V, ", chunk=", chunk,
            " need ---> HINT: size it with CpuBf16Backend::lm_head_workspace_bytes(V, chunk)");
  float* logits = static_cast<float*>(workspace);  // [chunk, V]
  bf16* dlogits = reinterpret_cast<bf16*>(static_cast<char*>(workspace) + logits_bytes(V, chunk));
  const bool backward = dh != nullptr || dW != nullptr;
  const float grad_scale = weight / static_cast<float>(result.counted);
  double loss_sum = 0;
  for (int64_t r0 = 0; r0 < M; r0 += chunk) {
    const int64_t rows = std::min(chunk, M - r0);
    const bf16* h_c = h + r0 * D;
    ops::cpu_bf16::gemm(false, true, rows, V, D, 1.f, h_c, D, W, D, 0.f, logits, V);
    double chunk_loss = 0;
#pragma omp parallel for schedule(static) reduction(+ : chunk_loss)
    for (int64_t r = 0; r < rows; ++r) {
      const int32_t target = targets[r0 + r];
      bf16* dl = backward ? dlogits + r * V : nullptr;
      if (target == ignore_index) {  // the gradient GEMMs read every row of the chunk
        if (dl) std::fill(dl, dl + V, bf16(0.f));
        continue;
      }
      chunk_loss += softmax_row(logits + r * V, V, target, grad_scale, dl);
    }
    loss_sum += chunk_loss;
    if (dh)
      ops::cpu_bf16::gemm(false, false, rows, D, V, 1.f, dlogits, V, W, D, 1.f, dh + r0 * D, D);
    if (dW) ops::cpu_bf16::gemm(true, false, V, D, rows, 1.f, dlogits, V, h_c, D, 1.f, dW, D);
  }
  result.mean_loss = loss_sum / static_cast<double>(result.counted);
  return result;
}

ops::ExitLossResult CpuBf16Backend::exit_loss(const HeadLossArgs<Act>& in) {
  const int64_t M = in.M, D = in.D, V = in.V, E = in.exits, R = in.head_lora_rank;
  RRT_CHECK(E >= 1 && in.h != nullptr && in.exit_weights != nullptr, "exit_loss",
            "needs at least one exit with its hidden states and weight");
  const bool teacher = in.teacher_h != nullptr;
  const int64_t Dt = teacher ? in.teacher_D : 0;
  for (int64_t k = 0; k < E; ++k) {
    if (in.exit_ce) in.exit_ce[k] = 0;
    if (in.exit_kd) in.exit_kd[k] = 0;
    if (in.exit_sd) in.exit_sd[k] = 0;
  }
  ops::ExitLossResult result;
  result.counted = counted_rows(in.targets, M, in.ignore_index);
  if (result.counted == 0) return result;

  const float* w32 = widen(in.W, V * D, head_f32_);
  const float* tw32 = teacher ? widen(in.teacher_W, V * Dt, teacher_head_f32_) : nullptr;
  // The exits' head adapters: A [R, D] then B [V, R] per exit, where the exit has one.
  const int64_t adapter = R * D + V * R;
  if (adapters_f32_.size() < static_cast<size_t>(E * adapter))
    adapters_f32_.resize(static_cast<size_t>(E * adapter));
  std::vector<const float*> A32(static_cast<size_t>(E), nullptr), B32 = A32;
  for (int64_t k = 0; k < E && R > 0; ++k) {
    if (in.lora_A == nullptr || in.lora_A[k] == nullptr) continue;
    float* a = adapters_f32_.data() + k * adapter;
    to_float(in.lora_A[k], a, R * D);
    to_float(in.lora_B[k], a + R * D, V * R);
    A32[k] = a;
    B32[k] = a + R * D;
  }
  // Rows of one chunk: each exit's h and dh, the teacher's h.
  const int64_t chunk = std::clamp<int64_t>(in.chunk, 1, M);
  const size_t row_floats = static_cast<size_t>(chunk * (2 * E * D + Dt));
  if (rows_f32_.size() < row_floats) rows_f32_.resize(row_floats);
  std::vector<const float*> h32(static_cast<size_t>(E));
  std::vector<float*> dh32(static_cast<size_t>(E), nullptr);
  for (int64_t k = 0; k < E; ++k) {
    h32[k] = rows_f32_.data() + k * chunk * D;
    if (in.dh != nullptr && in.dh[k] != nullptr) dh32[k] = rows_f32_.data() + (E + k) * chunk * D;
  }
  float* th32 = rows_f32_.data() + 2 * E * chunk * D;
  std::vector<double> ce(static_cast<size_t>(E)), kd = ce, sd = ce;

  // copy_head_loss_fields copies the Act pointers too; here they are the fp32 copies.
  ops::ExitLossArgs<float> a;
  a.D = D;
  a.V = V;
  a.exits = E;
  a.exit_weights = in.exit_weights;
  a.ignore_index = in.ignore_index;
  a.head_lora_rank = R;
  a.teacher_D = Dt;
  a.divergence = in.divergence;
  a.temperature = in.temperature;
  a.alpha = in.alpha;
  a.self_distill = in.self_distill;
  a.dW = in.dW;
  a.dA = in.dA;
  a.dB = in.dB;
  a.W = w32;
  a.h = h32.data();
  a.lora_A = R > 0 ? A32.data() : nullptr;
  a.lora_B = R > 0 ? B32.data() : nullptr;
  a.teacher_W = tw32;
  a.teacher_h = teacher ? th32 : nullptr;
  a.dh = in.dh != nullptr ? dh32.data() : nullptr;
  a.workspace = static_cast<float*>(in.workspace);
  a.exit_ce = ce.data();
  a.exit_kd = kd.data();
  a.exit_sd = sd.data();
  for (int64_t r0 = 0; r0 < M; r0 += chunk) {
    const int64_t rows = std::min(chunk, M - r0);
    const int64_t counted = counted_rows(in.targets + r0, rows, in.ignore_index);
    if (counted == 0) continue;
    const double share = static_cast<double>(counted) / static_cast<double>(result.counted);
    for (int64_t k = 0; k < E; ++k) {
      to_float(in.h[k] + r0 * D, const_cast<float*>(h32[k]), rows * D);
      if (dh32[k]) std::fill(dh32[k], dh32[k] + rows * D, 0.f);
    }
    if (teacher) to_float(in.teacher_h + r0 * Dt, th32, rows * Dt);
    a.M = rows;
    a.chunk = rows;
    a.targets = in.targets + r0;
    a.weight = static_cast<float>(in.weight * share);
    const ops::ExitLossResult part = ops::exit_loss<float>(a);
    result.loss += share * part.loss;
    result.ce += share * part.ce;
    result.kd += share * part.kd;
    result.sd += share * part.sd;
    for (int64_t k = 0; k < E; ++k) {
      if (in.exit_ce) in.exit_ce[k] += share * ce[k];
      if (in.exit_kd) in.exit_kd[k] += share * kd[k];
      if (in.exit_sd) in.exit_sd[k] += share * sd[k];
      if (dh32[k]) add_into(dh32[k], in.dh[k] + r0 * D, rows * D);
    }
  }
  return result;
}

}  // namespace rrt
