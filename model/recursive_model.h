// The recursive (and relaxed) model: embedding -> K loops x B block layers -> final norm -> head.
// Unrolled position l runs block layer b(l) with the LoRA of (k(l), b(l)); K = 1 is the plain
// model, LoRA rank 0 the pure recursive one. Forward stashes activations per position;
// backward walks positions in reverse, so the tied block's gradients accumulate over loops.
//
// Memory is planned at construction for batches of up to max_batch x max_seq tokens; the step
// itself allocates nothing.
//
// Training objectives beyond next-token CE (TrainingLoss, docs/distillation.md): early exits at
// loop ends share the final norm and head (the normed exit states are stashed, and backward adds
// each exit's gradient into the residual-stream gradient at its loop end), distillation from a
// frozen teacher model run forward only on the same micro-batch, and freezing. The loss itself
// is ops/exit_loss, chunked over tokens. The default TrainingLoss runs the plain CE step.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "model/parameters.h"
#include "model/recursive_core.h"
#include "model/training_loss.h"
#include "ops/cpu/backend.h"

namespace rrt {

struct ModelCapacity {
  int64_t max_batch = 1;     // N
  int64_t max_seq = 0;       // T; 0: the model's max_seq_len
  int64_t head_chunk = 256;  // rows per LM-head chunk
  int threads = 0;           // OpenMP threads for attention; 0: omp_get_max_threads()
  // A frozen model run forward only (a distillation teacher): no gradients, and one stash
  // reused by every position instead of one per position (and two residual buffers, not L+1).
  bool forward_only = false;
};

// The model on the CPU fp32 backend: its parameters in a host ParameterSet (values and
// gradients in two flat arenas) and the computation in a RecursiveCore<CpuBackend>.
class RecursiveModel {
 public:
  RecursiveModel(const ModelSpec& spec, const ModelCapacity& capacity,
                 const TrainingLoss& loss = {});

  const ModelSpec& spec() const { return spec_; }
  ParameterSet& params() { return params_; }
  const ParameterSet& params() const { return params_; }

  // tokens, targets: [N, T] (targets == ignore_index are skipped). Runs forward and the loss;
  // adds weight * d(mean loss) into the gradients. Returns the mean loss.
  double forward_backward(const int32_t* tokens, const int32_t* targets, int64_t N, int64_t T,
                          float weight = 1.0f) {
    return core_.forward_backward(tokens, targets, N, T, weight);
  }
  // Document-aware batches (RecursiveCore::set_document_eos): -1 off, else the EOS id.
  void set_document_eos(int32_t eos) { core_.set_document_eos(eos); }
  // Loss only (no gradients).
  double loss(const int32_t* tokens, const int32_t* targets, int64_t N, int64_t T) {
    return core_.loss(tokens, targets, N, T);
  }
  // Full logits [N, T, V] for small checks; `out` is caller memory.
  void logits(const int32_t* tokens, int64_t N, int64_t T, float* out) {
    core_.logits(tokens, N, T, out);
  }

  // The teacher of distillation (TrainingLoss::teacher): a model with the same vocabulary and at
  // least this capacity, usually forward_only. It must outlive this model.
  void set_teacher(RecursiveModel* teacher);
  const TrainingLoss& training_loss() const { return core_.training_loss(); }
  // Terms of the last forward_backward: with the plain loss, total = ce = exit_ce[0].
  const LossBreakdown& last_losses() const { return core_.last_losses(); }
  // Forward only: the final normed hidden states [N*T, D], valid until the next call.
  const float* final_hidden(const int32_t* tokens, int64_t N, int64_t T) {
    core_.forward(tokens, N, T);
    return core_.final_hidden();
  }
  const float* head_weight() const { return core_.head_weight(); }

  // Evaluation of every loop end, forward only (evaluation/exit_eval.h, docs/evaluation.md);
  // separate from the training step. forward_loop_ends runs the forward; loop_end_residual(k)
  // is then the residual stream after loop k (1..K) [N*T, D], valid until the next call (loops
  // before K need cycle sharing and a model not planned forward only). exit_logits applies
  // exit k to `rows` rows of such a residual: the shared final norm into h [rows, D], then the
  // head (plus exit k's head adapter exit.{k}.head_lora where the model has one; none at K)
  // into out [rows, V], soft-capped (model.final_logit_softcapping). Call it on chunks of rows:
  // nothing of size N*T x V is needed.
  void forward_loop_ends(const int32_t* tokens, int64_t N, int64_t T) {
    core_.forward(tokens, N, T);
  }
  const float* loop_end_residual(int64_t loop) const;
  void exit_logits(int64_t loop, const float* resid_rows, int64_t rows, float* h, float* out) const;
  // Exit k's logits of n rows of the last forward_loop_ends (row indices into its N*T rows),
  // n <= exit_chunk(): RecursiveCore::exit_logits, as every backend computes them.
  void exit_logits_of_rows(int64_t loop, const int32_t* rows, int64_t n, float* out) {
    core_.exit_logits(loop, rows, n, out);
  }
  int64_t exit_chunk() const { return core_.exit_chunk(); }

  // Planned memory (bytes) of the activations and of the scratch.
  int64_t activation_bytes() const { return core_.activation_bytes(); }
  int64_t scratch_bytes() const { return core_.scratch_bytes(); }

  static constexpr int32_t kIgnoreIndex = -1;

  // Gradient-ready notifications (RecursiveCore::set_grad_ready_hook), for overlapping the
  // gradient all-reduce with backward. The tied block's gradients are final only after the
  // first loop's backward (their smallest position); a position's own LoRA, norms and biases
  // right after that position.
  void set_grad_ready_hook(std::function<void(int64_t)> hook) {
    core_.set_grad_ready_hook(std::move(hook));
  }
  const std::vector<int64_t>& grad_ready_after() const { return core_.grad_ready_after(); }

  // Model FLOPs of one forward+backward over N*T tokens (6 per weight per token plus
  // causal attention), the usual MFU convention; recomputation is not counted.
  double train_flops(int64_t N, int64_t T) const;

 private:
  ModelSpec spec_;
  ParameterSet params_;
  CpuBackend backend_;
  RecursiveCore<CpuBackend> core_;
};

}  // namespace rrt
