#include "inference/generate.h"

#include <chrono>
#include <thread>

#include "inference/scheduler.h"

namespace rrt::inference {

namespace {

// Keeps each request's completion, by id (= request index).
class Collector : public SchedulerObserver {
 public:
  explicit Collector(size_t n) : out(n) {}
  void finished(int64_t id, Completion&& c, bool) override {
    out[static_cast<size_t>(id)] = std::move(c);
  }
  std::vector<Completion> out;
};

}  // namespace

double RunStats::mean_loops() const {
  double sum = 0, count = 0;
  for (size_t k = 0; k < exit_counts.size(); ++k) {
    sum += static_cast<double>(k + 1) * static_cast<double>(exit_counts[k]);
    count += static_cast<double>(exit_counts[k]);
  }
  return count > 0 ? sum / count : 0.0;
}

std::vector<Completion> generate(Engine& engine, const std::vector<Request>& requests,
                                 const GenerateOptions& options, RunStats* stats) {
  Collector done(requests.size());
  Scheduler scheduler(engine, options, &done, stats);
  for (const Request& q : requests) scheduler.submit(q);
  while (scheduler.running() > 0 || scheduler.queued() > 0) {
    if (scheduler.step()) continue;
    // Idle until the next request arrives.
    std::this_thread::sleep_for(
        std::chrono::duration<double>(scheduler.next_arrival() - scheduler.now()));
  }
  if (stats) stats->seconds = scheduler.now();
  return std::move(done.out);
}

}  // namespace rrt::inference
