// Claiming a run directory before training in it (docs/runs.md, "The run directory"):
//   - an exclusive lock, flock(2) on <run_dir>/rrt.lock, which holds the holder's pid and host:
//     a second trainer on the directory is refused with both; the kernel drops the lock when
//     its process ends, however it ends (kill -9 included), so a lock is never stale;
//   - temporaries of checkpoint writes that a killed process left behind are deleted (under
//     the lock nobody else can be writing them);
//   - a fresh run (checkpoint.resume: false) in a directory that holds checkpoints is refused,
//     unless checkpoint.existing asks to archive or overwrite the earlier run's outputs.
// Rank 0 alone does this (it alone writes the run directory).
#pragma once

#include <memory>
#include <string>

#include "config/run_config.h"

namespace rrt {

class RunLock {
 public:
  // Locks <dir>/rrt.lock (creating it), or throws naming the pid and host that hold it. On a
  // file system without locks it warns and goes on unlocked.
  explicit RunLock(const std::string& dir);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

 private:
  int fd_ = -1;
};

// The lock file's name inside a run directory.
inline constexpr const char* kRunLockFile = "rrt.lock";

// Creates and locks c.train.run_dir, deletes checkpoint temporaries left by a killed writer,
// and applies checkpoint.existing to an earlier run's outputs when the run starts fresh.
// The lock is held until the returned object is destroyed.
std::unique_ptr<RunLock> claim_run_directory(const RunConfig& c);

}  // namespace rrt
