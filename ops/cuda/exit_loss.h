// The chunked loss of E early exits sharing one LM head, with optional distillation from a
// teacher and self-distillation from the final exit, on the GPU: the CUDA twin of
// ops/exit_loss.h (same terms, same weights, same gradients; read the CPU header for the maths).
// Per chunk of rows:
//   teacher (optional): z_t = h_t W_t^T (cuBLASLt, fp32 [chunk, V]), one block per row turns it
//                       into log p^tau in place
//   each exit, final first: z_k = h_k W^T (+ s (h_k A_k^T) B_k^T), fp32 [chunk, V]
//     one block per row: lse at 1 and at tau, CE, KD, SD and the row's dz (bf16 [chunk, V]);
//     the final exit also leaves log q_final (fp32 [chunk, V]) for the others' SD
//     dh_k += dz W (bf16), dW += dz^T h_k (fp32); with a head LoRA: du = s dz B_k (bf16),
//     dB_k += s dz^T u, dA_k += du^T h_k (fp32), dh_k += du A_k (bf16)
// A final logit soft-cap caps z_k (and the teacher's z_t, with its own cap) in place after the
// GEMMs (softcap_logits, ops/cuda/vector_ops.h) and scales dz by its slope.
// Row values are fp32 on the device; the per-exit sums over rows are double. Only chunk x V
// values exist at a time. h, W, LoRA and the teacher are bf16 device pointers; the arrays of
// per-exit pointers, exit_weights and the exit_* outputs live on the host.
// The call synchronizes the stream twice: to validate targets before any gradient is touched
// (as on the CPU), and to read the sums back.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ops/cuda/gemm.h"
#include "ops/exit_loss.h"

namespace rrt::ops::cuda {

struct ExitLossArgs {
  int64_t M = 0, D = 0, V = 0;
  int64_t exits = 1;                     // E >= 1
  const bf16* const* h = nullptr;        // host [E] -> device [M, D]
  const double* exit_weights = nullptr;  // host [E]
  const bf16* W = nullptr;               // [V, D]
  const int32_t* targets = nullptr;      // device [M]
  int32_t ignore_index = -1;

  int64_t head_lora_rank = 0;           // R; 0 (or null entries) for none
  float head_lora_scale = 1.f;          // s
  const bf16* const* lora_A = nullptr;  // host [E] -> [R, D] or null
  const bf16* const* lora_B = nullptr;  // host [E] -> [V, R] or null
  double softcap = 0;                   // final logit soft-cap (ops/logit_softcap.h); 0: off

  const bf16* teacher_h = nullptr;  // [M, Dt]; null for no teacher
  const bf16* teacher_W = nullptr;  // [V, Dt]
  int64_t teacher_D = 0;
  double teacher_softcap = 0;  // the teacher's own final logit soft-cap
  Divergence divergence = Divergence::forward_kl;
  double temperature = 1.0;
  double alpha = 0.5;

  bool self_distill = false;

  // dh null: loss only. Entries of dh, dA, dB and dW may be null (frozen). All add.
  bf16* const* dh = nullptr;   // host [E] -> [M, D]
  float* dW = nullptr;         // [V, D]
  float* const* dA = nullptr;  // host [E] -> [R, D]
  float* const* dB = nullptr;  // host [E] -> [V, R]
  float weight = 1.f;

  void* workspace = nullptr;  // exit_loss_workspace_bytes(...)
  size_t workspace_bytes = 0;
  int64_t chunk = 256;

  double* exit_ce = nullptr;  // host [E], optional: per-exit means as on the CPU
  double* exit_kd = nullptr;
  double* exit_sd = nullptr;
};

size_t exit_loss_workspace_bytes(int64_t V, int64_t chunk, int64_t exits, bool teacher,
                                 bool self_distill, int64_t head_lora_rank);

// Throws rrt::Error on a target outside [0, V) that is not ignore_index, before touching any
// gradient, and on a workspace smaller than exit_loss_workspace_bytes.
ExitLossResult exit_loss(GemmContext& ctx, const ExitLossArgs& args);

}  // namespace rrt::ops::cuda
