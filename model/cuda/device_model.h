// The whole recursive (and relaxed) model on one GPU for training with train.device: cuda: the
// one model code (RecursiveCore, model/recursive_core.h) on the CUDA backend (ops/cuda/backend.h),
// plus the parameters' device copies, transfers and the fused AdamW. This header names no CUDA
// type, so CPU code (the trainer) includes it unconditionally; a build without CUDA links
// device_model_stub.cpp, whose constructor throws an error saying so.
//
// Precision (issue 6): fp32 master copy of every registry parameter on the device (the same flat
// layout as the host's ParameterSet arena), bf16 compute copies refreshed by the fused AdamW, an
// fp32 gradient arena (the tied block's gradients accumulate over loops in fp32), bf16
// activations stashed per unrolled position, fp32 norm statistics and attention lse. The
// forward and backward are the CPU's (model/decoder_layer_impl.h); the backend writes a
// projection's LoRA term before the tied GEMM adds onto it, and its LM head + CE is
// ops/cuda/cross_entropy's chunked kernel.
//
// Supported: every family (Llama, Gemma, NeoX), cycle and sequence sharing, per-loop norms,
// LoRA on any projection, tied heads, and every TrainingLoss the CPU model takes: early exits at
// loop ends (the normed exit states stashed; backward adds each exit's norm backward into d_resid
// at its loop end), per-exit head adapters, self-distillation, distillation from a teacher (a
// DeviceModel planned forward_only, run on the same micro-batch; set_teacher) and freezing
// (train: lora / head_lora: frozen parameters get no gradient and no AdamW update). The loss of
// exits and distillation is ops/cuda/exit_loss, the plain objective keeps lm_head_cross_entropy.
//
// Activation recomputation (device only; the CPU model stores every position): a position
// marked in `recompute` keeps only its input residual; its layer stash is one buffer shared by
// all recomputed positions, refilled by rerunning that position's forward during backward.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/recursive_model.h"
#include "ops/adamw.h"

namespace rrt {

class AdamW;
class ParameterSet;

struct DeviceModelOptions {
  int64_t max_batch = 1;        // N
  int64_t max_seq = 0;          // T; 0: the model's max_seq_len
  int64_t head_chunk = 2048;    // rows per LM-head chunk (chunk x V fp32 logits live at once)
  std::vector<bool> recompute;  // per unrolled position; empty: none
  // A frozen model run forward only (a distillation teacher), as ModelCapacity::forward_only:
  // bf16 compute weights only (no masters, gradients or moments), two residual buffers in turn
  // and one layer stash; upload() is its only way in. It takes no TrainingLoss.
  bool forward_only = false;
  // Called once every device block is planned and before any is allocated, with what
  // parameter_bytes() and activation_bytes() will report; it may throw to refuse (the trainer's
  // GPU memory check, trainer/memory_check.h). Unset: no extra planning.
  std::function<void(int64_t parameter_bytes, int64_t activation_bytes)> before_allocation;
};

// train.recompute's value for L positions: "none", "all", or positions "0,3,5" (0-based).
// Throws rrt::Error naming train.recompute for anything else.
std::vector<bool> parse_recompute(const std::string& value, int64_t positions);

// The MFU convention (docs/benchmarks.md): 6 x the matmul multiply-adds of one forward per
// token (every projection at every unrolled position, LoRA included, the LM head) plus causal
// attention; recomputation is not counted. Equal to RecursiveModel::train_flops.
double model_train_flops(const ModelSpec& spec, int64_t N, int64_t T);

// True in a CUDA build (whether or not a GPU is visible).
bool device_model_compiled();

class DeviceModel {
 public:
  // Plans and allocates every device buffer (throws rrt::Error if the GPU memory does not
  // suffice, with the sizes; options.before_allocation can refuse first). Parameters start as
  // zeros: call upload().
  DeviceModel(const ModelSpec& spec, const DeviceModelOptions& options,
              const TrainingLoss& loss = {});
  ~DeviceModel();
  DeviceModel(const DeviceModel&) = delete;
  DeviceModel& operator=(const DeviceModel&) = delete;

  const ModelSpec& spec() const;

  // Host values -> fp32 masters (and their bf16 copies). `params` must have this model's spec.
  void upload(const ParameterSet& params);
  // fp32 masters -> host values (checkpoints are written from the host set, as on the CPU).
  void download(ParameterSet& params) const;
  // fp32 gradients -> host gradients (tests).
  void download_grads(ParameterSet& params) const;
  // AdamW moments and step count, both ways (resume / checkpoint); `opt` must be unsharded.
  void upload_optimizer(AdamW& opt);
  void download_optimizer(AdamW& opt) const;

  // As RecursiveModel: tokens, targets [N, T] on the host; adds weight * d(mean loss) into the
  // gradients; returns the mean loss.
  double forward_backward(const int32_t* tokens, const int32_t* targets, int64_t N, int64_t T,
                          float weight = 1.0f);
  double loss(const int32_t* tokens, const int32_t* targets, int64_t N, int64_t T);
  // Document-aware batches (RecursiveCore::set_document_eos): -1 off, else the EOS id.
  void set_document_eos(int32_t eos);
  // Full fp32 logits [N, T, V] into host memory `out` (small checks; allocates N*T*V floats on
  // the device for the call).
  void logits(const int32_t* tokens, int64_t N, int64_t T, float* out);
  const LossBreakdown& last_losses() const;
  // Evaluation of loop ends as exits, as RecursiveModel's: the forward, then exit k's fp32
  // logits of n <= exit_chunk() rows of that batch (host row indices) into host `out` [n, V].
  void forward_loop_ends(const int32_t* tokens, int64_t N, int64_t T);
  void exit_logits_of_rows(int64_t loop, const int32_t* rows, int64_t n, float* out);
  int64_t exit_chunk() const;
  // The teacher of distillation (TrainingLoss::teacher): a DeviceModel planned forward_only with
  // the same vocabulary and at least this capacity, on the same GPU. It must outlive this model.
  void set_teacher(DeviceModel* teacher);

  void zero_grads();
  double grad_norm();  // global L2 norm of the gradient arena (deterministic, in double)
  void scale_grads(float factor);
  // One fused AdamW step over every trainable parameter (decay per the registry); writes the
  // bf16 compute copies. lr overrides hyper.lr when >= 0.
  void adamw_step(const ops::AdamWHyper& hyper, double lr = -1.0);
  int64_t steps_taken() const;
  // The fp32 gradient arena on the device (the host arena's layout) for the data-parallel
  // all-reduce: a GPU communicator (distributed/gpu_communicator.h) takes device pointers.
  float* device_gradients();
  int64_t gradient_floats() const;
  // Float offset of each registry parameter in device_gradients() (the host arena's layout):
  // with grad_ready_after(), what a GradSync over the device arena needs.
  const std::vector<int64_t>& parameter_offsets() const;

  // Gradient-ready notifications, RecursiveModel's exactly: backward calls hook(v) with v = L
  // (after the head and final norm), L-1 .. 0 (after each unrolled position, recomputed or not),
  // then -1 (after the embedding); once hook(v) has been called, every parameter i with
  // grad_ready_after()[i] >= v has its final gradient for this backward. The hook runs on the
  // host as backward *enqueues* that work, not when the GPU has done it: whatever it launches
  // must be ordered after the default stream's queued work (the NCCL communicator records an
  // event there at each launch), so no host synchronisation is needed.
  void set_grad_ready_hook(std::function<void(int64_t)> hook);
  const std::vector<int64_t>& grad_ready_after() const;

  int64_t parameter_bytes() const;   // masters, compute copies, gradients, moments
  int64_t activation_bytes() const;  // stashes, residuals, scratch, head workspace

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace rrt
