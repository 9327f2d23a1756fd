// rrt serve-bench: the throughput of the three schedulers over one engine on a workload of
// requests, per exit setting, with the quality cost of exiting early and the paper-style
// theoretical gain computed from the same run (docs/method.md §6.3, docs/inference.md).
//
// Per exit setting (none, oracle, confidence:t) and scheduler: generated tokens per second
// (median over repeats; repeats interleave every scheduler and setting so load hits them
// alike), request latency p50 / p99 and time to first token p50 / p99 (from each request's
// arrival: all at time 0, an offline batch, or a Poisson process; median over repeats), mean
// loops per decoded token, and agreement = the fraction of generated tokens equal to full-depth
// greedy decoding's token at the same index.
//
// Theory: the block's decode time of each scheduler modelled from this setting's measured exit
// distribution (depth-wise run) and per-call latency c(n) = a + b n (least squares over every
// decode call of the setting), on the workload's own lengths:
//   static / sequence-wise step over n sequences: sum_k a [1 - (1 - S_k)^n] + b n S_k, with
//   S_k = P(loops >= k) (stage k runs unless none of the n sequences needs it, over n S_k rows
//   on average; tokens exit independently);
//   depth-wise: every call runs c(n) over the n sequences in flight, each advancing one loop, a
//   token taking the mean loops m.
// Sequences are admitted as each scheduler admits them. Prefill, exit heads and KV filling are
// left out of the model (they are measured, and shown apart).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "inference/generate.h"

namespace rrt::inference {

struct WorkloadOptions {
  int64_t requests = 32;
  int64_t prompt_min = 16, prompt_max = 64;  // uniform in [min, max]
  int64_t output_min = 16, output_max = 64;
  uint64_t seed = 1;
  // Requests per second of a Poisson arrival process (exponential gaps, seeded); 0: every request
  // waits at time 0 (an offline batch, the paper's setting and the theory's).
  double arrival_rate = 0;
  // Token shards (rrt prepare): prompts are the first tokens of validation-split sequences.
  // "": random token ids.
  std::string data_path;
  double val_fraction = 0.05;
  uint64_t data_seed = 1;
};

struct Workload {
  std::vector<Request> requests;
  std::string description;
};

Workload make_workload(const WorkloadOptions& o, int64_t vocab);

struct ExitSetting {
  ExitRule rule = ExitRule::none;
  double threshold = 0;
  // "drawn": every decoded token's exit loop drawn from these probabilities of loops 1..K
  // (counter-based, per request and token), replayed as the oracle replays its table. It fixes
  // the exit distribution whatever the weights do, so that the schedulers of a model with random
  // weights (a ~1B-shaped benchmark) can be measured at a stated distribution; agreement then
  // shows what exiting there costs.
  std::vector<double> drawn;
  std::string label() const;
};
// "none", "oracle", "confidence:T", "saturation:T", "classifier:T" or "drawn:P1,...,PK" (K
// probabilities summing to 1).
ExitSetting parse_exit_setting(const std::string& s);
// A comma-separated list of them, e.g. "none,oracle,confidence:0.9,drawn:0.5,0.5": numbers after
// a drawn setting are its probabilities.
std::vector<ExitSetting> parse_exit_settings(const std::string& list);

struct BenchOptions {
  std::vector<Batching> schedulers = {Batching::static_batch, Batching::sequence_wise,
                                      Batching::depth_wise};
  std::vector<ExitSetting> exits;
  KvFill fill = KvFill::propagate;
  int64_t max_batch = 8;
  int repeats = 3;
  bool verbose = false;                        // one line per run on stderr
  const ExitClassifier* classifier = nullptr;  // for classifier settings
};

struct SchedulerResult {
  Batching batching = Batching::depth_wise;
  std::vector<double> tokens_per_second;  // per repeat
  double median_tokens_per_second = 0;
  double latency_p50 = 0, latency_p99 = 0;  // seconds from arrival, median over repeats
  double ttft_p50 = 0, ttft_p99 = 0;        // time to first token from arrival, the same
  double mean_loops = 0, agreement = 0;
  double block_seconds = 0;  // decode calls (median over repeats)
  double other_seconds = 0;  // prefill, exit heads and KV filling (median over repeats)
  double theory_block_seconds = 0;
  int64_t tokens = 0;
};

struct ExitResult {
  ExitSetting exit;
  std::vector<int64_t> exit_counts;  // per loop, depth-wise run
  double fit_a = 0, fit_b = 0;       // c(n) = a + b n seconds per decode call
  std::vector<SchedulerResult> schedulers;
};

struct BenchReport {
  std::string workload, kv_fill;
  int64_t max_batch = 0, repeats = 0, loops = 0;
  double load_before = 0, load_after = 0;  // 1-minute load average
  std::vector<int64_t> decode_tokens;      // per request: tokens after the first
  std::vector<ExitResult> results;
};

BenchReport run_serve_bench(Engine& engine, const Workload& w, const BenchOptions& o);
std::string bench_markdown(const BenchReport& r);
std::string bench_json(const BenchReport& r);

// Pieces exposed for tests: nearest-rank percentile, and the modelled block time of a scheduler
// for sequences needing `decode_tokens[i]` decoding steps each.
double percentile(std::vector<double> v, double p);
double modelled_block_seconds(Batching b, const std::vector<int64_t>& decode_tokens,
                              int64_t max_batch, const std::vector<int64_t>& exit_counts, double a,
                              double b_per_row);

}  // namespace rrt::inference
