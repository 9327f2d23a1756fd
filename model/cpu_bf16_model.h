// The recursive model on the CPU bf16 backend (ops/cpu_bf16/backend.h): the CUDA backend's
// mixed-precision scheme on the host. A ParameterSet the caller owns holds the fp32 master
// weights and receives the fp32 gradients (so AdamW, clipping, the gradient all-reduce and
// checkpoints run over it exactly as for the fp32 model); this model keeps a bf16 compute copy
// of the masters, rewritten by refresh() after every optimizer step or load, and runs the one
// model code (RecursiveCore<CpuBf16Backend>) over it.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "model/parameters.h"
#include "model/recursive_core.h"
#include "model/recursive_model.h"
#include "model/training_loss.h"
#include "ops/cpu_bf16/backend.h"

namespace rrt {

// What a CpuBf16Model of a spec and capacity will hold, before any of it exists.
struct CpuBf16Plan {
  int64_t compute_copy_bytes = 0, activation_bytes = 0;
};

class CpuBf16Model {
 public:
  // `masters` must have this spec and outlive the model; it needs gradients unless
  // capacity.forward_only. Throws rrt::Error naming train.precision on a CPU without bf16
  // arithmetic (AVX512_BF16 or AMX). The compute copy is made here: call refresh() after the
  // masters change.
  CpuBf16Model(ParameterSet& masters, const ModelSpec& spec, const ModelCapacity& capacity,
               const TrainingLoss& loss = {});
  CpuBf16Model(const CpuBf16Model&) = delete;
  CpuBf16Model& operator=(const CpuBf16Model&) = delete;

  const ModelSpec& spec() const { return spec_; }
  // The masters rounded to bf16 again (after AdamW, a load or an upload).
  void refresh();

  // Document-aware batches (RecursiveCore::set_document_eos): -1 off, else the EOS id.
  void set_document_eos(int32_t eos) { core_.set_document_eos(eos); }
  double forward_backward(const int32_t* tokens, const int32_t* targets, int64_t N, int64_t T,
                          float weight = 1.0f) {
    return core_.forward_backward(tokens, targets, N, T, weight);
  }
  double loss(const int32_t* tokens, const int32_t* targets, int64_t N, int64_t T) {
    return core_.loss(tokens, targets, N, T);
  }
  void logits(const int32_t* tokens, int64_t N, int64_t T, float* out) {
    core_.logits(tokens, N, T, out);
  }
  const LossBreakdown& last_losses() const { return core_.last_losses(); }
  // A forward-only bf16 model with the same vocabulary and at least this capacity.
  void set_teacher(CpuBf16Model* teacher);

  // Evaluation of loop ends (evaluation/exit_model.h), as RecursiveModel's.
  void forward_loop_ends(const int32_t* tokens, int64_t N, int64_t T) {
    core_.forward(tokens, N, T);
  }
  void exit_logits_of_rows(int64_t loop, const int32_t* rows, int64_t n, float* out) {
    core_.exit_logits(loop, rows, n, out);
  }
  int64_t exit_chunk() const { return core_.exit_chunk(); }

  void set_grad_ready_hook(std::function<void(int64_t)> hook) {
    core_.set_grad_ready_hook(std::move(hook));
  }
  const std::vector<int64_t>& grad_ready_after() const { return core_.grad_ready_after(); }
  // Planned bytes: activations and scratch, and the bf16 compute copy.
  int64_t activation_bytes() const { return core_.activation_bytes() + core_.scratch_bytes(); }
  int64_t compute_copy_bytes() const { return floats_ * static_cast<int64_t>(sizeof(bf16)); }
  // The same two, planned without building the model (the trainer's memory check, which runs
  // before a teacher's compute copy exists).
  static CpuBf16Plan plan(const ModelSpec& spec, const ModelCapacity& capacity,
                          const TrainingLoss& loss = {});

 private:
  // Runs before the core is built: the copy must exist when the core binds its pointers.
  static BackendBlock make_copy(const CpuBf16Backend& be, ParameterSet& masters, int64_t* floats);
  ParameterBinding<CpuBf16Backend> binding(bool forward_only);

  ModelSpec spec_;
  ParameterSet& masters_;
  CpuBf16Backend backend_;
  int64_t floats_ = 0;
  BackendBlock copy_;
  RecursiveCore<CpuBf16Backend> core_;
};

// Whether this build and CPU run the bf16 backend (oneDNN, and AMX-BF16 or AVX512_BF16), and if
// not, why (for errors and the tests' skips).
bool cpu_bf16_supported(std::string* why = nullptr);

}  // namespace rrt
