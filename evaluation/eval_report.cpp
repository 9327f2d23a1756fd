#include "evaluation/eval_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "checkpoint/checkpoint.h"
#include "config/config_io.h"
#include "core/error.h"
#include "data/loader.h"
#include "data/tokenizer.h"
#include "evaluation/exit_model.h"
#include "evaluation/log_format.h"
#include "model/recursive_model.h"
#include "plot/plot.h"

namespace rrt {

EvalReport evaluate_checkpoint_exits(const std::string& checkpoint, const EvalOptions& o) {
  RRT_CHECK(o.validation || !o.choices.empty(), "rrt eval",
            "nothing to evaluate: no validation data and no --choices file");
  const CheckpointContents header = read_checkpoint_header(checkpoint);
  RunConfig cfg = parse_run_config(header.config_yaml, checkpoint + ":/config", o.overrides);
  if (!o.data_path.empty()) cfg.data.path = o.data_path;
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
    RRT_CHECK(val->vocab_size() <= cfg.model.model.vocab, "eval", "the data at ", cfg.data.path,
              " has a vocabulary of ", val->vocab_size(), " but the model only ",
              cfg.model.model.vocab);
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
  std::unique_ptr<ExitModel> model =
      load_exit_model(checkpoint, cfg.model, N, max_seq, o.chunk, cfg.train.device);
  report.device = model->device();
  if (o.validation) {
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

namespace {

Chart chart(const std::string& title, const std::string& x_label, const std::string& y_label) {
  Chart c;
  c.title = title;
  c.x_label = x_label;
  c.y_label = y_label;
  return c;
}

Series series(const std::string& label, int color, LineStyle style = LineStyle::solid) {
  Series s;
  s.label = label;
  s.color = palette(color);
  s.style = style;
  s.markers = true;
  return s;
}

// The plot module clips a large start of the y range away (made for training curves); exit 1's
// perplexity is usually the largest value and must show, so the limits are given.
void fit_y(Chart& c) {
  double lo = INFINITY, hi = -INFINITY;
  for (const Series& s : c.series)
    for (auto [x, y] : s.points)
      if (std::isfinite(y)) lo = std::min(lo, y), hi = std::max(hi, y);
  if (!(hi >= lo)) return;
  const double pad = hi > lo ? 0.05 * (hi - lo) : std::max(1e-3, 0.05 * std::abs(hi));
  c.y_min = lo - pad;
  c.y_max = hi + pad;
}

std::string save(const Figure& figure, const std::string& dir, const char* name) {
  const std::string path = (std::filesystem::path(dir) / name).string();
  render_figure(figure).save_png(path);
  return path;
}

}  // namespace

std::vector<std::string> write_eval_plots(const EvalReport& r, const std::string& dir) {
  std::filesystem::create_directories(dir);
  std::vector<std::string> written;
  const std::string name = std::filesystem::path(r.checkpoint).filename().string() + " (step " +
                           std::to_string(r.step) + ")";
  Figure exits;
  exits.title = name;
  if (r.has_validation) {
    const ExitEvaluation& v = r.validation;
    Chart ppl = chart("validation perplexity per exit", "exit (loop)", "perplexity");
    ppl.x_integer = true;
    Chart oracle = chart("oracle exit", "exit (loop)", "fraction of tokens");
    oracle.x_integer = true;
    Series p = series("perplexity", 0), f = series("oracle exit", 1);
    for (size_t e = 0; e < v.exits.size(); ++e) {
      p.points.emplace_back(static_cast<double>(v.exits[e].loop), v.exits[e].perplexity);
      f.points.emplace_back(static_cast<double>(v.exits[e].loop), v.oracle.fractions[e]);
    }
    ppl.series = {p};
    oracle.series = {f};
    fit_y(ppl);
    oracle.y_min = 0;
    oracle.y_max = 1;
    exits.charts = {ppl, oracle};
  }
  if (r.has_choices) {
    Chart acc = chart("multiple choice", "exit (loop)", "accuracy");
    acc.x_integer = true;
    acc.y_min = 0;
    acc.y_max = 1;
    Series a = series("acc", 2), an = series("acc_norm", 3, LineStyle::dashed);
    for (const ChoiceExitScore& e : r.choices.exits) {
      a.points.emplace_back(static_cast<double>(e.loop), e.acc);
      an.points.emplace_back(static_cast<double>(e.loop), e.acc_norm);
    }
    acc.series = {a, an};
    exits.charts.push_back(acc);
    exits.legend = {{"acc", palette(2), LineStyle::solid},
                    {"acc_norm", palette(3), LineStyle::dashed}};
  }
  written.push_back(save(exits, dir, "exits.png"));
  if (!r.has_validation) return written;

  // The trade-off: each threshold is one point (mean loops, quality); the fixed exits and the
  // oracle for reference.
  const ExitEvaluation& v = r.validation;
  Figure trade;
  trade.title = "confidence exit: " + name;
  Chart ppl = chart("perplexity vs loops used", "mean loops per token", "perplexity");
  Chart agree =
      chart("agreement with the final exit", "mean loops per token", "fraction of tokens");
  Series cp = series("confidence", 0), ca = cp;
  for (const ConfidenceExit& c : v.confidence) {
    cp.points.emplace_back(c.mean_loops, c.perplexity);
    ca.points.emplace_back(c.mean_loops, c.agreement);
  }
  std::stable_sort(cp.points.begin(), cp.points.end());
  std::stable_sort(ca.points.begin(), ca.points.end());
  Series fp = series("fixed exit", 1, LineStyle::dashed), fa = fp;
  for (const ExitScore& e : v.exits) {
    fp.points.emplace_back(static_cast<double>(e.loop), e.perplexity);
    fa.points.emplace_back(static_cast<double>(e.loop), e.agreement);
  }
  Series op = series("oracle", 3), oa = op;
  op.points = {{v.oracle.mean_loops, v.oracle.perplexity}};
  oa.points = {{v.oracle.mean_loops, 1.0}};
  ppl.series = {fp, cp, op};
  agree.series = {fa, ca, oa};
  fit_y(ppl);
  fit_y(agree);
  agree.y_max = std::max(agree.y_max, 1.0);
  trade.charts = {ppl, agree};
  trade.legend = {{"confidence (a point per threshold)", palette(0), LineStyle::solid},
                  {"fixed exit at loop k", palette(1), LineStyle::dashed},
                  {"oracle exit", palette(3), LineStyle::solid}};
  written.push_back(save(trade, dir, "confidence.png"));
  return written;
}

}  // namespace rrt
