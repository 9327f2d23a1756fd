// Multiple-choice scoring by log-likelihood at every exit, the form of the paper's few-shot tasks
// (docs/evaluation.md). A task is a JSONL file, one example per line:
//
//   {"context": "The capital of France is", "choices": [" Paris", " Rome"], "label": 0}
//
// Each choice is scored as a continuation of the context, as lm-evaluation-harness does: the
// context's trailing whitespace moves to the front of the choice, the whole text
// (context + choice) is tokenised once, and the continuation is what follows the tokens of the
// context alone; an EOS token (the shards' document boundary) comes first. The score of a choice
// at exit k is the sum of log p_k(token) over its continuation tokens. Per exit:
//   acc      = fraction of examples whose highest-scoring choice is the label;
//   acc_norm = the same with each score divided by the choice's length in UTF-8 bytes (the
//              choice as written in the file; lm-evaluation-harness counts characters, the same
//              for ASCII text).
// Ties go to the first choice. Sequences longer than the model's capacity keep their last tokens.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rrt {

class RecursiveModel;
class ExitModel;
class Tokenizer;

struct ChoiceExample {
  std::string context;
  std::vector<std::string> choices;  // at least 2
  int64_t label = 0;                 // index into choices
};

// Throws naming the file and line for a malformed example.
std::vector<ChoiceExample> read_choice_examples(const std::string& path);

// One choice as the model reads it: tokens = EOS, context tokens, continuation tokens.
struct ChoiceTokens {
  std::vector<int32_t> tokens;
  int64_t continuation = 0;  // the last `continuation` tokens are the choice's
};
ChoiceTokens tokenize_choice(const Tokenizer& tokenizer, const std::string& context,
                             const std::string& choice);

struct ChoiceExitScore {
  int64_t loop = 0;
  double acc = 0, acc_norm = 0;
};

struct ChoiceEvaluation {
  int64_t examples = 0;
  std::vector<ChoiceExitScore> exits;  // the loops of exit_loops_of(model)
  // log_likelihood[example][choice][exit]: the summed log-probability of the continuation.
  std::vector<std::vector<std::vector<double>>> log_likelihood;
};

// The longest sequence (tokens read by the model) of the examples' choices.
int64_t longest_choice_sequence(const Tokenizer& tokenizer,
                                const std::vector<ChoiceExample>& examples);

// Scores every choice at every exit; batches of up to max_batch sequences of up to max_seq
// tokens (within the model's capacity), rows scored `chunk` at a time.
// chunk is capped at model.chunk().
ChoiceEvaluation score_choices(ExitModel& model, const Tokenizer& tokenizer,
                               const std::vector<ChoiceExample>& examples, int64_t max_batch,
                               int64_t max_seq, int64_t chunk = 256);
// A host model, through exit_model_of.
ChoiceEvaluation score_choices(RecursiveModel& model, const Tokenizer& tokenizer,
                               const std::vector<ChoiceExample>& examples, int64_t max_batch,
                               int64_t max_seq, int64_t chunk = 256);

}  // namespace rrt
