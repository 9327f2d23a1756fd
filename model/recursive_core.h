// The recursive (and relaxed) model's computation, written once over a backend (ops/backend.h):
// embedding -> K loops x B block layers -> final norm -> head, its memory plan, forward and
// backward, the training objectives (plain CE; exits at loop ends with their weights and head
// adapters, self-distillation, distillation from a forward-only teacher), activation
// recomputation and the gradient-ready hook. RecursiveModel (CPU fp32, model/recursive_model.h)
// and DeviceModel (CUDA bf16, model/cuda/device_model.h) own a core each and add what differs:
// where the parameters live (the host arena; device masters + bf16 copies), transfers and the
// optimizer.
//
// Memory is planned at construction for batches of up to max_batch x max_seq tokens, in two
// blocks of the backend's memory (activations, backward scratch); a step allocates nothing.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "model/config.h"
#include "model/decoder_layer.h"
#include "model/registry.h"
#include "model/training_loss.h"
#include "ops/backend.h"

namespace rrt {

// The terms of the last forward_backward (ops/exit_loss.h): weighted sums over the exits, and
// each exit's own means (exits in the order of TrainingLoss::exit_loops; the last is the final).
struct LossBreakdown {
  double total = 0, ce = 0, kd = 0, sd = 0;
  std::vector<double> exit_ce, exit_kd, exit_sd;
};

struct CoreCapacity {
  int64_t max_batch = 1;
  int64_t max_seq = 0;  // resolved: > 0
  int64_t head_chunk = 256;
  // A frozen model run forward only (a teacher): no gradients, no backward scratch, one stash
  // for every position and two residual buffers in turn.
  bool forward_only = false;
  // Per unrolled position (empty: none): the position keeps only its input residual; its stash
  // is one buffer shared by every recomputed position, refilled during backward.
  std::vector<bool> recompute{};
  // Plan only: the constructor computes activation_bytes() and scratch_bytes() and stops,
  // allocating and binding nothing (the backend is not prepared either); such a core answers
  // those two and nothing else. A memory check before the real core exists (DeviceModel).
  bool measure_only = false;
};

// Which parameters train under a TrainScope (TrainScope::lora: every LoRA, per position and the
// exits' head adapters; head_lora: the head adapters only); throws when nothing would.
std::vector<bool> trainable_under(const ParamRegistry& registry, TrainScope scope);

// The model's parameters as the core reads them: per registry index, the compute copy (Act) and
// the gradient (null where frozen or forward only). Called at construction only.
template <class Be>
struct ParameterBinding {
  std::function<const typename Be::Act*(int)> value;
  std::function<typename Be::Grad*(int)> grad;
};

template <class Be>
class RecursiveCore {
 public:
  using Act = typename Be::Act;
  using Grad = typename Be::Grad;
  using Stat = typename Be::Stat;
  static constexpr int32_t kIgnoreIndex = -1;

  RecursiveCore(Be& backend, const ModelSpec& spec, const ParamRegistry& registry,
                const ParameterBinding<Be>& params, const CoreCapacity& capacity,
                const TrainingLoss& loss);
  RecursiveCore(const RecursiveCore&) = delete;
  RecursiveCore& operator=(const RecursiveCore&) = delete;

  const ModelSpec& spec() const { return spec_; }
  const CoreCapacity& capacity() const { return cap_; }
  const TrainingLoss& training_loss() const { return loss_; }
  const LossBreakdown& last_losses() const { return losses_; }
  Be& backend() { return be_; }

  // tokens, targets: host [N, T] (targets == kIgnoreIndex are skipped). Forward, the loss, and
  // backward adding weight * d(mean loss) into the gradients; returns the mean loss.
  double forward_backward(const int32_t* tokens, const int32_t* targets, int64_t N, int64_t T,
                          float weight);
  double loss(const int32_t* tokens, const int32_t* targets, int64_t N, int64_t T);
  // Full fp32 logits [N, T, V] into host memory.
  void logits(const int32_t* tokens, int64_t N, int64_t T, float* out);
  // Forward only; then final_hidden() [N*T, D] and residual(i) (i = 0..L) hold this batch.
  void forward(const int32_t* tokens, int64_t N, int64_t T);
  const Act* final_hidden() const { return final_h_; }
  const Act* residual(int64_t i) const { return resid_[static_cast<size_t>(i)]; }
  const Act* head_weight() const { return head_; }
  const Act* final_norm_weight() const { return final_norm_; }
  const Act* final_norm_bias() const { return final_norm_bias_; }
  int64_t current_rows() const { return cur_N_ * cur_T_; }

  // Evaluation of loop ends as exits (evaluation/exit_model.h), after forward(): the residual
  // stream after loop k (1..K; before K it needs cycle sharing and a model not planned forward
  // only), and exit k's fp32 logits of n rows of the batch (host row indices into its N*T rows)
  // into host `out` [n, V]: the shared final norm, the head, plus exit k's head adapter
  // exit.{k}.head_lora where the model has one (none at K), then the final logit soft-cap.
  // n <= exit_chunk(); the first call allocates its buffers (evaluation only: a training step
  // never calls it).
  const Act* loop_end(int64_t loop) const;
  void exit_logits(int64_t loop, const int32_t* rows, int64_t n, float* out);
  int64_t exit_chunk() const { return cap_.head_chunk; }

  // The teacher of distillation: a core of the same backend planned forward_only, with the same
  // vocabulary and at least this capacity. It must outlive this one.
  void set_teacher(RecursiveCore* teacher);

  // Gradient-ready notifications: backward calls hook(v) with v = L (after the head and final
  // norm), L-1 .. 0 (after each unrolled position), then -1 (after the embedding); once hook(v)
  // has been called, every parameter i with grad_ready_after()[i] >= v has its final gradient.
  // On a GPU the hook runs as backward *enqueues* that work.
  void set_grad_ready_hook(std::function<void(int64_t)> hook) { hook_ = std::move(hook); }

  // Document-aware batches (data.document_mask, issue 25): with eos >= 0, each forward splits its
  // sequences into documents after every `eos` token (model/documents.h): attention stays within
  // a document and RoPE positions restart at each, so every document computes as it would
  // alone. -1 (the default): each sequence is one document.
  void set_document_eos(int32_t eos) { document_eos_ = eos; }
  int32_t document_eos() const { return document_eos_; }
  const std::vector<int64_t>& grad_ready_after() const { return grad_ready_after_; }

  int64_t activation_bytes() const { return activation_bytes_; }
  int64_t scratch_bytes() const { return scratch_bytes_; }

 private:
  using Carver = BufferCarver<Be::kAlign>;
  void plan_exits();
  void carve_activations(Carver& c);
  void carve_scratch(Carver& c);
  void bind_positions(const ParamRegistry& reg, const ParameterBinding<Be>& params);
  void bind_head(const ParamRegistry& reg, const ParameterBinding<Be>& params);
  void backward();
  void plan_exit_logits();
  double exits_forward_backward(const int32_t* targets, int64_t N, int64_t T, float weight);
  void grad_ready(int64_t v) const {
    if (hook_) hook_(v);
  }
  // The layer's dims at unrolled position l: its window, and this batch's documents.
  LayerDims dims(int64_t l = 0) const {
    LayerDims d = layer_dims(spec_.model, cur_N_, cur_T_);
    d.window = spec_.model.window_at(l);
    if (documents_) {
      d.doc_start = doc_start_;
      d.positions = positions_;
    }
    return d;
  }

  Be& be_;
  ModelSpec spec_;
  CoreCapacity cap_;
  TrainingLoss loss_;
  LossBreakdown losses_;
  int64_t L_ = 0, M_ = 0;
  bool any_recompute_ = false;
  BackendBlock activation_block_, scratch_block_;
  int64_t activation_bytes_ = 0, scratch_bytes_ = 0;

  std::vector<LayerParamsOf<Act>> layer_params_;  // per unrolled position
  std::vector<LayerGradsOf<Grad>> layer_grads_;
  std::vector<LayerStashOf<Act, Stat>> stash_;  // recomputed positions share one
  std::vector<Act*> resid_;                     // L + 1 residual streams [M, D]
  LayerScratchOf<Act> scratch_{};
  Act *d_resid_ = nullptr, *final_h_ = nullptr, *d_final_h_ = nullptr, *recompute_out_ = nullptr;
  Stat *final_rstd_ = nullptr, *final_mean_ = nullptr;
  int32_t *tokens_ = nullptr, *targets_ = nullptr;
  int32_t *doc_start_ = nullptr, *positions_ = nullptr;  // [M] each, backend memory
  int32_t document_eos_ = -1;
  bool documents_ = false;                                // this batch holds several documents
  std::vector<int32_t> host_doc_start_, host_positions_;  // sized at construction
  void* head_ws_ = nullptr;
  size_t head_ws_bytes_ = 0;
  const Act *embed_ = nullptr, *final_norm_ = nullptr, *final_norm_bias_ = nullptr,
            *head_ = nullptr;
  Grad *embed_grad_ = nullptr, *final_norm_grad_ = nullptr, *final_norm_bias_grad_ = nullptr,
       *head_grad_ = nullptr;
  int64_t cur_N_ = 0, cur_T_ = 0;

  // Exits, in the order of loss_.exit_loops; the last is the final exit (final_h_, d_final_h_).
  std::vector<int64_t> exit_resid_;  // residual index k * B of each exit
  std::vector<int> exit_at_resid_;   // L + 1 entries: the exit at residual i, or -1
  std::vector<Act*> exit_h_, exit_dh_;
  std::vector<Stat*> exit_rstd_, exit_mean_;
  std::vector<const Act*> exit_lora_a_, exit_lora_b_;  // head adapters, null where none
  std::vector<Grad*> exit_lora_da_, exit_lora_db_;
  RecursiveCore* teacher_ = nullptr;

  // exit_logits: every loop's head adapter (index k - 1; null where none) and its buffers.
  std::vector<const Act*> head_lora_a_, head_lora_b_;
  BackendBlock exit_block_;
  int32_t* exit_rows_ = nullptr;
  Act *exit_x_ = nullptr, *exit_xn_ = nullptr, *exit_u_ = nullptr;
  Stat *exit_mean_rows_ = nullptr, *exit_rstd_rows_ = nullptr;
  float* exit_logits_ = nullptr;

  std::function<void(int64_t)> hook_;
  std::vector<int64_t> grad_ready_after_;  // per registry index
};

}  // namespace rrt
