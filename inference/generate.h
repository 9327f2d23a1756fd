// Generation over the engine with three schedulers (docs/method.md §5 and §6), all built on
// the same engine calls so that their throughputs compare fairly:
//   - static batching: up to max_batch requests run until every one of them has finished;
//   - continuous sequence-wise batching: a finished request's slot is refilled after every
//     decoding step;
//   - continuous depth-wise batching: every engine call runs one stage (loop) over up to
//     max_batch work items of any depth (deepest first); an item that exits hands its slot's
//     next token to the pool at once, and a finished request's slot is refilled at once.
// In the first two a decoding step produces one token per sequence: stage 0 over every
// sequence, then stage 1 over those that have not exited, and so on (rows that exit leave the
// batch). Prompts are prefilled through every stage on admission (chunks of max_rows tokens);
// the first token comes from the prefill's final exit.
//
// Exit rules: none (every token runs K loops), oracle (a recorded table: the earliest loop whose
// argmax agreed with the final argmax in a full-depth run with record_oracle; needs that run,
// so it is for measurement), confidence (exit at the first loop whose max softmax probability
// reaches the threshold), saturation (exit at the first loop whose state, through the final norm,
// has a cosine similarity above the threshold with the previous loop's, the embedding's for loop
// 1: the head runs only for the tokens that exit), classifier (exit at the first loop whose
// learned exit classifier, inference/exit_classifier.h, gives a probability of agreeing with the
// full depth that reaches the threshold; its features come from the same decode call as
// saturation's, so again only exiting tokens run the head). The exited token's skipped KV entries
// are filled by KV propagation, by copying its last computed loop, or by recomputing the skipped
// loops later (the token is emitted at once and keeps running as a fill item that writes only KV).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "inference/engine.h"
#include "inference/sampling.h"

namespace rrt::inference {

class ExitClassifier;

enum class ExitRule { none, oracle, confidence, saturation, classifier };
enum class KvFill { propagate, recompute, copy };
enum class Batching { static_batch, sequence_wise, depth_wise };

struct ExitPolicy {
  ExitRule rule = ExitRule::none;
  // confidence; saturation (a cosine similarity, -1..1); classifier (a probability: 0 exits at
  // loop 1, above 1 never early)
  double threshold = 0.9;
  KvFill fill = KvFill::propagate;
  // oracle: per request, the exit loop of each generated token (Completion::oracle_loops of a
  // full-depth run with record_oracle); tokens beyond the table run the full depth.
  const std::vector<std::vector<int32_t>>* oracle_loops = nullptr;
  // 1..K: every token exits at this loop, the prefill's first token too (rrt serve's exit_loop,
  // to score or sample any exit); 0: the rule decides.
  int32_t exit_loop = 0;
  // classifier: the trained exit classifier of this model (the run's: a request's policy uses
  // the run's classifier); must outlive the run.
  const ExitClassifier* classifier = nullptr;
};

struct Request {
  std::vector<int32_t> prompt;
  int64_t max_new_tokens = 16;  // 0: no generation, only the prompt's logits (prompt_logits)
  // Seconds after the run starts at which the request arrives (requests in arrival order); a
  // scheduler admits it only from then on. 0: waiting when the run starts (an offline batch).
  double arrival = 0;
  // Per-request settings (rrt serve's; inference/scheduler.h): unset, the run's GenerateOptions.
  // The KV fill, the oracle table and the exit classifier are always the run's.
  std::optional<ExitPolicy> exit;
  std::optional<SamplingConfig> sampling;
  int64_t stream = -1;         // the counter-based draws' stream; -1: the request's index
  bool token_logits = false;   // token events carry the logits of each token's exit
  bool prompt_logits = false;  // the exit's logits of every prompt position (echo + logprobs)
};

struct GenerateOptions {
  Batching batching = Batching::depth_wise;
  int64_t max_batch = 8;
  ExitPolicy exit;
  SamplingConfig sampling;
  int32_t stop_token = -1;     // a sequence ends when it emits this token (EOS); -1: never
  bool record_oracle = false;  // score every loop end and record the oracle loop (rule none)
};

struct Completion {
  std::vector<int32_t> tokens;        // generated tokens; the first comes from the prefill
  std::vector<int32_t> exit_loops;    // the loop (1..K) each token exited at; the first: K
                                      // (or the exit_loop)
  std::vector<int32_t> oracle_loops;  // with record_oracle: the earliest agreeing loop
  double first_token_seconds = 0;     // since the run started: when the prefill's token came
  double finish_seconds = 0;          // since the run started
  // Latency seen by the request: finish_seconds - arrival; time to first token:
  // first_token_seconds - arrival.
};

enum class CallKind { prefill, decode, head, kv_fill };
struct EngineCall {
  CallKind kind;
  int32_t rows;
  double seconds;
};

struct RunStats {
  double seconds = 0;
  int64_t generated = 0;             // every generated token
  std::vector<int64_t> exit_counts;  // per loop 1..K, over tokens after the first of each
  std::vector<EngineCall> calls;     // every engine call, in order
  int64_t decode_rows = 0;           // item-stages run by decode calls (fill items included)
  double mean_loops() const;         // over the tokens counted in exit_counts
};

// Runs every request to completion (the Scheduler of inference/scheduler.h, fed the requests as
// they arrive). The engine needs slots >= max_batch and max_rows >= max_batch. Completions are in
// request order.
std::vector<Completion> generate(Engine& engine, const std::vector<Request>& requests,
                                 const GenerateOptions& options, RunStats* stats = nullptr);

std::string to_string(Batching b);
std::string to_string(ExitRule r);
std::string to_string(KvFill f);
Batching parse_batching(const std::string& s);
KvFill parse_kv_fill(const std::string& s);

}  // namespace rrt::inference
