#include "inference/scheduler.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "inference/exit_classifier.h"

namespace rrt::inference {

namespace {

double clock_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

Scheduler::Scheduler(Engine& engine, const GenerateOptions& o, SchedulerObserver* observer,
                     RunStats* stats)
    : e_(engine),
      o_(o),
      observer_(observer),
      stats_(stats),
      K_(engine.stages()),
      V_(engine.vocab()),
      rows_cap_(engine.capacity().max_rows),
      t0_(clock_seconds()),
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
  RRT_CHECK(o_.exit.rule != ExitRule::classifier || o_.exit.classifier != nullptr, "generate",
            "the classifier exit needs an exit classifier (rrt exit-classifier train; "
            "--exit-classifier FILE)");
  if (const ExitClassifier* c = o_.exit.classifier)
    RRT_CHECK(c->loops() == K_ && c->model.d_model == engine.d_model(), "generate",
              "the exit classifier is for ", c->loops(), " loops of d ", c->model.d_model,
              ", the engine's model has ", K_, " loops of d ", engine.d_model());
  // Per slot: one decode item and at most K - 1 fill items (a fill item stays ahead of its
  // successor and ends at stage K).
  const int64_t n_items = o_.max_batch * (K_ + 1);
  items_.resize(static_cast<size_t>(n_items));
  e_.reserve_states(n_items + rows_cap_);
  for (int64_t i = 0; i < rows_cap_; ++i)
    prefill_states_.push_back(static_cast<int32_t>(n_items + i));
  loop_argmax_.resize(static_cast<size_t>(n_items * K_));
  for (int64_t i = n_items - 1; i >= 0; --i) free_items_.push_back(static_cast<int32_t>(i));
  slots_.resize(static_cast<size_t>(o_.max_batch));
  rows_.resize(static_cast<size_t>(rows_cap_));
  exit_probability_.resize(static_cast<size_t>(rows_cap_));
  list_.reserve(static_cast<size_t>(n_items));
  head_items_.reserve(static_cast<size_t>(n_items));
  head_loops_.resize(static_cast<size_t>(std::max(n_items, rows_cap_)));
  fill_items_.reserve(static_cast<size_t>(n_items));
  emissions_.reserve(static_cast<size_t>(n_items));
  pending_tokens_.reserve(static_cast<size_t>(n_items));
  pending_states_.reserve(static_cast<size_t>(n_items));
  if (stats_) {
    *stats_ = RunStats{};
    stats_->exit_counts.assign(static_cast<size_t>(K_), 0);
  }
}

double Scheduler::now() const { return clock_seconds() - t0_; }

int64_t Scheduler::submit(Request q) {
  const int64_t r = next_id_;
  const EngineCapacity& cap = e_.capacity();
  RRT_CHECK(q.arrival >= 0 && (queue_.empty() || q.arrival >= queue_.back().q.arrival), "generate",
            "request ", r, " arrives at ", q.arrival,
            " s: arrivals must be non-negative and in request order");
  RRT_CHECK(
      !q.prompt.empty() && (q.max_new_tokens >= 1 || (q.max_new_tokens == 0 && q.prompt_logits)),
      "generate", "request ", r,
      " needs a prompt and at least one new token (none only to score the prompt)");
  const int64_t P = static_cast<int64_t>(q.prompt.size());
  RRT_CHECK(P + std::max<int64_t>(q.max_new_tokens, 1) - 1 <= cap.max_seq, "generate", "request ",
            r, ": ", P, " prompt tokens + ", q.max_new_tokens, " new tokens exceed the engine's ",
            cap.max_seq, " tokens per sequence");
  for (int32_t t : q.prompt)
    RRT_CHECK(t >= 0 && t < V_, "generate", "request ", r, " has token ", t,
              " outside the vocabulary of ", V_);
  if (q.exit) {
    const ExitPolicy& x = *q.exit;
    RRT_CHECK(x.exit_loop >= 0 && x.exit_loop <= K_, "generate", "request ", r, ": exit loop ",
              x.exit_loop, " outside 1..", K_);
    RRT_CHECK(x.exit_loop == 0 || x.exit_loop == K_ || e_.exits_before_last(), "generate",
              "request ", r, ": exit loop ", x.exit_loop,
              ": this model's loop ends are not exits (sequence sharing or K = 1); use ", K_);
    RRT_CHECK(x.rule != ExitRule::oracle, "generate", "request ", r,
              ": the oracle exit is the run's (GenerateOptions), not a request's");
    RRT_CHECK(x.rule != ExitRule::classifier || o_.exit.classifier != nullptr, "generate",
              "request ", r,
              ": the classifier exit needs the run's exit classifier (rrt serve "
              "--exit-classifier FILE)");
  }
  const SamplingConfig& s = q.sampling ? *q.sampling : o_.sampling;
  RRT_CHECK(s.temperature >= 0 && s.top_p > 0 && s.top_p <= 1, "generate", "request ", r,
            ": temperature must be >= 0 and top_p in (0, 1], got ", s.temperature, " and ",
            s.top_p);
  queue_.push_back(Queued{r, std::move(q)});
  ++next_id_;
  return r;
}

bool Scheduler::cancel(int64_t id) {
  for (auto it = queue_.begin(); it != queue_.end(); ++it) {
    if (it->id != id) continue;
    queue_.erase(it);
    if (observer_) observer_->finished(id, Completion{}, true);
    return true;
  }
  for (size_t s = 0; s < slots_.size(); ++s)
    if (slots_[s].id == id) {
      finish(static_cast<int32_t>(s), true);
      return true;
    }
  return false;
}

void Scheduler::depth_counts(std::vector<int64_t>& counts) const {
  counts.assign(static_cast<size_t>(K_), 0);
  for (const Item& it : items_)
    if (it.alive && it.stage < K_) ++counts[static_cast<size_t>(it.stage)];
}

template <typename F>
void Scheduler::timed(CallKind kind, int64_t rows, F&& f) {
  const double a = clock_seconds();
  f();
  if (stats_) e_.synchronize();  // a GPU engine queues its work: time what it did
  if (stats_)
    stats_->calls.push_back(EngineCall{kind, static_cast<int32_t>(rows), clock_seconds() - a});
}

int32_t Scheduler::new_item() {
  RRT_CHECK(!free_items_.empty(), "generate", "work item pool exhausted (internal)");
  const int32_t i = free_items_.back();
  free_items_.pop_back();
  items_[i] = Item{};
  items_[i].alive = true;
  return i;
}

void Scheduler::free_item(int32_t i) {
  if (!items_[i].alive) return;
  items_[i].alive = false;
  free_items_.push_back(i);
}

void Scheduler::admit() {
  for (int32_t s = 0; s < o_.max_batch && !queue_.empty(); ++s) {
    if (slots_[s].id >= 0) continue;
    if (queue_.front().q.arrival > now()) break;  // not there yet
    Active& a = slots_[s];
    a = Active{};
    a.id = queue_.front().id;
    a.q = std::move(queue_.front().q);
    queue_.pop_front();
    a.exit = o_.exit;
    if (a.q.exit) {
      a.exit.rule = a.q.exit->rule;
      a.exit.threshold = a.q.exit->threshold;
      a.exit.exit_loop = a.q.exit->exit_loop;
    }
    a.sampling = a.q.sampling ? *a.q.sampling : o_.sampling;
    a.stream = static_cast<uint64_t>(a.q.stream >= 0 ? a.q.stream : a.id);
    a.host_logits = a.sampling.temperature > 0 || a.q.token_logits;
    ++active_;
    if (observer_) observer_->admitted(a.id);
    prefill(s);
  }
}

// Every prompt token through every stage, max_rows tokens at a time (a chunk's attention reads
// the earlier chunks' KV of the same stage); the first token from the last one's exit (the final
// one unless the request fixes its exit loop). With prompt_logits the exit's head runs over every
// prompt row of each chunk.
void Scheduler::prefill(int32_t slot) {
  Active& a = slots_[slot];
  const std::vector<int32_t>& prompt = a.q.prompt;
  const int64_t P = static_cast<int64_t>(prompt.size());
  const int32_t exit = a.exit.exit_loop > 0 ? a.exit.exit_loop : static_cast<int32_t>(K_);
  const bool generates = a.q.max_new_tokens > 0;
  int32_t token = -1;
  for (int64_t c = 0; c < P; c += rows_cap_) {
    const int64_t n = std::min(rows_cap_, P - c);
    const bool last_chunk = c + n == P;
    e_.embed_states(prompt.data() + c, prefill_states_.data(), n);
    for (int64_t s = 0; s < K_; ++s) {
      for (int64_t i = 0; i < n; ++i)
        rows_[i] = StageRow{slot, static_cast<int32_t>(c + i), static_cast<int32_t>(s)};
      timed(CallKind::prefill, n, [&] { e_.run_stage(rows_.data(), prefill_states_.data(), n); });
      if (s + 1 != exit) continue;
      // The exit's head: over every row for the prompt's logits, else the last row's alone.
      const int64_t first = a.q.prompt_logits ? 0 : n - 1;
      const int64_t rows = n - first;
      if (!a.q.prompt_logits && !(last_chunk && generates)) continue;
      const bool host = a.q.prompt_logits || a.host_logits;
      std::fill(head_loops_.begin(), head_loops_.begin() + rows, exit);
      timed(CallKind::head, rows,
            [&] { e_.exit_heads(head_loops_.data(), &prefill_states_[first], rows, host); });
      if (a.q.prompt_logits && observer_)
        observer_->prompt_logits(PromptLogitsEvent{a.id, c, n, exit, e_.head_logits()});
      if (last_chunk && generates) {
        token = choose_token(rows - 1, slot, 0, host);
        if (a.q.token_logits) {
          const float* z = e_.head_logits() + (rows - 1) * V_;
          first_logits_.assign(z, z + V_);
        }
      }
    }
  }
  if (!generates) {
    finish(slot, false);
    return;
  }
  a.out.first_token_seconds = now();
  emit(Emission{slot, token, exit, exit, 0, -1});
}

void Scheduler::emit(const Emission& em) {
  Active& a = slots_[em.slot];
  Completion& c = a.out;
  c.tokens.push_back(em.token);
  c.exit_loops.push_back(em.loop);
  if (o_.record_oracle) c.oracle_loops.push_back(em.oracle);
  if (stats_) {
    ++stats_->generated;
    if (em.index > 0) ++stats_->exit_counts[static_cast<size_t>(em.loop - 1)];
  }
  bool go_on = true;
  if (observer_) {
    const float* z = nullptr;
    if (a.q.token_logits)
      z = em.head_row < 0 ? first_logits_.data() : e_.head_logits() + em.head_row * V_;
    go_on = observer_->token(TokenEvent{a.id, em.index, em.token, em.loop, z});
  }
  if (!go_on || static_cast<int64_t>(c.tokens.size()) >= a.q.max_new_tokens ||
      em.token == o_.stop_token) {
    finish(em.slot, false);
    return;
  }
  const int32_t i = new_item();
  Item& it = items_[i];
  it.slot = em.slot;
  it.pos = static_cast<int32_t>(static_cast<int64_t>(a.q.prompt.size()) + em.index);
  it.token = em.token;
  it.index = em.index + 1;
  pending_tokens_.push_back(it.token);
  pending_states_.push_back(i);
}

void Scheduler::flush_embeds() {
  if (pending_tokens_.empty()) return;
  e_.embed_states(pending_tokens_.data(), pending_states_.data(),
                  static_cast<int64_t>(pending_tokens_.size()));
  pending_tokens_.clear();
  pending_states_.clear();
}

int32_t Scheduler::choose_token(int64_t head_row, int32_t slot, int64_t index, bool host) {
  const Active& a = slots_[slot];
  // Greedy: the engine's argmax (Sampler's, the same ties), whether or not the logits came.
  if (!host || a.sampling.temperature == 0) return e_.head_argmax()[head_row];
  return sampler_.sample(e_.head_logits() + head_row * V_, a.sampling, a.stream,
                         static_cast<uint64_t>(index));
}

// The slot is free again; a fill item still writing its KV would overwrite the next request's,
// and a token not yet embedded would land in a state the next request may take.
void Scheduler::finish(int32_t slot, bool cancelled) {
  Active& a = slots_[slot];
  a.out.finish_seconds = now();
  const int64_t id = a.id;
  a.id = -1;
  --active_;
  for (size_t i = 0; i < items_.size(); ++i) {
    if (!items_[i].alive || items_[i].slot != slot) continue;
    free_item(static_cast<int32_t>(i));
    for (size_t p = pending_states_.size(); p-- > 0;)
      if (pending_states_[p] == static_cast<int32_t>(i)) {
        pending_states_.erase(pending_states_.begin() + static_cast<std::ptrdiff_t>(p));
        pending_tokens_.erase(pending_tokens_.begin() + static_cast<std::ptrdiff_t>(p));
      }
  }
  Completion out = std::move(a.out);
  a.q = Request{};
  if (observer_) observer_->finished(id, std::move(out), cancelled);
}

int32_t Scheduler::oracle_loop(const Item& it) const {
  const auto& table = *o_.exit.oracle_loops;
  const int64_t r = slots_[it.slot].id;
  if (r < static_cast<int64_t>(table.size()) &&
      it.index < static_cast<int64_t>(table[static_cast<size_t>(r)].size()))
    return table[static_cast<size_t>(r)][static_cast<size_t>(it.index)];
  return static_cast<int32_t>(K_);
}

// Whether the item's next stage ends at a loop where the saturation or the classifier rule may
// exit (its decode call then scores every row's similarity and keeps its normed state).
bool Scheduler::wants_saturation(const Item& it) const {
  if (it.fill || it.stage + 1 >= K_ || !e_.exits_before_last()) return false;
  const ExitPolicy& x = slots_[it.slot].exit;
  return x.exit_loop == 0 && (x.rule == ExitRule::saturation || x.rule == ExitRule::classifier);
}

// Whether the item's last loop end (row `row` of the call) needs the head: the final loop
// always, earlier ones when a rule may exit there (or record_oracle scores every loop). The
// saturation rule has decided already: only an exiting row needs the head.
bool Scheduler::wants_logits(const Item& it, int64_t row) const {
  if (it.fill) return false;
  if (it.stage == K_) return true;
  if (!e_.exits_before_last()) return false;
  if (o_.record_oracle) return true;
  const ExitPolicy& x = slots_[it.slot].exit;
  if (x.exit_loop > 0) return it.stage == x.exit_loop;
  switch (x.rule) {
    case ExitRule::none:
      return false;
    case ExitRule::confidence:
      return true;
    case ExitRule::saturation:
      return similarity_ && e_.stage_similarity()[row] > x.threshold;
    case ExitRule::classifier:
      return similarity_ && exit_probability_[static_cast<size_t>(row)] >= x.threshold;
    case ExitRule::oracle:
      return it.stage == oracle_loop(it);
  }
  return false;
}

void Scheduler::run_call(const int32_t* list, int64_t n) {
  flush_embeds();
  for (int64_t i = 0; i < n; ++i) {
    const Item& it = items_[list[i]];
    rows_[i] = StageRow{it.slot, it.pos, it.stage};
  }
  similarity_ = false;
  for (int64_t i = 0; i < n && !similarity_; ++i) similarity_ = wants_saturation(items_[list[i]]);
  if (similarity_)
    timed(CallKind::decode, n, [&] { e_.run_stage_saturation(rows_.data(), list, n); });
  else
    timed(CallKind::decode, n, [&] { e_.run_stage(rows_.data(), list, n); });
  for (int64_t i = 0; i < n; ++i) ++items_[list[i]].stage;  // now the number of loops completed
  if (similarity_) score_classifier(list, n);
  if (stats_) stats_->decode_rows += n;
  after_stage(list, n);
}

// The classifier's probability for the rows of the last decode call whose request exits by it
// (their stage is now the loop that ended; the engine kept each row's normed state and cosine).
void Scheduler::score_classifier(const int32_t* list, int64_t n) {
  const ExitClassifier* c = o_.exit.classifier;
  if (c == nullptr) return;
  const int64_t D = e_.d_model();
  for (int64_t i = 0; i < n; ++i) {
    const Item& it = items_[list[i]];
    double& p = exit_probability_[static_cast<size_t>(i)];
    p = 0;
    if (it.fill || it.stage >= K_ || slots_[it.slot].exit.rule != ExitRule::classifier) continue;
    p = c->probability(it.stage, e_.stage_normed_states() + i * D, e_.stage_similarity()[i]);
  }
}

void Scheduler::after_stage(const int32_t* list, int64_t n) {
  head_items_.clear();
  for (int64_t i = 0; i < n; ++i)
    if (wants_logits(items_[list[i]], i)) head_items_.push_back(list[i]);
  // Sorted by loop: the exits' head adapters run per group.
  std::sort(head_items_.begin(), head_items_.end(),
            [&](int32_t a, int32_t b) { return items_[a].stage < items_[b].stage; });
  // One head call for every row, whatever its loop (the head is shared by the exits); the
  // logits come to the host when a row's request samples or reports them.
  const int64_t H = static_cast<int64_t>(head_items_.size());
  bool host = false;
  for (int64_t i = 0; i < H; ++i) {
    const Item& it = items_[head_items_[i]];
    head_loops_[i] = it.stage;
    host = host || slots_[it.slot].host_logits;
  }
  if (H > 0)
    timed(CallKind::head, H,
          [&] { e_.exit_heads(head_loops_.data(), head_items_.data(), H, host); });
  fill_items_.clear();
  emissions_.clear();
  for (int64_t h = 0; h < H; ++h) {
    const int32_t i = head_items_[h];
    Item& it = items_[i];
    const int32_t k = it.stage;
    const ExitPolicy& x = slots_[it.slot].exit;
    if (o_.record_oracle) loop_argmax_[i * K_ + k - 1] = e_.head_argmax()[h];
    bool exit = k == K_;
    if (!exit && x.exit_loop > 0) exit = k == x.exit_loop;
    if (!exit && x.exit_loop == 0 && x.rule == ExitRule::oracle) exit = k == oracle_loop(it);
    if (!exit && x.exit_loop == 0 && x.rule == ExitRule::confidence)
      exit = e_.head_max_probability()[h] >= x.threshold;
    if (!exit && x.exit_loop == 0 &&
        (x.rule == ExitRule::saturation || x.rule == ExitRule::classifier))
      exit = true;  // only its exiting rows came to the head (wants_logits)
    if (!exit) continue;
    Emission em{it.slot, 0, k, k, it.index, h};
    em.token = choose_token(h, it.slot, it.index, host);
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
void Scheduler::sync_step() {
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
void Scheduler::depth_step() {
  list_.clear();
  for (size_t i = 0; i < items_.size(); ++i)
    if (items_[i].alive) list_.push_back(static_cast<int32_t>(i));
  std::sort(list_.begin(), list_.end(), [&](int32_t a, int32_t b) {
    return items_[a].stage > items_[b].stage || (items_[a].stage == items_[b].stage && a < b);
  });
  run_call(list_.data(), std::min<int64_t>(o_.max_batch, static_cast<int64_t>(list_.size())));
}

bool Scheduler::step() {
  if (o_.batching != Batching::static_batch || active_ == 0) admit();
  if (active_ == 0) return false;
  if (o_.batching == Batching::depth_wise)
    depth_step();
  else
    sync_step();
  return true;
}

}  // namespace rrt::inference
