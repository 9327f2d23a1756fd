// GradSync: averages the flat gradient arena across ranks in buckets, each launched during
// backward as soon as all of its gradients are final, so communication overlaps the rest of
// backward (the usual DDP scheme, with recursion's twist: the tied block's gradients are final
// only after the first loop's backward, a position's own LoRA right after that position).
//
// Buckets are contiguous ranges of the arena, cut from its end (head, final norm, the last
// positions' LoRA: final first) towards its start (embedding: final last). A bucket is ready
// once the model's grad-ready hook has reported the smallest readiness of its parameters.
// Every rank builds the same buckets from the same registry and launches them in the same
// order, as MPI's non-blocking collectives require. Alignment gaps between parameters hold
// zeros, so averaging them changes nothing.
//
// The buffer may live anywhere the communicator can reach: a host Arena (MPI on CPUs) or the
// device model's gradient arena (NCCL; the hook is called as backward *enqueues* its kernels,
// and the communicator orders each launch after the work queued so far on the compute stream).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "distributed/communicator.h"

namespace rrt {

class Arena;

struct GradSyncOptions {
  int64_t bucket_bytes = 4 << 20;
  bool overlap = true;  // false: everything is launched in finish()
};

class GradSync {
 public:
  // ready_after[i]: the hook value after which registry parameter i's gradient is final
  // (RecursiveModel::grad_ready_after()); grads: the gradient arena, in registry order.
  GradSync(Communicator& comm, Arena& grads, const std::vector<int64_t>& ready_after,
           GradSyncOptions options);
  // Any flat float buffer: `total_floats` floats from `base` (host or device, as `comm` takes
  // them), parameter i from float offset offsets[i] (increasing, offsets[0] == 0) up to the next
  // one, the last up to the end (padding included).
  GradSync(Communicator& comm, float* base, int64_t total_floats,
           const std::vector<int64_t>& offsets, const std::vector<int64_t>& ready_after,
           GradSyncOptions options);
  ~GradSync();

  // Before the backward whose gradients are the step's last contribution (the last
  // micro-batch): from now on on_ready() launches buckets.
  void arm();
  // The model's grad-ready hook: launches every bucket that has become ready, and lets the
  // transfers already in flight progress.
  void on_ready(int64_t value);
  // Launches whatever is left, waits for everything: the arena then holds the mean over ranks.
  void finish();

  int64_t bucket_count() const { return static_cast<int64_t>(buckets_.size()); }
  // Buckets launched before finish() in the last step (overlapped with backward).
  int64_t launched_early() const { return launched_early_; }

 private:
  struct Bucket {
    int64_t begin, end;  // float offsets in the arena
    int64_t ready;       // launch once on_ready(v) with v <= ready has been called
  };
  void launch(size_t b);

  Communicator& comm_;
  float* base_;
  GradSyncOptions options_;
  std::vector<Bucket> buckets_;
  std::vector<std::unique_ptr<CommRequest>> in_flight_;  // per bucket; null: not launched
  size_t next_ = 0;                                      // buckets are launched in index order
  bool armed_ = false;
  int64_t launched_early_ = 0;
};

}  // namespace rrt
