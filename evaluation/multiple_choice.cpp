#include "evaluation/multiple_choice.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "core/error.h"
#include "data/tokenizer.h"
#include "evaluation/exit_eval.h"
#include "evaluation/exit_model.h"
#include "model/recursive_model.h"

namespace rrt {

std::vector<ChoiceExample> read_choice_examples(const std::string& path) {
  std::ifstream in(path);
  RRT_CHECK(in, "--choices", "cannot open ", path);
  std::vector<ChoiceExample> out;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(number);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      RRT_FAIL(where, "not a JSON object (", e.what(),
               "); each line is {\"context\": ..., \"choices\": [...], \"label\": i}");
    }
    RRT_CHECK(j.is_object(), where, "each line is one JSON object");
    RRT_CHECK(j.contains("context") && j["context"].is_string(), where,
              "\"context\" must be a string");
    RRT_CHECK(j.contains("choices") && j["choices"].is_array() && j["choices"].size() >= 2, where,
              "\"choices\" must be an array of at least 2 strings");
    RRT_CHECK(j.contains("label") && j["label"].is_number_integer(), where,
              "\"label\" must be the index of the right choice");
    ChoiceExample ex;
    ex.context = j["context"].get<std::string>();
    for (const auto& c : j["choices"]) {
      RRT_CHECK(c.is_string() && !c.get<std::string>().empty(), where,
                "every choice must be a non-empty string");
      ex.choices.push_back(c.get<std::string>());
    }
    ex.label = j["label"].get<int64_t>();
    RRT_CHECK(ex.label >= 0 && ex.label < static_cast<int64_t>(ex.choices.size()), where, "label ",
              ex.label, " is not an index of the ", ex.choices.size(), " choices");
    out.push_back(std::move(ex));
  }
  RRT_CHECK(!out.empty(), "--choices", path, " holds no examples");
  return out;
}

// lm-evaluation-harness's _encode_pair: trailing whitespace of the context joins the
// continuation, the pair is tokenised whole, the continuation is what follows the context's own
// tokens (so a merge across the boundary belongs to the choice).
ChoiceTokens tokenize_choice(const Tokenizer& tokenizer, const std::string& context,
                             const std::string& choice) {
  const size_t kept = context.find_last_not_of(" \t\n\r");
  const size_t cut = kept == std::string::npos ? 0 : kept + 1;
  const std::string ctx = context.substr(0, cut);
  const std::string cont = context.substr(cut) + choice;
  const std::vector<int32_t> whole = tokenizer.encode(ctx + cont);
  const size_t ctx_tokens = ctx.empty() ? 0 : tokenizer.encode(ctx).size();
  RRT_CHECK(whole.size() > ctx_tokens, "--choices", "the choice \"", choice,
            "\" adds no tokens to its context");
  ChoiceTokens t;
  t.tokens.push_back(tokenizer.eos_id());
  t.tokens.insert(t.tokens.end(), whole.begin(), whole.end());
  t.continuation = static_cast<int64_t>(whole.size() - ctx_tokens);
  return t;
}

int64_t longest_choice_sequence(const Tokenizer& tokenizer,
                                const std::vector<ChoiceExample>& examples) {
  int64_t longest = 0;
  for (const ChoiceExample& ex : examples)
    for (const std::string& c : ex.choices)
      longest = std::max<int64_t>(
          longest,
          static_cast<int64_t>(tokenize_choice(tokenizer, ex.context, c).tokens.size()) - 1);
  return longest;
}

namespace {

// One choice to score: the model reads inputs[0..len) and predicts the tokens after them; the
// last `continuation` predictions are the choice's.
struct Sequence {
  int64_t example, choice;
  std::vector<int32_t> inputs, targets;
  int64_t continuation;
};

Sequence make_sequence(const ChoiceTokens& t, int64_t example, int64_t choice, int64_t max_seq,
                       int64_t vocab) {
  for (int32_t id : t.tokens)
    RRT_CHECK(id >= 0 && id < vocab, "--choices", "token ", id,
              " is outside the model's vocabulary of ", vocab,
              "; tokenise with the run's tokenizer (data.tokenizer)");
  Sequence s{example, choice, {}, {}, t.continuation};
  const int64_t n = static_cast<int64_t>(t.tokens.size()) - 1;  // predictions
  RRT_CHECK(t.continuation <= max_seq, "--choices", "example ", example + 1, " choice ", choice + 1,
            " has ", t.continuation, " tokens, more than the ", max_seq,
            " the model reads at once");
  const int64_t start = std::max<int64_t>(0, n - max_seq);  // keep the last max_seq
  s.inputs.assign(t.tokens.begin() + start, t.tokens.end() - 1);
  s.targets.assign(t.tokens.begin() + start + 1, t.tokens.end());
  return s;
}

}  // namespace

ChoiceEvaluation score_choices(RecursiveModel& model, const Tokenizer& tokenizer,
                               const std::vector<ChoiceExample>& examples, int64_t max_batch,
                               int64_t max_seq, int64_t chunk) {
  return score_choices(*exit_model_of(model), tokenizer, examples, max_batch, max_seq, chunk);
}

ChoiceEvaluation score_choices(ExitModel& model, const Tokenizer& tokenizer,
                               const std::vector<ChoiceExample>& examples, int64_t max_batch,
                               int64_t max_seq, int64_t chunk) {
  const ModelConfig& m = model.spec().model;
  const int64_t V = m.vocab;
  chunk = std::min(chunk, model.chunk());
  const std::vector<int64_t> loops = exit_loops_of(model.spec());
  const size_t E = loops.size();
  RRT_CHECK(max_batch >= 1 && max_seq >= 1 && chunk >= 1, "score_choices",
            "needs a batch, a sequence length and a chunk of at least 1");

  ChoiceEvaluation out;
  out.examples = static_cast<int64_t>(examples.size());
  std::vector<Sequence> seqs;
  for (size_t i = 0; i < examples.size(); ++i) {
    out.log_likelihood.emplace_back(examples[i].choices.size(), std::vector<double>(E, 0.0));
    for (size_t c = 0; c < examples[i].choices.size(); ++c)
      seqs.push_back(
          make_sequence(tokenize_choice(tokenizer, examples[i].context, examples[i].choices[c]),
                        static_cast<int64_t>(i), static_cast<int64_t>(c), max_seq, V));
  }
  // Longest first, so that a batch pads little (causal attention: padding at the end of a row
  // changes nothing before it).
  std::vector<size_t> order(seqs.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return seqs[a].inputs.size() > seqs[b].inputs.size();
  });

  std::vector<int32_t> chunk_rows(static_cast<size_t>(chunk));
  std::vector<float> logits(static_cast<size_t>(chunk * V));
  std::vector<double> logp(static_cast<size_t>(chunk));
  for (size_t b0 = 0; b0 < order.size(); b0 += static_cast<size_t>(max_batch)) {
    const size_t nb = std::min(order.size() - b0, static_cast<size_t>(max_batch));
    const int64_t T = static_cast<int64_t>(seqs[order[b0]].inputs.size());
    std::vector<int32_t> inputs(nb * static_cast<size_t>(T), tokenizer.eos_id());
    // The scored rows: (row in the batch, sequence, target).
    struct Row {
      int64_t row;
      size_t seq;
      int32_t target;
    };
    std::vector<Row> rows;
    for (size_t n = 0; n < nb; ++n) {
      const Sequence& s = seqs[order[b0 + n]];
      const int64_t len = static_cast<int64_t>(s.inputs.size());
      std::copy(s.inputs.begin(), s.inputs.end(), inputs.begin() + static_cast<int64_t>(n) * T);
      for (int64_t t = len - s.continuation; t < len; ++t)
        rows.push_back({static_cast<int64_t>(n) * T + t, order[b0 + n], s.targets[t]});
    }
    model.forward_loop_ends(inputs.data(), static_cast<int64_t>(nb), T);
    for (size_t e = 0; e < E; ++e) {
      for (size_t r0 = 0; r0 < rows.size(); r0 += static_cast<size_t>(chunk)) {
        const int64_t nr =
            static_cast<int64_t>(std::min(rows.size() - r0, static_cast<size_t>(chunk)));
        for (int64_t r = 0; r < nr; ++r)
          chunk_rows[static_cast<size_t>(r)] = static_cast<int32_t>(rows[r0 + r].row);
        model.exit_logits(loops[e], chunk_rows.data(), nr, logits.data());
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < nr; ++r) {
          const float* z = logits.data() + r * V;
          const float zmax = *std::max_element(z, z + V);
          double sum = 0;
          for (int64_t j = 0; j < V; ++j) sum += std::exp(static_cast<double>(z[j] - zmax));
          logp[r] = static_cast<double>(z[rows[r0 + r].target] - zmax) - std::log(sum);
        }
        for (int64_t r = 0; r < nr; ++r) {
          const Sequence& s = seqs[rows[r0 + r].seq];
          out.log_likelihood[s.example][s.choice][e] += logp[r];
        }
      }
    }
  }

  for (size_t e = 0; e < E; ++e) {
    ChoiceExitScore score{loops[e], 0, 0};
    for (size_t i = 0; i < examples.size(); ++i) {
      const auto& ll = out.log_likelihood[i];
      size_t best = 0, best_norm = 0;
      auto norm = [&](size_t c) {
        return ll[c][e] / static_cast<double>(examples[i].choices[c].size());
      };
      for (size_t c = 1; c < ll.size(); ++c) {
        if (ll[c][e] > ll[best][e]) best = c;
        if (norm(c) > norm(best_norm)) best_norm = c;
      }
      score.acc += static_cast<int64_t>(best) == examples[i].label ? 1 : 0;
      score.acc_norm += static_cast<int64_t>(best_norm) == examples[i].label ? 1 : 0;
    }
    score.acc /= static_cast<double>(examples.size());
    score.acc_norm /= static_cast<double>(examples.size());
    out.exits.push_back(score);
  }
  return out;
}

}  // namespace rrt
