// Stopping `rrt train` cleanly on a signal (docs/runs.md, "Signals"). SIGTERM (what Slurm and
// most schedulers send before they preempt or time out a job), SIGINT (Ctrl-C) and SIGUSR1
// (Slurm's `--signal=USR1@SECONDS` warning) ask the trainer to finish the optimizer step it is
// in, write a checkpoint and exit with kExitStoppedOnSignal; a second one exits at once.
//
// The handler only stores the signal's number in a lock-free atomic (async-signal-safe) and
// writes one line with write(2). The training loop reads it once per step and, under MPI,
// all-reduces it with the step's loss, so every rank stops after the same step even when the
// signal reached only some of them, or reached them during different steps.
//
// A process that runs `rrt train` as its child (`rrt sweep --launch local`) installs them with
// StopMode::forward_to_child: the first signal is passed on to the running child (its own
// handler finishes the step and checkpoints) and recorded, so that nothing further is launched;
// a second one kills the child with SIGKILL and exits 128 + its number. run_process
// (trainer/sweep/process.h) registers the child and puts it in a process group of its own, so
// that a terminal's Ctrl-C, which reaches the whole foreground group, reaches it once, through
// the parent, and not twice (which would mean "exit at once, without a checkpoint").
#pragma once

#include <csignal>

namespace rrt {

class Communicator;

// The exit status of `rrt train` after it stopped on a signal: the checkpoint of the last
// finished step is written, and rerunning the same command resumes from it. (A second signal
// exits at once with 128 + its number, as a shell reports a process killed by it.)
inline constexpr int kExitStoppedOnSignal = 3;

enum class StopMode {
  finish_step,       // rrt train: finish the step, checkpoint, exit 3
  forward_to_child,  // a launcher of rrt train: pass the signal on to the child, launch no more
};

// Handles SIGTERM, SIGINT and SIGUSR1 for its lifetime (restoring the previous handlers after);
// one at a time. Constructing it forgets any signal received before.
class StopSignals {
 public:
  explicit StopSignals(StopMode mode = StopMode::finish_step);
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

// Whether a StopSignals(StopMode::forward_to_child) lives.
bool stop_signals_forwarded();
// forward_to_child: the child that receives the signals (0: none). Set it and clear it with the
// stop signals blocked (BlockStopSignals), so that a signal is forwarded exactly once, and never
// to a pid already reaped (and maybe reused).
void set_stop_child(int pid);

// Blocks SIGTERM, SIGINT and SIGUSR1 in this thread for its lifetime; a signal that came
// meanwhile is handled when it ends. old_mask() is the mask before (for a forked child to
// restore before exec).
class BlockStopSignals {
 public:
  BlockStopSignals();
  ~BlockStopSignals();
  BlockStopSignals(const BlockStopSignals&) = delete;
  BlockStopSignals& operator=(const BlockStopSignals&) = delete;
  const sigset_t& old_mask() const { return old_; }

 private:
  sigset_t old_;
};

}  // namespace rrt
