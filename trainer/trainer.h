// The training loop: micro-batches with gradient accumulation, global-norm clipping, AdamW with
// a schedule, periodic evaluation, logging (stdout + metrics.jsonl), checkpoints and resume.
//
// Run directory: config.yaml (resolved config), metrics.jsonl (one JSON object per log/eval
// event), step_XXXXXXXX.h5 checkpoints (trainer/retention.h says which are kept), rrt.lock
// (trainer/run_directory.h). With StopSignals (trainer/shutdown.h) alive, SIGTERM, SIGINT and
// SIGUSR1 end run() after the current step with a checkpoint.
//
// Data parallel (docs/distributed.md): every rank of the communicator runs train.micro_batch
// rows of each micro-batch from its slice of the global batch; the flat gradient arena is
// averaged across ranks before clipping and the step, and losses are averaged too, so N ranks
// train as one rank with N times the micro-batch would. Rank 0 alone logs, writes metrics.jsonl
// and checkpoints; the others wait at a barrier. Checkpoints do not depend on the world size.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/run_config.h"

namespace rrt {

class Communicator;

struct TrainSummary {
  int64_t first_step = 0;       // the first step this run executed (1 unless resumed)
  int64_t last_step = 0;        // steps completed in total
  std::vector<double> losses;   // training loss of every step this run executed
  double last_val_loss = -1;    // -1: never evaluated
  std::string last_checkpoint;  // "" if none was written
  double seconds = 0;
  // Stopped before train.steps on a signal (trainer/shutdown.h), with a checkpoint of
  // last_step: the signal's number, or -1 on a rank that did not receive one itself.
  int stopped_by_signal = 0;
};

class Trainer {
 public:
  // comm: null picks make_communicator() (MPI under mpirun/srun, else one process).
  explicit Trainer(RunConfig config, std::shared_ptr<Communicator> comm = nullptr);
  ~Trainer();
  // Trains up to config.train.steps; stop_after > 0 stops after that many steps of this run
  // (as an interruption would), writing a checkpoint first.
  TrainSummary run(int64_t stop_after = 0);

  // Mean validation loss over eval_batches global micro-batches (the same ones every time);
  // a collective: every rank must call it. On data.sources: the sources' losses weighted by
  // their weights.
  double evaluate();
  // The validation loss of each source of data.sources, in order (one value on data.path);
  // a collective.
  std::vector<double> validation_losses();

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace rrt
