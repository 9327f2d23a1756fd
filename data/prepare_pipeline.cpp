#include "data/prepare_pipeline.h"

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

namespace rrt {

struct PreparePipeline::Shared {
  std::mutex mutex;
  std::condition_variable changed;
  std::deque<ProcessedBatch> waiting;      // read, not yet taken by a worker
  std::map<int64_t, ProcessedBatch> done;  // processed, by sequence
  int64_t read = 0;                        // batches read so far
  int64_t taken = 0;                       // batches handed back by next()
  bool reading_done = false, stop = false;
  int64_t window = 0;
  std::vector<std::thread> threads;
};

PreparePipeline::PreparePipeline(InputReader& reader, const std::vector<InputFile>& files,
                                 const std::string& text_field, const Tokenizer& tokenizer,
                                 int threads)
    : reader_(reader),
      files_(files),
      text_field_(text_field),
      tokenizer_(tokenizer),
      threads_(std::max(1, threads)) {
  if (threads_ == 1) return;
  shared_ = std::make_unique<Shared>();
  shared_->window = 2 * threads_ + 2;
  try {
    shared_->threads.emplace_back([this] { read_loop(); });
    for (int t = 0; t < threads_; ++t) shared_->threads.emplace_back([this] { work_loop(); });
  } catch (...) {
    {
      std::lock_guard<std::mutex> lock(shared_->mutex);
      shared_->stop = true;
    }
    shared_->changed.notify_all();
    for (std::thread& thread : shared_->threads) thread.join();
    throw;
  }
}

PreparePipeline::~PreparePipeline() {
  if (!shared_) return;
  {
    std::lock_guard<std::mutex> lock(shared_->mutex);
    shared_->stop = true;
  }
  shared_->changed.notify_all();
  for (std::thread& thread : shared_->threads) thread.join();
}

void PreparePipeline::process(ProcessedBatch& processed) const {
  const std::vector<RawItem>& items = processed.batch.items;
  processed.results.resize(items.size());
  try {
    for (size_t i = 0; i < items.size(); ++i)
      process_item(items[i], files_[static_cast<size_t>(items[i].file)], text_field_, tokenizer_,
                   processed.results[i]);
  } catch (...) {
    processed.error = std::current_exception();
  }
}

void PreparePipeline::read_loop() {
  Shared& s = *shared_;
  while (true) {
    {
      // Wait for room: batches read but not yet handed back stay within the window.
      std::unique_lock<std::mutex> lock(s.mutex);
      s.changed.wait(lock, [&] { return s.stop || s.read - s.taken < s.window; });
      if (s.stop) return;
    }
    ProcessedBatch processed;
    const bool more = reader_.next(processed.batch);  // outside the lock: this is the slow part
    std::lock_guard<std::mutex> lock(s.mutex);
    if (!more) {
      s.reading_done = true;
      s.changed.notify_all();
      return;
    }
    ++s.read;
    s.waiting.push_back(std::move(processed));
    s.changed.notify_all();
  }
}

void PreparePipeline::work_loop() {
  Shared& s = *shared_;
  while (true) {
    ProcessedBatch processed;
    {
      std::unique_lock<std::mutex> lock(s.mutex);
      s.changed.wait(lock, [&] { return s.stop || !s.waiting.empty() || s.reading_done; });
      if (s.stop || s.waiting.empty()) return;
      processed = std::move(s.waiting.front());
      s.waiting.pop_front();
    }
    process(processed);
    std::lock_guard<std::mutex> lock(s.mutex);
    const int64_t sequence = processed.batch.sequence;
    s.done.emplace(sequence, std::move(processed));
    s.changed.notify_all();
  }
}

bool PreparePipeline::next(ProcessedBatch& out) {
  if (!shared_) {
    out = ProcessedBatch{};
    if (!reader_.next(out.batch)) return false;
    process(out);
  } else {
    Shared& s = *shared_;
    std::unique_lock<std::mutex> lock(s.mutex);
    s.changed.wait(
        lock, [&] { return s.done.count(s.taken) > 0 || (s.reading_done && s.taken == s.read); });
    auto it = s.done.find(s.taken);
    if (it == s.done.end()) return false;
    out = std::move(it->second);
    s.done.erase(it);
    ++s.taken;
    s.changed.notify_all();
  }
  if (out.error) std::rethrow_exception(out.error);
  return true;
}

}  // namespace rrt
