#include "trainer/shutdown.h"

#include <pthread.h>
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
std::atomic<bool> g_forward{false};  // StopMode::forward_to_child
std::atomic<int> g_child{0};         // the child the signals go to (forward_to_child)
struct sigaction g_previous[3];

// Async-signal-safe: only write(2) and _exit.
void say(const char* text) {
  const ssize_t ignored = ::write(STDERR_FILENO, text, std::strlen(text));
  (void)ignored;
}

// A number, without snprintf (not async-signal-safe).
void say_number(long n) {
  char buf[24];
  int at = sizeof buf;
  buf[--at] = '\0';
  do {
    buf[--at] = static_cast<char>('0' + n % 10);
    n /= 10;
  } while (n > 0 && at > 0);
  say(buf + at);
}

const char* prefix(int signal) {
  return signal == SIGTERM ? "SIGTERM: " : signal == SIGINT ? "SIGINT: " : "SIGUSR1: ";
}

// forward_to_child. The child is in a process group of its own: only this handler signals it.
void on_stop_signal_forward(int signal) {
  const int child = g_child.load();
  int none = 0;
  if (g_stop_signal.compare_exchange_strong(none, signal)) {
    say("rrt sweep: ");
    say(prefix(signal));
    if (child > 0) {
      ::kill(child, signal);
      say("passed on to the run in training (pid ");
      say_number(child);
      say("), which finishes its step and writes a checkpoint; no further run starts (a second "
          "signal kills it at once)\n");
    } else {
      say("no further run starts (a second signal exits at once)\n");
    }
    return;
  }
  if (child > 0) {
    ::kill(child, SIGKILL);
    say("rrt sweep: second signal: killed the run in training (pid ");
    say_number(child);
    say(") without a checkpoint of its step; exiting now\n");
  } else {
    say("rrt sweep: second signal: exiting now\n");
  }
  ::_exit(128 + signal);
}

void on_stop_signal(int signal) {
  if (g_forward.load()) {
    on_stop_signal_forward(signal);
    return;
  }
  int none = 0;
  if (g_stop_signal.compare_exchange_strong(none, signal)) {
    say("rrt: ");
    say(prefix(signal));
    say("finishing this step, writing a checkpoint, then exiting (a second signal exits at "
        "once, without one)\n");
    return;
  }
  say("rrt: second signal: exiting now, without a checkpoint of this step\n");
  ::_exit(128 + signal);
}

}  // namespace

StopSignals::StopSignals(StopMode mode) {
  RRT_CHECK(!g_installed.exchange(true), "signals", "stop signal handlers installed twice");
  g_stop_signal = 0;
  g_child = 0;
  g_forward = mode == StopMode::forward_to_child;
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
  g_forward = false;
  g_child = 0;
  g_installed = false;
}

bool stop_signals_forwarded() { return g_forward.load(); }

void set_stop_child(int pid) { g_child = pid; }

BlockStopSignals::BlockStopSignals() {
  sigset_t block;
  sigemptyset(&block);
  for (int s : kSignals) sigaddset(&block, s);
  pthread_sigmask(SIG_BLOCK, &block, &old_);
}

BlockStopSignals::~BlockStopSignals() { pthread_sigmask(SIG_SETMASK, &old_, nullptr); }

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
