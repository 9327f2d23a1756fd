// Which checkpoints a run keeps (docs/runs.md, "Retention"). checkpoint.keep_last counts the
// newest checkpoints of this run's history (steps up to the one just written: checkpoints of a
// later step are another run's and are left alone), and one more is never deleted: the newest
// *good* checkpoint, so that a divergence cannot leave only blown-up weights behind.
//
// A checkpoint (the weights after step k) is
//   bad     when the validation at step k had no finite perplexity, or the newest validation
//           before it had none (the run had already diverged), or the training loss of step
//           k + 1, which those weights computed, was not finite;
//   good    when it is not bad and either its own validation was finite or step k + 1's
//           training loss was (k + 1 proves them usable: a resume from them trains);
//   pending otherwise (just written, neither known yet).
// The trainer reports validations and training steps as they happen; a resumed run learns the
// validations of earlier invocations from metrics.jsonl. After a divergence, the checkpoints
// newer than the last good one move to <run_dir>/diverged/, so that a plain resume starts from
// the good one.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace rrt {

class CheckpointRetention {
 public:
  CheckpointRetention(std::string run_dir, int64_t keep_last);

  // A resumed run: `resumed` is the step of the checkpoint it resumed from; the validations
  // logged up to it are read from metrics_path (missing: none known).
  void resume(const std::string& metrics_path, int64_t resumed);
  // Validation loss at `step` (the weights after it).
  void validated(int64_t step, double val_loss);
  // Step `step` computed a finite training loss: the weights after step - 1 are usable. May
  // prune a checkpoint that was only kept while its successor was pending.
  void trained(int64_t step);
  // A checkpoint of `step` was committed: prunes.
  void saved(int64_t step);

  // The step of the newest good checkpoint in the run directory (0: none).
  int64_t last_good() const;
  // Step `step`'s training loss was not finite (computed by the weights after step - 1):
  // moves every checkpoint of this history newer than the last good one to <run_dir>/diverged/
  // and returns their file names.
  std::vector<std::string> diverged(int64_t step);

 private:
  enum class Health { pending, good, bad };
  Health health(int64_t step) const;
  void prune() const;

  std::string dir_;
  int64_t keep_last_;
  int64_t newest_ = 0;            // the newest step of this history (resumed or written)
  int64_t usable_through_ = 0;    // weights after steps up to this computed a finite loss
  int64_t bad_from_ = INT64_MAX;  // weights after this step and later computed a non-finite loss
  std::map<int64_t, bool> validations_;  // step -> finite perplexity
};

// Deletes the checkpoints in dir of steps up to `newest` except the newest keep_last of them
// and the one of step `protect` (0: none). Later steps are not this history's: kept.
void prune_checkpoints(const std::string& dir, int64_t keep_last, int64_t newest,
                       int64_t protect = 0);

// The step of a checkpoint file name, step_00001234.h5 -> 1234.
int64_t checkpoint_step(const std::string& path);

}  // namespace rrt
