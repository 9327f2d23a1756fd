#include "inference/generate.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "core/error.h"

namespace rrt::inference {

namespace {

using Clock = std::chrono::steady_clock;

// A work item: the token at `pos` of the sequence in `slot` on its way through the stages.
// A decode item produces generated token `index` of its request; a fill item (KV recompute)
// only writes the KV of a token that has already exited.
struct Item {
  int32_t slot = -1, req = -1, pos = 0, stage = 0, token = 0;
  int64_t index = 0;
  bool fill = false, alive = false;
};

struct Emission {
  int32_t req, slot, token, loop, oracle;
  int64_t index;
};

class Runner {
 public:
  Runner(Engine& engine, const std::vector<Request>& requests, const GenerateOptions& o,
         RunStats* stats);
  std::vector<Completion> run();

 private:
  double now() const { return std::chrono::duration<double>(Clock::now() - t0_).count(); }
  template <typename F>
  void timed(CallKind kind, int64_t rows, F&& f);
  void admit();
  void prefill(int32_t req, int32_t slot);
  void emit(const Emission& e);
  void finish(int32_t req, int32_t slot);
  int32_t new_item();
  void free_item(int32_t i);
  void run_call(const int32_t* list, int64_t n);
  void after_stage(const int32_t* list, int64_t n);
  bool wants_logits(const Item& it) const;
  int32_t oracle_loop(const Item& it) const;
  void sync_step();
  void depth_step();
  int32_t choose_token(int64_t head_row, int32_t req, int64_t index);
  void flush_embeds();

  Engine& e_;
  const std::vector<Request>& reqs_;
  GenerateOptions o_;
  RunStats* stats_;
  int64_t K_, V_, rows_cap_;
  Clock::time_point t0_;
  Sampler sampler_;
  std::vector<Completion> out_;
  std::vector<int32_t> slot_req_;
  int32_t next_req_ = 0;
  int64_t active_ = 0;
  std::vector<Item> items_;  // item i's residual is the engine's state i
  std::vector<int32_t> free_items_;
  std::vector<int32_t> prefill_states_;  // the states after the items': a prefill chunk's rows
  std::vector<int32_t> loop_argmax_;     // record_oracle: [items, K]
  // Per-call scratch.
  std::vector<StageRow> rows_;
  std::vector<int32_t> list_, head_items_, head_loops_, fill_items_;
  // Tokens emitted since the last engine call, embedded into their items' states before the next.
  std::vector<int32_t> pending_tokens_, pending_states_;
  bool host_logits_ = false;  // sampling needs the logits themselves (greedy: the argmax)
  std::vector<Emission> emissions_;
};

Runner::Runner(Engine& engine, const std::vector<Request>& requests, const GenerateOptions& o,
               RunStats* stats)
    : e_(engine),
      reqs_(requests),
      o_(o),
      stats_(stats),
      K_(engine.stages()),
      V_(engine.vocab()),
      rows_cap_(engine.capacity().max_rows),
      sampler_(engine.vocab()) {
  const EngineCapacity& cap = engine.capacity();
  RRT_CHECK(o_.max_batch >= 1 && o_.max_batch <= cap.slots && o_.max_batch <= cap.max_rows,
            "generate", "max_batch ", o_.max_batch,
            " needs an engine with at least as many slots (", cap.slots, ") and rows per call (",
            cap.max_rows, ")");
  RRT_CHECK(!o_.record_oracle || o_.exit.rule == ExitRule::none, "generate",
            "record_oracle scores every loop of a full-depth run: use exit rule none");
  RRT_CHECK(o_.exit.rule != ExitRule::oracle || o_.exit.oracle_loops != nullptr, "generate",
            "the oracle exit needs the oracle loops of a full-depth run (record_oracle)");
  for (size_t r = 0; r < reqs_.size(); ++r) {
    const Request& q = reqs_[r];
    RRT_CHECK(q.arrival >= 0 && (r == 0 || q.arrival >= reqs_[r - 1].arrival), "generate",
              "request ", r, " arrives at ", q.arrival,
              " s: arrivals must be non-negative and in request order");
    RRT_CHECK(!q.prompt.empty() && q.max_new_tokens >= 1, "generate", "request ", r,
              " needs a prompt and at least one new token");
    RRT_CHECK(static_cast<int64_t>(q.prompt.size()) + q.max_new_tokens - 1 <= cap.max_seq,
              "generate", "request ", r, ": ", q.prompt.size(), " prompt tokens + ",
              q.max_new_tokens, " new tokens exceed the engine's ", cap.max_seq,
              " tokens per sequence");
    for (int32_t t : q.prompt)
      RRT_CHECK(t >= 0 && t < V_, "generate", "request ", r, " has token ", t,
                " outside the vocabulary of ", V_);
  }
  // Per slot: one decode item and at most K - 1 fill items (a fill item stays ahead of its
  // successor and ends at stage K).
  const int64_t n_items = o_.max_batch * (K_ + 1);
  items_.resize(static_cast<size_t>(n_items));
  e_.reserve_states(n_items + rows_cap_);
  for (int64_t i = 0; i < rows_cap_; ++i)
    prefill_states_.push_back(static_cast<int32_t>(n_items + i));
  host_logits_ = o_.sampling.temperature > 0;
  loop_argmax_.resize(static_cast<size_t>(n_items * K_));
  for (int64_t i = n_items - 1; i >= 0; --i) free_items_.push_back(static_cast<int32_t>(i));
  slot_req_.assign(static_cast<size_t>(o_.max_batch), -1);
  rows_.resize(static_cast<size_t>(rows_cap_));
  list_.reserve(static_cast<size_t>(n_items));
  head_items_.reserve(static_cast<size_t>(n_items));
  head_loops_.resize(static_cast<size_t>(n_items));
  fill_items_.reserve(static_cast<size_t>(n_items));
  emissions_.reserve(static_cast<size_t>(n_items));
  pending_tokens_.reserve(static_cast<size_t>(n_items));
  pending_states_.reserve(static_cast<size_t>(n_items));
  out_.resize(reqs_.size());
  if (stats_) {
    *stats_ = RunStats{};
    stats_->exit_counts.assign(static_cast<size_t>(K_), 0);
  }
}

template <typename F>
void Runner::timed(CallKind kind, int64_t rows, F&& f) {
  const Clock::time_point a = Clock::now();
  f();
  if (stats_) e_.synchronize();  // a GPU engine queues its work: time what it did
  if (stats_)
    stats_->calls.push_back(EngineCall{kind, static_cast<int32_t>(rows),
                                       std::chrono::duration<double>(Clock::now() - a).count()});
}

int32_t Runner::new_item() {
  RRT_CHECK(!free_items_.empty(), "generate", "work item pool exhausted (internal)");
  const int32_t i = free_items_.back();
  free_items_.pop_back();
  items_[i] = Item{};
  items_[i].alive = true;
  return i;
}

void Runner::free_item(int32_t i) {
  if (!items_[i].alive) return;
  items_[i].alive = false;
  free_items_.push_back(i);
}

void Runner::admit() {
  for (int32_t s = 0; s < o_.max_batch && next_req_ < static_cast<int32_t>(reqs_.size()); ++s) {
    if (slot_req_[s] >= 0) continue;
    if (reqs_[next_req_].arrival > now()) break;  // not there yet
    const int32_t r = next_req_++;
    slot_req_[s] = r;
    ++active_;
    prefill(r, s);
  }
}

// Every prompt token through every stage, max_rows tokens at a time (a chunk's attention reads
// the earlier chunks' KV of the same stage); the first token from the last one's final exit.
void Runner::prefill(int32_t r, int32_t slot) {
  const std::vector<int32_t>& prompt = reqs_[r].prompt;
  const int64_t P = static_cast<int64_t>(prompt.size());
  int64_t last = 0;
  for (int64_t c = 0; c < P; c += rows_cap_) {
    const int64_t n = std::min(rows_cap_, P - c);
    e_.embed_states(prompt.data() + c, prefill_states_.data(), n);
    for (int64_t s = 0; s < K_; ++s) {
      for (int64_t i = 0; i < n; ++i)
        rows_[i] = StageRow{slot, static_cast<int32_t>(c + i), static_cast<int32_t>(s)};
      timed(CallKind::prefill, n, [&] { e_.run_stage(rows_.data(), prefill_states_.data(), n); });
    }
    last = n - 1;
  }
  const int32_t loop = static_cast<int32_t>(K_);
  timed(CallKind::head, 1, [&] { e_.exit_heads(&loop, &prefill_states_[last], 1, host_logits_); });
  const int32_t token = choose_token(0, r, 0);
  out_[r].first_token_seconds = now();
  emit(Emission{r, slot, token, static_cast<int32_t>(K_), static_cast<int32_t>(K_), 0});
}

void Runner::emit(const Emission& em) {
  Completion& c = out_[em.req];
  c.tokens.push_back(em.token);
  c.exit_loops.push_back(em.loop);
  if (o_.record_oracle) c.oracle_loops.push_back(em.oracle);
  if (stats_) {
    ++stats_->generated;
    if (em.index > 0) ++stats_->exit_counts[static_cast<size_t>(em.loop - 1)];
  }
  const Request& q = reqs_[em.req];
  if (static_cast<int64_t>(c.tokens.size()) >= q.max_new_tokens || em.token == o_.stop_token) {
    finish(em.req, em.slot);
    return;
  }
  const int32_t i = new_item();
  Item& it = items_[i];
  it.slot = em.slot;
  it.req = em.req;
  it.pos = static_cast<int32_t>(static_cast<int64_t>(q.prompt.size()) + em.index);
  it.token = em.token;
  it.index = em.index + 1;
  pending_tokens_.push_back(it.token);
  pending_states_.push_back(i);
}

void Runner::flush_embeds() {
  if (pending_tokens_.empty()) return;
  e_.embed_states(pending_tokens_.data(), pending_states_.data(),
                  static_cast<int64_t>(pending_tokens_.size()));
  pending_tokens_.clear();
  pending_states_.clear();
}

int32_t Runner::choose_token(int64_t head_row, int32_t req, int64_t index) {
  if (!host_logits_) return e_.head_argmax()[head_row];  // greedy: Sampler's argmax, same ties
  return sampler_.sample(e_.head_logits() + head_row * V_, o_.sampling, static_cast<uint64_t>(req),
                         static_cast<uint64_t>(index));
}

// The slot is free again; a fill item still writing its KV would overwrite the next request's.
void Runner::finish(int32_t r, int32_t slot) {
  out_[r].finish_seconds = now();
  slot_req_[slot] = -1;
  --active_;
  for (size_t i = 0; i < items_.size(); ++i)
    if (items_[i].alive && items_[i].slot == slot) free_item(static_cast<int32_t>(i));
}

int32_t Runner::oracle_loop(const Item& it) const {
  const auto& table = *o_.exit.oracle_loops;
  if (it.req < static_cast<int32_t>(table.size()) &&
      it.index < static_cast<int64_t>(table[it.req].size()))
    return table[it.req][it.index];
  return static_cast<int32_t>(K_);
}

// Whether the item's last loop end needs the head: the final loop always, earlier ones when a
// rule may exit there (or record_oracle scores every loop).
bool Runner::wants_logits(const Item& it) const {
  if (it.fill) return false;
  if (it.stage == K_) return true;
  if (!e_.exits_before_last()) return false;
  if (o_.record_oracle) return true;
  switch (o_.exit.rule) {
    case ExitRule::none:
      return false;
    case ExitRule::confidence:
      return true;
    case ExitRule::oracle:
      return it.stage == oracle_loop(it);
  }
  return false;
}

void Runner::run_call(const int32_t* list, int64_t n) {
  flush_embeds();
  for (int64_t i = 0; i < n; ++i) {
    const Item& it = items_[list[i]];
    rows_[i] = StageRow{it.slot, it.pos, it.stage};
  }
  timed(CallKind::decode, n, [&] { e_.run_stage(rows_.data(), list, n); });
  for (int64_t i = 0; i < n; ++i) ++items_[list[i]].stage;  // now the number of loops completed
  if (stats_) stats_->decode_rows += n;
  after_stage(list, n);
}

void Runner::after_stage(const int32_t* list, int64_t n) {
  head_items_.clear();
  for (int64_t i = 0; i < n; ++i)
    if (wants_logits(items_[list[i]])) head_items_.push_back(list[i]);
  // Sorted by loop: the exits' head adapters run per group.
  std::sort(head_items_.begin(), head_items_.end(),
            [&](int32_t a, int32_t b) { return items_[a].stage < items_[b].stage; });
  // One head call for every row, whatever its loop (the head is shared by the exits).
  const int64_t H = static_cast<int64_t>(head_items_.size());
  for (int64_t i = 0; i < H; ++i) head_loops_[i] = items_[head_items_[i]].stage;
  if (H > 0)
    timed(CallKind::head, H,
          [&] { e_.exit_heads(head_loops_.data(), head_items_.data(), H, host_logits_); });
  fill_items_.clear();
  emissions_.clear();
  for (int64_t h = 0; h < H; ++h) {
    const int32_t i = head_items_[h];
    Item& it = items_[i];
    const int32_t k = it.stage;
    if (o_.record_oracle) loop_argmax_[i * K_ + k - 1] = e_.head_argmax()[h];
    bool exit = k == K_;
    if (!exit && o_.exit.rule == ExitRule::oracle) exit = k == oracle_loop(it);
    if (!exit && o_.exit.rule == ExitRule::confidence)
      exit = e_.head_max_probability()[h] >= o_.exit.threshold;
    if (!exit) continue;
    Emission em{it.req, it.slot, 0, k, k, it.index};
    em.token = choose_token(h, it.req, it.index);
    if (o_.record_oracle) {
      const int32_t final_argmax = loop_argmax_[i * K_ + K_ - 1];
      em.oracle = static_cast<int32_t>(K_);
      for (int64_t j = K_; j >= 1; --j)
        if (loop_argmax_[i * K_ + j - 1] == final_argmax) em.oracle = static_cast<int32_t>(j);
    }
    emissions_.push_back(em);
    if (k == K_) {
      free_item(i);
    } else if (o_.exit.fill == KvFill::propagate) {
      fill_items_.push_back(i);
    } else if (o_.exit.fill == KvFill::copy) {
      timed(CallKind::kv_fill, 1, [&] {
        e_.copy_kv(StageRow{it.slot, it.pos, static_cast<int32_t>(k - 1)});
      });
      free_item(i);
    } else {
      it.fill = true;  // keeps running its remaining loops, writing only their KV
    }
  }
  if (!fill_items_.empty()) {
    std::sort(fill_items_.begin(), fill_items_.end(),
              [&](int32_t a, int32_t b) { return items_[a].stage < items_[b].stage; });
    const int64_t F = static_cast<int64_t>(fill_items_.size());
    for (int64_t i = 0; i < F; ++i) {
      const Item& it = items_[fill_items_[i]];
      rows_[i] = StageRow{it.slot, it.pos, it.stage - 1};
    }
    timed(CallKind::kv_fill, F, [&] { e_.propagate_kv(rows_.data(), fill_items_.data(), F); });
    for (int32_t i : fill_items_) free_item(i);
  }
  for (int64_t i = 0; i < n; ++i)
    if (items_[list[i]].alive && items_[list[i]].fill && items_[list[i]].stage == K_)
      free_item(list[i]);
  for (const Emission& em : emissions_) emit(em);
}

// One token per sequence: stage 0 over every item, then stage 1 over those still running, ...
void Runner::sync_step() {
  for (int64_t s = 0; s < K_; ++s) {
    list_.clear();
    for (size_t i = 0; i < items_.size(); ++i)
      if (items_[i].alive && items_[i].stage == s) list_.push_back(static_cast<int32_t>(i));
    if (list_.empty()) break;
    for (size_t a = 0; a < list_.size(); a += static_cast<size_t>(rows_cap_))
      run_call(list_.data() + a,
               std::min<int64_t>(rows_cap_, static_cast<int64_t>(list_.size() - a)));
  }
}

// One engine call over up to max_batch items of any depth, deepest first (a fill item is
// always deeper than its sequence's next token, so it writes the KV that token will read first).
void Runner::depth_step() {
  list_.clear();
  for (size_t i = 0; i < items_.size(); ++i)
    if (items_[i].alive) list_.push_back(static_cast<int32_t>(i));
  std::sort(list_.begin(), list_.end(), [&](int32_t a, int32_t b) {
    return items_[a].stage > items_[b].stage || (items_[a].stage == items_[b].stage && a < b);
  });
  run_call(list_.data(), std::min<int64_t>(o_.max_batch, static_cast<int64_t>(list_.size())));
}

std::vector<Completion> Runner::run() {
  t0_ = Clock::now();
  while (true) {
    if (o_.batching != Batching::static_batch || active_ == 0) admit();
    if (active_ == 0) {
      if (next_req_ == static_cast<int32_t>(reqs_.size())) break;
      // Idle until the next request arrives.
      std::this_thread::sleep_for(std::chrono::duration<double>(reqs_[next_req_].arrival - now()));
      continue;
    }
    if (o_.batching == Batching::depth_wise)
      depth_step();
    else
      sync_step();
  }
  if (stats_) stats_->seconds = now();
  return std::move(out_);
}

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
  Runner runner(engine, requests, options, stats);
  return runner.run();
}

}  // namespace rrt::inference
