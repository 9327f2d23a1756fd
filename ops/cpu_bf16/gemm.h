// Matrix products on bf16 operands with fp32 accumulation, for the CPU bf16 backend: the one
// place the bf16 backend's GEMMs go through, so that the library behind it (oneDNN, on AMX or
// AVX-512-BF16, chosen at run time) can change without touching the backend.
//
// Row-major throughout: op(A) is [M, K], op(B) is [K, N], C is [M, N] with leading dimensions
// lda, ldb, ldc in elements (of the matrix as stored, before op).
#pragma once

#include <cstdint>
#include <string>

#include "core/cpu_features.h"
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

// --- Beyond the backend's interface: availability, diagnostics and the primitive cache. ---

// Whether gemm() runs here: a build with oneDNN on a CPU with AMX-BF16 or AVX512_BF16. Where it
// does not, gemm() throws an rrt::Error with gemm_unavailable_reason() and the bf16 tests skip
// with it. (oneDNN would emulate bf16 on plain AVX-512, several times slower than fp32: the
// backend refuses rather than run a "fast" path that is not.)
bool gemm_available();
// "" when available; else one sentence, e.g. "this CPU has neither AMX nor AVX512_BF16".
// The argument is for tests of the CPUs this machine is not.
std::string gemm_unavailable_reason(const CpuFeatures& cpu = cpu_features());

// The implementation oneDNN picks for one product (e.g. "brg:avx512_core_bf16"); a name starting
// with "ref" is its slow reference loop, which the tests require no supported shape to take.
// accumulate: beta != 0 (a sum post-op); bias: the bf16 output's bias epilogue.
std::string gemm_impl(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, int64_t lda,
                      int64_t ldb, int64_t ldc, DType c_type, bool accumulate, bool bias);

// Primitives are created once per (shape, transposes, leading dims, output type, alpha, beta,
// bias) and kept in a process-wide LRU cache: creating one JIT-compiles code (tens of
// microseconds to milliseconds), executing a cached one costs a few microseconds.
struct GemmCacheStats {
  int64_t entries = 0, capacity = 0, hits = 0, misses = 0, evictions = 0;
};
GemmCacheStats gemm_cache_stats();
inline constexpr int64_t kDefaultGemmCacheCapacity = 256;
// Bounds the cache (>= 1), evicting the least recently used; clears the counters.
void set_gemm_cache_capacity(int64_t capacity);
// Drops every cached primitive and clears the counters (callers running keep theirs alive).
void clear_gemm_cache();

}  // namespace rrt::ops::cpu_bf16
