// Fibers for the kernel simulation (sim_scheduler.h). Launch checks mirror the CUDA limits that
// rrt's kernels rely on (1024 threads a block, 65535 blocks in y and z, 48 KiB of dynamic shared
// memory without an opt-in), so a launch a GPU rejects fails here too.
#include "tests/gpu/simulation/sim_scheduler.h"

#include <sys/mman.h>
#include <ucontext.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <stdexcept>
#include <string>

namespace rrt_sim {
namespace {

constexpr size_t kStackBytes = 256 << 10;  // per fiber; kernels keep a few KiB of registers
constexpr size_t kGuardBytes = 4096;       // a PROT_NONE page under each stack: overflow faults
constexpr unsigned kMaxThreads = 1024;

void fiber_main();

#if defined(__x86_64__) && !defined(RRT_SIM_UCONTEXT)  // -DRRT_SIM_UCONTEXT: the portable path
// A switch saves the callee-saved registers and the FP control words on the old stack and pops
// them from the new one: no system call (swapcontext's signal-mask calls made the simulation
// several times slower).
extern "C" void rrt_sim_switch(void** save_sp, void* load_sp);
asm(R"(
  .text
  .globl rrt_sim_switch
  .type rrt_sim_switch, @function
rrt_sim_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size rrt_sim_switch, .-rrt_sim_switch
)");
struct Context {
  void* sp = nullptr;
};
[[noreturn]] void fiber_entry();
// The new fiber's first switch "returns" into fiber_entry with the stack aligned as after a call.
void prepare(Context& c, Context&, char* stack) {
  auto** p =
      reinterpret_cast<void**>((reinterpret_cast<uintptr_t>(stack) + kStackBytes) & ~uintptr_t{15});
  *--p = nullptr;  // fiber_entry's return address: it never returns
  *--p = reinterpret_cast<void*>(&fiber_entry);
  for (int r = 0; r < 6; ++r) *--p = nullptr;                        // rbp rbx r12 r13 r14 r15
  *--p = reinterpret_cast<void*>(uintptr_t{0x037F} << 32 | 0x1F80);  // default fcw, mxcsr
  c.sp = p;
}
void switch_context(Context& from, Context& to) { rrt_sim_switch(&from.sp, to.sp); }
#else
struct Context {
  ucontext_t uc;
};
void prepare(Context& c, Context& scheduler, char* stack) {
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = kStackBytes;
  c.uc.uc_link = &scheduler.uc;
  makecontext(&c.uc, fiber_main, 0);
}
void switch_context(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }
#endif

struct Fibers {
  Context scheduler;
  std::vector<Context> context = std::vector<Context>(kMaxThreads);
  std::vector<char*> stack;
  std::vector<unsigned char> done = std::vector<unsigned char>(kMaxThreads);
  std::deque<int> ready;
  unsigned live = 0;
  void (*body)(void*) = nullptr;
  void* arg = nullptr;

  Fibers() {
    const size_t each = kStackBytes + kGuardBytes;
    void* base = mmap(nullptr, each * kMaxThreads, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) {
      std::perror("[simulate] mmap of the fiber stacks");
      std::abort();
    }
    for (unsigned t = 0; t < kMaxThreads; ++t) {
      char* s = static_cast<char*>(base) + t * each;
      mprotect(s, kGuardBytes, PROT_NONE);
      stack.push_back(s + kGuardBytes);
    }
  }
};

BlockState g_state;
Fibers& fibers() {
  static Fibers f;
  return f;
}

void release(Barrier& b) {
  b.arrived = 0;
  std::deque<int>& ready = fibers().ready;
  if (g_state.schedule == Schedule::kGreedy)  // the released threads run on before the others
    ready.insert(ready.begin(), b.waiters.begin(), b.waiters.end());
  else
    ready.insert(ready.end(), b.waiters.begin(), b.waiters.end());
  b.waiters.clear();
}

void fiber_main() {
  Fibers& f = fibers();
  f.body(f.arg);
  // The thread exits: it no longer holds up __syncthreads.
  const int t = g_state.current;
  f.done[t] = 1;
  --f.live;
  Barrier& b = g_state.block_barrier;
  --b.expected;
  if (b.arrived > 0 && b.arrived == b.expected) release(b);
  // Returning resumes the scheduler (ucontext: uc_link; x86-64: fiber_entry switches).
}
#if defined(__x86_64__) && !defined(RRT_SIM_UCONTEXT)
void fiber_entry() {
  fiber_main();
  Context dead;  // never resumed
  switch_context(dead, fibers().scheduler);
  __builtin_unreachable();
}
#endif

[[noreturn]] void deadlock(unsigned threads) {
  const BlockState& s = g_state;
  std::string why = "[simulate] deadlock in block (" + std::to_string(s.block_idx.x) + "," +
                    std::to_string(s.block_idx.y) + "," + std::to_string(s.block_idx.z) +
                    "): " + std::to_string(fibers().live) + " of " + std::to_string(threads) +
                    " threads wait; __syncthreads holds " +
                    std::to_string(s.block_barrier.waiters.size());
  for (size_t w = 0; w < s.warp_barriers.size(); ++w)
    if (!s.warp_barriers[w].waiters.empty())
      why += ", warp " + std::to_string(w) + " holds " +
             std::to_string(s.warp_barriers[w].waiters.size()) + " of " +
             std::to_string(s.warp_barriers[w].expected) + " lanes at a shuffle";
  why += " (a barrier or a full-mask shuffle that not every thread reaches)";
  std::fprintf(stderr, "%s\n", why.c_str());
  std::abort();  // fibers hold stack frames mid-kernel: unwinding is not an option
}

void check_launch(dim3 grid, dim3 block, size_t dynamic_shared_bytes) {
  const uint64_t threads = uint64_t(block.x) * block.y * block.z;
  std::string bad;
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || block.x == 0 || block.y == 0 || block.z == 0)
    bad = "a zero grid or block dimension";
  else if (threads > kMaxThreads || block.z > 64)
    bad = std::to_string(threads) + " threads a block";
  else if (grid.y > 65535 || grid.z > 65535 || grid.x > 0x7fffffffu)
    bad = "grid dimensions beyond the limits";
  else if (dynamic_shared_bytes > 48 * 1024)
    bad = std::to_string(dynamic_shared_bytes) + " bytes of dynamic shared memory";
  if (!bad.empty()) throw std::runtime_error("[simulate] invalid kernel launch: " + bad);
}

}  // namespace

BlockState& state() { return g_state; }

void arrive_and_wait(Barrier& b) {
  // The last arriver queues behind the others too, so every phase runs in the launch's order.
  const int t = g_state.current;
  b.waiters.push_back(t);
  if (++b.arrived == b.expected) release(b);
  switch_context(fibers().context[t], fibers().scheduler);
}

void run_grid(dim3 grid, dim3 block, size_t dynamic_shared_bytes, void (*body)(void*), void* arg) {
  check_launch(grid, block, dynamic_shared_bytes);
  // One launch at a time: the scheduler's state is global (host threads must not launch at once).
  static std::atomic<bool> running{false};
  if (running.exchange(true)) {
    std::fprintf(stderr, "[simulate] two kernel launches at once (from two host threads)\n");
    std::abort();
  }
  struct Done {
    ~Done() { running = false; }
  } done;
  Fibers& f = fibers();
  BlockState& s = g_state;
  static const Schedule schedule = [] {
    const char* e = std::getenv("RRT_SIM_SCHEDULE");
    const std::string name = e ? e : "forward";
    if (name == "forward") return Schedule::kForward;
    if (name == "reverse") return Schedule::kReverse;
    if (name == "greedy") return Schedule::kGreedy;
    std::fprintf(stderr, "[simulate] RRT_SIM_SCHEDULE=%s: use forward, reverse or greedy\n", e);
    std::exit(2);
  }();
  const bool reverse = schedule == Schedule::kReverse;
  const unsigned threads = block.x * block.y * block.z;
  const unsigned warps = (threads + 31) / 32;
  s.grid = grid;
  s.block = block;
  s.schedule = schedule;
  s.thread_idx.resize(threads);
  for (unsigned t = 0; t < threads; ++t)
    s.thread_idx[t] = uint3{t % block.x, t / block.x % block.y, t / (block.x * block.y)};
  s.warp_barriers.assign(warps, Barrier{});
  for (unsigned w = 0; w < warps; ++w)
    s.warp_barriers[w].expected = std::min(32u, threads - w * 32);
  s.exchange[0].assign(warps * 32, 0);
  s.exchange[1].assign(warps * 32, 0);
  f.body = body;
  f.arg = arg;
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        s.block_idx = uint3{x, y, z};
        ++s.block_serial;
        s.block_barrier = Barrier{};
        s.block_barrier.expected = threads;
        for (auto& w : s.warp_barriers) w.arrived = 0, w.waiters.clear();
        s.warp_phase.assign(threads, 0);
        // Uninitialised shared memory reads as NaN (0xFF bytes), as the test buffers are poisoned.
        s.dynamic_shared.assign(dynamic_shared_bytes, 0xFF);
        f.live = threads;
        f.ready.clear();
        for (unsigned i = 0; i < threads; ++i) {
          const int t = reverse ? int(threads - 1 - i) : int(i);
          f.done[t] = 0;
          prepare(f.context[t], f.scheduler, f.stack[t]);
          f.ready.push_back(t);
        }
        while (!f.ready.empty()) {
          const int t = f.ready.front();
          f.ready.pop_front();
          s.current = t;
          switch_context(f.scheduler, f.context[t]);
        }
        if (f.live != 0) deadlock(threads);
      }
  s.current = -1;
}

}  // namespace rrt_sim
