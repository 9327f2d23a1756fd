#include "ops/matmul.h"

#include <cblas.h>

namespace rrt::ops {

namespace {
CBLAS_TRANSPOSE tr(bool t) { return t ? CblasTrans : CblasNoTrans; }
}  // namespace

template <>
void gemm<float>(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                 int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  cblas_sgemm(CblasRowMajor, tr(ta), tr(tb), M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

template <>
void gemm<double>(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
                  int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  cblas_dgemm(CblasRowMajor, tr(ta), tr(tb), M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

template <typename S>
void matmul_forward(const S* A, const S* B, S* C, int64_t M, int64_t N, int64_t K, bool ta,
                    bool tb, bool accumulate) {
  gemm<S>(ta, tb, M, N, K, S(1), A, ta ? M : K, B, tb ? K : N, accumulate ? S(1) : S(0), C, N);
}

template <typename S>
void matmul_backward(const S* A, const S* B, const S* dC, S* dA, S* dB, int64_t M, int64_t N,
                     int64_t K, bool ta, bool tb) {
  const int64_t lda = ta ? M : K, ldb = tb ? K : N;
  // C = op(A) op(B): d op(A) = dC op(B)^T, d op(B) = op(A)^T dC; transpose back when stored so.
  if (dA) {
    if (!ta)
      gemm<S>(false, !tb, M, K, N, S(1), dC, N, B, ldb, S(1), dA, lda);  // [M,K]
    else
      gemm<S>(tb, true, K, M, N, S(1), B, ldb, dC, N, S(1), dA, lda);  // [K,M] = op(B) dC^T
  }
  if (dB) {
    if (!tb)
      gemm<S>(!ta, false, K, N, M, S(1), A, lda, dC, N, S(1), dB, ldb);  // [K,N]
    else
      gemm<S>(true, ta, N, K, M, S(1), dC, N, A, lda, S(1), dB, ldb);  // [N,K] = dC^T op(A)
  }
}

template <typename S>
void linear_forward(const S* x, const S* W, const S* bias, S* y, int64_t M, int64_t in,
                    int64_t out, bool accumulate) {
  gemm<S>(false, true, M, out, in, S(1), x, in, W, in, accumulate ? S(1) : S(0), y, out);
  if (bias) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < out; ++j) y[i * out + j] += bias[j];
  }
}

template <typename S>
void linear_backward(const S* x, const S* W, const S* dy, S* dx, S* dW, S* dbias, int64_t M,
                     int64_t in, int64_t out) {
  if (dx) gemm<S>(false, false, M, in, out, S(1), dy, out, W, in, S(1), dx, in);
  if (dW) gemm<S>(true, false, out, in, M, S(1), dy, out, x, in, S(1), dW, in);
  if (dbias) {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < out; ++j) dbias[j] += dy[i * out + j];
  }
}

#define RRT_INSTANTIATE(S)                                                                   \
  template void matmul_forward<S>(const S*, const S*, S*, int64_t, int64_t, int64_t, bool, bool, \
                                  bool);                                                     \
  template void matmul_backward<S>(const S*, const S*, const S*, S*, S*, int64_t, int64_t,   \
                                   int64_t, bool, bool);                                     \
  template void linear_forward<S>(const S*, const S*, const S*, S*, int64_t, int64_t, int64_t, \
                                  bool);                                                     \
  template void linear_backward<S>(const S*, const S*, const S*, S*, S*, S*, int64_t, int64_t, \
                                   int64_t);
RRT_INSTANTIATE(float)
RRT_INSTANTIATE(double)

}  // namespace rrt::ops
