// Signals (trainer/shutdown.h): a SIGTERM, SIGINT or SIGUSR1 ends the run after the current step
// with a checkpoint from which the run resumes bit for bit; a second one exits at once; the
// previous handlers come back. (Signals in the middle of a step or of a checkpoint write, on 1
// and 2 MPI ranks, through the rrt binary: tests/cli/signals.sh, tests/distributed/
// mpi_signals.sh; under Slurm: tests/distributed/slurm_requeue.sh.)
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>

#include "checkpoint/checkpoint.h"
#include "tests/trainer/small_run.h"
#include "trainer/shutdown.h"
#include "trainer/trainer.h"

namespace rrt {
namespace {

namespace fs = std::filesystem;
using testing::bit_equal;
using testing::checkpoint_values;
using testing::fresh_run_dir;
using testing::small_run;

TEST(Signals, StopAfterTheStepWithACheckpointThenResumeBitExact) {
  const fs::path straight_dir = fresh_run_dir("sig_straight");
  const RunConfig straight_cfg = small_run(straight_dir.string());
  const TrainSummary straight = Trainer(straight_cfg).run();
  ASSERT_EQ(straight.last_step, 8);
  EXPECT_EQ(straight.stopped_by_signal, 0);

  for (int signal : {SIGTERM, SIGINT, SIGUSR1}) {
    const fs::path dir = fresh_run_dir(std::string("sig_") + signal_name(signal));
    const RunConfig c = small_run(dir.string());
    TrainSummary first;
    {
      StopSignals handlers;
      std::raise(signal);  // before the first step: the run stops after it
      first = Trainer(c).run();
    }
    EXPECT_EQ(first.stopped_by_signal, signal);
    ASSERT_EQ(first.last_step, 1) << signal_name(signal);
    // Step 1 is not a checkpoint step (every 2): the signal wrote one.
    EXPECT_EQ(first.last_checkpoint, checkpoint_path(dir.string(), 1));
    ASSERT_EQ(list_checkpoints(dir.string()).back(), checkpoint_path(dir.string(), 1));

    const TrainSummary rest = Trainer(c).run();  // no handlers: a plain rerun resumes
    EXPECT_EQ(rest.first_step, 2);
    EXPECT_EQ(rest.stopped_by_signal, 0);
    ASSERT_EQ(rest.losses.size(), 7u);
    for (size_t i = 0; i < rest.losses.size(); ++i)
      EXPECT_EQ(std::memcmp(&rest.losses[i], &straight.losses[i + 1], sizeof(double)), 0)
          << signal_name(signal) << ", step " << i + 2;
    EXPECT_TRUE(bit_equal(checkpoint_values(rest.last_checkpoint, c),
                          checkpoint_values(straight.last_checkpoint, straight_cfg)))
        << signal_name(signal);
  }
}

// In a child process: the first signal only sets the flag (the process goes on), the second
// exits at once with 128 + its number.
TEST(Signals, TheSecondSignalExitsAtOnce) {
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    StopSignals handlers;
    std::raise(SIGUSR1);
    if (stop_signal() != SIGUSR1) std::_Exit(1);
    std::raise(SIGTERM);
    std::_Exit(2);  // not reached
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status)) << "killed by the signal instead of exiting";
  EXPECT_EQ(WEXITSTATUS(status), 128 + SIGTERM);
}

TEST(Signals, ThePreviousHandlersComeBack) {
  struct sigaction before {};
  sigaction(SIGTERM, nullptr, &before);
  {
    StopSignals handlers;
    struct sigaction during {};
    sigaction(SIGTERM, nullptr, &during);
    EXPECT_NE(during.sa_handler, before.sa_handler);
    EXPECT_EQ(stop_signal(), 0);
  }
  struct sigaction after {};
  sigaction(SIGTERM, nullptr, &after);
  EXPECT_EQ(after.sa_handler, before.sa_handler);
}

}  // namespace
}  // namespace rrt
