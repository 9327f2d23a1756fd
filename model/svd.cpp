#include "model/svd.h"

#include <algorithm>
#include <climits>
#include <cstddef>

#include "core/error.h"

// LAPACK (shipped inside OpenBLAS), Fortran calling convention with 32-bit integers; the trailing
// argument is the hidden length of the character argument.
extern "C" void dgesdd_(const char* jobz, const int* m, const int* n, double* a, const int* lda,
                        double* s, double* u, const int* ldu, double* vt, const int* ldvt,
                        double* work, const int* lwork, int* iwork, int* info, size_t jobz_len);

namespace rrt {

void truncated_svd(const double* M, int64_t rows, int64_t cols, int64_t rank, float* U_times_S,
                   float* Vt, std::vector<double>* singular_values) {
  RRT_CHECK(rows > 0 && cols > 0, "truncated_svd", "matrix must be non-empty, got ", rows, " x ",
            cols);
  const int64_t k = std::min(rows, cols);
  RRT_CHECK(rank >= 0 && rank <= k, "truncated_svd", "rank ", rank, " must be in [0, min(", rows,
            ", ", cols, ") = ", k, "]");
  RRT_CHECK(rows <= INT_MAX && cols <= INT_MAX && rows * cols <= INT_MAX, "truncated_svd",
            "matrix ", rows, " x ", cols, " is too large for 32-bit LAPACK");
  // Column-major copy: A(i, j) = M[i, j].
  std::vector<double> a(static_cast<size_t>(rows * cols));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) a[static_cast<size_t>(i + j * rows)] = M[i * cols + j];
  std::vector<double> s(static_cast<size_t>(k));
  std::vector<double> u(static_cast<size_t>(rows * k));
  std::vector<double> vt(static_cast<size_t>(k * cols));
  std::vector<int> iwork(static_cast<size_t>(8 * k));
  const int m = static_cast<int>(rows), n = static_cast<int>(cols), kk = static_cast<int>(k);
  const char jobz = 'S';
  int info = 0, lwork = -1;
  double query = 0.0;
  dgesdd_(&jobz, &m, &n, a.data(), &m, s.data(), u.data(), &m, vt.data(), &kk, &query, &lwork,
          iwork.data(), &info, 1);
  RRT_CHECK(info == 0, "truncated_svd", "dgesdd workspace query failed (info ", info, ")");
  lwork = static_cast<int>(query) + 1;
  std::vector<double> work(static_cast<size_t>(lwork));
  dgesdd_(&jobz, &m, &n, a.data(), &m, s.data(), u.data(), &m, vt.data(), &kk, work.data(),
          &lwork, iwork.data(), &info, 1);
  RRT_CHECK(info == 0, "truncated_svd", "dgesdd failed on a ", rows, " x ", cols, " matrix (info ",
            info, info > 0 ? ": did not converge)" : ": bad argument)");
  // U is [rows, k] column-major (ldu = rows); VT is [k, cols] column-major (ldvt = k).
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t r = 0; r < rank; ++r)
      U_times_S[i * rank + r] = static_cast<float>(u[static_cast<size_t>(i + r * rows)] * s[r]);
  for (int64_t r = 0; r < rank; ++r)
    for (int64_t j = 0; j < cols; ++j)
      Vt[r * cols + j] = static_cast<float>(vt[static_cast<size_t>(r + j * k)]);
  if (singular_values) *singular_values = std::move(s);
}

void truncated_svd(const float* M, int64_t rows, int64_t cols, int64_t rank, float* U_times_S,
                   float* Vt, std::vector<double>* singular_values) {
  RRT_CHECK(rows >= 0 && cols >= 0, "truncated_svd", "negative size ", rows, " x ", cols);
  std::vector<double> m(M, M + rows * cols);
  truncated_svd(m.data(), rows, cols, rank, U_times_S, Vt, singular_values);
}

}  // namespace rrt
