// The one thread that drives the engine for rrt serve: HTTP threads hand it groups of jobs (one
// job per prompt of a completion request); it submits them to the Scheduler (inference/
// scheduler.h) as they come, so every step admits the requests that arrived into the running
// batch (continuous batching), and it writes each job's tokens, log-probabilities and text
// where the HTTP thread waits for them. Bounded: a group that does not fit the queue is refused
// (429). A group cancelled (its client gone) frees its slots at the next step.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "inference/scheduler.h"
#include "serve/metrics.h"

namespace rrt {
class Tokenizer;
}

namespace rrt::serve {

// A token's log-probability under its exit's distribution and the top alternatives (most
// likely first, the lowest id on ties).
struct TokenLogprob {
  double logprob = 0;
  std::vector<std::pair<int32_t, double>> top;
};

// log p(token) = z[token] - logsumexp(z), in double over the fp32 logits (as rrt eval's scorer,
// evaluation/multiple_choice.cpp), and the top_n most likely tokens.
TokenLogprob token_logprob(const float* logits, int64_t vocab, int32_t token, int top_n);

struct Job {
  // Set before submission.
  inference::Request request;
  std::vector<std::string> stop;
  int top_logprobs = -1;  // -1: no log-probabilities
  double received = 0;    // EngineThread::now() when the HTTP request came
  // Written by the engine thread under the group's mutex.
  int64_t id = -1;
  bool admitted = false, done = false;
  std::vector<int32_t> tokens, loops;
  std::vector<TokenLogprob> logprobs;         // per generated token (with top_logprobs >= 0)
  std::vector<TokenLogprob> prompt_logprobs;  // per prompt token (echo); [0] has none
  std::string text;                           // the completion's text, cut at a stop sequence
  std::string finish_reason;                  // "length", "stop" or "cancelled"
  std::string error;                          // an engine failure (500)
  double last_token = 0;
};

// One HTTP request's jobs, and what its thread waits on.
struct Group {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Job> jobs;
  std::atomic<bool> gone{false};  // the client went away: stop at the next token
  bool all_done() const {
    for (const Job& j : jobs)
      if (!j.done) return false;
    return true;
  }
};

class EngineThread : public inference::SchedulerObserver {
 public:
  EngineThread(inference::Engine& engine, const inference::GenerateOptions& options,
               const Tokenizer& tokenizer, ServerMetrics& metrics, int64_t max_queue);
  ~EngineThread() override;

  // Queues every job of the group, or none: false when the queue lacks room for them (429) or
  // the thread has stopped.
  bool submit(const std::shared_ptr<Group>& group);
  // Ends the group's jobs that have not finished (the client went away).
  void cancel(const std::shared_ptr<Group>& group);
  // Ends every job (finish_reason "cancelled") and joins the thread.
  void stop();
  bool stopped() const { return stop_; }
  double now() const;
  int64_t waiting() const { return waiting_; }

  // SchedulerObserver (the engine thread).
  void admitted(int64_t id) override;
  void prompt_logits(const inference::PromptLogitsEvent& e) override;
  bool token(const inference::TokenEvent& e) override;
  void finished(int64_t id, inference::Completion&& c, bool cancelled) override;

 private:
  struct Ref {
    std::shared_ptr<Group> group;
    size_t job;
  };
  void loop();
  void take_inbox();
  void fail_all(const std::string& why);

  inference::Engine& engine_;
  inference::GenerateOptions options_;
  const Tokenizer& tok_;
  ServerMetrics& metrics_;
  int64_t max_queue_;
  std::unique_ptr<inference::Scheduler> scheduler_;
  std::unordered_map<int64_t, Ref> jobs_;  // engine thread only
  double t0_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Ref> inbox_;
  std::vector<std::shared_ptr<Group>> cancels_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> waiting_{0};  // jobs queued, not yet holding a slot
  std::vector<int64_t> depth_;
  std::thread thread_;
};

}  // namespace rrt::serve
