// A scoped-span recorder for profiles in Chrome's trace event format (open the file in
// https://ui.perfetto.dev or chrome://tracing). `rrt train --profile` (log.profile_steps) turns
// it on for a few steps; the trainer marks its phases (data, forward_backward, all-reduce,
// optimizer, evaluation, checkpoint) and any code below it may add its own spans:
//
//   void DecoderLayer::forward(...) {
//     RRT_TRACE_SPAN("layer.forward", position);  // name: a string literal; the arg is optional
//     ...
//   }
//
// Off (the default), a span is one relaxed atomic load in its constructor and a null check in
// its destructor: no clock read, no lock, no allocation, so spans may stay in hot code. On, a
// span reads the steady clock twice and appends one event under a mutex when it ends; spans
// are meant for phases of a step (microseconds and up), not for per-element work.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace rrt::trace {

struct Event {
  const char* name;          // static storage (a literal)
  const char* arg_name;      // null: no argument
  int64_t arg;               // shown under args.<arg_name>
  int64_t begin_ns, dur_ns;  // since start(), steady clock
  int tid;                   // small per-thread number, 0 for the first thread that recorded
};

namespace detail {
extern std::atomic<bool> g_enabled;
int64_t now_ns();
void record(const char* name, const char* arg_name, int64_t arg, int64_t begin_ns);
}  // namespace detail

inline bool enabled() { return detail::g_enabled.load(std::memory_order_relaxed); }

// Clears what was recorded and starts recording; `pid` names the process in the trace (the
// rank). At most `max_events` are kept (later ones are counted as dropped).
void start(int pid = 0, int64_t max_events = 1 << 20);
// Stops recording; what was recorded stays until the next start().
void stop();
std::vector<Event> events();  // a copy, in the order spans ended
int64_t dropped();

// The recorded events as Chrome trace JSON: {"traceEvents": [{"name", "cat": "rrt", "ph": "X",
// "ts", "dur" (microseconds), "pid", "tid", "args"}...], "displayTimeUnit": "ms"}, plus one
// process_name metadata event ("rrt rank <pid>").
std::string chrome_trace_json();
// Writes chrome_trace_json() atomically to `path` (rrt::Error naming it on failure).
void write_chrome_trace(const std::string& path);

class Span {
 public:
  explicit Span(const char* name) : name_(enabled() ? name : nullptr) {
    if (name_) begin_ = detail::now_ns();
  }
  Span(const char* name, const char* arg_name, int64_t arg)
      : name_(enabled() ? name : nullptr), arg_name_(arg_name), arg_(arg) {
    if (name_) begin_ = detail::now_ns();
  }
  Span(const char* name, int64_t index) : Span(name, "index", index) {}
  ~Span() {
    if (name_) detail::record(name_, arg_name_, arg_, begin_);
  }
  Span(const Span&) = delete;
  Span& operator=(const Span&) = delete;

 private:
  const char* name_;
  const char* arg_name_ = nullptr;
  int64_t arg_ = 0;
  int64_t begin_ = 0;
};

}  // namespace rrt::trace

#define RRT_TRACE_CONCAT_INNER(a, b) a##b
#define RRT_TRACE_CONCAT(a, b) RRT_TRACE_CONCAT_INNER(a, b)
// RRT_TRACE_SPAN("name") or RRT_TRACE_SPAN("name", index): a span until the end of the scope.
#define RRT_TRACE_SPAN(...) \
  ::rrt::trace::Span RRT_TRACE_CONCAT(rrt_trace_span_, __LINE__)(__VA_ARGS__)
