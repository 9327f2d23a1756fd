#include "serve/engine_thread.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "data/tokenizer.h"

namespace rrt::serve {

namespace {

double clock_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

TokenLogprob token_logprob(const float* z, int64_t V, int32_t token, int top_n) {
  const float zmax = *std::max_element(z, z + V);
  double sum = 0;
  for (int64_t j = 0; j < V; ++j) sum += std::exp(static_cast<double>(z[j] - zmax));
  const double lse = std::log(sum);
  TokenLogprob out;
  out.logprob = static_cast<double>(z[token] - zmax) - lse;
  if (top_n > 0) {
    std::vector<int32_t> ids(static_cast<size_t>(V));
    std::iota(ids.begin(), ids.end(), 0);
    const int64_t n = std::min<int64_t>(top_n, V);
    std::partial_sort(ids.begin(), ids.begin() + n, ids.end(),
                      [&](int32_t a, int32_t b) { return z[a] > z[b] || (z[a] == z[b] && a < b); });
    for (int64_t i = 0; i < n; ++i)
      out.top.emplace_back(ids[static_cast<size_t>(i)],
                           static_cast<double>(z[ids[static_cast<size_t>(i)]] - zmax) - lse);
  }
  return out;
}

EngineThread::EngineThread(inference::Engine& engine, const inference::GenerateOptions& options,
                           const Tokenizer& tokenizer, ServerMetrics& metrics, int64_t max_queue)
    : engine_(engine),
      options_(options),
      tok_(tokenizer),
      metrics_(metrics),
      max_queue_(max_queue),
      scheduler_(std::make_unique<inference::Scheduler>(engine, options, this)),
      t0_(clock_seconds()) {
  thread_ = std::thread([this] { loop(); });
}

EngineThread::~EngineThread() { stop(); }

double EngineThread::now() const { return clock_seconds() - t0_; }

bool EngineThread::submit(const std::shared_ptr<Group>& group) {
  const int64_t n = static_cast<int64_t>(group->jobs.size());
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stop_ || waiting_ + n > max_queue_) return false;
    waiting_ += n;
    for (size_t i = 0; i < group->jobs.size(); ++i) inbox_.push_back(Ref{group, i});
  }
  cv_.notify_one();
  return true;
}

void EngineThread::cancel(const std::shared_ptr<Group>& group) {
  group->gone = true;
  {
    std::lock_guard<std::mutex> l(mu_);
    cancels_.push_back(group);
  }
  cv_.notify_one();
}

void EngineThread::stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void EngineThread::take_inbox() {
  std::deque<Ref> in;
  std::vector<std::shared_ptr<Group>> cancels;
  {
    std::lock_guard<std::mutex> l(mu_);
    in.swap(inbox_);
    cancels.swap(cancels_);
  }
  for (Ref& r : in) {
    Job& j = r.group->jobs[r.job];
    inference::Request q = j.request;
    q.arrival = 0;  // every submitted request has arrived
    int64_t id = -1;
    try {
      id = scheduler_->submit(std::move(q));
    } catch (const std::exception& e) {  // the HTTP side checks first: a bug, not bad input
      --waiting_;
      std::lock_guard<std::mutex> l(r.group->mu);
      j.error = e.what();
      j.done = true;
      r.group->cv.notify_all();
      continue;
    }
    {
      std::lock_guard<std::mutex> l(r.group->mu);
      j.id = id;
    }
    jobs_.emplace(id, std::move(r));
  }
  for (const std::shared_ptr<Group>& g : cancels)
    for (const Job& j : g->jobs)
      if (j.id >= 0 && jobs_.count(j.id)) scheduler_->cancel(j.id);
}

void EngineThread::fail_all(const std::string& why) {
  for (auto& [id, r] : jobs_) {
    Job& j = r.group->jobs[r.job];
    std::lock_guard<std::mutex> l(r.group->mu);
    if (!j.admitted) --waiting_;
    j.error = why;
    j.done = true;
    r.group->cv.notify_all();
  }
  jobs_.clear();
}

void EngineThread::loop() {
  while (!stop_) {
    take_inbox();
    bool ran = false;
    try {
      ran = scheduler_->step();
    } catch (const std::exception& e) {
      // The engine failed mid-step: its requests cannot go on; the next ones get a fresh
      // scheduler over the same engine.
      std::fprintf(stderr, "rrt serve: engine step failed: %s\n", e.what());
      fail_all(std::string("the engine failed: ") + e.what());
      scheduler_ = std::make_unique<inference::Scheduler>(engine_, options_, this);
    }
    scheduler_->depth_counts(depth_);
    metrics_.set_queue(waiting_, scheduler_->running(), depth_);
    if (ran) continue;
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return stop_ || !inbox_.empty() || !cancels_.empty(); });
  }
  // Shutting down: every request ends now.
  std::vector<int64_t> ids;
  for (const auto& [id, r] : jobs_) ids.push_back(id);
  for (int64_t id : ids) scheduler_->cancel(id);
  std::lock_guard<std::mutex> l(mu_);
  for (Ref& r : inbox_) {
    std::lock_guard<std::mutex> g(r.group->mu);
    r.group->jobs[r.job].error = "the server is shutting down";
    r.group->jobs[r.job].done = true;
    r.group->cv.notify_all();
  }
  inbox_.clear();
}

void EngineThread::admitted(int64_t id) {
  Ref& r = jobs_.at(id);
  --waiting_;
  std::lock_guard<std::mutex> l(r.group->mu);
  r.group->jobs[r.job].admitted = true;
  metrics_.prompt_tokens(static_cast<int64_t>(r.group->jobs[r.job].request.prompt.size()));
}

void EngineThread::prompt_logits(const inference::PromptLogitsEvent& e) {
  Ref& r = jobs_.at(e.id);
  Job& j = r.group->jobs[r.job];
  const std::vector<int32_t>& prompt = j.request.prompt;  // not written after submission
  const int64_t P = static_cast<int64_t>(prompt.size()), V = engine_.vocab();
  std::vector<std::pair<int64_t, TokenLogprob>> rows;
  for (int64_t i = 0; i < e.n && e.first + i + 1 < P; ++i) {
    const int64_t pos = e.first + i + 1;
    rows.emplace_back(pos, token_logprob(e.logits + i * V, V, prompt[static_cast<size_t>(pos)],
                                         std::max(j.top_logprobs, 0)));
  }
  std::lock_guard<std::mutex> l(r.group->mu);
  j.prompt_logprobs.resize(static_cast<size_t>(P));
  for (auto& [pos, lp] : rows) j.prompt_logprobs[static_cast<size_t>(pos)] = std::move(lp);
}

bool EngineThread::token(const inference::TokenEvent& e) {
  Ref& r = jobs_.at(e.id);
  Job& j = r.group->jobs[r.job];
  TokenLogprob lp;
  if (j.top_logprobs >= 0 && e.logits != nullptr)
    lp = token_logprob(e.logits, engine_.vocab(), e.token, j.top_logprobs);
  const double t = now();
  bool go_on = true;
  {
    std::lock_guard<std::mutex> l(r.group->mu);
    metrics_.token(e.index, e.loop, t - (e.index == 0 ? j.received : j.last_token), t);
    j.last_token = t;
    j.tokens.push_back(e.token);
    j.loops.push_back(e.loop);
    if (j.top_logprobs >= 0) j.logprobs.push_back(std::move(lp));
    j.text = tok_.decode(j.tokens);
    size_t cut = std::string::npos;
    for (const std::string& s : j.stop) cut = std::min(cut, j.text.find(s));
    if (cut != std::string::npos) {
      j.text.resize(cut);
      j.finish_reason = "stop";
    }
    go_on = j.finish_reason.empty() && !r.group->gone;
  }
  r.group->cv.notify_all();
  return go_on;
}

void EngineThread::finished(int64_t id, inference::Completion&& c, bool cancelled) {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return;
  Ref r = std::move(it->second);
  jobs_.erase(it);
  Job& j = r.group->jobs[r.job];
  {
    std::lock_guard<std::mutex> l(r.group->mu);
    if (!j.admitted) --waiting_;
    if (cancelled || r.group->gone)
      j.finish_reason = "cancelled";
    else if (j.finish_reason.empty())
      j.finish_reason =
          !c.tokens.empty() && c.tokens.back() == options_.stop_token ? "stop" : "length";
    if (stop_ && cancelled) j.error = "the server is shutting down";
    // Counted before anyone can see the job done: a client that reads /metrics after its
    // answer finds its request there.
    metrics_.request_finished(j.finish_reason);
    j.done = true;
  }
  r.group->cv.notify_all();
}

}  // namespace rrt::serve
