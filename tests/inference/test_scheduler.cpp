// The Scheduler as rrt serve drives it: requests submitted while others run, cancel() frees a
// slot for the next request, an observer can end a request at a token, a fixed exit loop, and
// the prompt's logits (echo + logprobs) equal the full-sequence forward's at that exit.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <vector>

#include "inference/scheduler.h"
#include "tests/inference/tiny_models.h"

namespace rrt {
namespace {

using namespace inference;

struct Recorder : SchedulerObserver {
  std::map<int64_t, Completion> done;
  std::map<int64_t, bool> cancelled;
  std::map<int64_t, std::vector<float>> prompt;  // [P, V], row i predicts token i + 1
  int64_t stop_at = -1;                          // token() returns false at this index
  int64_t V = 0;
  void prompt_logits(const PromptLogitsEvent& e) override {
    std::vector<float>& p = prompt[e.id];
    p.resize(static_cast<size_t>((e.first + e.n) * V));
    std::copy(e.logits, e.logits + e.n * V, p.begin() + e.first * V);
  }
  bool token(const TokenEvent& e) override { return e.index != stop_at; }
  void finished(int64_t id, Completion&& c, bool was_cancelled) override {
    done[id] = std::move(c);
    cancelled[id] = was_cancelled;
  }
};

std::vector<int32_t> greedy(RecursiveModel& m, std::vector<int32_t> seq, int64_t n, int64_t loop) {
  std::vector<int32_t> out;
  for (int64_t i = 0; i < n; ++i) {
    const std::vector<float> z = testing::reference_exit_logits(m, seq, loop);
    out.push_back(
        testing::argmax_row(z, static_cast<int64_t>(seq.size()) - 1, m.spec().model.vocab));
    seq.push_back(out.back());
  }
  return out;
}

TEST(Scheduler, CancelFreesTheSlotForTheNextRequest) {
  const ModelSpec spec = testing::tiny_spec(Family::llama, false);
  testing::TinyModel tm = testing::make_tiny(spec, 1, 16);
  for (Batching b : {Batching::static_batch, Batching::depth_wise}) {
    GenerateOptions o;
    o.batching = b;
    o.max_batch = 1;
    Recorder rec;
    Scheduler s(*tm.engine, o, &rec);
    const int64_t a = s.submit(Request{.prompt = {1, 2, 3}, .max_new_tokens = 40});
    const int64_t c = s.submit(Request{.prompt = {4, 5}, .max_new_tokens = 5});
    for (int i = 0; i < 6; ++i) ASSERT_TRUE(s.step());
    EXPECT_EQ(s.running(), 1);
    EXPECT_EQ(s.queued(), 1);
    ASSERT_TRUE(s.cancel(a));
    EXPECT_FALSE(s.cancel(a));
    EXPECT_TRUE(rec.cancelled.at(a));
    EXPECT_LT(rec.done.at(a).tokens.size(), 40u);
    EXPECT_EQ(s.running(), 0);
    while (s.running() > 0 || s.queued() > 0) s.step();
    EXPECT_FALSE(rec.cancelled.at(c));
    EXPECT_EQ(rec.done.at(c).tokens, greedy(*tm.model, {4, 5}, 5, 3)) << to_string(b);
  }
}

TEST(Scheduler, AnObserverEndsARequestAtAToken) {
  const ModelSpec spec = testing::tiny_spec(Family::llama, false);
  testing::TinyModel tm = testing::make_tiny(spec, 2, 16);
  GenerateOptions o;
  o.max_batch = 2;
  Recorder rec;
  rec.stop_at = 2;
  Scheduler s(*tm.engine, o, &rec);
  const int64_t a = s.submit(Request{.prompt = {7, 8}, .max_new_tokens = 10});
  while (s.step()) {
  }
  ASSERT_EQ(rec.done.at(a).tokens.size(), 3u);
  EXPECT_FALSE(rec.cancelled.at(a));
  EXPECT_EQ(rec.done.at(a).tokens, greedy(*tm.model, {7, 8}, 3, 3));
}

// Prompts longer than a prefill chunk (max_rows 16), at every exit, scored without generating.
TEST(Scheduler, PromptLogitsAreTheFullSequenceExitLogits) {
  const ModelSpec spec = testing::tiny_spec(Family::llama, false);
  testing::TinyModel tm = testing::make_tiny(spec, 2, 16);
  const int64_t V = spec.model.vocab;
  std::vector<int32_t> prompt;
  for (int i = 0; i < 21; ++i) prompt.push_back((i * 7 + 3) % static_cast<int32_t>(V));
  GenerateOptions o;
  o.max_batch = 2;
  Recorder rec;
  rec.V = V;
  Scheduler s(*tm.engine, o, &rec);
  for (int32_t loop = 1; loop <= 3; ++loop) {
    Request q{.prompt = prompt, .max_new_tokens = loop == 2 ? 4 : 0};
    q.exit = ExitPolicy{.exit_loop = loop};
    q.prompt_logits = true;
    const int64_t id = s.submit(q);
    while (s.running() > 0 || s.queued() > 0) s.step();
    const std::vector<float> want = testing::reference_exit_logits(*tm.model, prompt, loop);
    const std::vector<float>& got = rec.prompt.at(id);
    ASSERT_EQ(got.size(), want.size());
    double scale = 0, err = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      scale = std::max(scale, static_cast<double>(std::abs(want[i])));
      err = std::max(err, static_cast<double>(std::abs(got[i] - want[i])));
    }
    EXPECT_LE(err, 1e-5 * scale) << "loop " << loop;
    if (loop == 2) {
      // The first token comes from exit 2 too (later ones read propagated KV).
      ASSERT_EQ(rec.done.at(id).tokens.size(), 4u);
      EXPECT_EQ(rec.done.at(id).tokens[0], greedy(*tm.model, prompt, 1, 2)[0]);
      for (int32_t l : rec.done.at(id).exit_loops) EXPECT_EQ(l, 2);
    } else {
      EXPECT_TRUE(rec.done.at(id).tokens.empty());
    }
  }
}

TEST(Scheduler, RefusesWhatItCannotServe) {
  const ModelSpec spec = testing::tiny_spec(Family::llama, false);
  testing::TinyModel tm = testing::make_tiny(spec, 2, 16);
  GenerateOptions o;
  o.max_batch = 2;
  Scheduler s(*tm.engine, o, nullptr);
  EXPECT_THROW(s.submit(Request{.prompt = {}, .max_new_tokens = 3}), Error);
  EXPECT_THROW(s.submit(Request{.prompt = {1}, .max_new_tokens = 0}), Error);
  EXPECT_THROW(s.submit(Request{.prompt = {1, 99}, .max_new_tokens = 3}), Error);
  EXPECT_THROW(s.submit(Request{.prompt = {1}, .max_new_tokens = 100}), Error);
  Request bad_loop{.prompt = {1}, .max_new_tokens = 2};
  bad_loop.exit = ExitPolicy{.exit_loop = 4};
  EXPECT_THROW(s.submit(bad_loop), Error);
  EXPECT_EQ(s.queued(), 0);
}

}  // namespace
}  // namespace rrt
