// `rrt demo`: trains a small relaxed recursive model on an embedded text, printing the loss.
#pragma once

#include <cstdint>

namespace rrt {

struct DemoOptions {
  int steps = 200;
  int64_t batch = 8;
  int64_t seq_len = 64;
  double lr = 3e-3;
  uint64_t seed = 1;
  int log_every = 20;
};

// Returns a process exit code: 0 when the loss went down.
int run_demo(const DemoOptions& options);

}  // namespace rrt
