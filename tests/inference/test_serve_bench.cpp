// serve-bench's pieces: percentiles, the paper-style model of each scheduler's block time, and a
// whole bench on a tiny model (full depth agrees with itself; the oracle saves loops).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <vector>

#include "inference/serve_bench.h"
#include "tests/inference/tiny_models.h"

namespace rrt {
namespace {

using namespace inference;

TEST(ServeBench, NearestRankPercentiles) {
  std::vector<double> v;
  for (int i = 10; i >= 1; --i) v.push_back(i);
  EXPECT_EQ(percentile(v, 50), 5);
  EXPECT_EQ(percentile(v, 99), 10);
  EXPECT_EQ(percentile(v, 10), 1);
}

// Constant per-call latency (b = 0, the GPU-like regime of the paper): without exits every
// scheduler runs K calls per token-step, so depth-wise equals sequence-wise on equal lengths;
// with half the tokens exiting after loop 1 of 2, a synchronous step still runs loop 2 whenever
// one of its n sequences needs it, 1 + (1 - 0.5^n) calls, against 1.5 loops per token.
TEST(ServeBench, ModelledBlockTimeFollowsTheExitDistribution) {
  const std::vector<int64_t> lengths(40, 50);
  const double a = 1.0;
  const double seq_full =
      modelled_block_seconds(Batching::sequence_wise, lengths, 4, {0, 100}, a, 0.0);
  const double depth_full =
      modelled_block_seconds(Batching::depth_wise, lengths, 4, {0, 100}, a, 0.0);
  EXPECT_NEAR(seq_full, 40.0 * 50 / 4 * 2, 1e-9);
  EXPECT_NEAR(depth_full, seq_full, 1e-9);
  const double seq_half =
      modelled_block_seconds(Batching::sequence_wise, lengths, 4, {50, 50}, a, 0.0);
  const double depth_half =
      modelled_block_seconds(Batching::depth_wise, lengths, 4, {50, 50}, a, 0.0);
  EXPECT_NEAR(seq_half / depth_half, (1.0 + (1.0 - std::pow(0.5, 4))) / 1.5, 1e-2);
  // Static batching waits for the longest of its batch; sequence-wise refills at once.
  const std::vector<int64_t> mixed = {30, 2, 2, 2, 30, 2, 2, 2};
  EXPECT_GT(modelled_block_seconds(Batching::static_batch, mixed, 4, {0, 1}, a, 0.0),
            modelled_block_seconds(Batching::sequence_wise, mixed, 4, {0, 1}, a, 0.0));
  // Per-row cost only (b > 0, a = 0): every row-loop costs the same in every scheduler.
  EXPECT_NEAR(modelled_block_seconds(Batching::sequence_wise, lengths, 4, {50, 50}, 0.0, 1.0),
              modelled_block_seconds(Batching::depth_wise, lengths, 4, {50, 50}, 0.0, 1.0),
              1e-6 * 40 * 50 * 2);
}

// A Poisson arrival process: non-decreasing arrivals with exponential gaps of mean 1 / rate.
TEST(ServeBench, PoissonArrivalsHaveTheStatedRate) {
  WorkloadOptions w;
  w.requests = 400;
  w.arrival_rate = 50;
  const Workload work = make_workload(w, 61);
  double last = 0;
  for (const Request& q : work.requests) {
    EXPECT_GE(q.arrival, last);
    last = q.arrival;
  }
  EXPECT_NEAR(last / 400, 1.0 / 50, 0.2 / 50);  // the mean gap, within 20%
  EXPECT_NE(work.description.find("Poisson arrivals at 50 requests/s"), std::string::npos);
  w.arrival_rate = 0;
  for (const Request& q : make_workload(w, 61).requests) EXPECT_EQ(q.arrival, 0.0);
}

TEST(ServeBench, FullDepthAgreesWithItselfAndTheOracleSavesLoops) {
  const ModelSpec spec = testing::tiny_spec(Family::llama, false);
  testing::TinyModel tm = testing::make_tiny(spec, 3, 16);
  WorkloadOptions w;
  w.requests = 5;
  w.prompt_min = 2;
  w.prompt_max = 6;
  w.output_min = 3;
  w.output_max = 7;
  const Workload work = make_workload(w, spec.model.vocab);
  ASSERT_EQ(work.requests.size(), 5u);
  BenchOptions o;
  o.exits = {parse_exit_setting("none"), parse_exit_setting("oracle")};
  o.fill = KvFill::recompute;
  o.max_batch = 3;
  o.repeats = 2;
  const BenchReport r = run_serve_bench(*tm.engine, work, o);
  ASSERT_EQ(r.results.size(), 2u);
  for (const SchedulerResult& s : r.results[0].schedulers) {
    EXPECT_EQ(s.agreement, 1.0);
    EXPECT_EQ(s.mean_loops, 3.0);
    EXPECT_EQ(s.tokens_per_second.size(), 2u);
    EXPECT_GT(s.median_tokens_per_second, 0);
    EXPECT_GT(s.ttft_p50, 0);
    EXPECT_LE(s.ttft_p50, s.latency_p50);
  }
  for (const SchedulerResult& s : r.results[1].schedulers) {
    EXPECT_EQ(s.agreement, 1.0);  // oracle exits with recomputed KV: the full-depth tokens
    EXPECT_LT(s.mean_loops, 3.0);
  }
  const std::string md = bench_markdown(r);
  EXPECT_NE(md.find("| oracle | depth |"), std::string::npos);
  // Each exit setting's line compares depth-wise batching's measured block time with the model's.
  double static_block = 0, depth_block = 0;
  for (const SchedulerResult& s : r.results[1].schedulers) {
    if (s.batching == Batching::static_batch) static_block = s.block_seconds;
    if (s.batching == Batching::depth_wise) depth_block = s.block_seconds;
  }
  ASSERT_GT(depth_block, 0);
  const size_t line = md.find("- oracle: [");
  ASSERT_NE(line, std::string::npos) << md;
  char want[80];
  std::snprintf(want, sizeof want, "gain over static: %.2fx measured / ",
                static_block / depth_block);
  EXPECT_NE(md.find(want, line), std::string::npos) << md;
  EXPECT_THROW(parse_exit_setting("confidence:2"), Error);
}

// A drawn exit distribution is what the run exits at, whatever the weights: the depth-wise run's
// exit counts follow it (400 tokens, K = 3), every scheduler replays the same table.
TEST(ServeBench, DrawnExitsFollowTheStatedDistribution) {
  const ModelSpec spec = testing::tiny_spec(Family::llama, false);
  testing::TinyModel tm = testing::make_tiny(spec, 4, 16);
  WorkloadOptions w;
  w.requests = 10;
  w.prompt_min = 2;
  w.prompt_max = 4;
  w.output_min = 41;
  w.output_max = 41;
  const Workload work = make_workload(w, spec.model.vocab);
  BenchOptions o;
  o.exits = {parse_exit_setting("drawn:0.5,0.3,0.2")};
  o.max_batch = 4;
  o.repeats = 1;
  const BenchReport r = run_serve_bench(*tm.engine, work, o);
  const std::vector<int64_t>& c = r.results[0].exit_counts;
  ASSERT_EQ(c.size(), 3u);
  const double n = static_cast<double>(c[0] + c[1] + c[2]);
  EXPECT_EQ(n, 400);
  EXPECT_NEAR(c[0] / n, 0.5, 0.08);
  EXPECT_NEAR(c[1] / n, 0.3, 0.08);
  EXPECT_NEAR(c[2] / n, 0.2, 0.08);
  for (const SchedulerResult& s : r.results[0].schedulers)
    EXPECT_NEAR(s.mean_loops, 1.0 * c[0] / n + 2.0 * c[1] / n + 3.0 * c[2] / n, 1e-9);
  EXPECT_EQ(r.results[0].exit.label(), "drawn 0.5/0.3/0.2");
  EXPECT_THROW(parse_exit_setting("drawn:0.5,0.4"), Error);
  const std::vector<ExitSetting> list = parse_exit_settings("none,drawn:0.25,0.75,confidence:0.9");
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[1].label(), "drawn 0.25/0.75");
  EXPECT_EQ(list[2].label(), "confidence 0.9");
  BenchOptions two = o;
  two.exits = {parse_exit_setting("drawn:0.5,0.5")};
  EXPECT_THROW(run_serve_bench(*tm.engine, work, two), Error);  // 2 probabilities, 3 loops
}

// saturation:T is spelled like confidence:T; a similarity never above 1 is full depth (agreeing
// with it exactly), one always above -1 exits every decoded token at loop 1.
TEST(ServeBench, SaturationExitsAtItsExtremes) {
  const ModelSpec spec = testing::tiny_spec(Family::llama, false);
  testing::TinyModel tm = testing::make_tiny(spec, 4, 16);
  WorkloadOptions w;
  w.requests = 6;
  w.prompt_min = 2;
  w.prompt_max = 5;
  w.output_min = 4;
  w.output_max = 9;
  const Workload work = make_workload(w, spec.model.vocab);
  BenchOptions o;
  o.exits = parse_exit_settings("saturation:1,saturation:-1");
  o.max_batch = 4;
  o.repeats = 1;
  const BenchReport r = run_serve_bench(*tm.engine, work, o);
  ASSERT_EQ(r.results.size(), 2u);
  EXPECT_EQ(r.results[0].exit.label(), "saturation 1");
  for (const SchedulerResult& s : r.results[0].schedulers) {
    EXPECT_DOUBLE_EQ(s.mean_loops, 3.0);
    EXPECT_DOUBLE_EQ(s.agreement, 1.0);
  }
  for (const SchedulerResult& s : r.results[1].schedulers) EXPECT_DOUBLE_EQ(s.mean_loops, 1.0);
  EXPECT_THROW(parse_exit_setting("saturation:1.5"), Error);
  EXPECT_THROW(parse_exit_setting("saturation:-2"), Error);
}

}  // namespace
}  // namespace rrt
