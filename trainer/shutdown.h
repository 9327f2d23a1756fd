// Stopping `rrt train` cleanly on a signal (docs/runs.md, "Signals"). SIGTERM (what Slurm and
// most schedulers send before they preempt or time out a job), SIGINT (Ctrl-C) and SIGUSR1
// (Slurm's `--signal=USR1@SECONDS` warning) ask the trainer to finish the optimizer step it is
// in, write a checkpoint and exit with kExitStoppedOnSignal; a second one exits at once.
//
// The handler only stores the signal's number in a lock-free atomic (async-signal-safe) and
// writes one line with write(2). The training loop reads it once per step and, under MPI,
// all-reduces it with the step's loss, so every rank stops after the same step even when the
// signal reached only some of them, or reached them during different steps.
#pragma once

namespace rrt {

class Communicator;

// The exit status of `rrt train` after it stopped on a signal: the checkpoint of the last
// finished step is written, and rerunning the same command resumes from it. (A second signal
// exits at once with 128 + its number, as a shell reports a process killed by it.)
inline constexpr int kExitStoppedOnSignal = 3;

// Handles SIGTERM, SIGINT and SIGUSR1 for its lifetime (restoring the previous handlers after);
// one at a time. Constructing it forgets any signal received before.
class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
};

// The first of those signals received since the living StopSignals was made (0: none, or no
// StopSignals lives).
int stop_signal();
// Whether any rank has received one (a collective: every rank calls it; one small all-reduce).
bool any_rank_stopping(Communicator& world);
// "SIGTERM", "SIGINT", "SIGUSR1", or "signal N".
const char* signal_name(int signal);

}  // namespace rrt
