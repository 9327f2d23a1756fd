// Matrix products on row-major operands (OpenBLAS sgemm/dgemm underneath).
//   matmul:  C (+)= op(A) op(B)        A: [M, K] (or [K, M] if trans_a), B: [K, N] (or [N, K])
//   linear:  y (+)= x W^T + bias       x: [M, in], W: [out, in], bias: [out] (optional)
// Backward functions add into the gradients they are given; a null gradient is skipped.
#pragma once

#include <cstdint>

namespace rrt::ops {

// Raw row-major GEMM with leading dimensions: C = alpha op(A) op(B) + beta C.
template <typename S>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, S alpha, const S* A,
          int64_t lda, const S* B, int64_t ldb, S beta, S* C, int64_t ldc);

template <typename S>
void matmul_forward(const S* A, const S* B, S* C, int64_t M, int64_t N, int64_t K, bool trans_a,
                    bool trans_b, bool accumulate);
// dA += dC op(B)^T (transposed back if trans_a), dB likewise.
template <typename S>
void matmul_backward(const S* A, const S* B, const S* dC, S* dA, S* dB, int64_t M, int64_t N,
                     int64_t K, bool trans_a, bool trans_b);

template <typename S>
void linear_forward(const S* x, const S* W, const S* bias, S* y, int64_t M, int64_t in,
                    int64_t out, bool accumulate);
template <typename S>
void linear_backward(const S* x, const S* W, const S* dy, S* dx, S* dW, S* dbias, int64_t M,
                     int64_t in, int64_t out);

}  // namespace rrt::ops
