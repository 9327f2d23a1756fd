#include "ops/norm.h"

#include <cmath>

namespace rrt::ops {

template <typename S>
void rmsnorm_forward(const S* x, const S* w, S* y, S* rstd, int64_t M, int64_t D, S eps,
                     bool unit_offset) {
  const S offset = unit_offset ? S(1) : S(0);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < M; ++i) {
    const S* xi = x + i * D;
    double ss = 0;  // double accumulation: D reaches thousands
    for (int64_t j = 0; j < D; ++j) ss += static_cast<double>(xi[j]) * xi[j];
    S r = static_cast<S>(1.0 / std::sqrt(ss / D + eps));
    rstd[i] = r;
    for (int64_t j = 0; j < D; ++j) y[i * D + j] = xi[j] * r * (offset + w[j]);
  }
}

template <typename S>
void rmsnorm_backward(const S* x, const S* w, const S* rstd, const S* dy, S* dx, S* dw, int64_t M,
                      int64_t D, bool unit_offset) {
  const S offset = unit_offset ? S(1) : S(0);
  if (dx) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < M; ++i) {
      const S *xi = x + i * D, *dyi = dy + i * D;
      const S r = rstd[i];
      S dot = 0;  // mean(dxhat * xhat)
      for (int64_t j = 0; j < D; ++j) dot += dyi[j] * (offset + w[j]) * xi[j] * r;
      dot /= static_cast<S>(D);
      for (int64_t j = 0; j < D; ++j)
        dx[i * D + j] += r * (dyi[j] * (offset + w[j]) - xi[j] * r * dot);
    }
  }
  if (dw) {
#pragma omp parallel for schedule(static)
    for (int64_t j0 = 0; j0 < D; j0 += 16) {
      int64_t j1 = j0 + 16 < D ? j0 + 16 : D;
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = j0; j < j1; ++j) dw[j] += dy[i * D + j] * x[i * D + j] * rstd[i];
    }
  }
}

template <typename S>
void layernorm_forward(const S* x, const S* w, const S* b, S* y, S* mean, S* rstd, int64_t M,
                       int64_t D, S eps) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < M; ++i) {
    const S* xi = x + i * D;
    double sum = 0;
    for (int64_t j = 0; j < D; ++j) sum += xi[j];
    const double mu = sum / D;
    double var = 0;
    for (int64_t j = 0; j < D; ++j) var += (xi[j] - mu) * (xi[j] - mu);
    const S r = static_cast<S>(1.0 / std::sqrt(var / D + eps));
    mean[i] = static_cast<S>(mu);
    rstd[i] = r;
    for (int64_t j = 0; j < D; ++j)
      y[i * D + j] = (xi[j] - static_cast<S>(mu)) * r * w[j] + (b ? b[j] : S(0));
  }
}

template <typename S>
void layernorm_backward(const S* x, const S* w, const S* mean, const S* rstd, const S* dy, S* dx,
                        S* dw, S* db, int64_t M, int64_t D) {
  if (dx) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < M; ++i) {
      const S *xi = x + i * D, *dyi = dy + i * D;
      const S mu = mean[i], r = rstd[i];
      S mean_g = 0, mean_gx = 0;  // mean(dxhat), mean(dxhat * xhat)
      for (int64_t j = 0; j < D; ++j) {
        S g = dyi[j] * w[j];
        mean_g += g;
        mean_gx += g * (xi[j] - mu) * r;
      }
      mean_g /= static_cast<S>(D);
      mean_gx /= static_cast<S>(D);
      for (int64_t j = 0; j < D; ++j)
        dx[i * D + j] += r * (dyi[j] * w[j] - mean_g - (xi[j] - mu) * r * mean_gx);
    }
  }
#pragma omp parallel for schedule(static)
  for (int64_t j0 = 0; j0 < D; j0 += 16) {
    int64_t j1 = j0 + 16 < D ? j0 + 16 : D;
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = j0; j < j1; ++j) {
        if (dw) dw[j] += dy[i * D + j] * (x[i * D + j] - mean[i]) * rstd[i];
        if (db) db[j] += dy[i * D + j];
      }
  }
}

#define RRT_INSTANTIATE(S)                                                                       \
  template void rmsnorm_forward<S>(const S*, const S*, S*, S*, int64_t, int64_t, S, bool);       \
  template void rmsnorm_backward<S>(const S*, const S*, const S*, const S*, S*, S*, int64_t,     \
                                    int64_t, bool);                                              \
  template void layernorm_forward<S>(const S*, const S*, const S*, S*, S*, S*, int64_t, int64_t, \
                                     S);                                                         \
  template void layernorm_backward<S>(const S*, const S*, const S*, const S*, const S*, S*, S*,  \
                                      S*, int64_t, int64_t);
RRT_INSTANTIATE(float)
RRT_INSTANTIATE(double)

}  // namespace rrt::ops
