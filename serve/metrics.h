// What GET /metrics reports, in Prometheus's text format (docs/inference.md "rrt serve"): the
// queue, the running work items per loop depth, tokens and their rate, the mean loops per
// token, time to first token and per-token latency histograms, requests by outcome. The engine
// thread records; HTTP threads render. Thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace rrt::serve {

// A cumulative Prometheus histogram over fixed upper bounds (seconds).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double v);
  // The series "<name>_bucket{le=...}", "<name>_sum", "<name>_count".
  void render(const std::string& name, std::string& out) const;
  int64_t count() const { return count_; }

 private:
  std::vector<double> bounds_;
  std::vector<int64_t> counts_;  // per bound, not cumulative; the last: above every bound
  double sum_ = 0;
  int64_t count_ = 0;
};

class ServerMetrics {
 public:
  explicit ServerMetrics(int64_t loops);

  void request_finished(const std::string& outcome);  // "ok", "stopped", "cancelled", ...
  void request_rejected(int status);                  // a 4xx / 5xx answer
  void prompt_tokens(int64_t n);
  // A generated token: its exit loop (index 0, the prefill's, does not count for the mean
  // loops), and the seconds since the request arrived (index 0) or since its previous token.
  void token(int64_t index, int32_t loop, double seconds, double now);
  void set_queue(int64_t waiting, int64_t running, const std::vector<int64_t>& depth_counts);

  std::string render(double now) const;

 private:
  mutable std::mutex mu_;
  int64_t loops_;
  Histogram ttft_, per_token_;
  int64_t tokens_ = 0, prompt_tokens_ = 0, decoded_ = 0, loop_sum_ = 0;
  int64_t waiting_ = 0, running_ = 0;
  std::vector<int64_t> depth_;
  std::vector<std::pair<std::string, int64_t>> finished_, rejected_;
  std::deque<std::pair<double, int64_t>> buckets_;  // (start, tokens), 100 ms each: tokens/s
  double first_token_ = -1;
};

}  // namespace rrt::serve
