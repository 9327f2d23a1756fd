// Progress lines on stderr for work that runs for minutes (conversion, serve-bench repeats,
// sweep preparation): stdout stays what scripts parse, stderr tells the person waiting how far
// the work is and how long the rest will take.
//
//   ProgressMeter meter("serve-bench", 12);  // "serve-bench: 3/12, 41.2 s, ETA 2 min 03 s"
//   for (...) { ...; meter.step(i + 1); }    // step(i + 1, "layer 3"): "3/12 (layer 3), ..."
//   Heartbeat beat("convert: SVD");          // "convert: SVD: still working, 30 s" until destroyed
//
// Lines come at most every RRT_PROGRESS_SECONDS seconds (default 10; 0: every step), so short
// work prints nothing extra.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

namespace rrt {

using ProgressClock = std::chrono::steady_clock;

inline double seconds_since(ProgressClock::time_point t0) {
  return std::chrono::duration<double>(ProgressClock::now() - t0).count();
}

// "8.4 s", "5 min 03 s", "2 h 07 min": what a person reads, not what a script parses.
inline std::string format_duration(double s) {
  char buf[48];
  if (s < 0) s = 0;
  if (s < 60)
    std::snprintf(buf, sizeof(buf), "%.1f s", s);
  else if (s < 3600)
    std::snprintf(buf, sizeof(buf), "%d min %02d s", static_cast<int>(s) / 60,
                  static_cast<int>(s) % 60);
  else
    std::snprintf(buf, sizeof(buf), "%d h %02d min", static_cast<int>(s) / 3600,
                  static_cast<int>(s) % 3600 / 60);
  return buf;
}

// The interval between progress lines: RRT_PROGRESS_SECONDS (seconds, >= 0) or `fallback`.
inline double progress_interval(double fallback = 10.0) {
  const char* env = std::getenv("RRT_PROGRESS_SECONDS");
  if (env == nullptr || *env == '\0') return fallback;
  char* end = nullptr;
  const double v = std::strtod(env, &end);
  return (end != env && *end == '\0' && v >= 0) ? v : fallback;
}

// Counts steps of a loop of known length; step() prints "what: i/n, elapsed, ETA" when the
// interval has passed since the last line (the ETA assumes the remaining steps cost the mean
// of the finished ones).
class ProgressMeter {
 public:
  ProgressMeter(std::string what, int64_t total, double interval_s = progress_interval())
      : what_(std::move(what)), total_(total), interval_(interval_s) {}

  // detail, when given, names the step just finished: "what: i/n (detail), elapsed, ETA".
  void step(int64_t done, const std::string& detail = {}) {
    const double t = seconds_since(start_);
    if (interval_ > 0 && t - last_ < interval_) return;
    last_ = t;
    const double eta =
        done > 0 ? t / static_cast<double>(done) * static_cast<double>(total_ - done) : 0.0;
    std::fprintf(stderr, "%s: %lld/%lld%s%s%s, %s, ETA %s\n", what_.c_str(),
                 static_cast<long long>(done), static_cast<long long>(total_),
                 detail.empty() ? "" : " (", detail.c_str(), detail.empty() ? "" : ")",
                 format_duration(t).c_str(), format_duration(eta).c_str());
    std::fflush(stderr);
  }
  double elapsed() const { return seconds_since(start_); }

 private:
  std::string what_;
  int64_t total_;
  double interval_;
  double last_ = 0;
  ProgressClock::time_point start_ = ProgressClock::now();
};

// For a stage that is one opaque call (a library's SVD, a file read): a thread that prints
// "what: still working, N s" every interval until the Heartbeat is destroyed. Never at
// interval 0 (that would spin): a heartbeat says only that the work is alive.
class Heartbeat {
 public:
  explicit Heartbeat(std::string what, double interval_s = progress_interval())
      : what_(std::move(what)), interval_(interval_s) {
    if (interval_ <= 0) return;
    thread_ = std::thread([this] {
      std::unique_lock<std::mutex> lock(mutex_);
      const auto period = std::chrono::duration<double>(interval_);
      while (!cv_.wait_for(lock, period, [this] { return stop_; })) {
        std::fprintf(stderr, "%s: still working, %s\n", what_.c_str(),
                     format_duration(seconds_since(start_)).c_str());
        std::fflush(stderr);
      }
    });
  }
  ~Heartbeat() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;

 private:
  std::string what_;
  double interval_;
  ProgressClock::time_point start_ = ProgressClock::now();
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace rrt
