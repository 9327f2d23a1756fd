#include "evaluation/eval_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>

#include "checkpoint/checkpoint.h"
#include "checkpoint/checkpoint_config.h"
#include "checkpoint/model_source.h"
#include "config/config_io.h"
#include "config/resume_check.h"
#include "core/error.h"
#include "data/loader.h"
#include "data/tokenizer.h"
#include "evaluation/evaluate.h"
#include "evaluation/exit_model.h"
#include "evaluation/log_format.h"
#include "model/recursive_model.h"

namespace rrt {

EvalReport evaluate_checkpoint_exits(const std::string& checkpoint, const EvalOptions& o) {
  RRT_CHECK(o.validation || !o.choices.empty(), "rrt eval",
            "nothing to evaluate: no validation data and no --choices file");
  const CheckpointContents header = read_model_source_header(checkpoint);
  RunConfig cfg = checkpoint_run_config(header, checkpoint + ":/config", o.overrides);
  if (!o.data_path.empty() || o.validation) {
    cfg.data.path = o.data_path.empty() ? default_evaluation_data(cfg) : o.data_path;
    cfg.data.sources.clear();  // one data set is scored
  }
  const int64_t N = cfg.train.micro_batch, T = cfg.train.seq_len;
  EvalReport report;
  report.checkpoint = checkpoint;
  report.step = header.state.step;
  report.loops = cfg.model.recursion.loops;

  // The inputs first: their errors are cheaper to meet than building the model.
  std::unique_ptr<TokenLoader> val;
  int64_t batches = o.batches == 0 ? cfg.train.eval_batches : o.batches;
  if (o.validation) {
    val = std::make_unique<TokenLoader>(
        LoaderOptions{cfg.data.path, T, cfg.data.val_fraction, cfg.data.seed, 0, 1},
        Split::validation);
    // Shards of another tokenizer than the model's would score a meaningless loss.
    check_data_tokenizer(cfg, val->tokenizer());
    check_data_vocabulary(cfg, val->tokenizer(), val->vocab_size(), "eval");
    if (batches == kAllBatches) batches = val->sequences() / N;
    RRT_CHECK(batches > 0, "eval", "the validation split of ", cfg.data.path, " holds ",
              val->sequences(), " sequences of ", T, " tokens, fewer than one micro-batch of ", N,
              "; lower train.micro_batch or train.seq_len, or raise data.val_fraction");
  }
  std::vector<ChoiceExample> examples;
  std::unique_ptr<Tokenizer> tokenizer;
  int64_t choice_seq = 0;
  if (!o.choices.empty()) {
    examples = read_choice_examples(o.choices);
    tokenizer = make_tokenizer(cfg.data.tokenizer);
    choice_seq =
        std::min(longest_choice_sequence(*tokenizer, examples), cfg.model.model.max_seq_len);
  }

  const int64_t max_seq = std::max(o.validation ? T : 0, choice_seq);
  std::unique_ptr<ExitModel> model = load_exit_model(checkpoint, cfg.model, N, max_seq, o.chunk,
                                                     cfg.train.device, cfg.train.precision);
  report.device = model->device();
  if (o.validation) {
    // The held-out windows as the run saw them: documents kept apart when it did.
    model->set_document_eos(cfg.data.document_mask ? val->eos_id() : -1);
    ExitEvaluator evaluator(*model, o.thresholds, o.chunk);
    std::vector<int32_t> inputs(N * T), targets(N * T);
    val->restore({0, 0});
    for (int64_t b = 0; b < batches; ++b) {
      val->next_batch(N, inputs.data(), targets.data());
      evaluator.add_batch(inputs.data(), targets.data(), N, T);
    }
    report.has_validation = true;
    report.validation = evaluator.result();
  }
  if (!examples.empty()) {
    model->set_document_eos(-1);  // each choice is one sequence of its own
    report.has_choices = true;
    report.choices_path = o.choices;
    report.choices = score_choices(*model, *tokenizer, examples, N, max_seq, o.chunk);
  }
  return report;
}

nlohmann::ordered_json eval_report_json(const EvalReport& r) {
  using json = nlohmann::ordered_json;
  json j{{"checkpoint", r.checkpoint}, {"step", r.step}, {"loops", r.loops}, {"device", r.device}};
  if (r.has_validation) {
    const ExitEvaluation& v = r.validation;
    j["loss"] = v.exits.back().loss;
    j["perplexity"] = v.exits.back().perplexity;
    j["tokens"] = v.tokens;
    json exits = json::array();
    for (const ExitScore& e : v.exits)
      exits.push_back({{"loop", e.loop},
                       {"loss", e.loss},
                       {"perplexity", e.perplexity},
                       {"agreement", e.agreement}});
    j["exits"] = exits;
    j["oracle"] = {{"fractions", v.oracle.fractions},
                   {"mean_loops", v.oracle.mean_loops},
                   {"loss", v.oracle.loss},
                   {"perplexity", v.oracle.perplexity}};
    json conf = json::array();
    for (const ConfidenceExit& c : v.confidence)
      conf.push_back({{"threshold", c.threshold},
                      {"mean_loops", c.mean_loops},
                      {"agreement", c.agreement},
                      {"loss", c.loss},
                      {"perplexity", c.perplexity},
                      {"fractions", c.fractions}});
    j["confidence"] = conf;
  }
  if (r.has_choices) {
    json exits = json::array();
    for (const ChoiceExitScore& e : r.choices.exits)
      exits.push_back({{"loop", e.loop}, {"acc", e.acc}, {"acc_norm", e.acc_norm}});
    j["choices"] = {{"file", r.choices_path},
                    {"examples", r.choices.examples},
                    {"acc_norm_length", "bytes"},
                    {"exits", exits}};
  }
  return j;
}

EvalReport eval_report_from_json(const nlohmann::json& j) {
  RRT_CHECK(j.is_object() && j.contains("checkpoint") && j.contains("loops"), "eval report",
            "not an `rrt eval --json` report (no \"checkpoint\" and \"loops\")");
  EvalReport r;
  try {
    r.checkpoint = j.at("checkpoint").get<std::string>();
    r.step = j.value("step", int64_t{0});
    r.loops = j.at("loops").get<int64_t>();
    r.device = j.value("device", std::string());
    if (j.contains("exits")) {
      r.has_validation = true;
      ExitEvaluation& v = r.validation;
      v.tokens = j.at("tokens").get<int64_t>();
      for (const auto& e : j.at("exits"))
        v.exits.push_back({e.at("loop").get<int64_t>(), e.at("loss").get<double>(),
                           e.at("perplexity").get<double>(), e.at("agreement").get<double>()});
      const auto& o = j.at("oracle");
      v.oracle = {o.at("fractions").get<std::vector<double>>(), o.at("mean_loops").get<double>(),
                  o.at("loss").get<double>(), o.at("perplexity").get<double>()};
      for (const auto& c : j.at("confidence"))
        v.confidence.push_back({c.at("threshold").get<double>(), c.at("mean_loops").get<double>(),
                                c.at("agreement").get<double>(), c.at("loss").get<double>(),
                                c.at("perplexity").get<double>(),
                                c.at("fractions").get<std::vector<double>>()});
      RRT_CHECK(!v.exits.empty(), "eval report", "\"exits\" is empty");
    }
    if (j.contains("choices")) {
      const auto& c = j.at("choices");
      r.has_choices = true;
      r.choices_path = c.at("file").get<std::string>();
      r.choices.examples = c.at("examples").get<int64_t>();
      for (const auto& e : c.at("exits"))
        r.choices.exits.push_back({e.at("loop").get<int64_t>(), e.at("acc").get<double>(),
                                   e.at("acc_norm").get<double>()});
    }
  } catch (const nlohmann::json::exception& e) {
    // nlohmann's "[json.exception.out_of_range.403] key 'loss' not found" names the key.
    RRT_FAIL("eval report", "not an `rrt eval --json` report: ", e.what());
  }
  return r;
}

namespace {

std::string format(const char* fmt, auto... args) {
  char buf[256];
  std::snprintf(buf, sizeof buf, fmt, args...);
  return buf;
}

std::string fractions_text(const std::vector<double>& f) {
  std::string s;
  for (double x : f) s += format(" %.3f", x);
  return s;
}

}  // namespace

std::string eval_report_text(const EvalReport& r) {
  std::string s;
  if (r.has_validation) {
    const ExitEvaluation& v = r.validation;
    s += format("%s (step %ld): validation loss %.4f, perplexity %s over %ld tokens (%s)\n",
                r.checkpoint.c_str(), static_cast<long>(r.step), v.exits.back().loss,
                format_perplexity(v.exits.back().perplexity, 3).c_str(),
                static_cast<long>(v.tokens), r.device.c_str());
    s += "exit   loss  perplexity  agreement  oracle\n";
    for (size_t e = 0; e < v.exits.size(); ++e)
      s += format("%4ld %7.4f %11s %10.3f %7.3f\n", static_cast<long>(v.exits[e].loop),
                  v.exits[e].loss, format_perplexity(v.exits[e].perplexity, 3).c_str(),
                  v.exits[e].agreement, v.oracle.fractions[e]);
    s += format("oracle exit: mean loops %.3f, loss %.4f, perplexity %s\n", v.oracle.mean_loops,
                v.oracle.loss, format_perplexity(v.oracle.perplexity, 3).c_str());
    s +=
        "confidence exit:\nthreshold  mean loops  agreement    loss  perplexity  tokens per exit\n";
    for (const ConfidenceExit& c : v.confidence)
      s += format("%9.3f %11.3f %10.3f %7.4f %11s ", c.threshold, c.mean_loops, c.agreement, c.loss,
                  format_perplexity(c.perplexity, 3).c_str()) +
           fractions_text(c.fractions) + "\n";
  } else {
    s += format("%s (step %ld)\n", r.checkpoint.c_str(), static_cast<long>(r.step));
  }
  if (r.has_choices) {
    s += format("multiple choice: %s, %ld examples (acc_norm: log-likelihood per byte)\n",
                r.choices_path.c_str(), static_cast<long>(r.choices.examples));
    s += "exit    acc  acc_norm\n";
    for (const ChoiceExitScore& e : r.choices.exits)
      s += format("%4ld %6.3f %9.3f\n", static_cast<long>(e.loop), e.acc, e.acc_norm);
  }
  return s;
}

}  // namespace rrt
