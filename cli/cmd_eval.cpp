// rrt eval CHECKPOINT [--data DIR] [--batches N | --all] [--json] [key=value...]
#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "trainer/evaluate.h"

namespace rrt::cli {

void add_eval_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("eval", "Validation loss and perplexity of a checkpoint");
  struct Opts {
    std::string checkpoint, data;
    std::vector<std::string> overrides;
    int64_t batches = 0;
    bool all = false, json = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("checkpoint", o->checkpoint, "checkpoint file (step_XXXXXXXX.h5)")->required();
  cmd->add_option("--data", o->data, "token shards to evaluate on (default: the run's data.path)");
  cmd->add_option("--batches", o->batches,
                  "validation micro-batches to score (default: the run's train.eval_batches)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--all", o->all, "score every whole micro-batch of the validation split once");
  cmd->add_option("overrides", o->overrides,
                  "key=value changes to the checkpoint's run config, e.g. train.seq_len=512 "
                  "train.micro_batch=4 data.val_fraction=0.5");
  cmd->add_flag("--json", o->json, "print one JSON object instead of text");
  cmd->callback([o] {
    const EvalResult r = evaluate_checkpoint(o->checkpoint, o->data,
                                             o->all ? kAllBatches : o->batches, o->overrides);
    if (o->json) {
      std::printf("%s\n", nlohmann::json{{"checkpoint", o->checkpoint}, {"step", r.step},
                                         {"loss", r.loss}, {"perplexity", r.perplexity},
                                         {"tokens", r.tokens}}
                              .dump()
                              .c_str());
    } else {
      std::printf("%s (step %ld): validation loss %.4f, perplexity %.3f over %ld tokens\n",
                  o->checkpoint.c_str(), static_cast<long>(r.step), r.loss, r.perplexity,
                  static_cast<long>(r.tokens));
    }
  });
}

}  // namespace rrt::cli
