// TEMPORARY ops/cpu_bf16/gemm.h: the operands widened to fp32 and multiplied by OpenBLAS sgemm.
// Correct (fp32 accumulation of bf16 operands, one rounding of a bf16 result) but slow: it stands
// in for the oneDNN implementation until that one is merged, and is replaced by it as a whole
// (nothing else in the backend knows what is behind gemm.h).
#include "ops/cpu_bf16/gemm.h"

#include <vector>

#include "ops/cpu_bf16/convert.h"
#include "ops/matmul.h"

namespace rrt::ops::cpu_bf16 {

namespace {

// A stored matrix of `rows` x `cols` (leading dimension ld) as a dense fp32 copy.
const float* widen_matrix(const bf16* A, int64_t rows, int64_t cols, int64_t ld,
                          std::vector<float>& buf) {
  buf.resize(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) to_float(A + r * ld, buf.data() + r * cols, cols);
  return buf.data();
}

}  // namespace

void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A,
          int64_t lda, const bf16* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  thread_local std::vector<float> a, b;
  const float* af = widen_matrix(A, ta ? K : M, ta ? M : K, lda, a);
  const float* bf = widen_matrix(B, tb ? N : K, tb ? K : N, ldb, b);
  ops::gemm<float>(ta, tb, M, N, K, alpha, af, ta ? M : K, bf, tb ? K : N, beta, C, ldc);
}

void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A,
          int64_t lda, const bf16* B, int64_t ldb, float beta, bf16* C, int64_t ldc,
          const bf16* bias) {
  if (M == 0 || N == 0) return;
  thread_local std::vector<float> c, bias_f;
  c.resize(static_cast<size_t>(M * N));
  if (beta != 0.f)
    for (int64_t r = 0; r < M; ++r) to_float(C + r * ldc, c.data() + r * N, N);
  gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, c.data(), N);
  if (bias) {
    bias_f.resize(static_cast<size_t>(N));
    to_float(bias, bias_f.data(), N);
    for (int64_t r = 0; r < M; ++r)
      for (int64_t j = 0; j < N; ++j) c[static_cast<size_t>(r * N + j)] += bias_f[j];
  }
  for (int64_t r = 0; r < M; ++r) to_bf16(c.data() + r * N, C + r * ldc, N);
}

std::string gemm_path() { return "OpenBLAS sgemm on bf16 operands widened to fp32 (temporary)"; }

}  // namespace rrt::ops::cpu_bf16
