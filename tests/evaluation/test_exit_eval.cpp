// Per-exit evaluation (evaluation/exit_eval, evaluation/multiple_choice,
// evaluation/eval_report): every number against a direct computation. Exit k of a K-loop model is
// checked against a model of k loops holding the same tensors (its final logits are exit k's) and
// against the model's own per-exit training losses; the exit rules on their limiting thresholds;
// multiple choice against summed log-softmax of full logits; the JSON keys and the plots of rrt
// eval.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "config/config_io.h"
#include "core/error.h"
#include "data/prepare.h"
#include "data/tokenizer.h"
#include "evaluation/eval_report.h"
#include "evaluation/exit_eval.h"
#include "evaluation/multiple_choice.h"
#include "model/recursive_model.h"
#include "tests/error_helpers.h"
#include "tests/png_decode.h"

namespace rrt {
namespace {

namespace fs = std::filesystem;

const std::string kSample = std::string(RRT_FIXTURE_DIR) + "/multiple_choice/sample.jsonl";

// A relaxed model (B = 2, K = 3, LoRA) with weights large enough that the exits disagree and
// the argmax of every row is clear of rounding.
ModelSpec relaxed_spec(int64_t vocab = 61, int64_t head_lora_rank = 0) {
  ModelSpec s;
  s.model = {
      .vocab = vocab, .d_model = 24, .n_heads = 4, .n_kv_heads = 2, .ffn = 40, .max_seq_len = 96};
  s.recursion = {.block_layers = 2, .loops = 3};
  s.lora = {.rank_attention = 3, .rank_mlp = 2};
  if (head_lora_rank > 0) s.exit_head = {.lora_rank = head_lora_rank, .loops = {1, 2}};
  return s;
}

void init(ParameterSet& p, uint64_t seed = 7) {
  p.init(InitConfig{.seed = seed, .std = 0.3, .lora_b_zero = false});
}

// The same tensors in a model of `loops` loops: its final logits are exit `loops` of `from`.
ModelSpec truncated(ModelSpec s, int64_t loops) {
  s.recursion.loops = loops;
  if (s.model.n_layers != 0) s.model.n_layers = loops * s.recursion.block_layers;
  s.exit_head = {};
  return s;
}

void copy_by_name(const ParameterSet& from, ParameterSet& to) {
  for (int i = 0; i < to.registry().size(); ++i)
    std::copy_n(from.value(to.registry()[i].name), to.numel(i), to.value(i));
}

struct Batch {
  std::vector<int32_t> tokens, targets;
};

Batch make_batch(int64_t M, int64_t vocab, bool with_ignored) {
  Batch b{std::vector<int32_t>(M), std::vector<int32_t>(M)};
  for (int64_t i = 0; i < M; ++i) {
    b.tokens[i] = static_cast<int32_t>((i * 31 + 7) % vocab);
    b.targets[i] = with_ignored && i % 7 == 3 ? RecursiveModel::kIgnoreIndex
                                              : static_cast<int32_t>((i * 17 + 5) % vocab);
  }
  return b;
}

// One exit computed from full logits [M, V] in long double.
struct DirectExit {
  std::vector<double> ce, max_prob;
  std::vector<int64_t> argmax;
  double min_top2_gap = INFINITY;  // the smallest margin of an argmax over the runner-up
};

DirectExit direct_exit(const std::vector<float>& logits, const std::vector<int32_t>& targets,
                       int64_t V) {
  DirectExit d;
  const int64_t M = static_cast<int64_t>(targets.size());
  for (int64_t i = 0; i < M; ++i) {
    const float* z = logits.data() + i * V;
    const int64_t best = std::max_element(z, z + V) - z;
    long double sum = 0;
    float second = -INFINITY;
    for (int64_t j = 0; j < V; ++j) {
      sum += std::exp(static_cast<long double>(z[j]) - z[best]);
      if (j != best) second = std::max(second, z[j]);
    }
    const long double lse = z[best] + std::log(sum);
    d.argmax.push_back(best);
    d.max_prob.push_back(static_cast<double>(1.0L / sum));
    d.ce.push_back(targets[i] < 0 ? 0.0 : static_cast<double>(lse - z[targets[i]]));
    if (targets[i] >= 0) d.min_top2_gap = std::min<double>(d.min_top2_gap, z[best] - second);
  }
  return d;
}

// Exits 1..K of `full` on one batch, each from a truncated model's logits.
std::vector<DirectExit> direct_exits(const ModelSpec& spec, const ParameterSet& params,
                                     const Batch& b, int64_t N, int64_t T) {
  std::vector<DirectExit> out;
  for (int64_t k = 1; k <= spec.recursion.loops; ++k) {
    RecursiveModel m(truncated(spec, k), ModelCapacity{.max_batch = N, .max_seq = T});
    copy_by_name(params, m.params());
    std::vector<float> logits(static_cast<size_t>(N * T * spec.model.vocab));
    m.logits(b.tokens.data(), N, T, logits.data());
    out.push_back(direct_exit(logits, b.targets, spec.model.vocab));
  }
  return out;
}

TEST(ExitEval, EveryNumberMatchesTruncatedModels) {
  const ModelSpec spec = relaxed_spec();
  const int64_t N = 2, T = 40, K = 3, V = spec.model.vocab;
  RecursiveModel model(spec, ModelCapacity{.max_batch = N, .max_seq = T});
  init(model.params());
  const Batch b = make_batch(N * T, V, /*with_ignored=*/true);
  const std::vector<DirectExit> d = direct_exits(spec, model.params(), b, N, T);
  for (const DirectExit& e : d) ASSERT_GT(e.min_top2_gap, 1e-4) << "an argmax too close to call";

  // Thresholds between observed max probabilities (so rounding cannot move a token), plus the
  // limits 0 and above 1.
  std::vector<double> probs;
  for (int64_t e = 0; e + 1 < K; ++e)
    for (size_t i = 0; i < b.targets.size(); ++i)
      if (b.targets[i] >= 0) probs.push_back(d[e].max_prob[i]);
  std::sort(probs.begin(), probs.end());
  std::vector<double> thresholds = {0.0};
  for (double q : {0.25, 0.5, 0.75, 0.95}) {
    const size_t i = static_cast<size_t>(q * static_cast<double>(probs.size() - 1));
    ASSERT_GT(probs[i + 1] - probs[i], 1e-6);
    thresholds.push_back(0.5 * (probs[i] + probs[i + 1]));
  }
  thresholds.push_back(1.5);

  // A chunk that does not divide the rows.
  ExitEvaluator evaluator(model, thresholds, /*chunk=*/13);
  evaluator.add_batch(b.tokens.data(), b.targets.data(), N, T);
  const ExitEvaluation r = evaluator.result();

  // The expected values, token by token.
  int64_t counted = 0;
  std::vector<double> loss(K, 0), agree(K, 0), oracle(K, 0);
  double oracle_loss = 0;
  std::vector<double> c_loss(thresholds.size(), 0), c_agree(thresholds.size(), 0),
      c_loops(thresholds.size(), 0);
  for (size_t i = 0; i < b.targets.size(); ++i) {
    if (b.targets[i] < 0) continue;
    ++counted;
    const int64_t final_argmax = d[K - 1].argmax[i];
    int64_t first_agree = -1;
    for (int64_t e = 0; e < K; ++e) {
      loss[e] += d[e].ce[i];
      const bool same = d[e].argmax[i] == final_argmax;
      agree[e] += same;
      if (same && first_agree < 0) first_agree = e;
    }
    oracle[first_agree] += 1;
    oracle_loss += d[first_agree].ce[i];
    for (size_t c = 0; c < thresholds.size(); ++c) {
      int64_t exit = K - 1;
      for (int64_t e = 0; e + 1 < K; ++e)
        if (d[e].max_prob[i] >= thresholds[c]) {
          exit = e;
          break;
        }
      c_loss[c] += d[exit].ce[i];
      c_agree[c] += d[exit].argmax[i] == final_argmax;
      c_loops[c] += static_cast<double>(exit + 1);
    }
  }
  const double n = static_cast<double>(counted);
  ASSERT_EQ(r.tokens, counted);
  ASSERT_EQ(r.exits.size(), static_cast<size_t>(K));
  for (int64_t e = 0; e < K; ++e) {
    EXPECT_EQ(r.exits[e].loop, e + 1);
    EXPECT_NEAR(r.exits[e].loss, loss[e] / n, 1e-5) << "exit " << e + 1;
    EXPECT_NEAR(r.exits[e].perplexity, std::exp(loss[e] / n), 1e-4 * std::exp(loss[e] / n));
    EXPECT_DOUBLE_EQ(r.exits[e].agreement, agree[e] / n) << "exit " << e + 1;
    EXPECT_DOUBLE_EQ(r.oracle.fractions[e], oracle[e] / n) << "exit " << e + 1;
  }
  EXPECT_NEAR(r.oracle.loss, oracle_loss / n, 1e-5);
  // The exits really differ (else the test would show little).
  EXPECT_LT(r.exits[0].agreement, 0.9);
  EXPECT_GT(r.oracle.fractions[0], 0.0);
  ASSERT_EQ(r.confidence.size(), thresholds.size());
  for (size_t c = 0; c < thresholds.size(); ++c) {
    EXPECT_EQ(r.confidence[c].threshold, thresholds[c]);
    EXPECT_NEAR(r.confidence[c].loss, c_loss[c] / n, 1e-5) << "threshold " << thresholds[c];
    EXPECT_DOUBLE_EQ(r.confidence[c].agreement, c_agree[c] / n) << "threshold " << thresholds[c];
    EXPECT_NEAR(r.confidence[c].mean_loops, c_loops[c] / n, 1e-12);
  }
  // The final exit is the model's own loss, what rrt eval has always reported.
  EXPECT_NEAR(r.exits[K - 1].loss, model.loss(b.tokens.data(), b.targets.data(), N, T), 1e-6);
}

TEST(ExitEval, LimitingThresholdsAndTheOracle) {
  const ModelSpec spec = relaxed_spec();
  const int64_t N = 2, T = 32, K = 3;
  RecursiveModel model(spec, ModelCapacity{.max_batch = N, .max_seq = T});
  init(model.params(), 11);
  const Batch b = make_batch(N * T, spec.model.vocab, false);
  ExitEvaluator evaluator(model, {0.0, 1.01});
  evaluator.add_batch(b.tokens.data(), b.targets.data(), N, T);
  const ExitEvaluation r = evaluator.result();

  // Threshold 0: every token exits at loop 1, with exit 1's loss and agreement.
  const ConfidenceExit& all_first = r.confidence[0];
  EXPECT_EQ(all_first.mean_loops, 1.0);
  EXPECT_EQ(all_first.fractions, (std::vector<double>{1, 0, 0}));
  EXPECT_DOUBLE_EQ(all_first.loss, r.exits[0].loss);
  EXPECT_DOUBLE_EQ(all_first.agreement, r.exits[0].agreement);
  // Above 1 no probability reaches it: every token runs all K loops and agrees.
  const ConfidenceExit& none = r.confidence[1];
  EXPECT_EQ(none.mean_loops, static_cast<double>(K));
  EXPECT_EQ(none.fractions, (std::vector<double>{0, 0, 1}));
  EXPECT_EQ(none.agreement, 1.0);
  EXPECT_DOUBLE_EQ(none.loss, r.exits[K - 1].loss);

  // The oracle: a distribution; its first bin is exit 1's agreement; it never does worse than
  // the final exit on agreement and never uses more loops.
  double sum = 0;
  for (double f : r.oracle.fractions) sum += f;
  EXPECT_NEAR(sum, 1.0, 1e-12);
  EXPECT_DOUBLE_EQ(r.oracle.fractions[0], r.exits[0].agreement);
  EXPECT_EQ(r.exits[K - 1].agreement, 1.0);
  EXPECT_LE(r.oracle.mean_loops, static_cast<double>(K));
  EXPECT_GE(r.oracle.mean_loops, 1.0);
}

// The exits of a model trained with exits and per-exit head adapters: the evaluation's losses
// are the model's own per-exit CE terms of forward_backward (adapters on exits 1 and 2 only).
TEST(ExitEval, MatchesTheModelsOwnExitLossesWithHeadAdapters) {
  const ModelSpec spec = relaxed_spec(61, /*head_lora_rank=*/2);
  const int64_t N = 2, T = 24;
  TrainingLoss loss;
  loss.exit_loops = {1, 2, 3};
  loss.exit_weights = {0.1, 0.1, 1.0};
  loss.self_distill = true;
  RecursiveModel model(spec, ModelCapacity{.max_batch = N, .max_seq = T, .head_chunk = 16}, loss);
  init(model.params(), 3);  // B != 0: the adapters change exits 1 and 2
  const Batch b = make_batch(N * T, spec.model.vocab, true);
  model.forward_backward(b.tokens.data(), b.targets.data(), N, T);
  const std::vector<double> own = model.last_losses().exit_ce;

  ExitEvaluator evaluator(model, {});
  evaluator.add_batch(b.tokens.data(), b.targets.data(), N, T);
  const ExitEvaluation r = evaluator.result();
  ASSERT_EQ(r.exits.size(), own.size());
  for (size_t e = 0; e < own.size(); ++e) EXPECT_NEAR(r.exits[e].loss, own[e], 1e-5) << e;

  // Without its adapter, exit 1 scores differently: the evaluation does use them.
  RecursiveModel plain(relaxed_spec(), ModelCapacity{.max_batch = N, .max_seq = T});
  copy_by_name(model.params(), plain.params());
  ExitEvaluator plain_eval(plain, {});
  plain_eval.add_batch(b.tokens.data(), b.targets.data(), N, T);
  EXPECT_GT(std::abs(plain_eval.result().exits[0].loss - r.exits[0].loss), 1e-3);
  EXPECT_NEAR(plain_eval.result().exits[2].loss, r.exits[2].loss, 1e-6);
}

TEST(ExitEval, SequenceSharingHasOnlyTheFinalExit) {
  ModelSpec spec = relaxed_spec();
  spec.recursion.sharing = Sharing::sequence;
  const int64_t N = 1, T = 16;
  RecursiveModel model(spec, ModelCapacity{.max_batch = N, .max_seq = T});
  init(model.params());
  const Batch b = make_batch(N * T, spec.model.vocab, false);
  ExitEvaluator evaluator(model, {0.0});
  evaluator.add_batch(b.tokens.data(), b.targets.data(), N, T);
  const ExitEvaluation r = evaluator.result();
  ASSERT_EQ(r.exits.size(), 1u);
  EXPECT_EQ(r.exits[0].loop, 3);
  EXPECT_NEAR(r.exits[0].loss, model.loss(b.tokens.data(), b.targets.data(), N, T), 1e-6);
  EXPECT_EQ(r.confidence[0].mean_loops, 3.0);
  EXPECT_TRUE(testing::error_message([&] { model.loop_end_residual(1); }).find("cycle sharing") !=
              std::string::npos);
}

// ---- multiple choice ----

TEST(MultipleChoice, TokenisesLikeLmEvaluationHarness) {
  const ByteTokenizer bytes;
  // The context's trailing space moves to the choice.
  ChoiceTokens t = tokenize_choice(bytes, "Two plus two equals ", "four");
  EXPECT_EQ(t.tokens.front(), ByteTokenizer::kEos);
  EXPECT_EQ(t.continuation, 5);  // " four"
  EXPECT_EQ(t.tokens.size(), 1 + std::string("Two plus two equals four").size());
  // A BPE vocabulary merges the space into the word: the continuation is " Paris"'s tokens.
  const auto bpe = make_tokenizer(std::string(RRT_FIXTURE_DIR) + "/smollm2_tokenizer.gguf");
  t = tokenize_choice(*bpe, "The capital of France is ", "Paris");
  const std::vector<int32_t> cont(t.tokens.end() - t.continuation, t.tokens.end());
  EXPECT_EQ(bpe->decode(cont), " Paris");
  EXPECT_EQ(t.tokens.front(), bpe->eos_id());
}

TEST(MultipleChoice, ReadsTheSampleAndNamesTheLineOfAnError) {
  const std::vector<ChoiceExample> ex = read_choice_examples(kSample);
  ASSERT_EQ(ex.size(), 8u);
  EXPECT_EQ(ex[0].choices.size(), 3u);
  EXPECT_EQ(ex[5].choices[0], " caf\xC3\xA9");

  const fs::path bad = fs::path(::testing::TempDir()) / ("rrt_mc_" + std::to_string(::getpid()));
  auto message = [&](const std::string& body) {
    std::ofstream(bad) << body;
    return testing::error_message([&] { read_choice_examples(bad.string()); });
  };
  const std::string ok = R"({"context": "a", "choices": ["b", "c"], "label": 1})";
  EXPECT_NE(message(ok + "\n\n{\"context\": 1}\n").find(":3"), std::string::npos);
  EXPECT_NE(message(ok + "\nnot json\n").find(":2"), std::string::npos);
  EXPECT_NE(message(R"({"context": "a", "choices": ["b", "c"], "label": 2})").find("label 2"),
            std::string::npos);
  EXPECT_NE(message(R"({"context": "a", "choices": ["b"], "label": 0})").find("at least 2"),
            std::string::npos);
  fs::remove(bad);
}

// Every choice's summed log-likelihood at every exit against a truncated model's full logits
// over the same tokens; acc and acc_norm from those. Batches of 3 mix lengths (padding), and a
// second run keeps only the last 30 tokens of longer sequences.
TEST(MultipleChoice, SampleSetMatchesDirectLogLikelihood) {
  ModelSpec spec = relaxed_spec(257);
  spec.recursion.loops = 2;
  const ByteTokenizer tok;
  const std::vector<ChoiceExample> ex = read_choice_examples(kSample);
  const int64_t longest = longest_choice_sequence(tok, ex);
  ASSERT_LE(longest, spec.model.max_seq_len);
  RecursiveModel model(spec, ModelCapacity{.max_batch = 3, .max_seq = longest});
  init(model.params(), 5);
  std::vector<std::unique_ptr<RecursiveModel>> exits;
  for (int64_t k = 1; k <= 2; ++k) {
    exits.push_back(std::make_unique<RecursiveModel>(
        truncated(spec, k), ModelCapacity{.max_batch = 1, .max_seq = longest}));
    copy_by_name(model.params(), exits.back()->params());
  }
  for (const int64_t max_seq : {longest, int64_t{30}}) {
    const ChoiceEvaluation r = score_choices(model, tok, ex, 3, max_seq, /*chunk=*/5);
    ASSERT_EQ(r.exits.size(), 2u);
    for (size_t e = 0; e < 2; ++e) {
      double acc = 0, acc_norm = 0;
      for (size_t i = 0; i < ex.size(); ++i) {
        std::vector<double> ll;
        for (size_t c = 0; c < ex[i].choices.size(); ++c) {
          const ChoiceTokens t = tokenize_choice(tok, ex[i].context, ex[i].choices[c]);
          const int64_t n = static_cast<int64_t>(t.tokens.size()) - 1;
          const int64_t start = std::max<int64_t>(0, n - max_seq), len = n - start;
          std::vector<float> logits(static_cast<size_t>(len * 257));
          exits[e]->logits(t.tokens.data() + start, 1, len, logits.data());
          long double sum = 0;
          for (int64_t p = len - t.continuation; p < len; ++p) {
            const float* z = logits.data() + p * 257;
            const float m = *std::max_element(z, z + 257);
            long double s = 0;
            for (int j = 0; j < 257; ++j) s += std::exp(static_cast<long double>(z[j]) - m);
            sum += z[t.tokens[start + p + 1]] - m - std::log(s);
          }
          ll.push_back(static_cast<double>(sum));
          EXPECT_NEAR(r.log_likelihood[i][c][e], ll.back(), 1e-4)
              << "example " << i << " choice " << c << " exit " << e + 1;
        }
        size_t best = 0, best_norm = 0;
        for (size_t c = 1; c < ll.size(); ++c) {
          if (ll[c] > ll[best]) best = c;
          if (ll[c] / ex[i].choices[c].size() > ll[best_norm] / ex[i].choices[best_norm].size())
            best_norm = c;
        }
        acc += static_cast<int64_t>(best) == ex[i].label;
        acc_norm += static_cast<int64_t>(best_norm) == ex[i].label;
      }
      EXPECT_EQ(r.exits[e].loop, static_cast<int64_t>(e + 1));
      EXPECT_DOUBLE_EQ(r.exits[e].acc, acc / static_cast<double>(ex.size()));
      EXPECT_DOUBLE_EQ(r.exits[e].acc_norm, acc_norm / static_cast<double>(ex.size()));
    }
  }
}

// ---- rrt eval end to end: a checkpoint, its data and the sample task ----

fs::path fresh(const std::string& name) {
  const fs::path p =
      fs::path(::testing::TempDir()) / ("rrt_exit_eval_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(p);
  return p;
}

std::string checkpoint_with_data() {
  const fs::path root = fresh("run");
  fs::create_directories(root / "text");
  std::ofstream(root / "text" / "doc.txt") << [] {
    std::string s;
    for (int i = 0; i < 60; ++i) s += "Line " + std::to_string(i) + ": the cat sat on the mat.\n";
    return s;
  }();
  PrepareOptions p;
  p.inputs = {(root / "text").string()};
  p.out_dir = (root / "shards").string();
  p.progress = false;
  prepare_shards(p);
  RunConfig c;
  c.model = relaxed_spec(257);
  c.model.recursion.loops = 2;
  c.model.model.n_layers = 4;
  c.data.path = p.out_dir;
  c.data.val_fraction = 0.2;
  c.train.micro_batch = 2;
  c.train.seq_len = 16;
  c.train.eval_batches = 3;
  c.train.run_dir = (root / "out").string();
  ParameterSet params(c.model);
  init(params);
  const std::string path = (root / "step_00000007.h5").string();
  save_checkpoint(path, to_yaml(c), params, nullptr, TrainState{.step = 7});
  return path;
}

TEST(EvalReport, JsonKeysPlotsAndTheFinalExitsPerplexity) {
  const std::string ckpt = checkpoint_with_data();
  EvalOptions o;
  o.choices = kSample;
  o.thresholds = {0.5, 0.9};
  const EvalReport r = evaluate_checkpoint_exits(ckpt, o);
  const nlohmann::ordered_json j = eval_report_json(r);
  // The final exit's perplexity comes first: scripts grep the first "perplexity".
  const std::string text = j.dump();
  EXPECT_LT(text.find("\"perplexity\""), text.find("\"exits\""));
  for (const char* key : {"checkpoint", "step", "loops", "loss", "perplexity", "tokens", "exits",
                          "oracle", "confidence", "choices"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["step"], 7);
  EXPECT_EQ(j["loops"], 2);
  EXPECT_EQ(j["tokens"], 3 * 2 * 16);
  ASSERT_EQ(j["exits"].size(), 2u);
  for (const auto& e : j["exits"])
    for (const char* key : {"loop", "loss", "perplexity", "agreement"})
      EXPECT_TRUE(e.contains(key)) << key;
  for (const char* key : {"fractions", "mean_loops", "loss", "perplexity"})
    EXPECT_TRUE(j["oracle"].contains(key)) << key;
  ASSERT_EQ(j["confidence"].size(), 2u);
  for (const char* key :
       {"threshold", "mean_loops", "agreement", "loss", "perplexity", "fractions"})
    EXPECT_TRUE(j["confidence"][0].contains(key)) << key;
  EXPECT_EQ(j["choices"]["examples"], 8);
  EXPECT_EQ(j["choices"]["acc_norm_length"], "bytes");
  ASSERT_EQ(j["choices"]["exits"].size(), 2u);
  for (const char* key : {"loop", "acc", "acc_norm"})
    EXPECT_TRUE(j["choices"]["exits"][1].contains(key)) << key;
  // `perplexity` keeps its meaning: the final exit's, as evaluate_checkpoint computes it.
  const EvalResult before = evaluate_checkpoint(ckpt, "", 0);
  EXPECT_NEAR(j["perplexity"].get<double>(), before.perplexity, 1e-6 * before.perplexity);
  EXPECT_EQ(j["perplexity"], j["exits"][1]["perplexity"]);
  EXPECT_NE(eval_report_text(r).find("validation loss"), std::string::npos);
  // Read back (rrt plot-exits), every key and value survives: written again, the same text.
  EXPECT_EQ(eval_report_json(eval_report_from_json(nlohmann::json::parse(text))).dump(), text);

  const fs::path dir = fresh("plots");
  const std::vector<std::string> files = write_eval_plots(r, dir.string());
  ASSERT_EQ(files.size(), 2u);
  for (const std::string& f : files) {
    std::ifstream in(f, std::ios::binary);
    const std::vector<uint8_t> bytes{std::istreambuf_iterator<char>(in), {}};
    const testing::DecodedPng png = testing::decode_png(bytes);
    EXPECT_GT(png.width, 500u) << f;
    EXPECT_GT(png.height, 300u) << f;
  }

  // The task alone: no validation data is read, no validation keys are written.
  o.validation = false;
  o.data_path = "/nonexistent";
  const nlohmann::ordered_json task = eval_report_json(evaluate_checkpoint_exits(ckpt, o));
  EXPECT_FALSE(task.contains("perplexity"));
  EXPECT_EQ(task["choices"]["exits"], j["choices"]["exits"]);
}

}  // namespace
}  // namespace rrt
