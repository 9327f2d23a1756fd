// The training loop: micro-batches with gradient accumulation, global-norm clipping, AdamW with
// a schedule, periodic evaluation, logging (stdout + metrics.jsonl), checkpoints and resume.
//
// Run directory: config.yaml (resolved config), metrics.jsonl (one JSON object per log/eval
// event), step_XXXXXXXX.h5 checkpoints (the newest keep_last are kept).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "trainer/run_config.h"

namespace rrt {

struct TrainSummary {
  int64_t first_step = 0;        // the first step this run executed (1 unless resumed)
  int64_t last_step = 0;         // steps completed in total
  std::vector<double> losses;    // training loss of every step this run executed
  double last_val_loss = -1;     // -1: never evaluated
  std::string last_checkpoint;   // "" if none was written
  double seconds = 0;
};

class Trainer {
 public:
  explicit Trainer(RunConfig config);
  ~Trainer();
  // Trains up to config.train.steps; stop_after > 0 stops after that many steps of this run
  // (as an interruption would), writing a checkpoint first.
  TrainSummary run(int64_t stop_after = 0);

  // Mean validation loss over eval_batches micro-batches (the same ones every time).
  double evaluate();

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace rrt
