// Device memory of the kernel simulation: every cudaMalloc'd buffer ends (rounded up to 256
// bytes, as on a GPU) right below a PROT_NONE page, so a kernel that reads or writes past the
// end of a buffer faults at once; the fault handler names the block and thread that did it.
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>

#include "tests/gpu/simulation/sim_scheduler.h"

namespace rrt_sim {
namespace {

constexpr size_t kPage = 4096;
std::map<uintptr_t, std::pair<void*, size_t>> g_mappings;  // buffer -> (mapping, bytes)

void on_fault(int, siginfo_t* info, void*) {
  // Only async-signal-safe calls: format by hand, write(2), _exit.
  char text[256];
  const BlockState& s = state();
  int n;
  if (s.current >= 0) {
    const uint3 t = s.thread_idx[s.current];
    n = std::snprintf(text, sizeof(text),
                      "[simulate] memory fault at %p in block (%u,%u,%u) thread (%u,%u,%u): an "
                      "access past the end of a buffer (at nil: a misaligned 16-byte access), or "
                      "a fiber's stack overflow\n",
                      info->si_addr, s.block_idx.x, s.block_idx.y, s.block_idx.z, t.x, t.y, t.z);
  } else {
    n = std::snprintf(text, sizeof(text), "[simulate] memory fault at %p on the host side\n",
                      info->si_addr);
  }
  if (n > 0) (void)!write(2, text, static_cast<size_t>(n));
  _exit(139);
}

void install_handler_once() {
  static bool done = [] {
    static char alternate[64 << 10];  // the handler must not run on an overflowed fiber stack
    stack_t ss{};
    ss.ss_sp = alternate;
    ss.ss_size = sizeof(alternate);
    sigaltstack(&ss, nullptr);
    struct sigaction sa {};
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigaction(SIGSEGV, &sa, nullptr);
    sigaction(SIGBUS, &sa, nullptr);
    return true;
  }();
  (void)done;
}

}  // namespace

void* device_alloc(size_t bytes) {
  install_handler_once();
  const size_t body = (std::max<size_t>(bytes, 1) + 255) / 256 * 256;
  const size_t span = (body + kPage - 1) / kPage * kPage + kPage;
  void* base = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) return nullptr;
  char* guard = static_cast<char*>(base) + span - kPage;
  mprotect(guard, kPage, PROT_NONE);
  char* p = guard - body;
  g_mappings[reinterpret_cast<uintptr_t>(p)] = {base, span};
  return p;
}

void device_free(void* p) {
  const auto it = g_mappings.find(reinterpret_cast<uintptr_t>(p));
  if (it == g_mappings.end()) return;  // null, or not ours: cudaFree tolerates both
  munmap(it->second.first, it->second.second);
  g_mappings.erase(it);
}

}  // namespace rrt_sim
