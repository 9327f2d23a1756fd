#include "core/trace.h"

#include <chrono>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>

#include "core/durable_file.h"
#include "core/error.h"

namespace rrt::trace {

namespace detail {
std::atomic<bool> g_enabled{false};
}  // namespace detail

namespace {

using Clock = std::chrono::steady_clock;

struct Recorder {
  std::mutex mutex;
  std::vector<Event> events;
  Clock::time_point origin = Clock::now();
  int pid = 0;
  int64_t max_events = 0, dropped = 0;
};

Recorder& recorder() {
  static Recorder r;
  return r;
}

std::atomic<int> g_next_tid{0};

int this_tid() {
  thread_local const int tid = g_next_tid.fetch_add(1);
  return tid;
}

}  // namespace

int64_t detail::now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - recorder().origin)
      .count();
}

void detail::record(const char* name, const char* arg_name, int64_t arg, int64_t begin_ns) {
  const int64_t end = now_ns();
  const int tid = this_tid();
  Recorder& r = recorder();
  std::lock_guard lock(r.mutex);
  if (static_cast<int64_t>(r.events.size()) >= r.max_events) {
    ++r.dropped;
    return;
  }
  r.events.push_back({name, arg_name, arg, begin_ns, end - begin_ns, tid});
}

void start(int pid, int64_t max_events) {
  Recorder& r = recorder();
  {
    std::lock_guard lock(r.mutex);
    r.events.clear();
    r.events.reserve(static_cast<size_t>(std::min<int64_t>(max_events, 1 << 16)));
    r.pid = pid;
    r.max_events = max_events;
    r.dropped = 0;
  }
  detail::g_enabled.store(true, std::memory_order_relaxed);
}

void stop() { detail::g_enabled.store(false, std::memory_order_relaxed); }

std::vector<Event> events() {
  Recorder& r = recorder();
  std::lock_guard lock(r.mutex);
  return r.events;
}

int64_t dropped() {
  Recorder& r = recorder();
  std::lock_guard lock(r.mutex);
  return r.dropped;
}

std::string chrome_trace_json() {
  Recorder& r = recorder();
  std::lock_guard lock(r.mutex);
  nlohmann::json list = nlohmann::json::array();
  list.push_back({{"name", "process_name"},
                  {"ph", "M"},
                  {"pid", r.pid},
                  {"tid", 0},
                  {"args", {{"name", "rrt rank " + std::to_string(r.pid)}}}});
  for (const Event& e : r.events) {
    // Microseconds with the nanoseconds kept as decimals: both viewers accept fractional ts.
    nlohmann::json j{{"name", e.name},
                     {"cat", "rrt"},
                     {"ph", "X"},
                     {"ts", static_cast<double>(e.begin_ns) / 1e3},
                     {"dur", static_cast<double>(e.dur_ns) / 1e3},
                     {"pid", r.pid},
                     {"tid", e.tid}};
    if (e.arg_name) j["args"] = {{e.arg_name, e.arg}};
    list.push_back(std::move(j));
  }
  nlohmann::json doc{{"traceEvents", std::move(list)}, {"displayTimeUnit", "ms"}};
  if (r.dropped > 0) doc["otherData"] = {{"dropped_events", r.dropped}};
  return doc.dump();
}

void write_chrome_trace(const std::string& path) {
  const std::string text = chrome_trace_json();
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    RRT_CHECK(out.good(), path, "cannot write the profile trace (is the directory writable?)");
    out << text;
    out.flush();
    RRT_CHECK(out.good(), path, "writing the profile trace failed (disk full?)");
  }
  commit_temporary_file(tmp, path, path);
}

}  // namespace rrt::trace
