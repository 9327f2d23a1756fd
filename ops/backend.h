// The backend interface: what the decoder layer, the recursive model and the serving engine ask of
// the hardware they run on. The layer (model/decoder_layer_impl.h), the model
// (model/recursive_core_impl.h) and the engine (inference/stage_engine_impl.h) are written once
// as templates over a backend type; each backend is a class with the members below,
// over its own buffers. Three exist:
//
//   CpuBackend  (ops/cpu/backend.h)   fp32 everywhere, OpenBLAS + OpenMP; the reference that the
//                                     gradient checks and the PyTorch fixtures run on
//   CudaBackend (ops/cuda/backend.h)  bf16 activations and compute weights, fp32 weight
//                                     gradients, norm statistics and log-sum-exp; cuBLASLt,
//                                     cuDNN and rrt's kernels on one stream (CUDA builds only)
//   CpuBf16Backend (ops/cpu_bf16/backend.h)  the CUDA backend's precisions on the host: GEMMs
//                                     through ops/cpu_bf16/gemm.h, fp32 arithmetic elsewhere
//
// Why templates and not virtual calls: the two backends differ in their activation type (float,
// bf16), and a virtual call per op would have to erase it into void pointers; with templates the
// layer is type-checked against each backend, the ops inline into it, and the CPU model costs
// what it cost before the interface existed (bench/bench_train_step, docs/benchmarks.md).
//
// A backend B provides (M = rows, in/out the projection's sizes; every backward adds into its
// gradients, activation gradients are B::Act, weight gradients B::Grad):
//   using Act, Grad, Stat;                       activations and compute weights; weight
//                                                gradients; norm statistics and lse
//   static constexpr kAlign, kHostMemory, kName  buffer alignment; whether its memory is the
//                                                host's; "cpu" / "cuda" / "cpu-bf16"
//   explicit B(int threads);                     threads: the CPU's OpenMP team (0: all)
//   void prepare(const BackendPlan&);            rope tables, attention workspaces (at build)
//   BackendBlock allocate(size_t bytes, const char* what);  zeroed memory, freed with the block
//   void zero(T* x, n); void upload(T* dst, const T* host, n);   (T: Act, float or int32_t)
//   project / project_backward                   y = x W^T + bias + s B (A x), and its backward
//   norm_forward / norm_backward                 RMSNorm (w or 1 + w) or LayerNorm with a bias
//   rope_forward / rope_backward (pos: per-token positions or null; local: the rope_local_theta
//   table), attention_forward / attention_backward (with the lse and an ops::AttentionMask)
//   add, scale (x *= factor in place), swiglu / geglu / gelu forward and backward
//   embedding_forward / embedding_backward
//   lm_head_cross_entropy, exit_loss             the chunked head losses (HeadLossArgs); both
//                                                soft-cap their logits (ops/logit_softcap.h)
//   logits(h, W, rows, D, V, float* host_out)    full logits into host memory (small checks)
//   softcap_logits(float* z, n, cap)             z = cap tanh(z / cap) in place on fp32 logits in
//                                                the backend's memory (after head_logits /
//                                                head_adapter); cap <= 0: nothing
// and, for the serving engine (inference/stage_engine_impl.h), ops over rows that each carry
// their own sequence slot, position and stage (int32 arrays in the backend's memory):
//   rope_rows (local as rope_forward's), kv_store, kv_attention, gather_rows / scatter_rows,
//   lora_add, lora_rows (each row's own stage's adapter), head_logits / head_adapter (fp32 logits),
//   head_results (argmax and max probability per row, to the host), copy, download, synchronize.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "ops/attention.h"
#include "ops/cross_entropy.h"
#include "ops/exit_loss.h"
#include "ops/rope.h"

namespace rrt {

// What a backend prepares once, at the model's construction, for its largest call.
struct BackendPlan {
  ops::AttentionShape max_attention;  // N x T x H (Hkv) x Dh at capacity
  int64_t rot_dim = 0;                // rotary dims per head
  double rope_theta = 10000.0;
  ops::RopeScaling rope_scaling{};  // ops/rope.h: linear, dynamic or llama3 frequencies
  bool backward = true;             // whether backward will run (attention workspaces)
  // Gemma 3: a second table with this base and no scaling, for the positions that rotate with
  // the local base (rope_forward's `local`); 0: one table.
  double rope_local_theta = 0.0;
};

// Memory a backend handed out; freed (host unmap / free or cudaFree) with the last owner.
using BackendBlock = std::shared_ptr<void>;

// Carves typed pieces out of one block of backend memory, each aligned to kAlign. Run once with
// no base to measure the block, then again on the allocation to hand out the pointers: one plan,
// no size kept twice (the model's and the engine's buffers are planned this way).
template <size_t kAlign>
struct BufferCarver {
  char* base = nullptr;
  size_t used = 0;
  template <typename T>
  T* take(int64_t count) {
    T* p = base ? reinterpret_cast<T*>(base + used) : nullptr;
    const size_t bytes = sizeof(T) * static_cast<size_t>(count > 1 ? count : 1);
    used += (bytes + kAlign - 1) / kAlign * kAlign;
    return p;
  }
};

// One LoRA adapter as the serving engine's per-row LoRA reads it from a table (the layout of
// ops/cuda/lora_rows.h's LoraAdapter): rank 0 or a null `a` leaves the rows unchanged.
template <typename Act>
struct RowAdapter {
  const Act* a = nullptr;  // [rank, in]
  const Act* b = nullptr;  // [out, rank]
  int32_t rank = 0;
  float scale = 0.f;
};

// Rows [begin, end) of an engine call that run at one stage (loop).
struct RowGroup {
  int64_t begin = 0, end = 0, position = 0;
};

// The head losses as the model hands them to a backend: the exit loss of ops/exit_loss.h over
// the backend's buffers (h, W, lora, teacher in Act; gradients of weights in float). Plain CE is
// the case of one exit, no teacher, no self-distillation.
template <typename Act>
struct HeadLossArgs {
  int64_t M = 0, D = 0, V = 0;
  int64_t exits = 1;
  const Act* const* h = nullptr;         // host [E] -> [M, D]
  const double* exit_weights = nullptr;  // host [E]
  const Act* W = nullptr;                // [V, D]
  const int32_t* targets = nullptr;      // [M], backend memory
  int32_t ignore_index = -1;
  int64_t head_lora_rank = 0;
  const Act* const* lora_A = nullptr;  // host [E] -> [R, D] or null
  const Act* const* lora_B = nullptr;  // host [E] -> [V, R] or null
  double softcap = 0;                  // final logit soft-cap (ops/logit_softcap.h); 0: off
  const Act* teacher_h = nullptr;      // [M, Dt]; null: no teacher
  const Act* teacher_W = nullptr;      // [V, Dt]
  int64_t teacher_D = 0;
  double teacher_softcap = 0;  // the teacher model's own final logit soft-cap
  ops::Divergence divergence = ops::Divergence::forward_kl;
  double temperature = 1.0, alpha = 0.5;
  bool self_distill = false;
  Act* const* dh = nullptr;    // host [E] -> [M, D]; null: loss only
  float* dW = nullptr;         // [V, D] or null (frozen)
  float* const* dA = nullptr;  // host [E]
  float* const* dB = nullptr;
  float weight = 1.f;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  int64_t chunk = 256;
  double *exit_ce = nullptr, *exit_kd = nullptr, *exit_sd = nullptr;  // host [E], optional
};

// Copies the fields an exit-loss argument struct shares with HeadLossArgs (every field but the
// workspace, whose type each backend's struct has its own): one list for every backend.
template <typename Out, typename Act>
void copy_head_loss_fields(const HeadLossArgs<Act>& in, Out& a) {
  a.M = in.M;
  a.D = in.D;
  a.V = in.V;
  a.exits = in.exits;
  a.h = in.h;
  a.exit_weights = in.exit_weights;
  a.W = in.W;
  a.targets = in.targets;
  a.ignore_index = in.ignore_index;
  a.head_lora_rank = in.head_lora_rank;
  a.lora_A = in.lora_A;
  a.lora_B = in.lora_B;
  a.softcap = in.softcap;
  a.teacher_softcap = in.teacher_softcap;
  a.teacher_h = in.teacher_h;
  a.teacher_W = in.teacher_W;
  a.teacher_D = in.teacher_D;
  a.divergence = in.divergence;
  a.temperature = in.temperature;
  a.alpha = in.alpha;
  a.self_distill = in.self_distill;
  a.dh = in.dh;
  a.dW = in.dW;
  a.dA = in.dA;
  a.dB = in.dB;
  a.weight = in.weight;
  a.chunk = in.chunk;
  a.exit_ce = in.exit_ce;
  a.exit_kd = in.exit_kd;
  a.exit_sd = in.exit_sd;
}

}  // namespace rrt
