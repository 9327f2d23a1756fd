#include "ops/rope.h"

#include <cmath>

#include "core/error.h"

namespace rrt::ops {

std::vector<double> rope_inv_freq(int64_t rot, double th, const RopeScaling& sc) {
  RRT_CHECK(rot % 2 == 0 && rot > 0, "rope", "rotary dim must be even and positive, got ", rot);
  const int64_t half = rot / 2;
  std::vector<double> f(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i)
    f[i] = std::pow(th, -2.0 * static_cast<double>(i) / static_cast<double>(rot));
  switch (sc.type) {
    case RopeScalingType::none:
    case RopeScalingType::dynamic:  // plain within original_max_positions (the header says why)
      break;
    case RopeScalingType::linear:
      RRT_CHECK(sc.factor > 0, "rope", "linear scaling factor must be positive, got ", sc.factor);
      for (double& x : f) x /= sc.factor;
      break;
    case RopeScalingType::llama3: {
      RRT_CHECK(sc.factor > 0 && sc.original_max_positions > 0 &&
                    sc.high_freq_factor > sc.low_freq_factor,
                "rope",
                "llama3 scaling needs factor > 0, original_max_positions > 0 and "
                "high_freq_factor > low_freq_factor, got ",
                sc.factor, ", ", sc.original_max_positions, ", ", sc.high_freq_factor,
                " <= ", sc.low_freq_factor);
      const double old_len = static_cast<double>(sc.original_max_positions);
      const double low_wavelen = old_len / sc.low_freq_factor;
      const double high_wavelen = old_len / sc.high_freq_factor;
      const double pi = 3.14159265358979323846;
      for (double& x : f) {
        const double wavelen = 2.0 * pi / x;
        if (wavelen > low_wavelen) {
          x /= sc.factor;
        } else if (wavelen >= high_wavelen) {  // transformers: neither < high nor > low
          const double s =
              (old_len / wavelen - sc.low_freq_factor) / (sc.high_freq_factor - sc.low_freq_factor);
          x = (1.0 - s) * x / sc.factor + s * x;
        }
      }
      break;
    }
  }
  return f;
}

RopeTable::RopeTable(int64_t max_pos, int64_t rot, double th, const RopeScaling& sc)
    : max_positions(max_pos), rot_dim(rot), theta(th), scaling(sc) {
  RRT_CHECK(rot % 2 == 0 && rot > 0, "rope", "rotary dim must be even and positive, got ", rot);
  RRT_CHECK(sc.type != RopeScalingType::dynamic || max_pos <= sc.original_max_positions, "rope",
            "dynamic NTK scaling changes every frequency with the sequence length past ",
            sc.original_max_positions, " positions; a table of ", max_pos,
            " positions cannot hold it (keep model.max_seq_len within ", sc.original_max_positions,
            ")");
  const int64_t half = rot / 2;
  const std::vector<double> inv = rope_inv_freq(rot, th, sc);
  cos.resize(static_cast<size_t>(max_pos * half));
  sin.resize(cos.size());
  for (int64_t p = 0; p < max_pos; ++p)
    for (int64_t i = 0; i < half; ++i) {
      double inv_freq = inv[static_cast<size_t>(i)];
      double angle = static_cast<double>(p) * inv_freq;
      cos[p * half + i] = std::cos(angle);
      sin[p * half + i] = std::sin(angle);
    }
}

namespace {
// direction +1 rotates forward, -1 applies the transpose (the inverse rotation).
template <typename S>
void rotate(S* x, const RopeTable& tab, int64_t N, int64_t T, int64_t H, int64_t Dh, int dir,
            const int32_t* pos) {
  RRT_CHECK(T <= tab.max_positions, "rope", "sequence of ", T, " exceeds the table's ",
            tab.max_positions, " positions");
  RRT_CHECK(tab.rot_dim <= Dh, "rope", "rotary dim ", tab.rot_dim, " exceeds head dim ", Dh);
  for (int64_t i = 0; pos && i < N * T; ++i)  // checked before the parallel loop, which can't throw
    RRT_CHECK(pos[i] >= 0 && pos[i] < tab.max_positions, "rope", "position ", pos[i], " of token ",
              i, " outside the table's ", tab.max_positions);
  const int64_t half = tab.rot_dim / 2;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t t = 0; t < T; ++t) {
      const int64_t p = pos ? pos[n * T + t] : t;
      const double* c = tab.cos.data() + p * half;
      const double* s = tab.sin.data() + p * half;
      for (int64_t h = 0; h < H; ++h) {
        S* v = x + ((n * T + t) * H + h) * Dh;
        for (int64_t i = 0; i < half; ++i) {
          const S ci = static_cast<S>(c[i]), si = static_cast<S>(dir * s[i]);
          const S a = v[i], b = v[i + half];
          v[i] = a * ci - b * si;
          v[i + half] = b * ci + a * si;
        }
      }
    }
}
}  // namespace

template <typename S>
void rope_forward(S* x, const RopeTable& tab, int64_t N, int64_t T, int64_t H, int64_t Dh,
                  const int32_t* pos) {
  rotate(x, tab, N, T, H, Dh, +1, pos);
}

template <typename S>
void rope_backward(S* dx, const RopeTable& tab, int64_t N, int64_t T, int64_t H, int64_t Dh,
                   const int32_t* pos) {
  rotate(dx, tab, N, T, H, Dh, -1, pos);
}

template void rope_forward<float>(float*, const RopeTable&, int64_t, int64_t, int64_t, int64_t,
                                  const int32_t*);
template void rope_forward<double>(double*, const RopeTable&, int64_t, int64_t, int64_t, int64_t,
                                   const int32_t*);
template void rope_backward<float>(float*, const RopeTable&, int64_t, int64_t, int64_t, int64_t,
                                   const int32_t*);
template void rope_backward<double>(double*, const RopeTable&, int64_t, int64_t, int64_t, int64_t,
                                    const int32_t*);

}  // namespace rrt::ops
