#include "trainer/shutdown.h"

#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>

#include "core/error.h"
#include "distributed/communicator.h"

namespace rrt {

namespace {

constexpr int kSignals[] = {SIGTERM, SIGINT, SIGUSR1};

// Written by the handler, read by the loop. A lock-free atomic is async-signal-safe.
std::atomic<int> g_stop_signal{0};
static_assert(std::atomic<int>::is_always_lock_free);
std::atomic<bool> g_installed{false};
struct sigaction g_previous[3];

// Async-signal-safe: only write(2) and _exit.
void say(const char* text) {
  const ssize_t ignored = ::write(STDERR_FILENO, text, std::strlen(text));
  (void)ignored;
}

void on_stop_signal(int signal) {
  int none = 0;
  if (g_stop_signal.compare_exchange_strong(none, signal)) {
    say(signal == SIGTERM  ? "rrt: SIGTERM: "
        : signal == SIGINT ? "rrt: SIGINT: "
                           : "rrt: SIGUSR1: ");
    say("finishing this step, writing a checkpoint, then exiting (a second signal exits at "
        "once, without one)\n");
    return;
  }
  say("rrt: second signal: exiting now, without a checkpoint of this step\n");
  ::_exit(128 + signal);
}

}  // namespace

StopSignals::StopSignals() {
  RRT_CHECK(!g_installed.exchange(true), "signals", "stop signal handlers installed twice");
  g_stop_signal = 0;
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  // Interrupted reads and writes (a checkpoint, a shard) resume where they were.
  action.sa_flags = SA_RESTART;
  sigemptyset(&action.sa_mask);
  for (int s : kSignals) sigaddset(&action.sa_mask, s);  // one handler at a time
  for (int i = 0; i < 3; ++i) sigaction(kSignals[i], &action, &g_previous[i]);
}

StopSignals::~StopSignals() {
  for (int i = 0; i < 3; ++i) sigaction(kSignals[i], &g_previous[i], nullptr);
  g_stop_signal = 0;  // a later run without handlers must not see it
  g_installed = false;
}

int stop_signal() { return g_stop_signal.load(std::memory_order_relaxed); }

bool any_rank_stopping(Communicator& world) {
  double flag = stop_signal() != 0 ? 1.0 : 0.0;
  world.all_reduce_sum(&flag, 1);
  return flag > 0;
}

const char* signal_name(int signal) {
  switch (signal) {
    case SIGTERM:
      return "SIGTERM";
    case SIGINT:
      return "SIGINT";
    case SIGUSR1:
      return "SIGUSR1";
    default: {
      static thread_local char buf[24];
      std::snprintf(buf, sizeof(buf), "signal %d", signal);
      return buf;
    }
  }
}

}  // namespace rrt
