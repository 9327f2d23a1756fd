// rrt eval CHECKPOINT [--data DIR] [--batches N | --all] [--thresholds T,...] [--choices FILE]
//          [--no-validation] [--tokenizer SPEC] [--json] [--plot DIR] [key=value...]
// Every loop end scored as an exit (docs/evaluation.md).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "evaluation/eval_report.h"

namespace rrt::cli {

void add_eval_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "eval",
      "Validation loss and perplexity of a checkpoint at every exit (loop end), the oracle and "
      "confidence exits, and multiple-choice accuracy per exit (docs/evaluation.md)");
  struct Opts {
    std::string checkpoint, data, choices, plot, tokenizer;
    std::vector<std::string> overrides;
    std::vector<double> thresholds = kDefaultThresholds;
    int64_t batches = 0;
    bool all = false, json = false, no_validation = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("checkpoint", o->checkpoint,
                  "an rrt checkpoint (step_XXXXXXXX.h5), an HF model directory (config.json) or a "
                  ".gguf file (read as its plain model)")
      ->required();
  cmd->add_option("--data", o->data, "token shards to evaluate on (default: the run's data.path)");
  cmd->add_option("--batches", o->batches,
                  "validation micro-batches to score (default: the run's train.eval_batches)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--all", o->all, "score every whole micro-batch of the validation split once");
  cmd->add_option("--thresholds", o->thresholds,
                  "confidence exit: a token exits at the first loop whose max softmax probability "
                  "is >= the threshold, else at the last; comma-separated (default "
                  "0.1,0.2,...,0.9,0.95,0.99)")
      ->delimiter(',');
  cmd->add_option("--choices", o->choices,
                  "multiple-choice task, JSONL lines {\"context\": str, \"choices\": [str, ...], "
                  "\"label\": int}: acc and acc_norm (log-likelihood per byte) per exit, "
                  "tokenised with the run's data.tokenizer")
      ->check(CLI::ExistingFile);
  cmd->add_flag("--no-validation", o->no_validation,
                "skip the validation data (with --choices: score the task only)");
  cmd->add_option("overrides", o->overrides,
                  "key=value changes to the checkpoint's run config, e.g. train.seq_len=512 "
                  "train.micro_batch=4 data.val_fraction=0.5 data.tokenizer=PATH");
  cmd->add_flag("--json", o->json, "print one JSON object instead of text");
  cmd->add_option("--tokenizer", o->tokenizer,
                  "the tokenizer (sets data.tokenizer): a tokenizer.json, SentencePiece .model, "
                  ".gguf or an HF checkpoint folder; the shards must have been prepared with it");
  cmd->add_option("--plot", o->plot,
                  "write exits.png (perplexity and oracle exit per exit, multiple choice) and "
                  "confidence.png (the confidence-exit trade-off) into this directory");
  cmd->callback([o] {
    EvalOptions opts;
    opts.data_path = o->data;
    opts.batches = o->all ? kAllBatches : o->batches;
    opts.overrides = o->overrides;
    if (!o->tokenizer.empty()) opts.overrides.push_back("data.tokenizer=" + o->tokenizer);
    opts.thresholds = o->thresholds;
    opts.validation = !o->no_validation;
    opts.choices = o->choices;
    const EvalReport r = evaluate_checkpoint_exits(o->checkpoint, opts);
    if (o->json)
      std::printf("%s\n", eval_report_json(r).dump().c_str());
    else
      std::printf("%s", eval_report_text(r).c_str());
    if (!o->plot.empty()) {
      for (const std::string& f : write_eval_plots(r, o->plot))
        std::fprintf(o->json ? stderr : stdout, "wrote %s\n", f.c_str());
    }
  });
}

}  // namespace rrt::cli
