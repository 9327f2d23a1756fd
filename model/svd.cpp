#include "model/svd.h"

#include <algorithm>
#include <climits>
#include <cstddef>
#include <random>

#include "core/error.h"

// LAPACK and BLAS (shipped inside OpenBLAS), Fortran calling convention with 32-bit integers; the
// trailing arguments are the hidden lengths of the character arguments.
extern "C" void dgesdd_(const char* jobz, const int* m, const int* n, double* a, const int* lda,
                        double* s, double* u, const int* ldu, double* vt, const int* ldvt,
                        double* work, const int* lwork, int* iwork, int* info, size_t jobz_len);
extern "C" void dgeqrf_(const int* m, const int* n, double* a, const int* lda, double* tau,
                        double* work, const int* lwork, int* info);
extern "C" void dorgqr_(const int* m, const int* n, const int* k, double* a, const int* lda,
                        const double* tau, double* work, const int* lwork, int* info);
extern "C" void dgemm_(const char* ta, const char* tb, const int* m, const int* n, const int* k,
                       const double* alpha, const double* a, const int* lda, const double* b,
                       const int* ldb, const double* beta, double* c, const int* ldc,
                       size_t ta_len, size_t tb_len);

namespace rrt {
namespace {

// Economy SVD of the column-major m x n matrix a (overwritten): s [k], u [m, k] (ldu = m),
// vt [k, n] (ldvt = k), k = min(m, n).
void gesdd(int m, int n, double* a, std::vector<double>& s, std::vector<double>& u,
           std::vector<double>& vt) {
  const int k = std::min(m, n);
  s.assign(static_cast<size_t>(k), 0.0);
  u.assign(static_cast<size_t>(m) * k, 0.0);
  vt.assign(static_cast<size_t>(k) * n, 0.0);
  std::vector<int> iwork(static_cast<size_t>(8) * k);
  const char jobz = 'S';
  int info = 0, lwork = -1;
  double query = 0.0;
  dgesdd_(&jobz, &m, &n, a, &m, s.data(), u.data(), &m, vt.data(), &k, &query, &lwork,
          iwork.data(), &info, 1);
  RRT_CHECK(info == 0, "truncated_svd", "dgesdd workspace query failed (info ", info, ")");
  lwork = static_cast<int>(query) + 1;
  std::vector<double> work(static_cast<size_t>(lwork));
  dgesdd_(&jobz, &m, &n, a, &m, s.data(), u.data(), &m, vt.data(), &k, work.data(), &lwork,
          iwork.data(), &info, 1);
  RRT_CHECK(info == 0, "truncated_svd", "dgesdd failed on a ", m, " x ", n, " matrix (info ",
            info, info > 0 ? ": did not converge)" : ": bad argument)");
}

// Replaces the column-major m x n matrix q (m >= n) by an orthonormal basis of its columns.
void orthonormalise(int m, int n, double* q) {
  std::vector<double> tau(static_cast<size_t>(n));
  int info = 0, lwork = -1;
  double query = 0.0;
  dgeqrf_(&m, &n, q, &m, tau.data(), &query, &lwork, &info);
  RRT_CHECK(info == 0, "truncated_svd", "dgeqrf workspace query failed (info ", info, ")");
  double query2 = 0.0;
  dorgqr_(&m, &n, &n, q, &m, tau.data(), &query2, &lwork, &info);
  RRT_CHECK(info == 0, "truncated_svd", "dorgqr workspace query failed (info ", info, ")");
  lwork = static_cast<int>(std::max(query, query2)) + 1;
  std::vector<double> work(static_cast<size_t>(lwork));
  dgeqrf_(&m, &n, q, &m, tau.data(), work.data(), &lwork, &info);
  RRT_CHECK(info == 0, "truncated_svd", "dgeqrf failed (info ", info, ")");
  dorgqr_(&m, &n, &n, q, &m, tau.data(), work.data(), &lwork, &info);
  RRT_CHECK(info == 0, "truncated_svd", "dorgqr failed (info ", info, ")");
}

void gemm(char ta, char tb, int m, int n, int k, const double* a, int lda, const double* b,
          int ldb, double* c, int ldc) {
  const double one = 1.0, zero = 0.0;
  dgemm_(&ta, &tb, &m, &n, &k, &one, a, &lda, b, &ldb, &zero, c, &ldc, 1, 1);
}

// Oversampling max(kMinOversampling, rank) and kPowerIterations power iterations keep the rank-r
// reconstruction error within ~0.5% of the optimum even for a flat spectrum (the hard case).
constexpr int64_t kMinOversampling = 10;
constexpr int kPowerIterations = 2;

}  // namespace

void truncated_svd(const double* M, int64_t rows, int64_t cols, int64_t rank, float* U_times_S,
                   float* Vt, std::vector<double>* singular_values) {
  RRT_CHECK(rows > 0 && cols > 0, "truncated_svd", "matrix must be non-empty, got ", rows, " x ",
            cols);
  const int64_t k = std::min(rows, cols);
  RRT_CHECK(rank >= 0 && rank <= k, "truncated_svd", "rank ", rank, " must be in [0, min(", rows,
            ", ", cols, ") = ", k, "]");
  RRT_CHECK(rows <= INT_MAX && cols <= INT_MAX && rows * cols <= INT_MAX, "truncated_svd",
            "matrix ", rows, " x ", cols, " is too large for 32-bit LAPACK");
  const int m = static_cast<int>(rows), n = static_cast<int>(cols);
  // Column-major copy: A(i, j) = M[i, j].
  std::vector<double> a(static_cast<size_t>(rows * cols));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) a[static_cast<size_t>(i + j * rows)] = M[i * cols + j];

  std::vector<double> s, u, vt;  // u: [m, kk] (ldu = m), vt: [kk, n] (ldvt = kk)
  int64_t kk = k;
  const int64_t l = rank + std::max(kMinOversampling, rank);
  if (!singular_values && rank > 0 && 2 * l < k) {
    // Randomized range finder (Halko, Martinsson & Tropp 2011, alg. 4.4): Q [m, l] orthonormal
    // with range(Q) ~ range(A), from Y = (A A^T)^q A G with a Gaussian G [n, l], re-orthonormalised
    // after every product; then the SVD of the small B = Q^T A [l, n] gives A ~ (Q U_B) S V_B^T.
    // Only used for rank << min(m, n) (2 (rank + oversampling) < min(m, n)) and when the caller
    // does not ask for all singular values; full rank and small matrices take the exact path.
    // The seed is fixed, so results are deterministic. For a 5632 x 2048 matrix and rank 64 this
    // takes ~1 s instead of ~12-140 s for the full dgesdd on 2 vCPUs (docs/benchmarks.md).
    const int li = static_cast<int>(l);
    std::mt19937_64 gen(0x5eed ^ static_cast<uint64_t>(rows * 1000003 + cols));
    std::normal_distribution<double> normal(0.0, 1.0);
    std::vector<double> g(static_cast<size_t>(n) * li);
    for (auto& x : g) x = normal(gen);
    std::vector<double> q(static_cast<size_t>(m) * li), z(static_cast<size_t>(n) * li);
    gemm('N', 'N', m, li, n, a.data(), m, g.data(), n, q.data(), m);  // Y = A G
    orthonormalise(m, li, q.data());
    for (int it = 0; it < kPowerIterations; ++it) {
      gemm('T', 'N', n, li, m, a.data(), m, q.data(), m, z.data(), n);  // Z = A^T Q
      orthonormalise(n, li, z.data());
      gemm('N', 'N', m, li, n, a.data(), m, z.data(), n, q.data(), m);  // Y = A Z
      orthonormalise(m, li, q.data());
    }
    std::vector<double> b(static_cast<size_t>(li) * n);
    gemm('T', 'N', li, n, m, q.data(), m, a.data(), m, b.data(), li);  // B = Q^T A
    std::vector<double> ub;
    gesdd(li, n, b.data(), s, ub, vt);  // ub [l, l], vt [l, n]
    u.assign(static_cast<size_t>(m) * li, 0.0);
    gemm('N', 'N', m, li, li, q.data(), m, ub.data(), li, u.data(), m);  // U = Q U_B
    kk = l;
  } else {
    gesdd(m, n, a.data(), s, u, vt);
  }
  // U is [rows, kk] column-major (ldu = rows); VT is [kk, cols] column-major (ldvt = kk).
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t r = 0; r < rank; ++r)
      U_times_S[i * rank + r] = static_cast<float>(u[static_cast<size_t>(i + r * rows)] * s[r]);
  for (int64_t r = 0; r < rank; ++r)
    for (int64_t j = 0; j < cols; ++j)
      Vt[r * cols + j] = static_cast<float>(vt[static_cast<size_t>(r + j * kk)]);
  if (singular_values) *singular_values = std::move(s);
}

void truncated_svd(const float* M, int64_t rows, int64_t cols, int64_t rank, float* U_times_S,
                   float* Vt, std::vector<double>* singular_values) {
  RRT_CHECK(rows >= 0 && cols >= 0, "truncated_svd", "negative size ", rows, " x ", cols);
  std::vector<double> m(M, M + rows * cols);
  truncated_svd(m.data(), rows, cols, rank, U_times_S, Vt, singular_values);
}

}  // namespace rrt
