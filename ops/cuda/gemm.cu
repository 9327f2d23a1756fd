#include <cublasLt.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <tuple>

#include "core/cuda/cuda_check.h"
#include "core/error.h"
#include "ops/cuda/gemm.h"

// Row-major to column-major. cuBLAS(Lt) reads matrices column-major. A row-major [r, c] matrix
// with leading dimension c is, byte for byte, the column-major [c, r] matrix (its transpose)
// with leading dimension c. So the row-major product
//     C[M, N] = op(A) op(B)
// is computed as the column-major product of the transposes
//     C^T[N, M] = op(B)^T op(A)^T,
// i.e. cuBLAS's (m, n, k) = (N, M, K), its first operand is our B with transa = trans_b, its
// second operand is our A with transb = trans_a, and its C is our C with ld = N. Each stored
// operand is described to cuBLASLt by its column-major view (rows, cols, ld):
//   our B not transposed: row-major [K, N] -> col-major [N, K], ld N, cuBLAS op N
//   our B transposed:     row-major [N, K] -> col-major [K, N], ld K, cuBLAS op T
//   our A not transposed: row-major [M, K] -> col-major [K, M], ld K, cuBLAS op N
//   our A transposed:     row-major [K, M] -> col-major [M, K], ld M, cuBLAS op T
// Example: linear forward y = x W^T is cuBLAS "TN" (m = out, n = M, k = in), the layout the
// tensor-core kernels like best; a bias epilogue adds a vector of length m = out per column,
// i.e. per row of our y.

namespace rrt::ops::cuda {

namespace {

constexpr const char* kWhere = "cuda gemm";

enum class Out : int { kBF16 = 0, kF32 = 1 };

// Largest power of two (<= 256) dividing the address: what cuBLASLt may assume of a pointer.
uint32_t alignment_of(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  uint32_t align = 256;
  while (align > 1 && (a % align) != 0) align /= 2;
  return align;
}

struct PlanKey {
  bool trans_a, trans_b;
  int64_t M, N, K;
  Out out;
  bool bias;
  uint32_t align_a, align_b, align_c;
  bool operator<(const PlanKey& o) const {
    return std::tie(trans_a, trans_b, M, N, K, out, bias, align_a, align_b, align_c) <
           std::tie(o.trans_a, o.trans_b, o.M, o.N, o.K, o.out, o.bias, o.align_a, o.align_b,
                    o.align_c);
  }
};

struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;  // cuBLAS's A, B and C(=D)
  cublasLtMatmulAlgo_t algo{};
  void destroy() {
    if (desc) cublasLtMatmulDescDestroy(desc);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (c) cublasLtMatrixLayoutDestroy(c);
    desc = nullptr;
    a = b = c = nullptr;
  }
};

}  // namespace

struct GemmContext::Impl {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  cudaStream_t stream = nullptr;
  std::map<PlanKey, Plan> plans;

  const Plan& plan_for(const PlanKey& key);
};

GemmContext::GemmContext(cudaStream_t stream, size_t workspace_bytes)
    : impl_(std::make_unique<Impl>()) {
  impl_->stream = stream;
  impl_->workspace_bytes = workspace_bytes;
  RRT_CUBLAS_CHECK(cublasLtCreate(&impl_->handle));
  if (workspace_bytes > 0) {
    const cudaError_t err = cudaMalloc(&impl_->workspace, workspace_bytes);
    if (err != cudaSuccess) {
      cublasLtDestroy(impl_->handle);
      RRT_FAIL(kWhere, "cannot allocate ", workspace_bytes,
               " bytes of cuBLASLt workspace: ", cudaGetErrorString(err));
    }
  }
}

GemmContext::~GemmContext() {
  for (auto& [key, plan] : impl_->plans) plan.destroy();
  if (impl_->workspace) cudaFree(impl_->workspace);
  if (impl_->handle) cublasLtDestroy(impl_->handle);
}

cudaStream_t GemmContext::stream() const { return impl_->stream; }
void GemmContext::set_stream(cudaStream_t stream) { impl_->stream = stream; }
size_t GemmContext::cached_plans() const { return impl_->plans.size(); }

const Plan& GemmContext::Impl::plan_for(const PlanKey& k) {
  if (auto it = plans.find(k); it != plans.end()) return it->second;
  Plan p;
  try {
    const cudaDataType_t c_type = k.out == Out::kBF16 ? CUDA_R_16BF : CUDA_R_32F;
    RRT_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    // See the mapping at the top: cuBLAS's A is our B, cuBLAS's B is our A.
    const cublasOperation_t op_a = k.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t op_b = k.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    RRT_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof(op_a)));
    RRT_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof(op_b)));
    if (k.bias) {
      const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
      RRT_CUBLAS_CHECK(
          cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
      const cudaDataType_t bias_type = CUDA_R_16BF;
      RRT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                                      &bias_type, sizeof(bias_type)));
    }
    // Column-major views (rows, cols, ld) of the stored operands.
    const uint64_t m = k.N, n = k.M, kk = k.K;
    if (!k.trans_b)
      RRT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, CUDA_R_16BF, m, kk, m));
    else
      RRT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, CUDA_R_16BF, kk, m, kk));
    if (!k.trans_a)
      RRT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, CUDA_R_16BF, kk, n, kk));
    else
      RRT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, CUDA_R_16BF, n, kk, n));
    RRT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.c, c_type, m, n, m));

    cublasLtMatmulPreference_t pref = nullptr;
    RRT_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    const uint32_t align_a = k.align_b, align_b = k.align_a;  // cuBLAS's A is our B
    const cublasStatus_t st = [&] {
      cublasStatus_t s =
          cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                               &workspace_bytes, sizeof(workspace_bytes));
      if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                                 &align_a, sizeof(align_a));
      if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                                                 &align_b, sizeof(align_b));
      if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                                                 &k.align_c, sizeof(k.align_c));
      if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                                                 &k.align_c, sizeof(k.align_c));
      if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulAlgoGetHeuristic(handle, p.desc, p.a, p.b, p.c, p.c, pref, 1, &result,
                                           &found);
      return s;
    }();
    cublasLtMatmulPreferenceDestroy(pref);
    RRT_CHECK(st == CUBLAS_STATUS_SUCCESS && found > 0, kWhere,
              "cuBLASLt has no algorithm for row-major C[", k.M, ", ", k.N,
              "] = op(A) op(B), K = ", k.K, ", trans_a ", k.trans_a, ", trans_b ", k.trans_b,
              ", output ", k.out == Out::kBF16 ? "bf16" : "fp32", k.bias ? " + bias" : "",
              ", pointer alignments A ", k.align_a, " B ", k.align_b, " C ", k.align_c,
              " bytes (status ", static_cast<int>(st),
              ") ---> HINT: 16-byte aligned pointers and sizes that are multiples of 8 are the "
              "shapes every GPU supports");
    p.algo = result.algo;
  } catch (...) {
    p.destroy();
    throw;
  }
  return plans.emplace(k, p).first->second;
}

namespace {

void check_args(int64_t M, int64_t N, int64_t K, const void* A, const void* B, const void* C,
                size_t in_bytes, size_t out_bytes) {
  RRT_CHECK(M >= 0 && N >= 0 && K >= 0, kWhere, "negative size M=", M, " N=", N, " K=", K);
  RRT_CHECK(reinterpret_cast<uintptr_t>(A) % in_bytes == 0, kWhere,
            "operand A is not aligned to its ", in_bytes, "-byte element");
  RRT_CHECK(reinterpret_cast<uintptr_t>(B) % in_bytes == 0, kWhere,
            "operand B is not aligned to its ", in_bytes, "-byte element");
  RRT_CHECK(reinterpret_cast<uintptr_t>(C) % out_bytes == 0, kWhere,
            "output C is not aligned to its ", out_bytes, "-byte element");
  RRT_CHECK(M == 0 || N == 0 || K == 0 || (A && B), kWhere, "null operand");
  RRT_CHECK(M == 0 || N == 0 || C, kWhere, "null output");
}

// y[i, j] += bias[j]: the fallback when the bias is not aligned for the fused epilogue.
__global__ void add_bias_kernel(bf16* y, const bf16* bias, int64_t M, int64_t N) {
  const int64_t total = M * N;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    y[i] = __float2bfloat16(__bfloat162float(y[i]) + __bfloat162float(bias[i % N]));
  }
}

// dbias[j] += sum_i dy[i, j]. Block (32, 32): x picks the column within a tile of 32, y strides
// over rows; the 32 partial sums per column are reduced in shared memory in a fixed order.
__global__ void bias_grad_kernel(const bf16* dy, float* dbias, int64_t M, int64_t N) {
  __shared__ float partial[32][33];
  const int64_t col = blockIdx.x * int64_t(32) + threadIdx.x;
  float sum = 0.f;
  if (col < N)
    for (int64_t i = threadIdx.y; i < M; i += 32) sum += __bfloat162float(dy[i * N + col]);
  partial[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y == 0 && col < N) {
    float total = 0.f;
    for (int r = 0; r < 32; ++r) total += partial[r][threadIdx.x];
    dbias[col] += total;
  }
}

void run_gemm(GemmContext& ctx, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
              const bf16* A, const bf16* B, float beta, void* C, Out out, const bf16* bias) {
  const size_t out_bytes = out == Out::kBF16 ? 2 : 4;
  check_args(M, N, K, A, B, C, 2, out_bytes);
  if (M == 0 || N == 0) return;
  auto& impl = ctx.impl();
  if (K == 0) {
    // op(A) op(B) is zero: C = beta C (+ bias). cuBLASLt rejects k = 0, so scale by hand.
    RRT_CHECK(beta == 0.f || beta == 1.f, kWhere, "K = 0 supports beta 0 or 1 only");
    if (beta == 0.f) RRT_CUDA_CHECK(cudaMemsetAsync(C, 0, M * N * out_bytes, impl.stream));
    if (bias) {
      RRT_CHECK(out == Out::kBF16, kWhere, "bias needs a bf16 output");
      add_bias_kernel<<<std::min<int64_t>((M * N + 255) / 256, 4096), 256, 0, impl.stream>>>(
          static_cast<bf16*>(C), bias, M, N);
      RRT_CUDA_CHECK_LAUNCH();
    }
    return;
  }
  const bool fused_bias = bias && alignment_of(bias) >= 16;
  PlanKey key{ta, tb, M, N, K, out, fused_bias, alignment_of(A), alignment_of(B), alignment_of(C)};
  const Plan& plan = impl.plan_for(key);
  if (fused_bias) {
    // The bias pointer is a descriptor attribute; descriptors are per shape, so set it per call.
    const void* bias_ptr = bias;
    RRT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                    &bias_ptr, sizeof(bias_ptr)));
  }
  // cuBLAS's A is our B, cuBLAS's B is our A (see the top of this file).
  RRT_CUBLAS_CHECK(cublasLtMatmul(impl.handle, plan.desc, &alpha, B, plan.a, A, plan.b, &beta, C,
                                  plan.c, C, plan.c, &plan.algo, impl.workspace,
                                  impl.workspace_bytes, impl.stream));
  if (bias && !fused_bias) {
    add_bias_kernel<<<std::min<int64_t>((M * N + 255) / 256, 4096), 256, 0, impl.stream>>>(
        static_cast<bf16*>(C), bias, M, N);
    RRT_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace

void gemm(GemmContext& ctx, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
          float alpha, const bf16* A, const bf16* B, float beta, bf16* C, const bf16* bias) {
  run_gemm(ctx, trans_a, trans_b, M, N, K, alpha, A, B, beta, C, Out::kBF16, bias);
}

void gemm(GemmContext& ctx, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
          float alpha, const bf16* A, const bf16* B, float beta, float* C) {
  run_gemm(ctx, trans_a, trans_b, M, N, K, alpha, A, B, beta, C, Out::kF32, nullptr);
}

void linear_forward(GemmContext& ctx, const bf16* x, const bf16* W, const bf16* bias, bf16* y,
                    int64_t M, int64_t in, int64_t out, bool accumulate) {
  gemm(ctx, false, true, M, out, in, 1.f, x, W, accumulate ? 1.f : 0.f, y, bias);
}

void linear_backward(GemmContext& ctx, const bf16* x, const bf16* W, const bf16* dy, bf16* dx,
                     float* dW, float* dbias, int64_t M, int64_t in, int64_t out) {
  if (dx) gemm(ctx, false, false, M, in, out, 1.f, dy, W, 1.f, dx);  // [M,in] += dy W
  if (dW) gemm(ctx, true, false, out, in, M, 1.f, dy, x, 1.f, dW);   // [out,in] += dy^T x
  if (dbias) bias_grad_accumulate(ctx, dy, dbias, M, out);
}

void bias_grad_accumulate(GemmContext& ctx, const bf16* dy, float* dbias, int64_t M, int64_t out) {
  RRT_CHECK(M >= 0 && out >= 0, kWhere, "negative size in bias gradient");
  if (out == 0) return;
  const dim3 block(32, 32);
  const dim3 grid(static_cast<unsigned>((out + 31) / 32));
  bias_grad_kernel<<<grid, block, 0, ctx.stream()>>>(dy, dbias, M, out);
  RRT_CUDA_CHECK_LAUNCH();
}

}  // namespace rrt::ops::cuda
