// The schedulers as an online loop (docs/inference.md): requests are submitted while others run,
// and each step() admits the ones that have arrived into free slots (continuous batching; static
// batching only when none runs) and runs one step of the chosen scheduler over the engine:
//   - static / sequence-wise: one token for every running sequence (stage 0 over all of them,
//     then stage 1 over those that have not exited, ...);
//   - depth-wise: one engine call over up to max_batch work items of any depth, deepest first.
// generate() (inference/generate.h) feeds a fixed list of requests through it; rrt serve
// (serve/) submits requests as clients send them, on one engine thread.
//
// Per request (Request's optional fields): the exit rule and threshold, a fixed exit loop, the
// sampling settings and stream, whether its token events carry the exit's logits (logprobs),
// and whether the prefill reports the logits of every prompt position (echo + logprobs). The
// observer hears each token as it is emitted and may end its request there (a stop sequence, a
// client gone); cancel() ends a queued or running request between steps. A request's slot is
// free for the next one as soon as it ends.
#pragma once

#include <cstdint>
#include <deque>
#include <limits>
#include <vector>

#include "inference/generate.h"

namespace rrt::inference {

struct TokenEvent {
  int64_t id = 0;     // the request (submit's return value)
  int64_t index = 0;  // generated token index; 0 comes from the prefill
  int32_t token = 0;
  int32_t loop = 0;  // the exit it came from, 1..K
  // With Request::token_logits: the exit's logits [V] (host; valid during the call), else null.
  const float* logits = nullptr;
};

// Rows first .. first + n - 1 of a request's prompt at exit `loop`: logits [n, V] (host; valid
// during the call). Row i predicts prompt token first + i + 1.
struct PromptLogitsEvent {
  int64_t id = 0;
  int64_t first = 0, n = 0;
  int32_t loop = 0;
  const float* logits = nullptr;
};

// Called on the thread that runs step(); must not call back into the scheduler.
class SchedulerObserver {
 public:
  virtual ~SchedulerObserver() = default;
  virtual void admitted(int64_t /*id*/) {}
  virtual void prompt_logits(const PromptLogitsEvent& /*e*/) {}
  // false ends the request after this token (its Completion keeps the token).
  virtual bool token(const TokenEvent& /*e*/) { return true; }
  // Every submitted request ends here exactly once: finished, stopped or cancelled.
  virtual void finished(int64_t /*id*/, Completion&& /*c*/, bool /*cancelled*/) {}
};

class Scheduler {
 public:
  // The engine needs slots >= max_batch and max_rows >= max_batch. stats (optional) records
  // every engine call, timed after a synchronize.
  Scheduler(Engine& engine, const GenerateOptions& options, SchedulerObserver* observer,
            RunStats* stats = nullptr);

  // Queues a request; its id is the number of requests submitted before it. Arrivals (seconds of
  // this scheduler's clock, now()) must not decrease. Throws rrt::Error for an invalid request
  // (nothing is queued): empty prompt, ids outside the vocabulary, more tokens than the engine's
  // max_seq, an exit loop outside 1..K, bad sampling settings.
  int64_t submit(Request q);
  // Ends a queued or running request now (observer: finished, cancelled); false when it is not
  // queued or running. Call between steps.
  bool cancel(int64_t id);
  // Admits the requests that have arrived (static batching: only when none runs), then one step.
  // false: nothing ran (no request running, none arrived).
  bool step();

  double now() const;
  int64_t running() const { return active_; }
  int64_t queued() const { return static_cast<int64_t>(queue_.size()); }
  // The arrival of the next queued request; infinity when none is queued.
  double next_arrival() const {
    return queue_.empty() ? std::numeric_limits<double>::infinity() : queue_.front().q.arrival;
  }
  // counts[s]: work items (decode and recompute fill items) about to run loop s + 1; size K.
  void depth_counts(std::vector<int64_t>& counts) const;
  int64_t stages() const { return K_; }

 private:
  // A work item: the token at `pos` of the sequence in `slot` on its way through the stages.
  // A decode item produces generated token `index` of its request; a fill item (KV recompute)
  // only writes the KV of a token that has already exited.
  struct Item {
    int32_t slot = -1, pos = 0, stage = 0, token = 0;
    int64_t index = 0;
    bool fill = false, alive = false;
  };
  struct Emission {
    int32_t slot, token, loop, oracle;
    int64_t index;
    int64_t head_row;  // its row of the last exit_heads call; -1: first_logits_
  };
  struct Queued {
    int64_t id;
    Request q;
  };
  // A running request, in its slot: the request with its settings resolved.
  struct Active {
    int64_t id = -1;
    Request q;
    ExitPolicy exit;
    SamplingConfig sampling;
    uint64_t stream = 0;
    bool host_logits = false;  // sampling or token_logits: its head rows come to the host
    Completion out;
  };

  template <typename F>
  void timed(CallKind kind, int64_t rows, F&& f);
  void admit();
  void prefill(int32_t slot);
  void emit(const Emission& e);
  void finish(int32_t slot, bool cancelled);
  int32_t new_item();
  void free_item(int32_t i);
  void run_call(const int32_t* list, int64_t n);
  void after_stage(const int32_t* list, int64_t n);
  bool wants_saturation(const Item& it) const;
  void score_classifier(const int32_t* list, int64_t n);
  bool wants_logits(const Item& it, int64_t row) const;
  int32_t oracle_loop(const Item& it) const;
  void sync_step();
  void depth_step();
  int32_t choose_token(int64_t head_row, int32_t slot, int64_t index, bool host);
  void flush_embeds();

  Engine& e_;
  GenerateOptions o_;
  SchedulerObserver* observer_;
  RunStats* stats_;
  int64_t K_, V_, rows_cap_;
  double t0_;
  Sampler sampler_;
  std::deque<Queued> queue_;
  int64_t next_id_ = 0;
  std::vector<Active> slots_;
  int64_t active_ = 0;
  std::vector<Item> items_;  // item i's residual is the engine's state i
  std::vector<int32_t> free_items_;
  std::vector<int32_t> prefill_states_;  // the states after the items': a prefill chunk's rows
  std::vector<int32_t> loop_argmax_;     // record_oracle: [items, K]
  // Per-call scratch.
  std::vector<StageRow> rows_;
  std::vector<int32_t> list_, head_items_, head_loops_, fill_items_;
  bool similarity_ = false;  // the last decode call scored saturation (stage_similarity)
  std::vector<double> exit_probability_;  // the classifier's, per row of the last decode call
  std::vector<float> first_logits_;       // the prefill token's logits, for its token event
  // Tokens emitted since the last engine call, embedded into their items' states before the next.
  std::vector<int32_t> pending_tokens_, pending_states_;
  std::vector<Emission> emissions_;
};

}  // namespace rrt::inference
