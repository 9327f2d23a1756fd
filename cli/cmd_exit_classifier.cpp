// rrt exit-classifier train CHECKPOINT --out FILE [--data DIR] [--tokens N] [--seq-len T]
//                     [--split validation|all] [--hidden H] [--epochs E] [--batch B] [--lr LR]
//                     [--l2 X] [--held-out F]
//                     [--seed S] [--device cpu|cuda] [--precision auto|fp32|bf16] [--json]
// rrt exit-classifier show FILE [--checkpoint CHECKPOINT]
// The CALM-style learned exit classifier (inference/exit_classifier.h, docs/inference.md "The
// classifier exit"): trained from the model's own states on held-out tokens, then served by
// `--exit classifier` (rrt generate, serve-bench, serve).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "checkpoint/checkpoint_config.h"
#include "checkpoint/model_source.h"
#include "cli/commands.h"
#include "config/config_io.h"
#include "core/error.h"
#include "data/loader.h"
#include "inference/exit_classifier_train.h"
#include "inference/load.h"

namespace rrt::cli {

namespace {

struct TrainOpts {
  std::string checkpoint, out, data, split = "validation", device = "cpu", precision = "auto";
  int64_t tokens = 32768, seq_len = 0;
  inference::ExitTrainOptions train;
  bool json = false;
};

void run_train(const TrainOpts& o) {
  const CheckpointContents header = read_model_source_header(o.checkpoint);
  const RunConfig cfg = checkpoint_run_config(header, o.checkpoint + " (/config)");
  const std::string data = o.data.empty() ? cfg.data.path : o.data;
  RRT_CHECK(std::filesystem::exists(data), "exit-classifier", "the token shards '", data,
            "' are not here", o.data.empty() ? " (the run's data.path)" : "",
            ": give --data DIR (rrt prepare's output for this model's tokenizer)");
  const int64_t T = o.seq_len > 0 ? o.seq_len : std::min<int64_t>(256, cfg.model.model.max_seq_len);
  RRT_CHECK(T <= cfg.model.model.max_seq_len, "exit-classifier", "--seq-len ", T,
            " exceeds the model's max_seq_len ", cfg.model.model.max_seq_len);
  // Held-out tokens: the validation split the run never trained on, or every sequence of a
  // held-out shard set (in the loader's seeded order).
  const bool all = o.split == "all";
  TokenLoader loader(LoaderOptions{data, T, all ? 0.0 : cfg.data.val_fraction, cfg.data.seed, 0, 1},
                     all ? Split::train : Split::validation);
  RRT_CHECK(loader.vocab_size() <= cfg.model.model.vocab, "exit-classifier",
            "the data's vocabulary (", loader.vocab_size(), ") exceeds the model's (",
            cfg.model.model.vocab, "): shards of another tokenizer?");
  const int64_t want = (o.tokens + T - 1) / T;
  const int64_t n = std::min(want, loader.sequences());
  RRT_CHECK(n >= 2, "exit-classifier", all ? "" : "the validation split of ", data, " holds ",
            loader.sequences(), " sequences of ", T,
            " tokens; needs 2 or more (a smaller --seq-len?)");
  if (n < want)
    std::fprintf(stderr,
                 "exit-classifier: %s holds %ld sequences of %ld tokens; using all of them "
                 "(%ld tokens)\n",
                 all ? "the shard set" : "the validation split", static_cast<long>(n),
                 static_cast<long>(T), static_cast<long>(n * T));
  std::vector<std::vector<int32_t>> seqs(static_cast<size_t>(n));
  std::vector<int32_t> targets(static_cast<size_t>(T));
  for (auto& s : seqs) {
    s.resize(static_cast<size_t>(T));
    loader.next_batch(1, s.data(), targets.data());
  }
  inference::EngineCapacity cap{.slots = 1, .max_seq = T, .max_rows = T};
  inference::ServedModel m =
      inference::load_served_model(o.checkpoint, cap, "none", o.device, o.precision);
  const inference::ModelIdentity id =
      inference::model_identity(m.checkpoint.config.model, *m.checkpoint.params);
  const inference::ExitExamples ex = inference::collect_exit_examples(*m.engine, seqs);
  inference::ExitTrainReport report;
  inference::ExitClassifier c = inference::train_exit_classifier(ex, id, o.train, &report);
  c.checkpoint = std::filesystem::path(o.checkpoint).filename().string();
  inference::save_exit_classifier(o.out, c);
  if (o.json) {
    std::printf("%s\n", c.report.c_str());
  } else {
    std::printf("Checkpoint %s (%s), tokens from %s%s, %s engine.\n%s", o.checkpoint.c_str(),
                id.describe().c_str(), all ? "every sequence of " : "the validation split of ",
                data.c_str(), m.engine->device(), report.markdown().c_str());
  }
  std::fprintf(stderr, "exit-classifier: wrote %s\n", o.out.c_str());
}

void run_show(const std::string& file, const std::string& checkpoint) {
  inference::ExitClassifier c = inference::load_exit_classifier(file);
  std::printf("%s: hidden %ld, for %s (trained from %s)\n", file.c_str(),
              static_cast<long>(c.hidden()), c.model.describe().c_str(), c.checkpoint.c_str());
  if (!checkpoint.empty()) {
    const CheckpointModel m = load_model_source(checkpoint);
    c.check_model(inference::model_identity(m.config.model, *m.params), file);
    std::printf("matches %s\n", checkpoint.c_str());
  }
  std::printf("report: %s\n", c.report.c_str());
}

}  // namespace

void add_exit_classifier_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "exit-classifier",
      "Train (or show) a CALM-style learned exit classifier for --exit classifier "
      "(docs/inference.md)");
  cmd->require_subcommand(1);
  auto* train = cmd->add_subcommand(
      "train",
      "Run the model over held-out tokens, collect each loop end's normed state, saturation "
      "cosine and whether its argmax agrees with the full depth, train a probe per loop and "
      "write it with the model's identity");
  auto o = std::make_shared<TrainOpts>();
  train
      ->add_option("checkpoint", o->checkpoint,
                   "an rrt checkpoint (step_XXXXXXXX.h5), an HF model directory (config.json) or a "
                   ".gguf file (read as its plain model)")
      ->required();
  train->add_option("--out", o->out, "the classifier file to write (safetensors)")->required();
  train->add_option("--data", o->data,
                    "token shards whose validation split gives the tokens (default: the run's "
                    "data.path)");
  train
      ->add_option("--split", o->split,
                   "validation: the run's validation split of --data (default); all: every "
                   "sequence of --data, a shard set held out from training")
      ->check(CLI::IsMember({"validation", "all"}));
  train->add_option("--tokens", o->tokens, "held-out tokens to run (default 32768)")
      ->check(CLI::PositiveNumber);
  train
      ->add_option("--seq-len", o->seq_len,
                   "tokens per sequence (default min(256, the model's max_seq_len))")
      ->check(CLI::NonNegativeNumber);
  train
      ->add_option("--hidden", o->train.hidden,
                   "hidden units of each probe (0: a linear probe, logistic regression)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  train->add_option("--epochs", o->train.epochs, "passes over the training part")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  train->add_option("--batch", o->train.batch, "examples per Adam step")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  train->add_option("--lr", o->train.lr, "Adam learning rate")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  train->add_option("--l2", o->train.l2, "L2 penalty on the weights")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  train
      ->add_option("--held-out", o->train.held_out,
                   "fraction of the sequences held out for model selection and the report")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 0.9));
  train->add_option("--seed", o->train.seed, "initialisation and shuffling seed")
      ->capture_default_str();
  train->add_option("--device", o->device, "engine: cpu or cuda")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  train
      ->add_option("--precision", o->precision,
                   "auto (fp32 on cpu, bf16 on cuda), fp32 or bf16: train on the states of "
                   "the engine you will serve with")
      ->check(CLI::IsMember({"auto", "fp32", "bf16"}));
  train->add_flag("--json", o->json, "print the report as JSON");
  train->callback([o] { run_train(*o); });

  auto* show = cmd->add_subcommand("show", "Print a classifier's model identity and report");
  auto file = std::make_shared<std::string>();
  auto checkpoint = std::make_shared<std::string>();
  show->add_option("file", *file, "the classifier file")->required()->check(CLI::ExistingFile);
  show->add_option("--checkpoint", *checkpoint, "check that it belongs to this checkpoint");
  show->callback([file, checkpoint] { run_show(*file, *checkpoint); });
}

}  // namespace rrt::cli
