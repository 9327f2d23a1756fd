// The model on train.device as the training loop sees it: the one place that asks which device
// runs the step. `make_trainable_model` picks the implementation (trainer/trainable_model.cpp):
//   cpu:  RecursiveModel on the CPU backend, the host AdamW (ZeRO-1 sharded when asked);
//   cuda: DeviceModel (the same model code on the CUDA backend) with its fused AdamW, on-device
//         norm and clipping, NCCL between ranks; a host RecursiveModel planned for one token
//         keeps the weights for initialisation, resume and checkpoints;
//   cpu with train.precision: bf16: CpuBf16Model (the same model code on the CPU bf16 backend)
//         over a host RecursiveModel planned for one token, whose fp32 arenas are the masters
//         and gradients: the host AdamW, clipping and all-reduce of the fp32 path.
// The loop (trainer.cpp) calls these and never asks which device it has.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/run_config.h"
#include "data/loader.h"
#include "distributed/communicator.h"
#include "distributed/grad_sync.h"
#include "model/optimizer.h"
#include "model/recursive_model.h"
#include "trainer/memory_check.h"

namespace rrt {

class TrainableModel {
 public:
  virtual ~TrainableModel() = default;

  // The host copy that initialisation, resume and checkpoints read and write: on cpu the model
  // that trains, on cuda its weights only.
  virtual RecursiveModel& host() = 0;
  // The tokens per micro-batch a distillation teacher's host copy is planned for (cpu: the
  // step's N x T; cuda: one, its forward runs on the GPU), and attaching that teacher.
  virtual int64_t teacher_host_batch() const = 0;
  virtual int64_t teacher_host_seq() const = 0;
  virtual void set_teacher(RecursiveModel& teacher) = 0;
  // After initialisation or resume: the host state to where the step runs (optimizer: the
  // resumed moments, or null).
  virtual void upload(const AdamW* resumed) = 0;
  // Before a checkpoint: the step's weights, moments and step count into the host copies.
  virtual void sync_to_host(AdamW& optimizer) = 0;

  // Document-aware batches (data.document_mask): -1 off, else the shards' EOS id.
  virtual void set_document_eos(int32_t eos) = 0;
  virtual void zero_grads() = 0;
  virtual double forward_backward(const int32_t* tokens, const int32_t* targets, int64_t N,
                                  int64_t T, float weight) = 0;
  virtual const LossBreakdown& last_losses() const = 0;
  virtual double grad_norm() = 0;
  virtual void scale_grads(float factor) = 0;
  virtual void optimizer_step(AdamW& optimizer, double lr) = 0;
  // After the step's update is complete on this rank (AdamW, and ZeRO-1's parameter gather).
  virtual void parameters_updated() {}
  // The mean loss of `batches` validation micro-batches from the split's start.
  virtual double validation_loss(TokenLoader& val, int64_t N, int64_t T, int64_t batches,
                                 int32_t* inputs, int32_t* targets) = 0;

  // Several ranks: the gradient all-reduce over this model's gradient buffer, its buckets
  // launched by the model's grad-ready hook during backward.
  virtual std::unique_ptr<GradSync> make_grad_sync(Communicator& world,
                                                   const GradSyncOptions& options) = 0;
  // How the ranks reduce gradients, for the data-parallel line ("mpi", "nccl, one GPU each...").
  virtual std::string parallel_backend(Communicator& world) const = 0;
  // What the step runs on and its memory, for the log ("" on cpu); the accelerator's peak
  // TFLOP/s where known (0: unknown).
  virtual std::string describe() const = 0;
  // Host memory the step needs beyond host()'s planned arenas (trainer/memory_check.h), with the
  // teacher's beyond its own host model where the run distils (null: none).
  virtual std::vector<MemoryPart> extra_host_memory(const RecursiveModel* /*teacher*/) const {
    return {};
  }
  virtual double peak_tflops() const = 0;
};

std::unique_ptr<TrainableModel> make_trainable_model(const RunConfig& config, Communicator& world,
                                                     const TrainingLoss& objective);

}  // namespace rrt
