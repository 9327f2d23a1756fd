#include "core/test_signal.h"

#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"

namespace rrt {

namespace {

struct Entry {
  int signal = 0;
  std::string point, value;
  int rank = -1;  // -1: any
  enum class Target { self, parent, parent_wait, group, group_wait } target = Target::self;
  bool fired = false;
};

int parse_signal(const std::string& name, const std::string& spec) {
  if (name == "TERM") return SIGTERM;
  if (name == "INT") return SIGINT;
  if (name == "USR1") return SIGUSR1;
  RRT_FAIL("RRT_TEST_SIGNAL", "unknown signal '", name, "' in '", spec, "'; use TERM, INT or USR1");
}

std::vector<Entry> parse(const char* env) {
  std::vector<Entry> out;
  std::stringstream all(env);
  std::string spec;
  while (std::getline(all, spec, ',')) {
    std::vector<std::string> parts;
    std::stringstream fields(spec);
    for (std::string part; std::getline(fields, part, ':');) parts.push_back(part);
    RRT_CHECK(parts.size() == 3 || parts.size() == 4, "RRT_TEST_SIGNAL", "entry '", spec,
              "' is not SIGNAL:POINT:VALUE[:RANK|parent|parent-wait|group|group-wait]");
    Entry e{.signal = parse_signal(parts[0], spec), .point = parts[1], .value = parts[2]};
    if (parts.size() == 4 && parts[3] == "parent")
      e.target = Entry::Target::parent;
    else if (parts.size() == 4 && parts[3] == "parent-wait")
      e.target = Entry::Target::parent_wait;
    else if (parts.size() == 4 && parts[3] == "group")
      e.target = Entry::Target::group;
    else if (parts.size() == 4 && parts[3] == "group-wait")
      e.target = Entry::Target::group_wait;
    else if (parts.size() == 4)
      e.rank = std::stoi(parts[3]);
    out.push_back(e);
  }
  return out;
}

const char* hook() {
  static const char* env = std::getenv("RRT_TEST_SIGNAL");
  return env != nullptr && *env != '\0' ? env : nullptr;
}

}  // namespace

void test_signal_point(std::string_view point, int64_t value, int rank, bool (*stopped)()) {
  if (hook() != nullptr) test_signal_point(point, std::to_string(value), rank, stopped);
}

void test_signal_point(std::string_view point, std::string_view value, int rank,
                       bool (*stopped)()) {
  if (hook() == nullptr) return;
  static std::vector<Entry> entries = parse(hook());
  static std::mutex mutex;
  int signal = 0;
  Entry::Target target = Entry::Target::self;
  {
    const std::lock_guard<std::mutex> lock(mutex);
    for (Entry& e : entries) {
      if (e.fired || e.point != point || e.value != value) continue;
      if (e.rank >= 0 && e.rank != rank) continue;
      e.fired = true;
      signal = e.signal;
      target = e.target;
      break;
    }
  }
  if (signal != 0 && target == Entry::Target::self) std::raise(signal);
  if (signal != 0 && target == Entry::Target::parent) ::kill(::getppid(), signal);
  if (signal != 0 && target == Entry::Target::group) ::kill(-::getpgid(::getppid()), signal);
  if (signal != 0 && target == Entry::Target::group_wait) {
    RRT_CHECK(stopped != nullptr, "RRT_TEST_SIGNAL", "group-wait at point '", point,
              "', which cannot tell when its process was stopped");
    ::kill(-::getpgid(::getppid()), signal);
    // Without the wait the run could train on to its last step before a parent the scheduler
    // has not run yet passes the signal on (the test then sees a finished run, not a stop).
    for (int i = 0; i < 60000 && !stopped(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (signal != 0 && target == Entry::Target::parent_wait) {
    ::kill(::getppid(), signal);
    // Without the wait this process could finish and exit before a parent the scheduler has not
    // run yet gets to kill it (the test then sees a clean stop instead of a kill).
    for (int i = 0; i < 6000; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // A second matching entry: a second signal at the same point.
  if (signal != 0) test_signal_point(point, value, rank, stopped);
}

}  // namespace rrt
