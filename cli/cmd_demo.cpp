// rrt demo: the whole pipeline in miniature on the embedded public-domain corpus —
// prepare token shards, train a small relaxed recursive model, evaluate it, summarise.
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "data/tokenizer.h"
#include "data/prepare.h"
#include "trainer/checkpoint.h"
#include "trainer/config_io.h"
#include "trainer/evaluate.h"
#include "trainer/trainer.h"

#ifndef RRT_SOURCE_DIR
#define RRT_SOURCE_DIR "."
#endif

namespace rrt::cli {

namespace fs = std::filesystem;

namespace {

struct DemoOpts {
  std::string source = RRT_SOURCE_DIR;
  std::string out = "runs/demo";
  std::vector<std::string> overrides;
};

// Unigram entropy of the corpus as the tokenizer sees it (every document plus its EOS).
double corpus_unigram_entropy(const std::string& jsonl, const std::string& tokenizer_spec) {
  const auto tok = make_tokenizer(tokenizer_spec);
  std::vector<int64_t> counts(static_cast<size_t>(tok->vocab_size()), 0);
  std::ifstream in(jsonl);
  RRT_CHECK(in.good(), jsonl, "cannot read the demo corpus");
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    for (int32_t id : tok->encode(nlohmann::json::parse(line).at("text").get<std::string>()))
      ++counts[static_cast<size_t>(id)];
    ++counts[static_cast<size_t>(tok->eos_id())];
  }
  return unigram_entropy(counts);
}

void run_demo(const DemoOpts& o) {
  const fs::path out(o.out), data = out / "data", run = out / "run";
  const std::string corpus = (fs::path(o.source) / "data/corpus/demo.jsonl").string();
  const std::string config = (fs::path(o.source) / "configs/demo.yaml").string();
  std::printf("== rrt demo: corpus %s, config %s\n", corpus.c_str(), config.c_str());

  if (!fs::exists(data / "shard_00000.h5")) {
    std::printf("== 1/3 prepare: tokenising the corpus into %s\n", data.c_str());
    fs::remove_all(data);
    PrepareOptions p;
    p.inputs = {corpus};
    p.out_dir = data.string();
    p.tokenizer = "byte";
    const PrepareSummary s = prepare_shards(p);
    std::printf("   %ld documents, %ld tokens\n", static_cast<long>(s.documents),
                static_cast<long>(s.tokens));
  } else {
    std::printf("== 1/3 prepare: reusing %s\n", data.c_str());
  }

  std::vector<std::string> overrides = {"data.path=" + data.string(),
                                        "train.run_dir=" + run.string()};
  overrides.insert(overrides.end(), o.overrides.begin(), o.overrides.end());
  RunConfig cfg = load_run_config(config, overrides);
  fs::remove_all(run);  // the demo always trains from scratch
  const int64_t lora = cfg.model.lora.rank_attention;
  std::printf("== 2/3 train: %ld layers as %ld block layers x %ld loops, LoRA rank %ld, "
              "%ld steps of %ld x %ld tokens\n",
              static_cast<long>(cfg.model.positions()),
              static_cast<long>(cfg.model.recursion.block_layers),
              static_cast<long>(cfg.model.recursion.loops), static_cast<long>(lora),
              static_cast<long>(cfg.train.steps), static_cast<long>(cfg.train.micro_batch),
              static_cast<long>(cfg.train.seq_len));
  Trainer trainer(cfg);
  const TrainSummary s = trainer.run();

  std::printf("== 3/3 evaluate %s\n", s.last_checkpoint.c_str());
  const EvalResult r = evaluate_checkpoint(s.last_checkpoint, "", 0);
  const double h = corpus_unigram_entropy(corpus, "byte");
  const double below = 1.0 - r.loss / h;
  std::printf("\n== summary\n");
  std::printf("   training time          %.1f s (%ld steps)\n", s.seconds,
              static_cast<long>(s.last_step));
  std::printf("   final training loss    %.4f nats/token\n", s.losses.empty() ? NAN : s.losses.back());
  std::printf("   validation loss        %.4f nats/token (perplexity %.2f)\n", r.loss, r.perplexity);
  std::printf("   unigram entropy        %.4f nats/token (the best context-free model)\n", h);
  std::printf("   validation vs unigram  %.1f%% below  [%s: target is at least 25%% below]\n",
              100.0 * below, below >= 0.25 ? "PASS" : "FAIL");
  std::printf("   run directory          %s (config.yaml, metrics.jsonl, checkpoints)\n",
              run.c_str());
  if (below < 0.25)
    throw Error("demo", "the validation loss did not reach 25% below the unigram entropy");
}

}  // namespace

void add_demo_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "demo", "Prepare the embedded corpus, train a small relaxed recursive model, evaluate it");
  auto o = std::make_shared<DemoOpts>();
  cmd->add_option("--source", o->source, "rrt source tree (holds data/corpus and configs/)")
      ->capture_default_str();
  cmd->add_option("--out", o->out, "where the demo writes its data and run")->capture_default_str();
  cmd->add_option("overrides", o->overrides,
                  "key=value overrides of configs/demo.yaml, e.g. train.steps=50");
  cmd->callback([o] { run_demo(*o); });
}

}  // namespace rrt::cli
