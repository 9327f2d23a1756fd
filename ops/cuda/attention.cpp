// Causal GQA attention through cuDNN's SDPA graphs (see ops/cuda/attention.h for the contract),
// and the one place that sends the shapes cuDNN cannot serve to ops/cuda/attention_fallback.cu.
// Host code only: cuDNN runs the kernels and ops/cuda/activation.cu's add_backward adds the
// gradient scratch into dq, dk, dv. It is a .cpp, compiled by the C++ compiler, because
// cudnn-frontend's large headers take several times longer through nvcc.
//
// One graph per (direction, shape), built once:
//   forward:  (O, Stats) = sdpa(Q, K, V)                 causal, scale 1/sqrt(Dh), Stats generated
//   backward: (dQ, dK, dV) = sdpa_backward(Q, K, V, O, dO, Stats)
// cuDNN's SDPA tensors are 4-d [batch, heads, seq, head_dim] with free strides, so rrt's
// [N, T, heads, Dh] buffers are described as dims (N, heads, T, Dh) with strides
// (T heads Dh, Dh, heads Dh, 1), and lse [N, H, T] as dims (N, H, T, 1), strides (H T, T, 1, 1)
// (packed, the only Stats layout cuDNN before 9.26 reads in backward). Stats is cuDNN's
// natural-log log-sum-exp of the scaled, masked scores, the same quantity as the CPU's lse.
// The graph API takes device pointers at execution through a variant pack keyed by tensor uid.

// No JSON serialisation of graphs is used: skipping it keeps nlohmann (a second copy, bundled
// with cudnn-frontend) out of this file and shortens its compile.
#define CUDNN_FRONTEND_SKIP_JSON_LIB

#include "ops/cuda/attention.h"

#include <cudnn.h>
#include <cudnn_frontend.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "core/cuda/cuda_check.h"
#include "core/error.h"
#include "ops/cuda/attention_fallback.h"
#include "ops/cuda/elementwise.h"

namespace rrt::ops::cuda {

namespace {

namespace fe = cudnn_frontend;

constexpr const char* kWhere = "cuda attention";
constexpr size_t kAlignment = 16;  // bytes: what cuDNN's SDPA kernels assume of every pointer

// Tensor uids: how a variant pack names the graph's tensors at execution.
enum Uid : int64_t { kQ = 1, kK, kV, kO, kStats, kdO, kdQ, kdK, kdV };

#define RRT_CUDNN_CHECK(call)                                                                      \
  do {                                                                                             \
    const cudnnStatus_t rrt_cudnn_st_ = (call);                                                    \
    RRT_CHECK(rrt_cudnn_st_ == CUDNN_STATUS_SUCCESS, "cudnn", #call, " failed at ", __FILE__, ":", \
              __LINE__, ": ", cudnnGetErrorString(rrt_cudnn_st_));                                 \
  } while (0)

std::string describe(const AttentionShape& s) {
  return ::rrt::detail::concat("N=", s.N, " T=", s.T, " H=", s.H, " Hkv=", s.Hkv, " Dh=", s.Dh);
}

struct GraphKey {
  bool backward;
  int64_t N, T, H, Hkv, Dh;
  int64_t window = 0;  // a sliding window: the diagonal band's left bound (0: none)
  bool operator<(const GraphKey& o) const {
    return std::tie(backward, N, T, H, Hkv, Dh, window) <
           std::tie(o.backward, o.N, o.T, o.H, o.Hkv, o.Dh, o.window);
  }
};

struct BuiltGraph {
  std::shared_ptr<fe::graph::Graph> graph;
  int64_t workspace_bytes = 0;
};

// Device memory that only grows. Growing waits for `stream` first: queued work may still use the
// old block.
struct DeviceScratch {
  void* ptr = nullptr;
  size_t bytes = 0;

  void* reserve(size_t need, cudaStream_t stream, const char* what) {
    if (need <= bytes) return ptr;
    RRT_CUDA_CHECK(cudaStreamSynchronize(stream));
    if (ptr) RRT_CUDA_CHECK(cudaFree(ptr));
    ptr = nullptr;
    bytes = 0;
    const cudaError_t err = cudaMalloc(&ptr, need);
    RRT_CHECK(err == cudaSuccess, kWhere, "cannot allocate ", need, " bytes of ", what, ": ",
              cudaGetErrorString(err));
    bytes = need;
    return ptr;
  }
  void release() {
    if (ptr) cudaFree(ptr);
    ptr = nullptr;
    bytes = 0;
  }
};

// A q-shaped [N, T, heads, Dh] bf16 tensor as cuDNN's (N, heads, T, Dh) with rrt's strides.
fe::graph::Tensor_attributes token_major(const char* name, int64_t uid, int64_t N, int64_t T,
                                         int64_t heads, int64_t Dh) {
  return fe::graph::Tensor_attributes()
      .set_name(name)
      .set_uid(uid)
      .set_data_type(fe::DataType_t::BFLOAT16)
      .set_dim({N, heads, T, Dh})
      .set_stride({T * heads * Dh, Dh, heads * Dh, 1});
}
// lse [N, H, T] fp32 as cuDNN's Stats (N, H, T, 1).
fe::graph::Tensor_attributes stats_tensor(int64_t N, int64_t T, int64_t H) {
  return fe::graph::Tensor_attributes()
      .set_name("lse")
      .set_uid(kStats)
      .set_data_type(fe::DataType_t::FLOAT)
      .set_dim({N, H, T, 1})
      .set_stride({H * T, T, 1, 1});
}

// Throws on a null pointer; returns whether every pointer is 16-byte aligned (cuDNN's need).
bool check_pointers(std::initializer_list<std::pair<const void*, const char*>> pointers,
                    const AttentionShape& s) {
  bool aligned = true;
  for (const auto& [p, name] : pointers) {
    RRT_CHECK(p != nullptr, kWhere, name, " is null (", describe(s), ")");
    aligned = aligned && reinterpret_cast<uintptr_t>(p) % kAlignment == 0;
  }
  return aligned;
}

// The band's left bound: 0 (none) for a window that covers the whole sequence, so those calls
// share the plain graph.
int64_t window_of(const AttentionMask& m, const AttentionShape& s) {
  return m.window > 0 && m.window < s.T ? m.window : 0;
}

bool fallback_forced_by_environment() {
  const char* env = std::getenv("RRT_ATTENTION_FALLBACK");
  return env != nullptr && *env != '\0' && std::string(env) != "0";
}

}  // namespace

struct AttentionContext::Impl {
  cudaStream_t stream = nullptr;
  cudnnHandle_t handle = nullptr;
  std::string runtime;  // "cuDNN 9.x.y on sm_XY", for error messages
  std::map<GraphKey, BuiltGraph> graphs;
  DeviceScratch workspace, grad_scratch;
  bool force_fallback = fallback_forced_by_environment();
  int64_t fallback_calls = 0;
  int compute_capability = -1;  // queried at the first backward that needs it

  cudnnHandle_t get_handle();
  int device_compute_capability();
  // The dispatch: which path runs this call (throws for a null pointer).
  AttentionPath path_for(const AttentionShape& s, bool backward, const AttentionMask& mask,
                         std::initializer_list<std::pair<const void*, const char*>> pointers);
  const BuiltGraph& graph_for(const GraphKey& key, const AttentionShape& s);
  void execute(const BuiltGraph& built, std::unordered_map<int64_t, void*>& pack,
               const AttentionShape& s, const char* direction);
  // Throws with the shape and cuDNN's reason when a step of building or running a graph fails.
  void check(fe::error_t status, const char* step, const AttentionShape& s, const char* direction);
};

AttentionContext::AttentionContext(cudaStream_t stream) : impl_(std::make_unique<Impl>()) {
  impl_->stream = stream;
}

AttentionContext::~AttentionContext() {
  impl_->graphs.clear();  // the plans belong to the handle: free them first
  if (impl_->handle) cudnnDestroy(impl_->handle);
  impl_->workspace.release();
  impl_->grad_scratch.release();
}

cudaStream_t AttentionContext::stream() const { return impl_->stream; }
void AttentionContext::set_stream(cudaStream_t stream) { impl_->stream = stream; }
size_t AttentionContext::cached_graphs() const { return impl_->graphs.size(); }
void AttentionContext::set_force_fallback(bool force) { impl_->force_fallback = force; }
bool AttentionContext::force_fallback() const { return impl_->force_fallback; }
int64_t AttentionContext::fallback_calls() const { return impl_->fallback_calls; }

int AttentionContext::Impl::device_compute_capability() {
  if (compute_capability >= 0) return compute_capability;
  int device = 0, major = 0, minor = 0;
  RRT_CUDA_CHECK(cudaGetDevice(&device));
  RRT_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  RRT_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
  return compute_capability = major * 10 + minor;
}

AttentionPath AttentionContext::Impl::path_for(
    const AttentionShape& s, bool backward, const AttentionMask& mask,
    std::initializer_list<std::pair<const void*, const char*>> pointers) {
  check_attention_shape(s, backward);
  RRT_CHECK(mask.window >= 0 && mask.softcap >= 0, kWhere, "window ", mask.window, " and softcap ",
            mask.softcap, " must be >= 0 (0: off)");
  const bool aligned = check_pointers(pointers, s);
  // The GPU is asked only when its answer matters (a backward above Dh = 128 that cuDNN could
  // otherwise run): shape errors and forced or obvious fallbacks need no device.
  const bool needs_device = backward && !force_fallback && aligned && s.T >= 2 && s.Dh > 128 &&
                            s.Dh <= 256 && s.Dh % 8 == 0;
  const int cc = needs_device ? device_compute_capability() : 0;
  const AttentionPath path = choose_attention_path(s, backward, cc, aligned, force_fallback, mask);
  if (path == AttentionPath::kFallback) ++fallback_calls;
  return path;
}

cudnnHandle_t AttentionContext::Impl::get_handle() {
  if (handle) return handle;
  const cudnnStatus_t st = cudnnCreate(&handle);
  if (st != CUDNN_STATUS_SUCCESS) {
    handle = nullptr;
    RRT_FAIL(kWhere, "cudnnCreate failed: ", cudnnGetErrorString(st),
             " ---> HINT: cuDNN 9 needs a visible GPU and its libraries (libcudnn*.so.9: the "
             "toolkit's, or python3's site-packages/nvidia/cudnn/lib on LD_LIBRARY_PATH as "
             "tests/gpu/run.sh sets it)");
  }
  int device = 0, major = 0, minor = 0;
  RRT_CUDA_CHECK(cudaGetDevice(&device));
  RRT_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  RRT_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
  const size_t v = cudnnGetVersion();  // 9.26.0 is 92600
  runtime = ::rrt::detail::concat("cuDNN ", v / 10000, ".", (v / 100) % 100, ".", v % 100,
                                  " on sm_", major, minor);
  return handle;
}

void AttentionContext::Impl::check(fe::error_t status, const char* step, const AttentionShape& s,
                                   const char* direction) {
  if (status.is_good()) return;
  RRT_FAIL(kWhere, "cuDNN cannot run the attention ", direction, " for ", describe(s), " (",
           runtime, ", cudnn-frontend ", CUDNN_FRONTEND_MAJOR_VERSION, ".",
           CUDNN_FRONTEND_MINOR_VERSION, "; step ", step, "): ", status.get_message(),
           " ---> HINT: cuDNN's bf16 attention wants Dh a multiple of 8 and at most 256, and its "
           "backward Dh <= 128 on GPUs other than Hopper; CUDNN_FRONTEND_LOG_INFO=1 "
           "CUDNN_FRONTEND_LOG_FILE=stderr shows cuDNN's reasoning; RRT_ATTENTION_FALLBACK=1 "
           "runs rrt's own (slower) attention kernels instead");
}

const BuiltGraph& AttentionContext::Impl::graph_for(const GraphKey& key, const AttentionShape& s) {
  if (auto it = graphs.find(key); it != graphs.end()) return it->second;
  const char* direction = key.backward ? "backward" : "forward";
  cudnnHandle_t h = get_handle();
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(s.Dh)));
  BuiltGraph built;
  built.graph = std::make_shared<fe::graph::Graph>();
  fe::graph::Graph& g = *built.graph;
  g.set_io_data_type(fe::DataType_t::BFLOAT16)
      .set_intermediate_data_type(fe::DataType_t::FLOAT)
      .set_compute_data_type(fe::DataType_t::FLOAT);
  try {
    auto Q = g.tensor(token_major("q", kQ, s.N, s.T, s.H, s.Dh));
    auto K = g.tensor(token_major("k", kK, s.N, s.T, s.Hkv, s.Dh));
    auto V = g.tensor(token_major("v", kV, s.N, s.T, s.Hkv, s.Dh));
    if (!key.backward) {
      // Causal: query i sees keys j <= i + right_bound = i, the diagonal anchored top-left; a
      // window adds the left bound: keys j > i - window.
      auto options = fe::graph::SDPA_attributes()
                         .set_name("attention_forward")
                         .set_generate_stats(true)
                         .set_attn_scale(scale)
                         .set_diagonal_alignment(fe::DiagonalAlignment_t::TOP_LEFT)
                         .set_diagonal_band_right_bound(0);
      if (key.window > 0) options.set_diagonal_band_left_bound(static_cast<int>(key.window));
      auto [O, Stats] = g.sdpa(Q, K, V, options);
      const auto out = token_major("out", kO, s.N, s.T, s.H, s.Dh);
      O->set_output(true).set_uid(kO).set_data_type(fe::DataType_t::BFLOAT16);
      O->set_dim(out.get_dim()).set_stride(out.get_stride());
      const auto lse = stats_tensor(s.N, s.T, s.H);
      Stats->set_output(true).set_uid(kStats).set_data_type(fe::DataType_t::FLOAT);
      Stats->set_dim(lse.get_dim()).set_stride(lse.get_stride());
    } else {
      auto O = g.tensor(token_major("out", kO, s.N, s.T, s.H, s.Dh));
      auto dO = g.tensor(token_major("dout", kdO, s.N, s.T, s.H, s.Dh));
      auto Stats = g.tensor(stats_tensor(s.N, s.T, s.H));
      auto options = fe::graph::SDPA_backward_attributes()
                         .set_name("attention_backward")
                         .set_attn_scale(scale)
                         .set_diagonal_alignment(fe::DiagonalAlignment_t::TOP_LEFT)
                         .set_diagonal_band_right_bound(0);
      if (key.window > 0) options.set_diagonal_band_left_bound(static_cast<int>(key.window));
      auto [dQ, dK, dV] = g.sdpa_backward(Q, K, V, O, dO, Stats, options);
      const auto q_like = token_major("dq", kdQ, s.N, s.T, s.H, s.Dh);
      const auto kv_like = token_major("dk", kdK, s.N, s.T, s.Hkv, s.Dh);
      dQ->set_output(true).set_uid(kdQ).set_data_type(fe::DataType_t::BFLOAT16);
      dQ->set_dim(q_like.get_dim()).set_stride(q_like.get_stride());
      dK->set_output(true).set_uid(kdK).set_data_type(fe::DataType_t::BFLOAT16);
      dK->set_dim(kv_like.get_dim()).set_stride(kv_like.get_stride());
      dV->set_output(true).set_uid(kdV).set_data_type(fe::DataType_t::BFLOAT16);
      dV->set_dim(kv_like.get_dim()).set_stride(kv_like.get_stride());
    }
    check(g.validate(), "validate", s, direction);
    check(g.build_operation_graph(h), "build_operation_graph", s, direction);
    check(g.create_execution_plans({fe::HeurMode_t::A}), "create_execution_plans", s, direction);
    check(g.check_support(), "check_support", s, direction);
    check(g.build_plans(), "build_plans", s, direction);
    check(g.get_workspace_size(built.workspace_bytes), "get_workspace_size", s, direction);
  } catch (const rrt::Error&) {
    throw;
  } catch (const std::exception& e) {  // cudnn-frontend throws in a few places
    RRT_FAIL(kWhere, "building the cuDNN attention ", direction, " graph for ", describe(s), " (",
             runtime, ") threw: ", e.what());
  }
  return graphs.emplace(key, std::move(built)).first->second;
}

void AttentionContext::Impl::execute(const BuiltGraph& built,
                                     std::unordered_map<int64_t, void*>& pack,
                                     const AttentionShape& s, const char* direction) {
  cudnnHandle_t h = get_handle();
  RRT_CUDNN_CHECK(cudnnSetStream(h, stream));
  void* ws = built.workspace_bytes > 0
                 ? workspace.reserve(static_cast<size_t>(built.workspace_bytes), stream,
                                     "cuDNN attention workspace")
                 : nullptr;
  check(built.graph->execute(h, pack, ws), "execute", s, direction);
}

void check_attention_shape(const AttentionShape& s, bool /*backward*/) {
  RRT_CHECK(s.N >= 1 && s.T >= 1 && s.H >= 1 && s.Hkv >= 1 && s.Dh >= 1, kWhere,
            "every size must be at least 1 (", describe(s), ")");
  RRT_CHECK(s.H % s.Hkv == 0, kWhere, "heads H must be a multiple of kv heads Hkv (", describe(s),
            ")");
  RRT_CHECK(s.Dh <= kFallbackMaxHeadDim, kWhere, "unsupported head dim (", describe(s),
            "): cuDNN stops at 256 and rrt's own attention kernels at ", kFallbackMaxHeadDim,
            " ---> HINT: the CPU path (ops/attention.h) runs any Dh");
}

AttentionPath choose_attention_path(const AttentionShape& s, bool backward, int compute_capability,
                                    bool pointers_aligned, bool force_fallback,
                                    const AttentionMask& mask) {
  const bool cudnn_head_dim = s.Dh % 8 == 0 && s.Dh <= 256;
  const bool cudnn_backward = s.T >= 2 && (s.Dh <= 128 || compute_capability == 90);
  // Windows are cuDNN's diagonal band; documents and soft-caps it cannot express (header).
  const bool cudnn_mask =
      mask.doc_start == nullptr && mask.softcap <= 0 && mask.window <= INT32_MAX;
  const bool cudnn = !force_fallback && pointers_aligned && cudnn_head_dim && cudnn_mask &&
                     (!backward || cudnn_backward);
  return cudnn ? AttentionPath::kCudnn : AttentionPath::kFallback;
}

void attention_forward(AttentionContext& ctx, const bf16* q, const bf16* k, const bf16* v,
                       bf16* out, float* lse, const AttentionShape& s, const AttentionMask& mask) {
  auto& impl = ctx.impl();
  if (impl.path_for(s, false, mask, {{q, "q"}, {k, "k"}, {v, "v"}, {out, "out"}, {lse, "lse"}}) ==
      AttentionPath::kFallback)
    return attention_fallback_forward(q, k, v, out, lse, s, impl.stream, mask);
  const BuiltGraph& built =
      impl.graph_for({false, s.N, s.T, s.H, s.Hkv, s.Dh, window_of(mask, s)}, s);
  // The pack wants void*: cuDNN only reads the inputs.
  std::unordered_map<int64_t, void*> pack = {{kQ, const_cast<bf16*>(q)},
                                             {kK, const_cast<bf16*>(k)},
                                             {kV, const_cast<bf16*>(v)},
                                             {kO, out},
                                             {kStats, lse}};
  impl.execute(built, pack, s, "forward");
}

void attention_backward(AttentionContext& ctx, const bf16* q, const bf16* k, const bf16* v,
                        const bf16* out, const float* lse, const bf16* dout, bf16* dq, bf16* dk,
                        bf16* dv, const AttentionShape& s, const AttentionMask& mask) {
  auto& impl = ctx.impl();
  if (impl.path_for(s, true, mask,
                    {{q, "q"},
                     {k, "k"},
                     {v, "v"},
                     {out, "out"},
                     {lse, "lse"},
                     {dout, "dout"},
                     {dq, "dq"},
                     {dk, "dk"},
                     {dv, "dv"}}) == AttentionPath::kFallback) {
    // The fallback adds into dq, dk, dv itself; its scratch is D = rowsum(dO * O), [N, H, T].
    float* row_dot = static_cast<float*>(
        impl.grad_scratch.reserve(attention_fallback_scratch_elems(s) * sizeof(float), impl.stream,
                                  "attention fallback scratch"));
    return attention_fallback_backward(q, k, v, out, lse, dout, dq, dk, dv, row_dot, s, impl.stream,
                                       mask);
  }
  const BuiltGraph& built =
      impl.graph_for({true, s.N, s.T, s.H, s.Hkv, s.Dh, window_of(mask, s)}, s);

  // cuDNN overwrites its outputs: it writes the gradients into scratch, which is then added into
  // dq, dk, dv. Each part starts at a multiple of 256 bytes.
  const int64_t q_elems = s.N * s.T * s.H * s.Dh, kv_elems = s.N * s.T * s.Hkv * s.Dh;
  auto padded = [](int64_t elems) { return (elems * sizeof(bf16) + 255) / 256 * 256; };
  const size_t bytes = padded(q_elems) + 2 * padded(kv_elems);
  char* base = static_cast<char*>(
      impl.grad_scratch.reserve(bytes, impl.stream, "attention gradient scratch"));
  bf16* dq_new = reinterpret_cast<bf16*>(base);
  bf16* dk_new = reinterpret_cast<bf16*>(base + padded(q_elems));
  bf16* dv_new = reinterpret_cast<bf16*>(base + padded(q_elems) + padded(kv_elems));

  std::unordered_map<int64_t, void*> pack = {{kQ, const_cast<bf16*>(q)},
                                             {kK, const_cast<bf16*>(k)},
                                             {kV, const_cast<bf16*>(v)},
                                             {kO, const_cast<bf16*>(out)},
                                             {kdO, const_cast<bf16*>(dout)},
                                             {kStats, const_cast<float*>(lse)},
                                             {kdQ, dq_new},
                                             {kdK, dk_new},
                                             {kdV, dv_new}};
  impl.execute(built, pack, s, "backward");
  // x += dx_new: the residual add's backward is exactly this sum (fp32 add, one bf16 rounding).
  add_backward(dq_new, dq, nullptr, q_elems, impl.stream);
  add_backward(dk_new, dk, nullptr, kv_elems, impl.stream);
  add_backward(dv_new, dv, nullptr, kv_elems, impl.stream);
}

}  // namespace rrt::ops::cuda
