// The schedulers over the engine: with exits off, static, sequence-wise and depth-wise batching
// produce exactly the tokens of plain greedy decoding by the full-sequence forward, for requests
// of mixed prompt and output lengths (more requests than slots, so slots are refilled); a
// confidence threshold that never fires changes nothing; the oracle exit replayed with the
// skipped loops recomputed reproduces the full-depth output; exits at a chosen loop with
// recomputation give the tokens of that exit's full-sequence logits; sampling is the same
// whatever the scheduler; the saturation exit runs the head only for the tokens that exit.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "inference/generate.h"
#include "tests/inference/tiny_models.h"

namespace rrt {
namespace {

using namespace inference;

constexpr Batching kBatchings[] = {Batching::static_batch, Batching::sequence_wise,
                                   Batching::depth_wise};

std::vector<Request> mixed_requests(int64_t V) {
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{3, 6},  {7, 4}, {1, 8},
                                                           {12, 3}, {5, 5}, {2, 1}};
  std::vector<Request> out;
  for (size_t r = 0; r < shapes.size(); ++r) {
    Request q;
    for (int64_t t = 0; t < shapes[r].first; ++t)
      q.prompt.push_back(static_cast<int32_t>((t * 11 + static_cast<int64_t>(r) * 5 + 1) % V));
    q.max_new_tokens = shapes[r].second;
    out.push_back(q);
  }
  return out;
}

// Greedy decoding by the full-sequence forward: token i is the argmax of the last row of exit
// loop_of(i) over prompt + the tokens so far (the final loop: plain greedy decoding).
template <typename LoopOf>
std::vector<int32_t> reference_decode(RecursiveModel& m, const Request& q, LoopOf loop_of) {
  std::vector<int32_t> seq = q.prompt, out;
  const int64_t V = m.spec().model.vocab;
  for (int64_t i = 0; i < q.max_new_tokens; ++i) {
    const std::vector<float> logits =
        testing::reference_exit_logits(m, seq, loop_of(static_cast<int64_t>(i)));
    const int32_t tok = testing::argmax_row(logits, static_cast<int64_t>(seq.size()) - 1, V);
    out.push_back(tok);
    seq.push_back(tok);
  }
  return out;
}

class Schedulers : public ::testing::TestWithParam<testing::FamilyCase> {};

TEST_P(Schedulers, ExitsOffGiveExactlyPlainGreedyDecoding) {
  const testing::FamilyCase fc = GetParam();
  const ModelSpec spec = testing::tiny_spec(fc.family, fc.parallel);
  testing::TinyModel tm = testing::make_tiny(spec, 3, 16);
  const std::vector<Request> reqs = mixed_requests(spec.model.vocab);
  const int64_t K = spec.recursion.loops;
  for (Batching b : kBatchings) {
    GenerateOptions o;
    o.batching = b;
    o.max_batch = 3;
    RunStats stats;
    const std::vector<Completion> out = generate(*tm.engine, reqs, o, &stats);
    ASSERT_EQ(out.size(), reqs.size());
    for (size_t r = 0; r < reqs.size(); ++r) {
      const std::vector<int32_t> want =
          reference_decode(*tm.model, reqs[r], [&](int64_t) { return K; });
      EXPECT_EQ(out[r].tokens, want) << to_string(b) << " request " << r;
      for (int32_t loop : out[r].exit_loops) EXPECT_EQ(loop, K);
    }
    EXPECT_DOUBLE_EQ(stats.mean_loops(), static_cast<double>(K));
  }
}

INSTANTIATE_TEST_SUITE_P(Families, Schedulers, ::testing::ValuesIn(testing::kFamilies),
                         [](const auto& info) { return std::string(info.param.name); });

std::vector<std::vector<int32_t>> tokens_of(const std::vector<Completion>& c) {
  std::vector<std::vector<int32_t>> out;
  for (const Completion& x : c) out.push_back(x.tokens);
  return out;
}

TEST(Generate, AThresholdThatNeverFiresGivesTheFullDepthOutput) {
  const ModelSpec spec = testing::tiny_spec(Family::llama, false);
  testing::TinyModel tm = testing::make_tiny(spec, 3, 16);
  const std::vector<Request> reqs = mixed_requests(spec.model.vocab);
  GenerateOptions full;
  full.max_batch = 3;
  const auto want = tokens_of(generate(*tm.engine, reqs, full));
  for (Batching b : kBatchings) {
    GenerateOptions o = full;
    o.batching = b;
    o.exit.rule = ExitRule::confidence;
    o.exit.threshold = 1.5;  // a probability never reaches it
    RunStats stats;
    const auto out = generate(*tm.engine, reqs, o, &stats);
    EXPECT_EQ(tokens_of(out), want) << to_string(b);
    EXPECT_DOUBLE_EQ(stats.mean_loops(), 3.0);
    // A threshold of 0 always fires at the first loop.
    o.exit.threshold = 0.0;
    generate(*tm.engine, reqs, o, &stats);
    EXPECT_DOUBLE_EQ(stats.mean_loops(), 1.0) << to_string(b);
  }
}

int64_t head_rows(const RunStats& st) {
  int64_t n = 0;
  for (const EngineCall& c : st.calls)
    if (c.kind == CallKind::head) n += c.rows;
  return n;
}

// The saturation rule decides without the head: every generated token costs exactly one head row
// (its exit's), where the confidence rule scores every loop end. A similarity above 1 never
// happens (full depth); one above -1 always does (every decoded token exits at loop 1); between
// them every scheduler computes the same tokens.
TEST(Generate, SaturationExitRunsTheHeadOnlyForTheTokensThatExit) {
  const ModelSpec spec = testing::tiny_spec(Family::llama, false);
  testing::TinyModel tm = testing::make_tiny(spec, 3, 16);
  const std::vector<Request> reqs = mixed_requests(spec.model.vocab);
  GenerateOptions full;
  full.max_batch = 3;
  const auto want = tokens_of(generate(*tm.engine, reqs, full));
  for (Batching b : kBatchings) {
    GenerateOptions o = full;
    o.batching = b;
    o.exit.rule = ExitRule::saturation;
    o.exit.threshold = 1.0;
    RunStats stats;
    EXPECT_EQ(tokens_of(generate(*tm.engine, reqs, o, &stats)), want) << to_string(b);
    EXPECT_DOUBLE_EQ(stats.mean_loops(), 3.0) << to_string(b);
    EXPECT_EQ(head_rows(stats), stats.generated) << to_string(b);
    o.exit.threshold = -1.0;
    const auto first = generate(*tm.engine, reqs, o, &stats);
    EXPECT_DOUBLE_EQ(stats.mean_loops(), 1.0) << to_string(b);
    EXPECT_EQ(head_rows(stats), stats.generated) << to_string(b);
    for (const Completion& c : first)
      for (size_t i = 1; i < c.exit_loops.size(); ++i) EXPECT_EQ(c.exit_loops[i], 1);
    // The confidence rule, for contrast, runs the head at every loop end a token reaches.
    o.exit = {.rule = ExitRule::confidence, .threshold = 1.5};
    generate(*tm.engine, reqs, o, &stats);
    EXPECT_GT(head_rows(stats), 2 * stats.generated) << to_string(b);
  }
  // A threshold between: some tokens exit early, some do not, and the schedulers agree.
  double mixed = 2;
  for (double t = 0.99; t > -1 && mixed > 1; t -= 0.01) {
    GenerateOptions o = full;
    o.exit = {.rule = ExitRule::saturation, .threshold = t};
    RunStats stats;
    generate(*tm.engine, reqs, o, &stats);
    if (stats.mean_loops() > 1.2 && stats.mean_loops() < 2.8) mixed = t;
  }
  ASSERT_LE(mixed, 1) << "no threshold mixes the exits: the test would prove nothing";
  std::vector<std::vector<int32_t>> first;
  for (Batching b : kBatchings) {
    GenerateOptions o = full;
    o.batching = b;
    o.exit = {.rule = ExitRule::saturation, .threshold = mixed};
    RunStats stats;
    const auto out = tokens_of(generate(*tm.engine, reqs, o, &stats));
    EXPECT_EQ(head_rows(stats), stats.generated) << to_string(b);
    if (first.empty())
      first = out;
    else
      EXPECT_EQ(out, first) << to_string(b);
  }
}

// The oracle loop of a token is where its argmax first equals the final one, so replaying the
// recorded loops while recomputing the skipped loops' KV gives back the full-depth tokens, in
// fewer loops.
TEST(Generate, OracleExitWithRecomputedKvReproducesTheFullDepthOutput) {
  const ModelSpec spec = testing::tiny_spec(Family::llama, false);
  testing::TinyModel tm = testing::make_tiny(spec, 3, 16);
  const std::vector<Request> reqs = mixed_requests(spec.model.vocab);
  GenerateOptions rec;
  rec.max_batch = 3;
  rec.record_oracle = true;
  RunStats full_stats;
  const std::vector<Completion> full = generate(*tm.engine, reqs, rec, &full_stats);
  std::vector<std::vector<int32_t>> table;
  int64_t early = 0;
  for (const Completion& c : full) {
    table.push_back(c.oracle_loops);
    for (size_t i = 1; i < c.oracle_loops.size(); ++i) early += c.oracle_loops[i] < 3;
  }
  ASSERT_GT(early, 0) << "the random model never agrees early: the test would prove nothing";
  for (Batching b : kBatchings) {
    GenerateOptions o;
    o.batching = b;
    o.max_batch = 3;
    o.exit = {.rule = ExitRule::oracle, .fill = KvFill::recompute, .oracle_loops = &table};
    RunStats stats;
    const auto out = generate(*tm.engine, reqs, o, &stats);
    EXPECT_EQ(tokens_of(out), tokens_of(full)) << to_string(b);
    for (size_t r = 0; r < out.size(); ++r)
      for (size_t i = 1; i < out[r].exit_loops.size(); ++i)
        EXPECT_EQ(out[r].exit_loops[i], table[r][i]);
    EXPECT_LT(stats.mean_loops(), 3.0);
  }
}

// Every token exits at a loop chosen per token index; with the skipped loops recomputed the KV
// is the full-depth KV, so each token is the argmax of that exit's full-sequence logits.
TEST(Generate, RecomputedKvGivesTheChosenExitsOfTheFullForward) {
  const ModelSpec spec = testing::tiny_spec(Family::gemma, false);
  testing::TinyModel tm = testing::make_tiny(spec, 2, 16);
  const std::vector<Request> reqs = mixed_requests(spec.model.vocab);
  auto loop_of = [](int64_t i) { return i == 0 ? int64_t{3} : (i % 3) + 1; };
  std::vector<std::vector<int32_t>> table;
  for (const Request& q : reqs) {
    table.emplace_back();
    for (int64_t i = 0; i < q.max_new_tokens; ++i)
      table.back().push_back(static_cast<int32_t>(loop_of(i)));
  }
  for (Batching b : kBatchings) {
    GenerateOptions o;
    o.batching = b;
    o.max_batch = 2;
    o.exit = {.rule = ExitRule::oracle, .fill = KvFill::recompute, .oracle_loops = &table};
    const auto out = generate(*tm.engine, reqs, o);
    for (size_t r = 0; r < reqs.size(); ++r)
      EXPECT_EQ(out[r].tokens, reference_decode(*tm.model, reqs[r], loop_of))
          << to_string(b) << " request " << r;
  }
}

// Propagated and copied KV differ from the full-depth KV, but every scheduler runs the same
// per-token computation: the schedulers agree with each other exactly.
TEST(Generate, EverySchedulerComputesTheSameTokensWithEachKvFill) {
  const ModelSpec spec = testing::tiny_spec(Family::neox, true);
  testing::TinyModel tm = testing::make_tiny(spec, 3, 16);
  const std::vector<Request> reqs = mixed_requests(spec.model.vocab);
  std::vector<std::vector<int32_t>> table;
  for (const Request& q : reqs) {
    table.emplace_back();
    for (int64_t i = 0; i < q.max_new_tokens; ++i)
      table.back().push_back(static_cast<int32_t>(i % 3 + 1));
  }
  for (KvFill fill : {KvFill::propagate, KvFill::copy}) {
    std::vector<std::vector<int32_t>> first;
    for (Batching b : kBatchings) {
      GenerateOptions o;
      o.batching = b;
      o.max_batch = 3;
      o.exit = {.rule = ExitRule::oracle, .fill = fill, .oracle_loops = &table};
      const auto out = tokens_of(generate(*tm.engine, reqs, o));
      if (first.empty())
        first = out;
      else
        EXPECT_EQ(out, first) << to_string(b) << " with " << to_string(fill);
    }
  }
}

TEST(Generate, SamplingIsTheSameWhateverTheScheduler) {
  const ModelSpec spec = testing::tiny_spec(Family::llama, false);
  testing::TinyModel tm = testing::make_tiny(spec, 3, 16);
  const std::vector<Request> reqs = mixed_requests(spec.model.vocab);
  std::vector<std::vector<int32_t>> first;
  for (Batching b : kBatchings) {
    GenerateOptions o;
    o.batching = b;
    o.max_batch = 3;
    o.sampling = {.temperature = 1.5, .top_p = 0.9, .seed = 11};
    const auto out = tokens_of(generate(*tm.engine, reqs, o));
    if (first.empty())
      first = out;
    else
      EXPECT_EQ(out, first) << to_string(b);
  }
  GenerateOptions greedy, tiny_p;
  greedy.max_batch = tiny_p.max_batch = 3;
  tiny_p.sampling = {.temperature = 1.0, .top_p = 1e-6, .seed = 11};  // only the top token
  EXPECT_EQ(tokens_of(generate(*tm.engine, reqs, tiny_p)),
            tokens_of(generate(*tm.engine, reqs, greedy)));
  EXPECT_NE(first, tokens_of(generate(*tm.engine, reqs, greedy)));
}

// Sequence sharing has no loop ends before the last: a confidence rule that would always fire
// exits nowhere, and every scheduler still decodes plain greedy.
TEST(Generate, SequenceSharingRunsFullDepthWhateverTheRule) {
  ModelSpec spec = testing::tiny_spec(Family::llama, false, 2);
  spec.recursion.sharing = Sharing::sequence;
  testing::TinyModel tm = testing::make_tiny(spec, 2, 16);
  const std::vector<Request> reqs = mixed_requests(spec.model.vocab);
  for (Batching b : kBatchings) {
    GenerateOptions o;
    o.batching = b;
    o.max_batch = 2;
    o.exit = {.rule = ExitRule::confidence, .threshold = 0.0};
    RunStats stats;
    const auto out = generate(*tm.engine, reqs, o, &stats);
    EXPECT_DOUBLE_EQ(stats.mean_loops(), 2.0) << to_string(b);
    for (size_t r = 0; r < reqs.size(); ++r)
      EXPECT_EQ(out[r].tokens, reference_decode(*tm.model, reqs[r], [](int64_t) { return 2; }))
          << to_string(b) << " request " << r;
  }
}

TEST(Generate, RejectsRequestsBeyondTheEngine) {
  const ModelSpec spec = testing::tiny_spec(Family::llama, false);
  testing::TinyModel tm = testing::make_tiny(spec, 2, 16);
  GenerateOptions o;
  o.max_batch = 3;  // more than the engine's 2 slots
  EXPECT_THROW(generate(*tm.engine, mixed_requests(spec.model.vocab), o), Error);
  o.max_batch = 2;
  Request too_long;
  too_long.prompt.assign(40, 1);
  too_long.max_new_tokens = 10;  // 40 + 10 - 1 > max_seq_len 48
  EXPECT_THROW(generate(*tm.engine, {too_long}, o), Error);
  o.exit.rule = ExitRule::oracle;  // without a table
  EXPECT_THROW(generate(*tm.engine, mixed_requests(spec.model.vocab), o), Error);
}

TEST(Generate, StopsAtTheStopToken) {
  const ModelSpec spec = testing::tiny_spec(Family::llama, false);
  testing::TinyModel tm = testing::make_tiny(spec, 3, 16);
  std::vector<Request> reqs = mixed_requests(spec.model.vocab);
  GenerateOptions o;
  o.max_batch = 3;
  const auto full = generate(*tm.engine, reqs, o);
  o.stop_token = full[2].tokens[2];
  const auto stopped = generate(*tm.engine, reqs, o);
  ASSERT_LE(stopped[2].tokens.size(), 3u);
  EXPECT_EQ(stopped[2].tokens.back(), o.stop_token);
}

// Requests that arrive later are admitted only once they are there: each first token comes at
// or after its request's arrival, and the tokens are those of the offline batch (the schedule
// never changes greedy tokens). Arrivals out of order are an error.
TEST(Generate, RequestsAreAdmittedWhenTheyArrive) {
  const ModelSpec spec = testing::tiny_spec(Family::llama, false);
  testing::TinyModel tm = testing::make_tiny(spec, 3, 8);
  const std::vector<Request> offline = mixed_requests(spec.model.vocab);
  std::vector<Request> timed = offline;
  const double arrivals[] = {0.0, 0.0, 0.03, 0.06, 0.06, 0.12};
  for (size_t r = 0; r < timed.size(); ++r) timed[r].arrival = arrivals[r];
  for (Batching b : kBatchings) {
    GenerateOptions o;
    o.batching = b;
    o.max_batch = 3;
    const std::vector<Completion> ref = generate(*tm.engine, offline, o);
    const std::vector<Completion> got = generate(*tm.engine, timed, o);
    for (size_t r = 0; r < timed.size(); ++r) {
      EXPECT_EQ(got[r].tokens, ref[r].tokens) << to_string(b) << " request " << r;
      EXPECT_GE(got[r].first_token_seconds, timed[r].arrival) << to_string(b) << " request " << r;
      EXPECT_GE(got[r].finish_seconds, got[r].first_token_seconds);
    }
    EXPECT_GE(got.back().finish_seconds, 0.12) << to_string(b);
  }
  std::vector<Request> unsorted = timed;
  std::swap(unsorted[2], unsorted[4]);
  unsorted[2].arrival = 0.5;
  EXPECT_THROW(generate(*tm.engine, unsorted, GenerateOptions{}), Error);
}

}  // namespace
}  // namespace rrt
