#include "serve/metrics.h"

#include <algorithm>
#include <cstdio>

namespace rrt::serve {

namespace {

constexpr double kRateWindow = 10.0;  // seconds over which tokens/s is measured

std::string num(double v) {
  char b[64];
  std::snprintf(b, sizeof(b), "%.9g", v);
  return b;
}

void bump(std::vector<std::pair<std::string, int64_t>>& v, const std::string& key) {
  for (auto& [k, n] : v)
    if (k == key) {
      ++n;
      return;
    }
  v.emplace_back(key, 1);
}

void head(std::string& out, const char* name, const char* type, const char* help) {
  out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double v) {
  const size_t b =
      static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  ++counts_[b];
  sum_ += v;
  ++count_;
}

void Histogram::render(const std::string& name, std::string& out) const {
  int64_t cum = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cum += counts_[i];
    out += name + "_bucket{le=\"" + num(bounds_[i]) + "\"} " + std::to_string(cum) + "\n";
  }
  out += name + "_bucket{le=\"+Inf\"} " + std::to_string(count_) + "\n";
  out += name + "_sum " + num(sum_) + "\n" + name + "_count " + std::to_string(count_) + "\n";
}

ServerMetrics::ServerMetrics(int64_t loops)
    : loops_(loops),
      ttft_({0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}),
      per_token_({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}),
      depth_(static_cast<size_t>(loops), 0) {}

void ServerMetrics::request_finished(const std::string& outcome) {
  std::lock_guard<std::mutex> l(mu_);
  bump(finished_, outcome);
}

void ServerMetrics::request_rejected(int status) {
  std::lock_guard<std::mutex> l(mu_);
  bump(rejected_, std::to_string(status));
}

void ServerMetrics::prompt_tokens(int64_t n) {
  std::lock_guard<std::mutex> l(mu_);
  prompt_tokens_ += n;
}

void ServerMetrics::token(int64_t index, int32_t loop, double seconds, double now) {
  std::lock_guard<std::mutex> l(mu_);
  ++tokens_;
  if (index == 0) {
    ttft_.observe(seconds);
  } else {
    per_token_.observe(seconds);
    ++decoded_;
    loop_sum_ += loop;
  }
  // Tokens per 100 ms bucket are enough for the rate; buckets past the window go.
  if (first_token_ < 0) first_token_ = now;
  if (buckets_.empty() || now - buckets_.back().first >= 0.1)
    buckets_.emplace_back(now, 1);
  else
    ++buckets_.back().second;
  while (!buckets_.empty() && now - buckets_.front().first > kRateWindow) buckets_.pop_front();
}

void ServerMetrics::set_queue(int64_t waiting, int64_t running,
                              const std::vector<int64_t>& depth_counts) {
  std::lock_guard<std::mutex> l(mu_);
  waiting_ = waiting;
  running_ = running;
  depth_ = depth_counts;
}

std::string ServerMetrics::render(double now) const {
  std::lock_guard<std::mutex> l(mu_);
  std::string out;
  head(out, "rrt_queue_length", "gauge", "Requests waiting for a slot");
  out += "rrt_queue_length " + std::to_string(waiting_) + "\n";
  head(out, "rrt_running_requests", "gauge", "Requests holding a slot");
  out += "rrt_running_requests " + std::to_string(running_) + "\n";
  head(out, "rrt_running_rows", "gauge",
       "Work items (tokens in flight, KV fill items included) about to run each loop");
  for (size_t s = 0; s < depth_.size(); ++s)
    out += "rrt_running_rows{loop=\"" + std::to_string(s + 1) + "\"} " + std::to_string(depth_[s]) +
           "\n";
  head(out, "rrt_generated_tokens_total", "counter", "Generated tokens");
  out += "rrt_generated_tokens_total " + std::to_string(tokens_) + "\n";
  head(out, "rrt_prompt_tokens_total", "counter", "Prompt tokens prefilled");
  out += "rrt_prompt_tokens_total " + std::to_string(prompt_tokens_) + "\n";
  // The tokens of the last 10 s over 10 s (over the time since the first token, when shorter).
  double rate = 0;
  if (first_token_ >= 0) {
    int64_t recent = 0;
    for (const auto& [t, n] : buckets_)
      if (now - t <= kRateWindow) recent += n;
    const double span = std::min(kRateWindow, std::max(now - first_token_, 1e-3));
    rate = static_cast<double>(recent) / span;
  }
  head(out, "rrt_tokens_per_second", "gauge",
       "Generated tokens per second over the last 10 s (since the first token, if sooner)");
  out += "rrt_tokens_per_second " + num(rate) + "\n";
  head(out, "rrt_mean_loops_per_token", "gauge",
       "Mean loops run per decoded token (after each request's first), since the start");
  out += "rrt_mean_loops_per_token " +
         num(decoded_ > 0 ? static_cast<double>(loop_sum_) / static_cast<double>(decoded_)
                          : static_cast<double>(loops_)) +
         "\n";
  head(out, "rrt_loops", "gauge", "Loops of the served model (K)");
  out += "rrt_loops " + std::to_string(loops_) + "\n";
  head(out, "rrt_time_to_first_token_seconds", "histogram",
       "Seconds from a request's arrival to its first token");
  ttft_.render("rrt_time_to_first_token_seconds", out);
  head(out, "rrt_time_per_output_token_seconds", "histogram",
       "Seconds between a request's successive tokens");
  per_token_.render("rrt_time_per_output_token_seconds", out);
  head(out, "rrt_requests_total", "counter", "Finished completions (one per prompt) by outcome");
  for (const auto& [k, n] : finished_)
    out += "rrt_requests_total{outcome=\"" + k + "\"} " + std::to_string(n) + "\n";
  head(out, "rrt_rejected_requests_total", "counter", "Requests answered with an error status");
  for (const auto& [k, n] : rejected_)
    out += "rrt_rejected_requests_total{status=\"" + k + "\"} " + std::to_string(n) + "\n";
  return out;
}

}  // namespace rrt::serve
