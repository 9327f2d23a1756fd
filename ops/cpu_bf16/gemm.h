// Matrix products on bf16 operands with fp32 accumulation, for the CPU bf16 backend: the one
// place the bf16 backend's GEMMs go through, so that the library behind it (oneDNN, on AMX or
// AVX-512-BF16, chosen at run time) can change without touching the backend.
//
// Row-major throughout: op(A) is [M, K], op(B) is [K, N], C is [M, N] with leading dimensions
// lda, ldb, ldc in elements (of the matrix as stored, before op).
#pragma once

#include <cstdint>
#include <string>

#include "core/dtype.h"

namespace rrt::ops::cpu_bf16 {

// C = alpha op(A) op(B) + beta C, fp32 C (weight gradients accumulate here with beta = 1).
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A,
          int64_t lda, const bf16* B, int64_t ldb, float beta, float* C, int64_t ldc);

// C = round_bf16(alpha op(A) op(B) + beta C + bias), bf16 C; bias [N] or null. The sum is formed
// in fp32 and rounded once.
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A,
          int64_t lda, const bf16* B, int64_t ldb, float beta, bf16* C, int64_t ldc,
          const bf16* bias = nullptr);

// The kernel path products take on this CPU, for `rrt --version` and the benchmarks
// (e.g. "oneDNN 3.x avx512_core_amx", "oneDNN 2.6 avx512_core_bf16").
std::string gemm_path();

}  // namespace rrt::ops::cpu_bf16
