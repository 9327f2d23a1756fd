// ZeRO stage 1 for data-parallel training: each rank keeps the AdamW moments of one slice of
// the flat parameter arena and updates only that slice; the updated slices are then
// all-gathered, so every rank again holds the whole, identical parameters. The gradients are
// still all-reduced whole (every rank needs them for the global norm and clipping).
//
// Optimizer memory per rank falls from 2 x params to 2 x params / ranks. Checkpoints stay
// independent of the world size: the moments are gathered into a whole optimizer on rank 0
// for saving, and a loaded whole optimizer is scattered into the slices on resume.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "model/optimizer.h"

namespace rrt {

class Communicator;

class Zero1 {
 public:
  Zero1(Communicator& comm, ParameterSet& params);

  // This rank's slice, for AdamW's sharded constructor.
  FloatSlice slice() const;
  // After the sharded optimizer's step: every rank's updated slice to every rank.
  void gather_parameters();
  // Collective. On rank 0: a whole optimizer holding every rank's moments and the step count
  // (for save_checkpoint); null on the other ranks.
  std::unique_ptr<AdamW> gather_moments(AdamW& sharded);
  // Collective: rank 0's whole optimizer (loaded from a checkpoint; ignored elsewhere) into
  // every rank's slice.
  void scatter_moments(AdamW* whole, AdamW& sharded);

 private:
  Communicator& comm_;
  ParameterSet& params_;
  std::vector<int64_t> begins_;  // world + 1 slice boundaries, in floats
};

}  // namespace rrt
