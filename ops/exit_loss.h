// Chunked loss of E early exits that share one LM head, with optional distillation from a
// teacher and self-distillation from the final exit (docs/method.md §3 and §4). Like
// lm_head_cross_entropy, no M x V tensor ever exists: rows go `chunk` at a time, every logit
// of the chunk lives in scratch [chunk, V], and the gradient is pushed back into dh_k and dW at
// once. Exit E-1 is the final exit.
//
//   h_k: [M, D] normed hidden state of exit k      W: [V, D] the shared head
//   z_k = h_k W^T (+ s (h_k A_k^T) B_k^T with a per-exit head LoRA, A_k: [R, D], B_k: [V, R])
//   teacher (optional): z_t = h_t W_t^T,  h_t: [M, Dt], W_t: [V, Dt]
//   softcap > 0: z_k <- softcap tanh(z_k / softcap) (ops/logit_softcap.h), the teacher's with
//   teacher_softcap; everything below reads the capped logits
//   (and dz_k is the capped logits' gradient times 1 - tanh^2)
//   q_k = softmax(z_k), q_k^tau = softmax(z_k / tau), p^tau = softmax(z_t / tau)
//
// Per counted row (target != ignore_index), each term then averaged over the counted rows:
//   CE_k = lse(z_k) - z_k[target]
//   KD_k = tau^2 * Dv(p^tau, q_k^tau)         (teacher only; Hinton's tau^2 for every divergence)
//          forward_kl: KL(p || q) = sum p (log p - log q)
//          reverse_kl: KL(q || p) = sum q (log q - log p)
//          tv:         1/2 sum |p - q|
//   SD_k = KL(stopgrad(q_final) || q_k)        (self_distill, intermediate exits, tau = 1)
//   loss = sum_k w_k [ (1 - a) CE_k + a KD_k + SD_k ]      a = alpha with a teacher, else 0
// Gradients (when dh is given) are scaled by `weight` (e.g. 1/accum). The teacher and the
// final exit's distribution inside SD_k receive no gradient.
#pragma once

#include <cstdint>

namespace rrt::ops {

enum class Divergence { forward_kl, reverse_kl, tv };

template <typename S>
struct ExitLossArgs {
  int64_t M = 0, D = 0, V = 0;
  int64_t exits = 1;                     // E >= 1
  const S* const* h = nullptr;           // [E] -> [M, D]
  const double* exit_weights = nullptr;  // [E] w_k
  const S* W = nullptr;                  // [V, D]
  const int32_t* targets = nullptr;      // [M]
  int32_t ignore_index = -1;

  // Per-exit head LoRA; rank 0 (or null entries) for none.
  int64_t head_lora_rank = 0;        // R
  S head_lora_scale = 1;             // s
  const S* const* lora_A = nullptr;  // [E] -> [R, D] or null
  const S* const* lora_B = nullptr;  // [E] -> [V, R] or null

  double softcap = 0;  // final logit soft-cap of every exit (model.final_logit_softcapping); 0: off

  // Teacher; teacher_h null for none.
  const S* teacher_h = nullptr;  // [M, Dt]
  const S* teacher_W = nullptr;  // [V, Dt]
  int64_t teacher_D = 0;         // Dt
  double teacher_softcap = 0;    // the teacher's own final logit soft-cap; 0: off
  Divergence divergence = Divergence::forward_kl;
  double temperature = 1.0;  // tau
  double alpha = 0.5;        // a

  bool self_distill = false;

  // Gradients: dh null means loss only. Entries of dh, dA, dB and dW may be null (frozen).
  S* const* dh = nullptr;  // [E] -> [M, D]
  S* dW = nullptr;         // [V, D]
  S* const* dA = nullptr;  // [E] -> [R, D]
  S* const* dB = nullptr;  // [E] -> [V, R]
  S weight = 1;

  S* workspace = nullptr;  // exit_loss_workspace_elems(...)
  int64_t chunk = 256;

  // Out (optional, [E] each): the per-exit means CE_k, KD_k (tau^2 included), SD_k.
  double* exit_ce = nullptr;
  double* exit_kd = nullptr;
  double* exit_sd = nullptr;
};

struct ExitLossResult {
  double loss = 0;      // the weighted total
  double ce = 0;        // sum_k w_k CE_k
  double kd = 0;        // sum_k w_k KD_k
  double sd = 0;        // sum_k w_k SD_k
  int64_t counted = 0;  // rows whose target is not ignore_index
};

// Scratch of the op: one [chunk, V] block for the exit being scored, one for the teacher's
// log-probabilities, one for the final exit's (self-distillation), two [chunk, R] for the LoRA.
// Independent of M: the memory of the loss is bounded by chunk x V.
inline int64_t exit_loss_workspace_elems(int64_t V, int64_t chunk, bool teacher, bool self_distill,
                                         int64_t head_lora_rank) {
  return chunk * V * (1 + (teacher ? 1 : 0) + (self_distill ? 1 : 0)) + 2 * chunk * head_lora_rank;
}

template <typename S>
ExitLossResult exit_loss(const ExitLossArgs<S>& args);

}  // namespace rrt::ops
