// CpuBf16Backend's element-wise ops (ops/cpu_bf16/backend.h): norms, RoPE, the activations, the
// residual add and the embedding. Each reads bf16 16 lanes at a time (ops/cpu_bf16/convert.h),
// computes in fp32 as the fp32 ops do (ops/activation_math.h's formulas; sigmoid and GELU's tanh
// form through the 16-lane exp of ops/cpu_bf16/vector_exp.h), and rounds once
// on store; a backward into a bf16 gradient loads it, adds, and rounds the sum once. Weight
// gradients are fp32 sums over rows in row order, one column block per thread, as on the fp32
// backend.
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "ops/activation_math.h"
#include "ops/cpu_bf16/backend.h"
#include "ops/cpu_bf16/convert.h"
#include "ops/cpu_bf16/vector_exp.h"

namespace rrt {

using ops::cpu_bf16::F16;
using ops::cpu_bf16::kLanes;
using ops::cpu_bf16::load;
using ops::cpu_bf16::splat;
using ops::cpu_bf16::store;

namespace {

// f(j, width) over [0, n) in steps of 16 lanes.
template <class F>
inline void lanes(int64_t n, F&& f) {
  for (int64_t j = 0; j < n; j += kLanes) f(j, std::min(kLanes, n - j));
}

// f(i, width) over [0, n) in steps of 16 lanes, blocks of 4096 elements across threads.
template <class F>
void parallel_lanes(int64_t n, F&& f) {
  constexpr int64_t kChunk = 4096;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < n; c += kChunk) {
    const int64_t end = std::min(n, c + kChunk);
    for (int64_t i = c; i < end; i += kLanes) f(i, std::min(kLanes, end - i));
  }
}

// A scalar fp32 function lane by lane.
template <class Fn>
inline F16 map(F16 x, Fn fn) {
  F16 y;
  for (int l = 0; l < kLanes; ++l) y[l] = fn(x[l]);
  return y;
}

// Per column block of 16: dw[j] += sum_i f(i, j0, width) in row order.
template <class F>
void column_sums(float* dw, int64_t M, int64_t D, F&& f) {
#pragma omp parallel for schedule(static)
  for (int64_t j0 = 0; j0 < D; j0 += kLanes) {
    const int64_t w = std::min(kLanes, D - j0);
    F16 acc = load(dw + j0, w);
    for (int64_t i = 0; i < M; ++i) acc += f(i, j0, w);
    store(dw + j0, acc, w);
  }
}

}  // namespace

// ---- norms -----------------------------------------------------------------------------------

void CpuBf16Backend::norm_forward(bool layer_norm, const Act* x, const Act* w, const Act* bias,
                                  Act* y, float* mean, float* rstd, int64_t M, int64_t D, float eps,
                                  bool unit_offset) const {
  const float offset = unit_offset && !layer_norm ? 1.f : 0.f;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < M; ++i) {
    const Act* xi = x + i * D;
    Act* yi = y + i * D;
    if (!layer_norm) {
      F16 ss{};
      lanes(D, [&](int64_t j, int64_t n) {
        const F16 v = load(xi + j, n);
        ss += v * v;
      });
      const float r = static_cast<float>(1.0 / std::sqrt(ops::cpu_bf16::sum(ss) / D + eps));
      rstd[i] = r;
      lanes(D, [&](int64_t j, int64_t n) {
        store(yi + j, load(xi + j, n) * r * (offset + load(w + j, n)), n);
      });
      continue;
    }
    F16 s{};
    lanes(D, [&](int64_t j, int64_t n) { s += load(xi + j, n); });
    const float mu = ops::cpu_bf16::sum(s) / static_cast<float>(D);
    F16 var{};
    lanes(D, [&](int64_t j, int64_t n) {
      // Lanes past the row's end load 0, and 0 - mu must not count.
      F16 c = load(xi + j, n) - mu;
      for (int64_t l = n; l < kLanes; ++l) c[l] = 0;
      var += c * c;
    });
    const float r = static_cast<float>(1.0 / std::sqrt(ops::cpu_bf16::sum(var) / D + eps));
    mean[i] = mu;
    rstd[i] = r;
    lanes(D, [&](int64_t j, int64_t n) {
      const F16 b = bias ? load(bias + j, n) : F16{};
      store(yi + j, (load(xi + j, n) - mu) * r * load(w + j, n) + b, n);
    });
  }
}

void CpuBf16Backend::norm_backward(bool layer_norm, const Act* x, const Act* w, const float* mean,
                                   const float* rstd, const Act* dy, Act* dx, float* dw,
                                   float* dbias, int64_t M, int64_t D, bool unit_offset) const {
  const float offset = unit_offset && !layer_norm ? 1.f : 0.f;
  if (dx) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < M; ++i) {
      const Act *xi = x + i * D, *dyi = dy + i * D;
      Act* dxi = dx + i * D;
      const float r = rstd[i], mu = layer_norm ? mean[i] : 0.f;
      // RMSNorm: dot = mean(dy (o + w) xhat). LayerNorm: mean(dy w) and mean(dy w xhat).
      F16 g_sum{}, gx_sum{};
      lanes(D, [&](int64_t j, int64_t n) {
        const F16 g = load(dyi + j, n) * (offset + load(w + j, n));
        g_sum += g;
        gx_sum += g * (load(xi + j, n) - mu) * r;
      });
      // Past-the-end lanes load dy = 0, so g = 0 there and both sums are exact.
      const float mean_g = layer_norm ? ops::cpu_bf16::sum(g_sum) / D : 0.f;
      const float mean_gx = ops::cpu_bf16::sum(gx_sum) / D;
      lanes(D, [&](int64_t j, int64_t n) {
        const F16 g = load(dyi + j, n) * (offset + load(w + j, n));
        const F16 xhat = (load(xi + j, n) - mu) * r;
        store(dxi + j, load(dxi + j, n) + r * (g - mean_g - xhat * mean_gx), n);
      });
    }
  }
  if (dw)
    column_sums(dw, M, D, [&](int64_t i, int64_t j0, int64_t n) {
      const float mu = layer_norm ? mean[i] : 0.f;
      return load(dy + i * D + j0, n) * (load(x + i * D + j0, n) - mu) * rstd[i];
    });
  if (dbias && layer_norm)
    column_sums(dbias, M, D,
                [&](int64_t i, int64_t j0, int64_t n) { return load(dy + i * D + j0, n); });
}

// ---- RoPE ------------------------------------------------------------------------------------

namespace {

// One head row v [Dh] at the table row (cos, sin) [half]; dir -1 is the inverse rotation.
inline void rotate_row(bf16* v, const float* c, const float* s, int64_t half, float dir) {
  lanes(half, [&](int64_t i, int64_t n) {
    const F16 a = load(v + i, n), b = load(v + i + half, n);
    const F16 ci = load(c + i, n), si = load(s + i, n) * dir;
    store(v + i, a * ci - b * si, n);
    store(v + i + half, b * ci + a * si, n);
  });
}

// x [N, T, H, Dh] rotated by each token's position (pos [N, T], null: t) in direction dir.
void rotate_tokens(bf16* x, const float* cos, const float* sin, int64_t half, int64_t positions,
                   int64_t N, int64_t T, int64_t H, int64_t Dh, const int32_t* pos, float dir) {
  RRT_CHECK(T <= positions, "rope", "sequence of ", T, " exceeds the table's ", positions,
            " positions");
  RRT_CHECK(2 * half <= Dh, "rope", "rotary dim ", 2 * half, " exceeds head dim ", Dh);
  for (int64_t i = 0; pos && i < N * T; ++i)  // checked before the parallel loop, which can't throw
    RRT_CHECK(pos[i] >= 0 && pos[i] < positions, "rope", "position ", pos[i], " of token ", i,
              " outside the table's ", positions);
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t t = 0; t < T; ++t) {
      const int64_t p = pos ? pos[n * T + t] : t;
      for (int64_t h = 0; h < H; ++h)
        rotate_row(x + ((n * T + t) * H + h) * Dh, cos + p * half, sin + p * half, half, dir);
    }
}
}  // namespace

void CpuBf16Backend::rope_forward(Act* x, int64_t N, int64_t T, int64_t H, int64_t Dh,
                                  const int32_t* pos, bool local) const {
  rotate_tokens(x, rope_cos(local), rope_sin(local), rope_half_, rope_positions_, N, T, H, Dh, pos,
                1.f);
}

void CpuBf16Backend::rope_backward(Act* dx, int64_t N, int64_t T, int64_t H, int64_t Dh,
                                   const int32_t* pos, bool local) const {
  rotate_tokens(dx, rope_cos(local), rope_sin(local), rope_half_, rope_positions_, N, T, H, Dh, pos,
                -1.f);
}

void CpuBf16Backend::rope_rows(Act* x, const int32_t* pos, int64_t n, int64_t H, int64_t Dh,
                               bool local) const {
  const float *cos = rope_cos(local), *sin = rope_sin(local);
  for (int64_t i = 0; i < n; ++i) {
    RRT_CHECK(pos[i] >= 0 && pos[i] < rope_positions_, "rope", "position ", pos[i],
              " outside the table's ", rope_positions_);
    for (int64_t h = 0; h < H; ++h)
      rotate_row(x + (i * H + h) * Dh, cos + pos[i] * rope_half_, sin + pos[i] * rope_half_,
                 rope_half_, 1.f);
  }
}

// ---- activations and the residual add ---------------------------------------------------------

using ops::activation_math::gelu_erf;
using ops::activation_math::gelu_erf_grad;
using ops::cpu_bf16::gelu_tanh_grad_lanes;
using ops::cpu_bf16::gelu_tanh_lanes;
using ops::cpu_bf16::sigmoid_lanes;

void CpuBf16Backend::add(const Act* a, const Act* b, Act* out, int64_t n) const {
  parallel_lanes(n,
                 [&](int64_t i, int64_t w) { store(out + i, load(a + i, w) + load(b + i, w), w); });
}

void CpuBf16Backend::scale(Act* x, float factor, int64_t n) const {
  parallel_lanes(n, [&](int64_t i, int64_t w) { store(x + i, load(x + i, w) * factor, w); });
}

void CpuBf16Backend::softcap_logits(float* z, int64_t n, double cap) const {
  if (cap <= 0) return;
  const float c = static_cast<float>(cap);
  parallel_lanes(n, [&](int64_t i, int64_t w) {
    store(z + i, ops::cpu_bf16::softcap_lanes(load(z + i, w), c), w);
  });
}

void CpuBf16Backend::swiglu_forward(const Act* gate, const Act* up, Act* out, int64_t n) const {
  parallel_lanes(n, [&](int64_t i, int64_t w) {
    const F16 g = load(gate + i, w);
    store(out + i, g * sigmoid_lanes(g) * load(up + i, w), w);
  });
}

void CpuBf16Backend::swiglu_backward(const Act* gate, const Act* up, const Act* dout, Act* dgate,
                                     Act* dup, int64_t n) const {
  parallel_lanes(n, [&](int64_t i, int64_t w) {
    const F16 g = load(gate + i, w), sg = sigmoid_lanes(g), d = load(dout + i, w);
    store(dgate + i, load(dgate + i, w) + d * load(up + i, w) * sg * (1.f + g * (1.f - sg)), w);
    store(dup + i, load(dup + i, w) + d * (g * sg), w);
  });
}

void CpuBf16Backend::geglu_forward(const Act* gate, const Act* up, Act* out, int64_t n) const {
  parallel_lanes(n, [&](int64_t i, int64_t w) {
    store(out + i, gelu_tanh_lanes(load(gate + i, w)) * load(up + i, w), w);
  });
}

void CpuBf16Backend::geglu_backward(const Act* gate, const Act* up, const Act* dout, Act* dgate,
                                    Act* dup, int64_t n) const {
  parallel_lanes(n, [&](int64_t i, int64_t w) {
    const F16 g = load(gate + i, w), d = load(dout + i, w);
    store(dgate + i, load(dgate + i, w) + d * load(up + i, w) * gelu_tanh_grad_lanes(g), w);
    store(dup + i, load(dup + i, w) + d * gelu_tanh_lanes(g), w);
  });
}

void CpuBf16Backend::gelu_forward(const Act* x, Act* out, int64_t n, bool tanh_approx) const {
  parallel_lanes(n, [&](int64_t i, int64_t w) {
    const F16 v = load(x + i, w);
    store(out + i, tanh_approx ? gelu_tanh_lanes(v) : map(v, gelu_erf<float>), w);
  });
}

void CpuBf16Backend::gelu_backward(const Act* x, const Act* dout, Act* dx, int64_t n,
                                   bool tanh_approx) const {
  parallel_lanes(n, [&](int64_t i, int64_t w) {
    const F16 v = load(x + i, w);
    const F16 g = tanh_approx ? gelu_tanh_grad_lanes(v) : map(v, gelu_erf_grad<float>);
    store(dx + i, load(dx + i, w) + load(dout + i, w) * g, w);
  });
}

// ---- embedding -------------------------------------------------------------------------------

void CpuBf16Backend::embedding_forward(const int32_t* tokens, const Act* table, Act* out, int64_t M,
                                       int64_t D, int64_t V, float scale) const {
  for (int64_t i = 0; i < M; ++i)
    RRT_CHECK(tokens[i] >= 0 && tokens[i] < V, "embedding", "token ", tokens[i], " at position ", i,
              " is outside the vocabulary of ", V, "; does the data match the tokenizer?");
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < M; ++i) {
    const Act* row = table + static_cast<int64_t>(tokens[i]) * D;
    lanes(D, [&](int64_t j, int64_t n) { store(out + i * D + j, scale * load(row + j, n), n); });
  }
}

void CpuBf16Backend::embedding_backward(const int32_t* tokens, const Act* dout, float* dtable,
                                        int64_t M, int64_t D, int64_t /*V*/, float scale) const {
  // Columns in parallel: rows may repeat a token, columns never collide.
#pragma omp parallel for schedule(static)
  for (int64_t j0 = 0; j0 < D; j0 += kLanes) {
    const int64_t n = std::min(kLanes, D - j0);
    for (int64_t i = 0; i < M; ++i) {
      float* row = dtable + static_cast<int64_t>(tokens[i]) * D + j0;
      store(row, load(row, n) + scale * load(dout + i * D + j0, n), n);
    }
  }
}

}  // namespace rrt
