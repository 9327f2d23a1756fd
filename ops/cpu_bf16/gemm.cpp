// The bf16 GEMMs over oneDNN's matmul primitive (docs/architecture.md, "CPU bf16 GEMMs", says
// why oneDNN and which version). oneDNN 2.x (Debian's libdnnl-dev) and 3.x (e.g. PyPI's
// onednn-devel-cpu-gomp) differ in how a primitive is described and how alpha is passed; both are
// handled below, the rest is common.
//
// How the header's BLAS-style call maps onto a matmul primitive:
// - row-major op(A) [M,K], op(B) [K,N], C [M,N]: memory descriptors with explicit strides, so a
//   transpose or a leading dimension larger than the width is only a stride (no copies);
// - alpha: 2.x output scales (fixed at creation), 3.x a runtime source scale;
// - beta != 0: a sum post-op (dst = result + beta * dst, read in C's own type, fp32 inside);
// - bias: a binary-add post-op broadcast over rows, after the sum, so that the bf16 output is
//   rounded once from alpha A B + beta C + bias formed in fp32 (oneDNN's own bias argument would
//   be scaled by alpha in 2.x).
#include "ops/cpu_bf16/gemm.h"

#include <algorithm>
#include <cstring>
#include <list>
#include <memory>
#include <mutex>
#include <type_traits>
#include <unordered_map>

#include "core/error.h"

#if RRT_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace rrt::ops::cpu_bf16 {

namespace {

constexpr const char* kWhere = "ops::cpu_bf16::gemm";

void check_args(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const void* A, int64_t lda,
                const void* B, int64_t ldb, const void* C, int64_t ldc) {
  RRT_CHECK(M >= 0 && N >= 0 && K >= 0, kWhere, "negative size M=", M, " N=", N, " K=", K);
  // The stored matrices: A is [M,K] or [K,M] (transposed), B [K,N] or [N,K], C [M,N].
  const int64_t a_cols = ta ? M : K, b_cols = tb ? K : N;
  RRT_CHECK(lda >= std::max<int64_t>(1, a_cols), kWhere, "lda=", lda, " is less than the ", a_cols,
            " columns of A as stored (trans_a=", ta, ")");
  RRT_CHECK(ldb >= std::max<int64_t>(1, b_cols), kWhere, "ldb=", ldb, " is less than the ", b_cols,
            " columns of B as stored (trans_b=", tb, ")");
  RRT_CHECK(ldc >= std::max<int64_t>(1, N), kWhere, "ldc=", ldc, " is less than N=", N);
  RRT_CHECK(M == 0 || N == 0 || C != nullptr, kWhere, "C is null");
  RRT_CHECK(M == 0 || N == 0 || K == 0 || (A != nullptr && B != nullptr), kWhere, "A or B is null");
}

// K = 0: the product is empty, oneDNN would leave C alone; the header's contract still scales C
// by beta and adds the bias.
template <typename C_t>
void empty_product(int64_t M, int64_t N, float beta, C_t* C, int64_t ldc, const bf16* bias) {
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      float c = 0.f;
      if constexpr (std::is_same_v<C_t, float>) {
        if (beta != 0.f) c = beta * C[i * ldc + j];
      } else {
        if (beta != 0.f) c = beta * C[i * ldc + j].to_float();
      }
      if (bias) c += bias[j].to_float();
      if constexpr (std::is_same_v<C_t, float>) {
        C[i * ldc + j] = c;
      } else {
        C[i * ldc + j] = bf16::from_float(c);
      }
    }
  }
}

uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

}  // namespace

std::string gemm_unavailable_reason(const CpuFeatures& cpu) {
#if !RRT_HAVE_ONEDNN
  (void)cpu;
  return "this build has no oneDNN: install libdnnl-dev (tools/setup.sh) and reconfigure with "
         "-DRRT_ONEDNN=ON";
#else
  if (!cpu_has_bf16_matmul(cpu)) {
    std::string why = "this CPU has neither AMX nor AVX512_BF16";
    if (cpu.amx_tile && cpu.amx_bf16 && !cpu.amx_os_enabled)
      why += " (it has AMX, but the OS refused the tile state: Linux 5.16+ is needed)";
    return why;
  }
  return "";
#endif
}

bool gemm_available() { return gemm_unavailable_reason().empty(); }

#if !RRT_HAVE_ONEDNN

void gemm(bool, bool, int64_t, int64_t, int64_t, float, const bf16*, int64_t, const bf16*, int64_t,
          float, float*, int64_t) {
  RRT_FAIL(kWhere, gemm_unavailable_reason());
}
void gemm(bool, bool, int64_t, int64_t, int64_t, float, const bf16*, int64_t, const bf16*, int64_t,
          float, bf16*, int64_t, const bf16*) {
  RRT_FAIL(kWhere, gemm_unavailable_reason());
}
std::string gemm_impl(bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, DType, bool,
                      bool) {
  RRT_FAIL(kWhere, gemm_unavailable_reason());
}
std::string gemm_path() { return "unavailable (" + gemm_unavailable_reason() + ")"; }
GemmCacheStats gemm_cache_stats() { return {}; }
void set_gemm_cache_capacity(int64_t) {}
void clear_gemm_cache() {}

#else  // RRT_HAVE_ONEDNN

namespace {

using dnnl::memory;

struct Key {
  bool ta, tb, bf16_out, bias;
  int64_t M, N, K, lda, ldb, ldc;
  uint32_t alpha_bits, beta_bits;
  bool operator==(const Key&) const = default;
};

struct KeyHash {
  size_t operator()(const Key& k) const {
    uint64_t h = 1469598103934665603ull;
    auto mix = [&h](uint64_t v) { h = (h ^ v) * 1099511628211ull; };
    mix(k.ta | k.tb << 1 | k.bf16_out << 2 | k.bias << 3);
    for (int64_t v : {k.M, k.N, k.K, k.lda, k.ldb, k.ldc}) mix(static_cast<uint64_t>(v));
    mix(k.alpha_bits);
    mix(k.beta_bits);
    return h;
  }
};

// One created primitive with the descriptors its memory objects need. Immutable once built:
// oneDNN primitives may run from several threads at once.
struct Prim {
  dnnl::matmul matmul;
  memory::desc a, b, c, bias;
  bool runtime_alpha = false;  // oneDNN 3.x: alpha passed as a source scale at execution
  std::string impl;
};

dnnl::engine& cpu_engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

std::shared_ptr<const Prim> create(const Key& k) {
  const memory::data_type bf = memory::data_type::bf16;
  auto p = std::make_shared<Prim>();
  // Strides give the transposes and leading dimensions: element (i, j) of op(A) sits at
  // A[i*lda + j], or A[j*lda + i] when A is stored transposed.
  p->a = memory::desc({k.M, k.K}, bf, k.ta ? memory::dims{1, k.lda} : memory::dims{k.lda, 1});
  p->b = memory::desc({k.K, k.N}, bf, k.tb ? memory::dims{1, k.ldb} : memory::dims{k.ldb, 1});
  p->c = memory::desc({k.M, k.N}, k.bf16_out ? bf : memory::data_type::f32, memory::dims{k.ldc, 1});
  if (k.bias) p->bias = memory::desc({1, k.N}, bf, memory::dims{k.N, 1});
  float alpha, beta;
  std::memcpy(&alpha, &k.alpha_bits, 4);
  std::memcpy(&beta, &k.beta_bits, 4);

  dnnl::primitive_attr attr;
  dnnl::post_ops ops;
  if (beta != 0.f) ops.append_sum(beta);
  if (k.bias) ops.append_binary(dnnl::algorithm::binary_add, p->bias);
  attr.set_post_ops(ops);
#if DNNL_VERSION_MAJOR >= 3
  if (alpha != 1.f) {
    attr.set_scales_mask(DNNL_ARG_SRC, 0);
    p->runtime_alpha = true;
  }
  dnnl::matmul::primitive_desc pd(cpu_engine(), p->a, p->b, p->c, attr);
#else
  if (alpha != 1.f) attr.set_output_scales(0, {alpha});
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(p->a, p->b, p->c), attr, cpu_engine());
#endif
  p->impl = pd.impl_info_str();
  p->matmul = dnnl::matmul(pd);
  return p;
}

// A bounded LRU map Key -> primitive, behind one mutex. Creation runs outside the lock (it is
// the slow part); two threads that miss on one key both create, and the first insert wins.
class Cache {
 public:
  std::shared_ptr<const Prim> get(const Key& k) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = map_.find(k);
      if (it != map_.end()) {
        ++stats_.hits;
        lru_.splice(lru_.begin(), lru_, it->second.second);
        return it->second.first;
      }
      ++stats_.misses;
    }
    std::shared_ptr<const Prim> p = create(k);
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(k);
    if (it != map_.end()) return it->second.first;
    lru_.push_front(k);
    map_.emplace(k, std::make_pair(p, lru_.begin()));
    trim();
    return p;
  }
  GemmCacheStats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    GemmCacheStats s = stats_;
    s.entries = static_cast<int64_t>(map_.size());
    s.capacity = capacity_;
    return s;
  }
  void set_capacity(int64_t capacity) {
    RRT_CHECK(capacity >= 1, "ops::cpu_bf16::set_gemm_cache_capacity", "capacity ", capacity,
              " must be at least 1");
    std::lock_guard<std::mutex> lock(mu_);
    capacity_ = capacity;
    trim();
    stats_ = {};
  }

  void clear() {
    std::lock_guard<std::mutex> lock(mu_);
    map_.clear();
    lru_.clear();
    stats_ = {};
  }

 private:
  void trim() {  // mu_ held
    while (static_cast<int64_t>(map_.size()) > capacity_) {
      map_.erase(lru_.back());
      lru_.pop_back();
      ++stats_.evictions;
    }
  }
  std::mutex mu_;
  int64_t capacity_ = kDefaultGemmCacheCapacity;
  std::list<Key> lru_;  // most recent first
  std::unordered_map<Key, std::pair<std::shared_ptr<const Prim>, std::list<Key>::iterator>, KeyHash>
      map_;
  GemmCacheStats stats_;
};

Cache& cache() {
  static Cache c;
  return c;
}

void require_available() {
  static const std::string reason = gemm_unavailable_reason();
  if (!reason.empty()) RRT_FAIL(kWhere, reason, "; use train.precision: fp32");
}

std::shared_ptr<const Prim> lookup(const Key& k) {
  try {
    return cache().get(k);
  } catch (const dnnl::error& e) {
    RRT_FAIL(kWhere, "oneDNN could not create a matmul for M=", k.M, " N=", k.N, " K=", k.K,
             " trans_a=", k.ta, " trans_b=", k.tb, " lda=", k.lda, " ldb=", k.ldb, " ldc=", k.ldc,
             " (", k.bf16_out ? "bf16" : "f32", " output): ", e.what());
  }
}

void run(const Key& k, float alpha, const bf16* A, const bf16* B, void* C, const bf16* bias) {
  std::shared_ptr<const Prim> p = lookup(k);
  dnnl::engine& eng = cpu_engine();
  // A stream per thread: the CPU stream is cheap, and none is shared between threads.
  thread_local dnnl::stream stream(eng);
  // oneDNN's memory objects take non-const handles; the matmul never writes its inputs.
  memory a(p->a, eng, const_cast<bf16*>(A)), b(p->b, eng, const_cast<bf16*>(B)), c(p->c, eng, C);
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}};
  if (k.bias) {
    const int index = k.beta_bits != 0 ? 1 : 0;  // the bias follows the sum when there is one
    args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(index) | DNNL_ARG_SRC_1,
                 memory(p->bias, eng, const_cast<bf16*>(bias)));
  }
#if DNNL_VERSION_MAJOR >= 3
  if (p->runtime_alpha) {
    args.emplace(DNNL_ARG_ATTR_SCALES | DNNL_ARG_SRC,
                 memory({{1}, memory::data_type::f32, memory::format_tag::x}, eng, &alpha));
  }
#endif
  try {
    p->matmul.execute(stream, args);
    stream.wait();
  } catch (const dnnl::error& e) {
    RRT_FAIL(kWhere, "oneDNN matmul (", p->impl, ") failed for M=", k.M, " N=", k.N, " K=", k.K,
             ": ", e.what());
  }
}

Key make_key(bool ta, bool tb, int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb,
             int64_t ldc, bool bf16_out, float alpha, float beta, bool bias) {
  Key k{ta, tb, bf16_out, bias, M, N, K, lda, ldb, ldc, 0, 0};
#if DNNL_VERSION_MAJOR >= 3
  alpha = alpha == 1.f ? 1.f : 2.f;  // a runtime value in 3.x: only whether there is a scale
#endif
  k.alpha_bits = float_bits(alpha);
  k.beta_bits = beta == 0.f ? 0u : float_bits(beta);  // -0 and +0 are one key
  return k;
}

const char* isa_name(dnnl::cpu_isa isa) {
  switch (isa) {
    case dnnl::cpu_isa::avx512_core_amx:
      return "avx512_core_amx";
    case dnnl::cpu_isa::avx512_core_bf16:
      return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_vnni:
      return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core:
      return "avx512_core";
    case dnnl::cpu_isa::avx2:
      return "avx2";
    default:
      return "another ISA";
  }
}

}  // namespace

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A,
          int64_t lda, const bf16* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  check_args(trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc);
  require_available();
  if (M == 0 || N == 0) return;
  if (K == 0) return empty_product(M, N, beta, C, ldc, static_cast<const bf16*>(nullptr));
  run(make_key(trans_a, trans_b, M, N, K, lda, ldb, ldc, false, alpha, beta, false), alpha, A, B, C,
      nullptr);
}

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A,
          int64_t lda, const bf16* B, int64_t ldb, float beta, bf16* C, int64_t ldc,
          const bf16* bias) {
  check_args(trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc);
  require_available();
  if (M == 0 || N == 0) return;
  if (K == 0) return empty_product(M, N, beta, C, ldc, bias);
  run(make_key(trans_a, trans_b, M, N, K, lda, ldb, ldc, true, alpha, beta, bias != nullptr), alpha,
      A, B, C, bias);
}

std::string gemm_impl(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, int64_t lda,
                      int64_t ldb, int64_t ldc, DType c_type, bool accumulate, bool bias) {
  RRT_CHECK(c_type == DType::f32 || c_type == DType::bf16, "ops::cpu_bf16::gemm_impl",
            "C must be f32 or bf16, not ", dtype_name(c_type));
  check_args(trans_a, trans_b, M, N, K, &lda, lda, &ldb, ldb, &ldc, ldc);
  require_available();
  return lookup(make_key(trans_a, trans_b, M, N, K, lda, ldb, ldc, c_type == DType::bf16, 1.f,
                         accumulate ? 1.f : 0.f, bias))
      ->impl;
}

std::string gemm_path() {
  const std::string reason = gemm_unavailable_reason();
  if (!reason.empty()) return "unavailable (" + reason + ")";
  const dnnl_version_t* v = dnnl_version();
  std::string path = "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
                     std::to_string(v->patch) + " " + isa_name(dnnl::get_effective_cpu_isa());
  // What a linear layer's forward product actually dispatches to ("brg:avx512_core_bf16").
  try {
    path += " (" + gemm_impl(false, true, 256, 256, 256, 256, 256, 256, DType::bf16, false, false) +
            ")";
  } catch (const Error& e) {
    path += " (no matmul: " + std::string(e.what()) + ")";
  }
  return path;
}

GemmCacheStats gemm_cache_stats() { return cache().stats(); }

void set_gemm_cache_capacity(int64_t capacity) { cache().set_capacity(capacity); }

void clear_gemm_cache() { cache().clear(); }

#endif  // RRT_HAVE_ONEDNN

}  // namespace rrt::ops::cpu_bf16
