// The block scheduler of the kernel simulation (tests/gpu/simulate.sh): every CUDA thread of a
// block is a fiber (ucontext) on one host thread, so a block runs as written, barrier by barrier,
// deterministically, with no data races of the host's own. A fiber runs until it reaches a
// barrier (__syncthreads, or the exchange of a warp shuffle / ballot), and the barrier releases
// when every thread it counts has arrived; a barrier that can never release (a __syncthreads
// some threads skip, a shuffle some lanes of its warp do not reach) stops the test with a message.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace rrt_sim {

// Threads waiting for the others that it counts; `expected` drops as block threads exit (the
// hardware counts exited threads as arrived at __syncthreads), never for warp barriers (a
// full-mask shuffle that a lane left early is undefined behaviour on a GPU: here, a deadlock).
struct Barrier {
  unsigned expected = 0, arrived = 0;
  std::vector<int> waiters;
};

// The order fibers run in (RRT_SIM_SCHEDULE). forward: threads start first-to-last and resume
// in arrival order, so the warps of a block advance nearly in step; reverse: they start
// last-to-first; greedy: released threads resume before all others, so one warp runs ahead up
// to the next __syncthreads. A read that misses its barrier shows in at least one of them.
enum class Schedule { kForward, kReverse, kGreedy };

struct BlockState {
  dim3 grid, block;
  uint3 block_idx{0, 0, 0};
  uint64_t block_serial = 0;         // counts every block of every launch
  int current = -1;                  // the running fiber (its linear thread index)
  std::vector<uint3> thread_idx;     // per fiber
  std::vector<unsigned> warp_phase;  // per fiber: shuffles done, picks the exchange buffer
  Barrier block_barrier;
  std::vector<Barrier> warp_barriers;
  std::vector<uint64_t> exchange[2];  // a value per lane, double-buffered by shuffle parity
  std::vector<unsigned char> dynamic_shared;
  Schedule schedule = Schedule::kForward;
};

BlockState& state();
// Blocks of `grid` one after another, each running body(arg) in every thread of `block`.
void run_grid(dim3 grid, dim3 block, size_t dynamic_shared_bytes, void (*body)(void*), void* arg);
// Waits at b until it releases; released threads resume in the order they arrived.
void arrive_and_wait(Barrier& b);

}  // namespace rrt_sim
