// A test hook that sends rrt a real signal at a chosen point of its work, so that the tests of
// signal handling (docs/runs.md, "Signals") stop a run at a step, or inside a checkpoint write,
// deterministically instead of racing a `kill` against the clock.
//
//   RRT_TEST_SIGNAL=TERM:step:6            SIGTERM in the middle of step 6 (every rank)
//   RRT_TEST_SIGNAL=TERM:after_step:6:1    SIGTERM after step 6's all-reduce, on rank 1 only
//   RRT_TEST_SIGNAL=TERM:commit:step_00000008.h5
//                                          SIGTERM while step_00000008.h5 is being written
//   RRT_TEST_SIGNAL=INT:step:2:parent      SIGINT to the parent process (`rrt sweep --launch
//                                          local` training this run) in the middle of step 2
//   RRT_TEST_SIGNAL=INT:step:2:group       SIGINT to the parent's process group, as a
//                                          terminal's Ctrl-C reaches every process in it
//   RRT_TEST_SIGNAL=INT:step:2:group-wait  the same, then this process waits (up to 60 s)
//                                          until it has been told to stop itself (the signal
//                                          its parent passes on): a parent the scheduler runs
//                                          late still stops it at this step (points that can
//                                          tell: `step`)
//   RRT_TEST_SIGNAL=TERM:stopping:3        SIGTERM when the run acts on a stop signal after
//                                          step 3 (before that stop's checkpoint, or after
//                                          step 3's periodic one if the signal came during it)
//   RRT_TEST_SIGNAL=TERM:stopping:3:parent-wait
//                                          SIGTERM to the parent, then this process waits
//                                          (up to 60 s) to be killed: a parent that answers by
//                                          killing it (a sweep's second signal) always can,
//                                          however late the scheduler lets it run
//
// Entries are separated by commas, each fires once, in order (two equal entries: a second
// signal at the same point). Signals: TERM, INT, USR1. Unset (always, outside tests), a point
// costs one load of a static flag.
#pragma once

#include <cstdint>
#include <string_view>

namespace rrt {

// Raises the signal of the first unfired entry matching (point, value) and, when the entry
// names a rank, this rank (an entry naming `parent` or `group` sends it there instead) (rank -1:
// the caller does not know its rank; only entries without one match). `stopped` says whether
// this process has received its stop signal (a group-wait entry waits for it; a point without
// one refuses such an entry).
void test_signal_point(std::string_view point, std::string_view value, int rank = -1,
                       bool (*stopped)() = nullptr);
// The same with a number for the value (a step), formatted only when the hook is set.
void test_signal_point(std::string_view point, int64_t value, int rank = -1,
                       bool (*stopped)() = nullptr);

}  // namespace rrt
