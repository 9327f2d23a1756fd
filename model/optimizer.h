// AdamW over a ParameterSet: one visitor over the registry. Moments live in two arenas with
// the parameters' layout; decay follows each parameter's registry flag; frozen ones are skipped.
//
// Sharded (ZeRO-1): given a slice [begin, end) of the flat parameter arena (floats), the moments
// cover only that slice — flat, the moment of parameter float f at f - begin — and step()
// updates only the parameter floats in it (a tensor cut by the slice's edge is updated in part;
// AdamW is element-wise, so the result is that of the unsharded update). The other ranks'
// slices arrive by an all-gather (trainer/zero1.h).
#pragma once

#include <cstdint>
#include <vector>

#include "core/arena.h"
#include "model/parameters.h"
#include "ops/adamw.h"

namespace rrt {

struct FloatSlice {
  int64_t begin = 0, end = -1;  // end -1: the whole arena (unsharded)
};

class AdamW {
 public:
  AdamW(ParameterSet& params, const ops::AdamWHyper& hyper, FloatSlice slice = {});

  // One update from the gradients currently in params; lr overrides hyper.lr when >= 0.
  void step(double lr = -1.0);
  int64_t steps_taken() const { return step_; }
  // For resuming: the bias corrections continue from the restored step count.
  void set_steps_taken(int64_t steps) { step_ = steps; }
  const ops::AdamWHyper& hyper() const { return hyper_; }
  // Unsharded: one tensor per parameter (registry order); sharded: one flat tensor "slice".
  Arena& first_moment() { return m_; }
  Arena& second_moment() { return v_; }
  bool sharded() const { return sharded_; }
  FloatSlice slice() const { return slice_; }

 private:
  struct Piece {  // the part of parameter `param` inside the slice
    int param;
    int64_t start, count;  // floats into the parameter
    int64_t moment_at;     // floats into the flat moments
  };
  ParameterSet& params_;
  ops::AdamWHyper hyper_;
  Arena m_{"adam.m"}, v_{"adam.v"};
  int64_t step_ = 0;
  bool sharded_ = false;
  FloatSlice slice_;
  std::vector<Piece> pieces_;
};

}  // namespace rrt
